#include "kernels/model/reference_trainer.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "kernels/model/checkpoint.hpp"
#include "kernels/model/stage_plan.hpp"

namespace gwtf::model {

namespace {

struct Stage {
  std::unique_ptr<StageModule> module;
  std::unique_ptr<AdamW> opt;
  StageId id;
  std::string file;
};

at::Tensor as_tensor(const std::vector<int64_t>& v, int64_t b, int64_t t) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).view({b, t});
}

}  // namespace

std::vector<std::string> default_corpus_files() {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/share/games/fortunes", ec)) {
    const auto name = e.path().filename().string();
    // The fortune texts have no extension; .dat are binary indexes and .u8 links to the same texts.
    if (e.is_regular_file() && !e.is_symlink() && name.find('.') == std::string::npos) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

Result<TrainResult, std::string> train_local(const TrainOptions& o, const Corpus& corpus,
                                             const std::function<void(const IterationReport&)>& progress) {
  const ModelConfig& cfg = o.model;
  const int64_t T = o.seq_len > 0 ? o.seq_len : cfg.shape.seq_len;
  if (T > cfg.shape.seq_len)
    return Err{"sequence length " + std::to_string(T) + " exceeds the model's context " +
               std::to_string(cfg.shape.seq_len)};
  if (o.microbatches < 1 || o.iterations < 0) return Err{std::string("need at least one microbatch")};
  auto plan = StagePlan::even(cfg.arch, cfg.shape, o.relay_stages, o.microbatch_size, cfg.tied_head);
  if (!plan) return Err{plan.error()};

  // Stages in pipeline order: start, relays..., end; each with its own optimizer (per-stage clipping).
  std::vector<Stage> stages;
  stages.push_back({StageModule::start(cfg), nullptr, {StageModule::Kind::kStart, 0, 0}, "stage-start.ckpt"});
  for (size_t s = 0; s < plan->relays.size(); ++s) {
    const auto& r = plan->relays[s];
    stages.push_back({StageModule::blocks(cfg, r.first_block, r.end_block), nullptr,
                      {StageModule::Kind::kBlocks, r.first_block, r.end_block},
                      "stage-" + std::to_string(s + 1) + ".ckpt"});
  }
  stages.push_back({StageModule::end(cfg, stages[0].module->token_embedding()), nullptr,
                    {StageModule::Kind::kEnd, 0, 0}, "stage-end.ckpt"});
  for (auto& s : stages) s.opt = std::make_unique<AdamW>(s.module->named_parameters(), o.optimizer);

  auto save = [&](int64_t iteration) -> std::string {
    std::error_code ec;
    std::filesystem::create_directories(o.save_dir, ec);
    if (ec) return "cannot create '" + o.save_dir + "': " + ec.message();
    for (const auto& s : stages) {
      auto err = save_checkpoint(o.save_dir + "/" + s.file, cfg, s.id, *s.module, *s.opt,
                                 static_cast<uint64_t>(iteration));
      if (!err.empty()) return err;
    }
    return "";
  };

  TrainResult result;
  if (!o.resume_dir.empty()) {
    // Every stage must come from the same iteration: a directory mixing two saves is refused.
    std::optional<uint64_t> at;
    for (auto& s : stages) {
      auto it = load_checkpoint(o.resume_dir + "/" + s.file, cfg, s.id, *s.module, *s.opt);
      if (!it) return Err{"cannot resume: " + it.error()};
      if (at && *at != *it)
        return Err{"cannot resume: '" + o.resume_dir + "' mixes iterations " + std::to_string(*at) + " and " +
                   std::to_string(*it)};
      at = *it;
    }
    result.first_iteration = static_cast<int64_t>(*at);
    if (result.first_iteration > o.iterations)
      return Err{"cannot resume: the checkpoint is at iteration " + std::to_string(*at) + ", past --iterations " +
                 std::to_string(o.iterations)};
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = result.first_iteration; i < o.iterations; ++i) {
    const auto it0 = std::chrono::steady_clock::now();
    for (auto& s : stages) s.module->zero_grad();
    double loss_sum = 0;
    for (int k = 0; k < o.microbatches; ++k) {
      auto mb = sample_microbatch(corpus.train, o.data_seed, static_cast<uint64_t>(i), static_cast<uint32_t>(k),
                                  o.microbatch_size, T);
      if (!mb) return Err{mb.error()};
      auto x = stages[0].module->forward(as_tensor(mb->tokens, mb->batch, mb->seq));
      for (size_t s = 1; s + 1 < stages.size(); ++s) x = stages[s].module->forward(x);
      auto loss = stages.back().module->forward(x, as_tensor(mb->targets, mb->batch, mb->seq));
      loss.backward();
      loss_sum += loss.item<double>();
    }
    double worst_norm = 0;
    for (auto& s : stages) {
      for (auto& [name, p] : s.module->named_parameters())
        if (p.grad().defined()) p.mutable_grad().div_(o.microbatches);  // the mean over the iteration
      worst_norm = std::max(worst_norm, s.opt->step());
    }
    const double loss = loss_sum / o.microbatches;
    result.losses.push_back(loss);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - it0).count();
    if (progress)
      progress({i, loss, static_cast<double>(o.microbatches * o.microbatch_size * T) / secs, worst_norm});
    if (!o.save_dir.empty() && o.save_every > 0 && (i + 1) % o.save_every == 0)
      if (auto err = save(i + 1); !err.empty()) return Err{err};
  }
  // Validation: fixed microbatches of the held-out stream.
  if (!corpus.validation.empty() && static_cast<int64_t>(corpus.validation.size()) > T) {
    at::NoGradGuard no_grad;
    double sum = 0;
    for (int k = 0; k < o.validation_microbatches; ++k) {
      auto mb = sample_microbatch(corpus.validation, o.data_seed ^ 0x7A11DA7E, 0, static_cast<uint32_t>(k),
                                  o.microbatch_size, T)
                    .value();
      auto x = stages[0].module->forward(as_tensor(mb.tokens, mb.batch, mb.seq));
      for (size_t s = 1; s + 1 < stages.size(); ++s) x = stages[s].module->forward(x);
      sum += stages.back().module->forward(x, as_tensor(mb.targets, mb.batch, mb.seq)).item<double>();
    }
    result.validation_loss = sum / o.validation_microbatches;
  }
  if (!o.save_dir.empty())
    if (auto err = save(o.iterations); !err.empty()) return Err{err};
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace gwtf::model
