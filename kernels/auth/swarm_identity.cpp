#include "kernels/auth/swarm_identity.hpp"

#include "kernels/auth/openssl_handles.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstring>

namespace gwtf::auth {

namespace {

// OpenSSL's last error as text (and the queue cleared, so the next failure reports its own).
std::string ssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no detail from OpenSSL";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}


std::string bio_text(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<Cert, std::string> parse_cert(const std::string& pem, const char* what) {
  auto b = read_bio(pem);
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) return Err{std::string(what) + " is not a PEM certificate (" + ssl_error() + ")"};
  return c;
}

// The passphrase callback never prompts: an encrypted key without a passphrase is an error, not a TTY prompt.
int passphrase_cb(char* buf, int size, int, void* u) {
  const auto* pass = static_cast<const std::string*>(u);
  if (!pass || pass->empty() || static_cast<int>(pass->size()) > size) return 0;
  std::memcpy(buf, pass->data(), pass->size());
  return static_cast<int>(pass->size());
}

Result<Key, std::string> parse_key(const std::string& pem, const std::string& passphrase, const char* what) {
  auto b = read_bio(pem);
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, passphrase_cb, const_cast<std::string*>(&passphrase)));
  if (!k) {
    const std::string detail = ssl_error();
    if (pem.find("ENCRYPTED") != std::string::npos)
      return Err{std::string(what) + " is encrypted and does not open with " +
                 (passphrase.empty() ? std::string("no passphrase (give its passphrase)") : "the passphrase given") +
                 " (" + detail + ")"};
    return Err{std::string(what) + " is not a PEM private key (" + detail + ")"};
  }
  return k;
}

