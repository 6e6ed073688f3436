#include "kernels/model/tokenizer.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels/model/data.hpp"

namespace gwtf::model {

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `command` (stderr folded into the error), returns its standard output.
Result<std::string, std::string> run(const std::string& command) {
  const std::string err_file = std::filesystem::temp_directory_path() / ("gwtf-spm-" + std::to_string(getpid()) + ".err");
  FILE* p = popen((command + " 2>" + shell_quote(err_file)).c_str(), "r");
  if (!p) return Err{"cannot run: " + command};
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  std::ifstream err(err_file);
  std::string why((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  std::filesystem::remove(err_file);
  if (status != 0) {
    if (why.find("not found") != std::string::npos || status == 127 << 8)
      return Err{"SentencePiece tools are missing: run scripts/setup (Debian package 'sentencepiece')"};
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return Err{why.empty() ? "'" + command + "' failed" : why};
  }
  return out;
}

// A unique temporary file holding `text`, removed with the object.
struct TempText {
  std::string path;
  explicit TempText(std::string_view text) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("gwtf-spm-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".txt");
    std::ofstream(path, std::ios::binary).write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  ~TempText() { std::filesystem::remove(path); }
};

}  // namespace

Tokenizer Tokenizer::bytes() { return Tokenizer(); }

Result<Tokenizer, std::string> Tokenizer::sentencepiece(const std::string& model_file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_file, ec))
    return Err{"tokenizer model '" + model_file + "' does not exist"};
  auto vocab = run("spm_export_vocab --model=" + shell_quote(model_file));
  if (!vocab) return Err{"tokenizer model '" + model_file + "' is not a SentencePiece model: " + vocab.error()};
  Tokenizer t;
  t.model_file_ = model_file;
  t.vocab_ = 0;
  for (char c : *vocab) t.vocab_ += c == '\n';
  if (t.vocab_ == 0) return Err{"tokenizer model '" + model_file + "' has no pieces"};
  return t;
}

Result<Tokenizer, std::string> Tokenizer::load(const std::string& model_file) {
  if (model_file.empty()) return bytes();
  return sentencepiece(model_file);
}

Result<std::vector<int32_t>, std::string> Tokenizer::encode(std::string_view text) const {
  if (model_file_.empty()) return ByteTokenizer::encode(text);
  TempText input(text);
  auto out = run("spm_encode --output_format=id --model=" + shell_quote(model_file_) + " " + shell_quote(input.path));
  if (!out) return Err{out.error()};
  std::vector<int32_t> ids;
  std::istringstream in(*out);
  for (int64_t id; in >> id;) {
    if (id < 0 || id >= vocab_) return Err{"spm_encode returned id " + std::to_string(id) + " outside the vocabulary"};
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

Result<std::string, std::string> Tokenizer::decode(const std::vector<int32_t>& tokens) const {
  if (model_file_.empty()) return ByteTokenizer::decode(tokens);
  std::string line;
  for (auto t : tokens) line += std::to_string(t) + " ";
  TempText input(line + "\n");
  auto out = run("spm_decode --input_format=id --model=" + shell_quote(model_file_) + " " + shell_quote(input.path));
  if (!out) return Err{out.error()};
  if (!out->empty() && out->back() == '\n') out->pop_back();
  return out;
}

std::string Tokenizer::describe() const {
  if (model_file_.empty()) return "bytes (256)";
  return "sentencepiece " + model_file_ + " (" + std::to_string(vocab_) + " pieces)";
}

}  // namespace gwtf::model
