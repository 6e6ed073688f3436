#include "actors/bulk_path.hpp"

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gwtf {

// One end of a connection: a socket, and its TLS session in a TLS swarm. Only the thread that owns the connection
// reads or writes it; another thread may shut the socket down (which wakes a blocked call) but never closes it.
struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;

  void release() {
    if (ssl) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
    ssl = nullptr;
    fd = -1;
  }
};

struct BulkPath::Out {
  uint64_t peer = 0;
  std::string host;
  uint16_t port = 0;
  std::vector<char> first;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<char>> queue;
  bool closing = false;  // close_peer or the destructor: stop without handing frames back
  bool failed = false;
  Conn conn;  // its fd is published under `mu` once connected (close_peer shuts it down)
  std::atomic<bool> finished{false};
  std::thread thread;
};

struct BulkPath::In {
  uint64_t link = 0;
  Conn conn;
  std::atomic<bool> finished{false};
  std::thread thread;
};

namespace {

std::string ssl_reason(const char* what) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return std::string(what) + (errno ? std::string(": ") + std::strerror(errno) : std::string());
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return std::string(what) + ": " + buf;
}

void set_timeouts(int fd, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// No Nagle delay for the last segment of a frame, and socket buffers of a few MiB: a tensor moves in a few large
// writes and reads instead of a ping-pong of wake-ups (measured with bench/wire).
void tune(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int bytes = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

bool write_all(Conn& c, const char* p, size_t n, int flags = 0) {
  while (n > 0) {
    if (c.ssl) {
      size_t wrote = 0;
      if (SSL_write_ex(c.ssl, p, n, &wrote) != 1) return false;
      p += wrote;
      n -= wrote;
      continue;
    }
    const ssize_t r = ::send(c.fd, p, n, MSG_NOSIGNAL | flags);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool read_all(Conn& c, char* p, size_t n) {
  while (n > 0) {
    if (c.ssl) {
      size_t got = 0;
      if (SSL_read_ex(c.ssl, p, n, &got) != 1) return false;
      p += got;
      n -= got;
      continue;
    }
    const ssize_t r = ::recv(c.fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// A frame on the wire: its length as 8 bytes little-endian, then the frame.
bool write_frame(Conn& c, const std::vector<char>& frame) {
  char len[8];
  uint64_t n = frame.size();
  for (int k = 0; k < 8; ++k) len[k] = static_cast<char>((n >> (8 * k)) & 0xff);
  return write_all(c, len, sizeof len, MSG_MORE) && write_all(c, frame.data(), frame.size());
}

// Connects within `timeout` seconds; the socket is blocking again once connected.
Result<int, std::string> dial(const std::string& host, uint16_t port, double timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    return Err{"cannot resolve " + host + ": " + ::gai_strerror(rc)};
  std::string why = "no address";
  int fd = -1;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(timeout * 1000));
      int err = rc == 0 ? ETIMEDOUT : 0;
      socklen_t len = sizeof err;
      if (rc > 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      errno = err;
      rc = err == 0 ? 0 : -1;
    }
    if (rc != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return Err{"cannot connect to " + host + ":" + std::to_string(port) + ": " + why};
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  tune(fd);
  return fd;
}

int passphrase_cb(char* buf, int size, int, void* userdata) {
  const auto* p = static_cast<const std::string*>(userdata);
  const int n = std::min(size, static_cast<int>(p->size()));
  std::memcpy(buf, p->data(), static_cast<size_t>(n));
  return n;
}

// Mutual TLS 1.3 with the swarm's CA, as CAF's OpenSSL module is set up (actors/system_config.cpp).
Result<SSL_CTX*, std::string> tls_context(const SwarmTls& tls, bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx) return Err{ssl_reason("cannot make a TLS context")};
  auto fail = [&](const std::string& what) -> Result<SSL_CTX*, std::string> {
    std::string why = ssl_reason(what.c_str());
    SSL_CTX_free(ctx);
    return Err{std::move(why)};
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_default_passwd_cb(ctx, passphrase_cb);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, const_cast<std::string*>(&tls.passphrase));
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
    return fail("the node certificate " + tls.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1)
    return fail("the node key " + tls.key_file);
  if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1)
    return fail("the swarm CA " + tls.ca_file);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  if (server) SSL_CTX_set_num_tickets(ctx, 0);  // one-way connections: the client never reads
  return ctx;
}

// Every thread of the path: a write to a connection the peer closed fails with EPIPE instead of killing the
// process (OpenSSL writes with write(2), which raises SIGPIPE; the signal stays pending on this thread only).
void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

template <class T>
void tell(const caf::actor_addr& sink, T&& msg) {
  if (auto a = caf::actor_cast<caf::actor>(sink)) caf::anon_send(a, std::forward<T>(msg));
}

}  // namespace

void keep_frames_in_heap() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  });
}

Result<std::unique_ptr<BulkPath>, std::string> BulkPath::open(caf::actor_addr sink, Options options) {
  keep_frames_in_heap();
  std::unique_ptr<BulkPath> p(new BulkPath);
  p->opt_ = std::move(options);
  p->sink_ = std::move(sink);
  if (p->opt_.tls) {
    auto server = tls_context(*p->opt_.tls, true);
    if (!server) return Err{"the bulk data path: " + server.error()};
    p->ssl_server_ = server.value();
    auto client = tls_context(*p->opt_.tls, false);
    if (!client) return Err{"the bulk data path: " + client.error()};
    p->ssl_client_ = client.value();
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(p->opt_.host.c_str(), std::to_string(p->opt_.port).c_str(), &hints, &found); rc != 0)
    return Err{"the bulk data path cannot resolve " + p->opt_.host + ": " + ::gai_strerror(rc)};
  std::string why = "no address";
  for (addrinfo* a = found; a && p->listen_fd_ < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      p->listen_fd_ = fd;
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
      p->port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                                   : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (p->listen_fd_ < 0)
    return Err{"the bulk data path cannot listen on " + p->opt_.host + ":" + std::to_string(p->opt_.port) + ": " + why};
  p->acceptor_ = std::thread([raw = p.get()] { raw->accept_loop(); });
  return p;
}

BulkPath::~BulkPath() {
  stopping_ = true;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  std::vector<std::unique_ptr<Out>> outs;
  std::vector<std::unique_ptr<In>> ins;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, o] : out_) outs.push_back(std::move(o));
    for (auto& o : closed_out_) outs.push_back(std::move(o));
    for (auto& [link, i] : in_) ins.push_back(std::move(i));
    out_.clear();
    closed_out_.clear();
    in_.clear();
  }
  for (auto& o : outs) {
    {
      std::lock_guard<std::mutex> lock(o->mu);
      o->closing = true;
      if (o->conn.fd >= 0) ::shutdown(o->conn.fd, SHUT_RDWR);
    }
    o->cv.notify_all();
  }
  for (auto& i : ins)
    if (i->conn.fd >= 0) ::shutdown(i->conn.fd, SHUT_RDWR);
  for (auto& o : outs) {
    if (o->thread.joinable()) o->thread.join();
    o->conn.release();
  }
  for (auto& i : ins) {
    if (i->thread.joinable()) i->thread.join();
    i->conn.release();
  }
  if (ssl_server_) SSL_CTX_free(static_cast<SSL_CTX*>(ssl_server_));
  if (ssl_client_) SSL_CTX_free(static_cast<SSL_CTX*>(ssl_client_));
}

