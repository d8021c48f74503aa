// Configs and the closed-form parameter counts (the paper's one exact fingerprint).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/error.h"

using namespace harmonic;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
ModelConfig harmonic_config(int64_t d, int64_t V, bool tie = false) {
    ModelConfig c;
    c.family = Family::Harmonic;
    c.d_model = d;
    c.vocab_size = V;
    c.tokenizer = "bpe";
    c.tie_embeddings = tie;
    return c;
}
fs::path temp_dir(const std::string& name) {
    auto dir = fs::temp_directory_path() / ("harmonic_test_config_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}
}  // namespace

TEST_CASE("Harmonic parameter count matches the paper's logs exactly", "[config]") {
    // Counts from the author's training logs (notes §1.2): untied, tied, NoPred, FlatTimescale.
    CHECK(harmonic_config(128, 50257).parameter_count() == 13'425'920);
    CHECK(harmonic_config(256, 50257).parameter_count() == 27'965'952);
    CHECK(harmonic_config(512, 50257).parameter_count() == 60'388'352);
    CHECK(harmonic_config(128, 50257, true).parameter_count() == 6'993'024);
    CHECK(harmonic_config(256, 50257, true).parameter_count() == 15'100'160);
    CHECK(harmonic_config(512, 50257, true).parameter_count() == 34'656'768);
    auto nopred = harmonic_config(256, 50257);
    nopred.harmonic.routing = "raw";
    CHECK(nopred.parameter_count() == 27'834'880);
    auto flat = harmonic_config(256, 50257);
    flat.harmonic.timescales = {32, 32, 32};
    CHECK(flat.parameter_count() == 27'965'952);
    auto selective = harmonic_config(256, 50257);
    selective.harmonic.cell = "selective";
    CHECK(selective.parameter_count() == 27'965'952);
    auto topdown = harmonic_config(256, 50257);
    topdown.harmonic.prediction = "top_down";
    CHECK(topdown.parameter_count() == 27'965'952);
    CHECK(harmonic_reference_parameters(256, 50257, false) == 27'965'952);
}

TEST_CASE("baselines are sized within 3% of Harmonic at equal d and V", "[config]") {
    for (int64_t d : {64, 128, 256, 512}) {
        for (int64_t V : {256, 50257}) {
            for (bool tie : {false, true}) {
                const double target = static_cast<double>(harmonic_reference_parameters(d, V, tie));
                for (Family f : {Family::Transformer, Family::Mamba}) {
                    ModelConfig c;
                    c.family = f;
                    c.d_model = d;
                    c.vocab_size = V;
                    c.tie_embeddings = tie;
                    const double n = static_cast<double>(c.parameter_count());
                    INFO(family_name(f) << " d=" << d << " V=" << V << " tie=" << tie << " params=" << n << " target=" << target);
                    CHECK(std::abs(n - target) / target < 0.03);
                }
            }
        }
    }
    // The deeper set: baselines grown to a 4-block Harmonic.
    ModelConfig deep = harmonic_config(256, 256);
    deep.harmonic.blocks = 4;
    const double target = static_cast<double>(deep.parameter_count());
    CHECK(harmonic_reference_parameters(256, 256, false, 4) == deep.parameter_count());
    for (Family f : {Family::Transformer, Family::Mamba}) {
        ModelConfig c;
        c.family = f;
        c.d_model = 256;
        c.vocab_size = 256;
        c.harmonic.blocks = 4;
        c.transformer.layers = c.mamba.layers = 12;
        const double n = static_cast<double>(c.parameter_count());
        INFO(family_name(f) << " params=" << n << " target=" << target);
        CHECK(std::abs(n - target) / target < 0.03);
    }
}

TEST_CASE("config JSON round trip keeps every field", "[config]") {
    ModelConfig c = harmonic_config(96, 300);
    c.harmonic.timescales = {2, 8, 64, 256};
    c.harmonic.routing = "raw";
    c.harmonic.cell = "selective";
    c.harmonic.blocks = 2;
    auto back = ModelConfig::from_json(c.to_json(), "test");
    CHECK(back.to_json() == c.resolved().to_json());
    CHECK(back.harmonic.timescales == std::vector<double>{2, 8, 64, 256});

    ModelConfig t;
    t.family = Family::Transformer;
    t.d_model = 128;
    auto tr = t.resolved();
    CHECK(tr.transformer.heads == 2);
    CHECK(tr.transformer.d_ff > 0);
    CHECK(ModelConfig::from_json(tr.to_json(), "t").to_json() == tr.to_json());
}

TEST_CASE("bad configs are rejected with the file and the problem", "[config]") {
    using nlohmann::json;
    auto expect = [](const json& j, const std::string& phrase) {
        INFO(j.dump());
        CHECK_THROWS_WITH(ModelConfig::from_json(j, "cfg.json"), Contains("cfg.json") && Contains(phrase));
    };
    expect(json::array(), "expected a JSON object");
    expect(json{{"d_model", 64}}, "model_type");
    expect(json{{"model_type", "lstm"}}, "unknown model_type 'lstm'");
    expect(json{{"model_type", "harmonic"}, {"d_modle", 64}}, "unknown field 'd_modle'");
    expect(json{{"model_type", "harmonic"}, {"d_model", "wide"}}, "wrong type");
    expect(json{{"model_type", "harmonic"}, {"d_model", -4}}, "d_model");
    expect(json{{"model_type", "harmonic"}, {"vocab_size", 100}}, "at least 256");
    expect(json{{"model_type", "harmonic"}, {"harmonic", {{"routing", "sideways"}}}}, "harmonic.routing");
    expect(json{{"model_type", "harmonic"}, {"harmonic", {{"timescales", json::array()}}}}, "harmonic.timescales");
    expect(json{{"model_type", "harmonic"}, {"harmonic", {{"timescales", {4, 0.5}}}}}, "tau");
    expect(json{{"model_type", "harmonic"}, {"harmonic", {{"cell", "lstm"}}}}, "harmonic.cell");
    expect(json{{"model_type", "harmonic"}, {"harmonic", {{"prediction", "top_down"}, {"routing", "raw"}}}}, "top_down");
    expect(json{{"model_type", "harmonic"}, {"harmonic", {{"blocks", 0}}}}, "harmonic.blocks");
    // A baseline is sized to a Harmonic of harmonic.blocks blocks: an absurd count overflowed that
    // sizing (found by fuzz_config) instead of being refused.
    expect(json{{"model_type", "mamba"}, {"harmonic", {{"blocks", std::numeric_limits<int64_t>::min()}}}},
           "harmonic.blocks");
    expect(json{{"model_type", "transformer"}, {"harmonic", {{"blocks", 1000}}}}, "harmonic.blocks");
    expect(json{{"model_type", "harmonic"}, {"harmonic", 3}}, "must be an object");
    expect(json{{"model_type", "transformer"}, {"d_model", 100}, {"transformer", {{"heads", 3}}}}, "transformer.heads");
    expect(json{{"model_type", "mamba"}, {"mamba", {{"d_state", 0}}}}, "mamba.d_state");
    expect(json{{"model_type", "harmonic"}, {"tokenizer", "words"}}, "tokenizer");
}

TEST_CASE("config files: missing, not JSON, invalid UTF-8", "[config]") {
    auto dir = temp_dir("files");
    CHECK_THROWS_WITH(ModelConfig::load(dir / "nope.json"), Contains("nope.json"));
    {
        std::ofstream(dir / "broken.json") << "{\"model_type\": \"harmonic\", ";
    }
    CHECK_THROWS_WITH(ModelConfig::load(dir / "broken.json"), Contains("broken.json") && Contains("not valid JSON"));
    {
        std::ofstream(dir / "utf8.json", std::ios::binary) << "{\"model_type\": \"harm\xff\xfeonic\"}";
    }
    CHECK_THROWS_WITH(ModelConfig::load(dir / "utf8.json"), Contains("utf8.json"));
    ModelConfig c = harmonic_config(64, 256);
    c.tokenizer = "bytes";
    c.save(dir / "ok.json");
    CHECK(ModelConfig::load(dir / "ok.json").to_json() == c.resolved().to_json());
}

namespace {
// The message of loading `content` written to dir/name as config.json, or "(loaded)".
std::string config_load_error(const std::filesystem::path& dir, const std::string& name, const std::string& content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    try {
        ModelConfig::load(dir / name);
    } catch (const Error& e) {
        return e.what();
    }
    return "(loaded)";
}
}  // namespace

TEST_CASE("config.json: duplicate keys and a byte order mark are refused", "[config]") {
    auto dir = temp_dir("strict");
    auto load_error = [&](const std::string& name, const std::string& content) { return config_load_error(dir, name, content); };
    const std::string file = (dir / "dup.json").string();
    // Accepted before, with the last d_model winning.
    CHECK(load_error("dup.json", R"({"model_type": "harmonic", "d_model": 64, "d_model": 128})") ==
          file + ": duplicate key 'd_model'");
    CHECK_THAT(load_error("dup_nested.json", R"({"model_type": "harmonic", "harmonic": {"pool": 4, "pool": 8}})"),
               Contains("dup_nested.json: duplicate key 'pool'"));
    // The same key in two different objects is not a duplicate.
    CHECK(load_error("two_objects.json", R"({"model_type": "harmonic", "harmonic": {"pool": 4}, "mamba": {"layers": 4}})") ==
          "(loaded)");
    CHECK_THAT(load_error("bom.json", "\xEF\xBB\xBF{\"model_type\": \"harmonic\"}"),
               Contains("bom.json: starts with a UTF-8 byte order mark"));
}

TEST_CASE("config.json: bytes from the file are escaped in messages", "[config]") {
    auto dir = temp_dir("escaped");
    auto load_error = [&](const std::string& name, const std::string& content) { return config_load_error(dir, name, content); };
    // The parser quotes the invalid bytes it read; they used to reach the message raw.
    const std::string bad_utf8 = load_error("utf8.json", "{\"model_type\": \"harm\xff\xfeonic\"}");
    CHECK_THAT(bad_utf8, Contains("not valid JSON") && Contains("\\xFF"));
    CHECK(bad_utf8.find('\xff') == std::string::npos);
    // Control characters in a value (valid JSON escapes) are shown as \xNN too.
    const std::string control = load_error("control.json", R"({"model_type": "harmonic\u001b[2J"})");
    CHECK_THAT(control, Contains("unknown model_type 'harmonic\\x1B[2J'"));
    CHECK(control.find('\x1b') == std::string::npos);
}

TEST_CASE("integer flags are parsed exactly: no saturation, no octal", "[config][cli]") {
    // CLI11 read --chunk 99999999999999999999 with strtoll, which saturates to 2^63 - 1.
    CHECK_THROWS_WITH(parse_integer("99999999999999999999", "--chunk", 1, int64_t(1) << 24),
                      "--chunk: '99999999999999999999' is out of range (expected an integer in [1, 16777216])");
    CHECK_THROWS_WITH(parse_integer("16777217", "--chunk", 1, int64_t(1) << 24), Contains("is out of range"));
    CHECK_THROWS_WITH(parse_integer("0", "--chunk", 1, 10), Contains("--chunk: '0' is out of range"));
    CHECK_THROWS_WITH(parse_integer("-99999999999999999999", "--x", 0, 10), Contains("is out of range"));
    for (const char* bad : {"", "12q", "1e3", "0x10", " 5", "5 ", "+5", "1.0", "--5"}) {
        INFO(bad);
        CHECK_THROWS_WITH(parse_integer(bad, "--chunk", 0, 100), Contains("is not an integer"));
    }
    CHECK(parse_integer("010", "--chunk", 0, 100) == 10);
    CHECK(parse_integer("16777216", "--chunk", 1, int64_t(1) << 24) == 16777216);
    CHECK(parse_integer("-3", "--x", -5, 5) == -3);
    CHECK(parse_integer("9223372036854775807", "--x", 0, std::numeric_limits<int64_t>::max()) ==
          std::numeric_limits<int64_t>::max());
    int64_t v = 7;
    CHECK(integer_problem("x", 0, 1, v) == "'x' is not an integer (expected an integer in [0, 1])");
    CHECK(v == 7);
}
