// libFuzzer harness for config.json (model/config.cpp). Each input is used twice:
//  - as the bytes of a config.json on tmpfs, through ModelConfig::load (file reading, JSON
//    parsing, from_json and validate);
//  - as a recipe for a JSON value built in memory and given to ModelConfig::from_json: random
//    bytes rarely make a config that gets past model_type, and a value built in memory can also
//    hold what no file can (NaN, infinities, nesting far past any real file).
// Either the config is refused with harmonic::Error naming the source, or it is accepted, and
// then everything the rest of the program does with a config must work: resolved() and
// parameter_count() (signed overflow there is UB, which UBSan reports), and what save() writes
// loads back as the same config.
#include "model/config.h"

#include "fuzz_common.h"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

namespace {

using nlohmann::json;
using harmonic::ModelConfig;

constexpr const char* harness = "fuzz_config";

void check_accepted(const ModelConfig& c, const std::string& source) {
    const ModelConfig r = c.resolved();
    try {
        r.validate(source);
    } catch (const harmonic::Error& e) {
        harmonic_fuzz::bug(harness, std::string("an accepted config resolves to an invalid one: ") + e.what());
    }
    if (r.resolved().to_json() != r.to_json()) harmonic_fuzz::bug(harness, "resolved() is not idempotent");
    const int64_t params = c.parameter_count();
    if (params <= 0) harmonic_fuzz::bug(harness, "parameter_count() is " + std::to_string(params));
    if (r.parameter_count() != params) harmonic_fuzz::bug(harness, "resolving changed the parameter count");

    // save() writes resolved().to_json().dump(2); load() parses it and calls from_json.
    const std::string saved = r.to_json().dump(2);
    ModelConfig again;
    try {
        again = ModelConfig::from_json(json::parse(saved), "saved");
    } catch (const std::exception& e) {
        harmonic_fuzz::bug(harness, std::string("a saved config does not load: ") + e.what() + "\n" + saved);
    }
    if (again.to_json() != r.to_json()) harmonic_fuzz::bug(harness, "save/load changed the config:\n" + saved);
}

// Values on the edges of what the reader and validate check.
json pick_value(FuzzedDataProvider& in, int depth) {
    switch (in.ConsumeIntegralInRange(0, 24)) {
        case 0: return 0;
        case 1: return -1;
        case 2: return int64_t{1} << 40;
        case 3: return std::numeric_limits<int64_t>::max();
        case 4: return std::numeric_limits<int64_t>::min();
        case 5: return std::numeric_limits<uint64_t>::max();
        case 6: return uint64_t{1} << 63;
        case 7: return 64.5;
        case 8: return 1e300;
        case 9: return -1e300;
        case 10: return std::numeric_limits<double>::quiet_NaN();
        case 11: return std::numeric_limits<double>::infinity();
        case 12: return -std::numeric_limits<double>::infinity();
        case 13: return in.ConsumeBool();
        case 14: return nullptr;
        case 15: return in.ConsumeRandomLengthString(16);
        case 16: {
            // Nesting far deeper than any real file: [[[[...]]]]
            // Usually shallow (cheap); now and then deeper than a recursive dump() survives.
            json v = 1;
            const int levels = in.ConsumeIntegralInRange(0, 7) == 0 ? in.ConsumeIntegralInRange(1, 100000)
                                                                    : in.ConsumeIntegralInRange(1, 100);
            for (int i = 0; i < levels; ++i) v = json::array({std::move(v)});
            return v;
        }
        case 17: return std::string(in.ConsumeIntegralInRange<std::size_t>(0, in.ConsumeBool() ? 1 << 20 : 300), 'x');
        case 18: {
            json a = json::array();
            const int n = in.ConsumeIntegralInRange(0, 10);
            for (int i = 0; i < n && depth < 3; ++i) a.push_back(pick_value(in, depth + 1));
            return a;
        }
        case 19: return json::object();
        default: return in.ConsumeIntegralInRange<int64_t>(-2, 1 << 17);  // plausible sizes
    }
}

json build_from_recipe(FuzzedDataProvider& in) {
    static const char* const families[] = {"harmonic", "transformer", "mamba"};
    static const char* const tokenizers[] = {"bytes", "bpe"};
    json j = json::object();
    if (in.ConsumeIntegralInRange(0, 15) != 0) j["model_type"] = families[in.ConsumeIntegralInRange(0, 2)];
    auto maybe = [&](json& obj, const char* key, auto&& plausible) {
        switch (in.ConsumeIntegralInRange(0, 5)) {
            case 0: obj[key] = pick_value(in, 0); break;
            case 1:
            case 2: obj[key] = plausible(); break;
            default: break;  // absent: the default applies
        }
    };
    auto size = [&](int64_t lo, int64_t hi) { return [&in, lo, hi] { return json(in.ConsumeIntegralInRange(lo, hi)); }; };
    maybe(j, "d_model", size(1, 1024));
    maybe(j, "vocab_size", size(2, 70000));
    maybe(j, "tie_embeddings", [&] { return json(in.ConsumeBool()); });
    maybe(j, "tokenizer", [&] { return json(tokenizers[in.ConsumeIntegralInRange(0, 1)]); });

    json h = json::object();
    maybe(h, "timescales", [&] {
        json t = json::array();
        const int n = in.ConsumeIntegralInRange(0, 9);
        for (int i = 0; i < n; ++i) t.push_back(in.ConsumeFloatingPointInRange(0.5, 2e7));
        return t;
    });
    maybe(h, "pool", size(1, 65));
    maybe(h, "routing", [&] { return json(in.ConsumeBool() ? "error" : "raw"); });
    maybe(h, "cell", [&] { return json(in.ConsumeBool() ? "gated_ema" : "selective"); });
    maybe(h, "prediction", [&] { return json(in.ConsumeBool() ? "temporal" : "top_down"); });
    maybe(h, "blocks", size(0, 65));
    json t = json::object();
    maybe(t, "layers", size(0, 257));
    maybe(t, "heads", size(0, 64));
    maybe(t, "d_ff", size(0, 1 << 16));
    maybe(t, "context", size(0, 1 << 16));
    maybe(t, "rope_theta", [&] { return json(in.ConsumeFloatingPointInRange(0.0, 1e6)); });
    json m = json::object();
    maybe(m, "layers", size(0, 257));
    maybe(m, "d_inner", size(0, 1 << 16));
    maybe(m, "d_state", size(0, 257));
    maybe(m, "d_conv", size(0, 17));
    maybe(m, "dt_rank", size(0, 1 << 10));

    // Sections: usually the family's own, sometimes another's, sometimes not an object at all.
    const std::string family = j.value("model_type", std::string());
    for (auto [name, section] : {std::pair{"harmonic", &h}, std::pair{"transformer", &t}, std::pair{"mamba", &m}}) {
        const int choice = in.ConsumeIntegralInRange(0, 7);
        if (choice == 0) j[name] = pick_value(in, 0);
        else if (choice <= 2 || (name == family && choice <= 6)) j[name] = std::move(*section);  // no deep copies
    }
    if (in.ConsumeIntegralInRange(0, 15) == 0) j[in.ConsumeRandomLengthString(8)] = pick_value(in, 0);
    return j;
}

void run(const std::function<ModelConfig()>& parse, const std::string& source) {
    ModelConfig c;
    try {
        c = parse();
    } catch (const harmonic::Error& e) {
        harmonic_fuzz::check_error(harness, e, source);
        return;
    }
    check_accepted(c, source);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const harmonic_fuzz::ScratchFile file("config.json");
    file.write(data, size);
    run([&] { return ModelConfig::load(file.path()); }, file.path().string());

    FuzzedDataProvider in(data, size);
    const json j = build_from_recipe(in);
    run([&] { return ModelConfig::from_json(j, "recipe.json"); }, "recipe.json");
    return 0;
}
