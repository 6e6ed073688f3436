#include "actors/flow_actor.hpp"

#include "actors/actor_clock.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <memory>

namespace gwtf {

namespace {
using flow_tick_atom = caf::atom_constant<caf::atom("flowtick")>;
}

caf::behavior flow_actor(caf::event_based_actor* self, flow::FlowConfig config, uint64_t seed, caf::actor node) {
  struct State {
    flow::FlowNode fn;
    std::vector<flow::NodeId> hops;
    caf::actor_clock::time_point t0;
  };
  auto st = std::make_shared<State>(State{flow::FlowNode(config, Rng(seed)), {}, self->clock().now()});
  const auto period = std::chrono::milliseconds(static_cast<int64_t>(config.params.period * 1000));
  auto step = [self, st, node](const flow::Input& in) {
    flow::Output out;
    const double now = seconds_since(self, st->t0);
    st->fn.step(in, now, out);
    FromFlow f;
    f.messages = std::move(out.messages);
    f.events = std::move(out.events);
    auto hops = st->fn.next_hops();
    if (hops != st->hops) {
      st->hops = hops;
      f.next_hops = std::move(hops);
    }
    if (!f.messages.empty() || f.next_hops || !f.events.empty()) self->send(node, std::move(f));
  };
  self->monitor(node);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  self->send(self, flow_tick_atom::value);
  return {
      [step](ToFlow& t) { step(t.input); },
      [self, step, period](flow_tick_atom) {
        step(flow::Tick{});
        self->delayed_send(self, period, flow_tick_atom::value);
      },
  };
}

}  // namespace gwtf
