#include "actors/compute_actor.hpp"

#include "actors/actor_clock.hpp"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>

namespace gwtf {

namespace {

bool finite(const at::Tensor& t) {
  return !t.defined() || !t.is_floating_point() || torch::isfinite(t).all().item<bool>();
}

}  // namespace

caf::behavior compute_actor(caf::event_based_actor* self, ComputeSetup setup, caf::actor node) {
  auto created = model::TrainCompute::create(setup.config, setup.stage);
  if (!created) {
    spdlog::error("cannot build stage {}: {}", setup.stage, created.error());
    self->quit(caf::sec::invalid_argument);
    return {};
  }
  std::shared_ptr<model::TrainCompute> compute = std::move(created).value();
  self->monitor(node);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  if (setup.parameters)
    self->attach_functor([compute, sink = setup.parameters] {
      std::lock_guard<std::mutex> lock(sink->mu);
      sink->parameters.clear();
      for (auto& [name, p] : compute->parameters()) sink->parameters.emplace_back(name, p.detach().clone());
    });
  return {
      [=](ComputeJob& job) {
        const auto& t = job.task;
        if (setup.die_at && setup.die_at->matches(t)) {
          spdlog::warn("fault injection: killed while starting {} of iteration {} microbatch {}",
                       train::compute_name(t.kind), t.iter, t.mb);
          spdlog::default_logger()->flush();
          if (!setup.die_at->actor_only) std::raise(SIGKILL);
          self->send_exit(node, caf::exit_reason::kill);
          self->quit(caf::exit_reason::kill);
          return;
        }
        const auto began = self->clock().now();
        ComputeResult r;
        r.done.id = t.id;
        if (t.kind == train::ComputeKind::kExport) {
          auto state = compute->export_state(t.iter);
          if (state) r.done.state = std::make_shared<const std::string>(std::move(state).value());
          else spdlog::error("export of the stage state failed: {}", state.error());
        } else if (t.kind == train::ComputeKind::kImport) {
          Result<uint64_t, std::string> imported = Err{std::string("no state")};
          if (t.state) imported = compute->import_state(*t.state);
          if (!imported) {
            spdlog::error("refused the received stage state: {}", imported.error());
            r.done.finite = false;
          }
        } else {
          // TrainCompute reads its inputs from a store and writes its result into it: hand it the inputs only.
          model::BlobStore local;
          for (auto b : t.inputs)
            if (auto v = setup.blobs->get(b); v.defined()) local[b] = v;
          try {
            r.done.loss = compute->run(t, job.output, local);
            if (auto it = local.find(job.output); job.output != 0 && it != local.end()) {
              r.done.output = job.output;
              r.done.finite = finite(it->second);
              setup.blobs->put(job.output, it->second);
            }
            if (!std::isfinite(r.done.loss)) r.done.finite = false;
          } catch (const std::exception& e) {
            // A tensor of the wrong shape from a peer fails here: the result is refused and the work redone.
            spdlog::error("{} of iteration {} microbatch {} failed: {}", train::compute_name(t.kind), t.iter, t.mb,
                          e.what());
            r.done.finite = false;
          }
        }
        r.seconds = seconds_since(self, began);
        self->send(node, std::move(r));
      },
  };
}

}  // namespace gwtf
