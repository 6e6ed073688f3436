// A node's JSON-lines event log: one object per line (the node actor adds its id, the event and the seconds since
// it started).
// `gwtf demo` reads these to draw its progress line and its report.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace gwtf {

class EventLog {
 public:
  explicit EventLog(const std::string& path);  // empty path: nothing is written
  void write(const nlohmann::json& line);

 private:
  std::ofstream out_;
};

}  // namespace gwtf
