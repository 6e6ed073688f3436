#include "actors/node_actor.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <unistd.h>
#include <set>

#include "actors/actor_clock.hpp"
#include "actors/bulk_path.hpp"
#include "actors/event_log.hpp"
#include "actors/flow_actor.hpp"
#include "kernels/flow/cost_model.hpp"
#include "kernels/flow/link_bandwidth.hpp"
#include "kernels/model/memory_plan.hpp"
#include "actors/frame.hpp"
#include "actors/frame_io.hpp"
#include "actors/openssl_guard.hpp"
#include "kernels/base/overloaded.hpp"
#include "kernels/wire/tensor_codec.hpp"

namespace gwtf {

std::atomic<int> g_leave_requests{0};

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using train::NodeId;


struct Node {
  caf::event_based_actor* self;
  caf::actor_clock::time_point t0;  // (actors/actor_clock.hpp: real time, or a test's virtual time)
  NodeOptions opt;
  std::shared_ptr<NodeOutcome> outcome;
  train::Roster roster;
  std::optional<train::TrainNode> train;
  std::shared_ptr<SharedBlobs> blobs = std::make_shared<SharedBlobs>();
  caf::actor compute, flows;
  // Link measurements (kernels/flow/cost_model): per peer, latency from heartbeat round trips and the compute
  // time it advertises; this node's own smoothed compute seconds per task.
  std::map<NodeId, flow::LinkMeasurements> links;
  flow::LinkBandwidth bandwidth;  // β of each link, each way: measured from acknowledged tensors, and as reported
  flow::Ewma compute_s{0.1};
  uint64_t heartbeat_seq = 0;
  double last_heartbeat = -1e9;
  std::map<NodeId, caf::actor> peers;
  std::map<caf::actor_addr, NodeId> by_addr;
  std::vector<caf::actor> seeds;  // connected seeds (before admission)
  std::set<NodeId> connecting;
  std::map<NodeId, double> unbound_since;
  bool admitted = false;
  double last_hello = -1e9;
  std::string last_seed_error;  // why the last connection to a seed failed (the join timeout's message)
  double finished_at = -1;
  EventLog log;
  // What /metrics and the swarm page show (folded from the same events as the log), and the server of both.
  std::shared_ptr<StatusBoard> board = std::make_shared<StatusBoard>();
  std::unique_ptr<StatusServer> status_server;
  std::map<train::TaskId, std::pair<train::ComputeKind, bool>> running;  // compute task -> kind, replay
  std::map<NodeId, double> last_heard;  // per peer: when its last frame arrived (detection latency)
  FrameStats stats;
  PeerAuth auth{nullptr, 0, 0, ""};  // set up in begin(), once the id is known
  std::set<caf::actor_addr> told_version;  // peers of another wire version that were told so (once each)
  uint64_t frames_sent = 0, bytes_sent = 0, bytes_received = 0;
  // The bulk data path (actors/bulk_path.hpp): tensors to and from members on connections of their own. Null in a
  // swarm inside one actor system, or when NodeOptions::bulk_path is off.
  std::unique_ptr<BulkPath> bulk;
  std::map<uint64_t, NodeId> bulk_links;  // an incoming bulk connection -> the member it carries (once it said so)
  std::map<NodeId, double> bulk_failed_at;  // when the bulk connection to a member last failed

  Node(caf::event_based_actor* s, NodeOptions o, std::shared_ptr<NodeOutcome> out)
      : self(s), t0(s->clock().now()), opt(std::move(o)), outcome(std::move(out)),
        roster(opt.layout, opt.config_hash), log("") {}

  double now() const { return seconds_since(self, t0); }

  // An event: into the JSON-lines log and to the observer, if any.
  void note(const std::string& event, nlohmann::json fields = nlohmann::json::object()) {
    fields["t"] = now();
    fields["node"] = opt.id;
    fields["event"] = event;
    log.write(fields);
    {
      std::lock_guard<std::mutex> lock(board->mu);
      board->status.on_event(fields);
    }
    if (opt.observer) self->send(opt.observer, NodeEvent{opt.id, fields.dump()});
  }
  wire::Header header() const { return {0, opt.swarm_id, opt.id}; }

  void stop(int code, const std::string& why) {
    if (code != 0) spdlog::error("{}", why);
    else spdlog::info("{}", why);
    nlohmann::json exit{{"code", code}, {"why", why}, {"frames_sent", frames_sent}, {"bytes_sent", bytes_sent},
                        {"bytes_received", bytes_received}, {"frames_rejected", stats.rejected}};
    if (bulk) {
      const auto c = bulk->counters();
      exit["bulk_frames_sent"] = c.frames_out;
      exit["bulk_bytes_sent"] = c.bytes_out;
      exit["bulk_frames_received"] = c.frames_in;
    }
    note("exit", std::move(exit));
    outcome->exit_code = code;
    if (compute) self->send_exit(compute, caf::exit_reason::user_shutdown);
    if (flows) self->send_exit(flows, caf::exit_reason::user_shutdown);
    self->quit();
  }

  void send_frame(const caf::actor& to, const wire::Body& body) {
    // A TLS swarm: this node's proof goes first on every connection (peer_auth.hpp says why).
    if (auto proof = auth.proof_for(to.address(), to_string(to.node())))
      send_frame(to, wire::MembershipMessage{std::move(*proof)});
    auto frame = make_frame(header(), body);
    ++frames_sent;
    bytes_sent += frame.bytes.size();
    if (frame.bytes.size() >= kBulkFrameBytes && std::holds_alternative<wire::TrainMessage>(body) &&
        send_bulk(to, frame))
      return;
    self->send(to, std::move(frame));
  }

  // Training messages of this size and more (those with tensors or state chunks) go on the bulk data path when the
  // receiver has one; the rest, and everything when it has none or its connection failed, on CAF.
  static constexpr size_t kBulkFrameBytes = 16 << 10;
  static constexpr double kBulkRetry = 30;  // seconds on CAF after a bulk connection failed, then a new one is tried
  bool send_bulk(const caf::actor& to, Frame& frame) {
    if (!bulk) return false;
    auto id = by_addr.find(to.address());
    if (id == by_addr.end()) return false;
    const auto* m = roster.find(id->second);
    if (!m || m->data_port == 0) return false;
    switch (bulk->peer(m->id)) {
      case BulkPath::Peer::kOpen: break;
      case BulkPath::Peer::kFailed:
        if (now() - bulk_failed_at[m->id] < kBulkRetry) return false;
        bulk->close_peer(m->id);
        [[fallthrough]];
      case BulkPath::Peer::kNone: {
        // A TLS swarm: the connection opens with this node's proof, for the receiver's CAF node id as on CAF.
        std::vector<char> first;
        if (auth.enabled())
          first = wire::encode_frame(header(), wire::MembershipMessage{auth.proof(to_string(to.node()))});
        bulk->connect(m->id, m->host, m->data_port, std::move(first));
        note("bulk_connect", {{"peer", m->id}, {"port", m->data_port}});
      }
    }
    return bulk->send(m->id, frame.bytes);
  }
  void send_membership(const caf::actor& to, train::MembershipBody body) {
    send_frame(to, wire::MembershipMessage{std::move(body)});
  }

