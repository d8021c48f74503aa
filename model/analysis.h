// Turning checkpoints + a text into an AnalysisResult: the one analysis used by the desktop
// tool (in a worker thread) and by `harmonic analyze` (headless).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "model/analysis_result.h"
#include "model/error.h"

namespace harmonic {

struct AnalysisOptions {
    std::string device = "auto";      // "auto" (cuda when available), "cpu", "cuda"
    std::string precision = "fp32";   // "fp32" or "bf16" (bf16 autocast on CUDA)
    int64_t chunk_tokens = 2048;      // stateful chunk size; halved on CUDA out-of-memory
    int top_k = 5;
    int64_t max_heatmap_rows = 2048;
    int64_t spectrum_steps = 16384;   // full-resolution steps per level kept for autocorrelation/spectrum
    int64_t max_tokens = 0;           // 0 = whole text
};

// fraction in [0, 1]; stage is a short human-readable string ("harmonic: 12,288 / 100,000 tokens").
using ProgressFn = std::function<void(double fraction, const std::string& stage)>;

// Throws Error for bad checkpoints / text (message names the file), Cancelled when *cancel
// becomes true (checked between chunks). All checkpoints must share one tokenizer.
AnalysisResult analyze(const std::vector<std::filesystem::path>& checkpoints, const std::string& text,
                       const std::string& text_name, const AnalysisOptions& options,
                       const ProgressFn& progress = {}, const std::atomic<bool>* cancel = nullptr);

// The causality audit: perturbs every token after `position` (several random draws) and reports
// the largest change of any logit at positions <= position. A causal model changes none of them
// by more than the noise of repeating the same forward (zero on the CPU, where that is exact).
struct CausalityReport {
    std::string checkpoint;
    int64_t position = 0;
    int64_t tokens = 0;
    int trials = 0;
    double max_abs_change = 0.0;          // over logits at positions <= position
    double noise = 0.0;                   // largest logit change between two forwards of the same tokens
    double threshold = 0.0;               // changes above this are leaks: 0 when forwards repeat exactly
    int64_t first_leaking_position = -1;  // -1 when no earlier logit moved by more than threshold
    bool causal = true;
};
CausalityReport audit_causality(const std::filesystem::path& checkpoint, const std::string& text,
                                int64_t position, const std::string& device = "cpu", int trials = 3);

}  // namespace harmonic
