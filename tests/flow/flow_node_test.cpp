// The flow state machine, driven message by message (etcd raft's style): one test per handler, rejection reason
// and timeout. Reference: docs/flow.md; the prototype's protocol in GWTF's notes (appendix A).
#include "kernels/flow/flow_node.hpp"

#include <gtest/gtest.h>

#include "kernels/flow/stage_choice.hpp"

namespace gwtf::flow {
namespace {

// A relay of stage 2 (of 3): prev peers 11, 12 (stage 1), next peers 31, 32 (stage 3), same-stage peer 22.
class Relay : public ::testing::Test {
 protected:
  static FlowConfig config(Stage stage, uint32_t capacity) {
    FlowConfig c;
    c.id = stage == 0 ? 1 : 20;
    c.stage = stage;
    c.relay_stages = 3;
    c.capacity = capacity;
    c.params.move_probability = 0;  // moves are tested on their own
    return c;
  }
  explicit Relay(Stage stage = 2, uint32_t capacity = 3) : node(config(stage, capacity), Rng(7)) {
    for (NodeId p : {11, 12}) up(p, 1, 1.0);
    for (NodeId p : {31, 32}) up(p, 3, p == 31 ? 2.0 : 4.0);
    in(PeerUp{22, 2});
  }
  void up(NodeId peer, Stage stage, double cost) {
    in(PeerUp{peer, stage});
    in(LinkCost{peer, cost});
  }
  void in(Input i) {
    out = Output{};
    node.step(i, now, out);
  }
  void recv(NodeId from, FlowBody b) { in(Receive{from, std::move(b)}); }
  void tick(double dt = 1.0) {
    now += dt;
    in(Tick{});
  }
  template <class T>
  std::vector<std::pair<NodeId, T>> sent() const {
    std::vector<std::pair<NodeId, T>> v;
    for (const auto& m : out.messages)
      if (auto* t = std::get_if<T>(&m.body)) v.push_back({m.to, *t});
    return v;
  }
  // Reserve one path through next peer `next` whose own suffix is `suffix`; returns its out-hop id.
  HopId reserve(NodeId next, double suffix) {
    recv(next, Offer{1, suffix, 4, 0});
    tick();
    auto req = sent<FlowRequest>();
    EXPECT_EQ(req.size(), 1u);
    EXPECT_EQ(req[0].first, next);
    recv(next, FlowAccept{req[0].second.hop, suffix});
    return req[0].second.hop;
  }
  bool has_event(EventKind k) const {
    for (const auto& e : out.events)
      if (e.kind == k) return true;
    return false;
  }

  FlowNode node;
  double now = 0;
  Output out;
};

TEST_F(Relay, BuildsSinkFirstByRequestingTheCheapestOfferedPath) {
  recv(31, Offer{1, 10.0, 4, 0});  // 2 + 10 = 12
  recv(32, Offer{1, 5.0, 4, 0});   // 4 + 5 = 9: cheaper
  tick();
  auto req = sent<FlowRequest>();
  ASSERT_EQ(req.size(), 1u);
  EXPECT_EQ(req[0].first, 32u);
  EXPECT_EQ(req[0].second.expected_suffix, 5.0);
}

// The training protocol fills the cheapest flows first (train::SetNextHops): next hops come cheapest first by
// their cost to the sink (link + the next hop's suffix), not by id.
TEST_F(Relay, NextHopsComeCheapestFirst) {
  reserve(31, 10.0);                      // 2 + 10
  recv(11, FlowRequest{5, 3.0, 12.0});   // bound: the node reserves its next path
  const HopId via32 = reserve(32, 1.0);  // 4 + 1
  EXPECT_EQ(node.next_hops(), (std::vector<NodeId>{32, 31}));
  recv(32, SuffixUpdate{via32, 20.0});  // 32's way on got dearer: 4 + 20
  EXPECT_EQ(node.next_hops(), (std::vector<NodeId>{31, 32}));
}

TEST_F(Relay, AcceptedReservationIsOfferedUpstreamWithItsSuffix) {
  reserve(31, 6.0);
  auto offers = sent<Offer>();
  ASSERT_EQ(offers.size(), 2u);  // to both prev peers
  EXPECT_EQ(offers[0].second.free, 1u);
  EXPECT_DOUBLE_EQ(offers[0].second.best_suffix, 8.0);  // link 2 + 6
}

TEST_F(Relay, RequestBindsToTheFreePathAndPropagatesThePrefixDownstream) {
  const HopId out_hop = reserve(31, 6.0);
  recv(11, FlowRequest{5, 3.0, 8.0});
  auto acc = sent<FlowAccept>();
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0].first, 11u);
  EXPECT_DOUBLE_EQ(acc[0].second.suffix, 8.0);
  auto pre = sent<PrefixUpdate>();
  ASSERT_EQ(pre.size(), 1u);
  EXPECT_EQ(pre[0].first, 31u);
  EXPECT_EQ(pre[0].second.hop, out_hop);
  EXPECT_DOUBLE_EQ(pre[0].second.prefix, 5.0);  // 3 + link 2
  EXPECT_EQ(node.out_for(HopKey{11, 5}), out_hop);
}

