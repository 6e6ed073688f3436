// A guard around CAF 0.17's use of OpenSSL that keeps one connection's error from closing all the others.
//
// OpenSSL classifies a failed SSL_read/SSL_write/SSL_connect/SSL_accept with SSL_get_error(), which looks at the
// calling thread's error queue first: anything left there makes it answer SSL_ERROR_SSL. Its manual therefore
// requires the queue to be empty before each of those calls. CAF's OpenSSL session (libcaf_openssl 0.17.6) never
// empties it, and OpenSSL 3 files an abrupt close (a peer gone without close_notify, or CAF closing a redundant
// connection) as "unexpected eof while reading". From then on the next would-block read of *any* connection served by
// the same multiplexer thread counts as fatal and CAF closes it: one abrupt close takes down every link of the node,
// whose own abrupt closes then take down its peers' links. Measured on the fault bed (tests/net): a 5-node TLS swarm
// collapsed in ~1 of 5 starts, every member remote_link_unreachable within 100 ms.
//
// Debian's CAF cannot be patched here, so this file defines those four functions in the executable (which the
// dynamic linker prefers to libssl's for libcaf_openssl's calls): each empties the queue and calls libssl's.
#pragma once

namespace gwtf {

// True when CAF's OpenSSL calls go through the guard (the executable exports the four definitions). SystemConfig
// refuses to start a TLS node without it.
bool openssl_error_queue_guarded();

}  // namespace gwtf
