// FlowNode: one node's side of the decentralized flow protocol, as a pure state machine (docs/flow.md).
//
// Inputs (step): a message from a peer, a tick with the current time, a peer up or down, a link-cost
// measurement. Outputs (appended to an Output the caller drains): messages to send and events. No clock,
// thread, socket or global randomness: time arrives with each input, randomness from the Rng it is given.
//
// A flow is a chain of hops: data holder (source) -> one relay per stage -> data holder (sink). A relay matches
// each in-hop to one out-hop; an out-hop without an in-hop is a reserved path to a sink that it offers to the
// previous stage; an in-hop without an out-hop (its onward path died) is an orphan that must be re-routed or
// pushed back. Capacity bounds the out-hops (every flow through a relay, matched or reserved).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "kernels/base/rng.hpp"
#include "kernels/flow/messages.hpp"

namespace gwtf::flow {

struct FlowParams {
  double period = 1.0;              // tick period: one protocol round
  uint32_t max_free_outs = 1;       // reserved paths a relay builds ahead of upstream demand
  int request_attempts = 5;         // a request is re-sent this many times before giving up
  double request_timeout = 1.0;     // (periods) before a request is re-sent
  double idle_timeout = 12.0;       // (periods) a reserved path nobody takes is released after this
  double orphan_timeout = 2.0;      // (periods) an orphaned in-hop is pushed back after this
  double grace = 3.0;               // (periods) anti-entropy leaves younger hops alone (messages in flight)
  int advert_every = 3;             // rounds between unconditional Offer broadcasts
  int snapshot_every = 2;           // rounds between Snapshots to same-stage peers
  int check_every = 3;              // rounds between CheckFlows
  double stale_tolerance = 1e-9;    // relative: a request expecting a cheaper suffix than mine is refused
  // Annealing (docs/flow.md "moves and their score").
  double move_probability = 0.5;    // per round, chance that a relay looks for a move
  double temperature0 = 1.5;        // initial temperature, in units of the node's mean link cost
  double cooling_per_round = 0.98;
  double cooling_per_move = 0.95;
  double max_weight = 1.0;          // weight of the larger affected path in a move's score (0: total cost only)
  // Reroutes onto new paths (docs/flow.md, "Reroute onto a new path"): a flow moves when the potential through
  // relays with room is cheaper than its suffix; its sink lends up to sink_spare slots beyond capacity meanwhile.
  bool new_path_reroutes = true;
  // Two flows through a node that end at each other's source exchange their onward paths (home_crossing_flows),
  // if neither new path exceeds home_slack x the node's longest path (1.5: geo total cost p90 1.091 -> 1.056);
  // 0: never.
  double home_slack = 1.5;
  uint32_t sink_spare = 4;
  // (periods) a slot lent beyond capacity that no released old path gave back by then (the old path ended at
  // another sink after all) is taken back: the sink pushes back its dearest in-hop.
  double lend_timeout = 40.0;
  double proposal_timeout = 2.0;    // (periods)
  int ignore_rounds = 5;            // a peer that refused a proposal is left alone this long
};

// Next hops as the training protocol takes them (train::SetNextHops): each next node once per flow through it,
// cheapest first by its cost to the sink (ties by id). `flows`: per next node, (its cheapest cost on, flows).
std::vector<NodeId> cheapest_first(const std::map<NodeId, std::pair<double, int>>& flows);

struct FlowConfig {
  NodeId id = 0;
  Stage stage = 0;                  // 0: data holder
  Stage relay_stages = 1;           // S
  uint32_t capacity = 0;            // holders: flows as source and as sink
  FlowParams params;
};

// Inputs.
struct Receive {
  NodeId from = 0;
  FlowBody body;
};
struct Tick {};
struct PeerUp {
  NodeId peer = 0;
  Stage stage = 0;
};
struct PeerDown {
  NodeId peer = 0;
};
struct LinkCost {
  NodeId peer = 0;
  double cost = 0;
};
using Input = std::variant<Receive, Tick, PeerUp, PeerDown, LinkCost>;

// Outputs.
struct Outgoing {
  NodeId to = 0;
  FlowBody body;
};
enum class EventKind : uint8_t {
  kHopEstablished,    // an out-hop was accepted downstream
  kHopLost,           // an out-hop or in-hop went away (peer down, push back, cancel, anti-entropy)
  kMoveAccepted,      // an annealing move was applied (as proposer or partner)
  kMoveRejected,
  kDropped,           // a message was ignored (unknown peer, unknown hop, stale)
};
struct FlowEvent {
  EventKind kind;
  NodeId peer = 0;
  std::string detail;
};
struct Output {
  std::vector<Outgoing> messages;
  std::vector<FlowEvent> events;
};

// One relay's routing entry for the training layer: microbatches arriving on `in` leave on `out`.
struct Route {
  HopKey in;
  NodeId next = 0;
  HopId out = 0;
};

class FlowNode {
 public:
  FlowNode(FlowConfig config, Rng rng);

