// Training-protocol messages <-> schema::TrainMessage. Internal to kernels/wire (frame.cpp calls it).
#pragma once

#include <capnp/orphan.h>

#include "kernels/base/result.hpp"
#include "kernels/wire/error.hpp"
#include "kernels/wire/frame.hpp"
#include "kernels/wire/message.hpp"
#include "schema/gwtf.capnp.h"

namespace gwtf::wire {

// Blob fields of `m.msg` index `m.tensors` (1-based); an index past the end is a programming error (throws).
void fill_train(schema::TrainMessage::Builder out, const TrainMessage& m, capnp::Orphanage orphanage);

// Every value a peer could get wrong is an error value: tensors (as in frames), lists over 65536 entries,
// forwarded paths with more flags than entries, adopted paths for microbatches not held, non-finite losses, a
// state manifest whose chunk checksums do not match its size, a chunk over the chunk-size limit. `from` becomes
// the message's sender.
Result<TrainMessage, WireError> read_train(schema::TrainMessage::Reader in, uint64_t from, const DecodeOptions& options);

}  // namespace gwtf::wire