TEST_F(Relay, RetriedRequestIsAnsweredAgainNotBoundTwice) {
  reserve(31, 6.0);
  recv(11, FlowRequest{5, 3.0, 8.0});
  recv(11, FlowRequest{5, 3.0, 8.0});
  EXPECT_EQ(sent<FlowAccept>().size(), 1u);
  EXPECT_EQ(node.in_hops().size(), 1u);
}

TEST_F(Relay, RejectsRequestFromAPeerNotInThePreviousStage) {
  reserve(31, 6.0);
  recv(22, FlowRequest{5, 0.0, 8.0});
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kWrongStage);
}

TEST_F(Relay, RejectsRequestWhenNoPathIsFree) {
  recv(11, FlowRequest{5, 0.0, 1.0});
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kNoFreeOutflow);
  EXPECT_EQ(rej[0].second.offer.free, 0u);
}

TEST_F(Relay, RejectsRequestThatExpectsACheaperPathThanIHave) {
  reserve(31, 6.0);  // suffix 8
  recv(11, FlowRequest{5, 0.0, 7.0});
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kStaleCost);
  EXPECT_DOUBLE_EQ(rej[0].second.offer.best_suffix, 8.0);
}

TEST_F(Relay, AcceptForARequestItGaveUpOnIsCancelled) {
  recv(31, FlowAccept{999, 1.0});
  auto c = sent<Cancel>();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].second.hop, 999u);
}

TEST_F(Relay, RejectedRequestIsRetriedAtAnotherPeer) {
  recv(31, Offer{1, 1.0, 4, 0});
  recv(32, Offer{1, 5.0, 4, 0});
  tick();
  auto req = sent<FlowRequest>();
  ASSERT_EQ(req[0].first, 31u);
  recv(31, FlowReject{req[0].second.hop, Reason::kNoFreeOutflow, Offer{0, kInfCost, 4, 4}});
  auto retry = sent<FlowRequest>();
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].first, 32u);
}

TEST_F(Relay, CancelFreesThePathForTheNextRequester) {
  reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(11, Cancel{5});
  EXPECT_TRUE(node.in_hops().empty());
  auto offers = sent<Offer>();
  ASSERT_FALSE(offers.empty());
  EXPECT_EQ(offers[0].second.free, 1u);
  recv(12, FlowRequest{7, 0.0, 8.0});
  EXPECT_EQ(sent<FlowAccept>().size(), 1u);
}

TEST_F(Relay, PushBackOrphansTheInHopAndAsksForANewPath) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(32, Offer{1, 1.0, 4, 0});
  recv(31, PushBack{h});
  EXPECT_FALSE(node.out_for(HopKey{11, 5}).has_value());
  auto req = sent<FlowRequest>();
  ASSERT_EQ(req.size(), 1u);
  EXPECT_EQ(req[0].first, 32u);
  recv(32, FlowAccept{req[0].second.hop, 1.0});
  EXPECT_EQ(node.out_for(HopKey{11, 5}), req[0].second.hop);
  auto suf = sent<SuffixUpdate>();
  ASSERT_EQ(suf.size(), 1u);
  EXPECT_DOUBLE_EQ(suf[0].second.suffix, 5.0);  // link 4 + 1: upstream learns its new cost
}

