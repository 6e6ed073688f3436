// The models, top to bottom (nanoGPT's order): initialisation, attention, the two block kinds, then the stages.
// Shapes: B batch, T sequence, C = d_model, H heads, hs = C / H, V vocabulary, F MLP width.
#include "kernels/model/stage_module.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "kernels/base/result.hpp"
#include "kernels/base/rng.hpp"

namespace gwtf::model {

namespace {

// ---------------------------------------------------------------------------------------------------------
// Deterministic initialisation: a parameter's values depend on (run seed, its name) only.
// (LibTorch forbids dots in parameter names: Hugging Face's "ln_1.weight" is registered as "ln_1_weight".)

uint64_t name_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return Rng(seed ^ h).next_u64();
}

at::Tensor normal(const std::vector<int64_t>& shape, double stddev, uint64_t seed, const std::string& name) {
  auto gen = at::detail::createCPUGenerator(name_seed(seed, name));
  return at::empty(shape, at::kFloat).normal_(0.0, stddev, gen);
}

// ---------------------------------------------------------------------------------------------------------
// Causal self-attention, written out (LibTorch 1.13 has no fused attention). q, k, v: (B, H, T, hs).

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t T = q.size(2);
  auto att = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(q.size(3))));  // (B,H,T,T)
  auto future = at::ones({T, T}, at::TensorOptions().dtype(at::kBool)).triu(1);
  att = at::softmax(att.masked_fill(future, -std::numeric_limits<float>::infinity()), -1);
  return at::matmul(att, v);  // (B, H, T, hs)
}

at::Tensor split_heads(const at::Tensor& x, int64_t heads) {  // (B,T,C) -> (B,H,T,hs)
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}

