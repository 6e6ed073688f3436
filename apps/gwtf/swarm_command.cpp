#include "apps/gwtf/swarm_command.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "actors/peer_auth.hpp"
#include "kernels/auth/swarm_identity.hpp"
#include "kernels/base/result.hpp"

namespace gwtf::app {

namespace {

// Never overwrites: a CA key written over is a swarm lost. Keys are readable by their owner only.
Result<bool, std::string> write_new(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd < 0)
    return Err{path + ": " + (errno == EEXIST ? std::string("exists already (nothing was overwritten)")
                                              : std::string(std::strerror(errno)))};
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      return Err{path + ": " + std::strerror(errno)};
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return true;
}

Result<bool, std::string> make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Err{dir + ": " + ec.message()};
  return true;
}

}  // namespace

SwarmCommand::SwarmCommand(CLI::App& app) {
  swarm_ = app.add_subcommand("swarm", "A swarm's certificate authority and its nodes' credentials (mutual TLS; "
                                       "docs/operations.md)");
  swarm_->require_subcommand(1);
  create_ = swarm_->add_subcommand("create", "Create a swarm CA: OUT/ca.pem (give it to every node) and OUT/ca.key "
                                             "(keep it safe and off the nodes: whoever has it admits anyone)");
  create_->add_option("--name", name, "Swarm name (letters, digits, - _ .)")->required();
  create_->add_option("--out", out, "Directory for ca.pem and ca.key (created; existing files are never overwritten)")
      ->required();
  create_->add_option("--days", ca_days, "Validity in days")->capture_default_str()->check(CLI::Range(1, 36500));
  issue_ = swarm_->add_subcommand("issue", "Issue a node's credentials: OUT/ca.pem, OUT/node.pem, OUT/node.key — the "
                                           "directory gwtf-node --tls takes");
  issue_->add_option("--ca", ca_dir, "The directory `gwtf swarm create` wrote")->required();
  issue_->add_option("--node", name, "The node's name (its certificate's common name; its node id derives from it)")
      ->required();
  issue_->add_option("--out", out, "Directory for the node's files (created; existing files are never overwritten)")
      ->required();
  issue_->add_option("--days", node_days, "Validity in days (short-lived certificates are the revocation: there is no "
                                     "revocation list)")
      ->capture_default_str()->check(CLI::Range(1, 36500));
  issue_->add_option("--passphrase-file", passphrase_file,
                     "Encrypt node.key with the first line of this file (gwtf-node --key-passphrase-file then)");
}

int SwarmCommand::run() const {
  const std::time_t now = std::time(nullptr);
  auto fail = [](const std::string& why) {
    std::fprintf(stderr, "gwtf swarm: %s\n", why.c_str());
    return 2;
  };
  if (auto ok = make_dir(out); !ok) return fail(ok.error());
  if (create_->parsed()) {
    auto ca = auth::create_ca(name, ca_days, now);
    if (!ca) return fail(ca.error());
    if (auto ok = write_new(out + "/ca.key", ca->key_pem, 0600); !ok) return fail(ok.error());
    if (auto ok = write_new(out + "/ca.pem", ca->cert_pem, 0644); !ok) return fail(ok.error());
    std::printf("swarm '%s': CA written to %s/ca.pem (for every node) and %s/ca.key (keep it off the nodes), valid "
                "%d days\nnext: gwtf swarm issue --ca %s --node NAME --out DIR, once per node\n",
                name.c_str(), out.c_str(), out.c_str(), ca_days, out.c_str());
    return 0;
  }
  auth::KeyPair ca;
  auto cert = read_credential_file(ca_dir + "/ca.pem", "the CA certificate");
  auto key = read_credential_file(ca_dir + "/ca.key", "the CA key");
  if (!cert) return fail(cert.error());
  if (!key) return fail(key.error());
  ca = {cert.value(), key.value()};
  std::string passphrase;
  if (!passphrase_file.empty()) {
    auto read = read_passphrase_file(passphrase_file);
    if (!read) return fail(read.error());
    passphrase = std::move(read).value();
  }
  auto node = auth::issue_node(ca, "", name, node_days, passphrase, now);
  if (!node) return fail(node.error());
  if (auto ok = write_new(out + "/node.key", node->key_pem, 0600); !ok) return fail(ok.error());
  if (auto ok = write_new(out + "/node.pem", node->cert_pem, 0644); !ok) return fail(ok.error());
  if (auto ok = write_new(out + "/ca.pem", ca.cert_pem, 0644); !ok) return fail(ok.error());
  std::printf("node '%s': credentials in %s (ca.pem, node.pem, node.key%s), valid %d days\nstart it with: "
              "gwtf-node --tls %s ...\n",
              name.c_str(), out.c_str(), passphrase.empty() ? "" : ", encrypted", node_days, out.c_str());
  return 0;
}

}  // namespace gwtf::app
