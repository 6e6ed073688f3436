// The exactly-once check from the outside: from nodes' event logs ("member" gives a node's stage, "applied" the
// contributions it held in each reduce it applied), per stage and iteration, how many microbatches no live member
// contributed (lost) and how many two did (duplicated). The last iteration applied by a node that died (no exit with
// code 0) counts only where its stage peers' contributions do not already cover it: a leader cut off after applying
// its own reduce, before the result left it, took that result with it, and the others redid its work (seen on the
// fault bed: the model equal to the reference, and 2 "duplicates" that no surviving state held). Used by gwtf
// demo's report, `gwtf ledger` and the actor tests.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <vector>

namespace gwtf {

struct LedgerTally {
  uint64_t lost = 0, duplicated = 0;
};

LedgerTally tally_ledger(const std::map<uint64_t, std::vector<nlohmann::json>>& events, uint32_t microbatches,
                         uint64_t iterations);

}  // namespace gwtf
