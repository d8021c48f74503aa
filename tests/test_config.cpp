// Configs and the closed-form parameter counts (the paper's one exact fingerprint).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
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
