#include "kernels/obs/prometheus.hpp"

#include <cmath>
#include <cstdio>

namespace gwtf::obs {

std::string escape_label(const std::string& v) {
  std::string s;
  s.reserve(v.size());
  for (char c : v) {
    if (c == '\\') s += "\\\\";
    else if (c == '"') s += "\\\"";
    else if (c == '\n') s += "\\n";
    else s += c;
  }
  return s;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void PromText::family(const std::string& name, const std::string& type, const std::string& help) {
  out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void PromText::sample(const std::string& name, double value, const Labels& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t k = 0; k < labels.size(); ++k)
      out_ += (k ? "," : "") + labels[k].first + "=\"" + escape_label(labels[k].second) + "\"";
    out_ += '}';
  }
  out_ += ' ' + format_value(value) + '\n';
}

}  // namespace gwtf::obs
