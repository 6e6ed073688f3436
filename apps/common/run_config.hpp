// A training run's configuration — the model, the cut, the schedule, the data and the swarm's layout — the same on
// every node of a swarm (its fingerprint is checked at join). Read from TOML (`--config FILE.toml`), overridden
// by flags; `gwtf demo` writes one for its nodes. Every key is documented in docs/runtime.md.
//
//   [model]  arch = "gpt" | "llama", preset = "tiny" | "small" | "124m" | "500m" | "1.5b", seed = 1
//   [train]  iterations, microbatches, microbatch_size, seq_len, lr, data_seed, in_flight, data = ["FILE|DIR", ...]
//   [swarm]  holders, replicas = [2, 2, 2] (founders per relay stage), swarm_id
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/node_actor.hpp"
#include "apps/common/config_file.hpp"
#include "kernels/base/result.hpp"
#include "kernels/model/data.hpp"
#include "kernels/model/reference_trainer.hpp"
#include "kernels/model/train_compute.hpp"
#include "kernels/train/roster.hpp"
#include "kernels/train/train_node.hpp"

namespace gwtf::app {

struct RunConfig {
  std::string arch = "gpt";
  std::string preset = "tiny";
  uint64_t model_seed = 1;
  int64_t iterations = 60;
  uint32_t microbatches = 8;
  int64_t microbatch_size = 4;
  int64_t seq_len = 64;
  double lr = 1e-3;
  uint64_t data_seed = 1;
  uint32_t in_flight = 4;  // per data holder
  std::vector<std::string> data;  // empty: the default corpus
  uint32_t holders = 2;
  std::vector<uint32_t> replicas{2, 2, 2};
  uint64_t swarm_id = 1;

  // Its keys ([model], [train], [swarm]) in a binary's config file schema.
  void declare(ConfigSchema& schema);
  // Reads `path` (these sections only) over the current values. Errors name the file, the key and the form.
  Result<void*, std::string> load_toml(const std::string& path);
  std::string to_toml() const;
  // Flags over the file (call load_toml first, then parse): --iterations, --microbatches, ...
  void add_flags(CLI::App& app);
  Result<void*, std::string> validate() const;

  train::Layout layout() const { return {holders, replicas}; }
  train::TrainParams params() const;
  model::ModelConfig model() const;  // vocabulary: bytes (256)
  model::AdamWConfig optimizer() const;
  model::TrainOptions reference_options() const;  // the same run on one machine (train-local), for comparison
  // FNV-1a over everything that must agree across nodes, the training tokens included.
  uint64_t fingerprint(const std::vector<int32_t>& tokens) const;
};

// A node's options for this run (the swarm layout, the protocol's parameters, the compute, the fingerprint).
// `tokens` must outlive the node.
NodeOptions node_options(const RunConfig& c, const std::vector<int32_t>& tokens);

// Compute threads of this process: LibTorch's intra-op pool and OpenBLAS's own pool (when OpenBLAS is the BLAS).
// A node is one compute thread; OpenBLAS's default pool on top of it oversubscribes the cores as soon as several
// nodes share a host (measured: the actor pipeline 758 -> 520 ms per iteration with 1 instead of 2, bench/runtime).
void set_compute_threads(int threads);

// The training tokens of a configuration (its data files, or Debian's fortunes corpus).
Result<model::Corpus, std::string> load_corpus(const RunConfig& c);

}  // namespace gwtf::app
