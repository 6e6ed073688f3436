// The swarm identity: a CA issues node certificates; a node's credentials load only when key, certificate and CA
// agree; a proof binds a node id to a certificate for one receiver and nothing else.
#include <gtest/gtest.h>

#include "kernels/auth/swarm_identity.hpp"

namespace gwtf::auth {
namespace {

constexpr std::time_t kNow = 1'800'000'000;  // 2027-01-15: tests pass `now`, never read the clock
constexpr uint64_t kSwarmId = 42;

struct World {
  KeyPair ca = create_ca("alpha", 365, kNow).value();
  SwarmCa verifier = SwarmCa::load(ca.cert_pem).value();
  KeyPair node(const std::string& name, const std::string& pass = "") const {
    return issue_node(ca, "", name, 30, pass, kNow).value();
  }
};

TEST(SwarmIdentity, AnIssuedCertificateVerifiesAndNamesItsNodeAndSwarm) {
  World w;
  EXPECT_EQ(w.verifier.swarm(), "alpha");
  auto kp = w.node("relay-1");
  auto info = w.verifier.verify_certificate(kp.cert_pem, kNow);
  ASSERT_TRUE(info) << info.error();
  EXPECT_EQ(info->name, "relay-1");
  EXPECT_EQ(info->swarm, "alpha");
  EXPECT_NEAR(static_cast<double>(info->not_after - kNow), 30 * 86400.0, 1.0);
}

TEST(SwarmIdentity, CertificatesOfAnotherCaOrOutOfTheirTimeAreRefused) {
  World w;
  World rogue;  // another CA of the same swarm name: a stranger all the same
  auto foreign = rogue.node("relay-1");
  auto r = w.verifier.verify_certificate(foreign.cert_pem, kNow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("does not verify"), std::string::npos) << r.error();
  auto kp = w.node("relay-1");
  EXPECT_FALSE(w.verifier.verify_certificate(kp.cert_pem, kNow + 31 * 86400));  // expired
  EXPECT_FALSE(w.verifier.verify_certificate(kp.cert_pem, kNow - 86400));       // not yet valid
  EXPECT_FALSE(w.verifier.verify_certificate("garbage", kNow));
  EXPECT_FALSE(SwarmCa::load(kp.cert_pem));  // a node certificate is no CA
}

TEST(SwarmIdentity, CredentialsLoadOnlyWhenKeyCertificateAndCaAgree) {
  World w;
  auto a = w.node("a"), b = w.node("b");
  EXPECT_TRUE(NodeCredentials::load(w.verifier, a.cert_pem, a.key_pem, "", kNow));
  auto mixed = NodeCredentials::load(w.verifier, a.cert_pem, b.key_pem, "", kNow);
  ASSERT_FALSE(mixed);
  EXPECT_NE(mixed.error().find("does not belong"), std::string::npos) << mixed.error();
  World other;
  EXPECT_FALSE(NodeCredentials::load(other.verifier, a.cert_pem, a.key_pem, "", kNow));

  auto locked = w.node("c", "s3cret");
  EXPECT_NE(locked.key_pem.find("ENCRYPTED"), std::string::npos);
  auto no_pass = NodeCredentials::load(w.verifier, locked.cert_pem, locked.key_pem, "", kNow);
  ASSERT_FALSE(no_pass);  // and no TTY prompt: the call returns
  EXPECT_NE(no_pass.error().find("give its passphrase"), std::string::npos) << no_pass.error();
  auto wrong = NodeCredentials::load(w.verifier, locked.cert_pem, locked.key_pem, "guess", kNow);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().find("passphrase given"), std::string::npos) << wrong.error();
  EXPECT_TRUE(NodeCredentials::load(w.verifier, locked.cert_pem, locked.key_pem, "s3cret", kNow));
}

TEST(SwarmIdentity, AProofBindsOneIdToOneCertificateForOneReceiver) {
  World w;
  auto kp = w.node("relay-7");
  auto creds = NodeCredentials::load(w.verifier, kp.cert_pem, kp.key_pem, "", kNow).value();
  const uint64_t inc = 99;
  const uint64_t id = derive_node_id("relay-7", inc);
  const std::string sig = creds.sign(proof_payload(kSwarmId, id, inc, "node-B"));
  ASSERT_FALSE(sig.empty());
  auto ok = w.verifier.verify_proof(kp.cert_pem, id, inc, sig, kSwarmId, "node-B", kNow);
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(ok->name, "relay-7");
  // Replayed to another receiver, for another swarm, or for another id: refused.
  EXPECT_FALSE(w.verifier.verify_proof(kp.cert_pem, id, inc, sig, kSwarmId, "node-C", kNow));
  EXPECT_FALSE(w.verifier.verify_proof(kp.cert_pem, id, inc, sig, kSwarmId + 1, "node-B", kNow));
  const uint64_t other = derive_node_id("relay-8", inc);
  EXPECT_FALSE(w.verifier.verify_proof(kp.cert_pem, other, inc, creds.sign(proof_payload(kSwarmId, other, inc, "node-B")),
                                       kSwarmId, "node-B", kNow));
  // Another member's certificate with this member's signature: the signature is not that certificate's key's.
  auto victim = w.node("relay-8");
  const uint64_t victim_id = derive_node_id("relay-8", inc);
  auto forged = w.verifier.verify_proof(victim.cert_pem, victim_id, inc,
                                        creds.sign(proof_payload(kSwarmId, victim_id, inc, "node-B")), kSwarmId,
                                        "node-B", kNow);
  ASSERT_FALSE(forged);
  EXPECT_NE(forged.error().find("signature"), std::string::npos) << forged.error();
  // A flipped bit in the signature.
  std::string bad = sig;
  bad[bad.size() / 2] ^= 1;
  EXPECT_FALSE(w.verifier.verify_proof(kp.cert_pem, id, inc, bad, kSwarmId, "node-B", kNow));
}

TEST(SwarmIdentity, NodeIdsDependOnNameAndIncarnationAndAreNeverZero) {
  EXPECT_EQ(derive_node_id("a", 1), derive_node_id("a", 1));
  EXPECT_NE(derive_node_id("a", 1), derive_node_id("a", 2));
  EXPECT_NE(derive_node_id("a", 1), derive_node_id("b", 1));
  for (uint64_t k = 0; k < 100; ++k) EXPECT_NE(derive_node_id("x", k), 0u);
}

TEST(SwarmIdentity, NamesAreCheckedBeforeAnythingIsIssued) {
  EXPECT_FALSE(create_ca("", 10, kNow));
  EXPECT_FALSE(create_ca("bad name", 10, kNow));
  World w;
  EXPECT_FALSE(issue_node(w.ca, "", "x/y", 10, "", kNow));
  EXPECT_FALSE(issue_node(w.ca, "", "ok", 0, "", kNow));
  KeyPair swapped{w.ca.cert_pem, World().ca.key_pem};
  auto r = issue_node(swapped, "", "ok", 10, "", kNow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("does not belong"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace gwtf::auth