TEST_F(Relay, SuffixChangesTravelUpstreamAndPrefixChangesDownstream) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(31, SuffixUpdate{h, 9.0});
  auto suf = sent<SuffixUpdate>();
  ASSERT_EQ(suf.size(), 1u);
  EXPECT_EQ(suf[0].first, 11u);
  EXPECT_DOUBLE_EQ(suf[0].second.suffix, 11.0);
  recv(11, PrefixUpdate{5, 4.0});
  auto pre = sent<PrefixUpdate>();
  ASSERT_EQ(pre.size(), 1u);
  EXPECT_EQ(pre[0].first, 31u);
  EXPECT_DOUBLE_EQ(pre[0].second.prefix, 6.0);
}

TEST_F(Relay, CheckFlowsDropsHopsUpstreamForgotAndReportsOnesItDoesNotKnow) {
  reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(11, CheckFlows{{77}});  // hop 5 is young: kept for now (its messages may be in flight)
  EXPECT_EQ(node.in_hops().size(), 1u);
  auto reply = sent<CheckReply>();
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_EQ(reply[0].second.unknown, std::vector<HopId>{77});
  now += 10;
  recv(11, CheckFlows{{}});
  EXPECT_TRUE(node.in_hops().empty());
}

TEST_F(Relay, CheckReplyRemovesAnOutHopDownstreamDoesNotKnow) {
  const HopId h = reserve(31, 6.0);
  recv(31, CheckReply{{h}});  // too young: could be an accept overtaking
  EXPECT_EQ(node.out_hops().size(), 1u);
  now += 10;
  recv(31, CheckReply{{h}});
  EXPECT_TRUE(node.out_hops().empty());
}

TEST_F(Relay, UnansweredRequestIsResentThenAbandonedWithACancel) {
  recv(31, Offer{1, 1.0, 4, 0});
  tick();
  const HopId h = sent<FlowRequest>().at(0).second.hop;
  int resent = 0;
  bool cancelled = false;
  for (int i = 0; i < 8 && !cancelled; ++i) {
    tick();
    for (auto& [to, r] : sent<FlowRequest>()) resent += r.hop == h;
    for (auto& [to, c] : sent<Cancel>()) cancelled = cancelled || c.hop == h;
  }
  EXPECT_EQ(resent, 4);  // attempts 2..5
  EXPECT_TRUE(cancelled);
}

TEST_F(Relay, ReservationNobodyUsesIsReleasedAfterTheIdleTimeout) {
  const HopId h = reserve(31, 6.0);
  bool released = false;
  for (int i = 0; i < 14 && !released; ++i) {
    tick();
    for (auto& [to, c] : sent<Cancel>()) released = released || (c.hop == h && to == 31u);
  }
  EXPECT_TRUE(released);
}

TEST_F(Relay, OrphanWithNoWayOnIsPushedBackAfterItsTimeout) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(31, PushBack{h});  // and no other path is on offer
  bool pushed = false;
  for (int i = 0; i < 8 && !pushed; ++i) {
    tick();
    for (auto& [to, p] : sent<PushBack>()) pushed = pushed || (to == 11u && p.hop == 5);
  }
  EXPECT_TRUE(pushed);
  EXPECT_TRUE(node.in_hops().empty());
}

TEST_F(Relay, PeerDownRemovesEveryHopThroughTheDeadPeerAndItsMessagesAreDropped) {
  reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  in(PeerDown{31});
  EXPECT_TRUE(node.check_invariants().empty()) << node.check_invariants();
  for (const auto& o : node.out_hops()) EXPECT_NE(o.next, 31u);
  recv(31, FlowAccept{1, 1.0});
  EXPECT_TRUE(has_event(EventKind::kDropped));
  in(PeerDown{11});
  EXPECT_TRUE(node.in_hops().empty());
}

TEST_F(Relay, MessageFromAnUnknownPeerIsDropped) {
  recv(99, FlowRequest{1, 0.0, 0.0});
  EXPECT_TRUE(out.messages.empty());
  EXPECT_TRUE(has_event(EventKind::kDropped));
}

