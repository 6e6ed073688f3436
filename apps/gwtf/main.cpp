// gwtf: the main job. `gwtf demo` will run a local churn-tolerant training swarm (the actor runtime issue);
// today it reports the build honestly. Every subcommand shares the --log-level convention.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "apps/common/logging.hpp"
#include "apps/gwtf/build_info.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gwtf — churn-tolerant decentralized training of LLMs (GWTF, arXiv 2509.21221)"};
  app.require_subcommand(1);
  gwtf::app::LogOptions log;
  gwtf::app::add_log_flags(app, log);
  int threads = 1;
  app.add_option("--threads", threads, "LibTorch intra-op threads (default 1: best on 2-core hosts)")
      ->check(CLI::Range(1, 256));

  auto* demo = app.add_subcommand("demo", "Run the local swarm demo (today: print the build configuration)");
  auto* info = app.add_subcommand("info", "Print the build configuration: library versions, BLAS, threads");

  CLI11_PARSE(app, argc, argv);
  try {
    gwtf::app::setup_logging(log, "gwtf");
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
  at::set_num_threads(threads);

  std::cout << gwtf::app::describe_build();
  if (demo->parsed()) {
    std::cout << "\ngwtf demo: the local churn-tolerant training swarm arrives with the actor runtime;\n"
                 "this build has the wire format and the build above, and trains nothing yet.\n";
  }
  (void)info;
  return 0;
}
