// runtime_bench: what the actor runtime costs, as ratios measured in one run (the machines are shared and noisy).
//  1. Time per iteration of the actor pipeline (one process, one replica per stage, actors/local_swarm) over the
//     reference trainer's (`gwtf train-local`) on the same work. Target <= 1.05.
//  2. Crash-to-rerouted latency (a relay's actor killed -> the first microbatch redone elsewhere) over the
//     configured detection timeout for a hung peer (--peer-timeout).
//  3. Tensor goodput through the runtime's bulk data path (and CAF's middleman) vs raw TCP on loopback, two
//     processes, and a heartbeat's round trip beside a tensor stream (bench/wire/goodput.hpp; docs/wire.md).
//     Target >= 0.7.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <sys/resource.h>
#include <thread>

#include "actors/local_swarm.hpp"
#include "bench/wire/goodput.hpp"
#include "apps/common/run_config.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// CPU seconds (user + system) this process has used so far, all threads.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

std::vector<double> stepped_times(const gwtf::SwarmEvents& events, uint64_t holder) {
  std::vector<double> t;
  for (const auto& e : events.of(holder))
    if (gwtf::is_event(e, "train", "stepped")) t.push_back(e.value("t", 0.0));
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (auto served = gwtf::bench::serve_if_asked(argc, argv)) return *served;  // the goodput's receiving side
  CLI::App app{"runtime_bench — the actor runtime against the reference trainer, as ratios"};
  gwtf::app::RunConfig run;
  run.iterations = 20;
  run.holders = 1;
  run.replicas = {1, 1, 1};
  double tick = gwtf::NodeOptions{}.tick;
  bool bulk_path = gwtf::NodeOptions{}.bulk_path;
  run.add_flags(app);
  app.add_option("--tick", tick, "Seconds between the protocol's ticks on every node")->capture_default_str();
  app.add_option("--bulk-path", bulk_path, "Tensors on the bulk data path (as gwtf-node by default), else on CAF")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  gwtf::app::set_compute_threads(1);  // the reference and every node alike
  auto corpus = gwtf::app::load_corpus(run);
  if (!corpus) {
    std::fprintf(stderr, "%s\n", corpus.error().c_str());
    return 2;
  }

  // 1. The same work: the reference trainer, then the actor pipeline.
  const double cpu0 = cpu_seconds();
  auto ref = gwtf::model::train_local(run.reference_options(), *corpus);
  const double ref_cpu = (cpu_seconds() - cpu0) / static_cast<double>(run.iterations);
  if (!ref) {
    std::fprintf(stderr, "%s\n", ref.error().c_str());
    return 1;
  }
  const double ref_per_iter = ref->seconds / static_cast<double>(run.iterations);
  // Every founder of `c`'s layout, node 1 the data holder.
  auto start_all = [&](gwtf::LocalSwarm& swarm, const gwtf::app::RunConfig& c) {
    for (uint64_t id = 1; id <= c.layout().founders(); ++id) {
      auto opt = gwtf::app::node_options(c, corpus->train);
      opt.id = id;
      opt.role = id == 1 ? gwtf::train::Role::kData : gwtf::train::Role::kRelay;
      opt.linger = 0.5;
      opt.tick = tick;
      opt.bulk_path = bulk_path;
      if (!swarm.start(opt)) return false;
    }
    return true;
  };
  double pipe_per_iter = 0, pipe_cpu = 0;
  {
    const double cpu1 = cpu_seconds();
    gwtf::LocalSwarm swarm;
    if (!start_all(swarm, run)) return 1;
    if (!swarm.wait_all_exited(600s)) {
      std::fprintf(stderr, "the pipeline did not finish\n");
      return 1;
    }
    const auto t = stepped_times(*swarm.events, 1);
    if (t.size() < 2) return 1;
    pipe_per_iter = (t.back() - t.front()) / static_cast<double>(t.size() - 1);
    pipe_cpu = (cpu_seconds() - cpu1) / static_cast<double>(run.iterations);  // start-up and linger included
  }

  // 2. Crash to reroute: 2 replicas per stage, a relay's actor killed while iteration 3 is under way.
  auto churn = run;
  churn.replicas = {2, 2, 2};
  double detected = -1, rerouted = -1;
  const double peer_timeout = 4;
  {
    gwtf::LocalSwarm swarm;
    if (!start_all(swarm, churn)) return 1;
    // Killed as soon as it has work of iteration 3 in its hands (its forward of some microbatch was acknowledged).
    const uint64_t victim = 4;
    swarm.events->wait([](const auto& all) {
      auto it = all.find(1);
      int stepped = 0;
      if (it != all.end())
        for (const auto& e : it->second) stepped += gwtf::is_event(e, "train", "stepped");
      return stepped >= 3;
    }, 600s);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(pipe_per_iter * 300)));
    const auto killed = std::chrono::steady_clock::now();
    auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count(); };
    swarm.kill(victim);
    auto seen = [&](const char* event, const char* kind) {
      return [=](const auto& all) {
        for (const auto& [id, list] : all)
          for (const auto& e : list)
            if (gwtf::is_event(e, event, kind) && e.value("peer", uint64_t{0}) == victim) return true;
        return false;
      };
    };
    if (swarm.events->wait(seen("peer_down", nullptr), 30s)) detected = since();
    if (swarm.events->wait(seen("train", "redo"), 10s)) rerouted = since();
    swarm.wait_all_exited(600s);
  }
  std::printf("runtime_bench: %s %s, %lld iterations x %u microbatches x %lld x %lld tokens, relay stages %zu\n",
              run.arch.c_str(), run.preset.c_str(), static_cast<long long>(run.iterations), run.microbatches,
              static_cast<long long>(run.microbatch_size), static_cast<long long>(run.seq_len), run.replicas.size());
  std::printf("  reference trainer          %8.1f ms/iteration\n", ref_per_iter * 1e3);
  std::printf("  actor pipeline (1/stage)   %8.1f ms/iteration\n", pipe_per_iter * 1e3);
  std::printf("  pipeline / reference       %8.2f   (target <= 1.05)\n", pipe_per_iter / ref_per_iter);
  std::printf("  CPU per iteration          %8.1f ms reference, %.1f ms pipeline (all threads; ratio %.2f)\n",
              ref_cpu * 1e3, pipe_cpu * 1e3, pipe_cpu / ref_cpu);
  std::printf("  tick                       %8.0f ms\n", tick * 1e3);
  std::printf("  kill -> peer down          %8.1f ms\n", detected * 1e3);
  if (rerouted >= 0) std::printf("  kill -> first redo         %8.1f ms\n", rerouted * 1e3);
  else std::printf("  kill -> first redo              -    (the victim held no work that needed redoing)\n");
  std::printf("  detection / hang timeout   %8.3f   (a killed peer is noticed at once; a hung one after %.0f s)\n",
              detected / peer_timeout, peer_timeout);
  std::fflush(stdout);
  return gwtf::bench::print_goodput(argv[0], {}) < 0 ? 1 : 0;
}
