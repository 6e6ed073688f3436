#include "kernels/sim/swarm_sim.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <variant>

#include "kernels/base/rng.hpp"
#include "kernels/sim/event_queue.hpp"
#include "kernels/sim/nic.hpp"

namespace gwtf::sim {

namespace {

using train::NodeId;
using train::Stage;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEmaAlpha = 0.1;        // balancer.py: EMA of samples per second per server
constexpr double kBackwardSize = 2.5;    // balancer.py: backward_task_size_multiplier

struct Task {
  NodeId trainer = 0, server = 0;
  uint32_t mb = 0;  // index in the iteration
  uint64_t epoch = 0;  // the microbatch's attempt: a replay makes older tasks stale
  Stage stage = 1;
  bool backward = false;
  double sent = 0;
  bool done = false;
};

struct Server {
  Stage stage = 1;
  double speed = 1;
  bool alive = true;
  double ready_at = 0;   // serves from (a newcomer or a moved server: after its state download)
  double live_from = 0, left = kInf;
  double dead_known = kInf;  // trainers notice from then (detection delay)
  std::deque<uint64_t> queue;
  uint64_t running = 0;
  double busy = 0;       // compute seconds
  uint32_t acc = 0;  // contributions accumulated since its stage's last step (lost with it if it dies)
};

struct Mb {
  NodeId trainer = 0;
  uint64_t epoch = 0;
  bool done = false;
};

struct Trainer {
  std::map<Stage, std::map<NodeId, double>> load;  // the balancer's heap keys (cumulative expected runtime)
  std::map<NodeId, double> ema;                    // samples/s per server
  std::set<NodeId> banned;
  uint32_t running = 0;
};

struct Ev {
  // kEmbedded, kLossDone, kHeadDone: the trainer's own compute for microbatch `mb` (attempt `task`) is done.
  enum Kind { kArrive, kFinish, kReturn, kFail, kCrash, kJoin, kRebalance, kStep, kEmbedded, kLossDone, kHeadDone, kTick } kind;
  // kStep: stage `stage` finished averaging.
  uint64_t task = 0;
  NodeId node = 0;
  Stage stage = 0;
  uint32_t mb = 0;
};

class Engine {
 public:
  explicit Engine(const SwarmWorld& w) : w_(w), rng_(w.seed), nic_(w.nic_Bps) {
    for (int h = 1; h <= w.holders; ++h) trainers_[static_cast<NodeId>(h)];
    for (const auto& [id, stage] : w.servers) add_server(id, stage, 0);
    for (const auto& c : w.crashes) q_.push(c.t, Ev{Ev::kCrash, 0, c.node, 0, 0});
    for (const auto& j : w.joins) q_.push(j.t, Ev{Ev::kJoin, 0, j.node, j.stage, 0});
    if (w.rebalance_s > 0) q_.push(w.rebalance_s, Ev{Ev::kRebalance, 0, 0, 0, 0});
    q_.push(0, Ev{Ev::kTick, 0, 0, 0, 0});
    for (Stage st = 1; st <= w.stages; ++st) steps_[st] = 0;
    feed();
  }

  SwarmReport run(double limit) {
    while (!q_.empty() && q_.next_time() <= limit && !finished_) {
      auto [t, e] = q_.pop();
      now_ = t;
      handle(e);
    }
    r_.finished = finished_;
    r_.time = finished_ && !r_.committed_at.empty() ? r_.committed_at.back() : now_;
    // Wasted: compute whose result no step applied (lost with a server, failed, superseded by a replay, or
    // beyond the last step), each applied contribution costing a forward and a stateless backward (4 nominal
    // forwards); idle: server time not computing over live server time.
    r_.wasted_fraction = work_ > 0 ? std::max(0.0, work_ - applied_work_) / work_ : 0;
    r_.crash_lost_fraction = work_ > 0 ? crash_lost_ / work_ : 0;
    r_.crash_lost_in_reduce_fraction = work_ > 0 ? crash_lost_in_reduce_ / work_ : 0;
    double live = 0, busy = 0;
    for (const auto& [id, s] : servers_) {
      live += std::max(0.0, std::min(s.left, r_.time) - s.live_from);
      busy += s.busy;
    }
    r_.idle_fraction = live > 0 ? std::max(0.0, 1 - busy / live) : 0;
    double sum = 0;
    for (double x : recovery_) sum += x;
    r_.mean_recovery_latency = recovery_.empty() ? 0 : sum / static_cast<double>(recovery_.size());
    return r_;
  }

