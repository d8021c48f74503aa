// libFuzzer harness for the tokenizer.json loader (model/bpe_tokenizer.cpp). load_bpe_tokenizer
// only takes a path, so each input is written to a file on tmpfs. Each input is used twice:
//  - as the file, byte for byte (JSON-level problems: syntax, nesting, odd values);
//  - as a recipe for a tokenizer.json built from well-formed JSON: a byte-level BPE with all
//    256 byte tokens, merges, added tokens and a pre-tokenizer chain, each part now and then
//    broken (missing or duplicate ids, merges of unknown tokens, huge ids, deep nesting, long
//    strings, Split regexes taken from the input). Random bytes alone almost never load.
// Either loading fails with harmonic::Error naming the file (short message), or the tokenizer
// loads, and then it must encode the rest of the input under the Tokenizer contract: ids in
// range, offsets the running sum of token lengths, decode(encode(x)) == x.
#include "model/tokenizer.h"

#include "fuzz_common.h"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

using nlohmann::json;

constexpr const char* harness = "fuzz_tokenizer_json";

// GPT-2's bytes_to_unicode, written out again here (the loader's own copy is not visible).
std::string mapped_byte(unsigned char b) {
    static const std::array<std::string, 256> table = [] {
        std::array<std::string, 256> t;
        char32_t next = 256;
        for (int c = 0; c < 256; ++c) {
            const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
            const char32_t cp = printable ? char32_t(c) : next++;
            std::string s;
            if (cp < 0x80) {
                s.push_back(static_cast<char>(cp));
            } else {
                s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
                s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
            }
            t[static_cast<std::size_t>(c)] = s;
        }
        return t;
    }();
    return table[b];
}

std::string mapped(std::string_view bytes) {
    std::string out;
    for (unsigned char b : bytes) out += mapped_byte(b);
    return out;
}

// The contract of Tokenizer::encode_fragment for any bytes (add_prefix_space inserts bytes, and a
// Removed split or a stripping added token drops some, so there only the ids and offsets are
// checked), and encode() is the post-processor's ids around it.
void check_encoding(const harmonic::Tokenizer& tok, std::string_view text, bool exact) {
    exact = exact && tok.lossless();
    const harmonic::Encoding e = tok.encode_fragment(text);
    if (e.ids.size() != e.byte_offsets.size()) harmonic_fuzz::bug(harness, "ids and byte_offsets differ in length");
    int64_t at = 0, previous = -1;
    for (std::size_t i = 0; i < e.ids.size(); ++i) {
        if (e.ids[i] < 0 || e.ids[i] >= tok.vocab_size())
            harmonic_fuzz::bug(harness, "id " + std::to_string(e.ids[i]) + " outside the vocabulary");
        const std::string bytes = tok.token_bytes(e.ids[i]);
        if (bytes.empty()) harmonic_fuzz::bug(harness, "encode produced a token with no bytes");
        if (exact) {
            if (e.byte_offsets[i] != at) harmonic_fuzz::bug(harness, "byte offset is not the running sum of token lengths");
            if (text.compare(static_cast<std::size_t>(at), bytes.size(), bytes) != 0)
                harmonic_fuzz::bug(harness, "token bytes differ from the input at their offset");
            at += static_cast<int64_t>(bytes.size());
        } else {
            if (e.byte_offsets[i] < previous || e.byte_offsets[i] >= static_cast<int64_t>(text.size()))
                harmonic_fuzz::bug(harness, "byte offsets decrease or point past the input");
            previous = e.byte_offsets[i];
        }
    }
    if (exact) {
        if (at != static_cast<int64_t>(text.size())) harmonic_fuzz::bug(harness, "tokens do not cover the input");
        if (tok.decode(e.ids) != text) harmonic_fuzz::bug(harness, "decode(encode(x)) != x");
    }
    // A second pass (the piece cache is warm now) must agree with the first.
    if (tok.encode_fragment(text).ids != e.ids) harmonic_fuzz::bug(harness, "encoding the same text twice differs");
    std::vector<int64_t> whole = tok.ids_before();
    whole.insert(whole.end(), e.ids.begin(), e.ids.end());
    whole.insert(whole.end(), tok.ids_after().begin(), tok.ids_after().end());
    if (tok.encode(text).ids != whole) harmonic_fuzz::bug(harness, "encode() is not the post-processor's ids around the fragment");
}

// Deep nesting is spliced into the text after dump(): a deep json value in memory would make the
// harness's own copies and dump() recurse once per level.
const char* const deep_marker = "@deep@";
int deep_levels = 0;

json deep(int levels) {
    deep_levels = levels;
    return deep_marker;
}