TEST_F(Relay, MinMaxPairingMatchesTheLargestPrefixWithTheSmallestSuffix) {
  reserve(32, 1.0);   // suffix 5
  recv(11, FlowRequest{5, 1.0, 5.0});
  reserve(31, 10.0);  // suffix 12
  recv(12, FlowRequest{6, 9.0, 12.0});
  // Now 11 (prefix 1) -> 32 (5) and 12 (prefix 9) -> 31 (12): paths 6 and 21. Re-paired: 13 and 14.
  tick();
  const auto to31 = node.out_for(HopKey{11, 5});
  ASSERT_TRUE(to31.has_value());
  EXPECT_EQ(node.out_hop(*to31)->next, 31u);
  EXPECT_EQ(node.out_hop(*node.out_for(HopKey{12, 6}))->next, 32u);
}

// Holder 1's flow ends at holder 2 and holder 2's at holder 1: the node exchanges their onward paths (the sum is
// unchanged; each now ends where it started), though it lengthens its longest path within home_slack, and the
// min-max pairing does not undo it on the next round.
TEST_F(Relay, CrossingFlowsExchangeTheirPathsSoEachEndsAtItsSource) {
  recv(31, Offer{1, 6.0, 4, 0});
  tick();
  const HopId to31 = sent<FlowRequest>().at(0).second.hop;
  recv(31, FlowAccept{to31, 6.0, 2});  // suffix 2 + 6 = 8, to holder 2
  recv(11, FlowRequest{5, 1.0, 8.0, 0, 1});  // from holder 1, prefix 1: on the path to holder 2
  recv(32, Offer{1, 1.0, 4, 0});
  tick();
  HopId to32 = 0;
  for (const auto& [to, r] : sent<FlowRequest>())
    if (to == 32) to32 = r.hop;
  ASSERT_NE(to32, 0u);
  recv(32, FlowAccept{to32, 1.0, 1});  // suffix 4 + 1 = 5, to holder 1
  recv(12, FlowRequest{6, 3.0, 5.0, 0, 2});  // from holder 2, prefix 3: to holder 1. Paths 9 and 8, crossing
  ASSERT_EQ(node.out_for(HopKey{11, 5}), to31);
  ASSERT_EQ(node.out_for(HopKey{12, 6}), to32);
  tick();
  EXPECT_EQ(node.out_for(HopKey{11, 5}), to32);  // 1 + 5 = 6, home to holder 1
  EXPECT_EQ(node.out_for(HopKey{12, 6}), to31);  // 3 + 8 = 11 <= 1.5 x 9, home to holder 2
  auto pre = sent<PrefixUpdate>();
  ASSERT_EQ(pre.size(), 2u);
  for (const auto& [to, p] : pre) EXPECT_EQ(p.source, to == 32 ? 1u : 2u);  // the source travels with the prefix
  tick();  // min-max would pair them back (max 9 < 11), but not at the cost of a flow ending at its source
  EXPECT_EQ(node.out_for(HopKey{11, 5}), to32);
}

TEST_F(Relay, SwapProposalIsAppliedWhenTheFlowIsAsTheProposerSawIt) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  // Peer 22 routes to 32 and proposes that we exchange next hops.
  recv(22, ProposeSwap{40, h, 41, 32, 0.5, 4.0, 1.0, 3.0, false, 31});
  auto reply = sent<SwapReply>();
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_TRUE(reply[0].second.accept) << reason_name(reply[0].second.reason);
  const auto now_out = node.out_for(HopKey{11, 5});
  ASSERT_TRUE(now_out.has_value());
  EXPECT_EQ(node.out_hop(*now_out)->next, 32u);
  auto sw = sent<Switch>();
  ASSERT_EQ(sw.size(), 1u);
  EXPECT_EQ(sw[0].first, 31u);  // 31 now gets that flow from 22
  EXPECT_EQ(sw[0].second.new_prev, 22u);
  EXPECT_EQ(sw[0].second.new_id, 41u);
}

