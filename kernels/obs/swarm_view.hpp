// The swarm as one node shows it on its page: its own view (obs::NodeStatus::to_json) merged with what the other
// members' status servers answered. Members that did not answer appear with what the roster knows of them, so a
// silent or unreachable node is visible, not missing. Pure: the fetching is the status server's.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>

namespace gwtf::obs {

// `self`: this node's to_json(); `fetched`: member id -> that member's to_json() (absent: it did not answer).
nlohmann::json swarm_view(const nlohmann::json& self, const std::map<uint64_t, nlohmann::json>& fetched);

}  // namespace gwtf::obs
