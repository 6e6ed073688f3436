// A guard around CAF 0.17's use of OpenSSL: it keeps one connection's error from closing all the others, and it
// tells which connections failed their TLS handshake (CAF drops them without a word).
//
// 1. OpenSSL classifies a failed SSL_read/SSL_write/SSL_connect/SSL_accept with SSL_get_error(), which looks at the
//    calling thread's error queue first: anything left there makes it answer SSL_ERROR_SSL. Its manual therefore
//    requires the queue to be empty before each of those calls. CAF's OpenSSL session (libcaf_openssl 0.17.6) never
//    empties it, and OpenSSL 3 files an abrupt close (a peer gone without close_notify, or CAF closing a redundant
//    connection) as "unexpected eof while reading". From then on the next would-block read of *any* connection
//    served by the same multiplexer thread counts as fatal and CAF closes it: one abrupt close takes down every link
//    of the node, whose own abrupt closes then take down its peers' links. Measured on the fault bed (tests/net): a
//    5-node TLS swarm collapsed in ~1 of 5 starts, every member remote_link_unreachable within 100 ms, and a
//    throttled link took the whole swarm down.
// 2. A stranger (a certificate of another CA, no certificate, plain text) fails the handshake inside CAF, which
//    closes the socket and reports nothing; the node could not log who it refused.
//
// Debian's CAF cannot be patched here, so this file defines those four functions in the executable (which the
// dynamic linker prefers to libssl's for libcaf_openssl's calls): each empties the queue, calls libssl's, and
// notes a handshake that failed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gwtf {

// True when CAF's OpenSSL calls go through the guard (the executable exports the four definitions). SystemConfig
// refuses to start a TLS node without it.
bool openssl_guarded();

// A connection whose TLS handshake failed, in either direction.
struct TlsRefusal {
  std::string peer;    // "address:port", or "an unknown address" once the socket is gone
  std::string reason;  // OpenSSL's, e.g. "certificate verify failed", or "closed during the handshake"
};
// The handshakes that failed in this process since the last call (at most the last 64; `dropped` counts the rest).
std::vector<TlsRefusal> take_tls_refusals(uint64_t* dropped = nullptr);

}  // namespace gwtf