TEST_F(Relay, SwapProposalIsRefusedWithTheReasonWhenItNoLongerApplies) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(22, ProposeSwap{40, h, 41, 32, 0.5, 4.0, 1.0, 3.0, false, 32});  // thinks h goes to 32
  EXPECT_EQ(sent<SwapReply>().at(0).second.reason, Reason::kStaleCost);
  recv(22, ProposeSwap{40, 12345, 41, 32, 0.5, 4.0, 1.0, 3.0, false, 31});
  EXPECT_EQ(sent<SwapReply>().at(0).second.reason, Reason::kUnknownHop);
  recv(12, ProposeSwap{40, h, 41, 32, 0.5, 4.0, 1.0, 3.0, false, 31});
  EXPECT_EQ(sent<SwapReply>().at(0).second.reason, Reason::kWrongStage);
  // A proposal that would make things much worse is refused too: the partner scores it with its own numbers and
  // the Metropolis rule (exp(-52 / 0.6) here).
  recv(22, ProposeSwap{40, h, 41, 32, 0.5, 0.1, 50.0, 3.0, false, 31});
  EXPECT_EQ(sent<SwapReply>().at(0).second.reason, Reason::kStaleCost);
}

TEST_F(Relay, TakeoverHandsTheFlowOverAndRedirectsUpstream) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 1.0, 8.0});
  recv(22, ProposeTakeover{h, 50, 0.1, 0.1, 11, 31});  // 22 is much closer to both ends
  auto reply = sent<TakeoverReply>();
  ASSERT_EQ(reply.size(), 1u);
  ASSERT_TRUE(reply[0].second.accept) << reason_name(reply[0].second.reason);
  EXPECT_EQ(reply[0].second.prev, 11u);
  EXPECT_EQ(reply[0].second.prev_hop, 5u);
  EXPECT_EQ(sent<Redirect>().at(0).first, 11u);
  EXPECT_EQ(sent<Switch>().at(0).first, 31u);
  EXPECT_TRUE(node.in_hops().empty());
  EXPECT_TRUE(node.out_hops().empty());
}

TEST_F(Relay, SwitchRekeysTheInHopAndUnknownSwitchesAreDropped) {
  reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(11, Switch{5, 12, 9, 2.5});
  EXPECT_TRUE(node.out_for(HopKey{12, 9}).has_value());
  EXPECT_FALSE(node.out_for(HopKey{11, 5}).has_value());
  recv(11, Switch{5, 12, 10, 0.0});
  EXPECT_TRUE(has_event(EventKind::kDropped));
}

TEST_F(Relay, RedirectPointsTheOutHopAtTheNewNext) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(31, Redirect{h, 32});
  EXPECT_EQ(node.out_hop(h)->next, 32u);
  auto suf = sent<SuffixUpdate>();
  ASSERT_EQ(suf.size(), 1u);
  EXPECT_DOUBLE_EQ(suf[0].second.suffix, 10.0);  // new link 4 + 6
}

// --- reroutes onto new paths (docs/flow.md, "Reroute onto a new path") ----------------------------------

TEST_F(Relay, AdvertisesItsPotentialToEachHolderThroughTheCheapestNextPeer) {
  recv(31, Offer{0, kInfCost, 4, 4, {Potential{1, 5.0}}});                    // 2 + 5 = 7
  recv(32, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}, Potential{2, 3.0}}});  // 4 + 1 = 5; 4 + 3 = 7
  tick();
  auto offers = sent<Offer>();
  ASSERT_EQ(offers.size(), 2u);  // to 11 and 12
  const auto& pot = offers[0].second.potentials;
  ASSERT_EQ(pot.size(), 2u);
  EXPECT_EQ(pot[0].holder, 1u);
  EXPECT_DOUBLE_EQ(pot[0].cost, 5.0);
  EXPECT_EQ(pot[1].holder, 2u);
  EXPECT_DOUBLE_EQ(pot[1].cost, 7.0);
}

TEST_F(Relay, WithoutRoomItAdvertisesNoPotential) {
  for (HopId k = 1; k <= 3; ++k) {  // capacity 3, three flows
    reserve(31, 6.0);
    recv(11, FlowRequest{k, 0.0, 8.0});
  }
  recv(32, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});
  recv(12, FlowRequest{9, 0.0, 5.0, 1});  // and a new path is refused
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kNoFreeOutflow);
  EXPECT_TRUE(rej[0].second.offer.potentials.empty());
}

