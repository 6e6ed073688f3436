#include "actors/peer_auth.hpp"

#include <fstream>
#include <sstream>

namespace gwtf {

Result<std::string, std::string> read_credential_file(const std::string& path, const char* what) {
  if (path.empty()) return Err{std::string("no ") + what + " file given"};
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err{std::string(what) + " file '" + path + "' cannot be read"};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Result<std::string, std::string> read_passphrase_file(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line) || line.empty())
    return Err{"the passphrase file '" + path + "' cannot be read or has no passphrase on its first line"};
  return line;
}

Result<std::shared_ptr<const SwarmTls>, std::string> SwarmTls::load(const std::string& ca_file,
                                                                    const std::string& cert_file,
                                                                    const std::string& key_file,
                                                                    const std::string& passphrase,
                                                                    uint64_t incarnation, std::time_t now) {
  auto ca_pem = read_credential_file(ca_file, "the swarm CA");
  if (!ca_pem) return Err{ca_pem.error()};
  auto cert_pem = read_credential_file(cert_file, "the node certificate");
  if (!cert_pem) return Err{cert_pem.error()};
  auto key_pem = read_credential_file(key_file, "the node key");
  if (!key_pem) return Err{key_pem.error()};
  auto ca = auth::SwarmCa::load(ca_pem.value());
  if (!ca) return Err{ca_file + ": " + ca.error()};
  auto creds = auth::NodeCredentials::load(ca.value(), cert_pem.value(), key_pem.value(), passphrase, now);
  if (!creds) return Err{cert_file + " / " + key_file + ": " + creds.error()};
  auto tls = std::make_shared<SwarmTls>(
      SwarmTls{ca_file, cert_file, key_file, passphrase, std::move(ca).value(), std::move(creds).value(), incarnation});
  return std::shared_ptr<const SwarmTls>(std::move(tls));
}

uint64_t SwarmTls::node_id() const { return auth::derive_node_id(name(), incarnation); }

PeerAuth::PeerAuth(std::shared_ptr<const SwarmTls> tls, uint64_t swarm_id, uint64_t my_id, std::string my_audience)
    : tls_(std::move(tls)), swarm_id_(swarm_id), my_id_(my_id), my_audience_(std::move(my_audience)) {}

std::optional<train::Proof> PeerAuth::proof_for(const caf::actor_addr& to, const std::string& audience) {
  if (!tls_ || !proved_to_.insert(to).second) return std::nullopt;
  return proof(audience);
}

train::Proof PeerAuth::proof(const std::string& audience) const {
  return train::Proof{tls_->credentials.cert_pem(), tls_->incarnation,
                      tls_->credentials.sign(auth::proof_payload(swarm_id_, my_id_, tls_->incarnation, audience))};
}

Result<std::string, std::string> PeerAuth::verify(uint64_t id, const train::Proof& proof, std::time_t now) {
  if (!tls_) return Err{std::string("a proof in a plain-text swarm")};
  auto info = tls_->ca.verify_proof(proof.certificate, id, proof.incarnation, proof.signature, swarm_id_,
                                    my_audience_, now);
  if (!info) return Err{info.error()};
  names_[id] = info->name;
  return info->name;
}

Result<std::string, std::string> PeerAuth::accept(const caf::actor_addr& from, uint64_t id, const train::Proof& proof,
                                                  std::time_t now) {
  if (!tls_) return Err{std::string("a proof in a plain-text swarm")};
  if (auto it = proven_.find(from); it != proven_.end() && it->second != id)
    return Err{"this connection proved node " + std::to_string(it->second) + " already, not " + std::to_string(id)};
  auto name = verify(id, proof, now);
  if (name) proven_[from] = id;
  return name;
}

bool PeerAuth::admits(const caf::actor_addr& from, uint64_t id) const {
  if (!tls_) return true;
  auto it = proven_.find(from);
  return it != proven_.end() && it->second == id;
}

std::string PeerAuth::name_of(uint64_t id) const {
  auto it = names_.find(id);
  return it == names_.end() ? std::string() : it->second;
}

}  // namespace gwtf
