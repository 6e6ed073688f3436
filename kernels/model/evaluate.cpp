#include "kernels/model/evaluate.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>

#include "kernels/model/checkpoint.hpp"
#include "kernels/model/optimizer.hpp"

namespace gwtf::model {

Result<LoadedModel, std::string> load_model(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Err{"checkpoint directory '" + dir + "' does not exist"};
  std::vector<std::pair<std::string, CheckpointInfo>> found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("stage-", 0) != 0 || e.path().extension() != ".ckpt") continue;
    auto info = read_checkpoint_info(e.path().string());
    if (!info) return Err{info.error()};
    found.push_back({e.path().string(), std::move(info).value()});
  }
  if (found.empty()) return Err{"no stage-*.ckpt files in '" + dir + "'"};
  LoadedModel m;
  m.config = found.front().second.config;
  m.iteration = found.front().second.iteration;
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::make_pair(static_cast<int>(a.second.stage.kind), a.second.stage.first_block) <
           std::make_pair(static_cast<int>(b.second.stage.kind), b.second.stage.first_block);
  });
  int next_block = 0;
  const std::string* start_file = nullptr;
  const std::string* end_file = nullptr;
  for (const auto& [file, info] : found) {
    if (config_hash(info.config) != config_hash(m.config)) return Err{"'" + file + "' is of another model"};
    if (info.iteration != m.iteration)
      return Err{"'" + file + "' is of iteration " + std::to_string(info.iteration) + ", others of " +
                 std::to_string(m.iteration)};
    if (info.stage.kind == StageModule::Kind::kStart) start_file = &file;
    if (info.stage.kind == StageModule::Kind::kEnd) end_file = &file;
    if (info.stage.kind != StageModule::Kind::kBlocks) continue;
    if (info.stage.first_block != next_block)
      return Err{"stage checkpoints do not cover block " + std::to_string(next_block) + " exactly once"};
    next_block = info.stage.end_block;
  }
  if (!start_file || !end_file) return Err{"'" + dir + "' lacks the start or the end stage"};
  if (next_block != m.config.shape.layers)
    return Err{"stage checkpoints cover " + std::to_string(next_block) + " of " +
               std::to_string(m.config.shape.layers) + " blocks"};
  auto load = [&](const std::string& file, const StageId& id, StageModule& module) -> std::string {
    AdamW unused(module.named_parameters(), {});
    auto r = load_checkpoint(file, m.config, id, module, unused);
    return r.ok() ? "" : r.error();
  };
  m.start = StageModule::start(m.config);
  if (auto err = load(*start_file, {StageModule::Kind::kStart, 0, 0}, *m.start); !err.empty()) return Err{err};
  for (const auto& [file, info] : found) {
    if (info.stage.kind != StageModule::Kind::kBlocks) continue;
    m.relays.push_back(StageModule::blocks(m.config, info.stage.first_block, info.stage.end_block));
    if (auto err = load(file, info.stage, *m.relays.back()); !err.empty()) return Err{err};
  }
  m.end = StageModule::end(m.config, m.start->token_embedding());
  if (auto err = load(*end_file, {StageModule::Kind::kEnd, 0, 0}, *m.end); !err.empty()) return Err{err};
  return m;
}

Result<EvalResult, std::string> evaluate(LoadedModel& model, const std::vector<int32_t>& tokens,
                                         int64_t max_windows) {
  const int64_t L = model.config.shape.seq_len;
  int64_t windows = static_cast<int64_t>(tokens.size()) / L;
  if (max_windows > 0) windows = std::min(windows, max_windows);
  if (windows == 0)
    return Err{"the data has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
               std::to_string(L)};
  at::NoGradGuard no_grad;
  double sum = 0;
  for (int64_t w = 0; w < windows; ++w) {
    std::vector<int64_t> window(tokens.begin() + w * L, tokens.begin() + (w + 1) * L);
    auto t = at::tensor(window, at::TensorOptions().dtype(at::kLong)).view({1, L});
    auto x = model.start->forward(t.narrow(1, 0, L - 1));
    for (auto& r : model.relays) x = r->forward(x);
    sum += model.end->forward(x, t.narrow(1, 1, L - 1).contiguous()).item<double>();
  }
  return EvalResult{sum / static_cast<double>(windows), windows};
}

}  // namespace gwtf::model
