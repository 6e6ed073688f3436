// One TOML file per run, read the same way by every binary: a binary declares the keys it knows (section.name,
// each with the form it expects) and the file is checked against them. An unknown section or key, or a value of
// the wrong form, is an error naming the file, the key and the expected form; flags override the file (callers
// load the file first, then parse the flags over the same variables).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/base/result.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace gwtf::app {

class ConfigSchema {
 public:
  void integer(const std::string& key, int64_t& out, int64_t lo, int64_t hi);
  void integer(const std::string& key, uint64_t& out, uint64_t lo, uint64_t hi);
  void integer(const std::string& key, uint32_t& out, uint32_t lo, uint32_t hi);
  void integer(const std::string& key, int& out, int lo, int hi);
  void number(const std::string& key, double& out, double lo, double hi);
  void text(const std::string& key, std::string& out, std::vector<std::string> choices = {});
  void texts(const std::string& key, std::vector<std::string>& out, const std::string& what);
  void integers(const std::string& key, std::vector<uint32_t>& out, uint32_t lo, uint32_t hi, const std::string& example);
  void boolean(const std::string& key, bool& out);
  // Every long flag of `app` as a key of `section` (--microbatch-size: section.microbatch_size), for binaries
  // whose settings are their flags. The values are checked and applied by apply_flags() after the command line
  // is parsed — by the flags' own checks, to the flags the command line did not give.
  void flags(const std::string& section, CLI::App& app);
  Result<void*, std::string> apply_flags() const;

  Result<void*, std::string> load(const std::string& path);
  // load(config_path(argc, argv)) when the command line names a file; nothing otherwise.
  Result<void*, std::string> load_from_args(int argc, char** argv);
  std::vector<std::string> keys() const;  // section.name, sorted

 private:
  // Reads a value into its variable; on a wrong form returns the expected form.
  struct Value;  // a TOML value (config_file.cpp)
  using Setter = std::function<std::optional<std::string>(const Value&)>;
  void add(const std::string& key, Setter set);
  std::map<std::string, std::map<std::string, Setter>> sections_;
  struct Pending {
    CLI::Option* option;
    std::vector<std::string> values;
  };
  std::shared_ptr<std::map<std::string, Pending>> pending_ = std::make_shared<std::map<std::string, Pending>>();
  std::string path_;
};

// The value of --config FILE or --config=FILE in argv (empty: none), read before the flags are parsed so that the
// flags override the file.
std::string config_path(int argc, char** argv);

}  // namespace gwtf::app
