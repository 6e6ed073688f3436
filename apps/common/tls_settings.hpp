// How a gwtf process proves its swarm membership: the directory `gwtf swarm issue` wrote (ca.pem, node.pem,
// node.key) and, for an encrypted key, a file holding its passphrase. Without them a node speaks plain text, which
// is for loopback development only: every address it listens on or connects to must be a loopback address.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "actors/peer_auth.hpp"
#include "apps/common/config_file.hpp"
#include "kernels/base/result.hpp"

namespace gwtf::app {

struct TlsSettings {
  std::string dir;                  // ca.pem, node.pem, node.key (gwtf swarm issue --out DIR)
  std::string key_passphrase_file;  // first line: the key's passphrase

  void declare(ConfigSchema& schema);  // [node] tls, key_passphrase_file
  void add_flags(CLI::App& app);       // --tls, --key-passphrase-file

  // The checked credentials (null: plain text, allowed only when every address is loopback). Errors say what is
  // wrong and what to do.
  Result<std::shared_ptr<const SwarmTls>, std::string> load(
      const std::string& listen_host, const std::vector<std::pair<std::string, uint16_t>>& seeds) const;
};

bool is_loopback(const std::string& host);

}  // namespace gwtf::app
