// Checkpoint folders: round trip for every family, and each malformed input rejected with the
// file and the problem, never a half-loaded model.
#include "torch_catch.h"

#include <filesystem>
#include <malloc.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/error.h"
#include "model/io.h"
#include "model/safetensors.h"

using namespace harmonic;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
    auto dir = fs::temp_directory_path() / ("harmonic_test_ckpt_" + name);
    remove_tree(dir);  // not fs::remove_all (see model/io.h)
    return dir;
}

ModelConfig tiny(Family family) {
    ModelConfig c;
    c.family = family;
    c.d_model = 16;
    c.vocab_size = 256;
    c.transformer.layers = 1;
    c.mamba.layers = 1;
    return c;
}

fs::path saved(const std::string& name, Family family = Family::Harmonic) {
    auto dir = fresh_dir(name);
    torch::manual_seed(1);
    save_checkpoint(*make_model(tiny(family)), dir);
    return dir;
}

void rewrite_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
    std::ifstream in(dir / "config.json");
    auto j = nlohmann::json::parse(in);
    edit(j);
    std::ofstream(dir / "config.json") << j.dump();
}

// Rewrites model.safetensors with `edit` applied to the list of tensors.
void rewrite_weights(const fs::path& dir, const std::function<void(std::vector<TensorBlob>&)>& edit) {
    auto loaded = load_checkpoint(dir);
    auto blobs = export_parameters(*loaded.model, safetensors::DType::F32);
    edit(blobs);
    std::vector<safetensors::TensorToWrite> tensors;
    for (const auto& b : blobs) tensors.push_back({b.name, b.dtype, b.shape, b.bytes.data()});
    safetensors::write(dir / "model.safetensors", tensors);
}

}  // namespace

TEST_CASE("checkpoint round trip is exact in f32 for every family", "[checkpoint]") {
    for (Family family : {Family::Harmonic, Family::Transformer, Family::Mamba}) {
        INFO(family_name(family));
        auto dir = fresh_dir("roundtrip_" + family_name(family));
        torch::manual_seed(2);
        auto model = make_model(tiny(family));
        save_checkpoint(*model, dir);
        auto loaded = load_checkpoint(dir);
        CHECK(loaded.config.to_json() == model->config().to_json());
        CHECK(loaded.tokenizer->kind() == "bytes");
        CHECK(loaded.metadata.at("model_type") == family_name(family));
        auto a = model->named_parameters(), b = loaded.model->named_parameters();
        REQUIRE(a.size() == b.size());
        for (const auto& item : a) CHECK(torch::equal(item.value(), b[item.key()]));
        auto tokens = torch::randint(0, 256, {1, 20}, torch::kLong);
        torch::NoGradGuard no_grad;
        CHECK(torch::equal(model->forward(tokens).logits, loaded.model->forward(tokens).logits));
    }
}

TEST_CASE("bf16 checkpoints load within bf16 rounding", "[checkpoint]") {
    auto dir = fresh_dir("bf16");
    torch::manual_seed(3);
    auto model = make_model(tiny(Family::Harmonic));
    SaveOptions options;
    options.dtype = safetensors::DType::BF16;
    save_checkpoint(*model, dir, options);
    auto file = safetensors::File::read(dir / "model.safetensors");
    CHECK(file.info("embed.weight").dtype == safetensors::DType::BF16);
    auto loaded = load_checkpoint(dir);
    for (const auto& item : model->named_parameters()) {
        auto diff = (item.value() - loaded.model->named_parameters()[item.key()]).abs().max().item<double>();
        CHECK(diff <= item.value().abs().max().item<double>() / 128.0);
    }
}

TEST_CASE("malformed checkpoints are rejected with the file and the problem", "[checkpoint]") {
    SECTION("missing folder") {
        CHECK_THROWS_WITH(load_checkpoint(fresh_dir("absent")), Contains("harmonic_test_ckpt_absent") && Contains("no such"));
    }
    SECTION("a file, not a folder") {
        auto dir = saved("afile");
        CHECK_THROWS_WITH(load_checkpoint(dir / "config.json"), Contains("config.json") && Contains("folder"));
    }
    SECTION("config.json missing") {
        auto dir = saved("noconfig");
        fs::remove(dir / "config.json");
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("config.json") && Contains("missing"));
    }
    SECTION("model.safetensors missing") {
        auto dir = saved("noweights");
        fs::remove(dir / "model.safetensors");
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("model.safetensors") && Contains("missing"));
    }
    SECTION("unknown model_type") {
        auto dir = saved("unknowntype");
        rewrite_config(dir, [](auto& j) { j["model_type"] = "rwkv"; });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("config.json") && Contains("unknown model_type 'rwkv'"));
    }
    SECTION("negative size") {
        auto dir = saved("negative");
        rewrite_config(dir, [](auto& j) { j["d_model"] = -16; });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("config.json") && Contains("d_model"));
    }
    SECTION("config and weights disagree on shapes") {
        auto dir = saved("shapes");
        rewrite_config(dir, [](auto& j) { j["d_model"] = 24; });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("model.safetensors") && Contains("shape"));
    }
    SECTION("config names another family") {
        auto dir = saved("family");
        rewrite_config(dir, [](auto& j) {
            j["model_type"] = "mamba";
            j.erase("harmonic");
        });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("model.safetensors") && Contains("missing tensors"));
    }
    SECTION("tensor missing") {
        auto dir = saved("missingtensor");
        rewrite_weights(dir, [](auto& blobs) { blobs.erase(blobs.begin()); });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("model.safetensors") && Contains("missing tensors"));
    }
    SECTION("extra tensor") {
        auto dir = saved("extratensor");
        rewrite_weights(dir, [](auto& blobs) {
            auto extra = blobs.front();
            extra.name = "zz.surprise";
            blobs.push_back(extra);
        });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("model.safetensors") && Contains("unexpected tensor 'zz.surprise'"));
    }
    SECTION("integer weights") {
        auto dir = saved("intweights");
        rewrite_weights(dir, [](auto& blobs) { blobs.front().dtype = safetensors::DType::I32; });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("model.safetensors") && Contains("dtype I32"));
    }
    SECTION("truncated weights") {
        auto dir = saved("truncated");
        fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") / 2);
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("model.safetensors"));
    }
    SECTION("vocab smaller than the tokenizer") {
        auto dir = saved("vocab");
        rewrite_config(dir, [](auto& j) { j["vocab_size"] = 100; });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("config.json") && Contains("256"));
    }
    SECTION("BPE model without tokenizer.json") {
        auto dir = saved("notokenizer");
        rewrite_config(dir, [](auto& j) { j["tokenizer"] = "bpe"; });
        CHECK_THROWS_WITH(load_checkpoint(dir), Contains("tokenizer.json"));
    }
}

