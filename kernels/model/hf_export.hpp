// `gwtf export`: a trained model as `model.safetensors` + `config.json` in the Hugging Face layout of GPT-2
// (`GPT2LMHeadModel`) or LLaMa (`LlamaForCausalLM`), so the tools of that ecosystem load what gwtf trained and
// compute the same logits. The conventions that are easy to get wrong (Conv1D's [in, out] weights, the q/k/v
// packing, the GELU variant, epsilons, tying) are spelled out where they are applied.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

#include "kernels/base/result.hpp"
#include "kernels/model/evaluate.hpp"

namespace gwtf::model {

struct HuggingFaceModel {
  nlohmann::json config;                                   // config.json
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // model.safetensors, in HF names and layouts
};

// Pure conversion, no files: the tensors are copies in float32.
Result<HuggingFaceModel, std::string> to_hugging_face(const LoadedModel& model);

struct ExportSummary {
  std::string architecture;  // "GPT2LMHeadModel" | "LlamaForCausalLM"
  size_t tensors = 0;
  int64_t parameters = 0;
};

// Writes OUT/model.safetensors and OUT/config.json (creating OUT).
Result<ExportSummary, std::string> export_hugging_face(const LoadedModel& model, const std::string& out_dir);

}  // namespace gwtf::model
