#include "apps/common/run_config.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <toml++/toml.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "kernels/model/preset.hpp"

namespace gwtf::app {

namespace {

const std::map<std::string, std::set<std::string>> kKeys = {
    {"model", {"arch", "preset", "seed"}},
    {"train", {"iterations", "microbatches", "microbatch_size", "seq_len", "lr", "data_seed", "in_flight", "data"}},
    {"swarm", {"holders", "replicas", "swarm_id"}},
};

std::string known(const std::set<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "" : ", ") + k;
  return s;
}

}  // namespace

Result<void*, std::string> RunConfig::load_toml(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Err{path + ": " + std::string(e.description()) + " at " + where.str()};
  }
  std::string error;
  auto fail = [&](const std::string& key, const std::string& expected) {
    if (error.empty()) error = path + ": key '" + key + "' must be " + expected;
  };
  for (const auto& [section, node] : root) {
    const std::string name(section.str());
    auto keys = kKeys.find(name);
    if (keys == kKeys.end()) return Err{path + ": unknown section [" + name + "] (known: model, train, swarm)"};
    const auto* table = node.as_table();
    if (!table) return Err{path + ": '" + name + "' must be a table ([" + name + "])"};
    for (const auto& [key, value] : *table) {
      const std::string k(key.str()), full = name + "." + k;
      if (!keys->second.count(k))
        return Err{path + ": unknown key '" + full + "' (known in [" + name + "]: " + known(keys->second) + ")"};
      auto integer = [&](auto& out, int64_t lo, int64_t hi) {
        auto v = value.value<int64_t>();
        if (!v || *v < lo || *v > hi) return fail(full, "an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
        out = static_cast<std::decay_t<decltype(out)>>(*v);
      };
      auto text = [&](std::string& out) {
        auto v = value.value<std::string>();
        if (!v) return fail(full, "a string");
        out = *v;
      };
      if (full == "model.arch") text(arch);
      else if (full == "model.preset") text(preset);
      else if (full == "model.seed") integer(model_seed, 0, INT64_MAX);
      else if (full == "train.iterations") integer(iterations, 1, 100000000);
      else if (full == "train.microbatches") integer(microbatches, 1, 100000);
      else if (full == "train.microbatch_size") integer(microbatch_size, 1, 100000);
      else if (full == "train.seq_len") integer(seq_len, 1, 1 << 20);
      else if (full == "train.data_seed") integer(data_seed, 0, INT64_MAX);
      else if (full == "train.in_flight") integer(in_flight, 1, 100000);
      else if (full == "train.lr") {
        auto v = value.value<double>();
        if (!v || !(*v > 0)) fail(full, "a positive number");
        else lr = *v;
      } else if (full == "train.data") {
        const auto* list = value.as_array();
        data.clear();
        if (!list) fail(full, "a list of file or directory names");
        else
          for (const auto& e : *list) {
            auto v = e.value<std::string>();
            if (!v) fail(full, "a list of file or directory names");
            else data.push_back(*v);
          }
      } else if (full == "swarm.holders") integer(holders, 1, 1000);
      else if (full == "swarm.replicas") {
        const auto* list = value.as_array();
        replicas.clear();
        if (!list || list->empty()) fail(full, "a list of founders per relay stage, e.g. [2, 2, 2]");
        else
          for (const auto& e : *list) {
            auto v = e.value<int64_t>();
            if (!v || *v < 1 || *v > 1000) fail(full, "a list of integers in 1..1000");
            else replicas.push_back(static_cast<uint32_t>(*v));
          }
      } else if (full == "swarm.swarm_id") integer(swarm_id, 0, INT64_MAX);
    }
  }
  if (!error.empty()) return Err{error};
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
