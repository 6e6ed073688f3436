#include "kernels/flow/cost_model.hpp"

#include <algorithm>
#include <limits>

namespace gwtf::flow {

double edge_cost(double compute_i_s, double compute_j_s, double latency_ij_s, double latency_ji_s,
                 double bandwidth_ij_Bps, double bandwidth_ji_Bps, double boundary_bytes) {
  return (compute_i_s + compute_j_s) / 2 + (latency_ij_s + latency_ji_s) / 2 +
         (boundary_bytes / bandwidth_ij_Bps + boundary_bytes / bandwidth_ji_Bps) / 2;
}

uint32_t capacity_from_memory(uint64_t memory_bytes, uint64_t fixed_bytes, uint64_t per_microbatch_bytes,
                              uint32_t cap) {
  if (memory_bytes <= fixed_bytes || per_microbatch_bytes == 0) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(cap, (memory_bytes - fixed_bytes) / per_microbatch_bytes));
}

uint32_t capacity_from_compute(double compute_s, double round_trip_s, double microbatches_per_flow) {
  const uint32_t unlimited = std::numeric_limits<uint32_t>::max();
  if (!(compute_s > 0) || !(round_trip_s > 0)) return unlimited;
  const double flows = round_trip_s / (compute_s * std::max(1.0, microbatches_per_flow));
  return static_cast<uint32_t>(std::clamp(flows, 1.0, static_cast<double>(unlimited)));
}

}  // namespace gwtf::flow
