// The reference trainer (`gwtf train-local`): the monolithic loop on the same data, optimizer and schedule as the
// swarm — the yardstick the distributed runtime is compared against. Iteration i trains on microbatches
// (seed, i, 0..M-1); each stage's gradient is the mean over them, clipped and stepped per stage, exactly as the
// swarm's stage aggregation will do.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/model/data.hpp"
#include "kernels/model/optimizer.hpp"
#include "kernels/model/stage_module.hpp"

namespace gwtf::model {

struct TrainOptions {
  ModelConfig model;
  int relay_stages = 1;         // how the blocks are cut (clipping is per stage)
  int64_t iterations = 200;
  int microbatches = 4;
  int64_t microbatch_size = 4;  // sequences per microbatch
  int64_t seq_len = 0;          // 0: the preset's context length
  uint64_t data_seed = 1;
  AdamWConfig optimizer;
  std::string resume_dir;       // non-empty: continue from the checkpoints there (same model, same cut)
  std::string save_dir;         // empty: no checkpoint
  int64_t save_every = 0;       // 0: only at the end
  int validation_microbatches = 4;
};

struct IterationReport {
  int64_t iteration;
  double loss;            // mean over the iteration's microbatches
  double tokens_per_s;
  double grad_norm;       // largest pre-clip norm over the stages
};

struct TrainResult {
  int64_t first_iteration = 0;  // > 0 after a resume
  std::vector<double> losses;   // of iterations first_iteration .. iterations-1
  double validation_loss = 0;
  double seconds = 0;
};

Result<TrainResult, std::string> train_local(const TrainOptions& options, const Corpus& corpus,
                                             const std::function<void(const IterationReport&)>& progress = {});

// The default corpus: the plain-text fortune files of Debian's `fortunes` package (scripts/setup installs it).
std::vector<std::string> default_corpus_files();

}  // namespace gwtf::model