json pick_id(FuzzedDataProvider& in, int64_t plausible) {
    switch (in.ConsumeIntegralInRange(0, 12)) {
        case 0: return -1;
        case 1: return (int64_t{1} << 24) - 1;
        case 2: return int64_t{1} << 24;
        case 3: return ~uint64_t{0};
        case 4: return 1.5;
        case 5: return "7";
        case 6: return nullptr;
        case 7: return in.ConsumeIntegralInRange<int64_t>(0, 300);  // often a duplicate
        default: return plausible;
    }
}

struct Recipe {
    std::string json_text;
    bool prefix_space = false;
};

Recipe build_from_recipe(FuzzedDataProvider& in) {
    deep_levels = 0;
    json vocab = json::object();
    // Byte tokens from a base id, so ids may start late (a hole at the start) or be shuffled.
    const int64_t base = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(0, 1000);
    const bool reversed = in.ConsumeIntegralInRange(0, 3) == 0;
    for (int b = 0; b < 256; ++b) vocab[mapped_byte(static_cast<unsigned char>(b))] = base + (reversed ? 255 - b : b);
    int64_t next_id = base + 256;

    // Merges over a pool that grows with the merged tokens, as in a real BPE vocabulary.
    std::vector<std::string> pool;
    for (const char* s : {"t", "h", "e", " ", "a", "n", "d", "1", "2", "\n", "\xC3\xA9", "'", "s"}) pool.push_back(mapped(s));
    json merges = json::array();
    const bool pairs = in.ConsumeBool();
    const int merge_count = in.ConsumeIntegralInRange(0, 24);
    for (int i = 0; i < merge_count; ++i) {
        const std::string a = pool[in.ConsumeIntegralInRange<std::size_t>(0, pool.size() - 1)];
        std::string b = pool[in.ConsumeIntegralInRange<std::size_t>(0, pool.size() - 1)];
        switch (in.ConsumeIntegralInRange(0, 15)) {
            case 0: b = "nosuchtoken"; break;                                  // unknown right side
            case 1: merges.push_back(a + " " + b + " " + a); continue;        // three parts
            case 2: merges.push_back(json::array({a, 5})); continue;          // not strings
            case 3: merges.push_back(std::string(in.ConsumeIntegralInRange<std::size_t>(0, in.ConsumeBool() ? 1 << 20 : 300), 'm'));
                continue;
            case 4: merges.push_back(deep(in.ConsumeIntegralInRange(1, in.ConsumeIntegralInRange(0, 7) == 0 ? 100000 : 100))); continue;
            default: break;
        }
        if (pairs)
            merges.push_back(json::array({a, b}));
        else
            merges.push_back(a + " " + b);
        if (in.ConsumeIntegralInRange(0, 15) != 0 && !vocab.contains(a + b)) {
            vocab[a + b] = next_id++;  // else: the merged token is missing
            pool.push_back(a + b);
        }
    }
    // Extra vocabulary entries: arbitrary text (special tokens), odd ids.
    const int extra = in.ConsumeIntegralInRange(0, 3);
    for (int i = 0; i < extra; ++i) vocab[in.ConsumeRandomLengthString(12)] = pick_id(in, next_id++);

    json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
    switch (in.ConsumeIntegralInRange(0, 9)) {
        case 0: model["type"] = deep(in.ConsumeIntegralInRange(1, in.ConsumeIntegralInRange(0, 7) == 0 ? 100000 : 100)); break;
        case 1: model["ignore_merges"] = true; break;
        case 2: model["ignore_merges"] = "no"; break;
        case 3: model["continuing_subword_prefix"] = in.ConsumeBool() ? json("##") : json(""); break;
        case 4: model["merges"] = json::object(); break;
        case 5: model["vocab"] = json::object(); break;
        default: break;
    }

    // Pre-tokenizer: ByteLevel, maybe after Splits.
    Recipe out;
    json byte_level = {{"type", "ByteLevel"}};
    switch (in.ConsumeIntegralInRange(0, 4)) {
        case 0: byte_level["add_prefix_space"] = true; out.prefix_space = true; break;
        case 1: byte_level["add_prefix_space"] = "yes"; break;
        default: byte_level["add_prefix_space"] = false; break;  // absent means true
    }
    if (in.ConsumeIntegralInRange(0, 3) == 0) byte_level["use_regex"] = false;
    json pre;
    const int splits = in.ConsumeIntegralInRange(0, 3);
    if (splits == 0) {
        pre = byte_level;
    } else {
        static const char* const patterns[] = {
            "\\s+", "\\p{N}{1,3}", "(?i:'s|'t|'re)", "[^\\s\\p{L}\\p{N}]+", "", "x*", "(?=a)", "\\b", "$", "^",
            "(?<=e)", ".", "\\X", "[\\x{80}-\\x{10FFFF}]"};
        json list = json::array();
        for (int i = 0; i < splits; ++i) {
            static const char* const behaviors[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
            json split = {{"type", "Split"},
                          {"behavior", behaviors[in.ConsumeIntegralInRange<std::size_t>(0, std::size(behaviors) - 1)]},
                          {"invert", in.ConsumeBool()}};
            const int kind = in.ConsumeIntegralInRange(0, 9);
            if (kind < 5)
                split["pattern"] = {{"Regex", patterns[in.ConsumeIntegralInRange<std::size_t>(0, std::size(patterns) - 1)]}};
            else if (kind < 7)
                split["pattern"] = {{"Regex", in.ConsumeRandomLengthString(24)}};
            else if (kind < 9)
                split["pattern"] = {{"String", in.ConsumeRandomLengthString(4)}};
            else
                split["behavior"] = "Dropped";  // unknown
            list.push_back(split);
        }
        if (in.ConsumeIntegralInRange(0, 7) != 0) list.push_back(byte_level);
        pre = {{"type", "Sequence"}, {"pretokenizers", list}};
    }

    json root = {{"version", "1.0"}, {"model", model}, {"pre_tokenizer", pre}, {"normalizer", nullptr}};
    switch (in.ConsumeIntegralInRange(0, 9)) {
        case 0: root["normalizer"] = {{"type", "NFC"}}; break;
        case 1: root["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}}; break;
        case 2: root.erase("pre_tokenizer"); break;
        default: break;
    }
    const int added = in.ConsumeIntegralInRange(0, 3);
    json added_tokens = json::array();
    // Plausible ids are those tokenizers assigns (after the vocab's entries) unless the content
    // is a vocab token; the flags are random, one of them now and then missing.
    for (int i = 0; i < added; ++i) {
        json token = {{"id", pick_id(in, static_cast<int64_t>(vocab.size()) + i)}, {"content", in.ConsumeRandomLengthString(12)}};
        for (const char* key : {"single_word", "lstrip", "rstrip", "normalized", "special"})
            if (in.ConsumeIntegralInRange(0, 15) != 0) token[key] = in.ConsumeBool();
        added_tokens.push_back(token);
    }
    if (added) root["added_tokens"] = added_tokens;
    switch (in.ConsumeIntegralInRange(0, 5)) {
        case 0: {
            const json bos = pick_id(in, 0);
            root["post_processor"] = {
                {"type", "TemplateProcessing"},
                {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", json::array({bos})}, {"tokens", json::array({"<s>"})}}}}}};
            break;
        }
        case 1: root["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", json::array({"<s>", pick_id(in, 1)})}, {"sep", json::array({"</s>", pick_id(in, 2)})}}; break;
        case 2: root["post_processor"] = {{"type", "ByteLevel"}}; break;
        case 3: root["model"]["dropout"] = in.ConsumeBool() ? 0.0 : 0.5; break;
        default: break;
    }

    // Invalid UTF-8 from the input would make dump() throw; the loader's own UTF-8 checks are
    // reached through the raw-bytes path instead.
    out.json_text = root.dump(-1, ' ', false, json::error_handler_t::replace);
    const std::string marker = json(deep_marker).dump();
    if (const auto at = out.json_text.find(marker); at != std::string::npos && deep_levels > 0) {
        const auto n = static_cast<std::size_t>(deep_levels);
        out.json_text.replace(at, marker.size(), std::string(n, '[') + "1" + std::string(n, ']'));
    }
    return out;
}

// Loads the file; on success checks the contract on `text`.
void run(const harmonic_fuzz::ScratchFile& file, std::string_view text, bool prefix_space) {
    std::unique_ptr<harmonic::Tokenizer> tok;
    try {
        tok = harmonic::load_bpe_tokenizer(file.path());
    } catch (const harmonic::Error& e) {
        harmonic_fuzz::check_error(harness, e, file.path().string());
        return;
    }
    check_encoding(*tok, text, !prefix_space);
    // Out-of-range ids are refused, not read past a table.
    for (int64_t id : {int64_t{-1}, tok->vocab_size(), int64_t{1} << 40}) {
        try {
            tok->token_bytes(id);
            harmonic_fuzz::bug(harness, "token_bytes accepted id " + std::to_string(id));
        } catch (const harmonic::Error&) {
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const harmonic_fuzz::ScratchFile file("tokenizer.json");

    file.write(data, size);
    // A raw file that happens to load has no prefix-space information: check the loose contract.
    run(file, "the cat's 12 \xC3\xA9t\xC3\xA9 \xFF\n", true);

    FuzzedDataProvider in(data, size);
    const Recipe recipe = build_from_recipe(in);
    const std::string text = in.ConsumeRemainingBytesAsString();
    file.write(recipe.json_text.data(), recipe.json_text.size());
    run(file, text, recipe.prefix_space);
    return 0;
}
