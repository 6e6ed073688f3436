// Tensor goodput between two processes on loopback — raw TCP, the runtime's bulk data path (actors/bulk_path),
// CAF's middleman — and a heartbeat's round trip beside a tensor stream: shared by bench/wire and bench/runtime.
// Every transport does the same work per message — encode a frame from the tensor, send it; the receiver decodes
// and validates it and acks with 8 bytes (raw TCP: on its connection; the others: over CAF, as the runtime's acks
// go) — with 4 messages in flight. The transports alternate, R rounds each, and the medians are compared. The
// receiving side is the calling binary re-executed with --serve tcp|caf: its main calls serve_if_asked first.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/wire/frame.hpp"

namespace gwtf::bench {

// A frame holding `t` as microbatch `microbatch`'s activation, and how the receiver decodes it.
std::vector<char> encode_tensor(const at::Tensor& t, uint32_t microbatch);
wire::DecodeOptions decode_options();
double median(std::vector<double> v);

// When argv is `--serve tcp|caf`: serves until SIGTERM and returns the exit code.
std::optional<int> serve_if_asked(int argc, char** argv);

struct GoodputOptions {
  int messages = 60, rounds = 3, mib = 4;
};
// Prints the goodput table and the heartbeat round trips; returns bulk path / raw TCP (negative: it failed).
// `self_path`: argv[0] of the calling binary.
double print_goodput(const char* self_path, const GoodputOptions& options);

}  // namespace gwtf::bench
