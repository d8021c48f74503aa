// One interface for the three model families (docs/MODEL.md):
//  - forward(tokens): the full-sequence forward used for training;
//  - forward_chunk(tokens, state): the stateful forward over a text of any length, chunk by chunk
//    (Harmonic and Mamba carry their recurrent state at constant memory; the Transformer keeps a
//    sliding window of `context` keys/values);
//  - traces on request: per-level hidden states, prediction errors and decays.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"

namespace harmonic {

// What one level (Harmonic) or layer (baselines) did over the tokens of one call.
struct LevelOutput {
    std::string name;
    int64_t stride = 1;        // tokens per step
    double nominal_tau = 0.0;  // configured tau in the level's own steps (0 = none)
    torch::Tensor hidden;      // (B, steps, C) recurrent state / layer output at each step
    torch::Tensor error;       // (B, steps, d) the level's input prediction error (undefined if none)
    torch::Tensor decay;       // (B, steps, C) or (C): the decay a applied at each step
    int64_t first_step = 0;    // global index of the first step in this call
};

struct ForwardOutput {
    torch::Tensor logits;              // (B, T, V); undefined in a headless forward (HeadlessForward)
    torch::Tensor features;            // (B, T, d): what the output head reads (after the final norm)
    std::vector<LevelOutput> levels;   // filled only when traces were requested
};

// Per-family recurrent state of forward_chunk; create with LanguageModel::initial_state.
class StreamState {
public:
    virtual ~StreamState() = default;
    int64_t position = 0;  // tokens consumed so far
    // Cuts the autograd history (stateful training carries detached state between chunks).
    virtual void detach() = 0;
};

class LanguageModel : public torch::nn::Module {
public:
    explicit LanguageModel(ModelConfig config) : config_(config.resolved()) {}
    const ModelConfig& config() const { return config_; }
    int64_t parameter_count() const;

    // tokens: (B, T) int64. Logits at position t depend on tokens <= t only.
    virtual ForwardOutput forward(const torch::Tensor& tokens, bool trace = false) = 0;
    virtual std::unique_ptr<StreamState> initial_state(int64_t batch, const torch::Device& device) const = 0;
    // Continues from `state` (updated in place). Chunks of any length, including ones that are not
    // multiples of the pooling strides, give the same logits as one forward over the whole text.
    virtual ForwardOutput forward_chunk(const torch::Tensor& tokens, StreamState& state, bool trace = false) = 0;

    // The output head's weight (V, d): the untied head, or the embedding when tied.
    virtual torch::Tensor head_weight() const = 0;
    // While true, forward and forward_chunk leave `logits` undefined (see HeadlessForward).
    bool headless() const { return headless_; }

protected:
    ModelConfig config_;

private:
    friend class HeadlessForward;
    bool headless_ = false;
};

// For its lifetime, the model's forwards skip the (B, T, V) logits and return only `features`,
// for callers that score with head_bits_sum (which never materialises the logits).
class HeadlessForward {
public:
    explicit HeadlessForward(LanguageModel& model, bool enable = true) : model_(model), before_(model.headless_) {
        model_.headless_ = enable;
    }
    ~HeadlessForward() { model_.headless_ = before_; }
    HeadlessForward(const HeadlessForward&) = delete;
    HeadlessForward& operator=(const HeadlessForward&) = delete;

private:
    LanguageModel& model_;
    bool before_;
};

std::shared_ptr<LanguageModel> make_model(const ModelConfig& config);

// Building blocks shared by the families (model/modules.cpp).
struct RMSNormImpl : torch::nn::Module {
    explicit RMSNormImpl(int64_t dim, double eps = 1e-6);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    double eps;
};
TORCH_MODULE(RMSNorm);

// layer(x) for a torch::nn::Linear. On CUDA with a bias: one GEMM on x flattened to 2-D with the
// bias added in its epilogue (addmm). LibTorch's Linear on a 3-D input runs the GEMM, then a
// separate, unvectorised mixed-dtype bias add under autocast that takes longer than the GEMM
// itself. Elsewhere it is layer->forward(x).
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x);

// bf16 autocast on CUDA for the guard's lifetime; does nothing when `enable` is false.
class Bf16Autocast {
public:
    explicit Bf16Autocast(bool enable);
    ~Bf16Autocast();
    Bf16Autocast(const Bf16Autocast&) = delete;
    Bf16Autocast& operator=(const Bf16Autocast&) = delete;

private:
    bool active_;
};

// Mean next-token cross-entropy in bits per token over positions 0..T-2 predicting 1..T-1.
torch::Tensor bits_per_token(const torch::Tensor& logits, const torch::Tensor& tokens);

// The logits features · weightᵀ, (..., V). On CUDA the GEMM runs on the weight padded with zero
// rows to a multiple of 64 (cuBLAS's fast kernels need an aligned row stride), and the result is
// a view of the first V columns (row stride padded, not contiguous). Every model's head.
torch::Tensor output_logits(const torch::Tensor& features, const torch::Tensor& weight);

// The fused output head: the sum over rows of −log2 softmax(features · weightᵀ)[target], for
// features (..., d), weight (V, d), targets (...). Runs `chunk_rows` rows at a time (0: about
// 2^28 logits per chunk), so the (rows, V) logits never exist whole. For the backward it keeps
// softmax − onehot of every row (bf16 under autocast) when that fits `keep_bytes` (−1: 4 GB, or
// $HARMONIC_HEAD_KEEP_GB), else only each row's log-sum-exp, and the backward recomputes each
// chunk's logits: memory flat in T. Matmuls in bf16 under bf16 autocast, softmax in fp32.
torch::Tensor head_bits_sum(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets,
                            int64_t chunk_rows = 0, int64_t keep_bytes = -1);

}  // namespace harmonic
