#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "model/error.h"
#include "model/tokenizer.h"

using namespace harmonic;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kFixtures = fs::path(HARMONIC_FIXTURES) / "tokenizer";

struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("harmonic_test_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

json read_json(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    REQUIRE(in);
    return json::parse(in);
}

std::vector<int64_t> as_ids(const json& j) { return j.get<std::vector<int64_t>>(); }

// The invariants every encoding must satisfy, whatever the input.
void check_round_trip(const Tokenizer& tok, const std::string& s) {
    const Encoding e = tok.encode_fragment(s);
    REQUIRE(e.ids.size() == e.byte_offsets.size());
    CHECK(tok.decode(e.ids) == s);
    int64_t expected = 0;
    for (size_t i = 0; i < e.ids.size(); ++i) {
        REQUIRE(e.ids[i] >= 0);
        REQUIRE(e.ids[i] < tok.vocab_size());
        // Offsets are exactly the running sum of token lengths, hence strictly increasing.
        REQUIRE(e.byte_offsets[i] == expected);
        const std::string bytes = tok.token_bytes(e.ids[i]);
        REQUIRE_FALSE(bytes.empty());
        REQUIRE(s.compare(static_cast<size_t>(expected), bytes.size(), bytes) == 0);
        expected += static_cast<int64_t>(bytes.size());
    }
    CHECK(expected == static_cast<int64_t>(s.size()));
}

std::string random_bytes(std::mt19937& rng, size_t max_len) {
    std::uniform_int_distribution<size_t> len(0, max_len);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> kind(0, 5);
    // Mix raw bytes with valid multi-byte characters, letters and whitespace, so both the
    // valid-run regex path and the invalid-byte path get exercised, often next to each other.
    static const char* const pieces[] = {"\xC3\xA9", "\xE6\x9D\xB1", "\xF0\x9F\x98\x80", " ", "  ", "\n", "'s",
                                         "don't", "123", "the", "\xE2\x82", "\xED\xA0\x80", "\t"};
    std::uniform_int_distribution<size_t> piece(0, std::size(pieces) - 1);
    std::string s;
    const size_t n = len(rng);
    while (s.size() < n) {
        switch (kind(rng)) {
            case 0:
            case 1: s.push_back(static_cast<char>(byte(rng))); break;
            case 2: s.push_back(static_cast<char>('a' + byte(rng) % 26)); break;
            default: s += pieces[piece(rng)]; break;
        }
    }
    return s;
}

std::string error_of_json(const TempDir& dir, const std::string& name, const std::string& content) {
    const fs::path file = dir.path / name;
    std::ofstream(file, std::ios::binary) << content;
    try {
        load_bpe_tokenizer(file);
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("byte tokenizer: one token per byte", "[tokenizer]") {
    auto tok = make_byte_tokenizer();
    CHECK(tok->kind() == "bytes");
    CHECK(tok->vocab_size() == 256);
    const std::string s("a\xFF\0\n", 4);
    const Encoding e = tok->encode(s);
    CHECK(e.ids == std::vector<int64_t>{97, 255, 0, 10});
    CHECK(e.byte_offsets == std::vector<int64_t>{0, 1, 2, 3});
    CHECK(tok->decode(e.ids) == s);
    CHECK(tok->token_bytes(255) == "\xFF");
    CHECK(tok->encode("").ids.empty());
    CHECK_THROWS_AS(tok->token_bytes(256), Error);
    CHECK_THROWS_AS(tok->token_bytes(-1), Error);
    CHECK_THROWS_AS(tok->decode({1, 256}), Error);

    std::mt19937 rng(7);
    for (int i = 0; i < 200; ++i) check_round_trip(*tok, random_bytes(rng, 64));
}

TEST_CASE("load_tokenizer picks the tokenizer a checkpoint names", "[tokenizer]") {
    CHECK(load_tokenizer("bytes", "/nonexistent")->kind() == "bytes");
    auto bpe = load_tokenizer("bpe", kFixtures);
    CHECK(bpe->kind() == "bpe");
    CHECK(bpe->vocab_size() == 801);
    CHECK_THROWS_WITH(load_tokenizer("wordpiece", kFixtures), Catch::Contains("\"wordpiece\""));
    CHECK_THROWS_AS(load_tokenizer("wordpiece", kFixtures), Error);
    TempDir empty;
    CHECK_THROWS_WITH(load_tokenizer("bpe", empty.path),
                      (empty.path / "tokenizer.json").string() + ": no such file");
}

TEST_CASE("BPE matches the reference tokenizers package on every fixture case", "[tokenizer][bpe]") {
    const json cases = read_json(kFixtures / "cases.json");
    REQUIRE(cases.size() >= 30);
    for (const char* name : {"tokenizer.json", "tokenizer_pairs.json"}) {
        auto tok = load_bpe_tokenizer(kFixtures / name);
        CHECK(tok->vocab_size() == 801);  // 800 in model.vocab + one added token
        for (const json& c : cases) {
            const std::string text = c["text"].get<std::string>();
            INFO(name << ": " << json(text).dump());
            const Encoding e = tok->encode(text);
            CHECK(e.ids == as_ids(c["ids"]));
            CHECK(e.byte_offsets == as_ids(c["offsets"]));
            CHECK(tok->decode(e.ids) == text);
        }
    }
}

TEST_CASE("BPE variants match the reference: prefix space, Split behaviours, added tokens, post-processors",
          "[tokenizer][bpe]") {
    const json variants = read_json(kFixtures / "cases_variants.json");
    REQUIRE(variants.size() == 13);
    for (const auto& [name, cases] : variants.items()) {
        auto tok = load_bpe_tokenizer(kFixtures / name);
        for (const json& c : cases) {
            const std::string text = c["text"].get<std::string>();
            INFO(name << ": " << json(text).dump());
            // encode() is the reference's encode(text) (add_special_tokens=True), encode_fragment()
            // the same without what the post-processor adds.
            const Encoding whole = tok->encode(text);
            const Encoding e = tok->encode_fragment(text);
            CHECK(whole.ids == as_ids(c["ids"]));
            CHECK(e.ids == as_ids(c.contains("fragment_ids") ? c["fragment_ids"] : c["ids"]));
            CHECK(whole.added_before + static_cast<int64_t>(e.ids.size()) + whole.added_after ==
                  static_cast<int64_t>(whole.ids.size()));
            if (c.contains("offsets")) {
                CHECK(e.byte_offsets == as_ids(c["offsets"]));
            } else {
                // The inserted prefix space shares its offset with the next byte; dropped or
                // absorbed text leaves offsets that still rise through the input.
                for (size_t i = 0; i < e.byte_offsets.size(); ++i) {
                    CHECK(e.byte_offsets[i] >= 0);
                    CHECK(e.byte_offsets[i] < static_cast<int64_t>(std::max<size_t>(text.size(), 1)));
                    if (i > 0) CHECK(e.byte_offsets[i] >= e.byte_offsets[i - 1]);
                }
            }
        }
    }
    // Spot checks that the variants really differ from the plain tokenizer (so the flags are read).
    auto plain = load_bpe_tokenizer(kFixtures / "tokenizer.json");
    auto prefix = load_bpe_tokenizer(kFixtures / "tokenizer_prefix_space.json");
    CHECK(plain->encode("hello").ids != prefix->encode("hello").ids);
    CHECK(prefix->decode(prefix->encode("hello").ids) == " hello");
}

TEST_CASE("added tokens in a text come out as their own ids, as in the reference", "[tokenizer][bpe]") {
    auto tok = load_bpe_tokenizer(kFixtures / "tokenizer.json");
    // The special token was split into bytes and merges before ("Ġ<", "|", "end", ...).
    const std::string text = "first document.<|endoftext|>second <|endoftext|> third";
    const Encoding e = tok->encode(text);
    REQUIRE(std::count(e.ids.begin(), e.ids.end(), 0) == 2);
    const auto at = std::find(e.ids.begin(), e.ids.end(), 0) - e.ids.begin();
    CHECK(e.byte_offsets[static_cast<size_t>(at)] == static_cast<int64_t>(text.find("<|endoftext|>")));
    CHECK(tok->decode(e.ids) == text);
    CHECK(tok->lossless());

    // lstrip/rstrip take the white space beside the token into it; the bytes are gone from decode().
    auto added = load_bpe_tokenizer(kFixtures / "tokenizer_added.json");
    CHECK_FALSE(added->lossless());
    const Encoding m = added->encode("x <mask> y");
    REQUIRE(m.ids.size() == 3);
    CHECK(m.ids[1] == 801);
    CHECK(m.byte_offsets == std::vector<int64_t>{0, 1, 9});
    CHECK(added->decode(m.ids) == "x<mask>y");
    // single_word: not inside a word.
    const auto inside = added->encode("a<mask>b").ids;
    CHECK(std::count(inside.begin(), inside.end(), 801) == 0);
}

TEST_CASE("the post-processor's BOS and EOS are on encode() and not on encode_fragment()", "[tokenizer][bpe]") {
    auto tok = load_bpe_tokenizer(kFixtures / "tokenizer_template.json");
    CHECK(tok->ids_before() == std::vector<int64_t>{0});
    CHECK(tok->ids_after() == std::vector<int64_t>{800});
    const Encoding whole = tok->encode("hi there");
    const Encoding part = tok->encode_fragment("hi there");
    REQUIRE(whole.ids.size() == part.ids.size() + 2);
    CHECK(whole.ids.front() == 0);
    CHECK(whole.ids.back() == 800);
    CHECK(whole.added_before == 1);
    CHECK(whole.added_after == 1);
    CHECK(std::equal(part.ids.begin(), part.ids.end(), whole.ids.begin() + 1));
    // The BOS stands before the text (offset 0), the EOS after it (offset = size).
    CHECK(whole.byte_offsets.front() == 0);
    CHECK(whole.byte_offsets[1] == 0);
    CHECK(whole.byte_offsets.back() == 8);
    CHECK(tok->encode("").ids == std::vector<int64_t>{0, 800});
    CHECK(part.added_before == 0);
    // The byte tokenizer has no post-processor.
    CHECK(make_byte_tokenizer()->encode("ab").ids == std::vector<int64_t>{97, 98});
}

TEST_CASE("BPE token bytes and ids", "[tokenizer][bpe]") {
    auto tok = load_bpe_tokenizer(kFixtures / "tokenizer.json");
    CHECK(tok->token_bytes(800) == "<extra_token>");  // added token outside model.vocab
    CHECK(tok->token_bytes(0) == "<|endoftext|>");
    CHECK_THROWS_AS(tok->token_bytes(801), Error);
    CHECK_THROWS_AS(tok->token_bytes(-1), Error);
    CHECK_THROWS_WITH(tok->token_bytes(5000), Catch::Contains("5000") && Catch::Contains("tokenizer.json"));
    CHECK_THROWS_AS(tok->decode({1, 2, 801}), Error);
    // Every single byte is one token whose bytes are that byte.
    for (int b = 0; b < 256; ++b) {
        const std::string s(1, static_cast<char>(b));
        const Encoding e = tok->encode(s);
        REQUIRE(e.ids.size() == 1);
        CHECK(tok->token_bytes(e.ids[0]) == s);
        CHECK(e.byte_offsets == std::vector<int64_t>{0});
    }
}

TEST_CASE("BPE round trips arbitrary bytes, invalid UTF-8 included", "[tokenizer][bpe]") {
    for (const char* name : {"tokenizer.json", "tokenizer_no_regex.json", "tokenizer_split.json"}) {
        INFO(name);
        auto tok = load_bpe_tokenizer(kFixtures / name);
        check_round_trip(*tok, "");
        check_round_trip(*tok, "abc\xE2\x82");             // truncated at the end
        check_round_trip(*tok, "\xFF\xFE hello \xC0\x80");  // never-valid bytes, overlong
        check_round_trip(*tok, "x\xED\xA0\x80y");          // encoded surrogate
        check_round_trip(*tok, std::string("nul\0byte", 8));
        std::mt19937 rng(12345);
        for (int i = 0; i < 3000; ++i) {
            const std::string s = random_bytes(rng, 80);
            INFO(json::binary({s.begin(), s.end()}).dump());
            check_round_trip(*tok, s);
        }
    }
}

TEST_CASE("BPE handles very long pieces and 1 MB of English (encoding speed: bench/bench_tokenizer)", "[tokenizer][bpe]") {
    auto tok = load_bpe_tokenizer(kFixtures / "tokenizer.json");
    // One regex piece of 200k letters, and one of 200k spaces: merging must not be quadratic.
    check_round_trip(*tok, std::string(200000, 'a'));
    check_round_trip(*tok, std::string(200000, ' ') + "x");
    check_round_trip(*tok, std::string(100000, '\n'));

    const std::string para =
        "The quick brown fox jumps over the lazy dog. It's a state-space model; we'll see what they've "
        "learned from 2024 documents, don't we? Language models read text as tokens.\n";
    std::string text;
    std::mt19937 rng(3);
    while (text.size() < (1u << 20)) {
        text += para;
        text += std::to_string(rng());  // some pieces the cache has not seen
        text += ' ';
    }
    const Encoding e = tok->encode(text);
    CHECK(e.ids.size() < text.size() / 2);
    CHECK(tok->decode(e.ids) == text);
    // A second run (warm cache) gives the same result.
    CHECK(tok->encode(text).ids == e.ids);
}

TEST_CASE("BPE encodes concurrently from several threads", "[tokenizer][bpe]") {
    auto tok = load_bpe_tokenizer(kFixtures / "tokenizer.json");
    std::mt19937 rng(99);
    std::vector<std::string> texts;
    for (int i = 0; i < 200; ++i) texts.push_back(random_bytes(rng, 200));
    std::vector<std::vector<int64_t>> expected;
    for (const auto& t : texts) expected.push_back(tok->encode(t).ids);
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k) {
        threads.emplace_back([&, k] {
            for (int rep = 0; rep < 5; ++rep) {
                for (size_t i = 0; i < texts.size(); ++i) {
                    const size_t j = (i * 7 + static_cast<size_t>(k)) % texts.size();
                    if (tok->encode(texts[j]).ids != expected[j]) ++mismatches;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(mismatches == 0);
}

TEST_CASE("malformed tokenizer.json files give errors naming the file and the problem", "[tokenizer][bpe]") {
    TempDir dir;
    const json base = read_json(kFixtures / "tokenizer.json");
    struct Case {
        const char* name;
        std::function<void(json&)> edit;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {"top_level_list", [](json& j) { j = json::array(); }, "expected a JSON object at the top level"},
        {"no_model", [](json& j) { j.erase("model"); }, "has no \"model\" object"},
        {"wordpiece", [](json& j) { j["model"]["type"] = "WordPiece"; },
         "model.type is \"WordPiece\", expected \"BPE\""},
        {"no_type", [](json& j) { j["model"].erase("type"); }, "model.type is missing, expected \"BPE\""},
        {"vocab_list", [](json& j) { j["model"]["vocab"] = json::array({"a"}); },
         "model.vocab must be an object {token: id}"},
        {"vocab_empty", [](json& j) { j["model"]["vocab"] = json::object(); }, "model.vocab is empty"},
        {"negative_id", [](json& j) { j["model"]["vocab"]["the"] = -3; },
         "model.vocab[\"the\"] is -3: ids must be >= 0"},
        {"string_id", [](json& j) { j["model"]["vocab"]["the"] = "7"; },
         "model.vocab[\"the\"] is \"7\", not an integer id"},
        {"float_id", [](json& j) { j["model"]["vocab"]["the"] = 7.5; },
         "model.vocab[\"the\"] is 7.5, not an integer id"},
        {"huge_id", [](json& j) { j["model"]["vocab"]["the"] = 4000000000LL; }, "above the limit of"},
        {"duplicate_id", [](json& j) { j["model"]["vocab"]["zzz_new"] = j["model"]["vocab"]["!"]; },
         "is used by both \"!\" and \"zzz_new\""},
        {"missing_byte",
         [](json& j) {
             j["model"]["vocab"].erase("\xC4\x80");
             j["model"]["merges"] = json::array();
             j["added_tokens"][1]["id"] = 799;  // the next id after the 799 entries left
         },
         "model.vocab has no token for byte 0x00 (\"\xC4\x80\")"},
        {"merge_unknown_left", [](json& j) { j["model"]["merges"].push_back("nosuchtoken e"); },
         "token \"nosuchtoken\" is not in model.vocab"},
        {"merge_unknown_right", [](json& j) { j["model"]["merges"].push_back("e nosuchtoken"); },
         "token \"nosuchtoken\" is not in model.vocab"},
        {"merge_result_unknown", [](json& j) { j["model"]["merges"].push_back("~ ~"); },
         "merged token \"~~\" is not in model.vocab"},
        {"merge_no_space", [](json& j) { j["model"]["merges"].push_back("abc"); },
         "is \"abc\", expected two tokens separated by one space"},
        {"merge_two_spaces", [](json& j) { j["model"]["merges"].push_back("a b c"); },
         "expected two tokens separated by one space"},
        {"merge_triple", [](json& j) { j["model"]["merges"].push_back(json::array({"a", "b", "c"})); },
         "expected \"a b\" or [\"a\", \"b\"]"},
        {"merge_non_string", [](json& j) { j["model"]["merges"].push_back(json::array({1, 2})); },
         "model.merges[543] is [1,2], expected"},
        {"merges_object", [](json& j) { j["model"]["merges"] = json::object(); }, "model.merges must be a list"},
        {"no_pre_tokenizer", [](json& j) { j.erase("pre_tokenizer"); }, "has no \"pre_tokenizer\""},
        {"null_pre_tokenizer", [](json& j) { j["pre_tokenizer"] = nullptr; }, "pre_tokenizer is null"},
        {"whitespace_pre_tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; },
         "pre_tokenizer: pre-tokenizer type \"Whitespace\" is not supported"},
        {"byte_level_not_last",
         [](json& j) {
             j["pre_tokenizer"] = {{"type", "Sequence"},
                                   {"pretokenizers", json::array({j["pre_tokenizer"], {{"type", "Digits"}}})}};
         },
         "pre_tokenizer.pretokenizers[0]: ByteLevel must be the last pre-tokenizer"},
        {"no_byte_level",
         [](json& j) { j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array()}}; },
         "pre_tokenizer has no ByteLevel step"},
        {"bad_flag", [](json& j) { j["pre_tokenizer"]["use_regex"] = "yes"; },
         "pre_tokenizer.use_regex must be true or false"},
        {"split_unknown_behavior",
         [](json& j) {
             j["pre_tokenizer"] = {
                 {"type", "Sequence"},
                 {"pretokenizers",
                  json::array({{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Dropped"}}, j["pre_tokenizer"]})}};
         },
         "pre_tokenizer.pretokenizers[0].behavior is \"Dropped\", expected \"Isolated\""},
        {"dropout", [](json& j) { j["model"]["dropout"] = 0.5; }, "model.dropout is 0.5; BPE dropout makes the ids random"},
        {"truncation", [](json& j) { j["truncation"] = {{"max_length", 512}}; }, "truncation is set; it changes the ids"},
        {"padding", [](json& j) { j["padding"] = {{"strategy", "BatchLongest"}}; }, "padding is set; it changes the ids"},
        {"post_processor_unknown", [](json& j) { j["post_processor"] = {{"type", "Mystery"}}; },
         "post_processor: post-processor type \"Mystery\" is not supported"},
        {"template_no_sequence",
         [](json& j) {
             j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", json::array()}, {"special_tokens", json::object()}};
         },
         "post_processor.single must hold the sequence $A exactly once, not 0 times"},
        {"template_b",
         [](json& j) {
             j["post_processor"] = {{"type", "TemplateProcessing"},
                                    {"single", json::array({{{"Sequence", {{"id", "B"}, {"type_id", 0}}}}})}};
         },
         "post_processor.single[0]: a single-text template can only hold the sequence $A, not \"B\""},
        {"template_unknown_special",
         [](json& j) {
             j["post_processor"] = {{"type", "TemplateProcessing"},
                                    {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                                    {"special_tokens", json::object()}};
         },
         "post_processor.single[0]: special token \"<s>\" is not in post_processor.special_tokens"},
        {"roberta_id_out_of_range",
         [](json& j) {
             j["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", json::array({"<s>", 0})}, {"sep", json::array({"</s>", 900})}};
         },
         "post_processor adds the id 900, which is not a token (the vocabulary has 801)"},
        {"added_id_mismatch", [](json& j) { j["added_tokens"][1]["id"] = 900; },
         "added_tokens[1].id is 900, but the tokenizers package gives \"<extra_token>\" the id 800"},
        {"added_missing_flag", [](json& j) { j["added_tokens"][1].erase("lstrip"); },
         "added_tokens[1] has no \"lstrip\" (tokenizers requires it)"},
        {"added_empty", [](json& j) { j["added_tokens"][1]["content"] = ""; }, "added_tokens[1].content is empty"},
        {"added_duplicate", [](json& j) { j["added_tokens"][1]["content"] = "<|endoftext|>"; },
         "added_tokens[1].content \"<|endoftext|>\" is already added_tokens[0]"},
        {"split_bad_regex",
         [](json& j) {
             j["pre_tokenizer"] = {
                 {"type", "Sequence"},
                 {"pretokenizers",
                  json::array({{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}, j["pre_tokenizer"]})}};
         },
         "pre_tokenizer.pretokenizers[0].pattern: regex does not compile"},
        {"normalizer", [](json& j) { j["normalizer"] = {{"type", "NFC"}}; }, "normalizer \"NFC\" is not supported"},
        {"added_not_object", [](json& j) { j["added_tokens"] = json::array({"x"}); },
         "added_tokens[0] must be an object with \"id\" and \"content\""},
        {"added_negative", [](json& j) { j["added_tokens"][1]["id"] = -1; }, "added_tokens[1].id is -1"},
        {"wordpiece_prefix", [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
         "model.continuing_subword_prefix is not supported"},
    };
    for (const Case& c : cases) {
        json j = base;
        c.edit(j);
        const std::string file = (dir.path / (std::string(c.name) + ".json")).string();
        const std::string msg = error_of_json(dir, std::string(c.name) + ".json", j.dump());
        INFO(c.name << ": " << msg);
        CHECK_THAT(msg, Catch::StartsWith(file + ": "));
        CHECK_THAT(msg, Catch::Contains(c.expected));
    }

    // Files that are not JSON at all.
    const std::string broken = error_of_json(dir, "broken.json", "{\"model\": {\"type\": \"BPE\",");
    CHECK_THAT(broken, Catch::StartsWith((dir.path / "broken.json").string() + ": invalid JSON: "));
    CHECK_THAT(broken, Catch::Contains("parse error"));
    CHECK_THAT(error_of_json(dir, "empty.json", ""), Catch::Contains("empty.json: invalid JSON"));
    const std::string latin1 = error_of_json(dir, "latin1.json", "{\"a\": \"caf\xE9\"}");
    CHECK_THAT(latin1, Catch::Contains("latin1.json: invalid JSON") && Catch::Contains("\\xE9"));
    CHECK(latin1.find('\xE9') == std::string::npos);  // escaped, never raw
    // tokenizers (serde_json) refuses a byte order mark that nlohmann would skip.
    CHECK_THAT(error_of_json(dir, "bom.json", "\xEF\xBB\xBF" + base.dump()),
               Catch::Contains("bom.json: starts with a UTF-8 byte order mark"));
    CHECK_THROWS_WITH(load_bpe_tokenizer(dir.path / "none.json"), (dir.path / "none.json").string() + ": no such file");
    CHECK_THROWS_WITH(load_bpe_tokenizer(dir.path), dir.path.string() + ": is a directory");

    // The unedited base loads, so the failures above come from the edits alone.
    std::ofstream(dir.path / "base.json") << base.dump();
    CHECK(load_bpe_tokenizer(dir.path / "base.json")->vocab_size() == 801);
}
