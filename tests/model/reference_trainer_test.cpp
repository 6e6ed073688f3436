// The reference trainer learns: on a small fixture the loss falls far below where the same run without updates
// stays, and a checkpoint lands for every stage.
#include "kernels/model/reference_trainer.hpp"

#include "kernels/model/evaluate.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

namespace gwtf::model {
namespace {

TrainOptions options(double lr) {
  TrainOptions o;
  o.model.shape = *preset("tiny");
  o.relay_stages = 2;
  o.iterations = 40;
  o.microbatches = 2;
  o.microbatch_size = 4;
  o.seq_len = 32;
  o.optimizer.lr = lr;
  o.optimizer.warmup_steps = 5;
  o.optimizer.total_steps = 40;
  return o;
}

double mean_of_last(const std::vector<double>& v, size_t n) {
  return std::accumulate(v.end() - static_cast<long>(n), v.end(), 0.0) / static_cast<double>(n);
}

TEST(ReferenceTrainer, TinyModelLearnsTheFixture) {
  const auto corpus = Corpus::from_files({std::string(GWTF_TEST_FIXTURES) + "/tiny.txt"}, 0.1).value();
  auto trained = options(3e-3);
  trained.save_dir = ::testing::TempDir() + "/train-local";
  auto frozen = train_local(options(0.0), corpus);
  auto learned = train_local(trained, corpus);
  ASSERT_TRUE(frozen.ok()) << frozen.error();
  ASSERT_TRUE(learned.ok()) << learned.error();
  const double start = learned->losses.front();
  EXPECT_NEAR(start, std::log(256.0), 0.5);  // a fresh model guesses bytes uniformly
  EXPECT_NEAR(mean_of_last(frozen->losses, 5), start, 0.3) << "without updates the loss must stay put";
  EXPECT_LT(mean_of_last(learned->losses, 5), 0.6 * start) << "the loss did not fall";
  for (const char* f : {"stage-start.ckpt", "stage-1.ckpt", "stage-2.ckpt", "stage-end.ckpt"})
    EXPECT_TRUE(std::filesystem::exists(trained.save_dir + "/" + f)) << f;

  // gwtf eval: the saved model, reloaded, scores the fixture far below a uniform guess.
  auto model = load_model(trained.save_dir);
  ASSERT_TRUE(model.ok()) << model.error();
  EXPECT_EQ(model->iteration, 40u);
  EXPECT_EQ(model->relays.size(), 2u);
  auto scored = evaluate(*model, corpus.train, 2);
  ASSERT_TRUE(scored.ok()) << scored.error();
  EXPECT_EQ(scored->windows, 2);
  EXPECT_LT(scored->mean_loss, 0.6 * std::log(256.0));
}

TEST(ReferenceTrainer, ResumingFromACheckpointEqualsNotStopping) {
  const auto corpus = Corpus::from_files({std::string(GWTF_TEST_FIXTURES) + "/tiny.txt"}, 0.1).value();
  auto whole = options(3e-3);
  whole.iterations = 8;
  whole.optimizer.total_steps = 8;
  auto first = whole, second = whole;
  first.iterations = 4;  // the same schedule, stopped half-way
  first.save_dir = second.resume_dir = ::testing::TempDir() + "/train-local-resume";
  auto uninterrupted = train_local(whole, corpus);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.error();
  ASSERT_TRUE(train_local(first, corpus).ok());
  auto resumed = train_local(second, corpus);
  ASSERT_TRUE(resumed.ok()) << resumed.error();
  EXPECT_EQ(resumed->first_iteration, 4);
  ASSERT_EQ(resumed->losses.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(resumed->losses[i], uninterrupted->losses[4 + i]) << "iteration " << 4 + i;

  auto other_cut = second;
  other_cut.relay_stages = 1;
  auto refused = train_local(other_cut, corpus);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("cannot resume"), std::string::npos) << refused.error();
}

TEST(Evaluate, MissingOrIncompleteCheckpointsAreErrors) {
  EXPECT_NE(load_model("/nonexistent").error().find("does not exist"), std::string::npos);
  const auto dir = ::testing::TempDir() + "/partial";
  std::filesystem::create_directories(dir);
  auto o = options(1e-3);
  o.iterations = 1;
  o.save_dir = dir;
  const auto corpus = Corpus::from_text(std::string(2000, 'a'), 0.1).value();
  ASSERT_TRUE(train_local(o, corpus).ok());
  std::filesystem::remove(dir + "/stage-2.ckpt");
  const auto err = load_model(dir);
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.error().find("cover"), std::string::npos) << err.error();
}

TEST(ReferenceTrainer, ContextLongerThanTheModelsIsAnError) {
  auto o = options(1e-3);
  o.seq_len = 4096;
  auto r = train_local(o, Corpus::from_text(std::string(5000, 'a'), 0.1).value());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("exceeds"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace gwtf::model
