// example-trainer: a custom trainer composed from gwtf's actors and its own (docs/custom-trainer.md).
//
// It runs a whole swarm inside one process (actors/local_swarm: one CAF actor system per node, talking over
// loopback exactly as gwtf-node processes do) on the LLaMa-like `tiny` preset, and adds an actor of its own: an evaluation actor that
// observes the data holders' events and keeps a smoothed loss and perplexity, writes them as CSV, and stops the
// swarm when the run is over. Swap in your own model preset, layout, data or observers.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <set>

#include "actors/local_swarm.hpp"
#include "apps/common/logging.hpp"
#include "apps/common/run_config.hpp"

namespace {

// The custom actor: it sees every event of the nodes it observes. It smooths the holders' iteration losses and
// tells main when every node has exited.
struct EvalState {
  size_t nodes = 0;
  std::set<uint64_t> exited;
  double ema = 0;
  int steps = 0;
  std::ofstream csv;
  std::promise<void> done;
};

caf::behavior eval_actor(caf::event_based_actor* self, std::shared_ptr<EvalState> st) {
  return {
      [=](gwtf::NodeEvent& e) {
        const auto j = nlohmann::json::parse(e.json);
        const std::string event = j.value("event", "");
        if (event == "train" && j.value("kind", "") == "stepped" && j.value("value", 0.0) > 0) {
          const double loss = j.value("value", 0.0);
          const auto iter = j.value("iter", uint64_t{0});
          if (st->steps > 0 && iter < static_cast<uint64_t>(st->steps)) return;  // the other holder's report
          st->ema = st->steps == 0 ? loss : 0.8 * st->ema + 0.2 * loss;
          ++st->steps;
          std::printf("iteration %3llu  loss %.4f  smoothed %.4f  perplexity %.1f\n",
                      static_cast<unsigned long long>(iter + 1), loss, st->ema, std::exp(st->ema));
          st->csv << iter << ',' << loss << ',' << st->ema << '\n';
        }
        if (event == "exit") {
          st->exited.insert(e.node);
          if (st->exited.size() == st->nodes) {
            st->done.set_value();
            self->quit();
          }
        }
      },
  };
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"example-trainer — a swarm in one process with a custom evaluation actor (docs/custom-trainer.md)"};
  gwtf::app::RunConfig run;
  run.arch = "llama";  // a different model than the demo's GPT
  run.iterations = 20;
  run.holders = 1;
  run.replicas = {2, 2};
  run.microbatch_size = 2;
  run.seq_len = 32;
  std::string csv = "example-trainer.csv";
  run.add_flags(app);
  app.add_option("--csv", csv, "Where the evaluation actor writes iteration,loss,smoothed")->capture_default_str();
  gwtf::app::LogOptions log;
  gwtf::app::add_log_flags(app, log);
  // --config FILE: the run's [model], [train], [swarm] and [trainer] csv; flags override it.
  gwtf::app::ConfigSchema schema;
  run.declare(schema);
  schema.text("trainer.csv", csv);
  std::string config_file;
  app.add_option("--config", config_file, "TOML file: [model], [train], [swarm] (docs/config.md) and [trainer] csv");
  if (auto ok = schema.load_from_args(argc, argv); !ok) {
    std::fprintf(stderr, "example-trainer: %s\n", ok.error().c_str());
    return 2;
  }
  CLI11_PARSE(app, argc, argv);
  gwtf::app::setup_logging(log, "example-trainer");
  if (auto ok = run.validate(); !ok) {
    spdlog::error("{}", ok.error());
    return 2;
  }
  gwtf::app::set_compute_threads(1);
  auto corpus = gwtf::app::load_corpus(run);
  if (!corpus) {
    spdlog::error("{}", corpus.error());
    return 2;
  }

  // Our actor, in an actor system of its own.
  auto eval = std::make_shared<EvalState>();
  eval->nodes = run.layout().founders();
  eval->csv.open(csv);
  eval->csv << "iteration,loss,smoothed\n";
  auto finished = eval->done.get_future();
  gwtf::SystemConfig eval_config;
  caf::actor_system eval_system{eval_config};
  auto observer = eval_system.spawn(eval_actor, eval);

  // gwtf's actors: one node per actor system in this process; the first founds the swarm, the others join it.
  gwtf::LocalSwarm swarm;
  swarm.forward_to = observer;
  for (size_t k = 0; k < eval->nodes; ++k) {
    gwtf::NodeOptions opt = gwtf::app::node_options(run, corpus->train);
    opt.id = k + 1;
    opt.role = k < run.holders ? gwtf::train::Role::kData : gwtf::train::Role::kRelay;
    opt.linger = 1;
    if (auto started = swarm.start(opt); !started) {
      spdlog::error("{}", started.error());
      return 1;
    }
  }
  if (finished.wait_for(std::chrono::minutes(10)) != std::future_status::ready) {
    spdlog::error("the swarm did not finish within 10 minutes");
    return 1;
  }
  std::printf("done: %d iterations, smoothed loss %.4f; CSV in %s\n", eval->steps, eval->ema, csv.c_str());
  return eval->steps == run.iterations ? 0 : 1;
}
