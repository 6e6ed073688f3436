// The exactly-once check from the outside: from nodes' event logs ("member" gives a node's stage, "applied" the
// reduce it applied — every member's contributions in it, `stage_done`/`stage_end_done`), per stage and iteration,
// how many microbatches the applied reduce lacks (lost) and holds more than once (duplicated). Every member of a
// stage applies the same reduce; where two were applied for one iteration (a leader that applied its own and died
// before it left it: the others reduced again without it), the one a node that finished applied is the stage's
// state. Used by gwtf demo's report, `gwtf ledger` and the actor tests.
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