 private:
  void add_server(NodeId id, Stage stage, double ready_at) {
    Server s;
    s.stage = stage;
    s.speed = w_.slowdown ? 1.0 / w_.slowdown(id) : 1.0;
    s.ready_at = ready_at;
    s.live_from = now_;
    servers_[id] = s;
    for (auto& [tid, t] : trainers_) {  // a newcomer enters the heap at the current minimum (balancer.py)
      auto& heap = t.load[stage];
      double least = 0;
      bool any = false;
      for (const auto& [sid, key] : heap)
        if (servers_.count(sid) && servers_[sid].alive) least = any ? std::min(least, key) : key, any = true;
      heap[id] = least + 1e-9 * rng_.uniform();
      t.ema[id] = 1.0 / w_.forward_time;
    }
  }

  double delay(NodeId a, NodeId b, int tensors) {
    return arrival(a, b, static_cast<uint64_t>(tensors) * w_.tensor_bytes, now_) - now_;
  }
  // When a message `a` sends at `at` reaches `b` (through a's interface, shared by its connections: nic.hpp).
  double arrival(NodeId a, NodeId b, uint64_t payload, double at) {
    ++r_.messages;
    const uint64_t bytes = 256 + payload;
    return nic_.arrival(a, b, at, bytes, w_.delay ? w_.delay(a, b, bytes) : 0.01);
  }

  bool last_server(NodeId id) const {
    const Server& s = servers_.at(id);
    if (s.ready_at > now_) return false;
    return std::none_of(servers_.begin(), servers_.end(), [&](const auto& o) {
      return o.first != id && o.second.alive && o.second.stage == s.stage && o.second.ready_at <= now_;
    });
  }

  // A newcomer (or a moved server) downloads the stage's state from one live server of it, the nearest
  // (hivemind's load_state_from_peers asks one peer); with no state size modeled, or nobody to ask, transfer_s.
  double download_s(NodeId to, Stage st) {
    if (st >= w_.state_bytes.size()) return w_.transfer_s;
    const uint64_t bytes = 256 + w_.state_bytes[st];
    double best = kInf;
    NodeId from = 0;
    for (const auto& [id, s] : servers_)
      if (id != to && s.alive && s.stage == st && s.ready_at <= now_ && w_.delay) {
        const double d = w_.delay(id, to, bytes);
        if (d < best) best = d, from = id;
      }
    if (best == kInf) return w_.transfer_s;
    ++r_.messages;
    return nic_.arrival(from, to, now_, bytes, best) - now_;
  }

  // Trainers run continuously, each with `in_flight` microbatches of fresh samples going (SWARM's trainers
  // stream data; a stage steps once its peers accumulated the target batch, whichever samples they were).
  void feed() {
    if (finished_) return;
    for (auto& [id, t] : trainers_)
      while (t.running < w_.in_flight) {
        const auto mb = static_cast<uint32_t>(mbs_.size());
        mbs_.push_back(Mb{id, 0, false});
        ++t.running;
        start_mb(mb);
      }
  }

  // Embedding at the trainer (its own compute, a delay here), then stage 1's forward.
  void start_mb(uint32_t mb) { q_.push(now_ + w_.holder_time, Ev{Ev::kEmbedded, mbs_[mb].epoch, 0, 0, mb}); }

  // The balancer: the live, unbanned, serving replica with the least cumulative expected runtime.
  NodeId pick(NodeId trainer, Stage stage, bool backward) {
    Trainer& t = trainers_[trainer];
    NodeId best = 0;
    double key = kInf;
    for (auto& [sid, k] : t.load[stage]) {
      auto s = servers_.find(sid);
      if (s == servers_.end() || s->second.stage != stage || t.banned.count(sid)) continue;
      if (s->second.ready_at > now_ || now_ >= s->second.dead_known) continue;
      if (k < key) key = k, best = sid;
    }
    if (best) t.load[stage][best] += (backward ? kBackwardSize : 1.0) / std::max(t.ema[best], 1e-9);
    return best;
  }