  void step(const Input& input, double now, Output& out);

  // Start no more annealing moves or reroutes (moves in flight complete); building, repair and anti-entropy go
  // on. For a graceful leave, and for tests that let the system quiesce.
  void set_frozen(bool frozen) { frozen_ = frozen; }

  // --- read-only views for the runtime, the simulator and tests ---
  NodeId id() const { return cfg_.id; }
  Stage stage() const { return cfg_.stage; }
  bool is_holder() const { return cfg_.stage == 0; }
  uint32_t capacity() const { return cfg_.capacity; }
  std::vector<Route> routes() const;   // matched pairs (relays)
  // The next-stage nodes this node's established flows go through, each once per flow, cheapest first (by their
  // cost to the data holder; ties by id): where the training protocol routes its microbatches (train::SetNextHops),
  // filling the cheapest flows first.
  std::vector<NodeId> next_hops() const;

  struct OutHopView {
    HopId id;
    NodeId next;
    bool established;
    std::optional<HopKey> in;
  };
  std::vector<OutHopView> out_hops() const;
  std::optional<OutHopView> out_hop(HopId id) const;
  std::vector<HopKey> in_hops() const;     // relays: all; holders: sink hops
  std::optional<HopId> out_for(const HopKey& in) const;

  // Local invariants (capacity, matching is a bijection, no hop to a peer known dead); empty when all hold.
  std::string check_invariants() const;

 private:
  struct InHop {
    double prefix = 0;
    std::optional<HopId> out;  // relays only
    double since = 0;          // created, or orphaned
    bool accepted = true;      // false while the new path it asked for is being built on downstream
    NodeId source = 0;         // the data holder the flow starts at, as the upstream last told (0: unknown)
  };
  struct OutHop {
    NodeId next = 0;
    double link = 0;
    double suffix_after = 0;         // next -> sink, as the next hop last told
    std::optional<HopKey> in;        // relays only
    bool established = false;        // false: request sent, no answer yet
    double since = 0;                // request sent / established / freed
    int attempts = 0;
    double prefix_sent = -1;         // last prefix told downstream
    NodeId source_sent = 0;          // and the source told with it
    double expected_suffix = 0;      // for the request
    bool locked = false;             // part of a pending proposal
    std::optional<HopKey> for_in;    // requested to carry this in-hop (an orphan, or a reroute)
    std::optional<HopId> replaces;   // a reroute: the out-hop to release once this one is accepted
    NodeId sink = 0;                 // the holder the path ends at, as the next hop last told (0: unknown)
    NodeId new_path_to = 0;          // requested as a new path on to this holder (FlowRequest::sink)
    bool forwarding = false;         // built for an upstream's new-path request: for_in waits for its answer
  };
  struct Peer {
    Stage stage = 0;
    bool alive = true;
    double link = kInfCost;  // unknown until measured
    Offer offer;
    bool has_offer = false;
    std::optional<Snapshot> snapshot;
    int ignore_until = 0;
  };
  struct PendingMove {
    NodeId partner = 0;
    HopId mine = 0;   // my locked out-hop (swap); 0 for takeover
    HopId new_id = 0;
    NodeId their_next = 0;  // swap: B, my next hop after the swap
    double deadline = 0;
    bool takeover = false;
    struct Step {
      NodeId partner;
      HopId theirs;
      NodeId their_next;
    };
    std::vector<Step> rest;  // a cycle: swaps still to do after this one, in order
  };

  // Input handlers (one per message kind; see docs/flow.md for each rule).
  void on_receive(NodeId from, const FlowBody& body);
  void on_tick();
  void on_peer_up(const PeerUp& p);
  void on_peer_down(NodeId peer);
  void on_link_cost(const LinkCost& c);
  void on(NodeId from, const Offer& m);
  void on(NodeId from, const FlowRequest& m);
  void on(NodeId from, const FlowAccept& m);
  void on(NodeId from, const FlowReject& m);
  void on(NodeId from, const Cancel& m);
  void on(NodeId from, const PushBack& m);
  void on(NodeId from, const SuffixUpdate& m);
  void on(NodeId from, const PrefixUpdate& m);
  void on(NodeId from, const CheckFlows& m);
  void on(NodeId from, const CheckReply& m);
  void on(NodeId from, const Snapshot& m);
  void on(NodeId from, const ProposeSwap& m);
  void on(NodeId from, const SwapReply& m);
  void on(NodeId from, const ProposeTakeover& m);
  void on(NodeId from, const TakeoverReply& m);
  void on(NodeId from, const Switch& m);
  void on(NodeId from, const Redirect& m);

