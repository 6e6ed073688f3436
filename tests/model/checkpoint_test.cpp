// Per-stage checkpoints: exact resume, and a clear error for each way a file can be wrong.
#include "kernels/model/checkpoint.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

namespace gwtf::model {
namespace {

ModelConfig tiny(Arch arch = Arch::kGpt) {
  ModelConfig c;
  c.arch = arch;
  c.shape = *preset("tiny");
  c.seed = 3;
  return c;
}

const StageId kStage{StageModule::Kind::kBlocks, 1, 3};

void train_steps(StageModule& m, AdamW& opt, int steps, int offset) {
  for (int k = offset; k < offset + steps; ++k) {
    auto gen = at::detail::createCPUGenerator(100 + k);
    auto x = at::randn({2, 8, 128}, gen), g = at::randn({2, 8, 128}, gen);
    m.zero_grad();
    m.backward(x, g);
    opt.step();
  }
}

std::string path(const char* name) { return ::testing::TempDir() + "/" + name; }

std::string load_error(const std::string& file, const ModelConfig& cfg = tiny(), StageId stage = kStage) {
  auto m = StageModule::blocks(cfg, stage.first_block, stage.end_block);
  AdamW opt(m->named_parameters(), {});
  auto r = load_checkpoint(file, cfg, stage, *m, opt);
  return r.ok() ? "loaded" : r.error();
}

class Saved : public ::testing::Test {
 protected:
  void SetUp() override {
    module = StageModule::blocks(tiny(), 1, 3);
    opt = std::make_unique<AdamW>(module->named_parameters(), AdamWConfig{});
    train_steps(*module, *opt, 2, 0);
    ASSERT_EQ(save_checkpoint(file, tiny(), kStage, *module, *opt, 2), "");
  }
  std::vector<char> bytes() const {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  std::string write(const char* name, const std::vector<char>& b) const {
    const auto p = path(name);
    std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
    return p;
  }
  std::string file = path("stage.ckpt");
  std::unique_ptr<StageModule> module;
  std::unique_ptr<AdamW> opt;
};

TEST_F(Saved, ResumeIsExact) {
  auto resumed = StageModule::blocks(tiny(), 1, 3);
  AdamW resumed_opt(resumed->named_parameters(), {});
  auto it = load_checkpoint(file, tiny(), kStage, *resumed, resumed_opt);
  ASSERT_TRUE(it.ok()) << it.error();
  EXPECT_EQ(*it, 2u);
  train_steps(*module, *opt, 2, 2);
  train_steps(*resumed, resumed_opt, 2, 2);
  const auto a = module->named_parameters(), b = resumed->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
}

TEST_F(Saved, TruncatedFile) {
  auto b = bytes();
  b.resize(b.size() / 2);
  EXPECT_NE(load_error(write("truncated.ckpt", b)).find("truncated"), std::string::npos);
  b.resize(10);
  EXPECT_NE(load_error(write("tiny.ckpt", b)).find("truncated"), std::string::npos);
}

TEST_F(Saved, CorruptedByte) {
  auto b = bytes();
  b[b.size() / 2] ^= 0x40;
  EXPECT_NE(load_error(write("corrupt.ckpt", b)).find("corrupted"), std::string::npos);
}

TEST_F(Saved, NotACheckpoint) {
  auto b = bytes();
  b[0] = 'X';
  EXPECT_NE(load_error(write("magic.ckpt", b)).find("not a gwtf checkpoint"), std::string::npos);
  EXPECT_NE(load_error(path("missing.ckpt")).find("cannot be opened"), std::string::npos);
}

TEST_F(Saved, AnotherModelConfig) {
  const auto err = load_error(file, tiny(Arch::kLlama));
  EXPECT_NE(err.find("another model"), std::string::npos) << err;
  EXPECT_NE(err.find("gpt tiny"), std::string::npos) << err;
}

TEST_F(Saved, AnotherStage) {
  const auto err = load_error(file, tiny(), StageId{StageModule::Kind::kBlocks, 0, 2});
  EXPECT_NE(err.find("holds stage blocks [1, 3)"), std::string::npos) << err;
}

}  // namespace
}  // namespace gwtf::model
