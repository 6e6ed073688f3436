#include "actors/status_server.hpp"

#include <httplib.h>

#include <chrono>
#include <algorithm>
#include <future>
#include <map>
#include <vector>

#include "kernels/obs/swarm_view.hpp"

namespace gwtf {

namespace {

// A member's /api/node, or nothing when it does not answer in time (a hung member must not hang the page).
std::optional<nlohmann::json> fetch_node(const std::string& host, uint16_t port) {
  httplib::Client client(host, port);
  client.set_connection_timeout(0, 300000);
  client.set_read_timeout(1, 0);
  auto res = client.Get("/api/node");
  if (!res || res->status != 200) return std::nullopt;
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

nlohmann::json swarm(StatusBoard& board) {
  nlohmann::json self;
  {
    std::lock_guard<std::mutex> lock(board.mu);
    self = board.status.to_json();
  }
  const uint64_t me = self.value("id", uint64_t{0});
  struct Target {
    uint64_t id;
    std::string host;
    uint16_t port;
  };
  std::vector<Target> targets;
  for (const auto& m : self.value("members", nlohmann::json::array())) {
    const uint64_t id = m.value("id", uint64_t{0});
    const uint16_t port = m.value("status_port", uint16_t{0});
    if (id == me || port == 0 || !m.value("alive", true)) continue;
    targets.push_back({id, m.value("host", std::string()), port});
  }
  // In parallel, a bounded number at a time (a large swarm must not cost a thread per member per page poll).
  constexpr size_t kParallel = 16;
  std::map<uint64_t, nlohmann::json> fetched;
  for (size_t k = 0; k < targets.size(); k += kParallel) {
    std::vector<std::pair<uint64_t, std::future<std::optional<nlohmann::json>>>> batch;
    for (size_t j = k; j < std::min(targets.size(), k + kParallel); ++j)
      batch.emplace_back(targets[j].id, std::async(std::launch::async, fetch_node, targets[j].host, targets[j].port));
    for (auto& [id, f] : batch)
      if (auto j = f.get()) fetched.emplace(id, std::move(*j));
  }
  return obs::swarm_view(self, fetched);
}

}  // namespace

Result<std::unique_ptr<StatusServer>, std::string> StatusServer::start(const std::string& host, uint16_t port,
                                                                       std::shared_ptr<StatusBoard> board) {
  std::unique_ptr<StatusServer> s(new StatusServer);
  s->board_ = std::move(board);
  s->http_ = std::make_unique<httplib::Server>();
  auto& http = *s->http_;
  // httplib's default adds SO_REUSEPORT: a second node on the same port would share it silently. Only REUSEADDR.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
  });
  StatusBoard* b = s->board_.get();
  http.Get("/metrics", [b](const httplib::Request&, httplib::Response& res) {
    std::string text;
    {
      std::lock_guard<std::mutex> lock(b->mu);
      text = b->status.prometheus();
    }
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/api/node", [b](const httplib::Request&, httplib::Response& res) {
    std::string text;
    {
      std::lock_guard<std::mutex> lock(b->mu);
      text = b->status.to_json().dump();
    }
    res.set_content(text, "application/json");
  });
  http.Get("/api/swarm", [b](const httplib::Request&, httplib::Response& res) {
    res.set_content(swarm(*b).dump(), "application/json");
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kSwarmPageHtml, "text/html; charset=utf-8");
  });
  const int bound = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0)
    return Err{"cannot serve the status page on " + host + ":" + std::to_string(port) +
               " (address in use or not local?); choose another with --http HOST:PORT"};
  s->port_ = static_cast<uint16_t>(bound);
  s->thread_ = std::thread([&http] { http.listen_after_bind(); });
  // stop() is a no-op until the server runs: wait for it, or a quick destruction would wait forever.
  for (int k = 0; k < 2000 && !http.is_running(); ++k) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return s;
}

StatusServer::~StatusServer() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace gwtf
