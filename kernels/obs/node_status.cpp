#include "kernels/obs/node_status.hpp"

#include <cmath>

#include "kernels/obs/prometheus.hpp"

namespace gwtf::obs {

void NodeStatus::churn(const nlohmann::json& line, const std::string& what) {
  nlohmann::json e{{"t", t_}, {"what", what}};
  for (const char* k : {"peer", "stage", "why"})
    if (line.contains(k)) e[k] = line[k];
  if (line.contains("silent_s")) e["detected_after_s"] = line["silent_s"];
  recent_.push_back(std::move(e));
  while (recent_.size() > opt_.recent) recent_.pop_front();
}

void NodeStatus::on_event(const nlohmann::json& line) {
  if (!line.is_object()) return;
  // The node's own lines; still, a field of an unexpected type must cost a count, never the node.
  try {
    fold(line);
  } catch (const nlohmann::json::exception&) {
    ++malformed_;
  }
}

void NodeStatus::fold(const nlohmann::json& line) {
  t_ = std::max(t_, line.value("t", t_));
  id_ = line.value("node", id_);
  const std::string ev = line.value("event", std::string());
  if (ev == "start") {
    host_ = line.value("host", host_);
    port_ = line.value("port", port_);
    role_ = line.value("role", role_);
  } else if (ev == "member") {
    stage_ = line.value("stage", stage_);
    joining_ = line.value("joining", false);
    role_ = stage_ == 0 ? "data" : "relay";
  } else if (ev == "admitted") {
    if (line.contains("peer")) {
      ++joins_;
      churn(line, "admitted");
    }
  } else if (ev == "peer_joining") {
    ++joins_;
    churn(line, "joining");
  } else if (ev == "refused") {
    ++refused_;
    churn(line, "refused");
  } else if (ev == "peer_down") {
    ++peer_failures_;
    if (line.contains("silent_s") && line["silent_s"].is_number()) {
      detection_sum_ += line["silent_s"].get<double>();
      ++detection_count_;
    }
    churn(line, "down");
  } else if (ev == "next_hops") {
    next_hops_ = line.value("hops", std::vector<uint64_t>{});
  } else if (ev == "flow") {
    ++flow_events_;
  } else if (ev == "applied") {
    // The microbatches this node contributed to the step (a holder: its start part).
    if (line.contains("done") && line["done"].is_array()) microbatches_ += line["done"].size();
  } else if (ev == "state_transfer") {
    transfer_ = {{"version", line.value("version", 0)}, {"chunks", line.value("chunks", 0)},
                 {"total", line.value("total", 0)}, {"donors", line.value("donors", 0)}};
  } else if (ev == "finished") {
    finished_ = true;
  } else if (ev == "train") {
    const std::string kind = line.value("kind", std::string("?"));
    ++protocol_[kind];
    if (kind == "joined") {
      joining_ = false;
      transfer_ = nullptr;
    }
    if (kind != "stepped") return;
    Point p;
    p.iter = line.value("iter", int64_t{0}) + 1;  // iterations applied so far
    p.t = t_;
    if (stage_ == 0 && line.contains("value")) p.loss = line["value"].get<double>();
    if (!series_.empty() && p.iter == series_.back().iter + 1 && p.t > series_.back().t && opt_.tokens_per_iteration)
      p.tokens_per_s = static_cast<double>(opt_.tokens_per_iteration) / (p.t - series_.back().t);
    stepped_ = std::max(stepped_, p.iter);
    series_.push_back(p);
    while (series_.size() > opt_.history) series_.pop_front();
  }
}

void NodeStatus::add_compute(const std::string& kind, double seconds, bool replay, bool discarded) {
  compute_s_[kind] += seconds;
  if (replay || discarded) wasted_s_ += seconds;
}

NodeStatus::Progress NodeStatus::progress(int64_t iterations) const {
  Progress p;
  p.next_hops = next_hops_.size();
  if (series_.size() < 2 || series_.back().iter <= series_.front().iter) return p;
  const double per_step = (series_.back().t - series_.front().t) /
                          static_cast<double>(series_.back().iter - series_.front().iter);
  if (per_step <= 0) return p;
  p.tokens_per_s = static_cast<double>(opt_.tokens_per_iteration) / per_step;
  p.eta_s = per_step * static_cast<double>(std::max<int64_t>(0, iterations - stepped_));
  return p;
}

std::string NodeStatus::prometheus() const {
  PromText p;
  p.family("gwtf_node_info", "gauge", "This node: its stage (0: data holder) and role.");
  p.sample("gwtf_node_info", 1,
           {{"node", std::to_string(id_)}, {"stage", std::to_string(stage_)}, {"role", role_},
            {"state", finished_ ? "finished" : joining_ ? "joining" : stage_ < 0 ? "admitting" : "serving"}});
  p.family("gwtf_uptime_seconds", "gauge", "Seconds since the node started (as of its last event).");
  p.sample("gwtf_uptime_seconds", t_);
  p.family("gwtf_iteration", "gauge", "Iterations this node has applied (its stage stepped).");
  p.sample("gwtf_iteration", static_cast<double>(stepped_));
  std::optional<double> loss, tps;
  for (auto it = series_.rbegin(); it != series_.rend() && !(loss && tps); ++it) {
    if (!loss && it->loss) loss = it->loss;
    if (!tps && it->tokens_per_s) tps = it->tokens_per_s;
  }
  if (loss) {
    p.family("gwtf_loss", "gauge", "Training loss of the last iteration (data holders).");
    p.sample("gwtf_loss", *loss);
  }
  p.family("gwtf_tokens_per_second", "gauge", "The swarm's training throughput over this node's last iteration.");
  p.sample("gwtf_tokens_per_second", tps.value_or(0));
  p.family("gwtf_microbatches_total", "counter", "Microbatch contributions this node has applied.");
  p.sample("gwtf_microbatches_total", static_cast<double>(microbatches_));

  p.family("gwtf_peers", "gauge", "Live members per stage as this node sees them (itself included).");
  std::map<int, std::pair<int, int>> per_stage;  // live, ready
  for (const auto& m : members_)
    if (m.alive) {
      ++per_stage[m.stage].first;
      per_stage[m.stage].second += m.ready;
    }
  for (const auto& [s, n] : per_stage) p.sample("gwtf_peers", n.first, {{"stage", std::to_string(s)}});
  p.family("gwtf_peers_ready", "gauge", "Live members per stage that serve it (joiners excluded until they have the state).");
  for (const auto& [s, n] : per_stage) p.sample("gwtf_peers_ready", n.second, {{"stage", std::to_string(s)}});

  if (transfer_.is_object()) {
    p.family("gwtf_state_transfer_chunks", "gauge", "A joiner's stage state: chunks verified and in all.");
    p.sample("gwtf_state_transfer_chunks", transfer_.value("chunks", 0.0), {{"of", "verified"}});
    p.sample("gwtf_state_transfer_chunks", transfer_.value("total", 0.0), {{"of", "total"}});
  }
  p.family("gwtf_flows", "gauge", "Next-stage replicas the flow layer routes this node's work to.");
  p.sample("gwtf_flows", static_cast<double>(next_hops_.size()));
  p.family("gwtf_link_cost_seconds", "gauge", "The flow layer's edge cost to a peer (compute + latency).");
  for (const auto& l : links_) p.sample("gwtf_link_cost_seconds", l.cost_s, {{"peer", std::to_string(l.peer)}});
  p.family("gwtf_link_latency_seconds", "gauge", "Smoothed one-way latency to a peer, from heartbeat round trips.");
  for (const auto& l : links_) p.sample("gwtf_link_latency_seconds", l.latency_s, {{"peer", std::to_string(l.peer)}});
  p.family("gwtf_flow_events_total", "counter", "Flow protocol events (flows built, cancelled, moved).");
  p.sample("gwtf_flow_events_total", static_cast<double>(flow_events_));

  p.family("gwtf_frames_sent_total", "counter", "Frames sent.");
  p.sample("gwtf_frames_sent_total", static_cast<double>(traffic_.frames_sent));
  p.family("gwtf_bytes_sent_total", "counter", "Bytes of frames sent.");
  p.sample("gwtf_bytes_sent_total", static_cast<double>(traffic_.bytes_sent));
  p.family("gwtf_bytes_received_total", "counter", "Bytes of frames received.");
  p.sample("gwtf_bytes_received_total", static_cast<double>(traffic_.bytes_received));
  p.family("gwtf_frames_rejected_total", "counter", "Frames dropped as malformed, foreign or forged.");
  p.sample("gwtf_frames_rejected_total", static_cast<double>(traffic_.frames_rejected));

  p.family("gwtf_protocol_events_total", "counter", "Training protocol events by kind (redo, adopted, duplicate, ...).");
  for (const auto& [k, n] : protocol_) p.sample("gwtf_protocol_events_total", static_cast<double>(n), {{"kind", k}});
  auto count = [&](const char* k) {
    auto it = protocol_.find(k);
    return it == protocol_.end() ? 0.0 : static_cast<double>(it->second);
  };
  p.family("gwtf_recoveries_total", "counter", "Work this node re-sent for a dead peer (redo) or took over (adopted).");
  p.sample("gwtf_recoveries_total", count("redo") + count("adopted"));
  p.family("gwtf_compute_seconds_total", "counter", "Compute time by task kind.");
  for (const auto& [k, s] : compute_s_) p.sample("gwtf_compute_seconds_total", s, {{"kind", k}});
  p.family("gwtf_wasted_compute_seconds_total", "counter",
           "Compute spent here again for others' failures (replays on old weights) or thrown away (NaN/Inf).");
  p.sample("gwtf_wasted_compute_seconds_total", wasted_s_);

  p.family("gwtf_peer_failures_total", "counter", "Members this node saw go down.");
  p.sample("gwtf_peer_failures_total", static_cast<double>(peer_failures_));
  p.family("gwtf_detection_seconds", "summary", "Silence from a peer's last frame to its being declared down.");
  p.sample("gwtf_detection_seconds_sum", detection_sum_);
  p.sample("gwtf_detection_seconds_count", static_cast<double>(detection_count_));
  p.family("gwtf_joins_total", "counter", "Newcomers this node saw join after training started.");
  p.sample("gwtf_joins_total", static_cast<double>(joins_));
  p.family("gwtf_refused_total", "counter", "Hellos this node refused (wrong configuration, no slot).");
  p.sample("gwtf_refused_total", static_cast<double>(refused_));
  p.family("gwtf_status_malformed_events_total", "counter", "Event-log lines the status could not read.");
  p.sample("gwtf_status_malformed_events_total", static_cast<double>(malformed_));
  return p.text();
}

nlohmann::json NodeStatus::to_json() const {
  nlohmann::json j{{"id", id_},           {"stage", stage_},       {"role", role_},
                   {"host", host_},       {"port", port_},         {"uptime_s", t_},
                   {"iteration", stepped_}, {"joining", joining_}, {"finished", finished_},
                   {"microbatches", microbatches_}, {"next_hops", next_hops_}};
  auto& series = j["series"] = nlohmann::json::array();
  for (const auto& p : series_) {
    nlohmann::json e{{"iter", p.iter}, {"t", p.t}};
    if (p.loss) e["loss"] = *p.loss;
    if (p.tokens_per_s) e["tokens_per_s"] = *p.tokens_per_s;
    series.push_back(std::move(e));
  }
  auto& members = j["members"] = nlohmann::json::array();
  for (const auto& m : members_)
    members.push_back({{"id", m.id}, {"stage", m.stage}, {"alive", m.alive}, {"ready", m.ready}, {"host", m.host},
                       {"status_port", m.status_port}});
  auto& links = j["links"] = nlohmann::json::array();
  for (const auto& l : links_) links.push_back({{"peer", l.peer}, {"latency_s", l.latency_s}, {"cost_s", l.cost_s}});
  j["recent"] = nlohmann::json(recent_);
  if (transfer_.is_object()) j["transfer"] = transfer_;
  j["counters"] = {{"peer_failures", peer_failures_},
                   {"joins", joins_},
                   {"refused", refused_},
                   {"wasted_compute_s", wasted_s_},
                   {"bytes_sent", traffic_.bytes_sent},
                   {"bytes_received", traffic_.bytes_received},
                   {"frames_rejected", traffic_.frames_rejected},
                   {"protocol", protocol_}};
  if (detection_count_) j["counters"]["mean_detection_s"] = detection_sum_ / static_cast<double>(detection_count_);
  return j;
}

}  // namespace gwtf::obs