  // ---- peers -------------------------------------------------------------------------------------------------
  void bind(NodeId id, const caf::actor& handle) {
    if (!handle || id == opt.id) return;
    auto [it, fresh] = peers.emplace(id, handle);
    if (!fresh) return;
    by_addr[handle.address()] = id;
    self->monitor(handle);
  }

  // One connection per pair of nodes: the one with the larger id connects and greets (two nodes connecting to each
  // other at once make CAF drop one connection and report the other's actors unreachable). The other side binds
  // the greeting's sender. A member that stays unbound for `kUnboundLimit` seconds is taken for dead.
  static constexpr double kUnboundLimit = 15;

  // Connections go through CAF's OpenSSL module in a TLS swarm, through the plain middleman otherwise, and to the
  // directory in a swarm inside one actor system.
  caf::actor connector() const {
    if (opt.directory) return opt.directory;
    return caf::actor_cast<caf::actor>(opt.tls ? self->system().openssl_manager().actor_handle()
                                               : self->system().middleman().actor_handle());
  }

  void connect(const train::MemberInfo& m) {
    if (m.id == opt.id || peers.count(m.id) || m.id > opt.id || connecting.count(m.id)) return;
    connecting.insert(m.id);
    auto mm = connector();
    const NodeId id = m.id;
    self->request(mm, std::chrono::seconds(5), caf::connect_atom::value, m.host, m.port)
        .then(
            [this, id](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              connecting.erase(id);
              if (!roster.find(id)) return;
              bind(id, caf::actor_cast<caf::actor>(ptr));
              if (auto p = peers.find(id); p != peers.end()) send_membership(p->second, train::Joined{me()});
            },
            [this, id, where = m.host + ":" + std::to_string(m.port)](caf::error& e) {
              connecting.erase(id);
              spdlog::debug("cannot reach member {} at {} yet: {}", id, where, self->system().render(e));
            });
  }

  // Retries connections and gives up on members that never became reachable.
  void check_connections() {
    for (const auto& m : roster.live()) {
      if (m.id == opt.id || peers.count(m.id)) {
        unbound_since.erase(m.id);
        continue;
      }
      auto [it, fresh] = unbound_since.emplace(m.id, now());
      if (!fresh && now() - it->second > kUnboundLimit) {
        unbound_since.erase(it);
        lost_link(m.id, "unreachable for " + std::to_string(static_cast<int>(kUnboundLimit)) + " s");
        continue;
      }
      connect(m);
    }
  }

  train::MemberInfo me() const {
    const auto* m = roster.find(opt.id);
    return m ? *m : train::MemberInfo{opt.id, 0, opt.host, opt.port, false, status_port(), data_port()};
  }

  void on_down(const caf::down_msg& d) {
    if (d.source == compute.address()) {
      stop(1, "the compute actor stopped: " + (d.reason ? self->system().render(d.reason) : std::string("normally")));
      return;
    }
    auth.forget(d.source);
    auto it = by_addr.find(d.source);
    if (it == by_addr.end()) return;
    lost_link(it->second, d.reason ? self->system().render(d.reason) : std::string("left"));
  }

  // This node's own link to member `id` failed: it drops the member, and the swarm's verdict follows (the arbiter
  // declares it gone, anyone else reports it to the arbiter; Roster::arbiter says why).
  void lost_link(NodeId id, const std::string& why) {
    if (!on_member_down(id, why)) return;
    const NodeId arbiter = roster.arbiter();  // after the drop: a lost arbiter has a successor
    if (arbiter == opt.id) declare_gone(id, caf::actor{});
    else if (auto p = peers.find(arbiter); p != peers.end()) send_membership(p->second, train::Suspect{id});
  }

  // To every member: `id` is gone; and to `id` itself where this node still reaches it.
  void declare_gone(NodeId id, const caf::actor& victim) {
    for (const auto& [peer, handle] : peers) send_membership(handle, train::Gone{id});
    if (victim) send_membership(victim, train::Gone{id});
  }

  // A member's word on another: the arbiter convicts on a suspicion; a member drops whom a holder declared gone and
  // passes the verdict on to it; a node told it is gone stops (the swarm redoes its work; a restart joins anew).
  void on_suspect(NodeId from, NodeId id) {
    if (roster.arbiter() != opt.id || !roster.convicts(from, id)) return;
    const caf::actor victim = peer_handle(id);
    on_member_down(id, fmt::format("member {} lost its link to it", from));
    declare_gone(id, victim);
  }
  void on_gone(NodeId from, NodeId id) {
    if (id == opt.id && train && roster.find(from)) {
      stop(4, fmt::format("the swarm took this node for dead (member {} says so: a member lost its link to this "
                          "node, and the swarm's arbiter settled it) and redoes its work. Once the network is back, "
                          "restart it: it joins as a new member", from));
      return;
    }
    if (!roster.believes_gone(from, id)) return;
    const caf::actor victim = peer_handle(id);
    on_member_down(id, fmt::format("data holder {} declared it gone", from));
    if (victim) send_membership(victim, train::Gone{id});
  }
  caf::actor peer_handle(NodeId id) const {
    auto p = peers.find(id);
    return p == peers.end() ? caf::actor{} : p->second;
  }

  // Drops a member (false: it was not live). Its frames count as a non-member's from now on.
  bool on_member_down(NodeId id, const std::string& why) {
    if (auto p = peers.find(id); p != peers.end()) {
      by_addr.erase(p->second.address());
      peers.erase(p);
    }
    if (!roster.find(id)) return false;
    roster.down(id);
    nlohmann::json down{{"peer", id}, {"why", why}};
    if (auto h = last_heard.find(id); h != last_heard.end()) {
      down["silent_s"] = now() - h->second;  // how long the peer was silent before it was declared down
      last_heard.erase(h);
    }
    bandwidth.forget(id);
    bulk_failed_at.erase(id);
    if (bulk) {
      bulk->close_peer(id);
      for (const auto& [link, peer] : bulk_links)
        if (peer == id) bulk->close_link(link);
    }
    note("peer_down", std::move(down));
    spdlog::info("member {} is gone ({})", id, why);
    if (train) step(train::PeerDown{id});
    to_flow(flow::PeerDown{id});
    return true;
  }

