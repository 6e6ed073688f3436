#include "actors/openssl_guard.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>

namespace gwtf {
namespace {

constexpr size_t kMaxRefusals = 64;

struct Refusals {
  std::mutex mu;
  std::deque<TlsRefusal> list;
  uint64_t dropped = 0;
};
Refusals& refusals() {
  static Refusals r;
  return r;
}

std::string address_of(const SSL* ssl) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  const int fd = SSL_get_fd(ssl);
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "an unknown address";
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return "a local socket";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

// The peer's address, taken when the handshake starts (SSL_connect/SSL_accept, once per connection in CAF) and kept
// with the session (freed with it): by the time a handshake fails the peer may have reset the socket.
void free_address(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(ptr); }
int address_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_address);
  return index;
}
void remember_address(SSL* ssl) {
  if (SSL_get_ex_data(ssl, address_index()) == nullptr)
    SSL_set_ex_data(ssl, address_index(), new std::string(address_of(ssl)));
}
std::string peer_of(const SSL* ssl) {
  if (const auto* a = static_cast<const std::string*>(SSL_get_ex_data(ssl, address_index()))) return *a;
  return address_of(ssl);
}

// After a call returned `ret`: a handshake that cannot go on is noted (the error queue is only peeked: CAF asks
// SSL_get_error next and must see the same answer).
void note_if_handshake_failed(SSL* ssl, int ret) {
  if (ret > 0 || SSL_is_init_finished(ssl)) return;
  const int err = SSL_get_error(ssl, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
  std::string reason = "closed during the handshake";
  if (const unsigned long e = ERR_peek_error(); e != 0)
    if (const char* r = ERR_reason_error_string(e)) reason = r;
  auto& all = refusals();
  std::lock_guard<std::mutex> lock(all.mu);
  if (all.list.size() >= kMaxRefusals) {
    all.list.pop_front();
    ++all.dropped;
  }
  all.list.push_back({peer_of(ssl), std::move(reason)});
}

// libssl's definition of NAME: the next one after this executable's in the dynamic linker's search order.
template <class Fn>
Fn next_definition(const char* name) {
  auto* fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  if (fn == nullptr) {
    std::fprintf(stderr, "gwtf: cannot find libssl's %s: %s\n", name, dlerror());
    std::abort();  // no OpenSSL in the process although CAF calls it: nothing sane is left to do
  }
  return fn;
}

// Calls libssl's `next` the way its manual asks (an empty error queue first), then notes a failed handshake.
template <class Fn, class... Args>
int guarded(Fn next, SSL* ssl, Args... args) {
  ERR_clear_error();
  const int ret = next(ssl, args...);
  note_if_handshake_failed(ssl, ret);
  return ret;
}

}  // namespace
}  // namespace gwtf

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto next = gwtf::next_definition<int (*)(SSL*, void*, int)>("SSL_read");
  return gwtf::guarded(next, ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto next = gwtf::next_definition<int (*)(SSL*, const void*, int)>("SSL_write");
  return gwtf::guarded(next, ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  static const auto next = gwtf::next_definition<int (*)(SSL*)>("SSL_connect");
  gwtf::remember_address(ssl);
  return gwtf::guarded(next, ssl);
}

int SSL_accept(SSL* ssl) {
  static const auto next = gwtf::next_definition<int (*)(SSL*)>("SSL_accept");
  gwtf::remember_address(ssl);
  return gwtf::guarded(next, ssl);
}

}  // extern "C"

namespace gwtf {

bool openssl_guarded() {
  // The process-wide definitions are this file's only if the executable exports them ahead of libssl.
  return dlsym(RTLD_DEFAULT, "SSL_read") == reinterpret_cast<void*>(&SSL_read) &&
         dlsym(RTLD_DEFAULT, "SSL_write") == reinterpret_cast<void*>(&SSL_write) &&
         dlsym(RTLD_DEFAULT, "SSL_connect") == reinterpret_cast<void*>(&SSL_connect) &&
         dlsym(RTLD_DEFAULT, "SSL_accept") == reinterpret_cast<void*>(&SSL_accept);
}

std::vector<TlsRefusal> take_tls_refusals(uint64_t* dropped) {
  auto& all = refusals();
  std::lock_guard<std::mutex> lock(all.mu);
  std::vector<TlsRefusal> out(all.list.begin(), all.list.end());
  all.list.clear();
  if (dropped) *dropped = all.dropped;
  all.dropped = 0;
  return out;
}

}  // namespace gwtf
