// The flow protocol's messages (docs/flow.md has the protocol; schema/gwtf.capnp has the same messages on the
// wire, and kernels/wire encodes exactly these structs). Costs are in seconds (or abstract units in the random
// test instances): a prefix is the cost of a flow from its source up to and including the link into a node; a
// suffix is the cost from a node to the flow's sink, including the link out of it.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "kernels/flow/types.hpp"

namespace gwtf::flow {

// Why a request or proposal was refused; every refusal names one.
enum class Reason : uint8_t {
  kNoFreeOutflow = 0,  // no reserved path to a sink to hand out (or a sink with no slot left)
  kStaleCost = 1,      // the sender's view of my costs is out of date; my current offer is attached
  kWrongStage = 2,     // the sender is not in the stage before mine (requests) / not in mine (proposals)
  kBusy = 3,           // I am in the middle of another negotiation about this hop
  kUnknownHop = 4,     // the proposal names a hop I do not have (any more)
};
inline constexpr uint8_t kReasonCount = 5;

// The cheapest path I could build on to data holder `holder` through relays with room (a distance vector that,
// unlike the reserved paths, needs no free sink slot: it serves reroutes, which release a slot as they take one).
struct Potential {
  NodeId holder = 0;
  double cost = 0;
};

// Distance-vector and capacity advertisement, to the previous stage (and the same stage, for joiners).
struct Offer {
  uint32_t free = 0;               // reserved paths to a sink I can hand out now (sinks: free slots)
  double best_suffix = kInfCost;   // the cheapest of them, from me to the sink
  uint32_t capacity = 0;
  uint32_t used = 0;               // flows through me (matched or reserved)
  std::vector<Potential> potentials = {};  // by holder, ascending; empty when I have no room
};

struct FlowRequest {  // upstream -> downstream: bind a new hop to one of your free reserved paths
  HopId hop = 0;
  double prefix = 0;           // cost from the source to the receiver through this hop
  double expected_suffix = 0;  // the receiver's best_suffix (or potential to `sink`) as the sender last heard it
  // 0: bind a reserved path. A holder: build a new path on to that holder, for a reroute of a flow that ends
  // there (the holder lends a slot beyond its capacity until the rerouted flow's old path is released).
  NodeId sink = 0;
  NodeId source = 0;  // the data holder the flow starts at (0: not known); prefixes travel with their source
};
struct FlowAccept {  // downstream -> upstream
  HopId hop = 0;
  double suffix = 0;  // from the receiver of the request to the sink
  NodeId sink = 0;    // the data holder the path ends at
};
struct FlowReject {
  HopId hop = 0;
  Reason reason = Reason::kNoFreeOutflow;
  Offer offer;
};
struct Cancel {  // upstream -> downstream: I release this hop
  HopId hop = 0;
  // Release the path beyond it too, down to the sink (a reroute's old path, or a new path nobody took: the sink
  // lent a slot for it). Without: the rest stays a reserved path, offered again.
  bool release = false;
};
struct PushBack {  // downstream -> upstream: this hop leads nowhere any more
  HopId hop = 0;
};
struct SuffixUpdate {  // downstream -> upstream, along a flow
  HopId hop = 0;
  double suffix = 0;
  NodeId sink = 0;  // the data holder the flow ends at (0: not known yet)
};
struct PrefixUpdate {  // upstream -> downstream, along a flow
  HopId hop = 0;
  double prefix = 0;
  NodeId source = 0;
};
struct CheckFlows {  // anti-entropy, upstream -> downstream: every established hop I have to you
  std::vector<HopId> hops;
};
struct CheckReply {  // the hops of a CheckFlows that the receiver does not know
  std::vector<HopId> unknown;
};

// Same-stage state for the annealing moves: what each of my matched flows looks like, and my link costs.
struct PairInfo {
  HopId out = 0;
  NodeId prev = 0;
  double prefix = 0;             // incl. the link prev -> me
  NodeId next = 0;
  double link_next = 0;          // me -> next
  double suffix_after_next = 0;  // next -> sink
};
struct LinkCostEntry {
  NodeId peer = 0;
  double cost = 0;
};
struct Snapshot {
  std::vector<PairInfo> pairs;
  std::vector<LinkCostEntry> links;  // to my prev- and next-stage peers
  uint32_t capacity = 0;
  uint32_t used = 0;
};

// Exchange next hops: my flow on out-hop `mine` (to A) and yours on `theirs` (to B) swap A and B.
struct ProposeSwap {
  HopId mine = 0;
  HopId theirs = 0;
  HopId new_id = 0;        // the id my new out-hop to B will have
  NodeId my_next = 0;      // A
  double my_prefix = 0;
  double my_link_to_my_next = 0;     // me -> A
  double my_link_to_their_next = 0;  // me -> B
  double my_suffix_after_next = 0;   // A -> sink
  bool cycle = false;  // one step of a negative cycle I computed: accept if the hop is still yours
  NodeId expected_their_next = 0;  // B as I know it: the move is void if `theirs` goes elsewhere now
  NodeId my_sink = 0;              // the holder my flow ends at (0: unknown)
  NodeId my_source = 0;            // the holder it starts at (0: unknown)
};
struct SwapReply {
  bool accept = false;
  Reason reason = Reason::kBusy;
  HopId mine = 0;    // echo
  HopId theirs = 0;  // echo
  HopId new_id = 0;  // the id the replier's new out-hop to A has
  double their_prefix = 0;
  double their_suffix_after = 0;  // B -> sink
  double their_link_to_my_next = 0;  // replier -> A
  NodeId their_sink = 0;
  NodeId their_source = 0;
};
// Take over your flow on out-hop `theirs` (prev X -> you -> next Y becomes X -> me -> Y).
struct ProposeTakeover {
  HopId theirs = 0;
  HopId new_id = 0;      // the id my out-hop to Y will have
  double my_link_prev = 0;  // X -> me
  double my_link_next = 0;  // me -> Y
  NodeId expected_prev = 0;  // X and Y as I know them: the move is void if the flow on `theirs` changed
  NodeId expected_next = 0;
};
struct TakeoverReply {
  bool accept = false;
  Reason reason = Reason::kBusy;
  HopId theirs = 0;
  HopId new_id = 0;
  NodeId prev = 0;       // X
  HopId prev_hop = 0;    // X's id of its out-hop, which now comes to me
  double prefix_at_prev = 0;  // cost from the source to X (excl. the link X -> me)
  NodeId next = 0;       // Y
  double suffix_after_next = 0;
  NodeId sink = 0;       // the holder the flow ends at
  NodeId source = 0;     // and starts at (0: unknown)
};
// Old upstream -> downstream: the in-hop you know as (me, old_id) now comes from (new_prev, new_id).
struct Switch {
  HopId old_id = 0;
  NodeId new_prev = 0;
  HopId new_id = 0;
  double prefix = 0;
  NodeId source = 0;
};
// Old downstream -> upstream: your out-hop `hop` now goes to `new_next` (who knows it as (you, hop)).
struct Redirect {
  HopId hop = 0;
  NodeId new_next = 0;
};

using FlowBody = std::variant<Offer, FlowRequest, FlowAccept, FlowReject, Cancel, PushBack, SuffixUpdate,
                              PrefixUpdate, CheckFlows, CheckReply, Snapshot, ProposeSwap, SwapReply,
                              ProposeTakeover, TakeoverReply, Switch, Redirect>;

inline const char* body_name(const FlowBody& b) {
  static const char* const names[] = {"Offer",     "FlowRequest", "FlowAccept", "FlowReject",      "Cancel",
                                      "PushBack",  "SuffixUpdate", "PrefixUpdate", "CheckFlows",    "CheckReply",
                                      "Snapshot",  "ProposeSwap", "SwapReply",  "ProposeTakeover", "TakeoverReply",
                                      "Switch",    "Redirect"};
  static_assert(sizeof(names) / sizeof(names[0]) == std::variant_size_v<FlowBody>);
  return names[b.index()];
}

inline const char* reason_name(Reason r) {
  switch (r) {
    case Reason::kNoFreeOutflow: return "no free outflow";
    case Reason::kStaleCost: return "stale cost";
    case Reason::kWrongStage: return "wrong stage";
    case Reason::kBusy: return "busy";
    case Reason::kUnknownHop: return "unknown hop";
  }
  return "?";
}

}  // namespace gwtf::flow
