// bench/model: forward+backward throughput of the models, and what cutting a model into pipeline stages costs in
// one process — the chain with each stage keeping its autograd state, and the chain recomputing each stage's
// forward in its backward (what a replica that did not run the forward does) — as ratios of time to the
// monolithic graph, measured interleaved in one run.
//
// Usage: model_bench [--reps 5] [--stages 2]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/model/stage_module.hpp"
#include "kernels/model/stage_plan.hpp"

using namespace gwtf::model;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Model {
  std::unique_ptr<StageModule> start, end;
  std::vector<std::unique_ptr<StageModule>> relays;
  void zero() {
    start->zero_grad();
    for (auto& r : relays) r->zero_grad();
    end->zero_grad();
  }
};

Model build(const ModelConfig& cfg, const StagePlan& plan) {
  Model m;
  m.start = StageModule::start(cfg);
  for (const auto& s : plan.relays) m.relays.push_back(StageModule::blocks(cfg, s.first_block, s.end_block));
  m.end = StageModule::end(cfg, m.start->token_embedding());
  return m;
}

double monolithic(Model& m, const at::Tensor& x, const at::Tensor& y) {
  const auto t0 = Clock::now();
  m.zero();
  auto h = m.start->forward(x);
  for (auto& r : m.relays) h = r->forward(h);
  m.end->forward(h, y).backward();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double chain_saved(Model& m, const at::Tensor& x, const at::Tensor& y) {
  const auto t0 = Clock::now();
  m.zero();
  std::vector<StageModule::Saved> saved;
  saved.push_back(m.start->forward_saved(x));
  for (auto& r : m.relays) saved.push_back(r->forward_saved(saved.back().output.detach()));
  auto end = m.end->forward_saved(saved.back().output.detach(), y);
  auto g = m.end->backward(std::move(end), {});
  for (size_t i = m.relays.size(); i-- > 0;) g = m.relays[i]->backward(std::move(saved[i + 1]), g);
  m.start->backward(std::move(saved[0]), g);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double chain_recompute(Model& m, const at::Tensor& x, const at::Tensor& y) {
  const auto t0 = Clock::now();
  m.zero();
  std::vector<at::Tensor> inputs;
  at::Tensor h;
  {
    at::NoGradGuard no_grad;
    h = m.start->forward(x);
    for (auto& r : m.relays) {
      inputs.push_back(h);
      h = r->forward(h);
    }
  }
  auto g = m.end->backward(h, {}, y);
  for (size_t i = m.relays.size(); i-- > 0;) g = m.relays[i]->backward(inputs[i], g);
  m.start->backward(x, g);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5, stages = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--reps") reps = std::stoi(argv[i + 1]);
    else if (f == "--stages") stages = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: model_bench [--reps N] [--stages S]\n");
      return 2;
    }
  }
  at::set_num_threads(1);
  std::printf("bench/model: 1 torch thread, microbatch 4 x context, %d relay stages, median of %d interleaved reps\n\n",
              stages, reps);
  std::printf("| model | tokens/s (monolithic fwd+bwd) | chain, saved state / monolithic | chain, recomputing / "
              "monolithic |\n|---|---|---|---|\n");
  for (const char* name : {"tiny", "small"})
    for (Arch arch : {Arch::kGpt, Arch::kLlama}) {
      ModelConfig cfg;
      cfg.arch = arch;
      cfg.shape = *preset(name);
      cfg.tied_head = arch == Arch::kGpt;
      const auto plan = StagePlan::even(arch, cfg.shape, stages, 4).value();
      Model m = build(cfg, plan);
      const int64_t T = cfg.shape.seq_len;
      auto tokens = at::randint(0, cfg.shape.vocab, {4, T + 1}, at::TensorOptions().dtype(at::kLong));
      auto x = tokens.narrow(1, 0, T).contiguous(), y = tokens.narrow(1, 1, T).contiguous();
      monolithic(m, x, y);  // warm-up
      std::vector<double> mono, saved, recompute;
      for (int r = 0; r < reps; ++r) {
        mono.push_back(monolithic(m, x, y));
        saved.push_back(chain_saved(m, x, y));
        recompute.push_back(chain_recompute(m, x, y));
      }
      std::printf("| %s %s | %.0f | %.3f | %.3f |\n", name, arch == Arch::kGpt ? "gpt" : "llama",
                  static_cast<double>(4 * T) / median(mono), median(saved) / median(mono),
                  median(recompute) / median(mono));
      std::fflush(stdout);
    }
  return 0;
}
