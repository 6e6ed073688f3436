// delay_proxy: a TCP relay that holds every byte for a one-way latency plus seeded jitter, in each direction, and
// keeps the bytes in order. The fault bed (tests/net/netbed delay) runs one inside a host's namespace for each link
// it slows, behind an nftables redirect: this kernel has no netem. Everything it forwards is delayed, both ways, so
// a link through it gains twice the latency in round trip, like a long-distance link.
//
//   delay_proxy LISTEN_PORT TARGET_ADDR TARGET_PORT DELAY_MS [JITTER_MS [SEED [MARK]]]
//
// It listens on 127.0.0.1:LISTEN_PORT (where the redirect sends a host's connections to TARGET), and opens its own
// connection to TARGET with socket mark MARK (default 0x4d), which the redirect rule lets through. Jitter: each
// chunk read waits DELAY_MS + U(0, JITTER_MS), drawn from SEED, but never leaves before the chunk read before it.
// At most 4 MiB wait per direction: beyond that it stops reading (TCP's flow control pushes back on the sender).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr size_t kMaxQueued = 4u << 20;
constexpr size_t kReadSize = 64u << 10;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "delay_proxy: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

struct Chunk {
  double release = 0;
  std::string bytes;
  size_t sent = 0;
};

// One direction of a relayed connection: bytes read from `from` wait in `queue` until released, then go to `to`.
struct Pipe {
  int from = -1, to = -1;
  std::deque<Chunk> queue;
  size_t queued = 0;
  double last_release = 0;
  bool eof = false;       // `from` closed its side: once the queue is out, `to` is shut for writing
  bool shut = false;
  bool readable() const { return !eof && queued < kMaxQueued; }
  bool due(double now) const { return !queue.empty() && queue.front().release <= now; }
  bool done() const { return eof && queue.empty(); }
};

struct Relay {
  Pipe up, down;  // client -> target, target -> client
  bool broken = false;
};

class Proxy {
 public:
  Proxy(int listen_port, const std::string& addr, int port, double delay_s, double jitter_s, uint64_t seed,
        uint32_t mark)
      : delay_s_(delay_s), jitter_s_(jitter_s), rng_(seed), mark_(mark) {
    target_.sin_family = AF_INET;
    target_.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, addr.c_str(), &target_.sin_addr) != 1) {
      errno = EINVAL;
      die("target address " + addr);
    }
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    if (listener_ < 0) die("socket");
    int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(static_cast<uint16_t>(listen_port));
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) die("bind 127.0.0.1:" + std::to_string(listen_port));
    if (listen(listener_, 64) != 0) die("listen");
    nonblocking(listener_);
  }

  void run() {
    for (;;) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      const double now = now_s();
      double wake = now + 1.0;
      for (auto& r : relays_)
        for (Pipe* p : {&r.up, &r.down}) {
          short ev = 0;
          if (p->readable()) fds.push_back({p->from, POLLIN, 0});
          if (p->due(now)) ev = POLLOUT;
          else if (!p->queue.empty()) wake = std::min(wake, p->queue.front().release);
          if (ev) fds.push_back({p->to, ev, 0});
        }
      const int timeout_ms = std::max(0, static_cast<int>((wake - now) * 1000.0 + 0.999));
      if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) die("poll");
      if (fds[0].revents & POLLIN) accept_all();
      for (auto& r : relays_) {
        pump_in(r, r.up);
        pump_in(r, r.down);
        pump_out(r, r.up);
        pump_out(r, r.down);
      }
      relays_.remove_if([](const Relay& r) {
        const bool over = r.broken || (r.up.done() && r.down.done());
        if (over) {
          close(r.up.from);
          close(r.up.to);
        }
        return over;
      });
    }
  }

 private:
  static void nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }
  static void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  void accept_all() {
    for (;;) {
      const int client = accept(listener_, nullptr, nullptr);
      if (client < 0) return;
      const int target = socket(AF_INET, SOCK_STREAM, 0);
      if (target < 0) die("socket");
      setsockopt(target, SOL_SOCKET, SO_MARK, &mark_, sizeof mark_);  // past the redirect: not back to us
      // A blocking connect: the target is one hop away on the bed's bridge. Refused: the client sees the close.
      if (connect(target, reinterpret_cast<const sockaddr*>(&target_), sizeof target_) != 0) {
        std::fprintf(stderr, "delay_proxy: connect: %s\n", std::strerror(errno));
        close(client);
        close(target);
        continue;
      }
      for (int fd : {client, target}) {
        nonblocking(fd);
        no_delay(fd);
      }
      Relay r;
      r.up.from = r.down.to = client;
      r.up.to = r.down.from = target;
      relays_.push_back(std::move(r));
    }
  }

  double hold() { return delay_s_ + (jitter_s_ > 0 ? std::uniform_real_distribution<double>(0, jitter_s_)(rng_) : 0); }

  void pump_in(Relay& r, Pipe& p) {
    while (!r.broken && p.readable()) {
      const ssize_t n = read(p.from, buf_.data(), buf_.size());
      if (n > 0) {
        std::string buf(buf_.data(), static_cast<size_t>(n));
        p.last_release = std::max(p.last_release, now_s() + hold());  // in order: never before the previous chunk
        p.queued += buf.size();
        p.queue.push_back({p.last_release, std::move(buf), 0});
      } else if (n == 0) {
        p.eof = true;
      } else {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) r.broken = true;
        return;
      }
    }
  }

  void pump_out(Relay& r, Pipe& p) {
    const double now = now_s();
    while (!r.broken && p.due(now)) {
      Chunk& c = p.queue.front();
      const ssize_t n = send(p.to, c.bytes.data() + c.sent, c.bytes.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) r.broken = true;
        return;
      }
      c.sent += static_cast<size_t>(n);
      if (c.sent < c.bytes.size()) return;
      p.queued -= c.bytes.size();
      p.queue.pop_front();
    }
    if (p.done() && !p.shut) {
      shutdown(p.to, SHUT_WR);
      p.shut = true;
    }
  }

  double delay_s_, jitter_s_;
  std::mt19937_64 rng_;
  uint32_t mark_;
  sockaddr_in target_{};
  int listener_ = -1;
  std::list<Relay> relays_;
  std::vector<char> buf_ = std::vector<char>(kReadSize);  // one read at a time
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: delay_proxy LISTEN_PORT TARGET_ADDR TARGET_PORT DELAY_MS [JITTER_MS [SEED [MARK]]]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  const double delay_ms = std::atof(argv[4]);
  const double jitter_ms = argc > 5 ? std::atof(argv[5]) : 0;
  const uint64_t seed = argc > 6 ? std::strtoull(argv[6], nullptr, 0) : 1;
  const uint32_t mark = argc > 7 ? static_cast<uint32_t>(std::strtoul(argv[7], nullptr, 0)) : 0x4d;
  if (delay_ms < 0 || jitter_ms < 0) {
    std::fprintf(stderr, "delay_proxy: DELAY_MS and JITTER_MS must be >= 0\n");
    return 2;
  }
  Proxy(std::atoi(argv[1]), argv[2], std::atoi(argv[3]), delay_ms / 1000, jitter_ms / 1000, seed, mark).run();
}
