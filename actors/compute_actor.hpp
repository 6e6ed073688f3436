// The compute actor: a node's LibTorch work (kernels/model/train_compute) in a detached actor, so a long
// forward or backward never blocks CAF's scheduler or the node actor's messages. It takes one ComputeJob at a
// time from its node actor and answers with a ComputeResult.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/blob_store.hpp"
#include "kernels/model/train_compute.hpp"
#include "kernels/train/messages.hpp"

namespace gwtf {

struct ComputeJob {
  train::ComputeTask task;
  train::Blob output = 0;  // where a result goes (reserved by the node actor)
};
struct ComputeResult {
  train::ComputeDone done;
  double seconds = 0;  // wall time the task took
};

// Fault injection for tests and the demo: when the node starts this task, the process kills itself (SIGKILL, no
// goodbye) — or, with `actor_only`, the node actor is killed (exit reason kill), for swarms inside one process.
struct DieAt {
  train::ComputeKind kind = train::ComputeKind::kBackward;
  train::Iter iter = 0;
  int64_t mb = -1;  // -1: any microbatch
  bool actor_only = false;
  bool or_later = false;  // also any later iteration (the routing may give this node no such task in `iter`)

  bool matches(const train::ComputeTask& t) const {
    return t.kind == kind && (t.iter == iter || (or_later && t.iter > iter)) && !t.replay && !t.retract &&
           (mb < 0 || !train::is_work(t.kind) || t.mb == mb);
  }
};

// Where a compute actor leaves its stage's parameters (copies) when it ends.
struct ParameterSink {
  std::mutex mu;
  std::vector<std::pair<std::string, at::Tensor>> parameters;
};

struct ComputeSetup {
  model::TrainComputeConfig config;
  train::Stage stage = 0;
  std::shared_ptr<SharedBlobs> blobs;
  std::optional<DieAt> die_at;
  std::shared_ptr<ParameterSink> parameters;  // none: not kept
};

// `node` gets every ComputeResult. Creating the stage's model is the actor's first act; a failure ends it with
// the reason (the node actor, monitoring it, stops the node). It ends when its node does.
caf::behavior compute_actor(caf::event_based_actor* self, ComputeSetup setup, caf::actor node);

}  // namespace gwtf

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::ComputeJob)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::ComputeResult)