  void dispatch(uint32_t mb, Stage stage, bool backward) {
    const NodeId trainer = mbs_[mb].trainer;
    const NodeId server = pick(trainer, stage, backward);
    if (!server) {  // nobody serves the stage right now (as far as this trainer knows): try again shortly
      waiting_.push_back({mb, stage, backward, mbs_[mb].epoch});
      return;
    }
    const uint64_t id = next_task_++;
    tasks_[id] = Task{trainer, server, mb, mbs_[mb].epoch, stage, backward, now_, false};
    note_recovery();
    const Server& s = servers_[server];
    if (!s.alive) {  // a dead server not known as such yet: the call fails after the detection delay
      q_.push(std::max(now_, s.left) + w_.detect_after, Ev{Ev::kFail, id, 0, 0, 0});
      return;
    }
    q_.push(now_ + delay(trainer, server, backward ? 2 : 1), Ev{Ev::kArrive, id, 0, 0, 0});
  }

  void note_recovery() {
    // The first task a trainer sends after a crash it retries counts from that crash (see kFail).
    if (pending_recovery_ >= 0) {
      recovery_.push_back(now_ - pending_recovery_);
      pending_recovery_ = -1;
    }
  }

  void start_next(NodeId server) {
    Server& s = servers_[server];
    if (!s.alive || s.running || s.queue.empty() || averaging_.count(s.stage)) return;
    s.running = s.queue.front();
    s.queue.pop_front();
    const Task& t = tasks_[s.running];
    const double nominal = (t.backward ? 3.0 : 1.0) * w_.forward_time;  // stateless backward re-runs the forward
    const double time = nominal / s.speed;
    work_ += nominal;
    s.busy += time;
    q_.push(now_ + time, Ev{Ev::kFinish, s.running, server, 0, 0});
  }

  void handle(const Ev& e) {
    switch (e.kind) {
      case Ev::kTick: {
        if (w_.progress) w_.progress(now_, r_.committed_at.size());
        // Tasks that found no serving replica try again.
        auto waiting = std::move(waiting_);
        waiting_.clear();
        for (const auto& wt : waiting)
          if (mbs_[wt.mb].epoch == wt.epoch) dispatch(wt.mb, wt.stage, wt.backward);
        q_.push(now_ + 0.25, Ev{Ev::kTick, 0, 0, 0, 0});
        break;
      }
      case Ev::kEmbedded:
      case Ev::kLossDone:
      case Ev::kHeadDone:
        if (mbs_[e.mb].epoch != e.task) break;  // a replay superseded this attempt
        if (e.kind == Ev::kEmbedded) dispatch(e.mb, 1, false);
        else if (e.kind == Ev::kLossDone) dispatch(e.mb, w_.stages, true);
        else mb_done(e.mb);
        break;
      case Ev::kArrive: {
        Task& t = tasks_[e.task];
        Server& s = servers_[t.server];
        if (!s.alive) {
          q_.push(std::max(now_, s.left) + w_.detect_after, Ev{Ev::kFail, e.task, 0, 0, 0});
          break;
        }
        s.queue.push_back(e.task);
        start_next(t.server);
        break;
      }
      case Ev::kFinish: {
        Server& s = servers_[e.node];
        if (!s.alive || s.running != e.task) break;
        s.running = 0;
        Task& t = tasks_[e.task];
        if (t.backward) contribute(e.node, t);  // the gradient stays in this server's accumulator
        q_.push(now_ + delay(e.node, t.trainer, 1), Ev{Ev::kReturn, e.task, 0, 0, 0});
        start_next(e.node);
        break;
      }
      case Ev::kReturn: {
        Task& t = tasks_[e.task];
        if (t.done || mbs_[t.mb].epoch != t.epoch) break;
        t.done = true;
        Trainer& tr = trainers_[t.trainer];
        const double sample = (t.backward ? kBackwardSize : 1.0) / std::max(now_ - t.sent, 1e-9);
        tr.ema[t.server] = kEmaAlpha * sample + (1 - kEmaAlpha) * tr.ema[t.server];
        if (!t.backward && t.stage < w_.stages) {
          dispatch(t.mb, t.stage + 1, false);
        } else if (!t.backward) {  // loss at the trainer, then the last stage's backward
          q_.push(now_ + w_.holder_time, Ev{Ev::kLossDone, t.epoch, 0, 0, t.mb});
        } else if (t.stage > 1) {
          dispatch(t.mb, t.stage - 1, true);
        } else {  // the embedding's backward at the trainer, then the microbatch is done
          q_.push(now_ + w_.holder_time, Ev{Ev::kHeadDone, t.epoch, 0, 0, t.mb});
        }
        break;
      }
      case Ev::kFail: {
        Task& t = tasks_[e.task];
        if (t.done || mbs_[t.mb].epoch != t.epoch) break;
        t.done = true;
        trainers_[t.trainer].banned.insert(t.server);  // balancer.py: _ban_expert
        ++r_.retries;
        pending_recovery_ = crash_time_.count(t.server) ? crash_time_[t.server] : now_;
        if (!t.backward) {
          dispatch(t.mb, t.stage, false);  // the same forward on another replica
        } else {
          replay(t.mb);  // a failed backward replays the whole microbatch
        }
        break;
      }
      case Ev::kCrash: {
        auto it = servers_.find(e.node);
        if (it == servers_.end() || !it->second.alive) break;
        Server& s = it->second;
        if (w_.spare_last_server && last_server(it->first)) {
          ++r_.crash_seconds_deferred;
          q_.push(now_ + 1, e);  // tried again each second
          break;
        }
        s.alive = false;
        s.left = now_;
        s.dead_known = now_ + w_.detect_after;
        crash_time_[e.node] = now_;
        // Its queue and running task fail at their trainers after the detection delay; its gradients are gone.
        std::vector<uint64_t> lost(s.queue.begin(), s.queue.end());
        if (s.running) {
          lost.push_back(s.running);
          crash_lost_ += (tasks_[s.running].backward ? 3.0 : 1.0) * w_.forward_time;  // as start_next counted it
        }
        for (uint64_t id : lost) q_.push(now_ + w_.detect_after, Ev{Ev::kFail, id, 0, 0, 0});
        s.queue.clear();
        s.running = 0;
        r_.lost_contributions += s.acc;  // computed, never averaged
        crash_lost_ += 4.0 * w_.forward_time * s.acc;  // as an applied contribution counts
        if (averaging_.count(s.stage)) crash_lost_in_reduce_ += 4.0 * w_.forward_time * s.acc;
        s.acc = 0;
        break;
      }
      case Ev::kJoin:
        add_server(e.node, e.stage, now_ + download_s(e.node, e.stage));
        break;
      case Ev::kRebalance:
        rebalance();
        q_.push(now_ + w_.rebalance_s, Ev{Ev::kRebalance, 0, 0, 0, 0});
        break;
      case Ev::kStep: {
        const Stage st = e.stage;
        averaging_.erase(st);
        for (const auto& [id, s] : servers_)  // its servers serve again
          if (s.stage == st) start_next(id);
        ++steps_[st];
        applied_work_ += 4.0 * w_.forward_time * stepping_[st];
        // Iteration i is done once every stage stepped i times.
        int done = steps_.begin()->second;
        for (const auto& [stage, n] : steps_) done = std::min(done, n);
        while (static_cast<int>(r_.committed_at.size()) < done) r_.committed_at.push_back(now_);
        if (done >= w_.iterations) finished_ = true;
        maybe_average(st);  // contributions that arrived while it averaged may already fill the next target
        break;
      }
    }
  }

