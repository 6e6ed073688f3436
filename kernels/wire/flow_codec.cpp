#include "kernels/wire/flow_codec.hpp"

#include <cmath>
#include <string>
#include <type_traits>

namespace gwtf::wire {

using namespace gwtf::flow;

namespace {

constexpr unsigned kMaxList = 1u << 16;

Err<WireError> invalid(std::string what) {
  return Err<WireError>{WireError{WireErrc::kInvalidValue, "invalid value: " + std::move(what)}};
}

// Reads every field through `check`, which records the first bad one.
struct Checker {
  std::string bad;
  double cost(double v, const char* field, bool inf_ok = false) {
    if (bad.empty() && (std::isnan(v) || v < 0 || (std::isinf(v) && !inf_ok)))
      bad = std::string(field) + " = " + std::to_string(v);
    return v;
  }
  Reason reason(schema::FlowReason r) {
    const auto raw = static_cast<uint16_t>(r);
    if (raw >= kReasonCount) {
      if (bad.empty()) bad = "reason " + std::to_string(raw);
      return Reason::kBusy;
    }
    return static_cast<Reason>(raw);
  }
  template <class List>
  bool list(const List& l, const char* field) {
    if (l.size() <= kMaxList) return true;
    if (bad.empty()) bad = std::string(field) + " has " + std::to_string(l.size()) + " entries";
    return false;
  }
};

void fill_offer(schema::FlowOffer::Builder b, const Offer& o) {
  b.setFree(o.free);
  b.setBestSuffix(o.best_suffix);
  b.setCapacity(o.capacity);
  b.setUsed(o.used);
  auto l = b.initPotentials(static_cast<unsigned>(o.potentials.size()));
  for (unsigned i = 0; i < o.potentials.size(); ++i) {
    l[i].setHolder(o.potentials[i].holder);
    l[i].setCost(o.potentials[i].cost);
  }
}

Offer read_offer(schema::FlowOffer::Reader r, Checker& c) {
  Offer o{r.getFree(), c.cost(r.getBestSuffix(), "bestSuffix", true), r.getCapacity(), r.getUsed(), {}};
  const auto l = r.getPotentials();
  if (!c.list(l, "potentials")) return o;
  for (auto p : l) {
    // One entry per holder, ascending: a node's distance vector, never two costs for one holder.
    if (c.bad.empty() && (p.getHolder() == 0 || (!o.potentials.empty() && p.getHolder() <= o.potentials.back().holder)))
      c.bad = "potentials not one per holder in ascending order (holder " + std::to_string(p.getHolder()) + ")";
    o.potentials.push_back(Potential{p.getHolder(), c.cost(p.getCost(), "potential")});
  }
  return o;
}

}  // namespace

void fill_flow(schema::FlowMessage::Builder out, const FlowBody& body) {
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Offer>) {
          fill_offer(out.initOffer(), m);
        } else if constexpr (std::is_same_v<T, FlowRequest>) {
          auto b = out.initRequest();
          b.setHop(m.hop);
          b.setPrefix(m.prefix);
          b.setExpectedSuffix(m.expected_suffix);
          b.setSink(m.sink);
          b.setSource(m.source);
        } else if constexpr (std::is_same_v<T, FlowAccept>) {
          auto b = out.initAccept();
          b.setHop(m.hop);
          b.setSuffix(m.suffix);
          b.setSink(m.sink);
        } else if constexpr (std::is_same_v<T, FlowReject>) {
          auto b = out.initReject();
          b.setHop(m.hop);
          b.setReason(static_cast<schema::FlowReason>(m.reason));
          fill_offer(b.initOffer(), m.offer);
        } else if constexpr (std::is_same_v<T, Cancel>) {
          auto b = out.initCancel();
          b.setHop(m.hop);
          b.setRelease(m.release);
        } else if constexpr (std::is_same_v<T, PushBack>) {
          out.initPushBack().setHop(m.hop);
        } else if constexpr (std::is_same_v<T, SuffixUpdate>) {
          auto b = out.initSuffixUpdate();
          b.setHop(m.hop);
          b.setCost(m.suffix);
          b.setSink(m.sink);
        } else if constexpr (std::is_same_v<T, PrefixUpdate>) {
          auto b = out.initPrefixUpdate();
          b.setHop(m.hop);
          b.setCost(m.prefix);
          b.setSink(m.source);  // FlowCost's holder field: the source, along a prefix
        } else if constexpr (std::is_same_v<T, CheckFlows> || std::is_same_v<T, CheckReply>) {
          const auto& ids = [&]() -> const std::vector<HopId>& {
            if constexpr (std::is_same_v<T, CheckFlows>) return m.hops;
            else return m.unknown;
          }();
          auto b = std::is_same_v<T, CheckFlows> ? out.initCheckFlows() : out.initCheckReply();
          auto l = b.initHops(static_cast<unsigned>(ids.size()));
          for (unsigned i = 0; i < ids.size(); ++i) l.set(i, ids[i]);
        } else if constexpr (std::is_same_v<T, Snapshot>) {
          auto b = out.initSnapshot();
          auto pairs = b.initPairs(static_cast<unsigned>(m.pairs.size()));
          for (unsigned i = 0; i < m.pairs.size(); ++i) {
            const auto& p = m.pairs[i];
            auto q = pairs[i];
            q.setOut(p.out);
            q.setPrev(p.prev);
            q.setPrefix(p.prefix);
            q.setNext(p.next);
            q.setLinkNext(p.link_next);
            q.setSuffixAfterNext(p.suffix_after_next);
          }
          auto links = b.initLinks(static_cast<unsigned>(m.links.size()));
          for (unsigned i = 0; i < m.links.size(); ++i) {
            links[i].setPeer(m.links[i].peer);
            links[i].setCost(m.links[i].cost);
          }
          b.setCapacity(m.capacity);
          b.setUsed(m.used);
        } else if constexpr (std::is_same_v<T, ProposeSwap>) {
          auto b = out.initProposeSwap();
          b.setMine(m.mine);
          b.setTheirs(m.theirs);
          b.setNewId(m.new_id);
          b.setMyNext(m.my_next);
          b.setMyPrefix(m.my_prefix);
          b.setMyLinkToMyNext(m.my_link_to_my_next);
          b.setMyLinkToTheirNext(m.my_link_to_their_next);
          b.setMySuffixAfterNext(m.my_suffix_after_next);
          b.setCycle(m.cycle);
          b.setExpectedTheirNext(m.expected_their_next);
          b.setMySink(m.my_sink);
          b.setMySource(m.my_source);
        } else if constexpr (std::is_same_v<T, SwapReply>) {
          auto b = out.initSwapReply();
          b.setAccept(m.accept);
          b.setReason(static_cast<schema::FlowReason>(m.reason));
          b.setMine(m.mine);
          b.setTheirs(m.theirs);
          b.setNewId(m.new_id);
          b.setTheirPrefix(m.their_prefix);
          b.setTheirSuffixAfter(m.their_suffix_after);
          b.setTheirLinkToMyNext(m.their_link_to_my_next);
          b.setTheirSink(m.their_sink);
          b.setTheirSource(m.their_source);
        } else if constexpr (std::is_same_v<T, ProposeTakeover>) {
          auto b = out.initProposeTakeover();
          b.setTheirs(m.theirs);
          b.setNewId(m.new_id);
          b.setMyLinkPrev(m.my_link_prev);
          b.setMyLinkNext(m.my_link_next);
          b.setExpectedPrev(m.expected_prev);
          b.setExpectedNext(m.expected_next);
        } else if constexpr (std::is_same_v<T, TakeoverReply>) {
          auto b = out.initTakeoverReply();
          b.setAccept(m.accept);
          b.setReason(static_cast<schema::FlowReason>(m.reason));
          b.setTheirs(m.theirs);
          b.setNewId(m.new_id);
          b.setPrev(m.prev);
          b.setPrevHop(m.prev_hop);
          b.setPrefixAtPrev(m.prefix_at_prev);
          b.setNext(m.next);
          b.setSuffixAfterNext(m.suffix_after_next);
          b.setSink(m.sink);
          b.setSource(m.source);
        } else if constexpr (std::is_same_v<T, Switch>) {
          auto b = out.initSwitch();
          b.setOldId(m.old_id);
          b.setNewPrev(m.new_prev);
          b.setNewId(m.new_id);
          b.setPrefix(m.prefix);
          b.setSource(m.source);
        } else {
          static_assert(std::is_same_v<T, Redirect>);
          auto b = out.initRedirect();
          b.setHop(m.hop);
          b.setNewNext(m.new_next);
        }
      },
      body);
}

