// Streaming a token sequence through a model chunk by chunk (stateful, constant memory for the
// recurrent families) — the one loop behind `harmonic score`, `harmonic eval` and the analysis.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
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

// Scores a token sequence that arrives in pieces (tokenized as a file is read), in constant
// memory: feed() keeps at most one chunk of ids (plus the one token the next chunk starts with),
// runs the model on each full chunk with the state carried over, and hands each scored token to
// on_token(index, id, tag, bpt) in order; finish() scores what is left. Tokens 1 .. n-1 are scored
// (token 0 has no context), with the same chunks, hence the same bits, as score_tokens. `tag` is
// the caller's value for the token (e.g. its byte offset), passed through.
class StreamingScorer {
public:
    using OnToken = std::function<void(int64_t index, int64_t id, int64_t tag, float bpt)>;
    StreamingScorer(LanguageModel& model, const torch::Device& device, const StreamOptions& options, OnToken on_token);
    void feed(const int64_t* ids, const int64_t* tags, std::size_t count);
    void finish();
    int64_t tokens() const { return fed_; }
    int64_t scored() const { return scored_; }
    // Mean bits per token over tokens 1 .. n-1 (NaN before two tokens were fed and finished).
    double mean_bpt() const;

private:
    void run(int64_t inputs);

    LanguageModel& model_;
    torch::Device device_;
    StreamOptions options_;
    OnToken on_token_;
    std::unique_ptr<StreamState> state_;
    torch::Tensor weight_;
    std::vector<int64_t> ids_, tags_;  // not yet used as inputs; ids_[0] is token first_
    int64_t first_ = 0, fed_ = 0, scored_ = 0;
    double total_ = 0.0;
};

struct TokenScores {
    std::vector<float> bpt;  // bpt[i] for token i; bpt[0] = NaN (no context)
    double mean_bpt = 0.0;   // over tokens 1 .. n-1
};
TokenScores score_tokens(LanguageModel& model, const std::vector<int64_t>& ids, const torch::Device& device,
                         const StreamOptions& options);

}  // namespace harmonic
