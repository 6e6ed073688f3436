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
  bandwidthBps @5 :Float64; # the sender's measured bandwidth sending to the receiver (bytes/s); 0: not measured
}

# What a node can take: concurrent microbatches for its stage and the measured cost of one.
struct CapacityUpdate {
  stage @0 :UInt16;
  capacity @1 :UInt32;             # microbatches it can hold between forward and backward
  inFlight @2 :UInt32;             # of which currently used
  computeNsPerMicrobatch @3 :UInt64; # smoothed forward+backward time for one microbatch
  memoryBytes @4 :UInt64;          # memory offered to the stage
}

# ---------------------------------------------------------------------------------------------------------------
# The decentralized flow protocol (docs/flow.md; kernels/flow/messages.hpp holds the same messages as C++ structs).
# Costs are seconds (Float64): finite and >= 0, except bestSuffix, which is +inf when nothing is offered.

enum FlowReason {
  noFreeOutflow @0;
  staleCost @1;
  wrongStage @2;
  busy @3;
  unknownHop @4;
}

struct FlowPotential { holder @0 :UInt64; cost @1 :Float64; }
struct FlowOffer {
  free @0 :UInt32;
  bestSuffix @1 :Float64;
  capacity @2 :UInt32;
  used @3 :UInt32;
  potentials @4 :List(FlowPotential);   # cheapest new path to each holder through relays with room
}
# sink: 0 binds a reserved path; a holder's id builds a new path on to it (a reroute's make-before-break)
# source: the holder the flow starts at (0: not known), wherever a prefix travels
struct FlowRequest {
  hop @0 :UInt64; prefix @1 :Float64; expectedSuffix @2 :Float64; sink @3 :UInt64; source @4 :UInt64;
}
struct FlowAccept { hop @0 :UInt64; suffix @1 :Float64; sink @2 :UInt64; }
struct FlowReject { hop @0 :UInt64; reason @1 :FlowReason; offer @2 :FlowOffer; }
struct FlowHop { hop @0 :UInt64; release @1 :Bool; }      # Cancel (release: the path beyond too), PushBack
struct FlowCost { hop @0 :UInt64; cost @1 :Float64; sink @2 :UInt64; }  # SuffixUpdate (sink), PrefixUpdate (source)
struct FlowHops { hops @0 :List(UInt64); }                # CheckFlows, CheckReply
struct FlowPair {
  out @0 :UInt64;
  prev @1 :UInt64;
  prefix @2 :Float64;
  next @3 :UInt64;
  linkNext @4 :Float64;
  suffixAfterNext @5 :Float64;
}
struct FlowLink { peer @0 :UInt64; cost @1 :Float64; }
struct FlowSnapshot {
  pairs @0 :List(FlowPair);
  links @1 :List(FlowLink);
  capacity @2 :UInt32;
  used @3 :UInt32;
}
struct ProposeSwap {
  mine @0 :UInt64;
  theirs @1 :UInt64;
  newId @2 :UInt64;
  myNext @3 :UInt64;
  myPrefix @4 :Float64;
  myLinkToMyNext @5 :Float64;
  myLinkToTheirNext @6 :Float64;
  mySuffixAfterNext @7 :Float64;
  cycle @8 :Bool;
  expectedTheirNext @9 :UInt64;
  mySink @10 :UInt64;              # the holder my flow ends at (0: unknown)
  mySource @11 :UInt64;            # and starts at (0: unknown)
}
struct SwapReply {
  accept @0 :Bool;
  reason @1 :FlowReason;
  mine @2 :UInt64;
  theirs @3 :UInt64;
  newId @4 :UInt64;
  theirPrefix @5 :Float64;
  theirSuffixAfter @6 :Float64;
  theirLinkToMyNext @7 :Float64;
  theirSink @8 :UInt64;
  theirSource @9 :UInt64;
}
struct ProposeTakeover {
  theirs @0 :UInt64;
  newId @1 :UInt64;
  myLinkPrev @2 :Float64;
  myLinkNext @3 :Float64;
  expectedPrev @4 :UInt64;
  expectedNext @5 :UInt64;
}
struct TakeoverReply {
  accept @0 :Bool;
  reason @1 :FlowReason;
  theirs @2 :UInt64;
  newId @3 :UInt64;
  prev @4 :UInt64;
  prevHop @5 :UInt64;
  prefixAtPrev @6 :Float64;
  next @7 :UInt64;
  suffixAfterNext @8 :Float64;
  sink @9 :UInt64;
  source @10 :UInt64;
}
struct FlowSwitch {
  oldId @0 :UInt64; newPrev @1 :UInt64; newId @2 :UInt64; prefix @3 :Float64; source @4 :UInt64;
}
struct FlowRedirect { hop @0 :UInt64; newNext @1 :UInt64; }