  // A member both machines learn of: serving already (ready) or still fetching its state.
  void add_peer(const train::MemberInfo& m, bool ready) {
    if (ready) step(train::PeerUp{m.id, m.stage});
    else step(train::PeerJoining{m.id, m.stage});
    to_flow(flow::PeerUp{m.id, m.stage});
  }

  void to_flow(flow::Input in) {
    if (flows) self->send(flows, ToFlow{std::move(in)});
  }

  // ---- membership ----------------------------------------------------------------------------------------------
  train::Hello hello() const {
    return {opt.id, opt.role, opt.stage, opt.host, opt.port, opt.config_hash, status_port(), data_port()};
  }
  uint16_t status_port() const { return status_server ? status_server->port() : 0; }
  uint16_t data_port() const { return bulk ? bulk->port() : 0; }

  // Each tick: what the status board shows besides the events (traffic, the members, the links).
  void update_board() {
    std::vector<obs::MemberView> members;
    for (const auto& m : roster.live())
      members.push_back({m.id, static_cast<int>(m.stage), true,
                         m.id == opt.id ? train->ready() : train->serves(m.id), m.host, m.status_port});
    std::vector<obs::LinkView> view;
    for (const auto& [peer, link] : links)
      if (link.latency_out_s.has_value()) view.push_back({peer, link.latency_out_s.value(), link_cost(peer, link)});
    std::lock_guard<std::mutex> lock(board->mu);
    board->status.set_members(std::move(members));
    board->status.set_links(std::move(view));
    board->status.set_traffic({frames_sent, bytes_sent, bytes_received, stats.rejected});
  }

  void on_hello(const caf::actor& from, const train::Hello& h) {
    if (!admitted) return;  // not a member yet: cannot admit anyone
    const bool retried = roster.find(h.id) != nullptr;
    auto a = roster.admit(h);
    if (!a) {
      spdlog::warn("refused node {} from {}:{}: {}", h.id, h.host, h.port, a.error());
      note("refused", {{"peer", h.id}, {"why", a.error()}});
      send_membership(from, train::Refused{a.error()});
      return;
    }
    const auto& m = a.value().member;
    bind(m.id, from);
    if (retried) {  // its hello again (it retries until it has an answer): the same answer, nothing announced
      send_membership(from, roster_for(m.id));
      return;
    }
    if (!roster.started()) {
      spdlog::info("founder {} admitted to stage {} ({}/{} founders)", m.id, m.stage, roster.live().size(),
                   opt.layout.founders());
      send_membership(from, roster.roster_for(m.id));  // admitted, waiting for the others
      if (roster.full()) start();
      return;
    }
    spdlog::info("node {} joins stage {}", m.id, m.stage);
    note("admitted", {{"peer", m.id}, {"stage", m.stage}});
    send_membership(from, roster_for(m.id));
    for (const auto& other : roster.live())
      if (other.id != opt.id && other.id != m.id)
        if (auto p = peers.find(other.id); p != peers.end()) send_membership(p->second, train::Joined{m});
    add_peer(m, false);
  }

  // The roster for member `id`; once training runs, who serves already comes from the protocol (a joiner that
  // imported its state announced itself there, not here).
  train::RosterMsg roster_for(NodeId id) const {
    auto r = roster.roster_for(id);
    if (train)
      for (auto& other : r.members) other.ready = other.id == opt.id ? train->ready() : train->serves(other.id);
    return r;
  }

  void start() {
    roster.start();
    spdlog::info("every founding slot is taken: training starts");
    for (const auto& m : roster.live())
      if (auto p = peers.find(m.id); p != peers.end()) send_membership(p->second, roster.roster_for(m.id));
    become_member(roster.roster_for(opt.id));
  }

  void on_roster(const train::RosterMsg& r) {
    if (train) return;  // already a member: a late duplicate
    if (!admitted) {
      admitted = true;
      note("admitted", {{"stage", r.you.stage}, {"started", r.started}});
      if (!r.started)
        spdlog::info("admitted as a founder of stage {}; waiting for the other founders", r.you.stage);
    }
    if (r.started) become_member(r);
    else roster.learn(r);
  }

  // A relay given its memory: how many flows it offers and how many microbatches it keeps buffers for, from its
  // stage's footprint. False: it stopped (the memory cannot hold the stage).
  bool plan_memory(train::Stage stage) {
    if (opt.memory_bytes == 0 || stage == 0) return true;
    const auto& m = opt.compute.model;
    auto footprint_or = model::relay_footprint(m.arch, m.shape, static_cast<int>(opt.layout.relay_stages()),
                                               static_cast<int>(stage), opt.compute.microbatch_size,
                                               opt.compute.seq_len, m.tied_head);
    if (!footprint_or) {
      stop(2, "cannot plan this node's memory: " + footprint_or.error());
      return false;
    }
    const auto footprint = footprint_or.value();
    auto fit = model::plan_memory(opt.memory_bytes, footprint, opt.flow_capacity);
    if (!fit) {
      stop(2, fmt::format("--memory: {} (stage {} of the {} model)", fit.error(), stage, m.shape.name));
      return false;
    }
    opt.flow_capacity = fit.value().capacity;
    if (opt.params.buffer_budget == 0) opt.params.buffer_budget = fit.value().buffer_budget;
    note("memory_plan", {{"memory_bytes", opt.memory_bytes}, {"fixed_bytes", footprint.fixed_bytes},
                         {"activation_bytes", footprint.activation_bytes}, {"buffer_bytes", footprint.buffer_bytes},
                         {"capacity", opt.flow_capacity}, {"buffer_budget", opt.params.buffer_budget}});
    spdlog::info("memory {:.0f} MiB for stage {}: {} microbatches in flight, recovery buffers for {}",
                 static_cast<double>(opt.memory_bytes) / (1 << 20), stage, opt.flow_capacity, opt.params.buffer_budget);
    return true;
  }

