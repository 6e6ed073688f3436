// LibTorch tensors <-> wire TensorViews. Kept apart from frame.hpp so that code that never computes tensors
// (flow routing, the simulator) builds and starts without LibTorch.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>

#include "kernels/base/result.hpp"
#include "kernels/wire/error.hpp"
#include "kernels/wire/message.hpp"

namespace gwtf::wire {

std::optional<DType> to_wire_dtype(c10::ScalarType t);
c10::ScalarType to_torch_dtype(DType d);

// A contiguous CPU tensor and a view of its bytes. The view is valid while `tensor` lives; keep the whole
// HeldTensor alive until the frame is encoded.
struct HeldTensor {
  at::Tensor tensor;
  TensorView view;
};

// Any tensor (any strides, any device) of a wire dtype -> a view; kUnknownDType for dtypes the wire lacks
// (complex, quantized).
Result<HeldTensor, WireError> hold_for_wire(const at::Tensor& t);

// A decoded view -> a tensor that aliases the frame's bytes (no copy); `storage` (Message::storage) is kept
// alive by the tensor. The bytes are the received frame: treat the tensor as read-only (clone() to modify).
at::Tensor from_wire(const TensorView& view, std::shared_ptr<const void> storage);

}  // namespace gwtf::wire
