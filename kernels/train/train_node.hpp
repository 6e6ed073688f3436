// One node of the training protocol — a data holder (stage 0: embedding, head and loss; source and sink of its
// microbatches) or a relay of stage 1..S — as a deterministic state machine (DESIGN §2, §5; docs/training.md).
//
// The rules that make churn change who computes, never what is learned:
//  * Every node keeps the boundary tensors of an iteration (input received, output sent, gradient sent) until
//    every stage has stepped that iteration.
//  * When a peer dies, the nearest live node before it on a microbatch's path (each relay reports the path on,
//    `Forwarded`, with which nodes confirmed receipt) re-sends its activation to another replica of the next
//    stage (the holders: to the microbatch's new owner) with the rest of the path as a route, when a stage on
//    the dead stretch has not stepped, the first live node after it may never have received the microbatch, or
//    the sender still waits for the gradient. Only the dead stretch recomputes: the nodes on the route answer the
//    replay from their caches; a stage that stepped and lost its cache recomputes on its pre-step weights,
//    accumulating nothing. A dead holder's microbatches pass to the next live holder, which learns from the
//    relays of every stage which of them are already in the pipeline and regenerates the rest through them
//    ((seed, iteration, microbatch) is pure).
//  * A stage's leader (its most senior live member) steps the stage only when its live members' contribution
//    sets cover every microbatch exactly once and every live member answered its Collect; the sums of dead
//    members are never used, and a result an earlier leader already had applied is adopted. Every member applies
//    the leader's reduced gradient, so replicas stay bit-identical; the step is announced (`Committed`, on which
//    other stages free their buffers) only once every live member holds that gradient.
//  * A newcomer fetches its stage's state from the live replicas (kernels/train/state_transfer), catches up from
//    their reduced-gradient logs and only then serves (`Ready`); nobody waits for it before.
//  * Messages from a peer presumed dead are dropped (the paths it announced excepted: knowledge, not work);
//    every message is acknowledged and retransmitted until it is.
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "kernels/train/messages.hpp"
#include "kernels/train/state_transfer.hpp"

namespace gwtf::train {

struct TrainParams {
  Stage relay_stages = 1;
  uint32_t microbatches = 8;      // per iteration
  Iter iterations = 1;
  uint32_t max_in_flight = 4;     // per holder: microbatches it has injected and not yet finished
  double retransmit_after = 1.0;  // seconds without an acknowledgement; doubled per retransmission, up to 16x
  uint32_t reduced_log = 8;       // reduced gradients kept to let a lagging member of the stage catch up
  uint32_t state_chunk = 1u << 20;  // bytes per state-transfer chunk
  uint32_t state_window = 4;        // a joiner's chunk requests in flight (spread over its donors)
  // Use only the next hops given (SetNextHops), never another live replica: a static schedule's semantics (the
  // simulator's `static` baseline), where a dead hop stalls its work until the schedule names a replacement.
  bool strict_hops = false;
  // Relays: the most microbatches a node holds recovery buffers for (input, output, gradient; kept until their
  // iteration commits) — its memory for them over one microbatch's boundary tensors. 0: no limit. A relay at its
  // budget answers new work with Busy and the sender tries another replica; when every live replica of the stage
  // is full, one takes it beyond its budget (an event says so) rather than the iteration never finishing.
  uint32_t buffer_budget = 0;
  // A stage's reduce moves its gradient peer to peer (docs/training.md, "Sharded reduce"): each of the n live
  // members owns 1/n of it, reduces that slice over every member's sum and sends it to all, so every link carries
  // 2/n of the gradient instead of the leader's links carrying it whole both ways. The leader still decides the
  // exact contribution sets.
  bool sharded_reduce = true;
  // At most this many members own slices (the most senior): past a few, a smaller share per link gains little,
  // while every owner's death starts the reduce over.
  uint32_t reduce_owners = 8;
  // The most senior members that announce a step they applied (StepApplied) before it is announced committed:
  // others then skip redos of a dead member's part in it. One would do but for the leader's own death (the soak
  // and gwtf-sim runs saw it: its members held the step, nobody said so); every member would send N^2 messages.
  uint32_t step_announcers = 3;
};

class TrainNode {
 public:
  // `joining`: a newcomer of a relay stage. It fetches the stage's state from the stage's live replicas, catches
  // up with the reduced gradients applied meanwhile, and then serves (Ready); until then nobody waits for it.
  TrainNode(NodeId id, Stage stage, TrainParams params, bool joining = false);