BulkPath::Peer BulkPath::peer(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = out_.find(id);
  if (it == out_.end()) return Peer::kNone;
  std::lock_guard<std::mutex> out_lock(it->second->mu);
  return it->second->failed ? Peer::kFailed : Peer::kOpen;
}

void BulkPath::connect(uint64_t id, const std::string& host, uint16_t port, std::vector<char> first) {
  reap();
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = out_[id];
  if (slot) return;
  slot = std::make_unique<Out>();
  slot->peer = id;
  slot->host = host;
  slot->port = port;
  slot->first = std::move(first);
  slot->thread = std::thread([this, o = slot.get()] { write_loop(*o); });
}

bool BulkPath::send(uint64_t id, std::vector<char>& frame) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = out_.find(id);
  if (it == out_.end()) return false;
  Out& o = *it->second;
  {
    std::lock_guard<std::mutex> out_lock(o.mu);
    if (o.failed || o.closing) return false;
    o.queue.push_back(std::move(frame));
  }
  o.cv.notify_one();
  return true;
}

void BulkPath::close_peer(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = out_.find(id);
  if (it == out_.end()) return;
  {
    std::lock_guard<std::mutex> out_lock(it->second->mu);
    it->second->closing = true;
    if (it->second->conn.fd >= 0) ::shutdown(it->second->conn.fd, SHUT_RDWR);
  }
  it->second->cv.notify_all();
  closed_out_.push_back(std::move(it->second));
  out_.erase(it);
}

void BulkPath::close_link(uint64_t link) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_.find(link);
  if (it != in_.end() && it->second->conn.fd >= 0) ::shutdown(it->second->conn.fd, SHUT_RDWR);
}

BulkPath::Counters BulkPath::counters() const {
  return {frames_out_.load(), bytes_out_.load(), frames_in_.load(), bytes_in_.load()};
}

void BulkPath::reap() {
  std::vector<std::unique_ptr<Out>> outs;
  std::vector<std::unique_ptr<In>> ins;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = closed_out_.begin(); it != closed_out_.end();) {
      if ((*it)->finished) {
        outs.push_back(std::move(*it));
        it = closed_out_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = in_.begin(); it != in_.end();) {
      if (it->second->finished) {
        ins.push_back(std::move(it->second));
        it = in_.erase(it);
      } else {
        ++it;
      }
    }
    // A failed connection stays in out_ (its peer's state is kFailed); its socket goes now.
    for (auto& [id, o] : out_)
      if (o->finished && o->thread.joinable()) {
        o->thread.join();
        std::lock_guard<std::mutex> out_lock(o->mu);
        o->conn.release();
      }
  }
  for (auto& o : outs) {
    o->thread.join();
    o->conn.release();
  }
  for (auto& i : ins) {
    i->thread.join();
    i->conn.release();
  }
}

