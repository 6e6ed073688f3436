// `gwtf swarm create` and `gwtf swarm issue`: a swarm's certificate authority and its nodes' credentials
// (kernels/auth). The CA's key is the whole admission boundary of the swarm: keep it off the nodes.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace gwtf::app {

class SwarmCommand {
 public:
  explicit SwarmCommand(CLI::App& app);
  bool parsed() const { return swarm_->parsed(); }
  int run() const;  // the process's exit code

 private:
  CLI::App* swarm_ = nullptr;
  CLI::App* create_ = nullptr;
  CLI::App* issue_ = nullptr;
  std::string name, out, ca_dir, passphrase_file;
  int ca_days = 3650, node_days = 90;
};

}  // namespace gwtf::app