  void step(const Input& in, double now, Output& out);

  NodeId id() const { return id_; }
  Stage stage() const { return stage_; }
  bool is_holder() const { return stage_ == 0; }
  Iter stepped() const { return stepped_; }  // iterations this node has applied
  bool finished() const { return ready_ && stepped_ >= params_.iterations; }
  bool ready() const { return ready_; }  // serves its stage (a joiner: once it has the state)
  // Asked to leave (Leave) and holding nothing any more that an uncommitted iteration needs: it may go.
  bool drained() const;
  bool leaving() const { return leaving_; }
  // A joiner's state transfer so far (progress lines, the status page); nullopt once it serves or before offers.
  struct TransferProgress {
    Iter version = 0;  // the iterations of the state being fetched
    size_t verified = 0, total = 0;  // chunks
    size_t donors = 0;  // that delivered a verified chunk so far
  };
  std::optional<TransferProgress> transfer_progress() const;
  bool serves(NodeId n) const;  // n is a live member that serves its stage, as far as this node knows
  // Iteration i is committed when every stage stepped it (as far as this node has heard).
  Iter committed() const;
  size_t buffered_iterations() const { return iters_.size(); }
  size_t buffered() const;  // microbatches whose recovery buffers this relay holds (see buffer_budget)
  size_t unacknowledged() const { return outbox_.size(); }
  // This node's contribution set of iteration `i` (holders: start part, then end part).
  std::pair<std::set<Mb>, std::set<Mb>> contributions(Iter i) const;

 private:
  struct MbState {
    NodeId from = 0, to = 0;  // who sent us the activation; where our output went
    NodeId alt = 0, end_alt = 0;  // another live sender of the same activation (start part / end part)
    std::vector<NodeId> route;  // a redo: where our output must go and on (those nodes have the microbatch)
    std::vector<NodeId> regen_path;  // holders: an adopted microbatch to regenerate once WhoHolds is answered
    std::vector<NodeId> down;   // the path from `to` on (the route we give a replacement of `to`)
    bool to_confirmed = false;  // `to` answered for this microbatch: it has it
    std::vector<bool> down_confirmed;  // per entry of `down` (as its predecessor reported)
    uint64_t down_seq = 0;  // sequence number of the Forwarded that `down` came from (`to`'s numbering)
    Blob input = 0, output = 0, grad_in = 0, grad_out = 0;
    uint64_t in_seq = 0, end_in_seq = 0;  // the sender's sequence number of the activation we took (start/end part)
    uint64_t alt_seq = 0, end_alt_seq = 0;  // the same of the second sender's
    uint64_t out_seq = 0;  // ours of the activation we sent `to` last (a Busy about an older one is stale)
    bool fwd_queued = false, fwd_done = false, bwd_queued = false, bwd_done = false;
    // holders: the end part (loss), done by whoever is the microbatch's owner when stage S's output arrives
    NodeId end_from = 0;
    Blob end_input = 0, end_grad = 0;
    bool end_done = false;
    bool injected = false;  // holders: the start part entered the pipeline (here or, adopted, by a dead owner)
    bool replay = false;    // recomputed after this node stepped the iteration, only to answer a replay
    int failures = 0;       // its forward or backward failed here (non-finite or refused input); a holder's start part
    int end_failures = 0;   // holders: its end part failed here
    std::vector<NodeId> refused_by;  // next-stage replicas that gave our output back (Busy refused) since it was sent
    int refusals = 0;       // times every live replica of the next stage refused our output
    // This node's contribution of the microbatch to its stage's sum (part: forward-backward or a holder's start
    // part; end_part: a holder's loss), see Retract.
    struct Contribution {
      uint64_t stamp = 0;       // the version of the first Progress that listed it (a Retract names a version)
      bool retracting = false;  // the leader asked to take it back out: queued, no longer reported
      bool retracted = false;   // taken back out; a later replay to this node contributes it again
      bool again = false;       // a replay came while retracting
      NodeId kept = 0;          // whose copy the leader kept instead: when it dies, ours counts again
    };
    Contribution part, end_part;

