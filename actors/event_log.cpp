#include "actors/event_log.hpp"

#include <spdlog/spdlog.h>

namespace gwtf {

EventLog::EventLog(const std::string& path, uint64_t node) : node_(node) {
  if (path.empty()) return;
  out_.open(path, std::ios::app);
  if (!out_) spdlog::error("cannot write the event log {}: events are not recorded", path);
}

void EventLog::write(double t, const std::string& event, nlohmann::json fields) {
  if (!out_.is_open()) return;
  fields["t"] = t;
  fields["node"] = node_;
  fields["event"] = event;
  out_ << fields.dump() << '\n';
  out_.flush();  // a killed node's log must hold everything up to its death
}

}  // namespace gwtf
