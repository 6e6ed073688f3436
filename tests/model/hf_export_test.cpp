// `gwtf export`: the exported files, read back and run by an independent float64 implementation of Hugging Face's
// GPT2LMHeadModel / LlamaForCausalLM forward (written from HF's modeling code, reading every hyper-parameter
// from config.json), give our model's logits. Shapes alone catch few layout mistakes; only the outputs do.
#include "kernels/model/hf_export.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "kernels/model/safetensors.hpp"

namespace gwtf::model {
namespace {

using Weights = std::map<std::string, at::Tensor>;
using nlohmann::json;

at::Tensor w(const Weights& ws, const std::string& name) {
  auto it = ws.find(name);
  if (it == ws.end()) {
    ADD_FAILURE() << "missing tensor " << name;
    return at::zeros({1}, at::kDouble);
  }
  return it->second.to(at::kDouble);
}

at::Tensor attention(at::Tensor q, at::Tensor k, at::Tensor v) {  // (B,H,T,D)
  const int64_t T = q.size(2), D = q.size(3);
  auto att = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(D));
  auto mask = at::ones({T, T}, at::kBool).tril();
  att = at::softmax(att.masked_fill(mask.logical_not(), -1e300), -1);
  return at::matmul(att, v);
}

at::Tensor heads(const at::Tensor& x, int64_t H) {  // (B,T,C) -> (B,H,T,D)
  return x.view({x.size(0), x.size(1), H, x.size(2) / H}).permute({0, 2, 1, 3});
}
at::Tensor merge(const at::Tensor& x) {  // (B,H,T,D) -> (B,T,C)
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// transformers/models/gpt2/modeling_gpt2.py, eval mode.
at::Tensor gpt2_logits(const json& cfg, const Weights& ws, const at::Tensor& ids) {
  const int64_t C = cfg.at("n_embd"), H = cfg.at("n_head"), L = cfg.at("n_layer");
  const double eps = cfg.value("layer_norm_epsilon", 1e-5);
  const std::string act = cfg.value("activation_function", "gelu_new");
  auto ln = [&](const at::Tensor& x, const std::string& p) {
    return at::layer_norm(x, {C}, w(ws, p + ".weight"), w(ws, p + ".bias"), eps);
  };
  auto conv1d = [&](const at::Tensor& x, const std::string& p) {  // Conv1D: x @ W[in,out] + b
    return at::addmm(w(ws, p + ".bias"), x.reshape({-1, x.size(-1)}), w(ws, p + ".weight"))
        .view({x.size(0), x.size(1), -1});
  };
  auto gelu = [&](const at::Tensor& x) {
    if (act == "gelu") return at::gelu(x);
    return 0.5 * x * (1 + at::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x.pow(3))));  // gelu_new
  };
  const int64_t T = ids.size(1);
  auto h = at::embedding(w(ws, "transformer.wte.weight"), ids) + w(ws, "transformer.wpe.weight").narrow(0, 0, T);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    auto qkv = conv1d(ln(h, p + "ln_1"), p + "attn.c_attn").split(C, 2);
    h = h + conv1d(merge(attention(heads(qkv[0], H), heads(qkv[1], H), heads(qkv[2], H))), p + "attn.c_proj");
    h = h + conv1d(gelu(conv1d(ln(h, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj");
  }
  h = ln(h, "transformer.ln_f");
  const bool tied = cfg.value("tie_word_embeddings", true);
  return at::matmul(h, w(ws, tied ? "transformer.wte.weight" : "lm_head.weight").t());
}

// transformers/models/llama/modeling_llama.py, eval mode.
at::Tensor llama_logits(const json& cfg, const Weights& ws, const at::Tensor& ids) {
  const int64_t H = cfg.at("num_attention_heads"), L = cfg.at("num_hidden_layers");
  const int64_t KV = cfg.value("num_key_value_heads", H), C = cfg.at("hidden_size"), D = C / H;
  const double eps = cfg.value("rms_norm_eps", 1e-6), theta = cfg.value("rope_theta", 10000.0);
  EXPECT_EQ(cfg.value("hidden_act", "silu"), "silu");
  auto rms = [&](const at::Tensor& x, const std::string& p) {
    return w(ws, p + ".weight") * (x * at::rsqrt(x.pow(2).mean(-1, true) + eps));
  };
  auto lin = [&](const at::Tensor& x, const std::string& p) { return at::matmul(x, w(ws, p + ".weight").t()); };
  const int64_t T = ids.size(1);
  auto inv_freq = 1.0 / at::pow(theta, at::arange(0, D, 2, at::kDouble) / static_cast<double>(D));
  auto freqs = at::outer(at::arange(T, at::kDouble), inv_freq);
  auto emb = at::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  auto rotate_half = [&](const at::Tensor& x) {
    return at::cat({-x.narrow(-1, D / 2, D / 2), x.narrow(-1, 0, D / 2)}, -1);
  };
  auto h = at::embedding(w(ws, "model.embed_tokens.weight"), ids);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto a = rms(h, p + "input_layernorm");
    auto q = heads(lin(a, p + "self_attn.q_proj"), H);
    auto k = heads(lin(a, p + "self_attn.k_proj"), KV).repeat_interleave(H / KV, 1);
    auto v = heads(lin(a, p + "self_attn.v_proj"), KV).repeat_interleave(H / KV, 1);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    h = h + lin(merge(attention(q, k, v)), p + "self_attn.o_proj");
    auto m = rms(h, p + "post_attention_layernorm");
    h = h + lin(at::silu(lin(m, p + "mlp.gate_proj")) * lin(m, p + "mlp.up_proj"), p + "mlp.down_proj");
  }
  h = rms(h, "model.norm");
  const bool tied = cfg.value("tie_word_embeddings", false);
  return at::matmul(h, w(ws, tied ? "model.embed_tokens.weight" : "lm_head.weight").t());
}

struct Case {
  Arch arch;
  bool tied;
};

class Export : public ::testing::TestWithParam<Case> {};

LoadedModel noisy_model(const Case& c) {
  LoadedModel m;
  m.config.arch = c.arch;
  m.config.shape = *preset("tiny");
  m.config.tied_head = c.tied;
  m.config.seed = 11;
  m.start = StageModule::start(m.config);
  m.relays.push_back(StageModule::blocks(m.config, 0, 1));  // an uneven cut: block numbering must survive it
  m.relays.push_back(StageModule::blocks(m.config, 1, 4));
  m.end = StageModule::end(m.config, m.start->token_embedding());
  // Norm weights start at one and biases at zero: noise on everything, so a swapped or missing one shows.
  at::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(5);
  for (auto* s : {m.start.get(), m.relays[0].get(), m.relays[1].get(), m.end.get()})
    for (auto& [name, t] : s->named_parameters()) t.add_(at::randn(t.sizes(), gen) * 0.05);
  return m;
}

TEST_P(Export, HuggingFaceForwardOfTheExportedFilesGivesOurLogits) {
  const Case c = GetParam();
  auto model = noisy_model(c);
  const auto dir = ::testing::TempDir() + "/hf-export-" + std::to_string(static_cast<int>(c.arch)) + (c.tied ? "t" : "u");
  auto summary = export_hugging_face(model, dir);
  ASSERT_TRUE(summary.ok()) << summary.error();

  json cfg;
  std::ifstream(dir + "/config.json") >> cfg;
  auto file = read_safetensors(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.error();
  EXPECT_EQ(file->metadata["format"], "pt");
  EXPECT_EQ(cfg.at("architectures")[0], summary->architecture);
  EXPECT_EQ(file->tensors.count("lm_head.weight"), c.tied ? 0u : 1u);

  auto gen = at::detail::createCPUGenerator(9);
  const auto ids = at::randint(0, 256, {2, 24}, gen, at::kLong);
  at::NoGradGuard no_grad;
  auto x = model.start->forward(ids);
  for (auto& r : model.relays) x = r->forward(x);
  const auto ours = model.end->logits(x).to(at::kDouble);
  const auto theirs = c.arch == Arch::kGpt ? gpt2_logits(cfg, file->tensors, ids) : llama_logits(cfg, file->tensors, ids);
  ASSERT_EQ(ours.sizes(), theirs.sizes());
  const double err = (ours - theirs).abs().max().item<double>();
  EXPECT_LT(err, 3e-5) << "max |logit difference| against the float64 HF forward";
  EXPECT_GT(theirs.abs().max().item<double>(), 0.1) << "the logits are not trivially small";
}

INSTANTIATE_TEST_SUITE_P(Model, Export,
                         ::testing::Values(Case{Arch::kGpt, true}, Case{Arch::kGpt, false}, Case{Arch::kLlama, false},
                                           Case{Arch::kLlama, true}),
                         [](const auto& p) {
                           return std::string(p.param.arch == Arch::kGpt ? "Gpt2" : "Llama") +
                                  (p.param.tied ? "Tied" : "Untied");
                         });

TEST(Safetensors, CorruptFilesGetAnErrorNamingTheProblem) {
  const auto path = ::testing::TempDir() + "/bad.safetensors";
  ASSERT_EQ(write_safetensors(path, {{"a", at::ones({2, 3})}}), "");
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto check = [&](const std::string& content, const char* expected) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    auto r = read_safetensors(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find(expected), std::string::npos) << r.error();
  };
  check(bytes.substr(0, bytes.size() - 4), "offsets");
  check(bytes.substr(0, 5), "truncated");
  check(std::string(8, '\xff') + "{}", "truncated");
  EXPECT_EQ(write_safetensors(path, {{"a", at::ones({1})}, {"a", at::ones({1})}}), "tensor 'a' is written twice");
}

}  // namespace
}  // namespace gwtf::model