    bool refused(NodeId n) const { return std::find(refused_by.begin(), refused_by.end(), n) != refused_by.end(); }
    void refuse(NodeId n) {
      if (!refused(n)) refused_by.push_back(n);
    }
    void point_to(NodeId n, bool confirmed) {
      if (n != to) down_seq = 0;  // another sender numbers its announcements anew
      to = n;
      to_confirmed = confirmed;
    }
  };
  struct LeaderState {
    std::map<NodeId, Progress> progress;
    std::map<NodeId, GradSum> sums;
    std::map<NodeId, uint64_t> asked;  // Collect sent, for the member's Progress of this version
    std::set<Mb> doubled;              // microbatches reported as contributed twice
    std::set<std::tuple<NodeId, Mb, bool, uint64_t>> retracts;  // sent: member, microbatch, end part, version
    bool reducing = false;  // the reduce runs (sharded: its plan went out)
    // Sharded: this attempt's owners (empty: the whole sums come to us), its number, and who assembled its result
    // or was sent the whole of it; `sharded_result`: what we applied is that plan's (the step waits for them).
    // recipients: of the plan sent (every member that answered); summed: whose slices it names
    std::vector<NodeId> owners, recipients, summed;
    uint64_t round = 0;
    std::set<NodeId> assembled, sent_whole;
    bool sharded_result = false;
  };
  // A member's side of a sharded reduce: the Collect it answered last names the attempt (leader, round); slices
  // of other attempts wait in their own buckets (a member's slice may arrive before its owner's Collect) and are
  // never assembled once a newer Collect was answered.
  struct ShardState {
    NodeId leader = 0;
    uint64_t round = 0;
    std::vector<NodeId> owners;
    std::optional<GradSum> cut_sum;  // our sum being cut for (leader, round): its GradSum, sent once cut
    Blob cut_from = 0;               // that sum (freed once cut: the slices carry it)
    uint32_t cuts_left = 0;
    // Owner: the members' slices by (member, version) — a member may cut again for a newer report (asked anew, or
    // a retransmitted Collect) after the plan named the older one.
    std::map<std::pair<NodeId, uint64_t>, std::map<std::pair<NodeId, uint64_t>, Blob>> parts;
    std::map<std::pair<NodeId, uint64_t>, std::map<uint32_t, Blob>> reduced;  // reduced slices by index
    std::optional<ReducePlan> plan;  // of (leader, round)
    bool reducing = false, concatenating = false;  // for (leader, round)
    std::set<NodeId> shared;  // an owner: the recipients our reduced slice of (leader, round) went to
    std::set<Blob> scratch;  // every blob of it, released with the iteration
    bool current(NodeId l, uint64_t r) const { return l == leader && r == round; }
    // A new attempt: the last one's plan and cuts are dead to us (older buckets go; a newer one may be filling).
    void begin_attempt(NodeId l, uint64_t r) {
      leader = l;
      round = r;
      plan.reset();
      cut_sum.reset();
      reducing = concatenating = false;
      shared.clear();
      for (auto b = parts.begin(); b != parts.end();)
        b = b->first.first != l || b->first.second < r ? parts.erase(b) : std::next(b);
      for (auto b = reduced.begin(); b != reduced.end();)
        b = b->first.first != l || b->first.second < r ? reduced.erase(b) : std::next(b);
    }
  };
  struct IterState {
    std::map<Mb, MbState> mbs;
    std::set<Mb> done, end_done;  // contributions in this node's accumulator
    double loss_sum = 0;
    uint64_t reported = 0;  // the version of our last Progress of this iteration (a GradSum names it)
    // holders: stage-1 relays yet to say what they hold of dead owners' work, and the dead owners asked about
    std::map<NodeId, std::vector<NodeId>> adopt_wait;
    bool injection_open = false;  // holders: may inject owned microbatches
    LeaderState lead;
    std::optional<Reduced> reduced;  // the reduced gradient applied (kept for a new leader)
    NodeId reduced_by = 0;           // the leader whose result that is (0: not known)
    bool snapshot_queued = false;
    ShardState shard;
  };
  struct Member {
    Stage stage = 0;
    bool alive = true;
    bool ready = true;        // serves its stage (a joiner: after its Ready)
    uint64_t seniority = 0;   // leadership order within the stage, with the id (see Ready)
    bool leaving = false;     // announced Leaving: no new work goes to it
  };
  struct Pending {
    Message msg;
    double sent_at = 0;
    double wait = 0;  // until the next retransmission: doubled each time (see step)
  };

