# The Envelope as a newer gwtf might send it: one more message kind. Tests decode its frames with today's
# schema to check that an unknown kind is refused with a clear error, not misread.
@0xc7a2a6b9c1e0f5d3;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("gwtf::future");

using G = import "/schema/gwtf.capnp";

struct Envelope {
  version @0 :UInt16;
  swarmId @1 :UInt64;
  sender @2 :UInt64;
  body :union {
    tensor @3 :G.Tensor;
    activation @4 :G.StageTensor;
    gradient @5 :G.StageTensor;
    heartbeat @6 :G.Heartbeat;
    capacityUpdate @7 :G.CapacityUpdate;
    flow @8 :G.FlowMessage;
    train @9 :G.TrainMessage;
    membership @10 :G.MembershipMessage;
    somethingNew @11 :Text;
  }
}
