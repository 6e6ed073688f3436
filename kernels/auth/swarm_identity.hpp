// A swarm's identity: its certificate authority (CA), the certificates it issues to nodes, and the proof by which a
// node binds its node id to its certificate.
//
// Why a proof on top of mutual TLS: CAF's OpenSSL module admits any peer whose certificate the swarm CA signed, but
// it tells the application neither which certificate that was nor checks a host name (../shared/notes/caf.md). So
// a member could claim to be any other member. Each node therefore proves, before the first frame it sends over a
// connection, that it holds the key of a certificate whose name derives its node id:
//   id = derive_node_id(certificate name, incarnation)      (a fresh incarnation per process start)
//   signature over proof_payload(swarm id, id, incarnation, the receiver's CAF node id)
// The receiver checks the chain to the CA, the derivation and the signature. The receiver's CAF node id in the
// payload stops a member from replaying a proof it was sent to a third node.
//
// Pure functions over PEM text (no files, no clocks: `now` is passed in). Key generation and ECDSA signatures draw
// on OpenSSL's random generator: certificates and signatures differ per call; verification does not.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "kernels/base/result.hpp"

namespace gwtf::auth {

// A certificate and its private key, as PEM text. The key is encrypted when a passphrase was given.
struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

// A new swarm CA: a self-signed P-256 certificate named "<swarm> CA", organisation <swarm>, valid `days` days.
Result<KeyPair, std::string> create_ca(const std::string& swarm, int days, std::time_t now);

// A node certificate signed by the CA: common name `node_name`, organisation the CA's swarm. `passphrase` not empty:
// the key is written encrypted (AES-256).
Result<KeyPair, std::string> issue_node(const KeyPair& ca, const std::string& ca_passphrase,
                                        const std::string& node_name, int days, const std::string& passphrase,
                                        std::time_t now);

// What a certificate says, once its chain to the CA is verified.
struct CertInfo {
  std::string name;   // the common name: the node's name (or "<swarm> CA")
  std::string swarm;  // the organisation
  std::time_t not_after = 0;
};

// The node id a certificate name speaks for in one incarnation (a process start); never 0.
uint64_t derive_node_id(std::string_view name, uint64_t incarnation);

// The bytes a proof signs.
std::string proof_payload(uint64_t swarm_id, uint64_t node_id, uint64_t incarnation, std::string_view audience);

// The swarm CA, for checking certificates and proofs. Cheap to copy (shared).
class SwarmCa {
 public:
  static Result<SwarmCa, std::string> load(const std::string& ca_pem);
  const std::string& swarm() const;
  // The certificate's chain to this CA, at `now`.
  Result<CertInfo, std::string> verify_certificate(const std::string& cert_pem, std::time_t now) const;
  // A peer's proof: the certificate verifies, the node id derives from its name and the incarnation, and the
  // signature over proof_payload(swarm_id, node_id, incarnation, audience) is the certificate key's.
  Result<CertInfo, std::string> verify_proof(const std::string& cert_pem, uint64_t node_id, uint64_t incarnation,
                                             const std::string& signature, uint64_t swarm_id,
                                             std::string_view audience, std::time_t now) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// This node's own identity: its certificate (verified against the CA) and its private key.
class NodeCredentials {
 public:
  // Everything a TLS endpoint needs, checked before CAF ever sees the files (a bad key or passphrase makes CAF's
  // connect hang): the key decrypts with `passphrase`, it matches the certificate, the certificate chains to the CA
  // and is valid at `now`. Each failure names what is wrong.
  static Result<NodeCredentials, std::string> load(const SwarmCa& ca, const std::string& cert_pem,
                                                   const std::string& key_pem, const std::string& passphrase,
                                                   std::time_t now);
  const CertInfo& info() const;
  const std::string& cert_pem() const;
  std::string sign(std::string_view data) const;  // ECDSA/SHA-256 (or the key's own scheme), DER

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace gwtf::auth
