// A node's HTTP status server (cpp-httplib, its own threads): what people who run a swarm look at.
//   /metrics     Prometheus text: iteration, loss, throughput, flows, peers per stage, traffic, recoveries, ...
//   /api/node    this node as JSON (obs::NodeStatus::to_json)
//   /api/swarm   the whole swarm: this node asks every member's /api/node (so a browser reaches one node only)
//   /            the live swarm page (stages, replicas, flows and their costs, loss and throughput, churn)
// The node actor writes its status into a StatusBoard; the server only reads it, under the board's lock.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "kernels/base/result.hpp"
#include "kernels/obs/node_status.hpp"

namespace httplib {
class Server;
}

namespace gwtf {

struct StatusBoard {
  std::mutex mu;
  obs::NodeStatus status;
};

class StatusServer {
 public:
  // Listens on host:port (0: any free port) and serves in the background until destroyed.
  static Result<std::unique_ptr<StatusServer>, std::string> start(const std::string& host, uint16_t port,
                                                                  std::shared_ptr<StatusBoard> board);
  ~StatusServer();
  uint16_t port() const { return port_; }

 private:
  StatusServer() = default;
  std::shared_ptr<StatusBoard> board_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  uint16_t port_ = 0;
};

// The swarm page (actors/swarm_page.html, compiled in).
extern const char* const kSwarmPageHtml;

}  // namespace gwtf
