// A progress line on stderr for long work (the simulator, transfers): silent for the first `delay` seconds (short
// runs print nothing), then at most one update per `interval`; on a terminal it rewrites one line, elsewhere
// (logs, CI) it prints lines. stdout stays free for results.
#pragma once

#include <chrono>
#include <string>

namespace gwtf::app {

class ProgressLine {
 public:
  explicit ProgressLine(std::string label, double delay = 1.0, double interval = 0.5);
  ~ProgressLine();  // ends the line it rewrote
  void update(const std::string& text);
  double elapsed() const;

 private:
  std::string label_;
  double delay_, interval_, last_ = -1e9;
  bool tty_, shown_ = false;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// "1m05s", "12s": a duration for ETAs.
std::string format_duration(double seconds);

}  // namespace gwtf::app