std::string name_entry(X509_NAME* name, int nid) {
  const int at = X509_NAME_get_index_by_NID(name, nid, -1);
  if (at < 0) return {};
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::time_t asn1_time(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

CertInfo info_of(X509* c) {
  return {name_entry(X509_get_subject_name(c), NID_commonName),
          name_entry(X509_get_subject_name(c), NID_organizationName), asn1_time(X509_get0_notAfter(c))};
}

Result<bool, std::string> add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ext ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return Err{"cannot add a certificate extension: " + ssl_error()};
  return true;
}

// A certificate for `key`, named (cn, o), valid from `now` for `days` days, signed by `issuer_key` (the issuer's
// name from `issuer`, or its own name when self-signed).
Result<Cert, std::string> make_cert(EVP_PKEY* key, const std::string& cn, const std::string& org, int days,
                                    std::time_t now, X509* issuer, EVP_PKEY* issuer_key, bool is_ca) {
  Cert c(X509_new());
  if (!c) return Err{"out of memory: " + ssl_error()};
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return Err{"no randomness for a serial number: " + ssl_error()};
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  X509_time_adj_ex(X509_getm_notBefore(c.get()), 0, -300, &now);  // five minutes of clock skew tolerated
  X509_time_adj_ex(X509_getm_notAfter(c.get()), days, 0, &now);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* issuer_cert = issuer ? issuer : c.get();
  auto ok = add_ext(c.get(), issuer_cert, NID_basic_constraints,
                    is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE");
  if (ok) ok = add_ext(c.get(), issuer_cert, NID_key_usage,
                       is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  if (ok && !is_ca) ok = add_ext(c.get(), issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  if (ok) ok = add_ext(c.get(), issuer_cert, NID_subject_key_identifier, "hash");
  if (ok && issuer) ok = add_ext(c.get(), issuer_cert, NID_authority_key_identifier, "keyid:always");
  if (!ok) return Err{ok.error()};
  if (X509_sign(c.get(), issuer_key, EVP_sha256()) == 0) return Err{"cannot sign the certificate: " + ssl_error()};
  return c;
}

Result<KeyPair, std::string> to_pem(X509* cert, EVP_PKEY* key, const std::string& passphrase) {
  Bio cb(BIO_new(BIO_s_mem())), kb(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(cb.get(), cert) != 1) return Err{"cannot write the certificate: " + ssl_error()};
  const int written =
      passphrase.empty()
          ? PEM_write_bio_PrivateKey(kb.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
          : PEM_write_bio_PrivateKey(kb.get(), key, EVP_aes_256_cbc(),
                                     reinterpret_cast<const unsigned char*>(passphrase.data()),
                                     static_cast<int>(passphrase.size()), nullptr, nullptr);
  if (written != 1) return Err{"cannot write the private key: " + ssl_error()};
  return KeyPair{bio_text(cb.get()), bio_text(kb.get())};
}

Result<Key, std::string> new_key() {
  Key k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) return Err{"cannot generate a P-256 key: " + ssl_error()};
  return k;
}

bool printable_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) return false;
  return true;
}

}  // namespace

struct SwarmCa::Impl {
  Cert cert;
  CertInfo info;
};

struct NodeCredentials::Impl {
  std::string cert_pem;
  CertInfo info;
  Key key;
};

Result<KeyPair, std::string> create_ca(const std::string& swarm, int days, std::time_t now) {
  if (!printable_name(swarm)) return Err{"swarm name '" + swarm + "': 1-64 letters, digits, '-', '_' or '.'"};
  if (days < 1) return Err{std::string("a CA must be valid for at least one day")};
  auto key = new_key();
  if (!key) return Err{key.error()};
  auto cert = make_cert(key->get(), swarm + " CA", swarm, days, now, nullptr, key->get(), true);
  if (!cert) return Err{cert.error()};
  return to_pem(cert->get(), key->get(), "");
}

Result<KeyPair, std::string> issue_node(const KeyPair& ca, const std::string& ca_passphrase,
                                        const std::string& node_name, int days, const std::string& passphrase,
                                        std::time_t now) {
  if (!printable_name(node_name))
    return Err{"node name '" + node_name + "': 1-64 letters, digits, '-', '_' or '.'"};
  if (days < 1) return Err{std::string("a certificate must be valid for at least one day")};
  auto ca_cert = parse_cert(ca.cert_pem, "the CA certificate");
  if (!ca_cert) return Err{ca_cert.error()};
  auto ca_key = parse_key(ca.key_pem, ca_passphrase, "the CA key");
  if (!ca_key) return Err{ca_key.error()};
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1)
    return Err{std::string("the CA key does not belong to the CA certificate")};
  const CertInfo ca_info = info_of(ca_cert->get());
  auto key = new_key();
  if (!key) return Err{key.error()};
  auto cert = make_cert(key->get(), node_name, ca_info.swarm, days, now, ca_cert->get(), ca_key->get(), false);
  if (!cert) return Err{cert.error()};
  return to_pem(cert->get(), key->get(), passphrase);
}

uint64_t derive_node_id(std::string_view name, uint64_t incarnation) {
  std::string input = "gwtf-node-id\n";
  input.append(name.data(), name.size());
  input += '\n';
  for (int k = 0; k < 8; ++k) input += static_cast<char>((incarnation >> (8 * k)) & 0xff);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(input.data(), input.size(), digest, &n, EVP_sha256(), nullptr);
  uint64_t id = 0;
  for (int k = 0; k < 8; ++k) id = (id << 8) | digest[k];
  return (id & 0x7fffffffffffull) | 1;  // the same range as the ids gwtf-node derives without certificates
}

std::string proof_payload(uint64_t swarm_id, uint64_t node_id, uint64_t incarnation, std::string_view audience) {
  std::string p = "gwtf-proof-v1\n";
  for (uint64_t v : {swarm_id, node_id, incarnation})
    for (int k = 0; k < 8; ++k) p += static_cast<char>((v >> (8 * k)) & 0xff);
  p.append(audience.data(), audience.size());
  return p;
}

