// apps/common/config_file: one TOML file for every binary — typed keys, keys mirroring a binary's flags, flags
// over the file, and errors that name the file, the key and the expected form.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "apps/common/config_file.hpp"

namespace gwtf::app {
namespace {

std::string write(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

struct Settings {
  int64_t iterations = 60;
  uint32_t threads = 1;
  double lr = 1e-3;
  std::string role = "auto";
  std::vector<std::string> seeds;
  std::vector<uint32_t> replicas{2, 2};
  bool quick = false;
  void declare(ConfigSchema& s) {
    s.integer("train.iterations", iterations, int64_t{1}, int64_t{1000});
    s.integer("node.threads", threads, 1u, 64u);
    s.number("train.lr", lr, 1e-9, 1.0);
    s.text("node.role", role, {"data", "relay", "auto"});
    s.texts("node.seeds", seeds, "HOST:PORT strings");
    s.integers("swarm.replicas", replicas, 1, 100, "[2, 2]");
    s.boolean("demo.quick", quick);
  }
};

TEST(ConfigFile, ReadsEveryFormOfKey) {
  Settings s;
  ConfigSchema schema;
  s.declare(schema);
  auto ok = schema.load(write("good.toml", R"([train]
iterations = 12
lr = 1          # an integer is a number too
[node]
threads = 4
role = "relay"
seeds = ["a:1", "b:2"]
[swarm]
replicas = [3, 1, 2]
[demo]
quick = true
)"));
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(s.iterations, 12);
  EXPECT_EQ(s.threads, 4u);
  EXPECT_EQ(s.lr, 1.0);
  EXPECT_EQ(s.role, "relay");
  EXPECT_EQ(s.seeds, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(s.replicas, (std::vector<uint32_t>{3, 1, 2}));
  EXPECT_TRUE(s.quick);
  EXPECT_EQ(schema.keys().size(), 7u);
}

TEST(ConfigFile, EveryErrorNamesTheFileTheKeyAndTheForm) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"[train]\niterations = 0\n", "key 'train.iterations' must be an integer in 1..1000"},
      {"[train]\niterations = 1.5\n", "key 'train.iterations' must be an integer in 1..1000"},
      {"[train]\niterations = \"12\"\n", "key 'train.iterations' must be an integer in 1..1000"},
      {"[node]\nthreads = -1\n", "key 'node.threads' must be an integer in 1..64"},
      {"[train]\nlr = 5\n", "key 'train.lr' must be a number in 1e-09..1"},
      {"[node]\nrole = \"boss\"\n", "key 'node.role' must be one of \"data, relay, auto\""},
      {"[node]\nseeds = \"a:1\"\n", "key 'node.seeds' must be a list of HOST:PORT strings"},
      {"[node]\nseeds = [\"a:1\", 2]\n", "key 'node.seeds' must be a list of HOST:PORT strings"},
      {"[swarm]\nreplicas = []\n", "key 'swarm.replicas' must be a non-empty list of integers in 1..100, e.g. [2, 2]"},
      {"[swarm]\nreplicas = [1, 0]\n", "key 'swarm.replicas' must be a non-empty list of integers in 1..100"},
      {"[demo]\nquick = 1\n", "key 'demo.quick' must be true or false"},
      {"[train]\niteration = 3\n", "unknown key 'train.iteration' (known in [train]: iterations, lr)"},
      {"[trains]\niterations = 3\n", "unknown section [trains] (known here: demo, node, swarm, train)"},
      {"iterations = 3\n", "key 'iterations' is outside any section; keys belong in one of [demo, node, swarm, train]"},
      {"[train\niterations = 3\n", "bad.toml: "},  // a syntax error: toml++'s description and where
  };
  for (const auto& [text, want] : cases) {
    Settings s;
    ConfigSchema schema;
    s.declare(schema);
    const std::string path = write("bad.toml", text);
    auto r = schema.load(path);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
    EXPECT_NE(r.error().find(want), std::string::npos) << "for:\n" << text << "got: " << r.error();
  }
  ConfigSchema schema;
  EXPECT_FALSE(schema.load("/nonexistent/gwtf.toml").ok());
}

// A binary whose settings are its flags: `flow --nodes N --geo --replicas a,b --loss-rate x`, with the file's
// [flow] section mirrored onto them.
struct SimFlags {
  CLI::App app{"test"};
  CLI::App* flow = app.add_subcommand("flow");
  int nodes = 40;
  bool geo = false;
  std::vector<int> replicas{1};
  double loss = 0;
  ConfigSchema schema;
  SimFlags() {
    flow->add_option("--nodes", nodes)->check(CLI::Range(2, 1000));
    flow->add_flag("--geo", geo);
    flow->add_option("--replicas", replicas)->delimiter(',');
    flow->add_option("--loss-rate", loss);
    schema.flags("flow", *flow);
  }
  // The file first, then the command line, then the file's values onto the flags the command line left out.
  Result<void*, std::string> run(const std::string& path, const std::string& command_line) {
    if (auto ok = schema.load(path); !ok) return ok;
    app.parse(command_line, false);
    return schema.apply_flags();
  }
};

TEST(ConfigFile, MirroredFlagsTakeTheFileUnlessTheCommandLineGivesThem) {
  const std::string path = write("flags.toml", "[flow]\nnodes = 100\ngeo = true\nreplicas = [2, 3]\nloss_rate = 0.25\n");
  SimFlags f;
  ASSERT_TRUE(f.run(path, "flow").ok());
  EXPECT_EQ(f.nodes, 100);
  EXPECT_TRUE(f.geo);
  EXPECT_EQ(f.replicas, (std::vector<int>{2, 3}));
  EXPECT_EQ(f.loss, 0.25);
  SimFlags g;
  ASSERT_TRUE(g.run(path, "flow --nodes 7").ok());
  EXPECT_EQ(g.nodes, 7) << "the flag overrides the file";
  EXPECT_TRUE(g.geo);
}

TEST(ConfigFile, AMirroredFlagsValueIsCheckedByTheFlagsOwnCheck) {
  SimFlags f;
  const std::string path = write("range.toml", "[flow]\nnodes = 1\n");
  auto r = f.run(path, "flow");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find(path + ": key 'flow.nodes' (flag --nodes): "), std::string::npos) << r.error();
  SimFlags g;
  auto u = g.run(write("unknown.toml", "[flow]\nnode = 3\n"), "flow");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().find("unknown key 'flow.node' (known in [flow]: geo, loss_rate, nodes, replicas)"),
            std::string::npos) << u.error();
}

}  // namespace
}  // namespace gwtf::app
