// The bulk data path: boundary tensors and state chunks travel on TCP connections of their own, beside CAF's.
//
// Why (docs/runtime.md, "The bulk data path", measured by bench/wire): CAF 0.17 carries a 4 MiB frame at 0.6-0.7 of
// raw TCP (it materialises every message once more on each side), and it has one connection per pair of nodes, so
// a heartbeat or a flow message waits behind every tensor queued before it. Here a frame is written from the
// encoder's buffer and read into the buffer the decoder takes, and control keeps CAF's connection to itself.
//
// One direction per connection: a node opens one connection to each peer it sends bulk frames to and writes
// length-prefixed frames on it from one writer thread; each incoming connection has a reader thread that hands
// its frames to the node actor as BulkFrame messages. The frames are the same Cap'n Proto envelopes (schema/) as on
// CAF, decoded and checked by the node actor. In a TLS swarm every connection is mutual TLS 1.3 with the swarm's CA
// (the files CAF's OpenSSL module reads), and the first frame on it is the sender's proof of identity.
//
// It decides nothing: a connection that fails (connect, handshake, write) hands the frames it still held back to
// the node actor (BulkReturned), which sends them on CAF from then on; the receiver drops a frame cut short. The
// protocol above tolerates the reordering between the two paths (as the simulator's random delays do).
#pragma once

#include <caf/actor_addr.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actors/peer_auth.hpp"
#include "kernels/base/result.hpp"

namespace gwtf {

// A frame that came on incoming bulk connection `link` (numbered from 1 per BulkPath).
struct BulkFrame {
  uint64_t link = 0;
  std::vector<char> bytes;
};
// Incoming connection `link` ended (the peer closed it, or sent something that is not a frame: `why`).
struct BulkLinkClosed {
  uint64_t link = 0;
  std::string why;
};
// The connection to `peer` failed; `frames` are those it had not written whole (send them another way).
struct BulkReturned {
  uint64_t peer = 0;
  std::string why;
  std::vector<std::vector<char>> frames;
};

// glibc serves an allocation of 4 MiB and more from a fresh mmap until a free of such a block raises its threshold;
// frames allocated on one thread and freed on another (encoder -> writer, reader -> node actor) keep paying a page
// fault per 4 KiB of every frame. This keeps blocks up to 64 MiB in the heap (bench/wire: bulk / raw TCP 0.69-0.76
// -> 0.86). BulkPath::open calls it; a benchmark calls it in every process it compares.
void keep_frames_in_heap();

class BulkPath {
 public:
  struct Options {
    std::string host = "127.0.0.1";  // the address to listen on
    uint16_t port = 0;               // 0: any free port
    std::shared_ptr<const SwarmTls> tls;  // null: plain TCP
    size_t max_frame_bytes = size_t{1} << 30;  // a longer length prefix closes the connection
    double connect_timeout = 5;  // seconds for a connect and a TLS handshake, each way
  };
  // Listens and serves until destroyed; its messages go to `sink` (a weak handle: a dead sink gets nothing).
  static Result<std::unique_ptr<BulkPath>, std::string> open(caf::actor_addr sink, Options options);
  ~BulkPath();  // closes every connection and joins every thread

  uint16_t port() const { return port_; }

  enum class Peer { kNone, kOpen, kFailed };
  Peer peer(uint64_t id) const;
  // Opens the connection to peer `id` at host:port in the background; `first` (the proof of identity in a TLS
  // swarm, else empty) goes before every other frame.
  void connect(uint64_t id, const std::string& host, uint16_t port, std::vector<char> first);
  // Queues a frame to a peer connected with connect(). False, with the frame untouched, when the connection to it
  // failed or was never opened.
  bool send(uint64_t id, std::vector<char>& frame);
  // Closes the connection to `id` (the peer is gone); what it still held is dropped. connect() may open a new one.
  void close_peer(uint64_t id);
  // Closes incoming connection `link` (its sender is gone, or sent what it must not).
  void close_link(uint64_t link);

  struct Counters {
    uint64_t frames_out = 0, bytes_out = 0, frames_in = 0, bytes_in = 0;
  };
  Counters counters() const;

 private:
  struct Out;
  struct In;
  BulkPath() = default;
  void accept_loop();
  void write_loop(Out& out);
  void read_loop(In& in);
  void reap();  // joins the threads of connections that ended

  Options opt_;
  caf::actor_addr sink_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  void* ssl_server_ = nullptr;  // SSL_CTX*, TLS swarms only
  void* ssl_client_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::unique_ptr<Out>> out_;  // by peer id
  std::map<uint64_t, std::unique_ptr<In>> in_;    // by link
  std::vector<std::unique_ptr<Out>> closed_out_;  // closed by close_peer, their threads not joined yet
  uint64_t next_link_ = 1;
  std::atomic<uint64_t> frames_out_{0}, bytes_out_{0}, frames_in_{0}, bytes_in_{0};
};

}  // namespace gwtf

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::BulkFrame)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::BulkLinkClosed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::BulkReturned)
