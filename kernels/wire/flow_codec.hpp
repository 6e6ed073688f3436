// Flow-protocol messages <-> schema::FlowMessage. Internal to kernels/wire (frame.cpp calls it).
#pragma once

#include "kernels/base/result.hpp"
#include "kernels/flow/messages.hpp"
#include "kernels/wire/error.hpp"
#include "schema/gwtf.capnp.h"

namespace gwtf::wire {

void fill_flow(schema::FlowMessage::Builder out, const flow::FlowBody& body);

// Throws only kj::Exception for structural damage (frame.cpp turns that into kMalformed); every value check
// is an error value: costs NaN or negative (bestSuffix may be +inf), unknown reasons, lists over 65536 entries.
Result<flow::FlowBody, WireError> read_flow(schema::FlowMessage::Reader in);

}  // namespace gwtf::wire