struct FlowMessage {
  union {
    offer @0 :FlowOffer;
    request @1 :FlowRequest;
    accept @2 :FlowAccept;
    reject @3 :FlowReject;
    cancel @4 :FlowHop;
    pushBack @5 :FlowHop;
    suffixUpdate @6 :FlowCost;
    prefixUpdate @7 :FlowCost;
    checkFlows @8 :FlowHops;
    checkReply @9 :FlowHops;
    snapshot @10 :FlowSnapshot;
    proposeSwap @11 :ProposeSwap;
    swapReply @12 :SwapReply;
    proposeTakeover @13 :ProposeTakeover;
    takeoverReply @14 :TakeoverReply;
    switch @15 :FlowSwitch;
    redirect @16 :FlowRedirect;
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Checkpoints (kernels/model/checkpoint.cpp): one stage's weights and optimizer state. On disk a checkpoint file
# is "GWTFCKPT", a format version, the length and an FNV-1a checksum of the message, then this message.

struct NamedTensor {
  name @0 :Text;
  tensor @1 :Tensor;
}

struct ModelConfigRecord {
  arch @0 :UInt8;          # 0 GPT-like, 1 LLaMa-like
  preset @1 :Text;
  dModel @2 :Int64;
  layers @3 :Int64;
  heads @4 :Int64;
  seqLen @5 :Int64;
  vocab @6 :Int64;
  ffnHidden @7 :Int64;
  tiedHead @8 :Bool;
  normEps @9 :Float64;
}

struct StageCheckpoint {
  configHash @0 :UInt64;   # of the record below: a checkpoint of another model is refused before any tensor
  config @1 :ModelConfigRecord;
  stageKind @2 :UInt8;     # 0 start, 1 blocks, 2 end
  firstBlock @3 :Int32;
  endBlock @4 :Int32;
  iteration @5 :UInt64;
  parameters @6 :List(NamedTensor);
  optimizer @7 :List(NamedTensor);
}

# ---------------------------------------------------------------------------------------------------------------
# The training protocol (docs/training.md; kernels/train/messages.hpp holds the same messages as C++ structs, with
# blob handles where these carry tensors). Every message but an ack is acknowledged by its sequence number.

struct TrainActivation {
  iteration @0 :UInt64;
  microbatch @1 :UInt32;
  tensor @2 :Tensor;
  route @3 :List(UInt64);    # a redo: the nodes after the receiver that already have the microbatch
  overflow @4 :Bool;         # every replica of the receiver's stage was busy: take it beyond the buffer budget
}
struct TrainBusy {           # a relay at its buffer budget did not take this microbatch (instead of an ack)
  iteration @0 :UInt64;
  microbatch @1 :UInt32;
  seq @2 :UInt64;            # the activation's; 0: taken earlier, given back (its work failed twice there)
  refused @3 :Bool;          # cannot compute it (a refused tensor, failed work), not a matter of room
}
struct TrainForwarded {
  iteration @0 :UInt64;
  microbatch @1 :UInt32;
  path @2 :List(UInt64);
  confirmed @3 :List(Bool);  # per path entry: known to have received the microbatch
}
struct TrainGradient {
  iteration @0 :UInt64;
  microbatch @1 :UInt32;
  tensor @2 :Tensor;
}
struct WhoHolds {
  iteration @0 :UInt64;
  dead @1 :List(UInt64);
}
struct Adopt {
  iteration @0 :UInt64;
  dead @1 :List(UInt64);
  held @2 :List(UInt32);
  paths @3 :List(List(UInt64));
}
struct TrainProgress {
  iteration @0 :UInt64;
  done @1 :List(UInt32);
  endDone @2 :List(UInt32);
  version @3 :UInt64;        # grows with every report of the sender
  orphaned @4 :List(UInt32); # contributions whose upstream the sender knows dead
  endOrphaned @5 :List(UInt32);
}
struct Retract {             # leader to member: subtract microbatch `mb` from your sum (another member has it)
  iteration @0 :UInt64;
  mb @1 :UInt32;
  end @2 :Bool;              # a holder's end part
  version @3 :UInt64;        # the member's progress report that listed it
  kept @4 :UInt64;           # whose copy stays (if it dies, the member contributes again)
}
struct GradSum {
  iteration @0 :UInt64;
  done @1 :List(UInt32);
  endDone @2 :List(UInt32);
  sum :union {
    none @3 :Void;           # a member without contributions
    tensor @4 :Tensor;
  }
  lossSum @5 :Float64;
  version @6 :UInt64;        # the member's last progress report of the iteration when it summed
  round @7 :UInt64;          # the Collect it answers
  sliced @8 :Bool;           # the sum went to the Collect's owners as slices (sum is none)
}
# A sharded reduce (docs/training.md): the leader asks with the owners of the slices; each member sends each owner
# its slice; the leader tells the members whose slices to reduce; each owner sends its reduced slice to them all.
struct ShardedCollect {
  iteration @0 :UInt64;
  round @1 :UInt64;          # the leader's attempt at this iteration's reduce
  owners @2 :List(UInt64);   # owner k gets slice k (the most senior members, at most TrainParams::reduce_owners)
}
struct ReduceSlice {
  iteration @0 :UInt64;
  leader @1 :UInt64;         # (leader, round): the Collect it belongs to
  round @2 :UInt64;
  version @3 :UInt64;        # a member's slice: its GradSum's version
  index @4 :UInt32;
  count @5 :UInt32;
  reduced @6 :Bool;          # false: a member's slice to its owner; true: an owner's reduced slice to every member
  tensor @7 :Tensor;
}
struct ReducePlan {
  iteration @0 :UInt64;
  round @1 :UInt64;
  owners @2 :List(UInt64);
  members @3 :List(UInt64);  # whose slices each owner sums, in member order
  versions @4 :List(UInt64); # of those members' GradSums
  loss @5 :Float64;
  done @6 :List(UInt32);     # the stage's ledger entry, as in Reduced
  endDone @7 :List(UInt32);
  recipients @8 :List(UInt64);  # every member that answered: owners send each their reduced slice
}
struct Reduced {
  iteration @0 :UInt64;
  tensor @1 :Tensor;
  loss @2 :Float64;
  done @3 :List(UInt32);     # every member's contributions it sums, concatenated: the stage's ledger entry
  endDone @4 :List(UInt32);  # holders' stage: the loss parts
}
struct StageStepped {
  iteration @0 :UInt64;
  stage @1 :UInt16;
}
struct StateManifest {
  version @0 :UInt64;
  size @1 :UInt64;
  chunkSize @2 :UInt32;
  chunkCrcs @3 :List(UInt32);
  crc @4 :UInt32;
}
struct ChunkAsk {
  version @0 :UInt64;
  index @1 :UInt32;
}
struct StateChunk {
  version @0 :UInt64;
  index @1 :UInt32;
  bytes @2 :Data;
}

struct TrainMessage {
  seq @0 :UInt64;            # reliable delivery; 0 for an ack
  to @1 :UInt64;
  body :union {
    activation @2 :TrainActivation;
    forwarded @3 :TrainForwarded;
    gradient @4 :TrainGradient;
    whoHolds @5 :WhoHolds;
    adopt @6 :Adopt;
    progress @7 :TrainProgress;
    collect @8 :UInt64;      # the iteration
    gradSum @9 :GradSum;
    reduced @10 :Reduced;
    committed @11 :StageStepped;
    stateAsk @12 :Void;
    stateOffer @13 :StateManifest;
    chunkAsk @14 :ChunkAsk;
    chunk @15 :StateChunk;
    stateDone @16 :Void;
    ready @17 :UInt64;       # seniority
    ack @18 :UInt64;         # the acknowledged seq
    retract @19 :Retract;
    leaving @20 :Void;       # no new work for me; I leave once my iterations are committed
    busy @21 :TrainBusy;
    shardedCollect @22 :ShardedCollect;
    slice @23 :ReduceSlice;
    reducePlan @24 :ReducePlan;
    assembled @25 :UInt64;   # the iteration whose sharded reduce this member assembled
    applied @26 :StageStepped;  # a senior member applied this step (not yet announced: see committed)
  }
}

# Membership (kernels/train/roster.hpp, actors/node_actor.cpp): how a node enters a swarm. A node says hello to a
# seed; before training starts the seed gathers the founders of the configured layout and then sends every one of
# them the roster; afterwards any member admits a newcomer (a joiner of a relay stage): it answers with the roster
# and announces the newcomer to every member.
struct MemberInfo {
  id @0 :UInt64;
  stage @1 :UInt16;          # 0: data holder; 1..S: relay stage
  host @2 :Text;             # where its node actor is published
  port @3 :UInt16;
  ready @4 :Bool;            # serves its stage (founders from the start; a joiner once it has the state)
  statusPort @5 :UInt16;     # its HTTP status server on `host` (/metrics, the swarm page); 0: none
  dataPort @6 :UInt16;       # its bulk data path on `host` (tensors; actors/bulk_path.hpp); 0: none, all on CAF
}
struct Hello {
  id @0 :UInt64;
  role @1 :Role;
  stage @2 :UInt16;          # role relay: the wanted stage, 0 for any
  host @3 :Text;
  port @4 :UInt16;
  configHash @5 :UInt64;     # fingerprint of the run's configuration: a node of another run is refused
  statusPort @6 :UInt16;     # its HTTP status server (0: none)
  dataPort @7 :UInt16;       # its bulk data path (0: none)
  enum Role {
    data @0;
    relay @1;
    any @2;
  }
}
struct Roster {
  members @0 :List(MemberInfo);
  started @1 :Bool;          # training has begun: the receiver is a joiner
  you @2 :MemberInfo;        # the receiver's place
}
struct MembershipMessage {
  union {
    hello @0 :Hello;
    roster @1 :Roster;
    joined @2 :MemberInfo;   # a newcomer, announced to every member
    refused @3 :Text;        # why the hello was refused
    proof @4 :Proof;         # the sender's identity, before its first other frame on a connection (TLS swarms)
    gone @5 :UInt64;         # this member is dead to the swarm (from the arbiter, or passed on to the member itself)
    suspect @6 :UInt64;      # to the arbiter: the sender lost its link to this member (kernels/train/roster.hpp)
  }
}
# A node proves which certificate it speaks for (kernels/auth/swarm_identity.hpp): the envelope's sender id must be
# derive_node_id(the certificate's name, incarnation), and the signature covers (swarm id, sender id, incarnation,
# the receiver's CAF node id) - a proof cannot be replayed to a third node.
struct Proof {
  certificate @0 :Data;      # PEM, signed by the swarm CA
  incarnation @1 :UInt64;    # fresh per process start
  signature @2 :Data;        # by the certificate's key
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
    flow @8 :FlowMessage;
    train @9 :TrainMessage;
    membership @10 :MembershipMessage;
  }
}
