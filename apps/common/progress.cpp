#include "apps/common/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace gwtf::app {

ProgressLine::ProgressLine(std::string label, double delay, double interval)
    : label_(std::move(label)), delay_(delay), interval_(interval), tty_(isatty(STDERR_FILENO) != 0) {}

ProgressLine::~ProgressLine() {
  if (shown_ && tty_) std::fputc('\n', stderr);
}

double ProgressLine::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void ProgressLine::update(const std::string& text) {
  const double t = elapsed();
  if (t < delay_ || t - last_ < interval_) return;
  last_ = t;
  shown_ = true;
  std::fprintf(stderr, tty_ ? "\r\033[K%s: %s" : "%s: %s\n", label_.c_str(), text.c_str());
  std::fflush(stderr);
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || std::isinf(seconds)) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

}  // namespace gwtf::app
