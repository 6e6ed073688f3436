// A pipeline stage's computation as a pure function of (weights, input, output gradient) — what lets any replica
// of a stage redo a crashed replica's work (DESIGN §5).
//
//   start  (data holder): token ids (B, T) int64        -> activation (B, T, d)     [embedding (+ positions)]
//   blocks (relay):       activation (B, T, d)          -> activation (B, T, d)     [blocks first..end-1]
//   end    (data holder): activation (B, T, d), targets -> mean next-token loss     [final norm, head, loss]
//
// backward(input, grad_output) recomputes the forward from `input` (no saved state), accumulates the parameter
// gradients and returns the gradient with respect to the input (undefined for `start`). Parameters initialise
// from (run seed, what they are: "embedding", block index, "head"), never from global RNG state, so every
// replica of a stage — and every way of cutting the model into stages — starts bit-identical.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/model/preset.hpp"

namespace gwtf::model {

struct ModelConfig {
  Arch arch = Arch::kGpt;
  ModelShape shape = kPresets[0];
  bool tied_head = true;   // GPT: the head reuses the token embedding; LLaMa presets untie it
  double norm_eps = 1e-5;
  uint64_t seed = 1;
};

class StageModule {
 public:
  static std::unique_ptr<StageModule> start(const ModelConfig& cfg);
  static std::unique_ptr<StageModule> blocks(const ModelConfig& cfg, int first_block, int end_block);
  // `tied_embedding`: the start stage's token embedding when cfg.tied_head (both live on the data holder).
  static std::unique_ptr<StageModule> end(const ModelConfig& cfg, std::optional<at::Tensor> tied_embedding);

  enum class Kind { kStart, kBlocks, kEnd };
  Kind kind() const { return kind_; }

  at::Tensor forward(const at::Tensor& input, const at::Tensor& targets = {});
  // For kEnd the loss is the output: pass the targets, and no `grad_output` (or a scalar scale of the loss).
  at::Tensor backward(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& targets = {});

  // The replica that ran the forward keeps its autograd state and skips the recomputation: same result as
  // backward(input, grad_output), at the memory cost of the stage's activations until the backward.
  struct Saved {
    at::Tensor input;   // detached, requires grad (for stages that return an input gradient)
    at::Tensor output;  // carries the graph
  };
  Saved forward_saved(const at::Tensor& input, const at::Tensor& targets = {});
  at::Tensor backward(Saved&& saved, const at::Tensor& grad_output);

  // End stage only: the next-token logits (B, T, V) instead of the loss (evaluation, export checks, sampling).
  at::Tensor logits(const at::Tensor& input);

  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  at::Tensor token_embedding() const;  // start stage only
  void zero_grad();

 private:
  StageModule(Kind kind, const ModelConfig& cfg) : kind_(kind), cfg_(cfg) {}
  Kind kind_;
  ModelConfig cfg_;
  std::shared_ptr<torch::nn::Module> module_;
};

}  // namespace gwtf::model