  // inputs
  void on_message(const Message& m, Output& out);
  void on_activation(NodeId from, uint64_t seq, const Activation& a, Output& out);
  void on_forwarded(NodeId from, uint64_t seq, const Forwarded& f, Output& out);
  void announce_path(Iter i, Mb mb, const MbState& st, Output& out);
  void on_ack(const Message& acked, Output& out);
  void on_gradient(NodeId from, const Gradient& g, Output& out);
  void on_who_holds(NodeId from, const WhoHolds& w, Output& out);
  void on_adopt(NodeId from, const Adopt& a, Output& out);
  void ask_who_holds(Iter i, Output& out);
  void on_progress(NodeId from, const Progress& p, Output& out);
  void on_collect(NodeId from, const Collect& c, Output& out);
  void on_gradsum(NodeId from, const GradSum& g, Output& out);
  // `pass_on`: as leader, send it to every member (an adopted or whole result; a sharded one they assemble).
  void on_reduced(NodeId by, const Reduced& r, Output& out, bool pass_on = true);  // `by`: its leader (0: unknown)
  void on_slice(NodeId from, const Slice& s, Output& out);
  void on_reduce_plan(NodeId from, const ReducePlan& p, Output& out);
  void on_assembled(NodeId from, const Assembled& a, Output& out);
  void reduce_slice(Iter i);  // an owner with the plan and every member's slice reduces its own
  void share_slice(Iter i, const ReducePlan& p, Output& out);
  void assemble(Iter i);      // every reduced slice here: concatenate them
  Reduced ledger_entry(Iter i) const;      // the leader's result without its data: contributions and loss
  void on_retract(NodeId from, const Retract& r, Output& out);
  void on_retracted(const ComputeTask& t, const ComputeDone& d, IterState& it, Output& out);
  void replayed(Iter i, Mb mb, MbState& st, bool end);
  void contribute(Iter i, Mb mb, const MbState& st, bool end, bool retract);
  void resolve_doubles(Iter i, Output& out);
  void on_committed(const Committed& c, Output& out);
  void on_applied(NodeId from, const StepApplied& a);
  void announce_applied(Iter i, Output& out);  // the step is applied here and not announced (Committed) yet
  void on_peer_down(NodeId peer, Output& out);
  void leave(Output& out);
  void on_busy(NodeId from, const Busy& b, Output& out);
  bool turned_away(NodeId from, uint64_t seq, const Activation& a, Output& out);
  // `retry`: the relay's work on it, run here after all when no sender takes it (see HandedBack; unused for a
  // holder's end part).
  void give_back(Iter i, Mb mb, bool end, Output& out, const ComputeTask& retry);
  void take_back_if_untaken(Output& out);  // a sender died: a microbatch none of them took is ours again
  static void release(const MbState& st, Output& out);  // a relay's buffers of a microbatch it no longer holds
  void on_refused_at_door(const Message& m, Output& out);
  bool refused_by_all(Iter i, Mb mb, const MbState& st) const;
  void refused_everywhere(Iter i, Mb mb, MbState& st, Output& out);
  bool may_serve(NodeId n, Stage s, Iter i) const;  // n can take stage s's work of iteration i
  bool busy(NodeId n) const;   // n turned work away lately (Busy)
  void redo(Iter i, Mb mb, MbState& st, NodeId peer, Output& out);
  void regenerate(Iter i, Mb mb, MbState& st);
  void on_finished(const ComputeDone& d, Output& out);
  bool given_back(const ComputeTask& t) const;
  void add_member(NodeId peer, Stage stage, bool ready, Output& out);
  void resend_unrouted(Output& out);
  void send_output(Iter i, Mb mb, MbState& st, Output& out);
  void offer(Iter i, Mb mb, MbState& st, NodeId next, Output& out);
  // joining: the newcomer's side, then the donors'
  void join_tick(Output& out);
  void fetch_state(Output& out);
  void on_state_offer(NodeId from, const StateOffer& o, Output& out);
  void on_chunk(NodeId from, const Chunk& c, Output& out);
  void on_imported(const ComputeTask& t, bool ok, Output& out);
  void maybe_ready(Output& out);
  void on_ready(NodeId from, const Ready& r, Output& out);
  void on_state_ask(NodeId from, Output& out);
  void on_chunk_ask(NodeId from, const ChunkAsk& c, Output& out);
  void offer_state(NodeId to, Output& out);
  void offer_to_askers(Output& out);  // those waiting for our copy, once every step in it is announced