TEST_CASE("NaN weights load with a warning naming the tensor", "[checkpoint]") {
    auto dir = saved("nan");
    rewrite_weights(dir, [](auto& blobs) {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::memcpy(blobs.front().bytes.data(), &nan, sizeof nan);
    });
    auto loaded = load_checkpoint(dir);
    REQUIRE(loaded.warnings.size() == 1);
    CHECK_THAT(loaded.warnings[0], Contains("NaN"));
}

TEST_CASE("a safetensors file written by the reference Python package loads as a model", "[checkpoint][interop]") {
    // tests/fixtures/checkpoint_py/ is written by tests/scripts/make_checkpoint_fixture.py with the PyPI
    // `safetensors` package, from the names in docs/CHECKPOINTS.md.
    const fs::path dir = fs::path(HARMONIC_FIXTURES) / "checkpoint_py";
    REQUIRE(fs::exists(dir / "model.safetensors"));
    auto loaded = load_checkpoint(dir);
    CHECK(loaded.config.family == Family::Harmonic);
    // The script fills every tensor with sin(index); spot-check one.
    auto w = loaded.model->named_parameters()["head.weight"].flatten();
    CHECK(std::abs(w[5].item<double>() - std::sin(5.0)) < 1e-6);
}

namespace {

// A line of /proc/self/status ("VmRSS", "VmHWM") in bytes.
uint64_t status_bytes(const std::string& key) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
    return 0;
}

}  // namespace

TEST_CASE("a config far larger than its weights is refused before anything is allocated", "[checkpoint][hostile]") {
    // Each would allocate (and randomly initialise) gigabytes for a 0.1 MB file if the model were
    // built first: 2.3 GB, 21 GB.
    auto dir = saved("oversized");
    SECTION("d_model 4096 by a typo") {
        rewrite_config(dir, [](auto& j) { j["d_model"] = 4096; });
    }
    SECTION("64 blocks of 8 levels at d = 1024") {
        rewrite_config(dir, [](auto& j) {
            j["d_model"] = 1024;
            j["harmonic"]["blocks"] = 64;
            j["harmonic"]["timescales"] = {4, 8, 16, 32, 64, 128, 256, 512};
        });
    }
    CHECK_THROWS_WITH(load_checkpoint(dir), Contains((dir / "config.json").string()) && Contains("model.safetensors") &&
                                                Contains("nothing was allocated"));
}

TEST_CASE("a checkpoint's weights are resident once while it loads (the file is mapped)", "[checkpoint][memory]") {
    auto dir = fresh_dir("resident");
    {
        ModelConfig c = tiny(Family::Harmonic);
        c.d_model = 1024;  // 36 M parameters, 143 MB as F32
        torch::manual_seed(1);
        save_checkpoint(*make_model(c), dir);
    }
    const auto file_bytes = fs::file_size(dir / "model.safetensors");
    // Free heap memory goes back to the system first, so that the load's allocations show as
    // growth; then writing 5 to clear_refs resets the peak (VmHWM) to the current resident size.
    ::malloc_trim(0);
    { std::ofstream("/proc/self/clear_refs") << "5"; }
    const uint64_t before = status_bytes("VmRSS");
    // Linux resets the peak on request; without that the measurement below would mean nothing.
    REQUIRE(status_bytes("VmHWM") <= before + (8u << 20));
    auto loaded = load_checkpoint(dir);
    const uint64_t peak = status_bytes("VmHWM");
    INFO("file " << file_bytes << " bytes, peak grew by " << (peak - before) << " bytes");
    // The parameters themselves (the file's size) plus slack for the allocator; reading the file
    // into memory first made it more than twice the file.
    CHECK(peak - before < file_bytes + file_bytes / 2);
    CHECK(loaded.model->parameter_count() == 36'200'448);
    remove_tree(dir);
}