  void replay(uint32_t mb) {
    ++mbs_[mb].epoch;
    ++r_.replays;
    start_mb(mb);
  }

  void mb_done(uint32_t mb) {
    if (mbs_[mb].done) return;
    mbs_[mb].done = true;
    Trainer& t = trainers_[mbs_[mb].trainer];
    if (t.running > 0) --t.running;
    feed();
  }

  // A backward result at a server: one more contribution to its stage's next step. A sample that contributed to
  // this stage before (its backward failed further down and the whole microbatch was replayed) is counted again:
  // SWARM cannot take a gradient back out of an accumulator.
  void contribute(NodeId server, const Task& t) {
    Server& s = servers_[server];
    if (steps_[s.stage] >= w_.iterations) return;  // the stage is done: nothing more to apply
    ++s.acc;
    if (!contributed_[s.stage].insert(t.mb).second) ++r_.duplicated_contributions;
    maybe_average(s.stage);
  }

  // A stage whose live servers hold the target batch averages it and steps; its servers serve nothing meanwhile
  // (CollaborativeOptimizer.step runs the all-reduce inside the backward that reached the target batch, on the
  // server's runtime thread, and it averages gradients and parameters). The all-reduce is hivemind's butterfly
  // (averaging/allreduce.py, AllReduceRunner): each of the n peers owns 1/n of the gradient, every peer sends each
  // owner its part (reduce-scatter) and gets the average back (all-gather): an owner sends its averaged part once
  // it has every peer's, and the step waits for the last part to arrive.
  void maybe_average(Stage st) {
    if (averaging_.count(st) || steps_[st] >= w_.iterations) return;
    uint32_t held = 0;
    for (const auto& [id, s] : servers_)
      if (s.alive && s.stage == st) held += s.acc;
    if (held < w_.microbatches) return;
    std::vector<NodeId> peers;
    for (auto& [id, s] : servers_)
      if (s.alive && s.stage == st) {
        if (s.ready_at <= now_) peers.push_back(id);  // a newcomer still downloading the state stays out
        s.acc = 0;
      }
    if (peers.empty()) return;
    const uint64_t part = st < w_.sum_bytes.size() ? w_.sum_bytes[st] / peers.size() : w_.tensor_bytes;
    std::map<NodeId, double> reduced;  // per owner: when it holds every peer's part
    for (NodeId b : peers) {
      reduced[b] = now_;
      for (NodeId a : peers)
        if (a != b) reduced[b] = std::max(reduced[b], arrival(a, b, part, now_));
    }
    double gathered = now_;
    for (NodeId b : peers)
      for (NodeId a : peers)
        if (a != b) gathered = std::max(gathered, arrival(b, a, part, reduced[b]));
    averaging_.insert(st);
    stepping_[st] = held;
    q_.push(gathered + w_.aggregate_time, Ev{Ev::kStep, 0, 0, st, 0});
  }

