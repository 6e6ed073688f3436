#include "kernels/model/checkpoint.hpp"

#include <ATen/ATen.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "kernels/wire/tensor_codec.hpp"
#include "kernels/wire/tensor_fields.hpp"
#include "schema/gwtf.capnp.h"

namespace gwtf::model {

namespace {

constexpr char kMagic[8] = {'G', 'W', 'T', 'F', 'C', 'K', 'P', 'T'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderBytes = 32;  // magic, version (u32), reserved (u32), length (u64), checksum (u64)

uint64_t fnv1a(const char* data, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 1099511628211ull;
  return h;
}

std::string describe(const ModelConfig& c) {
  std::ostringstream s;
  s << (c.arch == Arch::kGpt ? "gpt" : "llama") << " " << c.shape.name << " d=" << c.shape.d_model
    << " layers=" << c.shape.layers << " heads=" << c.shape.heads << " seq=" << c.shape.seq_len
    << " vocab=" << c.shape.vocab << " ffn=" << c.shape.ffn_hidden << " tied=" << c.tied_head
    << " eps=" << c.norm_eps;
  return s.str();
}

std::string describe(const StageId& s) {
  switch (s.kind) {
    case StageModule::Kind::kStart: return "start";
    case StageModule::Kind::kEnd: return "end";
    case StageModule::Kind::kBlocks:
      return "blocks [" + std::to_string(s.first_block) + ", " + std::to_string(s.end_block) + ")";
  }
  return "?";
}

void fill_list(capnp::List<schema::NamedTensor>::Builder list,
               const std::vector<std::pair<std::string, at::Tensor>>& tensors, std::vector<wire::HeldTensor>& held,
               capnp::Orphanage orphanage) {
  for (unsigned i = 0; i < tensors.size(); ++i) {
    held.push_back(wire::hold_for_wire(tensors[i].second.detach()).value());
    list[i].setName(tensors[i].first);
    wire::fill_tensor(list[i].initTensor(), held.back().view, orphanage);
  }
}

// Checks a checkpoint's header, length and checksum; the message's words on success. `where` names it in errors.
Result<std::vector<capnp::word>, std::string> verify(std::string_view file, const std::string& where) {
  if (file.size() < kHeaderBytes) return Err{where + "truncated (" + std::to_string(file.size()) + " bytes)"};
  if (std::memcmp(file.data(), kMagic, 8) != 0) return Err{where + "not a gwtf checkpoint (bad magic)"};
  uint32_t version;
  uint64_t length, checksum;
  std::memcpy(&version, file.data() + 8, 4);
  std::memcpy(&length, file.data() + 16, 8);
  std::memcpy(&checksum, file.data() + 24, 8);
  if (version != kFormatVersion)
    return Err{where + "format version " + std::to_string(version) + ", this build reads " +
               std::to_string(kFormatVersion)};
  if (file.size() - kHeaderBytes < length)
    return Err{where + "truncated: " + std::to_string(file.size() - kHeaderBytes) + " of " + std::to_string(length) +
               " bytes"};
  if (file.size() - kHeaderBytes > length || length % 8 != 0) return Err{where + "has trailing or misaligned bytes"};
  if (fnv1a(file.data() + kHeaderBytes, length) != checksum) return Err{where + "corrupted (checksum mismatch)"};

  // Aligned copy of the message for Cap'n Proto, which reads words in place.
  std::vector<capnp::word> words(length / 8);
  std::memcpy(words.data(), file.data() + kHeaderBytes, length);
  return words;
}

Result<std::vector<capnp::word>, std::string> read_verified(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err{"checkpoint '" + path + "' cannot be opened"};
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return verify(file, "checkpoint '" + path + "': ");
}

}  // namespace

Result<CheckpointInfo, std::string> read_checkpoint_info(const std::string& path) {
  auto verified = read_verified(path);
  if (!verified) return Err{std::move(verified).error()};
  const auto& words = verified.value();
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 2 * words.size() + 64;
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()), options);
    auto ck = reader.getRoot<schema::StageCheckpoint>();
    auto r = ck.getConfig();
    auto shape = preset(r.getPreset().cStr());
    if (!shape) return Err{"checkpoint '" + path + "': unknown preset '" + r.getPreset().cStr() + "'"};
    CheckpointInfo info;
    info.config.arch = r.getArch() == 0 ? Arch::kGpt : Arch::kLlama;
    info.config.shape = *shape;
    info.config.tied_head = r.getTiedHead();
    info.config.norm_eps = r.getNormEps();
    info.config.seed = 0;
    if (config_hash(info.config) != ck.getConfigHash())
      return Err{"checkpoint '" + path + "': its config does not match the preset '" + r.getPreset().cStr() +
                 "' of this build"};
    info.stage = StageId{static_cast<StageModule::Kind>(ck.getStageKind()), ck.getFirstBlock(), ck.getEndBlock()};
    info.iteration = ck.getIteration();
    return info;
  } catch (const kj::Exception& e) {
    return Err{"checkpoint '" + path + "': malformed: " + e.getDescription().cStr()};
  }
}

uint64_t config_hash(const ModelConfig& cfg) {
  const std::string d = describe(cfg);
  return fnv1a(d.data(), d.size());
}

