// LibTorch tensors through frames: every dtype, many shapes, non-contiguous input; bit-exact and zero-copy.
#include "kernels/wire/tensor_codec.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/wire/frame.hpp"

namespace gwtf::wire {
namespace {

constexpr uint64_t kSwarm = 11;

DecodeOptions options() {
  DecodeOptions o;
  o.swarm_id = kSwarm;
  return o;
}

// Random contents that exercise every bit pattern of the dtype (NaN payloads, -0.0, subnormals included).
at::Tensor random_bits(at::IntArrayRef shape, c10::ScalarType dtype) {
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  const auto n = static_cast<int64_t>(t.nbytes());
  if (n > 0) {
    auto bytes = at::randint(0, 256, {n}, at::TensorOptions().dtype(at::kByte));
    if (dtype == at::kBool) bytes = bytes.remainder(2);  // bool must hold 0 or 1
    std::memcpy(t.data_ptr(), bytes.data_ptr(), static_cast<size_t>(n));
  }
  return t;
}

bool bit_identical(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous();
  auto cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

at::Tensor round_trip(const at::Tensor& t, std::shared_ptr<const void>* storage = nullptr) {
  auto held = hold_for_wire(t);
  EXPECT_TRUE(held.ok());
  Activation a;
  a.tensor = held->view;
  auto decoded = decode_frame(encode_frame({0, kSwarm, 1}, a), options());
  EXPECT_TRUE(decoded.ok()) << decoded.error().message;
  if (storage) *storage = decoded->storage;
  return from_wire(std::get<Activation>(decoded->body).tensor, decoded->storage);
}

class EveryDType : public ::testing::TestWithParam<c10::ScalarType> {};

TEST_P(EveryDType, RoundTripIsBitExactForManyShapes) {
  at::manual_seed(1);
  const std::vector<std::vector<int64_t>> shapes = {
      {}, {0}, {1}, {3}, {7}, {2, 3}, {5, 0, 2}, {4, 1, 3}, {2, 3, 4, 5}, {1, 1, 1, 1, 1, 1, 1, 1}, {129, 17}};
  for (const auto& shape : shapes) {
    auto t = random_bits(shape, GetParam());
    auto back = round_trip(t);
    EXPECT_TRUE(bit_identical(t, back)) << "dtype " << c10::toString(GetParam()) << ", shape " << t.sizes();
  }
}

INSTANTIATE_TEST_SUITE_P(Wire, EveryDType,
                         ::testing::Values(at::kFloat, at::kHalf, at::kBFloat16, at::kDouble, at::kLong, at::kInt,
                                           at::kShort, at::kChar, at::kByte, at::kBool),
                         [](const auto& p) { return std::string(c10::toString(p.param)); });

TEST(TensorCodec, NonContiguousInputArrivesWithItsLogicalValues) {
  auto base = at::arange(24, at::kFloat).reshape({4, 6});
  for (const auto& t : {base.t(), base.slice(1, 1, 5, 2), base.unsqueeze(0).expand({3, 4, 6}),
                        base.flip({0})}) {
    ASSERT_FALSE(t.is_contiguous() && t.data_ptr() == base.data_ptr() && t.sizes() == base.sizes());
    auto back = round_trip(t);
    EXPECT_TRUE(at::equal(back, t)) << t.sizes();
    EXPECT_TRUE(back.is_contiguous());
  }
}

TEST(TensorCodec, DecodedTensorAliasesTheFrameAndKeepsItAlive) {
  auto t = at::randn({64, 32});
  std::shared_ptr<const void> storage;
  auto back = round_trip(t, &storage);
  const auto* frame = static_cast<const std::vector<char>*>(storage.get());
  const char* p = static_cast<const char*>(back.data_ptr());
  EXPECT_TRUE(p >= frame->data() && p + back.nbytes() <= frame->data() + frame->size()) << "payload was copied";
  const auto uses = storage.use_count();
  storage.reset();  // the tensor alone now owns the frame
  EXPECT_GE(uses, 2);
  EXPECT_TRUE(at::equal(back, t));
}

TEST(TensorCodec, SixteenMebibyteTensor) {
  auto t = at::randn({4096, 1024});
  EXPECT_TRUE(bit_identical(round_trip(t), t));
}

TEST(TensorCodec, DTypesTheWireLacksGetAClearError) {
  auto held = hold_for_wire(at::zeros({2}, at::kComplexFloat));
  ASSERT_FALSE(held.ok());
  EXPECT_EQ(held.error().code, WireErrc::kUnknownDType);
  EXPECT_NE(held.error().message.find("ComplexFloat"), std::string::npos) << held.error().message;
}

}  // namespace
}  // namespace gwtf::wire
