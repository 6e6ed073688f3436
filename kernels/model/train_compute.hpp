// The training protocol's compute tasks (kernels/train/messages.hpp) carried out with LibTorch for one node: a
// data holder (start and end stages: embedding, final norm, head, loss) or a relay (a range of blocks). The
// protocol hands out blob handles; the tensors live in a BlobStore the driver owns (one per process in the
// runtime, one shared by every simulated node in tests).
//
// Gradients accumulate in the parameters' .grad between an iteration's first task and its kApply. A relay keeps the
// autograd graph of each forward until its backward (the activations' memory, bounded by what is in flight). A replay task
// (ComputeTask::replay) runs on the weights from before the last step — kept as one copy — and leaves both the
// weights and the accumulated gradients untouched.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/model/optimizer.hpp"
#include "kernels/model/stage_module.hpp"
#include "kernels/train/messages.hpp"

namespace gwtf::model {

using BlobStore = std::map<train::Blob, at::Tensor>;

struct TrainComputeConfig {
  ModelConfig model;
  AdamWConfig optimizer;
  int relay_stages = 2;
  int64_t microbatch_size = 2;
  int64_t seq_len = 32;
  uint64_t data_seed = 1;
  const std::vector<int32_t>* stream = nullptr;  // training tokens (microbatch (seed, i, k) is drawn from it)
};

// What is wrong with a tensor a peer sent, if anything (nullopt: nothing): a boundary tensor (an activation or its
// gradient) must be (microbatch size, sequence, d_model), and every tensor floating point and finite. Checked where
// a frame arrives (a bad one never enters the protocol) and again before compute touches the accumulated gradients.
std::optional<std::string> boundary_problem(const at::Tensor& v, const TrainComputeConfig& cfg);
std::optional<std::string> finite_problem(const at::Tensor& v);

class TrainCompute {
 public:
  // Stage 0: a data holder; 1..relay_stages: the relay stage of an even cut (StagePlan::even).
  static Result<std::unique_ptr<TrainCompute>, std::string> create(const TrainComputeConfig& cfg, train::Stage stage);

  // Runs `t`; a result goes into `store` under `output`. Returns the microbatch loss for kEndBackward, else 0.
  double run(const train::ComputeTask& t, train::Blob output, BlobStore& store);

  // A relay's weights and optimizer state after `iteration` steps, as checkpoint bytes (a joiner's state
  // transfer), and back: decoding refuses another model or stage and corrupt bytes before changing anything.
  // Holders own their data and do not transfer state: an error.
  Result<std::string, std::string> export_state(uint64_t iteration) const;
  Result<uint64_t, std::string> import_state(std::string_view bytes);

  // Every parameter of the node, by name ("start."/"end."/"blocks." prefixed), for comparisons and checkpoints.
  std::vector<std::pair<std::string, at::Tensor>> parameters() const;

 private:
  TrainCompute() = default;
  at::Tensor tokens(train::Iter i, train::Mb mb, bool targets) const;
  at::Tensor flat_grads() const;
  void check_boundary(const at::Tensor& v, const train::ComputeTask& t, const char* what) const;
  void set_grads(const at::Tensor& flat);
  double compute(const train::ComputeTask& t, train::Blob output, BlobStore& store);

  TrainComputeConfig cfg_;
  train::Stage stage_ = 0;
  int first_block_ = 0, end_block_ = 0;  // relays
  std::unique_ptr<StageModule> start_, end_, blocks_;
  std::vector<std::unique_ptr<AdamW>> opts_;
  std::vector<at::Tensor> params_;  // unique tensors (a tied head shares the embedding)
  std::vector<at::Tensor> before_step_;  // the weights before the last kApply (for replays)
  // Relays: forwards run here whose backward has not come yet — their autograd graph, so the backward skips the
  // recomputation (StageModule::Saved), and the input it was built on (a redo's backward may bring another one).
  struct SavedForward {
    at::Tensor input;
    StageModule::Saved saved;
  };
  std::map<std::pair<train::Iter, train::Mb>, SavedForward> saved_;
};

}  // namespace gwtf::model
