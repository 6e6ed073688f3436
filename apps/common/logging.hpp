// The logging convention every gwtf binary shares:
//   --log-level trace|debug|info|warn|error|critical|off   (default: info, or $GWTF_LOG_LEVEL when set)
// Lines go to stderr as "HH:MM:SS.mmm L program: message", so stdout stays free for results (JSON, tables).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>

namespace gwtf::app {

struct LogOptions {
  std::string level;  // empty: $GWTF_LOG_LEVEL, else "info"
};

void add_log_flags(CLI::App& app, LogOptions& options);

// Throws CLI::ValidationError for an unknown level (CLI11 reports it like any bad flag).
void setup_logging(const LogOptions& options, std::string_view program);

}  // namespace gwtf::app
