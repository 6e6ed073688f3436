#include "kernels/wire/tensor_codec.hpp"

#include <ATen/ATen.h>

namespace gwtf::wire {

std::optional<DType> to_wire_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float: return DType::kFloat32;
    case c10::ScalarType::Half: return DType::kFloat16;
    case c10::ScalarType::BFloat16: return DType::kBFloat16;
    case c10::ScalarType::Double: return DType::kFloat64;
    case c10::ScalarType::Long: return DType::kInt64;
    case c10::ScalarType::Int: return DType::kInt32;
    case c10::ScalarType::Short: return DType::kInt16;
    case c10::ScalarType::Char: return DType::kInt8;
    case c10::ScalarType::Byte: return DType::kUInt8;
    case c10::ScalarType::Bool: return DType::kBool;
    default: return std::nullopt;
  }
}

c10::ScalarType to_torch_dtype(DType d) {
  switch (d) {
    case DType::kFloat32: return c10::ScalarType::Float;
    case DType::kFloat16: return c10::ScalarType::Half;
    case DType::kBFloat16: return c10::ScalarType::BFloat16;
    case DType::kFloat64: return c10::ScalarType::Double;
    case DType::kInt64: return c10::ScalarType::Long;
    case DType::kInt32: return c10::ScalarType::Int;
    case DType::kInt16: return c10::ScalarType::Short;
    case DType::kInt8: return c10::ScalarType::Char;
    case DType::kUInt8: return c10::ScalarType::Byte;
    case DType::kBool: return c10::ScalarType::Bool;
  }
  GWTF_ASSERT(false, "DType out of range");
}

Result<HeldTensor, WireError> hold_for_wire(const at::Tensor& t) {
  const auto dtype = to_wire_dtype(t.scalar_type());
  if (!dtype) {
    return Err{WireError{WireErrc::kUnknownDType,
                         std::string("unknown dtype: tensors of ") + c10::toString(t.scalar_type()) +
                             " cannot travel on the wire"}};
  }
  HeldTensor held;
  held.tensor = t.to(at::kCPU).contiguous();
  held.view.dtype = *dtype;
  held.view.shape.assign(held.tensor.sizes().begin(), held.tensor.sizes().end());
  held.view.data = static_cast<const std::byte*>(held.tensor.data_ptr());
  held.view.nbytes = held.tensor.nbytes();
  return held;
}

at::Tensor from_wire(const TensorView& view, std::shared_ptr<const void> storage) {
  const auto options = at::TensorOptions().dtype(to_torch_dtype(view.dtype));
  if (view.nbytes == 0) return at::empty(view.shape, options);
  // from_blob needs a mutable pointer; the deleter owns a reference to the frame, which outlives the tensor.
  return at::from_blob(const_cast<std::byte*>(view.data), view.shape,
                       [keep = std::move(storage)](void*) mutable { keep.reset(); }, options);
}

}  // namespace gwtf::wire