  // Building flows.
  void build();
  bool request_path(std::optional<HopKey> for_in, std::optional<HopId> replaces, NodeId exclude);
  std::optional<NodeId> best_next(NodeId exclude, double* cost) const;
  void reroute();
  // Sends a request to `next` (expecting `expected` from it on) and holds its out-hop: for `for_in` (an orphan, a
  // reroute, or an upstream's new path when `forwarding`), replacing `replaces`; new_path_to: FlowRequest::sink.
  void open_request(NodeId next, double expected, std::optional<HopKey> for_in, std::optional<HopId> replaces,
                    NodeId new_path_to, bool forwarding);
  double prefix_of(const std::optional<HopKey>& in) const;  // 0 for none (a source) or one gone
  NodeId source_of(const std::optional<HopKey>& in) const;  // a holder: itself; 0 when not known
  bool being_replaced(HopId out) const;  // a reroute's request for it is out
  // Reroutes onto new paths: the potentials I advertise, the next hop of the cheapest new path to `holder`, and
  // serving an upstream's request for one.
  std::vector<Potential> potentials() const;
  std::optional<NodeId> potential_next(NodeId holder, NodeId exclude, double* cost) const;
  void on_new_path_request(NodeId from, const FlowRequest& m);
  void sink_request(NodeId from, const FlowRequest& m, size_t limit);
  // A request expecting a cheaper path than mine is refused (kStaleCost), with my current offer.
  bool dearer_than_expected(double mine, double expected) const;
  void bind_orphans();
  void repair_pairing();
  void home_crossing_flows(const std::vector<HopKey>& ins, std::vector<HopId>& outs, double longest);
  void expire();
  void reclaim_lent();
  // Annealing.
  void try_move();
  bool metropolis(double score);
  std::optional<Reason> proposal_refusal(NodeId from, HopId theirs) const;
  bool try_cycle(double best_other_score);
  void propose_swap(HopId mine, NodeId partner, HopId theirs, NodeId their_next, bool cycle,
                    std::vector<PendingMove::Step> rest);
  double move_score(double c1, double c2, double c1n, double c2n) const;
  // State changes with their notifications.
  HopId new_hop_id() { return ++hop_counter_; }
  void remove_out(HopId id);  // its in-hop, if any, becomes an orphan
  void remove_in(const HopKey& key, bool free_out);
  void match(const HopKey& in, HopId out);
  void announce_costs(const HopKey& in, HopId out);
  void send(NodeId to, FlowBody body);
  void advertise(bool force);
  void event(EventKind kind, NodeId peer, std::string detail);

  // Derived values.
  Offer current_offer() const;
  double suffix(const OutHop& o) const { return o.link + o.suffix_after; }
  uint32_t used() const;
  // Room for one more flow, releasing an idle reserved path (the worst) if that is what it takes.
  bool make_room();
  bool has_room_or_reservation() const;
  uint32_t free_outs() const;
  bool is_prev(NodeId peer) const;
  bool is_next(NodeId peer) const;
  bool is_prev(const Peer& p) const;  // in loops over peers_: no second lookup (a tree walk per peer)
  bool is_next(const Peer& p) const;
  double link_to(NodeId peer) const;
  double mean_link() const;

  FlowConfig cfg_;
  Rng rng_;
  double now_ = 0;
  int round_ = 0;
  HopId hop_counter_ = 0;
  std::map<NodeId, Peer> peers_;
  std::set<NodeId> dead_;
  std::map<HopKey, InHop> ins_;
  std::map<HopId, OutHop> outs_;
  std::deque<double> lent_;  // a sink: when each slot now held beyond capacity was lent, oldest first
  std::optional<PendingMove> pending_move_;
  double temperature_ = -1;  // set on the first tick, from the link costs known then
  double backoff_until_ = 0;
  Offer last_offer_;
  int last_advert_round_ = -1000;
  Output* out_ = nullptr;  // the Output of the step in progress
  bool frozen_ = false;
};

}  // namespace gwtf::flow
