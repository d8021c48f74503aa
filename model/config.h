// A model's configuration: the single source of truth for construction and for the checkpoint's
// config.json. Plain data, no torch. Symbols follow docs/MODEL.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace harmonic {

enum class Family { Harmonic, Transformer, Mamba };

std::string family_name(Family family);
// Throws Error "<source>: unknown model_type 'x' (expected harmonic, transformer or mamba)".
Family family_from_name(const std::string& name, const std::string& source);

struct HarmonicConfig {
    // One entry per level: tau in the level's own steps (level l runs every pool^(l-1) tokens).
    std::vector<double> timescales{4.0, 32.0, 128.0};
    int64_t pool = 4;                       // K: steps of level l pooled into one step of level l+1
    std::string routing = "error";          // error: e_j = m_j - P m_{j-1};  raw: e_j = m_j
    std::string cell = "gated_ema";         // gated_ema: fixed a = exp(-1/tau);  selective: a_t from W_g
    std::string prediction = "temporal";    // temporal: P m_{j-1};  top_down: P y_{j-1} (sequential)
    int64_t blocks = 1;                     // stacked three-level blocks on a residual stream
};

struct TransformerConfig {
    int64_t layers = 3;
    int64_t heads = 0;          // 0 = d_model / 64 (at least 1)
    int64_t d_ff = 0;           // 0 = sized so the model matches Harmonic's parameter count
    int64_t context = 2048;     // sliding window of the chunked (stateful) forward
    double rope_theta = 10000.0;
};

struct MambaConfig {
    int64_t layers = 5;
    int64_t d_inner = 0;        // 0 = sized so the model matches Harmonic's parameter count
    int64_t d_state = 16;       // N
    int64_t d_conv = 4;         // causal depthwise conv width
    int64_t dt_rank = 0;        // 0 = ceil(d_model / 16)
};

struct ModelConfig {
    Family family = Family::Harmonic;
    int64_t d_model = 256;
    int64_t vocab_size = 256;
    bool tie_embeddings = false;
    std::string tokenizer = "bytes";   // "bytes" or "bpe" (tokenizer.json beside config.json)
    HarmonicConfig harmonic;
    TransformerConfig transformer;
    MambaConfig mamba;

    // Fills every automatic size (heads, d_ff, d_inner, dt_rank) so the saved config.json states
    // the model exactly. Throws Error when the configuration is impossible.
    ModelConfig resolved() const;
    // Throws Error "<source>: <field>: problem" for any invalid value.
    void validate(const std::string& source) const;
    // Closed-form parameter count of the resolved configuration (tests check it against the
    // built modules; docs/MODEL.md derives it).
    int64_t parameter_count() const;

    nlohmann::json to_json() const;
    // Unknown keys are errors (a typo must not silently fall back to a default).
    static ModelConfig from_json(const nlohmann::json& json, const std::string& source);
    static ModelConfig load(const std::filesystem::path& config_json);
    void save(const std::filesystem::path& config_json) const;  // atomic
};

// Harmonic's parameter count at the given width/vocab with the default (paper) options:
// 2·V·d + 34·d² + 24·d untied, V·d + 34·d² + 24·d tied, the body repeated for `blocks` stacked
// blocks. The baselines are sized to it (with the blocks their config's harmonic.blocks names,
// so `--blocks 4 --layers 12` grows a Transformer or Mamba to a 4-block Harmonic's count).
int64_t harmonic_reference_parameters(int64_t d_model, int64_t vocab_size, bool tie_embeddings, int64_t blocks = 1);

}  // namespace harmonic
