// FlowSim: N FlowNode state machines in one process, driven by the discrete-event engine with modeled link
// delays (latency + bytes/bandwidth), message loss, crashes and joins — all from one seed (DESIGN §2).
//
// Ground truth lives here, not in the nodes: measure() follows the hop chains the nodes hold and prices them with
// the instance's true edge costs; check_invariants() checks every node plus the global properties (every
// counted flow visits each stage once and ends at a data holder; no hop is known to one end only, once quiet).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/base/rng.hpp"
#include "kernels/flow/flow_node.hpp"
#include "kernels/flow/instance.hpp"
#include "kernels/sim/event_queue.hpp"

namespace gwtf::sim {

struct FlowSimConfig {
  flow::FlowParams params;
  double loss = 0;                 // probability that a message is lost
  double detection_delay = 2.0;    // (periods) from a crash until its neighbours get PeerDown
  bool check_every_event = false;  // local invariants of the stepping node after every event, global ones
                                   // after every round (property tests)
  // Called with every input just before a node steps on it (tracing, tests).
  std::function<void(double now, flow::NodeId node, const flow::Input& input)> on_input;
  // One-way delay of a message of `bytes` from a to b; default: latency 1-5% of a period, ample bandwidth.
  std::function<double(flow::NodeId, flow::NodeId, size_t)> delay;
};

struct FlowStats {
  uint32_t flow_value = 0;
  double total_cost = 0;
  double max_path_cost = 0;
  std::vector<std::vector<flow::NodeId>> paths;
  // Flows a holder sinks beyond its capacity: slots it lent to reroutes and has not got back yet (it takes them
  // back after lend_timeout, not while frozen). The oracle never exceeds a capacity, so such a snapshot can read
  // cheaper than the optimum.
  uint32_t sink_excess = 0;
};

class FlowSim {
 public:
  FlowSim(flow::Instance instance, FlowSimConfig config, uint64_t seed);

  // Advances the simulated time by `rounds` tick periods. Returns false (and stops) when an invariant broke
  // and check_every_event is on; violation() says which.
  bool run_rounds(int rounds);
  // Advances the simulated time to `t` (no invariant checks at round ends): lockstep with another engine.
  bool run_until(double t);
  // Stops injecting loss and new annealing moves, lets anti-entropy settle what moves in flight left, then drains
  // every message in flight without further ticks: afterwards no message is in flight and the system is quiet.
  bool quiesce(int settle_rounds);

  // Nodes start no annealing moves or reroutes while frozen (see FlowNode::set_frozen).
  void set_frozen(bool frozen);
  void crash(flow::NodeId id);             // now; neighbours learn it after detection_delay
  // Now: the node starts, linked to `links` (adjacent-stage peers with their edge cost; same-stage peers with
  // kInfCost), and every linked peer learns of it.
  void join(const flow::NodeSpec& spec, const std::vector<std::pair<flow::NodeId, double>>& links);

  FlowStats measure() const;
  std::string check_invariants(bool quiet) const;
  const std::string& violation() const { return violation_; }

  const flow::Instance& instance() const { return instance_; }
  double now() const { return now_; }
  int round() const { return static_cast<int>(now_ / config_.params.period + 1e-9); }
  uint64_t messages_sent() const { return messages_; }
  uint64_t trace_hash() const { return trace_; }  // FNV-1a over every event processed: equal runs, equal hash
  const flow::FlowNode* node(flow::NodeId id) const;
  // Wall-clock seconds spent inside the nodes' step() on delivered messages, ticks and detections: the
  // protocol's own work, without the engine, the measurements or the oracle (a bench figure; never an input).
  double step_seconds() const { return step_seconds_; }

 private:
  struct Deliver {
    flow::NodeId from, to;
    flow::FlowBody body;
  };
  struct TickAt {
    flow::NodeId node;
  };
  struct Detect {
    flow::NodeId observer, dead;
  };
  using Event = std::variant<Deliver, TickAt, Detect>;

  void start_node(const flow::NodeSpec& spec, double first_tick);
  void introduce(flow::NodeId a, flow::NodeId b);
  void deliver_outputs(flow::NodeId from, flow::Output& out);
  bool process(double time, Event& e);
  void step(flow::FlowNode& node, const flow::Input& input, flow::Output& out);
  void hash(uint64_t v);

  flow::Instance instance_;
  FlowSimConfig config_;
  Rng rng_;
  EventQueue<Event> queue_;
  std::map<flow::NodeId, std::unique_ptr<flow::FlowNode>> nodes_;
  double now_ = 0;
  bool ticking_ = true;
  bool frozen_ = false;
  double loss_ = 0;
  uint64_t messages_ = 0, processed_ = 0;
  double step_seconds_ = 0;
  uint64_t trace_ = 1469598103934665603ull;
  std::string violation_;
};

}  // namespace gwtf::sim
