// The Transformer baseline: pre-norm (LayerNorm), rotary position embeddings, fused
// scaled-dot-product attention, GELU MLP, untied head (docs/MODEL.md §3).
#pragma once

#include "model/language_model.h"

namespace harmonic {

struct TransformerLayerImpl : torch::nn::Module {
    TransformerLayerImpl(int64_t d, int64_t heads, int64_t d_ff);
    torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
    torch::nn::Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr}, fc1{nullptr}, fc2{nullptr};
    int64_t heads;
};
TORCH_MODULE(TransformerLayer);

class TransformerModel : public LanguageModel {
public:
    explicit TransformerModel(const ModelConfig& config);
    // Plain causal attention over the whole sequence (training; for T <= context it equals the
    // chunked forward).
    ForwardOutput forward(const torch::Tensor& tokens, bool trace = false) override;
    std::unique_ptr<StreamState> initial_state(int64_t batch, const torch::Device& device) const override;
    // Sliding window: each token attends to itself and the context − 1 tokens before it.
    ForwardOutput forward_chunk(const torch::Tensor& tokens, StreamState& state, bool trace = false) override;
    torch::Tensor head_weight() const override;

    torch::nn::Embedding embed{nullptr};
    torch::nn::ModuleList layers;
    torch::nn::LayerNorm final_norm{nullptr};
    torch::nn::Linear head{nullptr};

private:
    ForwardOutput run(const torch::Tensor& tokens, StreamState* state, bool trace);
};

}  // namespace harmonic