  void become_member(const train::RosterMsg& r) {
    roster.learn(r);
    if (!plan_memory(r.you.stage)) return;
    const bool joining = !r.you.ready;
    train.emplace(opt.id, r.you.stage, opt.params, joining);
    ComputeSetup setup{opt.compute, r.you.stage, blobs, opt.die_at, opt.parameters};
    compute = opt.detached_compute
                  ? self->spawn<caf::detached + caf::monitored>(compute_actor, setup, caf::actor_cast<caf::actor>(self))
                  : self->spawn<caf::monitored>(compute_actor, setup, caf::actor_cast<caf::actor>(self));
    note("member", {{"stage", r.you.stage}, {"joining", joining}, {"members", r.members.size()}});
    spdlog::info("{} stage {} with {} other members", joining ? "joining" : "serving", r.you.stage, r.members.size());
    flow::FlowConfig fc;
    fc.id = opt.id;
    fc.stage = r.you.stage;
    fc.relay_stages = opt.layout.relay_stages();
    fc.capacity = r.you.stage == 0 ? opt.params.max_in_flight : opt.flow_capacity;
    fc.params.period = opt.flow_period;
    fc.params.temperature0 = opt.flow_temperature;
    flows = self->spawn(flow_actor, fc, opt.id, caf::actor_cast<caf::actor>(self));
    for (const auto& m : r.members) {
      connect(m);
      add_peer(m, m.ready);
    }
  }

  void on_joined(const train::MemberInfo& m) {
    if (!train || roster.find(m.id)) return;
    roster.joined(m);
    connect(m);
    note("peer_joining", {{"peer", m.id}, {"stage", m.stage}});
    add_peer(m, false);
  }

  // ---- frames --------------------------------------------------------------------------------------------------
  void on_frame(Frame& f) {
    caf::actor sender = caf::actor_cast<caf::actor>(self->current_sender());
    bytes_received += f.bytes.size();
    auto known = by_addr.find(sender.address());
    const std::string from = known != by_addr.end() ? "node " + std::to_string(known->second) : "an unknown peer";
    wire::WireError error;
    auto msg = open_frame(f, {opt.swarm_id}, stats, from, &error);
    if (!msg) {
      refuse(std::string("malformed:") + std::string(wire::errc_name(error.code)), 0,
             "from " + from + ": " + error.message, false);
      if (error.code == wire::WireErrc::kWrongVersion) on_other_version(sender);
      return;
    }
    const NodeId claimed = msg->header.sender;
    if (known != by_addr.end() && known->second != claimed) {
      refuse("impersonation", known->second,
             fmt::format("node {} sent a frame in the name of node {}", known->second, claimed));
      return;
    }
    auto* membership = std::get_if<wire::MembershipMessage>(&msg->body);
    if (membership && std::holds_alternative<train::Proof>(membership->body)) {
      on_proof(sender, claimed, std::get<train::Proof>(membership->body));
      return;
    }
    if (!auth.admits(sender.address(), claimed)) {
      refuse("unproven", claimed,
             fmt::format("{} from {} in the name of node {}, which its connection has not proved",
                         wire::body_name(msg->body), from, claimed));
      return;
    }
    if (known == by_addr.end() && roster.find(claimed)) bind(claimed, sender);  // a member's greeting
    if (roster.find(claimed)) last_heard[claimed] = now();
    if (membership) {
      std::visit(Overloaded{
                     [&](const train::Hello& h) {
                       if (h.id != claimed) return;  // a hello speaks for its sender only
                       on_hello(sender, h);
                     },
                     [&](const train::RosterMsg& r) {
                       // The member that answered is bound to this connection first: connecting to it again makes
                       // CAF's OpenSSL module drop a connection and report that node's actors unreachable.
                       if (std::any_of(r.members.begin(), r.members.end(),
                                       [&](const train::MemberInfo& member) { return member.id == claimed; }))
                         bind(claimed, sender);
                       on_roster(r);
                     },
                     [&](const train::Joined& j) {
                       if (roster.find(claimed)) on_joined(j.member);
                     },
                     [&](const train::Refused& r) {
                       if (!admitted) stop(2, "the swarm refused this node: " + r.reason);
                     },
                     [&](const train::Proof&) {},  // handled above
                     [&](const train::Gone& g) { on_gone(claimed, g.node); },
                     [&](const train::Suspect& s) { on_suspect(claimed, s.node); },
                 },
                 membership->body);
      return;
    }
    if (!train || !roster.find(claimed)) {  // a peer of the CA that is not (or not yet, or no more) a member here
      refuse("non-member", claimed,
             fmt::format("{} from node {}, not a member here", wire::body_name(msg->body), claimed));
      return;
    }
    if (auto* fm = std::get_if<wire::FlowMessage>(&msg->body)) return to_flow(flow::Receive{claimed, std::move(fm->body)});
    if (auto* h = std::get_if<wire::Heartbeat>(&msg->body)) return on_heartbeat(claimed, *h);
    if (auto* c = std::get_if<wire::CapacityUpdate>(&msg->body)) {
      links[claimed].compute_peer_s.add(static_cast<double>(c->compute_ns_per_microbatch) * 1e-9);
      return;
    }
    auto* t = std::get_if<wire::TrainMessage>(&msg->body);
    if (!t) {
      spdlog::debug("ignored a frame of kind {} from {}", msg->body.index(), from);
      return;
    }
    on_train_frame(claimed, *msg, *t);
  }

  // A training message of member `claimed` (from CAF or the bulk data path).
  void on_train_frame(NodeId claimed, wire::Message& msg, wire::TrainMessage& t) {
    // The frame's tensors are checked at the door (a bad one never enters the protocol, and the frame is refused
    // whole), then become this node's blobs (copied: the frame's bytes are read-only and short-lived).
    const bool boundary = std::holds_alternative<train::Activation>(t.msg.body) ||
                          std::holds_alternative<train::Gradient>(t.msg.body);
    std::vector<at::Tensor> tensors;
    std::string problem;
    train::for_each_blob(t.msg.body, [&](train::Blob& b) {
      if (b == 0 || !problem.empty()) return;
      if (b > t.tensors.size()) {
        problem = "names tensor " + std::to_string(b) + " of " + std::to_string(t.tensors.size());
        return;
      }
      auto v = wire::from_wire(t.tensors[b - 1], msg.storage);
      if (auto p = boundary ? model::boundary_problem(v, opt.compute) : model::finite_problem(v)) problem = *p;
      tensors.push_back(std::move(v));
    });
    if (!problem.empty()) {
      refuse(problem.rfind("shape", 0) == 0 ? "tensor-shape" : "tensor-value", claimed,
             fmt::format("{} from node {}: {}", train::body_name(t.msg.body), claimed, problem));
      // The protocol hears of it (without the tensors): a refused activation goes to another replica.
      train::for_each_blob(t.msg.body, [](train::Blob& b) { b = 0; });
      t.msg.from = claimed;
      t.msg.to = opt.id;
      step(train::RefusedAtDoor{std::move(t.msg)});
      return;
    }
    size_t next = 0;
    train::for_each_blob(t.msg.body, [&](train::Blob& b) {
      if (b != 0) b = blobs->add(tensors[next++].clone());
    });
    if (const auto* ack = std::get_if<train::Ack>(&t.msg.body))
      if (bandwidth.acked(claimed, ack->seq, now())) update_link_cost(claimed, links[claimed]);
    t.msg.from = claimed;
    t.msg.to = opt.id;
    // A member leaving gracefully takes no new work: the flow layer routes around it from now on (its flows are
    // rebuilt at once, not when it is gone; what it still holds it finishes).
    if (std::holds_alternative<train::Leaving>(t.msg.body) && roster.find(claimed)) {
      if (left_flows.insert(claimed).second) note("flow_leaver", {{"peer", claimed}});
      to_flow(flow::PeerDown{claimed});
    }
    step(train::Receive{std::move(t.msg)});
  }

