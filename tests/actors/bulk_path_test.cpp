// The bulk data path (actors/bulk_path.hpp) on loopback: frames arrive whole and in order, plain and over mutual
// TLS; a connection that cannot be made or breaks hands every frame it had not written back to the node; a length
// prefix that is not a frame, and a frame cut short, close the incoming connection with the reason; a stranger to
// the swarm's CA gets no frame through.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>

#include <chrono>
#include <numeric>
#include <thread>

#include "actors/bulk_path.hpp"
#include "actors/openssl_guard.hpp"
#include "tests/actors/tls_credentials.hpp"

namespace gwtf {
namespace {

using namespace std::chrono_literals;

struct Sink {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
};

std::vector<char> pattern(size_t n, uint32_t seed) {
  std::vector<char> v(n);
  for (size_t k = 0; k < n; ++k) v[k] = static_cast<char>((k * 131 + seed * 7919) >> 3);
  return v;
}

std::unique_ptr<BulkPath> open_path(Sink& sink, std::shared_ptr<const SwarmTls> tls = nullptr) {
  BulkPath::Options o;
  o.tls = std::move(tls);
  o.connect_timeout = 2;
  auto p = BulkPath::open(sink.self->address(), o);
  EXPECT_TRUE(p) << p.error();
  return std::move(p).value();
}

// The next message of type T (others are skipped), or nothing within `timeout`.
template <class T>
std::optional<T> next(Sink& sink, std::chrono::milliseconds timeout = 5000ms) {
  std::optional<T> got;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!got && std::chrono::steady_clock::now() < until) {
    sink.self->receive([&](T& m) { got = std::move(m); }, [](BulkFrame&) {}, [](BulkLinkClosed&) {},
                       [](BulkReturned&) {}, caf::after(100ms) >> [] {});
  }
  return got;
}

uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // nothing listens there now
  return ntohs(a.sin_port);
}

int raw_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

// Sends frames of every size class from `a` to `b` (received at `rx`) and checks each arrives whole, in order.
void expect_delivery(BulkPath& a, BulkPath& b, Sink& rx, std::vector<char> first) {
  const std::vector<size_t> sizes{1, 100, 16 << 10, (4 << 20) + 3, 7, 12 << 20};
  a.connect(7, "127.0.0.1", b.port(), first);
  EXPECT_EQ(a.peer(7), BulkPath::Peer::kOpen);
  for (size_t k = 0; k < sizes.size(); ++k) {
    auto f = pattern(sizes[k], static_cast<uint32_t>(k));
    ASSERT_TRUE(a.send(7, f));
    EXPECT_TRUE(f.empty()) << "a queued frame is moved, not copied";
  }
  uint64_t link = 0;
  if (!first.empty()) {
    auto f = next<BulkFrame>(rx);
    ASSERT_TRUE(f) << "the first frame did not arrive";
    EXPECT_EQ(f->bytes, first);
    link = f->link;
  }
  for (size_t k = 0; k < sizes.size(); ++k) {
    auto f = next<BulkFrame>(rx);
    ASSERT_TRUE(f) << "frame " << k << " did not arrive";
    EXPECT_EQ(f->bytes, pattern(sizes[k], static_cast<uint32_t>(k))) << "frame " << k;
    if (link) {
      EXPECT_EQ(f->link, link) << "one connection carries them all";
    }
    link = f->link;
  }
  const auto total = std::accumulate(sizes.begin(), sizes.end(), size_t{0});
  const auto out = a.counters();
  EXPECT_EQ(out.frames_out, sizes.size() + (first.empty() ? 0 : 1));
  EXPECT_EQ(out.bytes_out, total + first.size());
  EXPECT_EQ(b.counters().bytes_in, total + first.size());
}

TEST(BulkPath, FramesArriveWholeAndInOrder) {
  Sink tx, rx;
  auto a = open_path(tx), b = open_path(rx);
  EXPECT_NE(b->port(), 0);
  expect_delivery(*a, *b, rx, {});
}

TEST(BulkPath, FramesArriveOverMutualTlsAfterTheFirstFrame) {
  testing::Credentials creds{"bulk"};
  Sink tx, rx;
  auto a = open_path(tx, creds.issue("a")), b = open_path(rx, creds.issue("b"));
  expect_delivery(*a, *b, rx, pattern(300, 99));
}

TEST(BulkPath, AStrangerToTheCaGetsNoFrameThrough) {
  testing::Credentials creds{"bulk-stranger"};
  Sink tx, rx;
  auto b = open_path(rx, creds.issue("b"));
  {  // a certificate of another CA: the handshake fails, the frame comes back
    auto a = open_path(tx, creds.issue("rogue", creds.rogue_ca));
    a->connect(7, "127.0.0.1", b->port(), {});
    auto f = pattern(1000, 1);
    const bool queued = a->send(7, f);
    auto back = next<BulkReturned>(tx);
    ASSERT_TRUE(back) << "the failed handshake was not reported";
    EXPECT_EQ(back->peer, 7u);
    EXPECT_NE(back->why.find("TLS handshake"), std::string::npos) << back->why;
    ASSERT_EQ(back->frames.size(), queued ? 1u : 0u) << back->why;
    if (queued) {
      EXPECT_EQ(back->frames[0], pattern(1000, 1));
    }
    EXPECT_EQ(a->peer(7), BulkPath::Peer::kFailed);
  }
  {  // plain text: the server's handshake fails and it closes the connection
    auto a = open_path(tx);
    a->connect(8, "127.0.0.1", b->port(), {});
    auto f = pattern(1000, 2);
    ASSERT_TRUE(a->send(8, f));
    auto closed = next<BulkLinkClosed>(rx);
    ASSERT_TRUE(closed);
    EXPECT_NE(closed->why.find("TLS handshake failed"), std::string::npos) << closed->why;
  }
  EXPECT_FALSE(next<BulkFrame>(rx, 300ms)) << "a frame of a stranger reached the node";
  take_tls_refusals();
}

