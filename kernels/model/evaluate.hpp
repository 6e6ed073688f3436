// `gwtf eval`: load a whole model from a directory of per-stage checkpoints and measure the mean next-token loss
// over consecutive, non-overlapping windows of the model's context length (tokens 1..L-1 of each window are
// predicted from those before them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/model/stage_module.hpp"

namespace gwtf::model {

struct LoadedModel {
  ModelConfig config;
  uint64_t iteration = 0;
  std::unique_ptr<StageModule> start, end;
  std::vector<std::unique_ptr<StageModule>> relays;  // in block order
};

// Reads every stage-*.ckpt of `dir`; the relay stages must cover the blocks exactly once.
Result<LoadedModel, std::string> load_model(const std::string& dir);

struct EvalResult {
  double mean_loss = 0;
  int64_t windows = 0;
};

// max_windows 0: every whole window of the stream.
Result<EvalResult, std::string> evaluate(LoadedModel& model, const std::vector<int32_t>& tokens, int64_t max_windows);

}  // namespace gwtf::model
