// The result of one analysis: plain C++ data, no torch, no Qt. Views draw it and export it;
// they never run a model (docs/ARCHITECTURE.md).
//
// Resolution policy (what is kept in full, what is summarised):
//  - full resolution: per-token bpt of every model, each model's top-k predictions per token,
//    per-step prediction-error magnitude of every level, the token ids and byte offsets;
//  - summarised: hidden-state heatmaps are averaged over time bins to at most
//    AnalysisOptions::max_heatmap_rows rows per level (each row says which tokens it covers);
//    autocorrelation and power spectrum are computed from the full-resolution states of the
//    first AnalysisOptions::spectrum_steps steps of each level, and only the curves are kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace harmonic {

struct TopPrediction {
    int32_t token_id = 0;
    float probability = 0.0F;
};

// One level of a hierarchical model (Harmonic), or one layer of a baseline.
struct LevelTrace {
    std::string name;            // "level 1", "layer 3", ...
    int64_t stride = 1;          // tokens per step of this level: 1, 4, 16
    double nominal_tau = 0.0;    // configured timescale in the level's own steps (0 = none)

    // Hidden-state heatmap, rows x channels, row-major. Row r averages the level's states over
    // the tokens [row_token_begin[r], row_token_begin[r + 1]); row_token_begin has rows + 1 entries.
    int64_t rows = 0;
    int64_t channels = 0;
    std::vector<float> hidden;
    std::vector<int64_t> row_token_begin;

    // Per step of this level, full resolution: L2 norm of the level's input prediction error
    // (Harmonic levels 2 and 3: e_j = m_j - P m_{j-1}; level 1: empty) and the token index at
    // which that step's block ends (step j of a stride-4 level ends at token 4j + 3).
    std::vector<float> error_norm;
    std::vector<int64_t> error_token;

    // Per channel: mean decay a in (0, 1) and effective timescale -1 / ln a, in the level's steps.
    std::vector<float> channel_decay;
    std::vector<float> channel_tau;

    // Autocorrelation of the (mean-removed) states against lag in the level's steps, averaged
    // over channels, and the timescale of the exponential fitted to it (level steps and tokens).
    std::vector<float> autocorr_lag;
    std::vector<float> autocorr;
    double fitted_tau_steps = 0.0;
    double fitted_tau_tokens = 0.0;

    // Power spectrum of the states (averaged over channels); frequency in cycles per token.
    std::vector<float> spectrum_frequency;
    std::vector<float> spectrum_power;
};

struct ModelTrace {
    std::string name;        // display name (checkpoint folder name, made unique)
    std::string family;      // "harmonic", "transformer", "mamba"
    std::string checkpoint;  // folder it was loaded from
    int64_t parameters = 0;

    // bpt[i] = -log2 p(token i | tokens < i). Token 0 has no context: bpt[0] is NaN and is left
    // out of every mean.
    std::vector<float> bpt;
    double mean_bpt = 0.0;

    // top[i * top_k + r]: the r-th most likely token at position i given tokens <= i, i.e. the
    // model's prediction for token i + 1.
    int top_k = 0;
    std::vector<TopPrediction> top;

    std::vector<LevelTrace> levels;
};

struct AnalysisResult {
    std::string text_name;              // file name or "pasted text"
    std::string tokenizer;              // "bytes" or "bpe" (all models of one analysis share it)
    std::vector<int32_t> token_ids;
    std::vector<int64_t> byte_offsets;  // byte offset of each token in the text
    std::vector<std::string> token_text;  // each token's bytes, for display
    std::vector<std::string> vocab_text;  // bytes of every vocabulary id (to show top-k predictions)
    std::vector<ModelTrace> models;
    std::string device;                 // "cpu" or "cuda:0"
    std::string precision;              // "fp32" or "bf16"
    double seconds = 0.0;               // wall time of the analysis
    std::vector<std::string> notes;     // e.g. "CUDA out of memory: retried with 1024-token chunks"

    int64_t token_count() const { return static_cast<int64_t>(token_ids.size()); }
};

}  // namespace harmonic