TEST(BulkPath, AConnectionThatCannotBeMadeHandsItsFramesBack) {
  Sink tx;
  auto a = open_path(tx);
  a->connect(3, "127.0.0.1", closed_port(), {});
  std::vector<std::vector<char>> sent;
  for (uint32_t k = 0; k < 3; ++k) {
    auto f = pattern(5000 + k, k);
    sent.push_back(f);
    if (!a->send(3, f)) break;  // the failure may come before the last send: then the caller keeps it
  }
  auto back = next<BulkReturned>(tx);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->peer, 3u);
  EXPECT_NE(back->why.find("cannot connect"), std::string::npos) << back->why;
  EXPECT_EQ(back->frames, std::vector<std::vector<char>>(sent.begin(), sent.begin() + back->frames.size()));
  EXPECT_EQ(a->peer(3), BulkPath::Peer::kFailed);
  auto f = pattern(10, 9);
  EXPECT_FALSE(a->send(3, f));
  EXPECT_EQ(f.size(), 10u) << "a refused frame stays with the caller";
  a->close_peer(3);
  EXPECT_EQ(a->peer(3), BulkPath::Peer::kNone) << "closed: a new connection may be opened";
}

TEST(BulkPath, AReceiverThatDiesMidStreamGetsTheRestHandedBack) {
  Sink tx, rx;
  auto a = open_path(tx);
  auto b = open_path(rx);
  a->connect(5, "127.0.0.1", b->port(), {});
  auto f = pattern(1 << 20, 0);
  ASSERT_TRUE(a->send(5, f));
  ASSERT_TRUE(next<BulkFrame>(rx));
  b.reset();  // its connections close
  std::optional<BulkReturned> back;
  for (int k = 0; k < 200 && !back; ++k) {
    auto g = pattern(1 << 20, static_cast<uint32_t>(k));
    if (!a->send(5, g)) break;
    back = next<BulkReturned>(tx, 20ms);
  }
  if (!back) back = next<BulkReturned>(tx);
  ASSERT_TRUE(back) << "a write to a closed connection was never noticed";
  EXPECT_NE(back->why.find("write failed"), std::string::npos) << back->why;
  EXPECT_EQ(a->peer(5), BulkPath::Peer::kFailed);
}

TEST(BulkPath, ALengthPrefixThatIsNoFrameClosesTheLink) {
  Sink rx;
  BulkPath::Options o;
  o.max_frame_bytes = 1 << 20;
  auto b = BulkPath::open(rx.self->address(), o).value();
  int fd = raw_connect(b->port());
  const uint64_t huge = uint64_t{1} << 40;
  ASSERT_EQ(::write(fd, &huge, 8), 8);
  auto closed = next<BulkLinkClosed>(rx);
  ASSERT_TRUE(closed);
  EXPECT_NE(closed->why.find("1099511627776 bytes announced (at most 1048576)"), std::string::npos) << closed->why;
  ::close(fd);

  fd = raw_connect(b->port());
  const uint64_t len = 100;
  ASSERT_EQ(::write(fd, &len, 8), 8);
  ASSERT_EQ(::write(fd, "only ten b", 10), 10);
  ::close(fd);
  closed = next<BulkLinkClosed>(rx);
  ASSERT_TRUE(closed);
  EXPECT_NE(closed->why.find("closed in the middle of a frame (100 bytes announced)"), std::string::npos)
      << closed->why;
  EXPECT_FALSE(next<BulkFrame>(rx, 200ms)) << "a frame cut short was delivered";
}

TEST(BulkPath, ClosingALinkEndsItsReaderAndClosingAPeerReturnsNothing) {
  Sink tx, rx;
  auto a = open_path(tx), b = open_path(rx);
  a->connect(1, "127.0.0.1", b->port(), {});
  auto f = pattern(64, 1);
  ASSERT_TRUE(a->send(1, f));
  auto got = next<BulkFrame>(rx);
  ASSERT_TRUE(got);
  b->close_link(got->link);
  ASSERT_TRUE(next<BulkLinkClosed>(rx));
  a->close_peer(1);
  EXPECT_FALSE(next<BulkReturned>(tx, 300ms)) << "close_peer drops what it held, on purpose";
  a->connect(1, "127.0.0.1", b->port(), {});
  auto g = pattern(64, 2);
  ASSERT_TRUE(a->send(1, g));
  got = next<BulkFrame>(rx);
  ASSERT_TRUE(got) << "a peer closed can be connected again";
  EXPECT_EQ(got->bytes, pattern(64, 2));
}

}  // namespace
}  // namespace gwtf
