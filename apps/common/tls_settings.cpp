#include "apps/common/tls_settings.hpp"

#include <spdlog/spdlog.h>

#include <ctime>
#include <random>

namespace gwtf::app {

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void TlsSettings::declare(ConfigSchema& schema) {
  schema.text("node.tls", dir);
  schema.text("node.key_passphrase_file", key_passphrase_file);
}

void TlsSettings::add_flags(CLI::App& app) {
  app.add_option("--tls", dir,
                 "Directory with this node's swarm credentials: ca.pem (the swarm CA), node.pem and node.key "
                 "(`gwtf swarm issue` writes them). Every connection is then mutual TLS, and the node id comes from "
                 "the certificate. Without it the node speaks plain text, on loopback addresses only");
  app.add_option("--key-passphrase-file", key_passphrase_file,
                 "File whose first line is the passphrase of an encrypted node.key");
}

Result<std::shared_ptr<const SwarmTls>, std::string> TlsSettings::load(
    const std::string& listen_host, const std::vector<std::pair<std::string, uint16_t>>& seeds) const {
  if (dir.empty()) {
    std::vector<std::string> outside;
    if (!is_loopback(listen_host)) outside.push_back("--listen " + listen_host);
    for (const auto& [host, port] : seeds)
      if (!is_loopback(host)) outside.push_back("--seed " + host);
    if (!outside.empty()) {
      std::string list;
      for (const auto& o : outside) list += (list.empty() ? "" : ", ") + o;
      return Err{"no swarm credentials (--tls DIR) and an address beyond loopback (" + list +
                 "): plain text is for loopback development only. Make credentials with `gwtf swarm create` and "
                 "`gwtf swarm issue` (docs/operations.md)"};
    }
    spdlog::warn("plain-text mode: no authentication, no encryption (loopback development only; --tls DIR for a real "
                 "swarm)");
    return std::shared_ptr<const SwarmTls>();
  }
  std::string passphrase;
  if (!key_passphrase_file.empty()) {
    auto read = read_passphrase_file(key_passphrase_file);
    if (!read) return Err{"--key-passphrase-file: " + read.error()};
    passphrase = std::move(read).value();
  }
  std::random_device rd;  // the incarnation only has to differ between starts; it decides nothing else
  const uint64_t incarnation = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(std::time(nullptr));
  return SwarmTls::load(dir + "/ca.pem", dir + "/node.pem", dir + "/node.key", passphrase, incarnation,
                        std::time(nullptr));
}

}  // namespace gwtf::app
