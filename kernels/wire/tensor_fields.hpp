// The Tensor fields of schema/gwtf.capnp, for other messages that carry tensors (checkpoints). Same rules as
// frames: payloads attached without a copy when word-aligned; every read validated (dtype, rank, dimensions,
// overflow, data length).
#pragma once

#include <capnp/orphan.h>

#include "kernels/base/result.hpp"
#include "kernels/wire/error.hpp"
#include "kernels/wire/frame.hpp"
#include "kernels/wire/message.hpp"
#include "schema/gwtf.capnp.h"

namespace gwtf::wire {

void fill_tensor(schema::Tensor::Builder out, const TensorView& t, capnp::Orphanage orphanage);
Result<TensorView, WireError> read_tensor(schema::Tensor::Reader in, const DecodeOptions& options);

}  // namespace gwtf::wire