  // A frame on an incoming bulk connection: training messages only, from the member the connection carries — bound
  // by the proof that opens it in a TLS swarm, by its first frame in a plain-text one.
  void on_bulk_frame(BulkFrame& f) {
    bytes_received += f.bytes.size();
    auto bound = bulk_links.find(f.link);
    const std::string from =
        bound != bulk_links.end() ? fmt::format("node {} (bulk)", bound->second) : std::string("a bulk connection");
    Frame frame{std::move(f.bytes)};
    wire::WireError error;
    auto msg = open_frame(frame, {opt.swarm_id}, stats, from, &error);
    if (!msg) {
      refuse(std::string("malformed:") + std::string(wire::errc_name(error.code)), 0,
             "from " + from + ": " + error.message, false);
      return;
    }
    const NodeId claimed = msg->header.sender;
    auto* membership = std::get_if<wire::MembershipMessage>(&msg->body);
    if (bound == bulk_links.end()) {
      if (membership && std::holds_alternative<train::Proof>(membership->body)) {
        auto ok = auth.verify(claimed, std::get<train::Proof>(membership->body), std::time(nullptr));
        if (!ok) {
          refuse("bulk:proof", claimed, fmt::format("the identity proof on a bulk connection claiming node {}: {}", claimed,
                                               ok.error()));
          bulk->close_link(f.link);
          return;
        }
      } else if (auth.enabled()) {
        refuse("bulk:unproven", claimed,
               fmt::format("{} on a bulk connection that has not proved node {}", wire::body_name(msg->body), claimed));
        bulk->close_link(f.link);
        return;
      }
      if (!roster.find(claimed)) {
        refuse("bulk:non-member", claimed, fmt::format("a bulk connection from node {}, not a member here", claimed));
        bulk->close_link(f.link);
        return;
      }
      bound = bulk_links.emplace(f.link, claimed).first;
      if (membership) return;  // the proof
    }
    if (bound->second != claimed) {
      refuse("bulk:impersonation", bound->second,
             fmt::format("node {} sent a frame in the name of node {} on its bulk connection", bound->second, claimed));
      return;
    }
    auto* t = std::get_if<wire::TrainMessage>(&msg->body);
    if (!t) {
      refuse("bulk:control", claimed, fmt::format("{} from node {} on the bulk data path (training messages only)",
                                              wire::body_name(msg->body), claimed));
      return;
    }
    if (!train || !roster.find(claimed)) {
      refuse("bulk:non-member", claimed,
             fmt::format("{} from node {}, not a member here", wire::body_name(msg->body), claimed));
      return;
    }
    last_heard[claimed] = now();
    on_train_frame(claimed, *msg, *t);
  }

  // The bulk connection to `peer` failed: what it still held goes on CAF, and so does everything after it until a
  // new connection is tried (kBulkRetry).
  void on_bulk_returned(BulkReturned& r) {
    spdlog::warn("the bulk data path to node {} failed ({}); its tensors go on the control connection, a new "
                 "connection is tried in {:.0f} s",
                 r.peer, r.why, kBulkRetry);
    note("bulk_down", {{"peer", r.peer}, {"why", r.why}, {"returned", r.frames.size()}});
    bulk_failed_at[r.peer] = now();
    const caf::actor to = peer_handle(r.peer);
    if (!to) return;  // gone meanwhile: the protocol redoes its work elsewhere
    for (auto& f : r.frames) self->send(to, Frame{std::move(f)});
  }
  std::set<NodeId> left_flows;  // members whose Leaving the flow layer heard

  // A frame (or, kind "tls", a connection) this node will not take: counted as a rejected frame unless `count` is
  // false (open_frame counts its own), and per kind of refusal logged — and noted as a "refused_frame" event with
  // the reason — at most once a second, with how many of that kind went unlogged meanwhile: every kind of bad input
  // is named in the log, and a flood of one kind does not flood it.
  struct RefusalLog {
    double last = -1e9;
    uint64_t unlogged = 0;
  };
  std::map<std::string, RefusalLog> refusal_logs;  // by kind: a fixed, small set of keys
  void refuse(const std::string& kind, NodeId peer, const std::string& why, bool count = true) {
    if (count) ++stats.rejected;
    auto& r = refusal_logs[kind];
    if (now() - r.last < 1.0) {
      ++r.unlogged;
      return;
    }
    r.last = now();
    if (r.unlogged) spdlog::warn("refused ({}): {} ({} more of this kind not logged)", kind, why, r.unlogged);
    else spdlog::warn("refused ({}): {}", kind, why);
    note("refused_frame", {{"kind", kind}, {"peer", peer}, {"why", why}, {"unlogged", r.unlogged}});
    r.unlogged = 0;
  }

  // Connections whose TLS handshake failed (CAF closes them without a word; actors/openssl_guard names them).
  void report_tls_refusals() {
    uint64_t dropped = 0;
    for (const auto& r : take_tls_refusals(&dropped))
      refuse("tls", 0, fmt::format("the TLS handshake with {} failed: {} (a stranger: no certificate of this swarm's "
                                   "CA, or plain text)", r.peer, r.reason),
              false);
    if (dropped) refuse("tls", 0, fmt::format("{} more failed TLS handshakes", dropped), false);
  }

