#include "bench/wire/goodput.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "actors/bulk_path.hpp"
#include "actors/frame_io.hpp"
#include "actors/system_config.hpp"
#include "kernels/wire/tensor_codec.hpp"

extern char** environ;

namespace gwtf::bench {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kSwarm = 1;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

wire::DecodeOptions decode_options() {
  wire::DecodeOptions o;
  o.swarm_id = kSwarm;
  return o;
}

std::vector<char> encode_tensor(const at::Tensor& t, uint32_t microbatch) {
  auto held = wire::hold_for_wire(t);
  wire::Activation a;
  a.microbatch = microbatch;
  a.tensor = held->view;
  return wire::encode_frame({0, kSwarm, 1}, a);
}

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Decodes and validates a received frame, as a stage would before computing on it.
bool accept(std::vector<char>&& frame) {
  auto m = wire::decode_frame(std::move(frame), decode_options());
  return m.ok() && std::holds_alternative<wire::Activation>(m->body);
}

// ------------------------------------------------------------------------------------------------------------
// 2. goodput: raw TCP

bool read_all(int fd, void* p, size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::read(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* p, size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t r = ::write(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

int listen_loopback(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 1) != 0) return -1;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

void nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int serve_tcp() {
  uint16_t port = 0;
  int lfd = listen_loopback(&port);
  std::printf("%u\n", port);
  std::fflush(stdout);
  for (;;) {
    int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) return 1;
    nodelay(fd);
    uint64_t len = 0;
    while (read_all(fd, &len, 8)) {
      std::vector<char> frame(len);  // a fresh buffer per frame, as CAF allocates one per message
      if (!read_all(fd, frame.data(), len)) break;
      uint64_t ok = accept(std::move(frame)) ? 1 : 0;
      if (!write_all(fd, &ok, 8)) break;
    }
    ::close(fd);
  }
}

double goodput_tcp(uint16_t port, const at::Tensor& t, int messages, int window) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  nodelay(fd);
  int in_flight = 0;
  uint64_t acks = 0, ack = 0;
  const auto t0 = Clock::now();
  for (int i = 0; i < messages; ++i) {
    if (in_flight == window) {
      if (!read_all(fd, &ack, 8)) std::abort();
      acks += ack;
      --in_flight;
    }
    auto frame = encode_tensor(t, static_cast<uint32_t>(i));
    uint64_t len = frame.size();
    if (!write_all(fd, &len, 8) || !write_all(fd, frame.data(), frame.size())) std::abort();
    ++in_flight;
  }
  for (; in_flight > 0; --in_flight) {
    if (!read_all(fd, &ack, 8)) std::abort();
    acks += ack;
  }
  const double s = seconds_since(t0);
  ::close(fd);
  if (acks != static_cast<uint64_t>(messages)) std::abort();
  return static_cast<double>(t.nbytes()) * messages / s / (1u << 20);
}

// ------------------------------------------------------------------------------------------------------------
// 2. goodput: CAF middleman

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using client_atom = caf::atom_constant<caf::atom("client")>;

struct AckerState {
  FrameStats stats;
  caf::actor client;  // where the acks of bulk frames go (over CAF, as the runtime's acks do)
};

caf::behavior acker(caf::stateful_actor<AckerState>* self) {
  return {
      [self](Frame& f) -> uint64_t {
        return open_frame(f, decode_options(), self->state.stats, "bench client") ? 1 : 0;
      },
      [self](BulkFrame& b) {
        Frame f{std::move(b.bytes)};
        const uint64_t ok = open_frame(f, decode_options(), self->state.stats, "bench client") ? 1 : 0;
        self->send(self->state.client, ok);
      },
      [self](client_atom, const caf::actor& client) { self->state.client = client; },
      [](ping_atom, uint64_t seq) { return seq; },
  };
}

int serve_caf() {
  SystemConfig cfg;
  caf::actor_system sys{cfg};
  auto server = sys.spawn(acker);
  auto port = sys.middleman().publish(server, 0, "127.0.0.1");
  auto bulk = BulkPath::open(server.address(), {});
  if (!port || !bulk) return 1;
  std::printf("%u %u\n", *port, bulk.value()->port());
  std::fflush(stdout);
  pause();  // until the parent's SIGTERM
  return 0;
}

// Streams `messages` frames of `t` through `send`, at most `window` unacknowledged, the acks (8 bytes each, over
// CAF) arriving at `self`; MiB/s.
double stream(caf::scoped_actor& self, const at::Tensor& t, int messages, int window,
              const std::function<void(std::vector<char>)>& send) {
  int in_flight = 0;
  uint64_t acks = 0;
  auto take_ack = [&] {
    self->receive([&](uint64_t ok) { acks += ok; },
                  caf::after(std::chrono::seconds(30)) >> [] { std::abort(); });
    --in_flight;
  };
  const auto t0 = Clock::now();
  for (int i = 0; i < messages; ++i) {
    if (in_flight == window) take_ack();
    send(encode_tensor(t, static_cast<uint32_t>(i)));
    ++in_flight;
  }
  while (in_flight > 0) take_ack();
  const double s = seconds_since(t0);
  if (acks != static_cast<uint64_t>(messages)) std::abort();
  return static_cast<double>(t.nbytes()) * messages / s / (1u << 20);
}

// The stream through the bulk data path; the acks come back over CAF to `self`.
double goodput_bulk(caf::scoped_actor& self, BulkPath& bulk, const at::Tensor& t, int messages, int window) {
  return stream(self, t, messages, window, [&](std::vector<char> frame) {
    if (!bulk.send(1, frame)) std::abort();
  });
}

// Round trips of a small CAF message to `remote`, one after another, until `stop` (milliseconds each).
std::vector<double> ping_until(caf::actor_system& sys, const caf::actor& remote, const std::atomic<bool>& stop) {
  caf::scoped_actor self{sys};
  std::vector<double> ms;
  for (uint64_t seq = 0; !stop; ++seq) {
    const auto t0 = Clock::now();
    self->request(remote, std::chrono::seconds(30), ping_atom::value, seq)
        .receive([&](uint64_t) { ms.push_back(seconds_since(t0) * 1e3); }, [](caf::error&) { std::abort(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return ms;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

// The stream through CAF's middleman, the acks as replies.
double goodput_caf(caf::actor_system& sys, const caf::actor& remote, const at::Tensor& t, int messages,
                   int window) {
  caf::scoped_actor self{sys};
  return stream(self, t, messages, window,
                [&](std::vector<char> frame) { self->send(remote, Frame{std::move(frame)}); });
}

// ------------------------------------------------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  uint16_t port = 0;
  uint16_t bulk_port = 0;  // the CAF server's bulk data path
};

Child spawn_server(const char* self_path, const char* kind) {
  int out[2];
  if (pipe(out) != 0) std::abort();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const char* argv[] = {self_path, "--serve", kind, nullptr};
  Child c;
  if (posix_spawn(&c.pid, "/proc/self/exe", &actions, nullptr, const_cast<char**>(argv), environ) != 0) std::abort();
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  unsigned port = 0, bulk_port = 0;
  if (std::fscanf(f, "%u", &port) != 1 || (std::string(kind) == "caf" && std::fscanf(f, "%u", &bulk_port) != 1)) {
    std::fprintf(stderr, "wire_bench: the %s server did not start\n", kind);
    std::exit(1);
  }
  std::fclose(f);
  c.port = static_cast<uint16_t>(port);
  c.bulk_port = static_cast<uint16_t>(bulk_port);
  return c;
}

void stop(const Child& c) {
  kill(c.pid, SIGTERM);
  waitpid(c.pid, nullptr, 0);
}

}  // namespace

std::optional<int> serve_if_asked(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--serve") {
      keep_frames_in_heap();  // as every gwtf node does: the same allocator in every process compared
      return std::string(argv[i + 1]) == "tcp" ? serve_tcp() : serve_caf();
    }
  return std::nullopt;
}

double print_goodput(const char* self_path, const GoodputOptions& options) {
  keep_frames_in_heap();
  const int messages = options.messages, rounds = options.rounds, mib = options.mib;
  const auto tensor = at::randn({static_cast<int64_t>(mib) << 18});  // mib MiB of float32
  const Child tcp = spawn_server(self_path, "tcp");
  const Child caf_server = spawn_server(self_path, "caf");
  SystemConfig cfg;
  caf::actor_system sys{cfg};
  auto remote = sys.middleman().remote_actor("127.0.0.1", caf_server.port);
  if (!remote) {
    std::fprintf(stderr, "wire_bench: cannot reach the CAF server: %s\n", sys.render(remote.error()).c_str());
    return -1;
  }
  caf::scoped_actor acks{sys};
  anon_send(*remote, client_atom::value, caf::actor{acks});
  auto bulk = BulkPath::open(caf::actor_addr{}, {}).value();  // sends only
  bulk->connect(1, "127.0.0.1", caf_server.bulk_port, {});

  std::vector<double> tcp_mibs, bulk_mibs, caf_mibs;
  goodput_tcp(tcp.port, tensor, 8, 4);  // warm-up every path
  goodput_bulk(acks, *bulk, tensor, 8, 4);
  goodput_caf(sys, *remote, tensor, 8, 4);
  for (int r = 0; r < rounds; ++r) {
    tcp_mibs.push_back(goodput_tcp(tcp.port, tensor, messages, 4));
    bulk_mibs.push_back(goodput_bulk(acks, *bulk, tensor, messages, 4));
    caf_mibs.push_back(goodput_caf(sys, *remote, tensor, messages, 4));
  }
  std::printf("\ngoodput, %d MiB tensors, %d messages x %d rounds, 4 in flight, loopback, two processes:\n", mib,
              messages, rounds);
  auto row = [](const char* name, const std::vector<double>& v) {
    std::printf("  %-28s %7.0f MiB/s (median; rounds:", name, median(v));
    for (double x : v) std::printf(" %.0f", x);
    std::printf(")\n");
  };
  row("raw TCP", tcp_mibs);
  row("gwtf bulk path (runtime)", bulk_mibs);
  row("CAF 0.17 middleman", caf_mibs);
  std::printf("  bulk path / raw TCP = %.2f   (target >= 0.70)\n", median(bulk_mibs) / median(tcp_mibs));
  std::printf("  CAF / raw TCP       = %.2f\n", median(caf_mibs) / median(tcp_mibs));

  // 3. Heartbeats beside a tensor stream.
  auto pings_while = [&](const std::function<void()>& stream) {
    std::atomic<bool> stop{false};
    std::vector<double> ms;
    std::thread pinger([&] { ms = ping_until(sys, *remote, stop); });
    stream();
    stop = true;
    pinger.join();
    return ms;
  };
  const auto idle = pings_while([] { std::this_thread::sleep_for(std::chrono::milliseconds(500)); });
  const auto beside_bulk = pings_while([&] { goodput_bulk(acks, *bulk, tensor, messages, 4); });
  const auto behind_caf = pings_while([&] { goodput_caf(sys, *remote, tensor, messages, 4); });
  std::printf("\nheartbeat round trip over CAF (ms) while %d tensors of %d MiB stream:\n", messages, mib);
  auto rtt = [](const char* name, const std::vector<double>& v) {
    std::printf("  %-28s median %7.3f   p99 %7.3f   max %7.3f   (%zu pings)\n", name, percentile(v, 0.5),
                percentile(v, 0.99), percentile(v, 1.0), v.size());
  };
  rtt("idle", idle);
  rtt("tensors on the bulk path", beside_bulk);
  rtt("tensors on CAF's connection", behind_caf);
  std::printf("  p99 behind CAF's tensors / beside the bulk path = %.1fx\n",
              percentile(behind_caf, 0.99) / std::max(1e-9, percentile(beside_bulk, 0.99)));
  bulk.reset();
  remote = caf::actor{};
  stop(tcp);
  stop(caf_server);
  return median(bulk_mibs) / median(tcp_mibs);
}

}  // namespace gwtf::bench
