#include "apps/common/config_file.hpp"

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <sstream>

namespace gwtf::app {

struct ConfigSchema::Value {
  const toml::node& node;
};

namespace {

template <class T>
std::optional<std::string> read_integer(const toml::node& v, T& out, T lo, T hi) {
  const std::string expected = "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  auto x = v.value_exact<int64_t>();
  if (!x) return expected;
  if constexpr (std::is_unsigned_v<T>) {
    if (*x < 0 || static_cast<uint64_t>(*x) < lo || static_cast<uint64_t>(*x) > hi) return expected;
  } else {
    if (*x < static_cast<int64_t>(lo) || *x > static_cast<int64_t>(hi)) return expected;
  }
  out = static_cast<T>(*x);
  return std::nullopt;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

void ConfigSchema::add(const std::string& key, Setter set) {
  const auto dot = key.find('.');
  sections_[key.substr(0, dot)][key.substr(dot + 1)] = std::move(set);
}

void ConfigSchema::integer(const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
  add(key, [&out, lo, hi](const Value& w) { return read_integer(w.node, out, lo, hi); });
}
void ConfigSchema::integer(const std::string& key, uint64_t& out, uint64_t lo, uint64_t hi) {
  add(key, [&out, lo, hi](const Value& w) { return read_integer(w.node, out, lo, hi); });
}
void ConfigSchema::integer(const std::string& key, uint32_t& out, uint32_t lo, uint32_t hi) {
  add(key, [&out, lo, hi](const Value& w) { return read_integer(w.node, out, lo, hi); });
}
void ConfigSchema::integer(const std::string& key, int& out, int lo, int hi) {
  add(key, [&out, lo, hi](const Value& w) { return read_integer(w.node, out, lo, hi); });
}

void ConfigSchema::number(const std::string& key, double& out, double lo, double hi) {
  add(key, [&out, lo, hi](const Value& w) -> std::optional<std::string> {
    const toml::node& v = w.node;
    auto x = v.value<double>();  // an integer is a number too
    std::ostringstream expected;
    expected << "a number in " << lo << ".." << hi;
    if (!x || !(*x >= lo && *x <= hi)) return expected.str();
    out = *x;
    return std::nullopt;
  });
}

void ConfigSchema::text(const std::string& key, std::string& out, std::vector<std::string> choices) {
  add(key, [&out, choices](const Value& w) -> std::optional<std::string> {
    const toml::node& v = w.node;
    auto x = v.value_exact<std::string>();
    bool ok = x.has_value();
    if (ok && !choices.empty()) ok = std::find(choices.begin(), choices.end(), *x) != choices.end();
    if (!ok) return choices.empty() ? "a string" : "one of \"" + join(choices) + "\"";
    out = *x;
    return std::nullopt;
  });
}

void ConfigSchema::texts(const std::string& key, std::vector<std::string>& out, const std::string& what) {
  add(key, [&out, what](const Value& w) -> std::optional<std::string> {
    const toml::node& v = w.node;
    const auto* list = v.as_array();
    if (!list) return "a list of " + what;
    std::vector<std::string> got;
    for (const auto& e : *list) {
      auto x = e.value_exact<std::string>();
      if (!x) return "a list of " + what;
      got.push_back(*x);
    }
    out = std::move(got);
    return std::nullopt;
  });
}

void ConfigSchema::integers(const std::string& key, std::vector<uint32_t>& out, uint32_t lo, uint32_t hi,
                            const std::string& example) {
  add(key, [&out, lo, hi, example](const Value& w) -> std::optional<std::string> {
    const toml::node& v = w.node;
    const std::string expected = "a non-empty list of integers in " + std::to_string(lo) + ".." +
                                 std::to_string(hi) + ", e.g. " + example;
    const auto* list = v.as_array();
    if (!list || list->empty()) return expected;
    std::vector<uint32_t> got;
    for (const auto& e : *list) {
      uint32_t x = 0;
      if (read_integer(e, x, lo, hi)) return expected;
      got.push_back(x);
    }
    out = std::move(got);
    return std::nullopt;
  });
}

void ConfigSchema::boolean(const std::string& key, bool& out) {
  add(key, [&out](const Value& w) -> std::optional<std::string> {
    const toml::node& v = w.node;
    auto x = v.value_exact<bool>();
    if (!x) return std::string("true or false");
    out = *x;
    return std::nullopt;
  });
}

void ConfigSchema::flags(const std::string& section, CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    const auto& names = opt->get_lnames();
    if (names.empty() || names[0] == "help" || names[0] == "config") continue;
    std::string key = names[0];
    std::replace(key.begin(), key.end(), '-', '_');
    const std::string full = section + "." + key;
    add(full, [pending = pending_, opt, full](const Value& w) -> std::optional<std::string> {
      auto scalar = [](const toml::node& n) -> std::optional<std::string> {
        if (auto s = n.value_exact<std::string>()) return *s;
        if (auto b = n.value_exact<bool>()) return std::string(*b ? "true" : "false");
        if (auto i = n.value_exact<int64_t>()) return std::to_string(*i);
        if (auto d = n.value_exact<double>()) {  // the shortest text that reads back as the same double
          char buf[40];
          for (int precision = 15; precision <= 17; ++precision) {
            std::snprintf(buf, sizeof buf, "%.*g", precision, *d);
            if (std::strtod(buf, nullptr) == *d) break;
          }
          return std::string(buf);
        }
        return std::nullopt;
      };
      std::vector<std::string> values;
      if (const auto* list = w.node.as_array()) {
        for (const auto& e : *list) {
          auto v = scalar(e);
          if (!v) return std::string("a list of strings or numbers");
          values.push_back(*v);
        }
      } else if (auto v = scalar(w.node)) {
        values.push_back(*v);
      } else {
        return std::string("a string, number, boolean or a list of them");
      }
      (*pending)[full] = Pending{opt, std::move(values)};
      return std::nullopt;
    });
  }
}

Result<void*, std::string> ConfigSchema::apply_flags() const {
  for (const auto& [key, p] : *pending_) {
    if (p.option->count() > 0) continue;  // given on the command line: the flag wins
    try {
      p.option->add_result(p.values);
      p.option->run_callback();
    } catch (const CLI::Error& e) {
      return Err{path_ + ": key '" + key + "' (flag --" + p.option->get_lnames()[0] + "): " + e.what()};
    }
  }
  return nullptr;
}

std::vector<std::string> ConfigSchema::keys() const {
  std::vector<std::string> k;
  for (const auto& [section, keys] : sections_)
    for (const auto& [name, set] : keys) k.push_back(section + "." + name);
  return k;
}

Result<void*, std::string> ConfigSchema::load(const std::string& path) {
  path_ = path;
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Err{path + ": " + std::string(e.description()) + " at " + where.str()};
  }
  std::vector<std::string> known;
  for (const auto& [s, keys] : sections_) known.push_back(s);
  for (const auto& [section, node] : root) {
    const std::string name(section.str());
    const auto* table = node.as_table();
    if (!table)
      return Err{path + ": key '" + name + "' is outside any section; keys belong in one of [" + join(known) + "]"};
    auto keys = sections_.find(name);
    if (keys == sections_.end())
      return Err{path + ": unknown section [" + name + "] (known here: " + join(known) + ")"};
    for (const auto& [key, value] : *table) {
      const std::string k(key.str()), full = name + "." + k;
      auto set = keys->second.find(k);
      if (set == keys->second.end()) {
        std::vector<std::string> names;
        for (const auto& [n, s] : keys->second) names.push_back(n);
        return Err{path + ": unknown key '" + full + "' (known in [" + name + "]: " + join(names) + ")"};
      }
      if (auto expected = set->second(Value{value})) return Err{path + ": key '" + full + "' must be " + *expected};
    }
  }
  return nullptr;
}

Result<void*, std::string> ConfigSchema::load_from_args(int argc, char** argv) {
  const std::string path = config_path(argc, argv);
  if (path.empty()) return nullptr;
  return load(path);
}

std::string config_path(int argc, char** argv) {
  std::string path;
  for (int k = 1; k < argc; ++k) {
    if (std::strcmp(argv[k], "--config") == 0 && k + 1 < argc) path = argv[k + 1];
    else if (std::strncmp(argv[k], "--config=", 9) == 0) path = argv[k] + 9;
  }
  return path;
}

}  // namespace gwtf::app
