#include "kernels/model/train_compute.hpp"

#include <set>

#include "kernels/model/checkpoint.hpp"
#include "kernels/model/data.hpp"
#include "kernels/model/stage_plan.hpp"

namespace gwtf::model {

using train::ComputeKind;

Result<std::unique_ptr<TrainCompute>, std::string> TrainCompute::create(const TrainComputeConfig& cfg,
                                                                        train::Stage stage) {
  if (!cfg.stream) return Err{std::string("no training stream")};
  if (stage > cfg.relay_stages) return Err{"stage " + std::to_string(stage) + " beyond the relay stages"};
  std::unique_ptr<TrainCompute> c(new TrainCompute());
  c->cfg_ = cfg;
  c->stage_ = stage;
  const ModelConfig& m = cfg.model;
  if (stage == 0) {
    c->start_ = StageModule::start(m);
    c->end_ = StageModule::end(m, c->start_->token_embedding());
    for (auto* s : {c->start_.get(), c->end_.get()})
      c->opts_.push_back(std::make_unique<AdamW>(s->named_parameters(), cfg.optimizer));
  } else {
    auto plan = StagePlan::even(m.arch, m.shape, cfg.relay_stages, cfg.microbatch_size, m.tied_head);
    if (!plan) return Err{plan.error()};
    const auto& r = plan->relays[static_cast<size_t>(stage - 1)];
    c->blocks_ = StageModule::blocks(m, r.first_block, r.end_block);
    c->first_block_ = r.first_block;
    c->end_block_ = r.end_block;
    c->opts_.push_back(std::make_unique<AdamW>(c->blocks_->named_parameters(), cfg.optimizer));
  }
  std::set<const void*> seen;
  for (const auto& [name, p] : c->parameters())
    if (seen.insert(p.unsafeGetTensorImpl()).second) c->params_.push_back(p);
  return c;
}

Result<std::string, std::string> TrainCompute::export_state(uint64_t iteration) const {
  if (!blocks_) return Err{std::string("a data holder's state is not transferred")};
  return encode_checkpoint(cfg_.model, StageId{StageModule::Kind::kBlocks, first_block_, end_block_}, *blocks_,
                           *opts_.front(), iteration);
}

Result<uint64_t, std::string> TrainCompute::import_state(std::string_view bytes) {
  if (!blocks_) return Err{std::string("a data holder's state is not transferred")};
  before_step_.clear();  // nothing to replay from before a state we did not compute
  return decode_checkpoint(bytes, "transferred state of stage " + std::to_string(stage_), cfg_.model,
                           StageId{StageModule::Kind::kBlocks, first_block_, end_block_}, *blocks_, *opts_.front());
}

std::vector<std::pair<std::string, at::Tensor>> TrainCompute::parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto add = [&](const char* prefix, const std::unique_ptr<StageModule>& s) {
    if (s)
      for (auto& [name, p] : s->named_parameters()) out.push_back({prefix + name, p});
  };
  add("start.", start_);
  add("blocks.", blocks_);
  add("end.", end_);
  return out;
}

at::Tensor TrainCompute::tokens(train::Iter i, train::Mb mb, bool targets) const {
  auto b = sample_microbatch(*cfg_.stream, cfg_.data_seed, i, mb, cfg_.microbatch_size, cfg_.seq_len).value();
  const auto& v = targets ? b.targets : b.tokens;
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).view({b.batch, b.seq});
}

at::Tensor TrainCompute::flat_grads() const {
  std::vector<at::Tensor> parts;
  for (const auto& p : params_)
    parts.push_back(p.grad().defined() ? p.grad().detach().reshape(-1) : at::zeros({p.numel()}, p.options()));
  return at::cat(parts);
}

void TrainCompute::set_grads(const at::Tensor& flat) {
  int64_t at = 0;
  for (auto& p : params_) {
    p.mutable_grad() = flat.slice(0, at, at + p.numel()).view_as(p).clone();
    at += p.numel();
  }
}

