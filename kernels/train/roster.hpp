// Who is in the swarm, and where a newcomer goes — the membership rules as a pure state machine (no sockets,
// no clocks). The seed of a new swarm admits founders into the slots of the configured layout (data holders, then
// the replicas of each relay stage) and starts training once every slot is taken: microbatch ownership is a pure
// function of the founding holders, so they must be known before iteration 0. After the start any member admits
// newcomers, and only as joiners of a relay stage (a data holder owns its microbatches from the start), placed on
// the stage that limits the flow (flow::choose_stage) unless they ask for one.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/train/membership.hpp"

namespace gwtf::train {

struct Layout {
  uint32_t holders = 2;
  std::vector<uint32_t> replicas;  // founders per relay stage (stage k+1 at index k)

  Stage relay_stages() const { return static_cast<Stage>(replicas.size()); }
  size_t founders() const;
};

class Roster {
 public:
  Roster(Layout layout, uint64_t config_hash);

  struct Admitted {
    MemberInfo member;
    bool joiner = false;  // admitted after the start: it must fetch its stage's state
  };
  // The decision on a hello (idempotent: a retried hello gets the same place). Refused, with the reason: another
  // run's configuration, an id in use by another address or that left the swarm, a stage outside the cut, a
  // data holder after the start, a layout slot that is not free.
  Result<Admitted, std::string> admit(const Hello& h);

  bool full() const;  // every founding slot is taken: training may start
  void start() { started_ = true; }
  bool started() const { return started_; }

  // What a member learns from others: the roster it was given, a newcomer announced, a member gone, a joiner
  // that now serves.
  void learn(const RosterMsg& r);
  void joined(const MemberInfo& m);
  void down(NodeId id);
  void set_ready(NodeId id);

  // Deaths the whole swarm agrees on. A node that loses its link to a member drops it at once (it cannot reach it
  // any more) and tells the arbiter (Suspect), unless it is the arbiter; the arbiter declares the member gone to
  // everyone (Gone), and each member that drops it on that word passes the verdict on to the member itself, which
  // stops. Without one judge a partial partition (a relay cut from its stage neighbours only) leaves members with
  // different views of who is alive, and work stalls between them. One arbiter orders the verdicts: when two nodes
  // lose their link to each other, the first suspicion to arrive wins and the other comes from a member now gone.
  // The arbiter is the live data holder with the smallest id (0: none left); holders are the swarm's sources and
  // sinks, so a node cut from them is of no use anyway.
  NodeId arbiter() const;
  // The arbiter's verdict on a suspicion of `id` from `from`: true, declare it gone. A suspicion from a member
  // that is not live (gone before it was heard), of a member not live, or of a data holder (a holder dies only
  // on the arbiter's own link: the holder's report of its accuser settles a broken link between them) is ignored.
  bool convicts(NodeId from, NodeId id) const;
  // Whether a Gone about `id` from `from` is believed: from a live data holder, about a live member.
  bool believes_gone(NodeId from, NodeId id) const;

  std::vector<MemberInfo> live() const;
  const MemberInfo* find(NodeId id) const;
  size_t live_count(Stage s) const;
  const Layout& layout() const { return layout_; }
  RosterMsg roster_for(NodeId id) const;  // the roster message for a member (`you` filled in)

 private:
  Result<Stage, std::string> place(const Hello& h) const;

  Layout layout_;
  uint64_t config_hash_;
  bool started_ = false;
  std::map<NodeId, MemberInfo> live_;
  std::map<NodeId, MemberInfo> gone_;  // ids never reused: the protocol treats a dead peer as dead forever
};

}  // namespace gwtf::train
