// Membership messages <-> schema::MembershipMessage. Internal to kernels/wire (frame.cpp calls it).
#pragma once

#include "kernels/base/result.hpp"
#include "kernels/train/membership.hpp"
#include "kernels/wire/error.hpp"
#include "schema/gwtf.capnp.h"

namespace gwtf::wire {

void fill_membership(schema::MembershipMessage::Builder out, const train::MembershipBody& m);

// Refused: host names over 255 bytes, a hello without host or port, member lists over 65536 entries, a stage
// over 65535, an unknown role, a reason over 4096 bytes.
Result<train::MembershipBody, WireError> read_membership(schema::MembershipMessage::Reader in);

}  // namespace gwtf::wire
