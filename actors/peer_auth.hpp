// Admission in a TLS swarm. CAF's OpenSSL module lets only holders of a certificate of the swarm CA connect, but
// it does not say which certificate, so every node proves, before its first other frame on a connection, which
// node id it speaks for (kernels/auth/swarm_identity.hpp). PeerAuth keeps that bookkeeping per connection: which
// peers proved what, and to which peers this node has proved itself. Frames from a peer that has not proved the
// id its envelope claims are dropped.
#pragma once

#include <caf/actor_addr.hpp>

#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "kernels/auth/swarm_identity.hpp"
#include "kernels/base/result.hpp"
#include "kernels/train/membership.hpp"

namespace gwtf {

// A credential file's whole text, and a passphrase file's first line; errors name the file (`what`: "the node key").
Result<std::string, std::string> read_credential_file(const std::string& path, const char* what);
Result<std::string, std::string> read_passphrase_file(const std::string& path);

// This node's TLS identity: the files CAF's OpenSSL module reads, checked here first (a bad key or passphrase
// makes CAF's connect hang instead of failing), and the loaded credentials.
struct SwarmTls {
  std::string ca_file, cert_file, key_file, passphrase;
  auth::SwarmCa ca;
  auth::NodeCredentials credentials;
  uint64_t incarnation = 0;  // fresh per process: a node that restarts is a new member with a new id

  // Reads and checks the three PEM files; each failure names the file and what is wrong with it.
  static Result<std::shared_ptr<const SwarmTls>, std::string> load(const std::string& ca_file,
                                                                   const std::string& cert_file,
                                                                   const std::string& key_file,
                                                                   const std::string& passphrase, uint64_t incarnation,
                                                                   std::time_t now);
  // The node id this process speaks for: derived from its certificate's name and its incarnation.
  uint64_t node_id() const;
  const std::string& name() const { return credentials.info().name; }
};

class PeerAuth {
 public:
  // `tls` null: a plain-text swarm (loopback development), where every frame's claimed sender is taken at its word.
  PeerAuth(std::shared_ptr<const SwarmTls> tls, uint64_t swarm_id, uint64_t my_id, std::string my_audience);

  bool enabled() const { return tls_ != nullptr; }
  // The proof to send before the first frame to `to` (whose CAF node id is `audience`); none when already sent on
  // this connection, or in a plain-text swarm.
  std::optional<train::Proof> proof_for(const caf::actor_addr& to, const std::string& audience);
  // This node's proof for a receiver whose CAF node id is `audience`, without the bookkeeping (the bulk data path
  // sends it first on each of its own connections). TLS swarms only.
  train::Proof proof(const std::string& audience) const;
  // Checks a proof for node `id` addressed to this node: the peer's certificate name, or why not.
  Result<std::string, std::string> verify(uint64_t id, const train::Proof& proof, std::time_t now);
  // A proof from `from` for node `id`: on success the peer's certificate name, and its frames for `id` pass.
  Result<std::string, std::string> accept(const caf::actor_addr& from, uint64_t id, const train::Proof& proof,
                                          std::time_t now);
  // May a frame from `from` that claims sender `id` pass? (Always in a plain-text swarm.)
  bool admits(const caf::actor_addr& from, uint64_t id) const;
  // The connection to `to` went down: prove this node again on the next one.
  void forget(const caf::actor_addr& to) { proved_to_.erase(to); }
  // The certificate name a proven node id speaks for ("" when unknown).
  std::string name_of(uint64_t id) const;

 private:
  std::shared_ptr<const SwarmTls> tls_;
  uint64_t swarm_id_ = 0, my_id_ = 0;
  std::string my_audience_;
  std::map<caf::actor_addr, uint64_t> proven_;  // never forgotten: a node id is never revived
  std::map<uint64_t, std::string> names_;
  std::set<caf::actor_addr> proved_to_;
};

}  // namespace gwtf