  void on_proof(const caf::actor& from, NodeId claimed, const train::Proof& proof) {
    auto ok = auth.accept(from.address(), claimed, proof, std::time(nullptr));
    if (!ok) {
      refuse("proof", claimed, fmt::format("the identity proof of a peer claiming node {}: {}", claimed, ok.error()));
      return;
    }
    spdlog::debug("node {} proved it is '{}'", claimed, ok.value());
  }

  // A frame of another wire protocol version. A joiner hearing it from a seed cannot join: it says so and stops.
  // A member tells such a peer once, in its own version (the peer's decoder then names both versions).
  void on_other_version(const caf::actor& from) {
    const bool from_seed = std::any_of(seeds.begin(), seeds.end(), [&](const caf::actor& s) { return s == from; });
    if (!admitted && from_seed) {
      stop(2, "the swarm speaks another wire protocol version (this node speaks " +
                  std::to_string(wire::kProtocolVersion) + "): run the gwtf version the swarm runs");
      return;
    }
    if (admitted && told_version.insert(from.address()).second)
      self->send(from, make_frame(header(), wire::MembershipMessage{train::Refused{
                                                "wire protocol version mismatch: this swarm speaks version " +
                                                std::to_string(wire::kProtocolVersion)}}));
  }

  void send_train(train::Message m) {
    auto p = peers.find(m.to);
    if (p == peers.end()) return;  // not connected (yet, or any more): the protocol retransmits or reroutes
    if (m.seq != 0 && bandwidth.still_sending(m.to, m.seq, now())) return;  // a second copy would queue behind it
    wire::TrainMessage tm;
    std::vector<wire::HeldTensor> held;
    bool ok = true;
    train::for_each_blob(m.body, [&](train::Blob& b) {
      if (b == 0) return;
      auto tensor = blobs->get(b);
      auto h = tensor.defined() ? wire::hold_for_wire(tensor) : Err{wire::WireError{wire::WireErrc::kMalformed, "no blob"}};
      if (!h) {
        ok = false;
        return;
      }
      tm.tensors.push_back(h.value().view);
      held.push_back(std::move(h).value());
      b = tm.tensors.size();
    });
    if (!ok) {
      spdlog::error("not sent: a {} to {} names a tensor this node no longer has", train::body_name(m.body), m.to);
      return;
    }
    uint64_t bytes = 0;
    for (const auto& t : tm.tensors) bytes += t.nbytes;
    if (m.seq != 0) bandwidth.sent(m.to, m.seq, bytes, now());
    tm.msg = std::move(m);
    send_frame(p->second, std::move(tm));
  }

  // ---- links and flows -----------------------------------------------------------------------------------------
  int64_t now_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(self->clock().now() - t0).count();
  }

  // Every `heartbeat` seconds: a heartbeat (echoed by the peer: a round trip) and this node's compute speed.
  void send_heartbeats() {
    if (now() - last_heartbeat < opt.heartbeat) return;
    last_heartbeat = now();
    ++heartbeat_seq;
    const wire::CapacityUpdate cap{static_cast<uint16_t>(train->stage()), opt.flow_capacity, 0,
                                   static_cast<uint64_t>(compute_s.value() * 1e9), 0};
    for (const auto& [id, handle] : peers) {
      wire::Heartbeat hb{heartbeat_seq, now_ns(), 0, 0, 0};
      hb.bandwidth_Bps = bandwidth.out_Bps(id).value_or(0);  // the peer's β_in: it measures only its own way
      send_frame(handle, hb);
      send_frame(handle, cap);
    }
  }

  // A peer's heartbeat (echoed) or the echo of ours: the link's round trip, and the peer's bandwidth towards us.
  void on_heartbeat(NodeId from, const wire::Heartbeat& h) {
    bandwidth.reported(from, h.bandwidth_Bps);
    auto p = peers.find(from);
    if (h.echo_seq == 0) {  // theirs: echo it
      if (p != peers.end()) send_frame(p->second, wire::Heartbeat{0, now_ns(), h.seq, h.sent_at_ns, 0});
      return;
    }
    const double rtt = static_cast<double>(now_ns() - h.echo_sent_at_ns - h.echo_held_ns) * 1e-9;
    if (!(rtt >= 0)) return;
    bandwidth.round_trip(from, rtt);
    auto& link = links[from];
    link.latency_out_s.add(rtt / 2);
    link.latency_in_s.add(rtt / 2);
    update_link_cost(from, link);
  }

  // The flow layer gets every new cost; the event log a `link_cost` event when it moved by a quarter or more since
  // the last one noted for that peer (what the routing saw, without an event per heartbeat).
  std::map<NodeId, double> noted_cost;
  void update_link_cost(NodeId peer, const flow::LinkMeasurements& link) {
    const double cost = link_cost(peer, link);
    to_flow(flow::LinkCost{peer, cost});
    auto [it, fresh] = noted_cost.emplace(peer, cost);
    if (!fresh && std::abs(cost - it->second) < 0.25 * it->second) return;
    it->second = cost;
    nlohmann::json j{{"peer", peer}, {"cost_s", cost}, {"latency_s", link.latency_out_s.value()}};
    if (auto out = bandwidth.out_Bps(peer)) j["bandwidth_out_Bps"] = *out;
    if (auto in = bandwidth.in_Bps(peer)) j["bandwidth_in_Bps"] = *in;
    note("link_cost", std::move(j));
  }

  // The edge cost to a peer from what was measured: a peer's unknown compute taken as ours; the bandwidth each way
  // from flow::LinkBandwidth (no transfer term before the first sample).
  double link_cost(NodeId id, const flow::LinkMeasurements& link) const {
    const double peer = link.compute_peer_s.has_value() ? link.compute_peer_s.value() : compute_s.value();
    const auto bw = bandwidth.both_ways(id);
    const double boundary_bytes = static_cast<double>(opt.compute.microbatch_size * opt.compute.seq_len *
                                                      opt.compute.model.shape.d_model) * sizeof(float);
    return flow::edge_cost(compute_s.value(), peer, link.latency_out_s.value(), link.latency_in_s.value(),
                           bw ? bw->first : 1, bw ? bw->second : 1, bw ? boundary_bytes : 0);
  }

  void on_flow(FromFlow& f) {
    for (auto& m : f.messages)
      if (auto p = peers.find(m.to); p != peers.end()) send_frame(p->second, wire::FlowMessage{std::move(m.body)});
    if (f.next_hops && train) {
      note("next_hops", {{"hops", *f.next_hops}});
      step(train::SetNextHops{*f.next_hops});
    }
    for (const auto& e : f.events)
      if (e.kind != flow::EventKind::kDropped)
        note("flow", {{"kind", static_cast<int>(e.kind)}, {"peer", e.peer}, {"detail", e.detail}});
  }