Result<SwarmCa, std::string> SwarmCa::load(const std::string& ca_pem) {
  auto cert = parse_cert(ca_pem, "the swarm CA file");
  if (!cert) return Err{cert.error()};
  if (X509_check_ca(cert->get()) == 0)
    return Err{std::string("the swarm CA file holds a certificate that is not a CA")};
  auto impl = std::make_shared<Impl>();
  impl->info = info_of(cert->get());
  impl->cert = std::move(cert).value();
  if (impl->info.swarm.empty()) return Err{std::string("the swarm CA certificate names no swarm (organisation)")};
  SwarmCa ca;
  ca.impl_ = std::move(impl);
  return ca;
}

const std::string& SwarmCa::swarm() const { return impl_->info.swarm; }

Result<CertInfo, std::string> SwarmCa::verify_certificate(const std::string& cert_pem, std::time_t now) const {
  auto cert = parse_cert(cert_pem, "the certificate");
  if (!cert) return Err{cert.error()};
  Store store(X509_STORE_new());
  StoreCtx ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), impl_->cert.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1)
    return Err{"cannot set up verification: " + ssl_error()};
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), now);
  if (X509_verify_cert(ctx.get()) != 1) {
    ERR_clear_error();
    return Err{std::string("the certificate does not verify against the swarm '") + swarm() +
               "' CA: " + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))};
  }
  CertInfo info = info_of(cert->get());
  if (info.swarm != swarm())
    return Err{"the certificate is of swarm '" + info.swarm + "', not '" + swarm() + "'"};
  if (!printable_name(info.name)) return Err{"the certificate's name '" + info.name + "' is not a node name"};
  return info;
}

Result<CertInfo, std::string> SwarmCa::verify_proof(const std::string& cert_pem, uint64_t node_id,
                                                    uint64_t incarnation, const std::string& signature,
                                                    uint64_t swarm_id, std::string_view audience,
                                                    std::time_t now) const {
  auto info = verify_certificate(cert_pem, now);
  if (!info) return info;
  if (derive_node_id(info->name, incarnation) != node_id)
    return Err{"node id " + std::to_string(node_id) + " is not the id of certificate '" + info->name + "'"};
  auto cert = parse_cert(cert_pem, "the certificate");
  if (!cert) return Err{cert.error()};
  EVP_PKEY* pub = X509_get0_pubkey(cert->get());
  MdCtx md(EVP_MD_CTX_new());
  const std::string payload = proof_payload(swarm_id, node_id, incarnation, audience);
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, pub) != 1 ||
      EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                       reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) != 1) {
    ERR_clear_error();
    return Err{"the proof's signature is not by the key of certificate '" + info->name + "'"};
  }
  return info;
}

Result<NodeCredentials, std::string> NodeCredentials::load(const SwarmCa& ca, const std::string& cert_pem,
                                                           const std::string& key_pem, const std::string& passphrase,
                                                           std::time_t now) {
  auto cert = parse_cert(cert_pem, "the node certificate");
  if (!cert) return Err{cert.error()};
  auto key = parse_key(key_pem, passphrase, "the node key");
  if (!key) return Err{key.error()};
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return Err{std::string("the node key does not belong to the node certificate")};
  }
  auto info = ca.verify_certificate(cert_pem, now);
  if (!info) return Err{"the node certificate: " + info.error()};
  auto impl = std::make_shared<Impl>();
  impl->cert_pem = cert_pem;
  impl->info = std::move(info).value();
  impl->key = std::move(key).value();
  NodeCredentials c;
  c.impl_ = std::move(impl);
  return c;
}

const CertInfo& NodeCredentials::info() const { return impl_->info; }
const std::string& NodeCredentials::cert_pem() const { return impl_->cert_pem; }

std::string NodeCredentials::sign(std::string_view data) const {
  MdCtx md(EVP_MD_CTX_new());
  size_t n = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return {};
  std::string sig(n, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &n,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return {};
  sig.resize(n);
  return sig;
}

}  // namespace gwtf::auth
