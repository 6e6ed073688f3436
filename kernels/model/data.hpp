// Training data as pure functions (DESIGN §2, second rule): microbatch k of iteration i is determined by
// (data seed, i, k) and the corpus alone, so any data holder can regenerate any microbatch — a crashed holder's
// microbatches are redone elsewhere, bit for bit. LibTorch-free: tokens are plain integers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/model/tokenizer.hpp"

namespace gwtf::model {

// Vocabulary of 256: a token is a byte of the UTF-8 text.
struct ByteTokenizer {
  static constexpr int64_t kVocab = 256;
  static std::vector<int32_t> encode(std::string_view text);
  static std::string decode(const std::vector<int32_t>& tokens);
};

// A token stream split once into training and validation parts: the last `validation_fraction` of the stream
// (whole files are concatenated in the order given, separated by a newline) is validation.
struct Corpus {
  std::vector<int32_t> train;
  std::vector<int32_t> validation;

  static Result<Corpus, std::string> from_text(std::string_view text, double validation_fraction,
                                               const Tokenizer& tokenizer = Tokenizer::bytes());
  // Every regular file in `paths` (files, or directories read recursively in sorted order); errors name the path.
  static Result<Corpus, std::string> from_files(const std::vector<std::string>& paths, double validation_fraction,
                                                const Tokenizer& tokenizer = Tokenizer::bytes());
};

struct Microbatch {
  int64_t batch = 0, seq = 0;
  std::vector<int64_t> tokens;   // batch x seq, row-major
  std::vector<int64_t> targets;  // tokens shifted by one: the next token of each position
};

// `batch` windows of seq+1 tokens at positions drawn from Rng(seed, iteration, microbatch); the stream needs at
// least seq+1 tokens.
Result<Microbatch, std::string> sample_microbatch(const std::vector<int32_t>& stream, uint64_t seed,
                                                  uint64_t iteration, uint32_t microbatch, int64_t batch,
                                                  int64_t seq);

}  // namespace gwtf::model
