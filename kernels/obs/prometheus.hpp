// Prometheus' text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then one `name{labels} value` line per
// sample. Label values are escaped (backslash, quote, newline) so peer-supplied text cannot forge a line.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace gwtf::obs {

using Labels = std::vector<std::pair<std::string, std::string>>;

class PromText {
 public:
  // A metric family: its help line and type ("counter", "gauge", "summary"); samples follow until the next family.
  void family(const std::string& name, const std::string& type, const std::string& help);
  void sample(const std::string& name, double value, const Labels& labels = {});
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

std::string escape_label(const std::string& v);
std::string format_value(double v);  // NaN, +Inf, -Inf as Prometheus writes them; integers without exponent

}  // namespace gwtf::obs
