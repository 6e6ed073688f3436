#include "kernels/model/hf_export.hpp"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "kernels/model/safetensors.hpp"

namespace gwtf::model {

namespace {

// One of our per-block parameters (LibTorch names use '_' where HF has '.') and where HF keeps it.
struct BlockParam {
  const char* ours;
  const char* hf;      // under transformer.h.{i}. (GPT-2) or model.layers.{i}. (LLaMa)
  bool transpose;      // GPT-2's Conv1D stores [in, out]; LibTorch's linear weights are [out, in]
};

// GPT-2: c_attn packs q, k, v one after another along its output dimension, each with its heads in order — our
// fused projection has the same row order, so the transpose is all it needs. Biases stay as they are.
constexpr BlockParam kGptBlock[] = {
    {"ln_1_weight", "ln_1.weight", false},
    {"ln_1_bias", "ln_1.bias", false},
    {"attn_c_attn_weight", "attn.c_attn.weight", true},
    {"attn_c_attn_bias", "attn.c_attn.bias", false},
    {"attn_c_proj_weight", "attn.c_proj.weight", true},  // square: untransposed it loads and computes garbage
    {"attn_c_proj_bias", "attn.c_proj.bias", false},
    {"ln_2_weight", "ln_2.weight", false},
    {"ln_2_bias", "ln_2.bias", false},
    {"mlp_c_fc_weight", "mlp.c_fc.weight", true},
    {"mlp_c_fc_bias", "mlp.c_fc.bias", false},
    {"mlp_c_proj_weight", "mlp.c_proj.weight", true},
    {"mlp_c_proj_bias", "mlp.c_proj.bias", false},
};

// LLaMa: nn.Linear layouts like ours; our RoPE already rotates half against half (HF's rotate_half), so q_proj and
// k_proj need no row permutation.
constexpr BlockParam kLlamaBlock[] = {
    {"input_layernorm_weight", "input_layernorm.weight", false},
    {"self_attn_q_proj_weight", "self_attn.q_proj.weight", false},
    {"self_attn_k_proj_weight", "self_attn.k_proj.weight", false},
    {"self_attn_v_proj_weight", "self_attn.v_proj.weight", false},
    {"self_attn_o_proj_weight", "self_attn.o_proj.weight", false},
    {"post_attention_layernorm_weight", "post_attention_layernorm.weight", false},
    {"mlp_gate_proj_weight", "mlp.gate_proj.weight", false},
    {"mlp_up_proj_weight", "mlp.up_proj.weight", false},
    {"mlp_down_proj_weight", "mlp.down_proj.weight", false},
};

std::map<std::string, at::Tensor> by_name(const StageModule& m) {
  std::map<std::string, at::Tensor> out;
  for (auto& [name, t] : m.named_parameters()) out.emplace(name, t);
  return out;
}

nlohmann::json gpt2_config(const ModelConfig& c) {
  const auto& s = c.shape;
  return {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", s.vocab},
      {"n_positions", s.seq_len},
      {"n_ctx", s.seq_len},
      {"n_embd", s.d_model},
      {"n_layer", s.layers},
      {"n_head", s.heads},
      {"n_inner", s.ffn_hidden},
      // LibTorch's gelu is the exact erf form; without this key HF assumes "gelu_new" (the tanh approximation).
      {"activation_function", "gelu"},
      {"layer_norm_epsilon", c.norm_eps},
      {"tie_word_embeddings", c.tied_head},
      {"scale_attn_weights", true},
      {"resid_pdrop", 0.0},
      {"embd_pdrop", 0.0},
      {"attn_pdrop", 0.0},
      // Byte-level vocabulary: no special tokens (GPT-2's default 50256 is outside it).
      {"bos_token_id", nullptr},
      {"eos_token_id", nullptr},
      {"torch_dtype", "float32"},
  };
}

nlohmann::json llama_config(const ModelConfig& c) {
  const auto& s = c.shape;
  return {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", s.vocab},
      {"hidden_size", s.d_model},
      {"intermediate_size", s.ffn_hidden},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.heads},  // no grouped-query attention
      {"max_position_embeddings", s.seq_len},
      {"rms_norm_eps", c.norm_eps},      // HF's default is 1e-6; ours differs, so it is always written
      {"rope_theta", 10000.0},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"tie_word_embeddings", c.tied_head},
      {"bos_token_id", nullptr},
      {"eos_token_id", nullptr},
      {"torch_dtype", "float32"},
  };
}

}  // namespace

Result<HuggingFaceModel, std::string> to_hugging_face(const LoadedModel& m) {
  if (!m.start || !m.end) return Err{std::string("the model lacks its start or end stage")};
  const ModelConfig& c = m.config;
  const bool gpt = c.arch == Arch::kGpt;
  HuggingFaceModel out;
  out.config = gpt ? gpt2_config(c) : llama_config(c);
  const std::string top = gpt ? "transformer." : "model.";
  auto put = [&](const std::string& name, const at::Tensor& t, bool transpose) {
    out.tensors.emplace_back(name, (transpose ? t.t() : t).detach().to(at::kFloat).contiguous().clone());
  };

  auto start = by_name(*m.start);
  put(top + (gpt ? "wte.weight" : "embed_tokens.weight"), start.at("wte_weight"), false);
  if (gpt) put(top + "wpe.weight", start.at("wpe_weight"), false);  // n_positions rows

  int block = 0;
  for (const auto& relay : m.relays) {
    const auto params = by_name(*relay);
    const size_t per_block = gpt ? std::size(kGptBlock) : std::size(kLlamaBlock);
    for (size_t i = 0; i < params.size() / per_block; ++i, ++block) {
      const std::string ours = "h" + std::to_string(block) + ".";
      const std::string hf = top + (gpt ? "h." : "layers.") + std::to_string(block) + ".";
      for (size_t k = 0; k < per_block; ++k) {
        const BlockParam& p = gpt ? kGptBlock[k] : kLlamaBlock[k];
        auto it = params.find(ours + p.ours);
        if (it == params.end()) return Err{"block " + std::to_string(block) + " lacks parameter " + p.ours};
        put(hf + p.hf, it->second, p.transpose);
      }
    }
  }
  if (block != c.shape.layers)
    return Err{"the relay stages hold " + std::to_string(block) + " of " + std::to_string(c.shape.layers) + " blocks"};

  auto end = by_name(*m.end);
  put(top + (gpt ? "ln_f.weight" : "norm.weight"), end.at("ln_f_weight"), false);
  if (gpt) put(top + "ln_f.bias", end.at("ln_f_bias"), false);
  if (!c.tied_head) put("lm_head.weight", end.at("lm_head_weight"), false);
  return out;
}

Result<ExportSummary, std::string> export_hugging_face(const LoadedModel& model, const std::string& out_dir) {
  auto hf = to_hugging_face(model);
  if (!hf) return Err{hf.error()};
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Err{"cannot create '" + out_dir + "': " + ec.message()};
  if (auto err = write_safetensors(out_dir + "/model.safetensors", hf->tensors); !err.empty()) return Err{err};
  {
    std::ofstream out(out_dir + "/config.json", std::ios::trunc);
    out << hf->config.dump(2) << "\n";
    if (!out.flush()) return Err{"cannot write '" + out_dir + "/config.json'"};
  }
  ExportSummary s;
  s.architecture = hf->config["architectures"][0].get<std::string>();
  s.tensors = hf->tensors.size();
  for (const auto& [name, t] : hf->tensors) s.parameters += t.numel();
  return s;
}

}  // namespace gwtf::model
