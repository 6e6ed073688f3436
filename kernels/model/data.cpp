#include "kernels/model/data.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels/base/rng.hpp"

namespace gwtf::model {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) {
  std::vector<int32_t> out(text.size());
  std::transform(text.begin(), text.end(), out.begin(), [](char c) { return static_cast<unsigned char>(c); });
  return out;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& tokens) {
  std::string out(tokens.size(), '\0');
  std::transform(tokens.begin(), tokens.end(), out.begin(), [](int32_t t) { return static_cast<char>(t & 0xFF); });
  return out;
}

Result<Corpus, std::string> Corpus::from_text(std::string_view text, double validation_fraction,
                                              const Tokenizer& tokenizer) {
  if (!(validation_fraction >= 0 && validation_fraction < 1))
    return Err{"validation fraction must be in [0, 1), got " + std::to_string(validation_fraction)};
  if (text.empty()) return Err{std::string("the corpus is empty")};
  auto encoded = tokenizer.encode(text);
  if (!encoded) return Err{encoded.error()};
  auto tokens = std::move(encoded).value();
  if (tokens.empty()) return Err{"the corpus encodes to no tokens with " + tokenizer.describe()};
  const auto split = tokens.size() - static_cast<size_t>(validation_fraction * static_cast<double>(tokens.size()));
  Corpus c;
  c.validation.assign(tokens.begin() + static_cast<long>(split), tokens.end());
  tokens.resize(split);
  c.train = std::move(tokens);
  return c;
}

Result<Corpus, std::string> Corpus::from_files(const std::vector<std::string>& paths, double validation_fraction,
                                               const Tokenizer& tokenizer) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::recursive_directory_iterator(p, ec))
        if (e.is_regular_file()) found.push_back(e.path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      return Err{"data path '" + p + "' is neither a file nor a directory"};
    }
  }
  if (files.empty()) return Err{std::string("no data files found")};
  std::ostringstream text;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return Err{"cannot read data file '" + f.string() + "'"};
    text << in.rdbuf() << '\n';
  }
  return from_text(text.str(), validation_fraction, tokenizer);
}

Result<Microbatch, std::string> sample_microbatch(const std::vector<int32_t>& stream, uint64_t seed,
                                                  uint64_t iteration, uint32_t microbatch, int64_t batch,
                                                  int64_t seq) {
  if (batch < 1 || seq < 1) return Err{std::string("batch and sequence length must be positive")};
  if (static_cast<int64_t>(stream.size()) < seq + 1)
    return Err{"the token stream has " + std::to_string(stream.size()) + " tokens, a window needs " +
               std::to_string(seq + 1)};
  // One independent stream per (seed, iteration, microbatch): splitmix over the three, nothing global.
  Rng rng(Rng(Rng(seed).next_u64() ^ iteration).next_u64() ^ (uint64_t{microbatch} * 0x9E3779B97F4A7C15ull));
  Microbatch m;
  m.batch = batch;
  m.seq = seq;
  m.tokens.reserve(static_cast<size_t>(batch * seq));
  m.targets.reserve(static_cast<size_t>(batch * seq));
  const uint64_t starts = stream.size() - static_cast<uint64_t>(seq);
  for (int64_t b = 0; b < batch; ++b) {
    const auto at = static_cast<size_t>(rng.below(starts));
    for (int64_t t = 0; t < seq; ++t) {
      m.tokens.push_back(stream[at + static_cast<size_t>(t)]);
      m.targets.push_back(stream[at + static_cast<size_t>(t) + 1]);
    }
  }
  return m;
}

}  // namespace gwtf::model
