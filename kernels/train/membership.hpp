// Membership messages (schema/gwtf.capnp MembershipMessage): how a node enters a swarm. The rules that decide on
// them are kernels/train/roster.hpp; the node actor only carries them.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "kernels/train/messages.hpp"

namespace gwtf::train {

struct MemberInfo {
  NodeId id = 0;
  Stage stage = 0;  // 0: data holder; 1..S: relay stage
  std::string host;  // where its node actor is published
  uint16_t port = 0;
  bool ready = true;  // serves its stage (a joiner: once it imported the state)
  uint16_t status_port = 0;  // its HTTP status server on `host` (/metrics, the swarm page); 0: none
  uint16_t data_port = 0;    // its bulk data path on `host` (tensors between nodes); 0: none, all on CAF
};

enum class Role : uint8_t { kData, kRelay, kAny };
const char* role_name(Role r);

struct Hello {
  NodeId id = 0;
  Role role = Role::kAny;
  Stage stage = 0;  // kRelay: the wanted stage, 0 for any
  std::string host;
  uint16_t port = 0;
  uint64_t config_hash = 0;  // fingerprint of the run's configuration (model, cut, schedule, data)
  uint16_t status_port = 0;
  uint16_t data_port = 0;
};
struct RosterMsg {
  std::vector<MemberInfo> members;
  bool started = false;  // training has begun: the receiver joins
  MemberInfo you;
};
struct Joined {
  MemberInfo member;
};
struct Refused {
  std::string reason;
};

// Which certificate the sender speaks for (TLS swarms; kernels/auth checks it, the roster never sees it).
struct Proof {
  std::string certificate;  // PEM
  uint64_t incarnation = 0;
  std::string signature;
};

// Deaths the swarm agrees on (Roster::arbiter says why one node settles them).
struct Gone {  // `node` is dead to the swarm: every member drops it, and the member itself stops
  NodeId node = 0;
};
struct Suspect {  // to the arbiter: the sender lost its link to `node`
  NodeId node = 0;
};

using MembershipBody = std::variant<Hello, RosterMsg, Joined, Refused, Proof, Gone, Suspect>;

}  // namespace gwtf::train