TEST_F(Relay, NewPathRequestIsForwardedAlongThePotentialAndAnsweredWhenTheDownstreamHas) {
  recv(31, Offer{0, kInfCost, 4, 0, {Potential{1, 9.0}}});  // 2 + 9 = 11
  recv(32, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});  // 4 + 1 = 5: cheaper
  recv(11, FlowRequest{5, 3.0, 5.0, 1});
  EXPECT_TRUE(sent<FlowAccept>().empty());
  auto fwd = sent<FlowRequest>();
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0].first, 32u);
  EXPECT_EQ(fwd[0].second.sink, 1u);
  EXPECT_DOUBLE_EQ(fwd[0].second.prefix, 7.0);  // 3 + link 4
  EXPECT_DOUBLE_EQ(fwd[0].second.expected_suffix, 1.0);
  EXPECT_FALSE(node.out_for(HopKey{11, 5}).has_value());
  recv(11, FlowRequest{5, 3.0, 5.0, 1});  // a retry while the path is being built: no answer yet
  EXPECT_TRUE(sent<FlowAccept>().empty());
  EXPECT_TRUE(sent<FlowRequest>().empty());
  recv(32, FlowAccept{fwd[0].second.hop, 1.0, 1});
  auto acc = sent<FlowAccept>();
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0].first, 11u);
  EXPECT_DOUBLE_EQ(acc[0].second.suffix, 5.0);
  EXPECT_EQ(acc[0].second.sink, 1u);
  EXPECT_EQ(node.out_for(HopKey{11, 5}), fwd[0].second.hop);
  EXPECT_EQ(node.check_invariants(), "");
}

TEST_F(Relay, NewPathRequestIsRefusedWithTheReason) {
  recv(11, FlowRequest{5, 0.0, 5.0, 1});  // no potential to holder 1 known
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kNoFreeOutflow);
  recv(32, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});
  recv(11, FlowRequest{6, 0.0, 4.0, 1});  // expects 4, mine is 5
  rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kStaleCost);
  ASSERT_EQ(rej[0].second.offer.potentials.size(), 1u);
  EXPECT_DOUBLE_EQ(rej[0].second.offer.potentials[0].cost, 5.0);
  EXPECT_TRUE(node.in_hops().empty());
}

TEST_F(Relay, NewPathRefusedDownstreamIsRefusedUpstreamAndLeavesNothing) {
  recv(32, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});
  recv(11, FlowRequest{5, 0.0, 5.0, 1});
  const HopId h = sent<FlowRequest>().at(0).second.hop;
  recv(32, FlowReject{h, Reason::kNoFreeOutflow, Offer{0, kInfCost, 4, 4}});
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].first, 11u);
  EXPECT_EQ(rej[0].second.hop, 5u);
  EXPECT_TRUE(node.in_hops().empty());
  EXPECT_TRUE(node.out_hops().empty());
}

TEST_F(Relay, NewPathWhoseUpstreamGaveUpIsReleasedDownToTheSink) {
  recv(32, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});
  recv(11, FlowRequest{5, 0.0, 5.0, 1});
  const HopId h = sent<FlowRequest>().at(0).second.hop;
  recv(11, Cancel{5});
  auto c = sent<Cancel>();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].first, 32u);
  EXPECT_EQ(c[0].second.hop, h);
  EXPECT_TRUE(c[0].second.release);  // the sink lent a slot for it
  EXPECT_TRUE(node.out_hops().empty());
}

TEST_F(Relay, CancelWithReleaseReleasesThePathBeyondToo) {
  const HopId h = reserve(31, 6.0);
  recv(11, FlowRequest{5, 0.0, 8.0});
  recv(11, Cancel{5, true});
  auto c = sent<Cancel>();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].first, 31u);
  EXPECT_EQ(c[0].second.hop, h);
  EXPECT_TRUE(c[0].second.release);
  EXPECT_FALSE(node.out_hop(h).has_value());  // not kept as a reserved path (a plain Cancel keeps it)
}