at::Tensor merge_heads(const at::Tensor& x) {  // (B,H,T,hs) -> (B,T,C)
  return x.transpose(1, 2).contiguous().view({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// Rotary position embedding, the "rotate half" convention of Hugging Face's LLaMa (so export needs no permutation).
at::Tensor rotary(const at::Tensor& x) {  // (B,H,T,hs)
  const int64_t T = x.size(2), hs = x.size(3);
  auto inv_freq = 1.0 / at::pow(10000.0, at::arange(0, hs, 2, at::kFloat) / static_cast<double>(hs));  // (hs/2)
  auto angles = at::outer(at::arange(T, at::kFloat), inv_freq);                                       // (T, hs/2)
  auto emb = at::cat({angles, angles}, -1);                                                            // (T, hs)
  auto x1 = x.narrow(-1, 0, hs / 2), x2 = x.narrow(-1, hs / 2, hs / 2);
  return x * emb.cos() + at::cat({-x2, x1}, -1) * emb.sin();
}

// ---------------------------------------------------------------------------------------------------------
// Blocks

struct Block : torch::nn::Module {
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

// GPT-2: pre-LayerNorm, causal attention, GELU MLP (exact erf GELU), biases everywhere.
struct GptBlock : Block {
  GptBlock(const ModelConfig& cfg, int index) : c(cfg) {
    const int64_t C = cfg.shape.d_model, F = cfg.shape.ffn_hidden;
    const std::string p = "block." + std::to_string(index) + ".";
    // Residual projections scaled by 1/sqrt(2 L), per the GPT-2 paper.
    const double resid = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.shape.layers));
    ln1_w = register_parameter("ln_1_weight", at::ones({C}));
    ln1_b = register_parameter("ln_1_bias", at::zeros({C}));
    qkv_w = register_parameter("attn_c_attn_weight", normal({3 * C, C}, 0.02, cfg.seed, p + "qkv"));
    qkv_b = register_parameter("attn_c_attn_bias", at::zeros({3 * C}));
    proj_w = register_parameter("attn_c_proj_weight", normal({C, C}, resid, cfg.seed, p + "proj"));
    proj_b = register_parameter("attn_c_proj_bias", at::zeros({C}));
    ln2_w = register_parameter("ln_2_weight", at::ones({C}));
    ln2_b = register_parameter("ln_2_bias", at::zeros({C}));
    fc_w = register_parameter("mlp_c_fc_weight", normal({F, C}, 0.02, cfg.seed, p + "fc"));
    fc_b = register_parameter("mlp_c_fc_bias", at::zeros({F}));
    out_w = register_parameter("mlp_c_proj_weight", normal({C, F}, resid, cfg.seed, p + "out"));
    out_b = register_parameter("mlp_c_proj_bias", at::zeros({C}));
  }
  at::Tensor forward(const at::Tensor& x) override {
    const int64_t C = c.shape.d_model, H = c.shape.heads;
    auto h = at::layer_norm(x, {C}, ln1_w, ln1_b, c.norm_eps);
    auto qkv = at::linear(h, qkv_w, qkv_b).split(C, -1);                  // 3 x (B,T,C)
    auto y = causal_attention(split_heads(qkv[0], H), split_heads(qkv[1], H), split_heads(qkv[2], H));
    auto r = x + at::linear(merge_heads(y), proj_w, proj_b);
    h = at::layer_norm(r, {C}, ln2_w, ln2_b, c.norm_eps);
    return r + at::linear(at::gelu(at::linear(h, fc_w, fc_b)), out_w, out_b);
  }
  ModelConfig c;
  at::Tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, out_w, out_b;
};

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

// LLaMa: RMSNorm, rotary positions on q and k, SwiGLU MLP, no biases.
struct LlamaBlock : Block {
  LlamaBlock(const ModelConfig& cfg, int index) : c(cfg) {
    const int64_t C = cfg.shape.d_model, F = cfg.shape.ffn_hidden;
    const std::string p = "block." + std::to_string(index) + ".";
    const double resid = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.shape.layers));
    attn_norm = register_parameter("input_layernorm_weight", at::ones({C}));
    wq = register_parameter("self_attn_q_proj_weight", normal({C, C}, 0.02, cfg.seed, p + "q"));
    wk = register_parameter("self_attn_k_proj_weight", normal({C, C}, 0.02, cfg.seed, p + "k"));
    wv = register_parameter("self_attn_v_proj_weight", normal({C, C}, 0.02, cfg.seed, p + "v"));
    wo = register_parameter("self_attn_o_proj_weight", normal({C, C}, resid, cfg.seed, p + "o"));
    mlp_norm = register_parameter("post_attention_layernorm_weight", at::ones({C}));
    gate = register_parameter("mlp_gate_proj_weight", normal({F, C}, 0.02, cfg.seed, p + "gate"));
    up = register_parameter("mlp_up_proj_weight", normal({F, C}, 0.02, cfg.seed, p + "up"));
    down = register_parameter("mlp_down_proj_weight", normal({C, F}, resid, cfg.seed, p + "down"));
  }
  at::Tensor forward(const at::Tensor& x) override {
    const int64_t H = c.shape.heads;
    auto h = rms_norm(x, attn_norm, c.norm_eps);
    auto q = rotary(split_heads(at::linear(h, wq), H));
    auto k = rotary(split_heads(at::linear(h, wk), H));
    auto y = causal_attention(q, k, split_heads(at::linear(h, wv), H));
    auto r = x + at::linear(merge_heads(y), wo);
    h = rms_norm(r, mlp_norm, c.norm_eps);
    return r + at::linear(at::silu(at::linear(h, gate)) * at::linear(h, up), down);
  }
  ModelConfig c;
  at::Tensor attn_norm, wq, wk, wv, wo, mlp_norm, gate, up, down;
};

// ---------------------------------------------------------------------------------------------------------
// Stages

struct StartStage : torch::nn::Module {
  explicit StartStage(const ModelConfig& cfg) : c(cfg) {
    wte = register_parameter("wte_weight", normal({cfg.shape.vocab, cfg.shape.d_model}, 0.02, cfg.seed, "wte"));
    if (cfg.arch == Arch::kGpt)
      wpe = register_parameter("wpe_weight", normal({cfg.shape.seq_len, cfg.shape.d_model}, 0.01, cfg.seed, "wpe"));
  }
  at::Tensor forward(const at::Tensor& tokens) {  // (B,T) -> (B,T,C)
    auto x = at::embedding(wte, tokens);
    if (c.arch == Arch::kGpt) x = x + wpe.narrow(0, 0, tokens.size(1));
    return x;
  }
  ModelConfig c;
  at::Tensor wte, wpe;
};

struct BlocksStage : torch::nn::Module {
  BlocksStage(const ModelConfig& cfg, int first, int end) {
    for (int b = first; b < end; ++b) {
      std::shared_ptr<Block> block;
      if (cfg.arch == Arch::kGpt) block = std::make_shared<GptBlock>(cfg, b);
      else block = std::make_shared<LlamaBlock>(cfg, b);
      blocks.push_back(register_module("h" + std::to_string(b), block));
    }
  }
  at::Tensor forward(at::Tensor x) {
    for (auto& b : blocks) x = b->forward(x);
    return x;
  }
  std::vector<std::shared_ptr<Block>> blocks;
};

