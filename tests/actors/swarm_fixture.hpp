// What the in-process swarm tests share: a small run, its corpus, the reference trainer's losses on it, and the
// options of a node of that run; and the check of a finished swarm against that reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "actors/ledger_tally.hpp"
#include "actors/local_swarm.hpp"
#include "apps/common/run_config.hpp"

namespace gwtf::fixture {

inline app::RunConfig run(uint32_t holders) {
  app::RunConfig c;
  c.iterations = 5;
  c.microbatches = 4;
  c.microbatch_size = 2;
  c.seq_len = 32;
  c.holders = holders;
  c.replicas = {2};
  c.in_flight = 2;
  return c;
}

inline const model::Corpus& corpus() {
  static const model::Corpus c = [] {
    std::string text;
    for (int k = 0; k < 60; ++k) text += "Actors come and go; the microbatches flow on. Line " + std::to_string(k) + ".\n";
    return model::Corpus::from_text(text, 0.05).value();
  }();
  return c;
}

// The reference trainer does not depend on the number of holders: one curve for every layout.
inline const std::vector<double>& reference_losses() {
  static const std::vector<double> losses = model::train_local(run(1).reference_options(), corpus()).value().losses;
  return losses;
}

inline NodeOptions node(const app::RunConfig& c, uint64_t id, train::Role role, std::optional<DieAt> die = {}) {
  NodeOptions opt = app::node_options(c, corpus().train);
  opt.id = id;
  opt.role = role;
  opt.die_at = die;
  opt.linger = 1;
  opt.flow_period = 0.25;
  return opt;
}

// The swarm finished as it should: no microbatch lost or counted twice, holder `holder`'s losses equal the
// reference trainer's (1e-5 relative), and every node that was not `killed` exited with code 0.
inline void expect_trained_like_reference(const SwarmEvents& swarm, const app::RunConfig& c, uint64_t holder,
                                          const std::set<uint64_t>& killed) {
  using json = nlohmann::json;
  const auto all = swarm.all();
  const auto ledger = tally_ledger(all, c.microbatches, c.iterations);
  EXPECT_EQ(ledger.lost, 0u);
  EXPECT_EQ(ledger.duplicated, 0u);
  std::map<uint64_t, double> losses;
  for (const auto& e : swarm.of(holder))
    if (is_event(e, "train", "stepped")) losses[e.value("iter", uint64_t{0})] = e.value("value", 0.0);
  const auto& ref = reference_losses();
  ASSERT_EQ(losses.size(), ref.size());
  bool same = true;
  for (const auto& [i, l] : losses) {
    EXPECT_NEAR(l, ref[i], 1e-5 * std::abs(ref[i])) << "iteration " << i;
    same = same && std::abs(l - ref[i]) <= 1e-5 * std::abs(ref[i]);
  }
  if (!same && std::getenv("GWTF_DUMP_EVENTS")) {  // every node's events, for the post-mortem
    std::ofstream dump(std::getenv("GWTF_DUMP_EVENTS"));
    for (const auto& [id, events] : all)
      for (const auto& e : events) dump << e.dump() << "\n";
  }
  for (const auto& [id, events] : all) {
    if (killed.count(id)) continue;
    EXPECT_TRUE(swarm.saw(id, [](const json& e) { return is_event(e, "exit") && e.value("code", -1) == 0; }))
        << "node " << id << " ended with " << events.back().dump();
  }
}

}  // namespace gwtf::fixture
