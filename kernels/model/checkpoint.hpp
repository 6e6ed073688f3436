// Per-stage checkpoints: weights, optimizer state, iteration, the model config and a hash of it, under a checksum.
// Saving writes a temporary file and renames it, so a crash never leaves half a checkpoint under the real name.
// Loading refuses, with an error naming the problem, a missing, truncated or corrupted file, another format
// version, a checkpoint of another model config or stage, and tensors of the wrong shape — before touching the
// module or the optimizer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kernels/base/result.hpp"
#include "kernels/model/optimizer.hpp"
#include "kernels/model/stage_module.hpp"

namespace gwtf::model {

uint64_t config_hash(const ModelConfig& cfg);

struct StageId {
  StageModule::Kind kind = StageModule::Kind::kBlocks;
  int first_block = 0, end_block = 0;
};

// Returns "" on success, else what went wrong.
std::string save_checkpoint(const std::string& path, const ModelConfig& cfg, const StageId& stage,
                            const StageModule& module, const AdamW& optimizer, uint64_t iteration);

// What a checkpoint holds, read without loading its tensors (after the same integrity checks as a load).
struct CheckpointInfo {
  ModelConfig config;  // seed is not stored: 0
  StageId stage;
  uint64_t iteration = 0;
};
Result<CheckpointInfo, std::string> read_checkpoint_info(const std::string& path);

// The same checkpoint as bytes in memory (a joining replica's state transfer), and back; `what` names the bytes
// in errors. Decoding checks as much as loading a file does.
std::string encode_checkpoint(const ModelConfig& cfg, const StageId& stage, const StageModule& module,
                              const AdamW& optimizer, uint64_t iteration);
Result<uint64_t, std::string> decode_checkpoint(std::string_view bytes, const std::string& what, const ModelConfig& cfg,
                                                const StageId& stage, StageModule& module, AdamW& optimizer);

// Loads into `module` and `optimizer` (which must be built for `cfg` and `stage`); returns the iteration.
Result<uint64_t, std::string> load_checkpoint(const std::string& path, const ModelConfig& cfg, const StageId& stage,
                                              StageModule& module, AdamW& optimizer);

}  // namespace gwtf::model