TEST_F(Relay, ReroutesAFlowOntoANewPathWhenItsPotentialIsCheaperAndReleasesTheOldOne) {
  recv(32, Offer{1, 6.0, 4, 0});
  tick();
  const HopId old = sent<FlowRequest>().at(0).second.hop;
  recv(32, FlowAccept{old, 6.0, 1});  // suffix 4 + 6 = 10, to holder 1
  recv(11, FlowRequest{5, 0.0, 10.0});
  recv(31, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});  // a new path via 31 would cost 2 + 1 = 3
  tick();
  auto req = sent<FlowRequest>();
  ASSERT_EQ(req.size(), 1u);
  EXPECT_EQ(req[0].first, 31u);
  EXPECT_EQ(req[0].second.sink, 1u);  // to the sink the flow ends at
  EXPECT_EQ(node.out_for(HopKey{11, 5}), old);  // make before break
  recv(31, FlowAccept{req[0].second.hop, 1.0, 1});
  EXPECT_EQ(node.out_for(HopKey{11, 5}), req[0].second.hop);
  auto c = sent<Cancel>();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].first, 32u);
  EXPECT_EQ(c[0].second.hop, old);
  EXPECT_TRUE(c[0].second.release);  // gives the sink back the slot it lent
  auto suf = sent<SuffixUpdate>();
  ASSERT_EQ(suf.size(), 1u);
  EXPECT_DOUBLE_EQ(suf[0].second.suffix, 3.0);
  EXPECT_EQ(suf[0].second.sink, 1u);
  EXPECT_EQ(node.check_invariants(), "");
}

TEST_F(Relay, ANewPathToASinkTheFlowNoLongerEndsAtIsGivenUpAndTheOldPathKept) {
  recv(32, Offer{1, 6.0, 4, 0});
  tick();
  const HopId old = sent<FlowRequest>().at(0).second.hop;
  recv(32, FlowAccept{old, 6.0, 1});
  recv(11, FlowRequest{5, 0.0, 10.0});
  recv(31, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});
  tick();
  auto req = sent<FlowRequest>();
  ASSERT_EQ(req.size(), 1u);
  EXPECT_EQ(req[0].second.sink, 1u);
  recv(32, SuffixUpdate{old, 6.0, 2});  // a swap downstream: the old path ends at holder 2 now
  recv(31, FlowAccept{req[0].second.hop, 1.0, 1});
  // Releasing the old path would free a slot at holder 2, not give back the one holder 1 lent: keep it.
  EXPECT_EQ(node.out_for(HopKey{11, 5}), old);
  auto c = sent<Cancel>();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].first, 31u);
  EXPECT_EQ(c[0].second.hop, req[0].second.hop);
  EXPECT_TRUE(c[0].second.release);  // holder 1 gets its lent slot back
  EXPECT_TRUE(has_event(EventKind::kDropped));
  EXPECT_EQ(node.out_hops().size(), 1u);
  EXPECT_EQ(node.check_invariants(), "");
}

TEST_F(Relay, AFlowWhoseSinkIsUnknownIsNotReroutedOntoANewPath) {
  const HopId old = reserve(32, 6.0);  // accepted without a sink
  recv(11, FlowRequest{5, 0.0, 10.0});
  recv(31, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});
  tick();
  EXPECT_TRUE(sent<FlowRequest>().empty());
  EXPECT_EQ(node.out_for(HopKey{11, 5}), old);
}

class Holder : public Relay {
 protected:
  Holder() : Relay(0, 2) {}
};

TEST_F(Holder, SinkAcceptsUpToItsCapacity) {
  // A holder's previous stage is the last relay stage (3).
  in(PeerUp{33, 3});
  in(LinkCost{33, 1.0});
  recv(33, FlowRequest{1, 5.0, 0.0});
  recv(33, FlowRequest{2, 5.0, 0.0});
  EXPECT_EQ(node.in_hops().size(), 2u);
  recv(33, FlowRequest{3, 5.0, 0.0});
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kNoFreeOutflow);
}

TEST_F(Holder, SinkLendsSpareSlotsToNewPathsThatEndAtIt) {
  in(PeerUp{33, 3});
  in(LinkCost{33, 1.0});
  recv(33, FlowRequest{1, 5.0, 0.0});
  recv(33, FlowRequest{2, 5.0, 0.0});  // capacity 2: full
  recv(33, FlowRequest{3, 5.0, 0.0, 99});  // a new path to another holder
  auto rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].second.reason, Reason::kNoFreeOutflow);
  const uint32_t spare = FlowParams{}.sink_spare;
  for (HopId k = 0; k < spare; ++k) {
    recv(33, FlowRequest{10 + k, 5.0, 0.0, 1});
    auto acc = sent<FlowAccept>();
    ASSERT_EQ(acc.size(), 1u) << k;
    EXPECT_EQ(acc[0].second.sink, 1u);
  }
  recv(33, FlowRequest{20, 5.0, 0.0, 1});
  rej = sent<FlowReject>();
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_TRUE(rej[0].second.offer.potentials.empty());  // nothing more to lend
  EXPECT_EQ(node.check_invariants(), "");
  recv(33, Cancel{1, true});  // a rerouted flow's old path gives a slot back
  auto back = sent<Offer>();
  ASSERT_FALSE(back.empty());
  ASSERT_EQ(back[0].second.potentials.size(), 1u);
  EXPECT_EQ(back[0].second.potentials[0].holder, 1u);
}

