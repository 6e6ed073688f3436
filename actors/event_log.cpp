#include "actors/event_log.hpp"

#include <spdlog/spdlog.h>

namespace gwtf {

EventLog::EventLog(const std::string& path) {
  if (path.empty()) return;
  out_.open(path, std::ios::app);
  if (!out_) spdlog::error("cannot write the event log {}: events are not recorded", path);
}

void EventLog::write(const nlohmann::json& line) {
  if (!out_.is_open()) return;
  out_ << line.dump() << '\n';
  out_.flush();  // a killed node's log must hold everything up to its death
}

}  // namespace gwtf