  // ---- the protocol ------------------------------------------------------------------------------------------
  void step(const train::Input& in) {
    train::Output out;
    train->step(in, now(), out);
    for (auto& m : out.send) send_train(std::move(m));
    for (auto& t : out.compute) {
      running[t.id] = {t.kind, t.replay};
      self->send(compute, ComputeJob{std::move(t), blobs->reserve()});
    }
    for (auto b : out.release) blobs->release(b);
    for (const auto& e : out.events) on_event(e);
    for (const auto& a : out.applied)
      note("applied", {{"iter", a.iter}, {"done", a.done}, {"end_done", a.end_done}, {"stage_done", a.stage_done},
                       {"stage_end_done", a.stage_end_done}});
  }

  // A joiner: its state transfer's progress, once a second while it runs.
  double last_transfer_note = -1e9;
  void report_transfer() {
    auto p = train->transfer_progress();
    if (!p || now() - last_transfer_note < 1.0) return;
    last_transfer_note = now();
    note("state_transfer", {{"version", p->version}, {"chunks", p->verified}, {"total", p->total},
                            {"donors", p->donors}});
    spdlog::info("fetching the stage's state after {} iterations: {}/{} chunks ({:.0f}%) from {} donor(s)",
                 p->version, p->verified, p->total, p->total ? 100.0 * p->verified / p->total : 0.0, p->donors);
  }

  void on_compute_done(const ComputeResult& r) {
    auto it = running.find(r.done.id);
    if (it == running.end()) return;
    std::lock_guard<std::mutex> lock(board->mu);
    board->status.add_compute(train::compute_name(it->second.first), r.seconds, it->second.second, !r.done.finite);
    running.erase(it);
  }

  // A data holder's line per iteration (after the step went into the status): loss, throughput, ETA, live
  // replicas per stage, flows.
  void progress_line(train::Iter iter, double loss) {
    obs::NodeStatus::Progress p;
    {
      std::lock_guard<std::mutex> lock(board->mu);
      p = board->status.progress(static_cast<int64_t>(opt.params.iterations));
    }
    std::string replicas;
    for (train::Stage s = 1; s <= opt.layout.relay_stages(); ++s)
      replicas += (s > 1 ? " " : "") + std::to_string(roster.live_count(s));
    spdlog::info("iteration {}/{}: loss {:.4f}, {:.0f} tokens/s, ETA {:.0f} s, replicas per stage [{}], {} next hops",
                 iter + 1, opt.params.iterations, loss, p.tokens_per_s, p.eta_s, replicas, p.next_hops);
  }

  void on_event(const train::Event& e) {
    nlohmann::json j{{"kind", train::event_name(e.kind)}, {"iter", e.iter}, {"mb", e.mb}, {"peer", e.peer},
                     {"value", e.value}};
    if (e.kind == train::EventKind::kJoined) spdlog::info("imported the stage state after {} iterations: serving", e.iter);
    // Logged at 2, 4, 8, ... rounds: it keeps being offered, and the log says so without a line per round.
    if (e.kind == train::EventKind::kUnprocessable && (static_cast<uint64_t>(e.value) & (static_cast<uint64_t>(e.value) - 1)) == 0)
      spdlog::error("microbatch {} of iteration {} is refused by every replica of stage 1 even when regenerated ({} "
                    "times): the model or the data give NaN/Inf there, and the iteration cannot commit without it",
                    e.mb, e.iter + 1, static_cast<uint64_t>(e.value));
    note("train", std::move(j));
    if (e.kind == train::EventKind::kStepped && train->is_holder()) progress_line(e.iter, e.value);
  }

  // SIGTERM/SIGINT: the first asks the training node to leave gracefully (no new work comes here; it goes once
  // what it holds is committed), a second — or the leave timeout — goes at once. True: the node stopped.
  double leave_asked_at = 0;
  bool leave(int asked) {
    if (asked > 1 || !train) {
      stop(0, "leaving at once on a second signal: the stage's other replicas redo what this node still held");
      return true;
    }
    if (!train->leaving()) {
      leave_asked_at = now();
      step(train::Leave{});
      note("leaving", {{"timeout_s", opt.leave_timeout}});
      spdlog::info("leaving gracefully: no new work comes here; going once what this node holds is committed "
                   "(at most {:.0f} s; a second signal: at once)", opt.leave_timeout);
      return false;
    }
    if (train->drained()) {
      stop(0, "left gracefully: every iteration this node held work of is committed, nothing to redo");
      return true;
    }
    if (now() - leave_asked_at > opt.leave_timeout) {
      stop(0, "the graceful leave took over " + std::to_string(static_cast<int>(opt.leave_timeout)) +
                  " s: leaving now, the stage's other replicas redo what this node still held");
      return true;
    }
    return false;
  }

  void on_tick() {
    if (const int asked = g_leave_requests.load(); asked > 0 && leave(asked)) return;
    if (opt.tls) report_tls_refusals();
    if (!admitted) {
      if (now() > opt.join_timeout) {
        std::string tried;
        for (const auto& [h, p] : opt.seeds) tried += (tried.empty() ? "" : ", ") + h + ":" + std::to_string(p);
        stop(3, "no seed answered within " + std::to_string(static_cast<int>(opt.join_timeout)) + " s (tried " +
                    tried + "); " + (last_seed_error.empty() ? "is a seed node running there?" : last_seed_error));
        return;
      }
      if (now() - last_hello >= 1.0) {
        last_hello = now();
        for (const auto& s : seeds) send_membership(s, hello());
        // Never a second connect while one is pending: two connections to one node make CAF's OpenSSL module drop
        // one and report that node's actors unreachable (seen: whole swarms collapsing as training started).
        if (seeds.empty() && seed_connects_pending == 0) connect_seeds();
      }
    }
    if (train) {
      check_connections();
      send_heartbeats();
      update_board();
      report_transfer();
      step(train::Tick{});
      // Done when every stage committed the last iteration — or, for a node that stepped it (a joiner that imported
      // the final state, say) but heard no commit, when every other member has left: nobody is left to tell it.
      const bool alone = roster.live().size() <= 1;
      if (cut_off(alone)) return;
      if (train->finished() && (train->committed() >= opt.params.iterations || alone)) {
        if (finished_at < 0) {
          finished_at = now();
          note("finished", {{"iterations", train->stepped()}});
        }
        if (now() - finished_at >= opt.linger) {
          stop(0, "training finished: " + std::to_string(train->stepped()) + " iterations");
          return;
        }
      }
    }
    self->delayed_send(self, std::chrono::milliseconds(static_cast<int64_t>(opt.tick * 1000)), tick_atom::value);
  }

