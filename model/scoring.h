// Streaming a token sequence through a model chunk by chunk (stateful, constant memory for the
// recurrent families) — the one loop behind `harmonic score`, `harmonic eval` and the analysis.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include "model/checkpoint.h"

namespace harmonic {

struct StreamOptions {
    int64_t chunk_tokens = 2048;
    bool trace = false;
    bool bf16 = false;                          // bf16 autocast (CUDA only)
    const std::atomic<bool>* cancel = nullptr;  // checked between chunks; throws Cancelled
};

// Calls on_chunk(output, first_token_index, chunk_tokens) for consecutive chunks of `ids`.
// output.logits[0, i] is the prediction for token first_token_index + i + 1.
void stream_tokens(LanguageModel& model, const std::vector<int64_t>& ids, const torch::Device& device,
                   const StreamOptions& options,
                   const std::function<void(const ForwardOutput&, int64_t, const torch::Tensor&)>& on_chunk);

struct TokenScores {
    std::vector<float> bpt;  // bpt[i] for token i; bpt[0] = NaN (no context)
    double mean_bpt = 0.0;   // over tokens 1 .. n-1
};
TokenScores score_tokens(LanguageModel& model, const std::vector<int64_t>& ids, const torch::Device& device,
                         const StreamOptions& options);

}  // namespace harmonic
