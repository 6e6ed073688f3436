// The training protocol in a simulated world: TrainNode state machines with modeled compute, links that delay
// and lose messages, crashes placed exactly (at a time, or when a node starts a given piece of work), and a
// failure detector that tells each survivor after a delay. Payloads are modeled, not tensors: each blob records
// what it is (iteration, microbatch, stage), and a gradient accumulator records which contributions it holds, so
// the simulator checks the ledger itself — every microbatch contributed exactly once at every stage, every
// member of a stage applied the same reduced gradient — independently of the protocol's own bookkeeping.
#pragma once

#include <functional>
#include <iosfwd>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include "kernels/base/rng.hpp"
#include "kernels/sim/event_queue.hpp"
#include "kernels/sim/nic.hpp"
#include "kernels/train/train_node.hpp"

namespace gwtf::sim {

// Real compute inside the simulated world (the LibTorch chaos tests): the simulator still models time and checks
// its own ledger; the hook computes the tensors under the same blob ids.
class ComputeHook {
 public:
  virtual ~ComputeHook() = default;
  // Runs task `t` of `node`; a result goes under blob `output` (0: none). Returns the loss for kEndBackward.
  virtual double run(train::NodeId node, train::Stage stage, const train::ComputeTask& t, train::Blob output) = 0;
  virtual void crash(train::NodeId node) = 0;  // its memory is gone
  // A received blob: the receiver's own copy of `from`'s tensor under the handle `to`.
  virtual void alias(train::Blob from, train::Blob to) = 0;
  // A relay's weights and optimizer state after `iteration` steps as bytes (kExport), and their import into a
  // joiner (kImport; false: refused).
  virtual std::string export_state(train::NodeId node, train::Stage stage, train::Iter iteration) = 0;
  virtual bool import_state(train::NodeId node, train::Stage stage, const std::string& bytes) = 0;
};

// Routing for the training protocol (gwtf-sim run's policies): the next-stage replicas each node should use
// (the flow layer's choice in the runtime, SetNextHops). Told of crashes and joins as they happen.
class Router {
 public:
  virtual ~Router() = default;
  // At every tick, before the nodes tick: the next hops per node (nodes left out keep theirs).
  virtual std::map<train::NodeId, std::vector<train::NodeId>> route(double now) = 0;
  virtual void crashed(train::NodeId node, double now) = 0;
  virtual void joined(train::NodeId node, train::Stage stage, double now) = 0;
};

struct TrainSimConfig {
  train::TrainParams params = [] {
    train::TrainParams p;
    p.state_chunk = 16 << 10;  // the modeled state (state_bytes) travels in several chunks
    return p;
  }();
  int holders = 2;
  std::vector<int> replicas;  // per relay stage
  uint64_t seed = 1;
  double latency = 0.01;         // one way, seconds (uniform +-50% jitter)
  double forward_time = 0.1;     // per relay stage and microbatch; backward takes twice as long
  double holder_time = 0.02;     // start forward, end (loss) and start backward
  double aggregate_time = 0.01;  // snapshot, reduce, apply
  double loss_rate = 0;          // every message, acknowledgements included
  double detect_after = 0.3;     // crash -> each survivor's PeerDown (plus up to 50% jitter per survivor)
  double tick = 0.25;
  // When set, every delivered message, started task, crash and event is written here as one line (replaying a
  // failing seed with a trace is how a stall is read).
  std::ostream* trace = nullptr;
  ComputeHook* compute = nullptr;  // when set, real compute (not owned)
  uint64_t state_bytes = 128 << 10;  // a relay's modeled state (weights and optimizer), transferred to joiners
  // A world of heterogeneous links (gwtf-sim run): the one-way delay of a message of `bytes` from one node to
  // another. When set it replaces `latency`; a message weighs 256 bytes plus `tensor_bytes` per tensor it carries.
  std::function<double(train::NodeId from, train::NodeId to, uint64_t bytes)> delay;
  uint64_t tensor_bytes = 0;
  double nic_Bps = 0;  // with `delay`: each node's interface rate, shared by its connections (0: no limit; nic.hpp)
  // What the rest of the wire weighs (with `delay`), per stage (index 0: the holders' embedding and head), in
  // modeled bytes: a stage's summed gradient (GradSum, Reduced carry one) and its whole state as a joiner fetches
  // it (each chunk weighs its share of state_bytes). Empty: a sum weighs tensor_bytes, a chunk its real bytes.
  std::vector<uint64_t> sum_bytes, state_wire_bytes;
  Router* router = nullptr;  // none: every node uses every live replica of the next stage (not owned)
  // A scheduled crash (crash_at) of the one live relay of its stage that serves and holds its latest step waits
  // until another does: with every copy of a stage's state dead (newcomers still catching up hold an older one and
  // need the steps it applied) no policy could go on (gwtf-sim's churn; fault tests kill what they name).
  bool spare_last_server = false;
  // Heterogeneous compute: a node's task times are the nominal ones times this (slow_down does it per node).
  std::function<double(train::NodeId)> slowdown;
  // Called at every protocol tick with the simulated time and the iterations every live holder has stepped: a
  // progress line for long runs. Optional.
  std::function<void(double time, train::Iter stepped)> progress;
};

// Where a crash is placed: when `node` starts work of this kind for (iter, mb) (mb ignored for aggregation work).
struct CrashPoint {
  train::NodeId node = 0;
  train::ComputeKind kind = train::ComputeKind::kForward;
  train::Iter iter = 0;
  train::Mb mb = 0;
};

// Accounting of one iteration: compute in nominal seconds (a task's modeled time at speed 1), redone work and
// recovery, and when the iteration committed.
struct IterationAccount {
  double committed_at = -1;       // first node to see every stage stepped it (-1: never)
  double work_seconds = 0;        // forward/backward-type compute started for it, lost work included
  double wasted_seconds = 0;      // beyond what a run without failures computes
  uint64_t redos = 0;             // activations re-sent to a replacement
  uint64_t replays = 0;           // tasks recomputed on a stepped stage's old weights
  std::vector<double> recovery_latencies;  // crash -> first redo of the dead node's work, for redos of this iteration
  double idle_seconds = 0;        // relay time in the swarm not computing, from the previous commit to this one
  double idle_fraction = 0;       // of the relays' time in the swarm in that window
};

// The delays the deposit bound is computed for (TrainSimReport::wasted_if_durable_after): none; and a stage
// gradient of the 500m preset (238 MB) through a 4, 2 (the cities table's fastest link) and 1 Gbit/s interface.
inline constexpr double kDurableAfter[] = {0, 0.5, 1, 2};

struct TrainSimReport {
  bool finished = false;                 // every live node stepped every iteration
  double time = 0;
  std::vector<std::string> violations;   // ledger or consistency errors found by the simulator
  std::map<train::Stage, uint64_t> work_tasks;  // forward/backward-type tasks run per stage (incl. lost ones)
  uint64_t useful_tasks = 0, total_tasks = 0;
  double wasted_fraction = 0;            // compute time thrown away or redone / all compute time
  // Of it: work that died with crashed nodes in iterations they had not applied yet (their gradient sums, and
  // forwards awaiting their backward, were only theirs), over all compute time. Any design that accumulates a
  // replica's gradients locally until the iteration's reduce loses this much; the rest of the waste is recovery's.
  double crash_lost_fraction = 0;
  // Of that: work of nodes that crashed once their stage's reduce of that iteration had begun (they had snapshot
  // their sum) — what a reduce that kept a dead member's delivered cuts could save at most.
  double crash_lost_in_reduce_fraction = 0;
  // What-if bound for designs that make a relay's contributions durable elsewhere during the iteration (deposits
  // of its running sum with other nodes): the wasted fraction had every relay's microbatch (its forward and
  // backward there) survived the relay's crash once `seconds` had passed since that backward ended — and its redo
  // elsewhere never run. Optimistic: deposits cost no compute, no bandwidth and no message to say they are
  // durable, whatever their rate. Keyed by `seconds` (kDurableAfter).
  std::map<double, double> wasted_if_durable_after;
  double idle_fraction = 0;              // relay time in the swarm not computing (see IterationAccount)
  double mean_recovery_latency = 0;      // crash -> first redo of its work starting elsewhere
  std::map<train::Iter, double> loss;    // the holders' reported loss per iteration
  std::map<std::string, uint64_t> events;
  std::map<train::Iter, IterationAccount> iterations;
  uint64_t messages = 0, lost_messages = 0;
  // The ledger as the first member of a stage to apply an iteration saw it: microbatches missing from its
  // reduced sum, and contributions beyond the first (both 0 when the protocol is right).
  uint64_t lost_contributions = 0, duplicated_contributions = 0;
  uint64_t retransmissions_held = 0;  // not sent: the previous copy was still on its way (with `delay`)
  uint64_t crash_seconds_deferred = 0;  // seconds crashes waited for another replica to serve (spare_last_server)
  struct Join {
    train::NodeId node = 0;
    double seconds = 0;     // join -> serving
    train::Iter state = 0;  // the iterations its imported state had (it caught up from there)
  };
  std::vector<Join> joins;  // newcomers that got their stage's state and serve
  uint64_t departures = 0;  // nodes that left gracefully once drained
  size_t peak_buffered = 0;  // the most microbatches any relay held recovery buffers for at once
  std::map<train::NodeId, uint64_t> chunks_served;  // state chunks sent, per donor
  // When it did not finish: per stage that has not stepped the oldest unfinished iteration, the microbatches its
  // live members' sums miss or hold twice — where a stall is (empty when finished).
  std::string stall;
};

class TrainSim {
 public:
  explicit TrainSim(TrainSimConfig cfg);

