// The cost of an edge of the flow graph, and a node's capacity (GWTF §2.1, DESIGN §4).
//
//   d_ij = (c_i + c_j)/2 + (λ_ij + λ_ji)/2 + (size/β_ij + size/β_ji)/2
//
// c: a node's forward+backward compute time per microbatch for its stage; λ: one-way latency each way;
// β: bandwidth each way; size: bytes of the boundary tensor. Each link carries a microbatch twice (activation
// forward, gradient backward), hence the averages. The paper writes the transfer term 2·size/(β_ij + β_ji): the
// same on a symmetric link, but on a link slow one way only it is the fast way's time, and flows stay on a link
// whose every activation crawls. The mean of the two transfer times does not hide the slow way. Measurements
// arrive noisy and are smoothed (Ewma).
#pragma once

#include <cstdint>

namespace gwtf::flow {

double edge_cost(double compute_i_s, double compute_j_s, double latency_ij_s, double latency_ji_s,
                 double bandwidth_ij_Bps, double bandwidth_ji_Bps, double boundary_bytes);

// Exponentially weighted moving average; the first sample sets the value.
class Ewma {
 public:
  explicit Ewma(double alpha = 0.2) : alpha_(alpha) {}
  void add(double sample) {
    value_ = has_ ? alpha_ * sample + (1 - alpha_) * value_ : sample;
    has_ = true;
  }
  bool has_value() const { return has_; }
  double value() const { return value_; }

 private:
  double alpha_;
  double value_ = 0;
  bool has_ = false;
};

// Smoothed measurements of one link as seen from one end, and the edge cost they give.
struct LinkMeasurements {
  Ewma compute_self_s, compute_peer_s;   // per-microbatch fwd+bwd time of each end (the peer advertises its own)
  Ewma latency_out_s, latency_in_s;      // one-way latency each way (RTT/2 when only RTT is known)
  Ewma bandwidth_out_Bps, bandwidth_in_Bps;

  bool complete() const {
    return compute_self_s.has_value() && compute_peer_s.has_value() && latency_out_s.has_value() &&
           latency_in_s.has_value() && bandwidth_out_Bps.has_value() && bandwidth_in_Bps.has_value();
  }
  double cost(double boundary_bytes) const {
    return edge_cost(compute_self_s.value(), compute_peer_s.value(), latency_out_s.value(), latency_in_s.value(),
                     bandwidth_out_Bps.value(), bandwidth_in_Bps.value(), boundary_bytes);
  }
};

// How many microbatches a node can hold between their forward and backward passes: its memory for the stage,
// less the stage's weights, gradients and optimizer state, divided by one microbatch's activations plus its
// recovery buffers. At least 0, at most `cap`.
uint32_t capacity_from_memory(uint64_t memory_bytes, uint64_t fixed_bytes, uint64_t per_microbatch_bytes,
                              uint32_t cap = 64);

// How many flows a relay carries before its one device, not the links, sets their pace. The edge cost counts a
// node's compute once per flow, as if each flow had the device to itself; but flows through one relay queue
// behind each other on it. In one round trip of a microbatch through the pipeline (round_trip_s) the relay
// computes round_trip_s / compute_s microbatches, and each flow brings it microbatches_per_flow of them (the
// microbatches the data holders keep in flight over their flows). Beyond that many flows a relay only adds
// queueing, and the work is better spread over slower or farther replicas that idle. At least 1; no limit
// (UINT32_MAX) while compute_s or round_trip_s is unknown (not positive).
uint32_t capacity_from_compute(double compute_s, double round_trip_s, double microbatches_per_flow);

}  // namespace gwtf::flow