double TrainCompute::run(const train::ComputeTask& t, train::Blob output, BlobStore& store) {
  if (!t.replay) return compute(t, output, store);
  // The weights from before the last step, and the accumulated gradients kept aside.
  std::vector<at::Tensor> now, grads;
  {
    at::NoGradGuard no_grad;
    for (size_t k = 0; k < params_.size(); ++k) {
      now.push_back(params_[k].detach().clone());
      grads.push_back(params_[k].grad().defined() ? params_[k].grad().clone() : at::Tensor());
      if (k < before_step_.size()) params_[k].copy_(before_step_[k]);
    }
  }
  // Restored however the replay ends: a replay that throws (a bad input) must not leave the old weights in place.
  // The weights get their values back but not their version: autograd refuses every graph saved before the replay
  // ("modified by an inplace operation"), so those forwards are forgotten and their backward recomputes them.
  struct Restore {
    TrainCompute& self;
    std::vector<at::Tensor>& now;
    std::vector<at::Tensor>& grads;
    ~Restore() {
      at::NoGradGuard no_grad;
      for (size_t k = 0; k < self.params_.size(); ++k) {
        self.params_[k].copy_(now[k]);
        self.params_[k].mutable_grad() = grads[k];
      }
      self.saved_.clear();
    }
  } restore{*this, now, grads};
  return compute(t, output, store);
}

// A boundary tensor a peer sent (an activation or its gradient) must be (microbatch size, sequence, d_model) and
// finite: checked before any compute touches the accumulated gradients, so a bad one is refused (the task fails
// with this reason and the protocol does not count it) instead of poisoning the stage's sum.
std::optional<std::string> finite_problem(const at::Tensor& v) {
  if (!v.defined()) return std::string("no tensor");
  if (!v.is_floating_point() || !torch::isfinite(v).all().item<bool>())
    return std::string("holds NaN or Inf (or is not floating point)");
  return std::nullopt;
}

std::optional<std::string> boundary_problem(const at::Tensor& v, const TrainComputeConfig& cfg) {
  const std::vector<int64_t> want{cfg.microbatch_size, cfg.seq_len, cfg.model.shape.d_model};
  if (!v.defined() || v.sizes().vec() != want) {
    std::string got = v.defined() ? "" : "none";
    for (int64_t d : v.defined() ? v.sizes().vec() : std::vector<int64_t>{}) got += (got.empty() ? "" : "x") + std::to_string(d);
    return "shape " + got + ", expected " + std::to_string(want[0]) + "x" + std::to_string(want[1]) + "x" +
           std::to_string(want[2]);
  }
  return finite_problem(v);
}

void TrainCompute::check_boundary(const at::Tensor& v, const train::ComputeTask& t, const char* what) const {
  if (auto problem = boundary_problem(v, cfg_))
    throw std::runtime_error(std::string(what) + " of iteration " + std::to_string(t.iter) + " microbatch " +
                             std::to_string(t.mb) + ": " + *problem + ": refused");
}

