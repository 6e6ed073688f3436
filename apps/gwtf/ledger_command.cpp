#include "apps/gwtf/ledger_command.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "actors/ledger_tally.hpp"

namespace gwtf::app {

int run_ledger(const std::vector<std::string>& files, uint32_t microbatches, uint64_t iterations) {
  using json = nlohmann::json;
  std::map<uint64_t, std::vector<json>> events;
  std::map<uint64_t, double> loss;  // a data holder's loss per stepped iteration
  uint64_t refused = 0;
  for (const auto& path : files) {
    std::ifstream in(path);
    if (!in) {
      std::fprintf(stderr, "gwtf ledger: %s cannot be read\n", path.c_str());
      return 2;
    }
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
      if (line.empty()) continue;
      json e = json::parse(line, nullptr, false);
      if (e.is_discarded() || !e.is_object() || !e.contains("node")) {
        std::fprintf(stderr, "gwtf ledger: %s:%zu is not an event of a gwtf-node log\n", path.c_str(), n);
        return 2;
      }
      if (e.value("event", "") == "train" && e.value("kind", "") == "stepped") {
        // Only data holders' steps carry the iteration's loss; relays step with value 0 (their stage is not 0).
        if (e.value("value", 0.0) != 0.0) loss[e.value("iter", uint64_t{0})] = e.value("value", 0.0);
      }
      if (e.value("event", "") == "exit") refused += e.value("frames_rejected", uint64_t{0});
      events[e.value("node", uint64_t{0})].push_back(std::move(e));
    }
  }
  const LedgerTally t = tally_ledger(events, microbatches, iterations);
  json out{{"nodes", events.size()}, {"iterations", loss.size()}, {"lost", t.lost}, {"duplicated", t.duplicated},
           {"refused_frames", refused}};
  if (!loss.empty()) out["final_loss"] = loss.rbegin()->second;
  std::printf("%s\n", out.dump().c_str());
  return t.lost == 0 && t.duplicated == 0 && loss.size() == iterations ? 0 : 1;
}

}  // namespace gwtf::app
