#include "model/config.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <type_traits>

#include "model/error.h"
#include "model/json_strict.h"
#include "model/io.h"
#include "model/utf8.h"

namespace harmonic {

using nlohmann::json;

namespace {

// Text quoted from the file into a message is clipped: a megabyte-long value must not make a
// megabyte-long message (cut at a character boundary, so the message stays valid UTF-8).
std::string clip(const std::string& s, std::size_t limit = 200) {
    if (s.size() <= limit) return s;
    std::size_t n = limit;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n) + "... (" + std::to_string(s.size()) + " bytes)";
}

// Text from the file, clipped and escaped (\xNN), so that invalid UTF-8 and control characters
// never reach a terminal or dialog raw.
std::string escaped_clip(const std::string& s, std::size_t limit = 200) { return utf8::escaped(clip(s, limit)); }

// A value for a message. dump() recurses once per level of nesting, so a deeply nested value
// (a file can hold a million levels) is named by its type instead of printed.
std::string shown(const json& v) {
    if (v.is_structured()) {
        for (const auto& element : v)
            if (element.is_structured()) return std::string(v.is_array() ? "an array" : "an object");
    }
    return clip(v.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

std::string family_name(Family family) {
    switch (family) {
        case Family::Harmonic: return "harmonic";
        case Family::Transformer: return "transformer";
        case Family::Mamba: return "mamba";
    }
    return "?";
}

Family family_from_name(const std::string& name, const std::string& source) {
    if (name == "harmonic") return Family::Harmonic;
    if (name == "transformer") return Family::Transformer;
    if (name == "mamba") return Family::Mamba;
    throw Error(source + ": unknown model_type '" + escaped_clip(name) + "' (expected harmonic, transformer or mamba)");
}

namespace {

int64_t harmonic_body(const ModelConfig& c) {
    const int64_t d = c.d_model;
    const auto& h = c.harmonic;
    const auto levels = static_cast<int64_t>(h.timescales.size());
    // Level cell: RMSNorm (d) + W_in d->2d (+b) + W_g 2d->2d (+b) + W_out 2d->d (+b) = 8d² + 6d.
    const int64_t cell = 8 * d * d + 6 * d;
    // One bias-free d×d predictor per upward interface (routing: error only).
    const int64_t predictors = h.routing == "error" ? (levels - 1) * d * d : 0;
    // Output triple d->2d->2d->d with biases = 8d² + 5d.
    const int64_t triple = 8 * d * d + 5 * d;
    return h.blocks * (levels * cell + predictors + triple) + d;  // + final RMSNorm
}

int64_t embeddings(const ModelConfig& c) {
    return c.vocab_size * c.d_model * (c.tie_embeddings ? 1 : 2);
}

int64_t transformer_layer_fixed(const ModelConfig& c) {  // all but the d_ff-dependent part
    const int64_t d = c.d_model;
    return 4 * d * d + 5 * d;  // q,k,v,o without bias; two LayerNorms (w, b); fc2 bias
}
int64_t transformer_layer_per_ff(const ModelConfig& c) { return 2 * c.d_model + 1; }  // fc1 w+b, fc2 w

int64_t mamba_layer_fixed(const ModelConfig& c) { return c.d_model; }  // RMSNorm
int64_t mamba_layer_per_inner(const ModelConfig& c) {
    const auto& m = c.mamba;
    // in_proj 2d, conv k + 1, x_proj R + 2N, dt_proj R + 1, A_log N, D 1, out_proj d.
    return 3 * c.d_model + m.d_conv + 3 + 2 * m.dt_rank + 3 * m.d_state;
}

template <typename T>
void read_field(const json& j, const char* key, T& out, const std::string& where) {
    if (!j.contains(key)) return;
    const json& v = j.at(key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // nlohmann converts a float to an integer with a plain cast: 64.5 would silently become
        // 64, and 1e300 is undefined behaviour. Only integers are sizes.
        if (!v.is_number_integer())
            throw Error(where + ": field '" + key + "' has the wrong type (" + shown(v) + "), expected an integer");
        if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max()))
            throw Error(where + ": field '" + key + "' is out of range (" + shown(v) + ")");
    }
    try {
        out = v.get<T>();
    } catch (const json::exception&) {
        throw Error(where + ": field '" + key + "' has the wrong type (" + shown(v) + ")");
    }
}

void reject_unknown(const json& j, const std::set<std::string>& known, const std::string& where) {
    for (const auto& [key, value] : j.items()) {
        if (!known.count(key)) throw Error(where + ": unknown field '" + escaped_clip(key) + "'");
    }
}

}  // namespace

int64_t harmonic_reference_parameters(int64_t d_model, int64_t vocab_size, bool tie_embeddings, int64_t blocks) {
    ModelConfig c;
    c.harmonic.blocks = blocks;
    c.d_model = d_model;
    c.vocab_size = vocab_size;
    c.tie_embeddings = tie_embeddings;
    return embeddings(c) + harmonic_body(c);
}

ModelConfig ModelConfig::resolved() const {
    ModelConfig c = *this;
    const int64_t d = c.d_model;
    const int64_t target = harmonic_reference_parameters(d, c.vocab_size, c.tie_embeddings, c.harmonic.blocks);
    if (c.transformer.heads == 0) c.transformer.heads = std::max<int64_t>(1, d / 64);
    if (c.mamba.dt_rank == 0) c.mamba.dt_rank = (d + 15) / 16;
    if (c.family == Family::Transformer && c.transformer.d_ff == 0) {
        const int64_t layers = std::max<int64_t>(1, c.transformer.layers);
        const int64_t rest = target - embeddings(c) - 2 * d - layers * transformer_layer_fixed(c);
        const double per = static_cast<double>(layers * transformer_layer_per_ff(c));
        c.transformer.d_ff = std::max<int64_t>(1, std::llround(static_cast<double>(rest) / per));
    }
    if (c.family == Family::Mamba && c.mamba.d_inner == 0) {
        const int64_t layers = std::max<int64_t>(1, c.mamba.layers);
        const int64_t rest = target - embeddings(c) - d - layers * mamba_layer_fixed(c);
        const double per = static_cast<double>(layers * mamba_layer_per_inner(c));
        c.mamba.d_inner = std::max<int64_t>(1, std::llround(static_cast<double>(rest) / per));
    }
    return c;
}

void ModelConfig::validate(const std::string& source) const {
    // d_ff, d_inner: room for the automatic sizes (about vocab_size + 17 d_model at most), small
    // enough that parameter_count() stays far from overflowing.
    constexpr int64_t max_inner = int64_t{1} << 24;
    auto bad = [&](const std::string& field, const std::string& problem) {
        throw Error(source + ": " + field + ": " + problem);
    };
    if (d_model < 1 || d_model > 65536) bad("d_model", "must be in [1, 65536], got " + std::to_string(d_model));
    if (vocab_size < 2 || vocab_size > 10'000'000)
        bad("vocab_size", "must be in [2, 10000000], got " + std::to_string(vocab_size));
    if (tokenizer != "bytes" && tokenizer != "bpe") bad("tokenizer", "must be \"bytes\" or \"bpe\", got \"" + escaped_clip(tokenizer) + "\"");
    if (tokenizer == "bytes" && vocab_size < 256) bad("vocab_size", "a byte-level model needs at least 256, got " + std::to_string(vocab_size));
    // Every family: the baselines are sized to match a Harmonic of this many blocks (resolved()).
    if (harmonic.blocks < 1 || harmonic.blocks > 64)
        bad("harmonic.blocks", "must be in [1, 64], got " + std::to_string(harmonic.blocks));
    switch (family) {
        case Family::Harmonic: {
            const auto& h = harmonic;
            if (h.timescales.empty() || h.timescales.size() > 8)
                bad("harmonic.timescales", "needs 1 to 8 levels, got " + std::to_string(h.timescales.size()));
            for (double tau : h.timescales)
                if (!(tau >= 1.0 && tau <= 1e7)) bad("harmonic.timescales", "each tau must be in [1, 1e7]");
            if (h.pool < 2 || h.pool > 64) bad("harmonic.pool", "must be in [2, 64]");
            if (h.routing != "error" && h.routing != "raw") bad("harmonic.routing", "must be \"error\" or \"raw\", got \"" + escaped_clip(h.routing) + "\"");
            if (h.cell != "gated_ema" && h.cell != "selective") bad("harmonic.cell", "must be \"gated_ema\" or \"selective\", got \"" + escaped_clip(h.cell) + "\"");
            if (h.prediction != "temporal" && h.prediction != "top_down")
                bad("harmonic.prediction", "must be \"temporal\" or \"top_down\", got \"" + escaped_clip(h.prediction) + "\"");
            if (h.prediction == "top_down" && h.routing == "raw") bad("harmonic.prediction", "top_down needs routing \"error\"");
            break;
        }
        case Family::Transformer: {
            const auto& t = transformer;
            if (t.layers < 1 || t.layers > 256) bad("transformer.layers", "must be in [1, 256]");
            if (t.heads < 0 || t.d_ff < 0) bad("transformer", "heads and d_ff must not be negative");
            // Bounded so that parameter_count() cannot overflow (d_model and layers are bounded too).
            if (t.d_ff > max_inner) bad("transformer.d_ff", "must be at most " + std::to_string(max_inner) + ", got " + std::to_string(t.d_ff));
            const int64_t heads = t.heads == 0 ? std::max<int64_t>(1, d_model / 64) : t.heads;
            if (d_model % heads != 0 || (d_model / heads) % 2 != 0)
                bad("transformer.heads", "d_model / heads must be an even integer (RoPE), got d_model " +
                                             std::to_string(d_model) + " and " + std::to_string(heads) + " heads");
            if (t.context < 1) bad("transformer.context", "must be at least 1");
            // Finite too: to_json() would write an infinity as null, which does not load back.
            if (!(t.rope_theta > 1.0) || !std::isfinite(t.rope_theta)) bad("transformer.rope_theta", "must be a finite number > 1");
            break;
        }
        case Family::Mamba: {
            const auto& m = mamba;
            if (m.layers < 1 || m.layers > 256) bad("mamba.layers", "must be in [1, 256]");
            if (m.d_inner < 0 || m.dt_rank < 0) bad("mamba", "d_inner and dt_rank must not be negative");
            if (m.d_inner > max_inner) bad("mamba.d_inner", "must be at most " + std::to_string(max_inner) + ", got " + std::to_string(m.d_inner));
            if (m.dt_rank > 65536) bad("mamba.dt_rank", "must be at most 65536, got " + std::to_string(m.dt_rank));
            if (m.d_state < 1 || m.d_state > 256) bad("mamba.d_state", "must be in [1, 256]");
            if (m.d_conv < 1 || m.d_conv > 16) bad("mamba.d_conv", "must be in [1, 16]");
            break;
        }
    }
}

int64_t ModelConfig::parameter_count() const {
    const ModelConfig c = resolved();
    const int64_t d = c.d_model;
    switch (c.family) {
        case Family::Harmonic: return embeddings(c) + harmonic_body(c);
        case Family::Transformer:
            return embeddings(c) + 2 * d +
                   c.transformer.layers * (transformer_layer_fixed(c) + c.transformer.d_ff * transformer_layer_per_ff(c));
        case Family::Mamba:
            return embeddings(c) + d + c.mamba.layers * (mamba_layer_fixed(c) + c.mamba.d_inner * mamba_layer_per_inner(c));
    }
    return 0;
}

json ModelConfig::to_json() const {
    json j;
    j["model_type"] = family_name(family);
    j["d_model"] = d_model;
    j["vocab_size"] = vocab_size;
    j["tie_embeddings"] = tie_embeddings;
    j["tokenizer"] = tokenizer;
    switch (family) {
        case Family::Harmonic:
            j["harmonic"] = {{"timescales", harmonic.timescales}, {"pool", harmonic.pool},
                             {"routing", harmonic.routing},       {"cell", harmonic.cell},
                             {"prediction", harmonic.prediction}, {"blocks", harmonic.blocks}};
            break;
        case Family::Transformer:
            j["transformer"] = {{"layers", transformer.layers}, {"heads", transformer.heads},
                                {"d_ff", transformer.d_ff},     {"context", transformer.context},
                                {"rope_theta", transformer.rope_theta}};
            break;
        case Family::Mamba:
            j["mamba"] = {{"layers", mamba.layers},   {"d_inner", mamba.d_inner}, {"d_state", mamba.d_state},
                          {"d_conv", mamba.d_conv}, {"dt_rank", mamba.dt_rank}};
            break;
    }
    return j;
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
    if (!j.is_object()) throw Error(source + ": expected a JSON object");
    if (!j.contains("model_type") || !j.at("model_type").is_string())
        throw Error(source + ": missing string field 'model_type'");
    ModelConfig c;
    c.family = family_from_name(j.at("model_type").get<std::string>(), source);
    reject_unknown(j, {"model_type", "d_model", "vocab_size", "tie_embeddings", "tokenizer", "harmonic", "transformer", "mamba"},
                   source);
    read_field(j, "d_model", c.d_model, source);
    read_field(j, "vocab_size", c.vocab_size, source);
    read_field(j, "tie_embeddings", c.tie_embeddings, source);
    read_field(j, "tokenizer", c.tokenizer, source);
    auto section = [&](const char* name, const std::set<std::string>& known) -> const json* {
        if (!j.contains(name)) return nullptr;
        const json& s = j.at(name);
        if (!s.is_object()) throw Error(source + ": field '" + name + "' must be an object");
        reject_unknown(s, known, source + ": " + name);
        return &s;
    };
    if (const json* s = section("harmonic", {"timescales", "pool", "routing", "cell", "prediction", "blocks"})) {
        const std::string w = source + ": harmonic";
        read_field(*s, "timescales", c.harmonic.timescales, w);
        read_field(*s, "pool", c.harmonic.pool, w);
        read_field(*s, "routing", c.harmonic.routing, w);
        read_field(*s, "cell", c.harmonic.cell, w);
        read_field(*s, "prediction", c.harmonic.prediction, w);
        read_field(*s, "blocks", c.harmonic.blocks, w);
    }
    if (const json* s = section("transformer", {"layers", "heads", "d_ff", "context", "rope_theta"})) {
        const std::string w = source + ": transformer";
        read_field(*s, "layers", c.transformer.layers, w);
        read_field(*s, "heads", c.transformer.heads, w);
        read_field(*s, "d_ff", c.transformer.d_ff, w);
        read_field(*s, "context", c.transformer.context, w);
        read_field(*s, "rope_theta", c.transformer.rope_theta, w);
    }
    if (const json* s = section("mamba", {"layers", "d_inner", "d_state", "d_conv", "dt_rank"})) {
        const std::string w = source + ": mamba";
        read_field(*s, "layers", c.mamba.layers, w);
        read_field(*s, "d_inner", c.mamba.d_inner, w);
        read_field(*s, "d_state", c.mamba.d_state, w);
        read_field(*s, "d_conv", c.mamba.d_conv, w);
        read_field(*s, "dt_rank", c.mamba.dt_rank, w);
    }
    c.validate(source);
    return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& config_json) {
    const auto bytes = read_file_bytes(config_json, 16u << 20);
    // nlohmann skips a byte order mark; Python's json (which reads config.json in the Hugging
    // Face tools) refuses it, and so do we.
    if (bytes.size() >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF)
        fail_file(config_json, "starts with a UTF-8 byte order mark (EF BB BF); JSON must not have one");
    StrictJson parsed;
    try {
        parsed = parse_json_noting_duplicates(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    } catch (const json::exception& e) {
        // nlohmann reports invalid UTF-8 and syntax errors here with the byte position.
        fail_file(config_json, "not valid JSON: " + escaped_clip(e.what(), 400));
    }
    if (!parsed.duplicate_key.empty())
        fail_file(config_json, "duplicate key '" + escaped_clip(parsed.duplicate_key) + "'");
    return from_json(parsed.value, config_json.string());
}

void ModelConfig::save(const std::filesystem::path& config_json) const {
    write_file_atomically(config_json, resolved().to_json().dump(2) + "\n");
}

}  // namespace harmonic