  // Every other member is gone while this node's training is unfinished: it was cut off (a partition: the others
  // took it for dead and redid its work, and a node id never comes back) or it is the last survivor. Either way
  // it can do nothing more here; a node restarted after the network heals joins as a new member.
  double alone_since = -1;
  bool cut_off(bool alone) {
    if (!alone || train->finished()) {
      alone_since = -1;
      return false;
    }
    if (alone_since < 0) alone_since = now();
    if (now() - alone_since < 1.0) return false;  // one tick's grace: the last member may be on its way out
    stop(4, "cut off from the swarm: every other member is unreachable and training is unfinished; they redo this "
            "node's work. Once the network is back, restart it: it joins as a new member");
    return true;
  }

  void begin(uint16_t port, NodeId id) {
    opt.port = port;
    opt.id = id;
    auth = PeerAuth(opt.tls, opt.swarm_id, opt.id, to_string(self->system().node()));
    log = EventLog(opt.events_path);
    {
      obs::StatusOptions so;
      so.tokens_per_iteration = static_cast<uint64_t>(opt.params.microbatches) *
                                static_cast<uint64_t>(opt.compute.microbatch_size * opt.compute.seq_len);
      std::lock_guard<std::mutex> lock(board->mu);
      board->status = obs::NodeStatus(so);
    }
    if (opt.http) {
      auto server = StatusServer::start(opt.http->first, opt.http->second, board);
      if (!server) {
        stop(2, server.error());
        return;
      }
      status_server = std::move(server).value();
      spdlog::info("status: http://{}:{}/ (the swarm page), /metrics", opt.http->first, status_port());
    }
    if (opt.bulk_path && !opt.directory) {
      BulkPath::Options bo;
      bo.host = opt.host;
      bo.port = opt.bulk_port;
      bo.tls = opt.tls;
      auto path = BulkPath::open(self->address(), bo);
      if (!path) {
        stop(2, path.error());
        return;
      }
      bulk = std::move(path).value();
    }
    note("start", {{"host", opt.host}, {"port", opt.port}, {"role", train::role_name(opt.role)},
                   {"status_port", status_port()}, {"data_port", data_port()}});
    if (opt.seeds.empty()) {  // the seed of a new swarm admits itself first
      auto a = roster.admit(hello());
      if (!a) {
        stop(2, "cannot found a swarm: " + a.error());
        return;
      }
      admitted = true;
      spdlog::info("seed of a new swarm at {}:{}: stage {}; waiting for {} more founders", opt.host, opt.port,
                   a.value().member.stage, opt.layout.founders() - 1);
      if (roster.full()) start();
    } else {
      connect_seeds();
    }
    self->send(self, tick_atom::value);
  }

  int seed_connects_pending = 0;
  void connect_seeds() {
    auto mm = connector();
    for (const auto& [host, port] : opt.seeds) {
      ++seed_connects_pending;
      self->request(mm, std::chrono::seconds(5), caf::connect_atom::value, host, port)
          .then(
              [this](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
                --seed_connects_pending;
                auto seed = caf::actor_cast<caf::actor>(ptr);
                if (!seed) return;
                seeds.push_back(seed);
                send_membership(seed, hello());
              },
              [this, where = host + ":" + std::to_string(port)](caf::error& e) {
                --seed_connects_pending;
                const bool handshake = e == caf::sec::disconnect_during_handshake;
                last_seed_error = handshake ? "the seed closed the connection during the handshake: a TLS swarm "
                                              "refuses plain-text nodes and certificates of another swarm's CA, "
                                              "and a plain-text seed cannot speak TLS"
                                            : self->system().render(e) + ": is a seed node running there?";
                spdlog::warn("seed {} not reachable yet: {}", where, last_seed_error);
              });
    }
  }
};

}  // namespace

caf::behavior node_actor(caf::event_based_actor* self, NodeOptions options, std::shared_ptr<NodeOutcome> outcome) {
  auto node = std::make_shared<Node>(self, std::move(options), std::move(outcome));
  self->set_down_handler([node](caf::down_msg& d) { node->on_down(d); });
  // The bulk path's threads end with the actor, on its own thread (they hold only a weak handle to it).
  self->attach_functor([node] { node->bulk.reset(); });
  // Nothing happens before main published the actor and tells it its port (the hello carries it).
  return {
      [node](Frame& f) { node->on_frame(f); },
      [node](BulkFrame& f) { node->on_bulk_frame(f); },
      [node](BulkReturned& r) { node->on_bulk_returned(r); },
      [node](BulkLinkClosed& c) { node->bulk_links.erase(c.link); },
      [node](ComputeResult& r) {
        node->compute_s.add(r.seconds);
        node->on_compute_done(r);
        if (node->train) node->step(train::Finished{std::move(r.done)});
      },
      [node](FromFlow& f) { node->on_flow(f); },
      [node](tick_atom) { node->on_tick(); },
      [node](caf::publish_atom, uint16_t port, uint64_t id) { node->begin(port, id); },
  };
}

Result<StartedNode, std::string> start_node(caf::actor_system& sys, NodeOptions options, uint16_t listen_port,
                                            std::shared_ptr<NodeOutcome> outcome) {
  const std::string host = options.host;
  train::NodeId id = options.id;
  const bool tls = options.tls != nullptr;
  if (tls) id = options.tls->node_id();
  auto node = sys.spawn<caf::lazy_init>(node_actor, std::move(options), std::move(outcome));
  auto port = tls ? caf::openssl::publish(node, listen_port, host.c_str(), true)
                  : sys.middleman().publish(node, listen_port, host.c_str(), true);
  if (!port) {
    caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
    return Err{"cannot listen on " + host + ":" + std::to_string(listen_port) + ": " + sys.render(port.error())};
  }
  if (id == 0) {
    // Unique per address and process: a node that restarts is a new member (the protocol never revives an id).
    std::hash<std::string> h;
    id = (h(host + ":" + std::to_string(*port) + "/" + std::to_string(::getpid())) & 0x7fffffffffffull) | 1;
  }
  caf::anon_send(node, caf::publish_atom::value, *port, id);
  return StartedNode{node, *port, id};
}

}  // namespace gwtf
