// libFuzzer harness for BPE encoding (model/bpe_tokenizer.cpp) on the fixture tokenizers, which
// match the reference `tokenizers` package token for token (tests/test_tokenizer.cpp). For any
// bytes at all, invalid UTF-8 included:
//   decode(encode(x)) == x, every id in [0, vocab_size), token bytes non-empty,
//   byte_offsets[i] == the sum of the lengths of tokens 0..i-1,
//   and encoding twice (the second time from the piece cache) gives the same ids.
// The prefix-space fixture inserts bytes by design, and the fixtures with a Removed split or
// stripping added tokens drop some; there only ids and offsets are checked.
#include "model/tokenizer.h"

#include "fuzz_common.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* harness = "fuzz_bpe_roundtrip";

struct Fixture {
    std::string name;
    std::unique_ptr<harmonic::Tokenizer> tok;
    bool exact;
};

std::vector<Fixture> load_fixtures() {
    const std::filesystem::path dir = std::filesystem::path(HARMONIC_FIXTURES) / "tokenizer";
    std::vector<Fixture> out;
    for (const char* name : {"tokenizer.json", "tokenizer_no_regex.json", "tokenizer_split.json", "tokenizer_pairs.json",
                             "tokenizer_ignore_merges.json", "tokenizer_prefix_space.json", "tokenizer_added.json",
                             "tokenizer_template.json", "tokenizer_split_removed.json", "tokenizer_split_merged_previous.json",
                             "tokenizer_split_merged_next.json", "tokenizer_split_contiguous.json", "tokenizer_split_empty_match.json"}) {
        auto tok = harmonic::load_bpe_tokenizer(dir / name);
        const bool exact = std::string_view(name) != "tokenizer_prefix_space.json" && tok->lossless();
        out.push_back({name, std::move(tok), exact});
    }
    return out;
}

void check(const Fixture& f, std::string_view text) {
    const harmonic::Tokenizer& tok = *f.tok;
    const harmonic::Encoding e = tok.encode_fragment(text);
    auto fail = [&](const std::string& what) { harmonic_fuzz::bug(harness, f.name + ": " + what); };
    if (e.ids.size() != e.byte_offsets.size()) fail("ids and byte_offsets differ in length");
    int64_t at = 0, previous = -1;
    for (std::size_t i = 0; i < e.ids.size(); ++i) {
        if (e.ids[i] < 0 || e.ids[i] >= tok.vocab_size()) fail("id " + std::to_string(e.ids[i]) + " out of range");
        const std::string bytes = tok.token_bytes(e.ids[i]);
        if (bytes.empty()) fail("a token with no bytes");
        if (f.exact) {
            if (e.byte_offsets[i] != at) fail("byte offset " + std::to_string(i) + " is not the running sum");
            if (text.compare(static_cast<std::size_t>(at), bytes.size(), bytes) != 0) fail("token bytes differ from the input");
            at += static_cast<int64_t>(bytes.size());
        } else {
            if (e.byte_offsets[i] < previous || e.byte_offsets[i] >= static_cast<int64_t>(text.size()))
                fail("byte offsets decrease or point past the input");
            previous = e.byte_offsets[i];
        }
    }
    if (f.exact) {
        if (at != static_cast<int64_t>(text.size())) fail("tokens do not cover the input");
        if (tok.decode(e.ids) != text) fail("decode(encode(x)) != x");
    }
    if (tok.encode_fragment(text).ids != e.ids) fail("encoding twice differs (piece cache)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::vector<Fixture> fixtures = load_fixtures();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (const Fixture& f : fixtures) check(f, text);
    return 0;
}
