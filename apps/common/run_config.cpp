#include "apps/common/run_config.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <toml++/toml.h>

#include <algorithm>
#include <sstream>

#include "kernels/model/preset.hpp"

namespace gwtf::app {

void RunConfig::declare(ConfigSchema& s) {
  s.text("model.arch", arch, {"gpt", "llama"});
  s.text("model.preset", preset);
  s.integer("model.seed", model_seed, uint64_t{0}, uint64_t{INT64_MAX});
  s.integer("train.iterations", iterations, int64_t{1}, int64_t{100000000});
  s.integer("train.microbatches", microbatches, 1u, 100000u);
  s.integer("train.microbatch_size", microbatch_size, int64_t{1}, int64_t{100000});
  s.integer("train.seq_len", seq_len, int64_t{1}, int64_t{1} << 20);
  s.number("train.lr", lr, 1e-12, 10);
  s.integer("train.data_seed", data_seed, uint64_t{0}, uint64_t{INT64_MAX});
  s.integer("train.in_flight", in_flight, 1u, 100000u);
  s.texts("train.data", data, "file or directory names");
  s.integer("swarm.holders", holders, 1u, 1000u);
  s.integers("swarm.replicas", replicas, 1, 1000, "[2, 2, 2] (founders per relay stage)");
  s.integer("swarm.swarm_id", swarm_id, uint64_t{0}, uint64_t{INT64_MAX});
}

Result<void*, std::string> RunConfig::load_toml(const std::string& path) {
  ConfigSchema s;
  declare(s);
  if (auto ok = s.load(path); !ok) return ok;
  return validate();
}

Result<void*, std::string> RunConfig::validate() const {
  if (arch != "gpt" && arch != "llama") return Err{"model.arch: '" + arch + "' is not gpt or llama"};
  const auto shape = model::preset(preset);
  if (!shape) return Err{"model.preset: unknown preset '" + preset + "' (tiny, small, 124m, 500m or 1.5b)"};
  if (seq_len > shape->seq_len)
    return Err{"train.seq_len: " + std::to_string(seq_len) + " is over the preset's context of " +
               std::to_string(shape->seq_len)};
  if (replicas.empty()) return Err{std::string("swarm.replicas: at least one relay stage")};
  if (replicas.size() > static_cast<size_t>(shape->layers))
    return Err{"swarm.replicas: " + std::to_string(replicas.size()) + " relay stages but the model has only " +
               std::to_string(shape->layers) + " blocks to cut"};
  return nullptr;
}

void RunConfig::add_flags(CLI::App& app) {
  app.add_option("--arch", arch, "Model family: gpt | llama")->check(CLI::IsMember({"gpt", "llama"}));
  app.add_option("--model", preset, "Model preset: tiny | small | 124m | 500m | 1.5b");
  app.add_option("--iterations", iterations, "Optimizer steps of the run")->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--microbatches", microbatches, "Microbatches per iteration")->check(CLI::Range(1, 100000));
  app.add_option("--microbatch-size", microbatch_size, "Sequences per microbatch")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--seq", seq_len, "Sequence length (at most the preset's context)");
  app.add_option("--lr", lr, "Peak learning rate (AdamW, warm-up then cosine)");
  app.add_option("--data", data, "Training text: files or directories (default: Debian's fortunes corpus)");
  app.add_option("--in-flight", in_flight, "Microbatches a data holder keeps in the pipeline")
      ->check(CLI::Range(1, 100000));
  app.add_option("--holders", holders, "Founding data holders of the swarm")->check(CLI::Range(1, 1000));
  app.add_option("--replicas", replicas, "Founding replicas per relay stage, e.g. 2,2,2 (also sets the cut)")
      ->delimiter(',');
}

std::string RunConfig::to_toml() const {
  std::ostringstream o;
  o << "[model]\narch = \"" << arch << "\"\npreset = \"" << preset << "\"\nseed = " << model_seed << "\n\n[train]\n"
    << "iterations = " << iterations << "\nmicrobatches = " << microbatches << "\nmicrobatch_size = " << microbatch_size
    << "\nseq_len = " << seq_len << "\nlr = " << toml::value<double>(lr) << "\ndata_seed = " << data_seed
    << "\nin_flight = " << in_flight << "\ndata = [";
  for (size_t k = 0; k < data.size(); ++k) o << (k ? ", " : "") << toml::value<std::string>(data[k]);
  o << "]\n\n[swarm]\nholders = " << holders << "\nreplicas = [";
  for (size_t k = 0; k < replicas.size(); ++k) o << (k ? ", " : "") << replicas[k];
  o << "]\nswarm_id = " << swarm_id << "\n";
  return o.str();
}

train::TrainParams RunConfig::params() const {
  train::TrainParams p;
  p.relay_stages = static_cast<train::Stage>(replicas.size());
  p.microbatches = microbatches;
  p.iterations = static_cast<train::Iter>(iterations);
  p.max_in_flight = in_flight;
  return p;
}

model::ModelConfig RunConfig::model() const {
  model::ModelConfig m;
  m.arch = arch == "gpt" ? model::Arch::kGpt : model::Arch::kLlama;
  m.shape = *model::preset(preset);
  m.shape.vocab = 256;
  m.tied_head = arch == "gpt";
  m.seed = model_seed;
  return m;
}

model::AdamWConfig RunConfig::optimizer() const {
  model::AdamWConfig o;
  o.lr = lr;
  o.total_steps = iterations;
  o.warmup_steps = std::min<int64_t>(100, std::max<int64_t>(1, iterations / 10));
  return o;
}

model::TrainOptions RunConfig::reference_options() const {
  model::TrainOptions t;
  t.model = model();
  t.relay_stages = static_cast<int>(replicas.size());
  t.iterations = iterations;
  t.microbatches = static_cast<int>(microbatches);
  t.microbatch_size = microbatch_size;
  t.seq_len = seq_len;
  t.data_seed = data_seed;
  t.optimizer = optimizer();
  t.validation_microbatches = 0;
  return t;
}

uint64_t RunConfig::fingerprint(const std::vector<int32_t>& tokens) const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    for (size_t k = 0; k < n; ++k) h = (h ^ static_cast<const unsigned char*>(p)[k]) * 1099511628211ull;
  };
  std::ostringstream o;
  o << arch << '|' << preset << '|' << model_seed << '|' << iterations << '|' << microbatches << '|' << microbatch_size
    << '|' << seq_len << '|' << lr << '|' << data_seed << '|' << holders << '|' << swarm_id;
  for (auto r : replicas) o << ',' << r;
  const std::string s = o.str();
  mix(s.data(), s.size());
  mix(tokens.data(), tokens.size() * sizeof(int32_t));
  return h;
}

NodeOptions node_options(const RunConfig& c, const std::vector<int32_t>& tokens) {
  NodeOptions opt;
  opt.layout = c.layout();
  opt.params = c.params();
  opt.config_hash = c.fingerprint(tokens);
  opt.swarm_id = c.swarm_id;
  opt.compute.model = c.model();
  opt.compute.optimizer = c.optimizer();
  opt.compute.relay_stages = static_cast<int>(c.replicas.size());
  opt.compute.microbatch_size = c.microbatch_size;
  opt.compute.seq_len = c.seq_len;
  opt.compute.data_seed = c.data_seed;
  opt.compute.stream = &tokens;
  return opt;
}

void set_compute_threads(int threads) {
  at::set_num_threads(threads);
  // Looked up, not linked: the BLAS in use is whatever Debian's alternatives give LibTorch.
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(threads);
}

Result<model::Corpus, std::string> load_corpus(const RunConfig& c) {
  auto files = c.data.empty() ? model::default_corpus_files() : c.data;
  if (files.empty())
    return Err{std::string("no training data: pass --data FILE|DIR, or run scripts/setup to install the default "
                           "corpus (Debian package 'fortunes')")};
  return model::Corpus::from_files(files, 0.05);
}

}  // namespace gwtf::app
