// bench/wire: what the wire costs, as ratios measured in one run (the machines are shared and noisy).
//
//  1. codec: encode (LibTorch tensor -> frame) and decode (frame -> validated, zero-copy tensor) throughput as a
//     ratio to memcpy of the same bytes into an existing buffer;
//  2. goodput of 4 MiB tensors between two processes on loopback through the runtime's bulk data path and CAF's
//     middleman as ratios to raw TCP, and a heartbeat's round trip beside a tensor stream (bench/wire/goodput.hpp,
//     shared with bench/runtime).
//
// Usage: wire_bench [--messages N] [--rounds R] [--mib M].
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "actors/bulk_path.hpp"
#include "bench/wire/goodput.hpp"
#include "kernels/wire/tensor_codec.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using gwtf::bench::decode_options;
using gwtf::bench::encode_tensor;
using gwtf::bench::median;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ------------------------------------------------------------------------------------------------------------
// 1. codec vs memcpy

void bench_codec(size_t bytes, int reps) {
  auto t = at::randn({static_cast<int64_t>(bytes / 4)});
  std::vector<char> dst(bytes);
  std::vector<double> memcpy_s, encode_s, decode_s;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    std::memcpy(dst.data(), t.data_ptr(), bytes);
    memcpy_s.push_back(seconds_since(t0));

    t0 = Clock::now();
    auto frame = encode_tensor(t, 0);
    encode_s.push_back(seconds_since(t0));

    t0 = Clock::now();
    auto m = gwtf::wire::decode_frame(std::move(frame), decode_options());
    auto back = gwtf::wire::from_wire(std::get<gwtf::wire::Activation>(m->body).tensor, m->storage);
    decode_s.push_back(seconds_since(t0));
    if (back.numel() != t.numel()) std::abort();
  }
  const double gib = static_cast<double>(bytes) / (1u << 30);
  const double m = median(memcpy_s), e = median(encode_s), d = median(decode_s);
  std::printf("codec %7.2f MiB: memcpy %6.2f GiB/s | encode %6.2f GiB/s = %.2fx memcpy | decode %8.2f GiB/s = %.1fx memcpy\n",
              static_cast<double>(bytes) / (1u << 20), gib / m, gib / e, m / e, gib / d, m / d);
}

}  // namespace

int main(int argc, char** argv) {
  if (auto served = gwtf::bench::serve_if_asked(argc, argv)) return *served;
  gwtf::bench::GoodputOptions g;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--messages") g.messages = std::stoi(argv[i + 1]);
    else if (flag == "--rounds") g.rounds = std::stoi(argv[i + 1]);
    else if (flag == "--mib") g.mib = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: wire_bench [--messages N] [--rounds R] [--mib M]\n");
      return 2;
    }
  }
  gwtf::keep_frames_in_heap();  // as every gwtf node does: the same allocator in every process compared
  at::set_num_threads(1);
  std::printf("bench/wire — ratios measured in this run\n\n");
  for (size_t kib : {64u, 1024u, 4096u, 16384u}) bench_codec(kib * 1024, 31);
  return gwtf::bench::print_goodput(argv[0], g) < 0 ? 1 : 0;
}
