// A node's JSON-lines event log: one object per line with the node's id and the seconds since it started.
// `gwtf demo` reads these to draw its progress line and its report.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace gwtf {

class EventLog {
 public:
  explicit EventLog(const std::string& path, uint64_t node);  // empty path: nothing is written
  void write(double t, const std::string& event, nlohmann::json fields = nlohmann::json::object());

 private:
  std::ofstream out_;
  uint64_t node_;
};

}  // namespace gwtf