  // Node ids: holders 1..H, then the relays stage by stage.
  std::vector<train::NodeId> stage_nodes(train::Stage s) const;
  void crash_at(train::NodeId n, double t);
  // A graceful leave (SIGTERM in the runtime) asked at `t`: the node goes once drained, and the others hear of it.
  void leave_at(train::NodeId n, double t);
  void crash_when(CrashPoint p);
  // The node keeps running, but every other node is told it is dead at `t` (a slow node presumed dead).
  void presume_dead_at(train::NodeId n, double t);
  void slow_down(train::NodeId n, double factor);
  // A newcomer of relay stage `s` starts at `t`: it fetches the stage's state from the live replicas and then
  // serves. Returns its id (after every founding node's).
  train::NodeId join_at(train::Stage s, double t);
  // The next `count` state chunks `donor` sends arrive with one byte flipped.
  void corrupt_chunks(train::NodeId donor, int count);
  // The next `times` results of this kind computed by `n` for `iter` (and microbatch `mb`, -1: any) hold NaN.
  void poison(train::NodeId n, train::ComputeKind kind, train::Iter iter, int times = 1, int64_t mb = -1);
  // The next `times` such results of `n` are finite, but every forward that takes one as its input fails (huge
  // values, say): an output the next stage refuses everywhere, while `n` sees nothing wrong.
  void corrupt_output(train::NodeId n, train::ComputeKind kind, train::Iter iter, int times = 1, int64_t mb = -1);

