// Bits per token of a model on a token stream (`harmonic eval`, and the trainer's validation).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/corpus.h"
#include "model/language_model.h"

namespace harmonic {

// Bits summed over the targets y of one forward of x (a chunk when `state` is given), through
// the fused head (no logits in memory) or through the logits.
torch::Tensor forward_bits(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, StreamState* state,
                           bool bf16, bool fused);

struct EvalOptions {
    std::vector<int64_t> contexts{1024};
    bool stateful = false;        // one sequential pass per context, chunk = context, state carried
    int64_t warmup_chunks = 0;    // stateful: leading chunks run but not scored
    int64_t max_tokens = 0;       // 0 = the whole stream
    int64_t batch = 0;            // windowed: windows per forward (0 = max(1, 16384 / context))
    bool bf16 = false;            // autocast (CUDA only)
    bool fused_head = true;       // bits through head_bits_sum: no (windows, context, V) logits in memory
};

struct EvalRow {
    int64_t context = 0;
    std::string mode;             // "windowed" or "stateful"
    int64_t warmup_chunks = 0;
    int64_t windows = 0;          // scored windows (chunks)
    int64_t tokens = 0;           // scored tokens
    double mean_bpt = 0.0;        // mean over windows (= over tokens: windows are equal)
    double sd = 0.0;              // standard deviation over windows
    double ci95 = 0.0;            // half-width of the 95% interval of the mean (1.96·sd/√n; NaN for n < 2)
};

// Bits per token of `model` on `tokens` at each context length. Windowed: non-overlapping
// windows of `context` inputs (targets shifted by one), each scored from a fresh state. Stateful:
// chunks of `context` tokens streamed with the state carried, the first `warmup_chunks` not
// scored. Throws Error when the stream is too short for a context.
std::vector<EvalRow> evaluate_contexts(LanguageModel& model, const TokenStream& tokens, const torch::Device& device,
                                       const EvalOptions& options);

}  // namespace harmonic
