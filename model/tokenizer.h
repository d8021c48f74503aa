// Tokenizers: byte-level (vocab 256, built in) and GPT-2 style byte-level BPE loaded from a
// Hugging Face tokenizer.json. No torch here: the tokenizers are fuzzed and tested on their own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace harmonic {

struct Encoding {
    std::vector<int64_t> ids;
    // byte_offsets[i] = offset in the input of the first byte of token i (strictly increasing).
    std::vector<int64_t> byte_offsets;
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Never throws on any byte sequence: bytes that are not valid UTF-8 still encode
    // (byte-level BPE covers every byte), so scoring a file never loses a byte.
    virtual Encoding encode(std::string_view text) const = 0;
    // The exact bytes of the tokens; decode(encode(s).ids) == s for every s.
    virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
    // The bytes of one token (for display); throws Error for an id outside [0, vocab_size).
    virtual std::string token_bytes(int64_t id) const = 0;
    virtual int64_t vocab_size() const = 0;
    // "bytes" or "bpe": the value stored as "tokenizer" in a checkpoint's config.json.
    virtual std::string kind() const = 0;
};

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Loads a Hugging Face tokenizer.json with model.type == "BPE" and a ByteLevel pre-tokenizer
// (GPT-2 style). Merges may be strings "a b" or pairs ["a","b"]. Throws Error naming the file
// and the problem for anything else (missing fields, unknown merge token, invalid JSON, ...).
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::filesystem::path& tokenizer_json);

// The tokenizer a checkpoint folder names: "bytes" -> built in, "bpe" -> DIR/tokenizer.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& kind, const std::filesystem::path& checkpoint_dir);

}  // namespace harmonic
