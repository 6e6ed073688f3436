#include "actors/flow_actor.hpp"

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
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  };
  auto st = std::make_shared<State>(State{flow::FlowNode(config, Rng(seed)), {}, {}});
  const auto period = std::chrono::milliseconds(static_cast<int64_t>(config.params.period * 1000));
  auto step = [self, st, node](const flow::Input& in) {
    flow::Output out;
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - st->t0).count();
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