double TrainCompute::compute(const train::ComputeTask& t, train::Blob output, BlobStore& store) {
  auto in = [&](size_t k) { return store.at(t.inputs.at(k)); };
  switch (t.kind) {  // what came from peers, before anything is computed or accumulated
    case ComputeKind::kForward:
    case ComputeKind::kEndBackward: check_boundary(in(0), t, "activation"); break;
    case ComputeKind::kBackward:
      check_boundary(in(0), t, "activation");
      check_boundary(in(1), t, "gradient");
      break;
    case ComputeKind::kStartBackward: check_boundary(in(0), t, "gradient"); break;
    default: break;
  }
  auto put = [&](at::Tensor v) {
    if (output) store[output] = std::move(v);
  };
  switch (t.kind) {
    case ComputeKind::kStartForward: {
      at::NoGradGuard no_grad;
      put(start_->forward(tokens(t.iter, t.mb, false)));
      return 0;
    }
    case ComputeKind::kForward: {
      if (t.replay) {  // answers a replay only: no backward of it will come here
        at::NoGradGuard no_grad;
        put(blocks_->forward(in(0)));
        return 0;
      }
      // Its backward usually comes here: keep the graph and skip the recomputation then.
      auto saved = blocks_->forward_saved(in(0));
      put(saved.output.detach());
      saved_[{t.iter, t.mb}] = SavedForward{in(0), std::move(saved)};
      return 0;
    }
    case ComputeKind::kEndBackward: {
      const auto targets = tokens(t.iter, t.mb, true);
      auto saved = end_->forward_saved(in(0), targets);
      const double loss = saved.output.item<double>();
      // A retraction: the loss scaled by -1 takes exactly the earlier contribution back out (backward is linear).
      const at::Tensor scale = t.retract ? -at::ones_like(saved.output) : at::Tensor();
      auto grad = end_->backward(std::move(saved), scale);
      if (!t.retract) put(grad);
      return loss;
    }
    case ComputeKind::kBackward: {
      if (t.retract) {  // the negated output gradient: the earlier contribution back out; the input gradient unused
        blocks_->backward(in(0), in(1).neg());
        return 0;
      }
      auto it = saved_.find({t.iter, t.mb});
      if (!t.replay && it != saved_.end() && it->second.input.is_same(in(0))) {
        put(blocks_->backward(std::move(it->second.saved), in(1)));
        saved_.erase(it);
        return 0;
      }
      // Another input (a redo reached this node) or the old weights of a replay: recompute.
      if (it != saved_.end() && !t.replay) saved_.erase(it);
      put(blocks_->backward(in(0), in(1)));
      return 0;
    }
    case ComputeKind::kStartBackward:
      start_->backward(tokens(t.iter, t.mb, false), t.retract ? in(0).neg() : in(0));
      return 0;
    case ComputeKind::kSnapshot:
      put(flat_grads());
      return 0;
    case ComputeKind::kExport:
    case ComputeKind::kImport:
      return 0;  // bytes, not tensors: export_state / import_state
    case ComputeKind::kSlice: {  // equal cuts of the flat sum, as every member cuts alike
      const at::Tensor& whole = in(0);
      if (t.slices == 0 || t.slice >= t.slices) throw std::runtime_error("slice out of range");
      const int64_t n = whole.numel(), k = t.slice, c = t.slices;
      put(whole.reshape(-1).narrow(0, n * k / c, n * (k + 1) / c - n * k / c).clone());
      return 0;
    }
    case ComputeKind::kConcat: {
      std::vector<at::Tensor> parts;
      int64_t total = 0;
      for (size_t k = 0; k < t.inputs.size(); ++k) parts.push_back(in(k).reshape(-1));
      for (const auto& p : params_) total += p.numel();
      at::Tensor whole = at::cat(parts);
      if (whole.numel() != total)
        throw std::runtime_error("the reduced slices hold " + std::to_string(whole.numel()) + " values, the stage " +
                                    std::to_string(total));
      put(std::move(whole));
      return 0;
    }
    case ComputeKind::kReduce: {
      at::Tensor sum;
      for (size_t k = 0; k < t.inputs.size(); ++k) sum = k == 0 ? in(k).clone() : sum.add_(in(k));
      if (!sum.defined()) sum = at::zeros({0});
      put(sum.div_(static_cast<double>(t.microbatches)));
      return 0;
    }
    case ComputeKind::kApply: {
      // Forwards of this iteration whose backward never came (redone elsewhere) are stale from now on.
      while (!saved_.empty() && saved_.begin()->first.first <= t.iter) saved_.erase(saved_.begin());
      before_step_.clear();
      for (const auto& p : params_) before_step_.push_back(p.detach().clone());
      set_grads(in(0));
      for (auto& o : opts_) o->step();
      for (auto& p : params_) p.mutable_grad() = at::Tensor();
      return 0;
    }
  }
  return 0;
}

}  // namespace gwtf::model
