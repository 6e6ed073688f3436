// The OpenSSL guard (actors/openssl_guard.hpp): an error another connection left in the thread's queue must not
// turn a would-block read into a fatal one, which is how one abrupt close tore down every TLS link of a node (CAF's
// session classifies its reads with SSL_get_error and never empties the queue); and a failed handshake is named.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "actors/openssl_guard.hpp"
#include "kernels/auth/openssl_handles.hpp"
#include "kernels/auth/swarm_identity.hpp"

namespace gwtf {
namespace {

constexpr std::time_t kNow = 1'800'000'000;  // the client verifies nothing: any validity period will do

using Ctx = std::unique_ptr<SSL_CTX, auth::Deleter<SSL_CTX, SSL_CTX_free>>;
using Ssl = std::unique_ptr<SSL, auth::Deleter<SSL, SSL_free>>;

// A server and a client session over a non-blocking socket pair, handshake done (or failed: `failed`).
struct TlsPair {
  Ctx server_ctx{SSL_CTX_new(TLS_server_method())};
  Ctx client_ctx{SSL_CTX_new(TLS_client_method())};
  Ssl server, client;
  int fds[2] = {-1, -1};
  bool failed = false;

  // require_client_cert: the server insists on a client certificate, which this client does not have.
  explicit TlsPair(bool require_client_cert = false) {
    auto ca = auth::create_ca("queue", 30, kNow).value();
    auto node = auth::issue_node(ca, "", "server", 30, "", kNow).value();
    auth::Cert cert(PEM_read_bio_X509(auth::read_bio(node.cert_pem).get(), nullptr, nullptr, nullptr));
    auth::Key key(PEM_read_bio_PrivateKey(auth::read_bio(node.key_pem).get(), nullptr, nullptr, nullptr));
    EXPECT_EQ(SSL_CTX_use_certificate(server_ctx.get(), cert.get()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey(server_ctx.get(), key.get()), 1);
    SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_NONE, nullptr);
    if (require_client_cert)
      SSL_CTX_set_verify(server_ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    // TLS 1.2 like CAF's session: 1.3's post-handshake tickets would run the handshake code, which happens to
    // empty the queue, and the test would pass without the guard.
    SSL_CTX_set_max_proto_version(server_ctx.get(), TLS1_2_VERSION);
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    for (int fd : fds) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    server.reset(SSL_new(server_ctx.get()));
    client.reset(SSL_new(client_ctx.get()));
    SSL_set_fd(server.get(), fds[0]);
    SSL_set_fd(client.get(), fds[1]);
    // Both sides step their handshake until each is done (a would-block return lets the other side move).
    bool server_done = false, client_done = false;
    for (int round = 0; round < 100 && !(server_done && client_done) && !failed; ++round) {
      if (!client_done) client_done = step(client.get(), SSL_connect(client.get()));
      if (!server_done && !failed) server_done = step(server.get(), SSL_accept(server.get()));
    }
    if (!require_client_cert) {
      EXPECT_TRUE(server_done && client_done) << "the TLS handshake did not finish";
    }
  }
  ~TlsPair() {
    server.reset();
    client.reset();
    for (int fd : fds) close(fd);
  }
  bool step(SSL* ssl, int ret) {
    if (ret == 1) return true;
    const int err = SSL_get_error(ssl, ret);
    failed = failed || (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE);
    return false;
  }
};

TEST(OpensslGuard, TheExecutableRoutesOpensslCallsThroughTheGuard) {
  EXPECT_TRUE(openssl_guarded());
}

TEST(OpensslGuard, AFailedHandshakeIsNamedWithOpensslsReason) {
  take_tls_refusals();
  {
    TlsPair ok;
    EXPECT_TRUE(take_tls_refusals().empty()) << "a handshake that succeeded is no refusal";
  }
  TlsPair stranger(/*require_client_cert=*/true);
  ASSERT_TRUE(stranger.failed);
  const auto refused = take_tls_refusals();
  ASSERT_FALSE(refused.empty());
  EXPECT_EQ(refused.front().reason, "peer did not return a certificate");
  EXPECT_EQ(refused.front().peer, "a local socket");
  EXPECT_TRUE(take_tls_refusals().empty()) << "taken once";
  ERR_clear_error();
}

TEST(OpensslGuard, AnErrorLeftByAnotherConnectionDoesNotMakeAWouldBlockReadFatal) {
  TlsPair tls;
  // What OpenSSL 3 files when some other peer closed its connection without close_notify.
  ERR_raise(ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING);
  char buf[16];
  const int ret = SSL_read(tls.client.get(), buf, sizeof buf);  // nothing sent yet: would block
  EXPECT_EQ(ret, -1);
  EXPECT_EQ(SSL_get_error(tls.client.get(), ret), SSL_ERROR_WANT_READ) << "the stale error was taken for this read's";
  // And the connection still carries data both ways.
  ERR_raise(ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING);
  ASSERT_EQ(SSL_write(tls.server.get(), "ping", 4), 4);
  ASSERT_EQ(SSL_read(tls.client.get(), buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
  ERR_clear_error();
}

}  // namespace
}  // namespace gwtf