Result<FlowBody, WireError> read_flow(schema::FlowMessage::Reader in) {
  Checker c;
  FlowBody body;
  using W = schema::FlowMessage;
  switch (in.which()) {
    case W::OFFER: body = read_offer(in.getOffer(), c); break;
    case W::REQUEST: {
      auto r = in.getRequest();
      body = FlowRequest{r.getHop(), c.cost(r.getPrefix(), "prefix"),
                         c.cost(r.getExpectedSuffix(), "expectedSuffix", true), r.getSink(), r.getSource()};
      break;
    }
    case W::ACCEPT: {
      auto r = in.getAccept();
      body = FlowAccept{r.getHop(), c.cost(r.getSuffix(), "suffix"), r.getSink()};
      break;
    }
    case W::REJECT: {
      auto r = in.getReject();
      body = FlowReject{r.getHop(), c.reason(r.getReason()), read_offer(r.getOffer(), c)};
      break;
    }
    case W::CANCEL: body = Cancel{in.getCancel().getHop(), in.getCancel().getRelease()}; break;
    case W::PUSH_BACK: body = PushBack{in.getPushBack().getHop()}; break;
    case W::SUFFIX_UPDATE: {
      auto r = in.getSuffixUpdate();
      body = SuffixUpdate{r.getHop(), c.cost(r.getCost(), "suffix"), r.getSink()};
      break;
    }
    case W::PREFIX_UPDATE: {
      auto r = in.getPrefixUpdate();
      body = PrefixUpdate{r.getHop(), c.cost(r.getCost(), "prefix"), r.getSink()};
      break;
    }
    case W::CHECK_FLOWS:
    case W::CHECK_REPLY: {
      auto l = in.which() == W::CHECK_FLOWS ? in.getCheckFlows().getHops() : in.getCheckReply().getHops();
      std::vector<HopId> ids;
      if (c.list(l, "hops"))
        for (auto id : l) ids.push_back(id);
      if (in.which() == W::CHECK_FLOWS) body = CheckFlows{std::move(ids)};
      else body = CheckReply{std::move(ids)};
      break;
    }
    case W::SNAPSHOT: {
      auto r = in.getSnapshot();
      Snapshot s;
      if (c.list(r.getPairs(), "pairs"))
        for (auto p : r.getPairs())
          s.pairs.push_back(PairInfo{p.getOut(), p.getPrev(), c.cost(p.getPrefix(), "prefix"), p.getNext(),
                                     c.cost(p.getLinkNext(), "linkNext"),
                                     c.cost(p.getSuffixAfterNext(), "suffixAfterNext")});
      if (c.list(r.getLinks(), "links"))
        for (auto l : r.getLinks()) s.links.push_back(LinkCostEntry{l.getPeer(), c.cost(l.getCost(), "link")});
      s.capacity = r.getCapacity();
      s.used = r.getUsed();
      body = std::move(s);
      break;
    }
    case W::PROPOSE_SWAP: {
      auto r = in.getProposeSwap();
      body = ProposeSwap{r.getMine(),
                         r.getTheirs(),
                         r.getNewId(),
                         r.getMyNext(),
                         c.cost(r.getMyPrefix(), "myPrefix"),
                         c.cost(r.getMyLinkToMyNext(), "myLinkToMyNext"),
                         c.cost(r.getMyLinkToTheirNext(), "myLinkToTheirNext"),
                         c.cost(r.getMySuffixAfterNext(), "mySuffixAfterNext"),
                         r.getCycle(),
                         r.getExpectedTheirNext(),
                         r.getMySink(),
                         r.getMySource()};
      break;
    }
    case W::SWAP_REPLY: {
      auto r = in.getSwapReply();
      body = SwapReply{r.getAccept(),
                       c.reason(r.getReason()),
                       r.getMine(),
                       r.getTheirs(),
                       r.getNewId(),
                       c.cost(r.getTheirPrefix(), "theirPrefix"),
                       c.cost(r.getTheirSuffixAfter(), "theirSuffixAfter"),
                       c.cost(r.getTheirLinkToMyNext(), "theirLinkToMyNext"),
                       r.getTheirSink(),
                       r.getTheirSource()};
      break;
    }
    case W::PROPOSE_TAKEOVER: {
      auto r = in.getProposeTakeover();
      body = ProposeTakeover{r.getTheirs(), r.getNewId(), c.cost(r.getMyLinkPrev(), "myLinkPrev"),
                             c.cost(r.getMyLinkNext(), "myLinkNext"), r.getExpectedPrev(), r.getExpectedNext()};
      break;
    }
    case W::TAKEOVER_REPLY: {
      auto r = in.getTakeoverReply();
      body = TakeoverReply{r.getAccept(),      c.reason(r.getReason()),
                           r.getTheirs(),      r.getNewId(),
                           r.getPrev(),        r.getPrevHop(),
                           c.cost(r.getPrefixAtPrev(), "prefixAtPrev"), r.getNext(),
                           c.cost(r.getSuffixAfterNext(), "suffixAfterNext"), r.getSink(),
                           r.getSource()};
      break;
    }
    case W::SWITCH: {
      auto r = in.getSwitch();
      body = Switch{r.getOldId(), r.getNewPrev(), r.getNewId(), c.cost(r.getPrefix(), "prefix"), r.getSource()};
      break;
    }
    case W::REDIRECT: {
      auto r = in.getRedirect();
      body = Redirect{r.getHop(), r.getNewNext()};
      break;
    }
    default:
      return Err<WireError>{WireError{WireErrc::kUnknownKind, "unknown message kind: flow message kind " +
                                                                   std::to_string(static_cast<unsigned>(in.which()))}};
  }
  if (!c.bad.empty()) return invalid(c.bad);
  return body;
}

}  // namespace gwtf::wire
