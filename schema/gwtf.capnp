# gwtf wire format: every message between gwtf nodes is one Envelope, encoded as a Cap'n Proto flat array
# (segment table + segments) and carried by CAF as one registered byte-vector payload (actors/frame.hpp).
# This file is the one source of truth for the wire; kernels/wire decodes and validates it (docs/wire.md).
#
# Compatibility rules: add fields and union members only at new ordinals; never renumber; bump
# protocolVersion when an old node could misread a new frame.
@0xde05427c96b21ec5;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("gwtf::schema");

const protocolVersion :UInt16 = 1;

enum DType {
  float32 @0;
  float16 @1;
  bfloat16 @2;
  float64 @3;
  int64 @4;
  int32 @5;
  int16 @6;
  int8 @7;
  uint8 @8;
  bool @9;
}

# A dense tensor. `data` holds the elements row-major and little-endian;
# its length is product(shape) * elementSize(dtype). An empty shape is a 0-d (scalar) tensor.
struct Tensor {
  dtype @0 :DType;
  shape @1 :List(Int64);
  data @2 :Data;
}

# A boundary tensor of the pipeline: an activation travelling forward, or the gradient of one travelling
# backward, for one microbatch of one iteration.
struct StageTensor {
  iteration @0 :UInt64;
  microbatch @1 :UInt32;
  stage @2 :UInt16;        # the stage that sent this tensor
  hop @3 :UInt64;          # flow hop id: names the reserved path edge the tensor travels on
  tensor @4 :Tensor;
}

# Liveness and round-trip time. A node echoes the latest heartbeat it got from the receiver, so the receiver
# measures RTT with its own clock only: rtt = now - echoSentAtNs - echoHeldNs.
struct Heartbeat {
  seq @0 :UInt64;
  sentAtNs @1 :Int64;      # sender's monotonic clock
  echoSeq @2 :UInt64;      # 0: nothing to echo yet
  echoSentAtNs @3 :Int64;  # the receiver's own sentAtNs of heartbeat echoSeq
  echoHeldNs @4 :Int64;    # how long the sender held that heartbeat before echoing it
}

# What a node can take: concurrent microbatches for its stage and the measured cost of one.
struct CapacityUpdate {
  stage @0 :UInt16;
  capacity @1 :UInt32;             # microbatches it can hold between forward and backward
  inFlight @2 :UInt32;             # of which currently used
  computeNsPerMicrobatch @3 :UInt64; # smoothed forward+backward time for one microbatch
  memoryBytes @4 :UInt64;          # memory offered to the stage
}

struct Envelope {
  version @0 :UInt16;
  swarmId @1 :UInt64;
  sender @2 :UInt64;       # node id of the sender
  body :union {
    tensor @3 :Tensor;
    activation @4 :StageTensor;
    gradient @5 :StageTensor;
    heartbeat @6 :Heartbeat;
    capacityUpdate @7 :CapacityUpdate;
  }
}
