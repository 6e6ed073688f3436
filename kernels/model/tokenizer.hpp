// Text to token ids and back: bytes by default (vocabulary 256, nothing to load), or a SentencePiece model when a
// file is given. The model's vocabulary size is the tokenizer's; a checkpoint trained with one tokenizer is
// evaluated with the same one (its vocabulary is checked). LibTorch-free.
//
// SentencePiece runs as Debian's `spm_encode` / `spm_decode` / `spm_export_vocab` tools, not as the linked
// library: Debian's libsentencepiece.so exports its own copy of protobuf-lite, which interposes the libprotobuf
// that LibTorch loads and crashes every LibTorch process at start-up (measured: docs/model.md). Tokenizing is
// done once per corpus, so a subprocess costs nothing that matters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/base/result.hpp"

namespace gwtf::model {

class Tokenizer {
 public:
  static Tokenizer bytes();
  // A SentencePiece model (`spm_train --model_prefix=X` writes X.model); errors name the file.
  static Result<Tokenizer, std::string> sentencepiece(const std::string& model_file);
  // "" selects bytes.
  static Result<Tokenizer, std::string> load(const std::string& model_file);

  int64_t vocab() const { return vocab_; }
  // SentencePiece encodes line by line: the ids of the lines follow one another (line breaks carry no token).
  Result<std::vector<int32_t>, std::string> encode(std::string_view text) const;
  Result<std::string, std::string> decode(const std::vector<int32_t>& tokens) const;
  std::string describe() const;  // "bytes (256)" or "sentencepiece FILE (N pieces)"

 private:
  Tokenizer() = default;
  std::string model_file_;  // empty: bytes
  int64_t vocab_ = 256;
};

}  // namespace gwtf::model