  // SWARM's Algorithm 1: a server of the stage with the most throughput moves to the one with the least, when
  // that raises the pipeline's minimum; it downloads the new stage's state first.
  void rebalance() {
    std::map<Stage, double> rate;
    for (Stage st = 1; st <= w_.stages; ++st) rate[st] = 0;
    for (const auto& [id, s] : servers_)
      if (s.alive && s.ready_at <= now_) rate[s.stage] += s.speed;
    Stage lo = 1, hi = 1;
    for (const auto& [st, r] : rate) {
      if (r < rate[lo]) lo = st;
      if (r > rate[hi]) hi = st;
    }
    if (lo == hi) return;
    NodeId mover = 0;
    double speed = kInf;
    for (const auto& [id, s] : servers_)  // the slowest idle server of the richest stage
      if (s.alive && s.stage == hi && s.ready_at <= now_ && !s.running && s.queue.empty() && s.acc == 0 &&
          s.speed < speed)
        speed = s.speed, mover = id;
    if (!mover || std::min(rate[lo] + speed, rate[hi] - speed) <= 1.05 * rate[lo]) return;
    Server& s = servers_[mover];
    if (s.acc > 0) return;  // it would take its accumulated gradients along: wait for its stage's step
    s.stage = lo;
    s.ready_at = now_ + download_s(mover, lo);
    for (auto& [tid, t] : trainers_) {
      t.load[hi].erase(mover);
      double least = 0;
      bool any = false;
      for (const auto& [sid, key] : t.load[lo]) least = any ? std::min(least, key) : key, any = true;
      t.load[lo][mover] = least;
    }
    ++r_.moves;
  }

  struct Waiting {
    uint32_t mb;
    Stage stage;
    bool backward;
    uint64_t epoch;
  };

  const SwarmWorld& w_;
  Rng rng_;
  Nic nic_;
  EventQueue<Ev> q_;
  double now_ = 0;
  std::map<NodeId, Server> servers_;
  std::map<NodeId, Trainer> trainers_;
  std::map<uint64_t, Task> tasks_;
  uint64_t next_task_ = 1;
  std::vector<Mb> mbs_;  // every sample a trainer started, by id
  std::map<Stage, int> steps_;                     // per stage: steps taken
  std::map<Stage, uint32_t> stepping_;             // per stage: contributions in the step being averaged
  std::set<Stage> averaging_;
  std::map<Stage, std::set<uint32_t>> contributed_;  // per stage: samples that contributed to it
  double applied_work_ = 0;
  double crash_lost_ = 0;  // see SwarmReport::crash_lost_fraction
  double crash_lost_in_reduce_ = 0;  // of it: accumulators lost while their stage averaged
  std::vector<Waiting> waiting_;
  std::map<NodeId, double> crash_time_;
  std::vector<double> recovery_;
  double pending_recovery_ = -1;
  double work_ = 0;
  bool finished_ = false;
  SwarmReport r_;
};

}  // namespace

SwarmReport run_swarm(const SwarmWorld& world, double time_limit) { return Engine(world).run(time_limit); }

}  // namespace gwtf::sim
