// Test credentials: a swarm CA and node credentials on disk (CAF's OpenSSL module and the bulk data path read
// files), removed at the end.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "actors/peer_auth.hpp"
#include "kernels/auth/swarm_identity.hpp"

namespace gwtf::testing {

class Credentials {
 public:
  explicit Credentials(const std::string& tag)
      : swarm_ca(auth::create_ca(tag + "-test", 2, std::time(nullptr)).value()),
        rogue_ca(auth::create_ca(tag + "-test", 2, std::time(nullptr)).value()),
        dir_(std::filesystem::temp_directory_path() / ("gwtf-" + tag + "-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
  }
  ~Credentials() { std::filesystem::remove_all(dir_); }

  // Node `name`'s credentials from the CA `ca` (the swarm's, or a rogue one of the same swarm name).
  std::shared_ptr<const SwarmTls> issue(const std::string& name, const auth::KeyPair& ca) {
    auto kp = auth::issue_node(ca, "", name, 2, "", std::time(nullptr)).value();
    const auto d = dir_ / name;
    std::filesystem::create_directories(d);
    write(d / "ca.pem", ca.cert_pem);
    write(d / "node.pem", kp.cert_pem);
    write(d / "node.key", kp.key_pem);
    auto tls = SwarmTls::load((d / "ca.pem").string(), (d / "node.pem").string(), (d / "node.key").string(), "",
                              ++incarnation_, std::time(nullptr));
    EXPECT_TRUE(tls) << tls.error();
    return tls.value();
  }
  std::shared_ptr<const SwarmTls> issue(const std::string& name) { return issue(name, swarm_ca); }

  const auth::KeyPair swarm_ca;
  const auth::KeyPair rogue_ca;  // of the same swarm name: a stranger with a certificate

 private:
  static void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }
  std::filesystem::path dir_;
  uint64_t incarnation_ = 0;
};

}  // namespace gwtf::testing