TEST_F(Holder, SinkTakesBackASlotLentTooLongByPushingBackTheDearestInHop) {
  in(PeerUp{33, 3});
  in(LinkCost{33, 1.0});
  recv(33, FlowRequest{1, 5.0, 0.0});
  recv(33, FlowRequest{2, 9.0, 0.0});        // capacity 2: full
  recv(33, FlowRequest{3, 7.0, 0.0, 1});     // a new path: lent
  ASSERT_EQ(node.in_hops().size(), 3u);
  const double timeout = FlowParams{}.lend_timeout;
  tick(timeout - 1);
  EXPECT_TRUE(sent<PushBack>().empty()) << "its old path may still give the slot back";
  tick(1);
  auto pb = sent<PushBack>();
  ASSERT_EQ(pb.size(), 1u);
  EXPECT_EQ(pb[0].first, 33u);
  EXPECT_EQ(pb[0].second.hop, 2u);  // the flow that costs most to get here
  EXPECT_EQ(node.in_hops().size(), 2u);
  tick(timeout);
  EXPECT_TRUE(sent<PushBack>().empty());  // back at capacity: nothing more to take back
}

TEST_F(Holder, ASlotGivenBackInTimeIsNotTakenBack) {
  in(PeerUp{33, 3});
  in(LinkCost{33, 1.0});
  recv(33, FlowRequest{1, 5.0, 0.0});
  recv(33, FlowRequest{2, 9.0, 0.0});
  recv(33, FlowRequest{3, 7.0, 0.0, 1});
  tick();
  recv(33, Cancel{1, true});  // the rerouted flow's old path
  tick(FlowParams{}.lend_timeout);
  EXPECT_TRUE(sent<PushBack>().empty());
  EXPECT_EQ(node.in_hops().size(), 2u);
}

TEST_F(Holder, SourceAtCapacityReroutesOntoANewPathAndReleasesTheOldFlow) {
  recv(11, Offer{2, 5.0, 4, 0});
  tick();
  auto req = sent<FlowRequest>();
  ASSERT_EQ(req.size(), 2u);  // capacity 2
  for (const auto& [to, r] : req) recv(to, FlowAccept{r.hop, 5.0, 1});
  recv(12, Offer{0, kInfCost, 4, 0, {Potential{1, 1.0}}});  // 1 + 1 = 2 < 1 + 5
  tick();
  auto re = sent<FlowRequest>();
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(re[0].first, 12u);
  EXPECT_EQ(re[0].second.sink, 1u);
  EXPECT_EQ(node.out_hops().size(), 3u);
  EXPECT_EQ(node.check_invariants(), "");  // one beside the flow it replaces
  recv(12, FlowAccept{re[0].second.hop, 1.0, 1});
  EXPECT_EQ(node.out_hops().size(), 2u);
  auto c = sent<Cancel>();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].first, 11u);
  EXPECT_TRUE(c[0].second.release);
  EXPECT_EQ(node.check_invariants(), "");
}

TEST(StageChoice, JoinerGoesToTheStageThatLimitsTheFlow) {
  EXPECT_EQ(choose_stage({{1, 10, 5}, {2, 6, 5}, {3, 9, 5}}), 2);
  EXPECT_EQ(choose_stage({{1, 6, 2}, {2, 6, 5}, {3, 9, 5}}), 2);  // tie on capacity: the busier
  EXPECT_EQ(choose_stage({{1, 6, 2}, {2, 0, 0}, {3, 9, 5}}), 2);  // an empty stage first
}

}  // namespace
}  // namespace gwtf::flow
