// gwtf: the main job. `gwtf demo` runs a local churn-tolerant training swarm of gwtf-node processes; train-local,
// eval and export work on one machine. Every subcommand shares the --log-level convention.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdlib>
#include <iostream>

#include "apps/common/config_file.hpp"
#include "apps/common/logging.hpp"
#include "apps/gwtf/build_info.hpp"
#include "apps/gwtf/demo.hpp"
#include "apps/gwtf/ledger_command.hpp"
#include "apps/gwtf/swarm_command.hpp"
#include "kernels/model/evaluate.hpp"
#include "kernels/model/hf_export.hpp"
#include "kernels/model/reference_trainer.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gwtf — churn-tolerant decentralized training of LLMs (GWTF, arXiv 2509.21221)"};
  app.require_subcommand(1);
  gwtf::app::LogOptions log;
  gwtf::app::add_log_flags(app, log);
  int threads = 1;
  app.add_option("--threads", threads, "LibTorch intra-op threads (default 1: best on 2-core hosts)")
      ->check(CLI::Range(1, 256));

  auto* demo = app.add_subcommand("demo", "Run a local swarm of gwtf-node processes that trains the tiny GPT while a "
                                          "relay dies mid-backward and a fresh node joins; report in runs/<time>/");
  gwtf::app::RunConfig demo_run;
  gwtf::app::DemoOptions demo_options;
  demo->add_flag("--quick", demo_options.quick, "The same story in fewer iterations (under 2 minutes; CI runs it)");
  demo->add_flag("--no-churn", demo_options.no_churn, "No crash and no join: the swarm alone");
  demo->add_option("--out", demo_options.out, "Run directory (default runs/<time>)");
  demo->add_option("--fault", demo_options.fault, "What churn: kill (SIGKILL mid-backward), stop (SIGSTOP: a hang, "
                                                  "found by heartbeats), term (graceful leave), kill-holder")
      ->capture_default_str()->check(CLI::IsMember({"kill", "stop", "term", "kill-holder"}));
  demo->add_option("--timeout", demo_options.timeout,
                   "Seconds before the swarm is stopped (default: 5 per iteration, at least 270; quick 150)");
  demo->add_option("--iterations", demo_run.iterations, "Iterations of the run")->check(CLI::Range(int64_t{2}, int64_t{100000}));
  gwtf::app::SwarmCommand swarm(app);
  std::vector<std::string> ledger_files;
  uint32_t ledger_microbatches = 0;
  uint64_t ledger_iterations = 0;
  auto* ledger = app.add_subcommand("ledger", "The exactly-once check of a finished swarm from its nodes' event logs "
                                              "(gwtf-node --events): lost and duplicated microbatches, as JSON; exit "
                                              "1 when any, or when an iteration was not stepped");
  ledger->add_option("files", ledger_files, "Every node's JSON-lines event log")->required();
  ledger->add_option("--microbatches", ledger_microbatches, "Microbatches per iteration of the run")->required();
  ledger->add_option("--iterations", ledger_iterations, "Iterations of the run")->required();
  auto* info = app.add_subcommand("info", "Print the build configuration: library versions, BLAS, threads");

  gwtf::model::TrainOptions train;
  std::string arch = "gpt", preset = "tiny";
  std::vector<std::string> data;
  int report_every = 10;
  auto* local = app.add_subcommand("train-local", "Train on this machine with the reference (monolithic) loop");
  local->add_option("--arch", arch, "gpt | llama")->capture_default_str()->check(CLI::IsMember({"gpt", "llama"}));
  local->add_option("--preset", preset, "tiny | small | 124m | 500m | 1.5b")->capture_default_str();
  local->add_option("--iterations", train.iterations, "Optimizer steps")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  local->add_option("--microbatches", train.microbatches, "Microbatches per iteration")->capture_default_str()
      ->check(CLI::Range(1, 100000));
  local->add_option("--microbatch-size", train.microbatch_size, "Sequences per microbatch")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  local->add_option("--seq", train.seq_len, "Sequence length (default: the preset's context)");
  local->add_option("--stages", train.relay_stages, "Relay stages the blocks are cut into (clipping is per stage)")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  local->add_option("--seed", train.model.seed, "Run seed: initial weights")->capture_default_str();
  local->add_option("--data-seed", train.data_seed, "Data seed: which microbatches")->capture_default_str();
  local->add_option("--lr", train.optimizer.lr, "Peak learning rate (AdamW)")->capture_default_str();
  local->add_option("--data", data, "Text files or directories (default: Debian's fortunes corpus)");
  std::string tokenizer_file;
  local->add_option("--tokenizer", tokenizer_file,
                    "SentencePiece model file (spm_train's X.model); the model's vocabulary becomes its size "
                    "(default: bytes, 256)");
  local->add_option("--resume", train.resume_dir,
                    "Continue from the checkpoints in DIR (same preset, stages and --iterations schedule)");
  local->add_option("--save", train.save_dir, "Directory for per-stage checkpoints");
  local->add_option("--save-every", train.save_every, "Also checkpoint every K iterations");
  local->add_option("--report-every", report_every, "Print a progress line every K iterations")->capture_default_str();

  std::string eval_dir;
  std::vector<std::string> eval_data;
  int64_t max_windows = 0;
  auto* eval = app.add_subcommand("eval", "Mean next-token loss of a checkpointed model over a text");
  eval->add_option("--checkpoint", eval_dir, "Directory of stage-*.ckpt files (train-local --save); required");
  eval->add_option("--data", eval_data, "Text files or directories; required");
  eval->add_option("--max-windows", max_windows, "At most this many windows of the context length (0: all)")
      ->capture_default_str();
  std::string eval_tokenizer;
  eval->add_option("--tokenizer", eval_tokenizer, "The SentencePiece model the checkpoint was trained with");

  std::string export_from, export_to;
  auto* exp = app.add_subcommand("export", "Write a checkpointed model as Hugging Face model.safetensors + config.json "
                                           "(GPT2LMHeadModel / LlamaForCausalLM)");
  exp->add_option("--checkpoint", export_from, "Directory of stage-*.ckpt files; required");
  exp->add_option("--out", export_to, "Output directory (created); required");

  // --config FILE (every subcommand): [demo] and the demo swarm's [model], [train], [swarm]; [train-local], [eval]
  // and [export] hold those subcommands' flags by name (--microbatch-size: microbatch_size). Flags override it.
  gwtf::app::ConfigSchema schema;
  demo_run.declare(schema);
  demo_options.declare(schema);
  schema.flags("train-local", *local);
  schema.flags("eval", *eval);
  schema.flags("export", *exp);
  std::string config_file;
  for (auto* sub : {demo, local, eval, exp})
    sub->add_option("--config", config_file, "TOML file: [demo] with the swarm's [model], [train], [swarm], and "
                                             "[train-local], [eval], [export] by flag name (docs/config.md); flags "
                                             "override it");
  {
    auto ok = schema.load_from_args(argc, argv);
    if (ok) ok = demo_run.validate();
    if (!ok) {
      std::fprintf(stderr, "gwtf: %s\n", ok.error().c_str());
      return 2;
    }
  }
  CLI11_PARSE(app, argc, argv);
  if (auto ok = schema.apply_flags(); !ok) {
    std::fprintf(stderr, "gwtf: %s\n", ok.error().c_str());
    return 2;
  }
  try {
    gwtf::app::setup_logging(log, "gwtf");
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
  at::set_num_threads(threads);
  // OpenMP reads its wait policy when the library loads, before main: with more than one thread and the default
  // (active) policy, idle workers spin and steal the other core. One thread has no idle workers.
  if (threads > 1 && !std::getenv("OMP_WAIT_POLICY"))
    spdlog::warn("--threads {} without OMP_WAIT_POLICY=PASSIVE in the environment: idle OpenMP threads will spin "
                 "(export it, as scripts/run-demo does)", threads);

  // Required, from the command line or the file.
  if ((eval->parsed() && (eval_dir.empty() || eval_data.empty())) ||
      (exp->parsed() && (export_from.empty() || export_to.empty()))) {
    const bool e = eval->parsed();
    std::fprintf(stderr, "gwtf %s: %s are required (flags, or keys of [%s] in --config)\n", e ? "eval" : "export",
                 e ? "--checkpoint and --data" : "--checkpoint and --out", e ? "eval" : "export");
    return 2;
  }
  if (swarm.parsed()) return swarm.run();
  if (ledger->parsed()) return gwtf::app::run_ledger(ledger_files, ledger_microbatches, ledger_iterations);
  if (exp->parsed()) {
    auto model = gwtf::model::load_model(export_from);
    if (!model) {
      spdlog::error("{}", model.error());
      return 2;
    }
    auto done = gwtf::model::export_hugging_face(*model, export_to);
    if (!done) {
      spdlog::error("{}", done.error());
      return 1;
    }
    std::printf("exported %s: %zu tensors, %lld parameters (iteration %llu) to %s/model.safetensors + config.json\n",
                done->architecture.c_str(), done->tensors, static_cast<long long>(done->parameters),
                static_cast<unsigned long long>(model->iteration), export_to.c_str());
    return 0;
  }

  if (eval->parsed()) {
    auto model = gwtf::model::load_model(eval_dir);
    if (!model) {
      spdlog::error("{}", model.error());
      return 2;
    }
    auto tokenizer = gwtf::model::Tokenizer::load(eval_tokenizer);
    if (!tokenizer) {
      spdlog::error("{}", tokenizer.error());
      return 2;
    }
    if (tokenizer->vocab() != model->config.shape.vocab) {
      spdlog::error("the model has a vocabulary of {} but the tokenizer {} (pass the --tokenizer it was trained with)",
                    model->config.shape.vocab, tokenizer->describe());
      return 2;
    }
    auto corpus = gwtf::model::Corpus::from_files(eval_data, 0.0, *tokenizer);
    if (!corpus) {
      spdlog::error("{}", corpus.error());
      return 2;
    }
    auto r = gwtf::model::evaluate(*model, corpus->train, max_windows);
    if (!r) {
      spdlog::error("{}", r.error());
      return 2;
    }
    std::printf("mean next-token loss %.4f over %lld windows of %lld tokens (iteration %llu)\n", r->mean_loss,
                static_cast<long long>(r->windows), static_cast<long long>(model->config.shape.seq_len),
                static_cast<unsigned long long>(model->iteration));
    return 0;
  }

  if (local->parsed()) {
    const auto shape = gwtf::model::preset(preset);
    if (!shape) {
      spdlog::error("unknown preset '{}': expected tiny, small, 124m, 500m or 1.5b", preset);
      return 2;
    }
    train.model.arch = arch == "gpt" ? gwtf::model::Arch::kGpt : gwtf::model::Arch::kLlama;
    train.model.shape = *shape;
    auto tokenizer = gwtf::model::Tokenizer::load(tokenizer_file);
    if (!tokenizer) {
      spdlog::error("{}", tokenizer.error());
      return 2;
    }
    train.model.shape.vocab = tokenizer->vocab();
    train.model.tied_head = arch == "gpt";
    train.optimizer.total_steps = train.iterations;
    train.optimizer.warmup_steps = std::min<int64_t>(100, std::max<int64_t>(1, train.iterations / 10));
    if (!gwtf::app::blas_is_openblas()) spdlog::warn("BLAS is not OpenBLAS: training runs ~17x slower (scripts/setup)");
    if (data.empty()) data = gwtf::model::default_corpus_files();
    if (data.empty()) {
      spdlog::error("no training data: pass --data FILE|DIR, or run scripts/setup to install the default corpus "
                    "(Debian package 'fortunes')");
      return 2;
    }
    auto corpus = gwtf::model::Corpus::from_files(data, 0.05, *tokenizer);
    if (!corpus) {
      spdlog::error("{}", corpus.error());
      return 2;
    }
    spdlog::info("train-local: {} {} ({} blocks, d={}), tokenizer {}, {} train / {} validation tokens, {} "
                 "iterations x {} microbatches x {} sequences",
                 arch, preset, shape->layers, shape->d_model, tokenizer->describe(), corpus->train.size(),
                 corpus->validation.size(),
                 train.iterations, train.microbatches, train.microbatch_size);
    auto result = gwtf::model::train_local(train, *corpus, [&](const gwtf::model::IterationReport& r) {
      if ((r.iteration + 1) % report_every == 0 || r.iteration == 0 || r.iteration + 1 == train.iterations)
        std::printf("iter %6lld  loss %.4f  tokens/s %8.0f  grad-norm %.3f\n", static_cast<long long>(r.iteration + 1),
                    r.loss, r.tokens_per_s, r.grad_norm);
      std::fflush(stdout);
    });
    if (!result) {
      spdlog::error("{}", result.error());
      return 1;
    }
    if (result->first_iteration > 0)
      spdlog::info("resumed at iteration {} from {}", result->first_iteration, train.resume_dir);
    std::printf("done in %.1f s: final loss %.4f, validation loss %.4f%s%s\n", result->seconds,
                result->losses.empty() ? std::nan("") : result->losses.back(), result->validation_loss, train.save_dir.empty() ? "" : ", checkpoints in ",
                train.save_dir.c_str());
    return 0;
  }

  if (demo->parsed()) return gwtf::app::run_demo(demo_run, demo_options);
  std::cout << gwtf::app::describe_build();
  (void)info;
  return 0;
}
