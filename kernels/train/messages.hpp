// The training protocol's inputs, messages and outputs (DESIGN §2, §5). A node's logic is a state machine: the
// runtime and the simulator feed it Inputs and carry out its Outputs. Tensors never enter the kernel: a Blob is a
// handle into the driver's store (LibTorch tensors in the runtime, modeled payloads in the simulator), so the
// protocol is LibTorch-free and runs at simulator speed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "kernels/flow/flow_node.hpp"

namespace gwtf::train {

using NodeId = flow::NodeId;
using Stage = flow::Stage;  // 0: data holders (embedding at the start, head + loss at the end); 1..S: relays
using Iter = uint64_t;
using Mb = uint32_t;
using Blob = uint64_t;      // 0: none
using TaskId = uint64_t;

// ---------------------------------------------------------------------------------------------------------------
// Messages between nodes. Every one is idempotent: a retransmission or a replay is recognised, never counted twice.

struct Activation {  // a stage's output for microbatch mb, to a node of the next stage (the holders after stage S)
  Iter iter = 0;
  Mb mb = 0;
  Blob data = 0;
  // A redo: the nodes after the receiver that already have this microbatch, stage by stage (the receiver's next
  // hop first). Following them, a replacement's replay is answered from caches instead of computed twice.
  std::vector<NodeId> route;
  // Every live replica of the receiver's stage answered Busy lately: take it beyond your buffer budget.
  bool overflow = false;
};
struct Forwarded {  // a relay to its upstream: the path microbatch mb took from it on (its next hop first)
  Iter iter = 0;
  Mb mb = 0;
  std::vector<NodeId> path;
  // Per path entry: its node is known to have received the microbatch (it answered: acknowledged, forwarded or
  // sent the gradient). An unconfirmed node after a dead one may never have got it.
  std::vector<bool> confirmed;
};
struct Gradient {  // the gradient of that activation, back to the node it came from
  Iter iter = 0;
  Mb mb = 0;
  Blob data = 0;
};
struct WhoHolds {  // the new owner of dead holders' microbatches to every stage-1 relay (also a death notice)
  Iter iter = 0;
  std::vector<NodeId> dead;  // every dead holder whose microbatches the asker now owns, ascending
};
struct Adopt {  // the answer: which microbatches of that iteration came to it from those holders or the asker
  Iter iter = 0;
  std::vector<NodeId> dead;  // the question it answers
  std::vector<Mb> held;
  std::vector<std::vector<NodeId>> paths;  // per held microbatch: the path it took from the relay on
};
struct Progress {  // a stage member to its stage leader: its whole contribution set (holders: start and end parts)
  Iter iter = 0;
  std::vector<Mb> done;
  std::vector<Mb> end_done;  // holders only
  // Grows with every report of the sender: a late retransmission of an older report is recognised (a set may
  // shrink, see Retract), and a Retract names the report it answers.
  uint64_t version = 0;
  // Contributions whose upstream (the sender of the activation) the member knows dead: nobody alive may know the
  // path through it any more, so of two copies of a microbatch the leader keeps the other one.
  std::vector<Mb> orphaned, end_orphaned;
};
// Leader to a member: take microbatch mb back out of your sum — another live member contributed it too (a
// recomputation that could not know of the first copy: the path to it died). The member subtracts it by running
// the same backward with the output gradient negated.
struct Retract {
  Iter iter = 0;
  Mb mb = 0;
  bool end = false;      // holders: the end part (loss)
  uint64_t version = 0;  // the member's Progress that listed it: a contribution made after that one is not meant
  NodeId kept = 0;       // the member whose copy stays: if it dies, the member contributes its own again
};
// A relay to the sender of an activation it did not take — in place of the acknowledgement, so the sender never
// counts it as holding the microbatch: it holds recovery buffers for as many microbatches as its budget allows
// (TrainParams::buffer_budget) until an iteration commits. The sender gives it to another replica.
struct Busy {
  Iter iter = 0;
  Mb mb = 0;
  uint64_t seq = 0;  // the activation's (a lost Busy: the sender retransmits it and hears Busy again); 0: a
                     // microbatch taken earlier and given back (its work failed twice here, see kGaveBack)
  // Not a matter of room: this replica cannot compute the microbatch (the activation was refused at its door, or
  // — always with seq 0 — its work failed twice here). When every replica refused it, the sender's output is
  // suspect (see kRefusedEverywhere).
  bool refused = false;
};
// A member to every other: I take no new work (route around me) and leave once the iterations I have work or
// buffers in are committed — a graceful leave that leaves nothing to redo.
struct Leaving {};
struct Collect {  // leader to members: the stage's work is complete, send your gradient sums
  Iter iter = 0;
  // A sharded reduce (TrainParams::sharded_reduce): the members who own a slice each, in slice order, and this
  // leader's attempt at the iteration's reduce (a member answers only the latest). Empty: the whole sum goes to
  // the leader in the GradSum.
  uint64_t round = 0;
  std::vector<NodeId> owners{};
};
struct GradSum {  // member to leader: its summed gradient and exactly which contributions it holds
  Iter iter = 0;
  std::vector<Mb> done;
  std::vector<Mb> end_done;
  Blob data = 0;
  double loss_sum = 0;  // holders: the losses of its end contributions
  uint64_t version = 0;  // the member's last Progress of the iteration when it summed (orders retransmissions)
  uint64_t round = 0;    // the Collect it answers
  bool sliced = false;   // the sum went to the Collect's owners as Slices (data is empty)
};
// A sharded reduce's data: slice `index` of `count` of a member's sum, to that slice's owner (reduced = false,
// `version` is the GradSum's), or of the reduced gradient, from its owner to the plan's recipients (reduced = true).
// (leader, round) name the Collect it belongs to.
struct Slice {
  Iter iter = 0;
  NodeId leader = 0;
  uint64_t round = 0;
  uint64_t version = 0;
  uint32_t index = 0, count = 0;
  bool reduced = false;
  Blob data = 0;
};
// Leader to every member that answered (`recipients`) of a sharded reduce: owners reduce their slice over these
// members' sums (member order, the versions their GradSums named) and send it to every recipient; the ledger
// entry and loss every recipient's Reduced will carry.
struct ReducePlan {
  Iter iter = 0;
  uint64_t round = 0;
  std::vector<NodeId> owners{};
  std::vector<NodeId> members{};
  std::vector<uint64_t> versions{};
  double loss = 0;
  std::vector<Mb> done{}, end_done{};
  std::vector<NodeId> recipients{};
};
// Member to leader: it assembled and applies the sharded reduce's gradient (the step may be announced once every
// live recipient did).
struct Assembled {
  Iter iter = 0;
};
struct Reduced {  // leader to members: the reduced gradient every member applies (they stay bit-identical)
  Iter iter = 0;
  Blob data = 0;
  double loss = 0;  // holders' stage: the iteration's mean loss
  // Every member's contributions it sums, concatenated and sorted (each microbatch once): the stage's ledger entry
  // for the iteration, logged by whoever applies it — also for a member that dies before applying it.
  std::vector<Mb> done, end_done;
};
struct Committed {  // leader to everyone: this stage stepped for iteration `iter`
  Iter iter = 0;
  Stage stage = 0;
};
// One of a stage's most senior serving members to the stages before it on a path, before Committed: it applied
// iteration `iter`, so the stage has a result that sums every microbatch once — also a member's that died since.
// Knowledge for redos (a dead node's part in it needs no recomputation), good while that member lives: every later
// leader gets the result from it (TrainParams::step_announcers).
struct StepApplied {
  Iter iter = 0;
  Stage stage = 0;
};
// Joining (state transfer, kernels/train/state_transfer.hpp).
struct StateManifest {  // a donor's state: after `version` iterations, in chunks of chunk_size bytes
  Iter version = 0;
  uint64_t size = 0;
  uint32_t chunk_size = 0;
  std::vector<uint32_t> chunk_crcs;  // CRC-32 per chunk
  uint32_t crc = 0;                  // of the whole state
};
struct StateAsk {};  // a joiner to a live replica of its stage: offer your state
struct StateOffer {  // the answer
  StateManifest manifest;
};
struct ChunkAsk {
  Iter version = 0;
  uint32_t index = 0;
};
struct Chunk {
  Iter version = 0;
  uint32_t index = 0;
  std::string bytes;
};
struct StateDone {};  // the joiner imported the state: the donor may drop its copy
// A member serves its stage from now on. Seniority orders a stage's members for leadership — founders 0, a
// joiner one more than the iterations its state had — so a newcomer never takes over a running reduce.
struct Ready {
  uint64_t seniority = 0;
};
struct Ack {
  uint64_t seq = 0;
};

using Body = std::variant<Activation, Forwarded, Gradient, WhoHolds, Adopt, Progress, Collect, GradSum, Reduced,
                          Committed, StateAsk, StateOffer, ChunkAsk, Chunk, StateDone, Ready, Retract, Leaving,
                          Busy, Ack, Slice, ReducePlan, Assembled, StepApplied>;

struct Message {
  NodeId from = 0, to = 0;
  uint64_t seq = 0;  // reliable delivery: the receiver acknowledges it; 0 for an Ack
  Body body;
};

const char* body_name(const Body& b);

// Calls f(Blob&) on every blob field of `b` (the tensors a message carries): a runtime swaps its own handles for
// the frame's tensor indices and back.
template <class F>
void for_each_blob(Body& b, F&& f) {
  if (auto* a = std::get_if<Activation>(&b)) f(a->data);
  else if (auto* g = std::get_if<Gradient>(&b)) f(g->data);
  else if (auto* s = std::get_if<GradSum>(&b)) f(s->data);
  else if (auto* r = std::get_if<Reduced>(&b)) f(r->data);
  else if (auto* c = std::get_if<Slice>(&b)) f(c->data);
}

// ---------------------------------------------------------------------------------------------------------------
// Compute, an output; its completion, an input. The driver owns the stage's weights and its gradient accumulator.

enum class ComputeKind : uint8_t {
  kStartForward,   // holder: tokens of (iter, mb) -> activation                             (no input blob)
  kForward,        // relay: activation in -> activation out
  kEndBackward,    // holder: activation -> loss, gradient of the activation; accumulates the head's gradients
  kBackward,       // relay: (input, output gradient) -> input gradient; accumulates the stage's gradients
  kStartBackward,  // holder: output gradient -> accumulates the embedding's gradients
  kSnapshot,       // the accumulated gradient sum of `iter` -> a blob (sent in a GradSum)
  kReduce,         // leader (or a slice's owner): member sums (slices) in member order -> their mean
  kApply,          // optimizer step with the reduced gradient `inputs[0]`; clears the accumulator of `iter`
  kExport,         // the stage's weights and optimizer state, serialized -> ComputeDone::state
  kImport,         // ComputeTask::state -> the stage's weights and optimizer state (after `iter` iterations)
  kSlice,          // a sum `inputs[0]` -> its slice `slice` of `slices` (equal cuts of the flat vector)
  kConcat,         // the reduced slices, in order -> the whole reduced gradient
};
const char* compute_name(ComputeKind k);
bool is_work(ComputeKind k);  // forward/backward-type work on a microbatch (not aggregation)

struct ComputeTask {
  TaskId id = 0;
  ComputeKind kind = ComputeKind::kForward;
  Iter iter = 0;
  Mb mb = 0;
  std::vector<Blob> inputs;
  uint32_t microbatches = 0;  // kReduce: the divisor
  uint32_t slice = 0, slices = 0;  // kSlice: which cut; kReduce of slices: the cut it reduces (slices 0: whole)
  std::pair<NodeId, uint64_t> attempt{0, 0};  // kSlice/kReduce of slices/kConcat: the Collect (leader, round)
  // Work of an iteration this node already stepped, recomputed only to answer a replay (a neighbour died with the
  // cached answer): it runs on the weights from before that step — the driver keeps one such copy — and
  // accumulates nothing (no gradient, no loss).
  bool replay = false;
  // kBackward/kStartBackward/kEndBackward: the same work with the output gradient (the loss) negated, which takes
  // this node's earlier contribution of the microbatch back out of its accumulator (a Retract); sends nothing.
  bool retract = false;
  std::shared_ptr<const std::string> state;  // kImport
};

struct ComputeDone {
  TaskId id = 0;
  Blob output = 0;  // kForward/kStartForward: activation; kBackward/kEndBackward: gradient; kSnapshot/kReduce: sum
  double loss = 0;  // kEndBackward
  bool finite = true;  // false: the result holds NaN/Inf (rejected; the work is redone)
  std::shared_ptr<const std::string> state;  // kExport; empty on kImport: the state was refused
};

// ---------------------------------------------------------------------------------------------------------------
// Inputs and outputs of TrainNode::step.

struct Receive {
  Message msg;
};
using flow::PeerDown;  // membership inputs are the flow layer's: the runtime feeds both machines the same events
using flow::PeerUp;
using flow::Tick;
struct Finished {
  ComputeDone done;
};
// The flow layer's current choice of next-stage replicas for this node, each listed once per flow through it (its
// share of the microbatches), cheapest first (each microbatch goes to the first whose flows are not all carrying
// one); empty: any live one.
struct SetNextHops {
  std::vector<NodeId> hops;
};
// A newcomer of `stage` without state yet: it serves once its Ready arrives. (A PeerUp is a founding member, ready
// from the start.)
struct PeerJoining {
  NodeId peer = 0;
  Stage stage = 0;
};
// The driver asks this node to leave gracefully (SIGTERM): it announces Leaving, takes no new work, and is
// drained() once what it holds is committed. A holder begins no further iteration (its data passes to the other
// holders when it is gone).
struct Leave {};
// A message the driver refused at its door (a tensor of the wrong shape, or holding NaN/Inf): its blobs never
// existed. An activation is answered Busy-refused, so its sender gives it to another replica instead of
// retransmitting the same bytes forever; anything else is left to its sender's retransmission.
struct RefusedAtDoor {
  Message msg;
};
using Input = std::variant<Receive, Tick, PeerUp, PeerDown, Finished, SetNextHops, PeerJoining, Leave, RefusedAtDoor>;

enum class EventKind : uint8_t {
  kDroppedFromDead,     // a message from a peer presumed dead (a late answer): dropped
  kDroppedUnknown,      // from a peer not in the membership: dropped
  kDroppedStale,        // work for an iteration this stage already committed: dropped
  kDuplicate,           // a replay or retransmission recognised: nothing recomputed
  kRejectedNonFinite,   // a NaN/Inf result: thrown away, recomputed
  kRedo,                // work re-sent to another replica of a dead node's stage
  kAdopted,             // a dead holder's microbatches taken over
  kStepped,             // this node applied the reduced gradient of an iteration
  kIterationCommitted,  // every stage stepped: the iteration's buffers are freed
  kRejectedChunk,       // a state chunk whose checksum did not match: asked again from another donor
  kJoined,              // this newcomer imported its stage's state and serves (value: the state's iterations)
  kDoubleContribution,  // leader: two live members contributed microbatch mb (peer: the second); one must retract
  kRetracted,           // this node took microbatch mb back out of its sum (value: 1 for a holder's end part)
  kBusy,                // a relay at its buffer budget turned microbatch mb away (peer: the sender)
  kOverBudget,          // ... or took it beyond the budget: every replica of its stage was full (value: buffered)
  kGaveBack,            // a forward or backward failed twice here (a bad input or device), or a leaver had not begun
                        // it: the sender gives it to another replica of this stage (peer: the sender)
  kDroppedMisrouted,    // a message its sender's stage never sends to this one (a broken or hostile peer): dropped
  kRefusedAtDoor,       // an activation whose tensor the driver refused: answered Busy-refused (peer: the sender)
  // Every live replica of the next stage refused this node's output of microbatch mb: the output is suspect. A
  // relay gives the microbatch back to its own sender (another replica of its stage computes it), a holder
  // regenerates it (value: how many times it was refused everywhere).
  kRefusedEverywhere,
  kUnprocessable,       // a holder: refused everywhere again after regenerating it (the model or the data give
                        // NaN/Inf): the iteration cannot commit; sent on again (value: times refused everywhere)
  kTakenBack,           // a relay: every sender it gave microbatch mb back to died before taking it: its work is
                        // retried here
};
const char* event_name(EventKind k);

// Which stage may send a message to which: work flows forward one stage at a time (activations), gradients flow
// back one stage, and a stage's reduce and state transfers stay within the stage. Holders are stage 0, before
// stage 1 and after stage `relay_stages`. Anything else comes from a broken or hostile peer.
bool may_send(const Body& b, Stage from, Stage to, Stage relay_stages);

struct Event {
  EventKind kind;
  Iter iter = 0;
  Mb mb = 0;
  NodeId peer = 0;
  double value = 0;  // kStepped on holders: the iteration's loss; kJoined: the iterations of the imported state
};

// With each kStepped: this node's contributions in the reduce it applied (holders: start part, end part), and the
// whole reduce's (Reduced::done) — the ledger a runtime logs (the iteration's state may be freed within the step).
struct Applied {
  Iter iter = 0;
  std::vector<Mb> done, end_done;
  std::vector<Mb> stage_done, stage_end_done;
};

struct Output {
  std::vector<Message> send;
  std::vector<ComputeTask> compute;
  std::vector<Blob> release;  // buffers the driver may free
  std::vector<Event> events;
  std::vector<Applied> applied;
  void clear() {
    send.clear();
    compute.clear();
    release.clear();
    events.clear();
    applied.clear();
  }
};

}  // namespace gwtf::train