void BulkPath::accept_loop() {
  block_sigpipe();
  while (!stopping_) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      return;  // shut down
    }
    tune(fd);
    reap();
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    auto in = std::make_unique<In>();
    in->link = next_link_++;
    in->conn.fd = fd;
    in->thread = std::thread([this, i = in.get()] { read_loop(*i); });
    in_[in->link] = std::move(in);
  }
}

void BulkPath::write_loop(Out& o) {
  block_sigpipe();
  std::string why;
  std::vector<char> current;
  bool have_current = false;
  auto connected = [&]() -> bool {
    auto fd = dial(o.host, o.port, opt_.connect_timeout);
    if (!fd) {
      why = fd.error();
      return false;
    }
    {
      std::lock_guard<std::mutex> lock(o.mu);
      o.conn.fd = fd.value();
      if (o.closing) ::shutdown(o.conn.fd, SHUT_RDWR);
    }
    if (ssl_client_) {
      o.conn.ssl = SSL_new(static_cast<SSL_CTX*>(ssl_client_));
      SSL_set_fd(o.conn.ssl, o.conn.fd);
      set_timeouts(o.conn.fd, opt_.connect_timeout);
      ERR_clear_error();
      if (SSL_connect(o.conn.ssl) != 1) {
        why = ssl_reason(("the TLS handshake with " + o.host + ":" + std::to_string(o.port) + " failed").c_str());
        return false;
      }
      set_timeouts(o.conn.fd, 0);
    }
    if (!o.first.empty()) {
      if (!write_frame(o.conn, o.first)) {
        why = "the connection closed before the first frame";
        return false;
      }
      frames_out_.fetch_add(1, std::memory_order_relaxed);
      bytes_out_.fetch_add(o.first.size(), std::memory_order_relaxed);
    }
    return true;
  };
  if (connected()) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(o.mu);
        o.cv.wait(lock, [&] { return o.closing || !o.queue.empty(); });
        if (o.closing) break;
        current = std::move(o.queue.front());
        o.queue.pop_front();
        have_current = true;
      }
      if (!write_frame(o.conn, current)) {
        why = std::string("a write failed: ") + (errno ? std::strerror(errno) : "the peer closed the connection");
        break;
      }
      have_current = false;
      frames_out_.fetch_add(1, std::memory_order_relaxed);
      bytes_out_.fetch_add(current.size(), std::memory_order_relaxed);
    }
  }
  BulkReturned back{o.peer, why, {}};
  bool closing = false;
  {
    std::lock_guard<std::mutex> lock(o.mu);
    closing = o.closing;
    o.failed = true;
    if (have_current) back.frames.push_back(std::move(current));
    for (auto& f : o.queue) back.frames.push_back(std::move(f));
    o.queue.clear();
  }
  if (!closing && !stopping_) tell(sink_, std::move(back));
  o.finished = true;
}

void BulkPath::read_loop(In& in) {
  block_sigpipe();
  std::string why = "closed by the peer";
  bool ok = true;
  if (ssl_server_) {
    in.conn.ssl = SSL_new(static_cast<SSL_CTX*>(ssl_server_));
    SSL_set_fd(in.conn.ssl, in.conn.fd);
    set_timeouts(in.conn.fd, opt_.connect_timeout);  // a stranger that says nothing does not hold a thread
    ERR_clear_error();
    ok = SSL_accept(in.conn.ssl) == 1;
    if (!ok) why = ssl_reason("the TLS handshake failed");
    else set_timeouts(in.conn.fd, 0);
  }
  while (ok && !stopping_) {
    char len_bytes[8];
    if (!read_all(in.conn, len_bytes, sizeof len_bytes)) break;
    uint64_t len = 0;
    for (int k = 0; k < 8; ++k) len |= static_cast<uint64_t>(static_cast<unsigned char>(len_bytes[k])) << (8 * k);
    if (len == 0 || len > opt_.max_frame_bytes) {
      why = "a frame of " + std::to_string(len) + " bytes announced (at most " +
            std::to_string(opt_.max_frame_bytes) + ")";
      break;
    }
    std::vector<char> bytes(len);
    if (!read_all(in.conn, bytes.data(), bytes.size())) {
      why = "closed in the middle of a frame (" + std::to_string(len) + " bytes announced)";
      break;
    }
    frames_in_.fetch_add(1, std::memory_order_relaxed);
    bytes_in_.fetch_add(len, std::memory_order_relaxed);
    tell(sink_, BulkFrame{in.link, std::move(bytes)});
  }
  if (!stopping_) tell(sink_, BulkLinkClosed{in.link, why});
  in.finished = true;
}

}  // namespace gwtf
