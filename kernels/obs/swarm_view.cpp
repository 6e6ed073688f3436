#include "kernels/obs/swarm_view.hpp"

#include <map>

namespace gwtf::obs {

nlohmann::json swarm_view(const nlohmann::json& self, const std::map<uint64_t, nlohmann::json>& fetched) {
  const uint64_t me = self.value("id", uint64_t{0});
  nlohmann::json view{{"served_by", me}, {"recent", self.value("recent", nlohmann::json::array())}};
  auto& nodes = view["nodes"] = nlohmann::json::array();
  std::map<int, nlohmann::json> stages;  // stage -> {live, ready, members}
  const auto members = self.value("members", nlohmann::json::array());
  for (const auto& m : members) {
    const uint64_t id = m.value("id", uint64_t{0});
    nlohmann::json node;
    if (id == me) node = self;
    else if (auto f = fetched.find(id); f != fetched.end() && f->second.is_object()) node = f->second;
    else node = {{"id", id}, {"stage", m.value("stage", 0)}, {"unreachable", m.value("status_port", 0) != 0},
                 {"no_status", m.value("status_port", 0) == 0}};
    node["alive"] = m.value("alive", true);
    node["ready"] = m.value("ready", true);
    node["host"] = m.value("host", std::string());
    node.erase("members");  // every node repeats the roster: the view keeps the serving node's
    node.erase("recent");
    auto& st = stages[m.value("stage", 0)];
    if (st.is_null()) st = {{"stage", m.value("stage", 0)}, {"live", 0}, {"ready", 0}};
    if (node["alive"].get<bool>()) st["live"] = st["live"].get<int>() + 1;
    if (node["alive"].get<bool>() && node["ready"].get<bool>()) st["ready"] = st["ready"].get<int>() + 1;
    nodes.push_back(std::move(node));
  }
  auto& list = view["stages"] = nlohmann::json::array();
  for (auto& [s, st] : stages) list.push_back(std::move(st));
  // The training curve comes from the data holders (they compute the loss); the one furthest along is shown.
  const nlohmann::json* best = nullptr;
  for (const auto& n : nodes)
    if (n.value("stage", -1) == 0 && n.contains("series") &&
        (!best || n.value("iteration", 0) > best->value("iteration", 0)))
      best = &n;
  view["series"] = best ? (*best)["series"] : nlohmann::json::array();
  view["iteration"] = best ? best->value("iteration", 0) : 0;
  return view;
}

}  // namespace gwtf::obs
