// The exactly-once check from the outside: from nodes' event logs ("member" gives a node's stage, "applied" the
// contributions it held in each reduce it applied), per stage and iteration, how many microbatches no live member
// contributed (lost) and how many two did (duplicated). Used by gwtf demo's report and the actor tests.
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
