// Harmonic: the hierarchical state-space language model of arXiv 2606.24650, as reconstructed in
// docs/MODEL.md (equations, inferred choices and their alternatives are there).
#pragma once

#include "model/language_model.h"

namespace harmonic {

// One level's cell:  x̂ = RMSNorm(input);  u = W_in x̂ + b;  then
//   gated_ema:  g = σ(W_g u + b),  h_t = a ⊙ h_{t-1} + (1 - a) ⊙ (g_t ⊙ u_t),  a = exp(-1/tau) fixed
//   selective:  a_t = exp(-softplus(W_g u + b) / tau),  h_t = a_t ⊙ h_{t-1} + (1 - a_t) ⊙ u_t
// and y = W_out h + b.
struct LevelCellImpl : torch::nn::Module {
    LevelCellImpl(int64_t d, double tau, bool selective);
    struct Out {
        torch::Tensor y, h, decay, h_last;  // decay only when asked for (traces); h_last fp32 (B, D)
    };
    // x: (B, n, d); h0: (B, D). Parallel over n (one fused scan, kernels/level_scan.h).
    Out forward(const torch::Tensor& x, const torch::Tensor& h0, bool want_decay = false);
    RMSNorm norm{nullptr};
    torch::nn::Linear w_in{nullptr}, w_g{nullptr}, w_out{nullptr};
    double tau;
    bool selective;
};
TORCH_MODULE(LevelCell);

// The output triple d -> 2d -> 2d -> d with GELU between, applied on a residual.
struct OutputTripleImpl : torch::nn::Module {
    explicit OutputTripleImpl(int64_t d);
    torch::Tensor forward(const torch::Tensor& o);
    torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
};
TORCH_MODULE(OutputTriple);

// Levels 1..L with the upward prediction-error interfaces and the causal downward reads.
struct HarmonicBlockImpl : torch::nn::Module {
    HarmonicBlockImpl(const ModelConfig& config);
    torch::nn::ModuleList levels;            // LevelCell per level
    torch::nn::ModuleList predictors;        // P_{l+1}: d×d, no bias (routing "error" only)
    OutputTriple out{nullptr};
    int64_t pool;
    bool error_routing;
    bool top_down;
};
TORCH_MODULE(HarmonicBlock);

class HarmonicModel : public LanguageModel {
public:
    explicit HarmonicModel(const ModelConfig& config);
    ForwardOutput forward(const torch::Tensor& tokens, bool trace = false) override;
    std::unique_ptr<StreamState> initial_state(int64_t batch, const torch::Device& device) const override;
    ForwardOutput forward_chunk(const torch::Tensor& tokens, StreamState& state, bool trace = false) override;
    torch::Tensor head_weight() const override;

    torch::nn::Embedding embed{nullptr};
    torch::nn::ModuleList blocks;
    RMSNorm final_norm{nullptr};
    torch::nn::Linear head{nullptr};  // untied; absent (nullptr) when embeddings are tied
};

}  // namespace harmonic