  TrainSimReport run(double time_limit);
  const train::TrainNode& node(train::NodeId n) const { return *nodes_.at(n).sm; }
  // Neither crashed nor presumed dead (a node presumed dead is out of the swarm: what it computes is its own).
  bool in_swarm(train::NodeId n) const { return !nodes_.at(n).crashed && !nodes_.at(n).expelled; }

 private:
  struct Payload {
    enum Kind { kActivation, kGradient, kSum } kind = kActivation;
    train::Iter iter = 0;
    train::Mb mb = 0;
    train::Stage stage = 0;
    std::map<train::Mb, int> start, end;  // kSum: contributions (relays use start)
    double loss = 0;
    uint64_t identity = 0;  // kSum: which reduce produced it (members must apply the same)
    bool bad = false;       // work that takes it as input fails (corrupt_output)
    std::set<train::NodeId> summed{};  // kSum: the members whose own sums it adds up
    uint32_t slice = 0, slices = 1;    // kSum: a sharded reduce's cut (slices 1: the whole)
  };
  struct Node {
    std::unique_ptr<train::TrainNode> sm;
    bool crashed = false, expelled = false;
    double speed = 1;
    std::map<train::Iter, Payload> accumulator;
    std::vector<std::pair<double, double>> busy;  // compute intervals (start, end)
    std::map<train::Iter, double> work;  // work started per iteration (as wasted_fraction counts), no replays
    std::set<train::Iter> reducing;      // iterations it cut or summed its gradients for (its stage's reduce began)
    std::map<train::Iter, std::vector<double>> backwards;  // a relay's: when each of its backwards ended, no replays
    std::map<std::tuple<int, train::Iter, int64_t>, int> poison;  // (kind, iteration, mb or -1) -> failures left
    std::map<std::tuple<int, train::Iter, int64_t>, int> bad_outputs;  // the same -> corrupt outputs left
    uint64_t chain = 0;  // fold of the reduces applied: equal on replicas in the same state
    double started = 0;
    double left = std::numeric_limits<double>::infinity();  // crashed or expelled at
    double died = std::numeric_limits<double>::infinity();  // crashed at (an expelled node still sends)
    train::Iter imported = 0;  // a newcomer: the iterations of the state it imported
    int corrupt = 0;     // chunks still to corrupt
  };
  struct Ev {
    enum Kind { kInput, kCrash, kTick, kDown, kJoin } kind = kInput;  // (a Leave is an input)
    train::NodeId node = 0;
    train::Input input;
    train::NodeId about = 0;
    double leaves = 0;  // a message: when it leaves its sender's interface (see Nic)
  };

