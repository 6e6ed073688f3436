// `gwtf ledger FILE...`: the exactly-once check of a finished swarm from its nodes' event logs (gwtf-node
// --events): per stage and iteration, microbatches nobody contributed (lost) and contributed twice (duplicated).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gwtf::app {

// Prints one JSON object (nodes, iterations, lost, duplicated, final_loss, refused_frames); exit code 0 when nothing
// was lost or duplicated and every one of `iterations` was stepped by a data holder, 1 otherwise, 2 on bad input.
int run_ledger(const std::vector<std::string>& files, uint32_t microbatches, uint64_t iterations);

}  // namespace gwtf::app