  // helpers
  void send(NodeId to, Body body, Output& out);
  void queue(ComputeTask t);
  void pump(Output& out);
  bool runnable(const ComputeTask& t) const;
  void begin_iteration(Output& out);
  void inject(Output& out);
  void report_progress(Iter i, Output& out);
  void leader_check(Iter i, Output& out);
  void catch_up(Output& out);
  void send_whole_if_lost(Iter i, Output& out);
  void try_commit(Output& out);
  void free_committed(Output& out);
  // `refused`: replicas that gave this microbatch back (never offered it again while another one may take it).
  std::optional<NodeId> pick_next(Iter i, Mb mb, NodeId avoid, NodeId hint,
                                  const std::vector<NodeId>& refused = {}) const;
  std::optional<NodeId> owner(Iter i, Mb mb) const;
  std::optional<NodeId> leader(Stage s) const;
  bool has_stepped(Stage s, Iter i) const;  // stage s's leader announced it stepped iteration i
  // Stage s has a result of iteration i that a live member holds (Committed, StepApplied, or applied here): a
  // dead node's part in it needs no redo.
  bool has_result(Stage s, Iter i) const;
  std::vector<NodeId> live(Stage s) const;
  bool alive(NodeId n) const;
  bool senior(NodeId a, NodeId b) const;  // a leads before b in their stage
  Stage next_stage() const { return flow::next_stage(stage_, params_.relay_stages); }

  NodeId id_;
  Stage stage_;
  TrainParams params_;
  double now_ = 0;
  bool ticking_ = false;
  std::map<NodeId, Member> members_;
  std::vector<NodeId> holders_ever_;  // sorted: microbatch ownership is a pure function of it and liveness
  std::vector<NodeId> next_hops_;
  std::map<Iter, IterState> iters_;
  std::map<Stage, Iter> stage_stepped_;  // per stage: how many iterations its leader announced
  struct AppliedNotice {
    Iter iters = 0;          // the stage applied this many iterations, say
    std::set<NodeId> by;     // the members that hold the last of them (forgotten once none lives)
  };
  std::map<Stage, AppliedNotice> stage_applied_;
  Iter stepped_ = 0;
  Iter holder_started_ = 0;  // holders: iterations begun
  Iter ask_until_ = 0;        // holders: iterations a dead holder may have begun (ask stage 1 before injecting)
  bool any_holder_died_ = false;
  uint64_t next_seq_ = 1;
  uint64_t progress_version_ = 0;
  bool leaving_ = false;
  std::map<NodeId, double> busy_until_;  // peers that answered Busy: not offered new work until then
  std::map<uint64_t, Pending> outbox_;
  // A relay's microbatch given back (its work failed twice, its output was refused everywhere, or it leaves before
  // beginning it), until a sender acknowledges the Busy that gives it back: a sender that died first never passes
  // it on, and the path before it counts on us to hold it (soak seeds 645766, 671905, 774562: given back to a
  // sender that had just died, lost). Then it is ours again and its work runs here, as with no live sender to give
  // it to (on_finished).
  struct HandedBack {
    MbState st;
    ComputeTask retry;
    std::vector<uint64_t> busy;  // the Busy messages' numbers (any acknowledged: a sender has it)
    std::vector<NodeId> to;      // their recipients
  };
  std::vector<HandedBack> handed_back_;
  TaskId next_task_ = 1;
  std::deque<ComputeTask> tasks_;
  std::optional<ComputeTask> running_;
  std::set<Iter> commit_pending_;  // leader: stepped, waiting for every member's acknowledgement of the Reduced
  std::map<Iter, Reduced> early_reduced_;
  std::map<Iter, Reduced> reduced_log_;  // the stage's last applied reduced gradients (catch-up of a lagging member)
  double last_catch_up_ = -1e300;
  double catch_up_wait_ = 0;  // until asking the next member (doubling while we still lag)
  size_t catch_up_turn_ = 0;  // whom to ask next, in seniority order

  // joining (newcomer)
  bool ready_ = true;
  uint64_t seniority_ = 0;
  StateFetcher fetcher_;
  std::set<NodeId> asked_donors_;
  double last_state_ask_ = -1e300;
  bool importing_ = false, imported_ = false;
  // donating: one serialized copy of our state, kept while newcomers fetch it
  std::shared_ptr<const std::string> snapshot_;
  StateManifest snapshot_manifest_;
  bool exporting_ = false;
  std::set<NodeId> state_askers_, fetching_;
};

}  // namespace gwtf::train