std::string encode_checkpoint(const ModelConfig& cfg, const StageId& stage, const StageModule& module,
                              const AdamW& optimizer, uint64_t iteration) {
  capnp::MallocMessageBuilder builder;
  auto ck = builder.initRoot<schema::StageCheckpoint>();
  ck.setConfigHash(config_hash(cfg));
  auto rec = ck.initConfig();
  rec.setArch(cfg.arch == Arch::kGpt ? 0 : 1);
  rec.setPreset(std::string(cfg.shape.name));
  rec.setDModel(cfg.shape.d_model);
  rec.setLayers(cfg.shape.layers);
  rec.setHeads(cfg.shape.heads);
  rec.setSeqLen(cfg.shape.seq_len);
  rec.setVocab(cfg.shape.vocab);
  rec.setFfnHidden(cfg.shape.ffn_hidden);
  rec.setTiedHead(cfg.tied_head);
  rec.setNormEps(cfg.norm_eps);
  ck.setStageKind(static_cast<uint8_t>(stage.kind));
  ck.setFirstBlock(stage.first_block);
  ck.setEndBlock(stage.end_block);
  ck.setIteration(iteration);
  std::vector<wire::HeldTensor> held;  // the builder references their bytes until written
  const auto params = module.named_parameters();
  const auto state = optimizer.state();
  fill_list(ck.initParameters(static_cast<unsigned>(params.size())), params, held, builder.getOrphanage());
  fill_list(ck.initOptimizer(static_cast<unsigned>(state.size())), state, held, builder.getOrphanage());

  const auto words = capnp::messageToFlatArray(builder);
  const auto bytes = words.asChars();
  char header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  std::memcpy(header + 8, &kFormatVersion, 4);
  const uint64_t length = bytes.size(), checksum = fnv1a(bytes.begin(), bytes.size());
  std::memcpy(header + 16, &length, 8);
  std::memcpy(header + 24, &checksum, 8);
  std::string out(header, kHeaderBytes);
  out.append(bytes.begin(), bytes.size());
  return out;
}

std::string save_checkpoint(const std::string& path, const ModelConfig& cfg, const StageId& stage,
                            const StageModule& module, const AdamW& optimizer, uint64_t iteration) {
  const std::string bytes = encode_checkpoint(cfg, stage, module, optimizer, iteration);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return "cannot write checkpoint '" + tmp + "'";
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) return "writing checkpoint '" + tmp + "' failed (disk full?)";
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return "cannot move checkpoint into place at '" + path + "'";
  return "";
}

Result<uint64_t, std::string> load_checkpoint(const std::string& path, const ModelConfig& cfg, const StageId& stage,
                                              StageModule& module, AdamW& optimizer) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err{"checkpoint '" + path + "' cannot be opened"};
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return decode_checkpoint(file, "checkpoint '" + path + "'", cfg, stage, module, optimizer);
}

Result<uint64_t, std::string> decode_checkpoint(std::string_view bytes, const std::string& what, const ModelConfig& cfg,
                                                const StageId& stage, StageModule& module, AdamW& optimizer) {
  const std::string where = what + ": ";
  auto verified = verify(bytes, where);
  if (!verified) return Err{std::move(verified).error()};
  std::vector<capnp::word> words = std::move(verified).value();
  std::map<std::string, at::Tensor> params, state;
  uint64_t iteration = 0;
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 2 * words.size() + 64;
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()), options);
    auto ck = reader.getRoot<schema::StageCheckpoint>();
    if (ck.getConfigHash() != config_hash(cfg)) {
      const auto r = ck.getConfig();
      return Err{where + "is for another model (" + (r.getArch() == 0 ? "gpt " : "llama ") +
                 std::string(r.getPreset().cStr()) + " d=" + std::to_string(r.getDModel()) +
                 " layers=" + std::to_string(r.getLayers()) + "), this run is " + describe(cfg)};
    }
    StageId got{static_cast<StageModule::Kind>(ck.getStageKind()), ck.getFirstBlock(), ck.getEndBlock()};
    if (got.kind != stage.kind || got.first_block != stage.first_block || got.end_block != stage.end_block)
      return Err{where + "holds stage " + describe(got) + ", expected " + describe(stage)};
    iteration = ck.getIteration();
    wire::DecodeOptions opts;
    for (auto [list, into] : {std::pair{ck.getParameters(), &params}, std::pair{ck.getOptimizer(), &state}})
      for (auto nt : list) {
        auto view = wire::read_tensor(nt.getTensor(), opts);
        if (!view) return Err{where + "tensor '" + nt.getName().cStr() + "': " + view.error().message};
        (*into)[nt.getName().cStr()] = wire::from_wire(*view, nullptr).clone();  // copy out of the message
      }
  } catch (const kj::Exception& e) {
    return Err{where + "malformed: " + e.getDescription().cStr()};
  }
  // Validate everything before changing anything.
  for (const auto& [name, p] : module.named_parameters()) {
    auto it = params.find(name);
    if (it == params.end()) return Err{where + "lacks parameter '" + name + "'"};
    if (!it->second.sizes().equals(p.sizes()) || it->second.scalar_type() != p.scalar_type())
      return Err{where + "parameter '" + name + "' has the wrong shape or dtype"};
  }
  const std::vector<std::pair<std::string, at::Tensor>> optimizer_state(state.begin(), state.end());
  if (auto err = optimizer.load_state(optimizer_state); !err.empty()) return Err{where + err};
  at::NoGradGuard no_grad;
  for (auto& [name, p] : module.named_parameters()) p.copy_(params.at(name));
  return iteration;
}

}  // namespace gwtf::model