  void deliver(train::NodeId n, const train::Input& in);
  uint64_t wire_bytes(train::NodeId from, train::Body& body);  // a message's modeled weight on the wire
  void carry_out(train::NodeId n, train::Output& out);
  void start_compute(train::NodeId n, const train::ComputeTask& t);
  void crash(train::NodeId n, const char* how = "CRASH");
  bool last_server(train::NodeId n) const;  // the one live relay of its stage that serves its latest step
  train::Blob store(Payload p);
  double task_time(const Node& node, const train::ComputeTask& t) const;
  void join(train::NodeId id, train::Stage s);
  void relay_idle(double from, double to, double& live, double& idle) const;
  std::string stall_report() const;
  std::string modeled_state(train::Stage s, train::Iter version, uint64_t chain) const;

  TrainSimConfig cfg_;
  Rng rng_;
  Nic nic_;
  std::map<std::pair<train::NodeId, uint64_t>, double> in_transit_;  // (sender, seq) -> when its latest copy arrives
  double now_ = 0;
  EventQueue<Ev> queue_;
  std::map<train::NodeId, Node> nodes_;
  std::map<train::Blob, Payload> blobs_;
  // Blobs each node released (a runtime frees their memory): a task of that node must never read one again.
  std::set<std::pair<train::NodeId, train::Blob>> released_;
  train::Blob next_blob_ = 1;
  train::NodeId next_id_ = 1;
  std::vector<CrashPoint> crash_points_;
  // Per stage and iteration: which reduce each member applied. Live members must agree; a result applied only
  // by members that died since left no trace (a new leader reduces the same contributions again).
  std::map<std::pair<train::Stage, train::Iter>, std::map<train::NodeId, uint64_t>> applied_;
  std::map<train::Iter, std::map<train::NodeId, double>> holder_loss_;  // per iteration: each holder's loss
  std::map<std::pair<train::Stage, train::Iter>, uint64_t> exported_chain_;  // a donor's chain per state exported
  std::map<train::NodeId, double> crashed_at_;
  // Per (stage, iteration): the members whose sums its applied gradient added up (the first apply's).
  std::map<std::pair<train::Stage, train::Iter>, std::set<train::NodeId>> credited_;
  std::vector<double> recovery_latencies_;
  std::map<train::NodeId, std::vector<train::NodeId>> hops_given_;  // the router's last hops per node
  TrainSimReport report_;
  uint64_t next_identity_ = 1;
};

}  // namespace gwtf::sim