struct EndStage : torch::nn::Module {
  EndStage(const ModelConfig& cfg, std::optional<at::Tensor> tied) : c(cfg) {
    const int64_t C = cfg.shape.d_model;
    norm_w = register_parameter("ln_f_weight", at::ones({C}));
    if (cfg.arch == Arch::kGpt) norm_b = register_parameter("ln_f_bias", at::zeros({C}));
    // A tied head is the start stage's parameter: not registered here, so it is stepped once.
    head = tied ? *tied : register_parameter("lm_head_weight", normal({cfg.shape.vocab, C}, 0.02, cfg.seed, "head"));
  }
  at::Tensor logits(const at::Tensor& x) {  // (B,T,C) -> (B,T,V)
    auto h = c.arch == Arch::kGpt ? at::layer_norm(x, {c.shape.d_model}, norm_w, norm_b, c.norm_eps)
                                  : rms_norm(x, norm_w, c.norm_eps);
    return at::linear(h, head);
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& targets) {  // (B,T,C), (B,T) -> scalar
    auto l = logits(x);
    return at::cross_entropy_loss(l.view({-1, l.size(-1)}), targets.reshape({-1}));
  }
  ModelConfig c;
  at::Tensor norm_w, norm_b, head;
};

}  // namespace

std::unique_ptr<StageModule> StageModule::start(const ModelConfig& cfg) {
  std::unique_ptr<StageModule> s(new StageModule(Kind::kStart, cfg));
  s->module_ = std::make_shared<StartStage>(cfg);
  return s;
}

std::unique_ptr<StageModule> StageModule::blocks(const ModelConfig& cfg, int first_block, int end_block) {
  std::unique_ptr<StageModule> s(new StageModule(Kind::kBlocks, cfg));
  s->module_ = std::make_shared<BlocksStage>(cfg, first_block, end_block);
  return s;
}

std::unique_ptr<StageModule> StageModule::end(const ModelConfig& cfg, std::optional<at::Tensor> tied_embedding) {
  std::unique_ptr<StageModule> s(new StageModule(Kind::kEnd, cfg));
  s->module_ = std::make_shared<EndStage>(cfg, cfg.tied_head ? tied_embedding : std::nullopt);
  return s;
}

at::Tensor StageModule::forward(const at::Tensor& input, const at::Tensor& targets) {
  switch (kind_) {
    case Kind::kStart: return static_cast<StartStage&>(*module_).forward(input);
    case Kind::kBlocks: return static_cast<BlocksStage&>(*module_).forward(input);
    case Kind::kEnd: return static_cast<EndStage&>(*module_).forward(input, targets);
  }
  return {};
}

at::Tensor StageModule::backward(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& targets) {
  // Recompute the forward from the input: the only state a backward needs is the input, which the previous
  // stage keeps in its recovery buffer, so any replica of this stage can run it.
  const bool wants_input_grad = kind_ != Kind::kStart;
  auto x = wants_input_grad ? input.detach().requires_grad_(true) : input;
  auto y = forward(x, targets);
  if (kind_ == Kind::kEnd && !grad_output.defined()) y.backward();
  else y.backward(grad_output);
  return wants_input_grad ? x.grad() : at::Tensor();
}

StageModule::Saved StageModule::forward_saved(const at::Tensor& input, const at::Tensor& targets) {
  Saved s;
  s.input = kind_ != Kind::kStart ? input.detach().requires_grad_(true) : input;
  s.output = forward(s.input, targets);
  return s;
}

at::Tensor StageModule::backward(Saved&& saved, const at::Tensor& grad_output) {
  if (kind_ == Kind::kEnd && !grad_output.defined()) saved.output.backward();
  else saved.output.backward(grad_output);
  return kind_ != Kind::kStart ? saved.input.grad() : at::Tensor();
}

std::vector<std::pair<std::string, at::Tensor>> StageModule::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module_->named_parameters(true)) out.push_back({p.key(), p.value()});
  return out;
}

at::Tensor StageModule::logits(const at::Tensor& input) {
  GWTF_ASSERT(kind_ == Kind::kEnd, "logits() is the end stage's");
  return static_cast<EndStage&>(*module_).logits(input);
}

at::Tensor StageModule::token_embedding() const { return static_cast<const StartStage&>(*module_).wte; }

void StageModule::zero_grad() { module_->zero_grad(); }

}  // namespace gwtf::model
