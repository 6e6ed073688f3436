#include "apps/common/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace gwtf::app {

namespace {
constexpr const char* kLevels = "trace|debug|info|warn|error|critical|off";

std::string resolve_level(const LogOptions& options) {
  if (!options.level.empty()) return options.level;
  if (const char* env = std::getenv("GWTF_LOG_LEVEL"); env && *env) return env;
  return "info";
}
}  // namespace

void add_log_flags(CLI::App& app, LogOptions& options) {
  app.add_option("--log-level", options.level,
                 std::string("Log verbosity: ") + kLevels + " (default info; env GWTF_LOG_LEVEL)");
}

void setup_logging(const LogOptions& options, std::string_view program) {
  const std::string name = resolve_level(options);
  const auto level = spdlog::level::from_str(name);
  // from_str maps anything unknown to "off": accept "off" only when it was asked for.
  if (level == spdlog::level::off && name != "off") {
    throw CLI::ValidationError("--log-level", "unknown level '" + name + "', expected one of " + kLevels);
  }
  auto logger = spdlog::stderr_color_mt(std::string(program));
  logger->set_pattern("%H:%M:%S.%e %L %n: %v");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace gwtf::app
