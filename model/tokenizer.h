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
    // byte_offsets[i] = offset in the input of the first byte of token i (non-decreasing; token i
    // covers the input up to byte_offsets[i + 1]). Tokens a post-processor adds are not in the
    // input: those before the text sit at 0, those after it at the input's size.
    std::vector<int64_t> byte_offsets;
    // How many of `ids` the post-processor added before and after the text's own tokens.
    int64_t added_before = 0;
    int64_t added_after = 0;
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // A whole text, as the `tokenizers` package's encode(text, add_special_tokens=True): the
    // text's tokens with what the tokenizer.json's post_processor adds around them (a BOS, say).
    // For scoring and analysing a text. Never throws on any byte sequence.
    Encoding encode(std::string_view text) const;
    // A piece of a longer stream, as encode(text, add_special_tokens=False): the text's tokens
    // only, so that corpus blocks and document separators do not each get a BOS. Never throws:
    // bytes that are not valid UTF-8 still encode (byte-level BPE covers every byte).
    virtual Encoding encode_fragment(std::string_view text) const = 0;
    // Ids the post-processor puts before and after a whole text (none for most tokenizers).
    virtual const std::vector<int64_t>& ids_before() const;
    virtual const std::vector<int64_t>& ids_after() const;
    // True when decode(encode_fragment(s).ids) == s for every s and each byte offset is the
    // running sum of token lengths: false only for a tokenizer.json that drops text (a Split
    // with behavior "Removed") or absorbs it (added tokens with lstrip or rstrip).
    virtual bool lossless() const { return true; }
    // The exact bytes of the tokens.
    virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
    // The bytes of one token (for display); throws Error for an id outside [0, vocab_size).
    virtual std::string token_bytes(int64_t id) const = 0;
    virtual int64_t vocab_size() const = 0;
    // "bytes" or "bpe": the value stored as "tokenizer" in a checkpoint's config.json.
    virtual std::string kind() const = 0;
};

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Loads a Hugging Face tokenizer.json with model.type == "BPE" and a ByteLevel pre-tokenizer
// (GPT-2 style), optionally after Split pre-tokenizers, with added tokens and a post-processor
// (TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel or a Sequence of them), all
// giving the ids the `tokenizers` package gives. Throws Error naming the file and the field for
// anything else: a field that would change the ids and is not implemented is refused, never
// ignored (normalizers, BPE dropout, truncation, padding, ...).
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::filesystem::path& tokenizer_json);

// The tokenizer a checkpoint folder names: "bytes" -> built in, "bpe" -> DIR/tokenizer.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& kind, const std::filesystem::path& checkpoint_dir);

}  // namespace harmonic
