// The Mamba baseline: Mamba-1 blocks (Gu & Dao 2023) on a pre-norm residual stream: in-projection
// to (x, z), causal depthwise conv + SiLU on x, input-dependent Δ, B, C, selective scan, D skip,
// SiLU(z) gate, out-projection (docs/MODEL.md §4).
#pragma once

#include "model/language_model.h"

namespace harmonic {

struct MambaLayerImpl : torch::nn::Module {
    MambaLayerImpl(int64_t d, int64_t d_inner, int64_t d_state, int64_t d_conv, int64_t dt_rank);
    RMSNorm norm{nullptr};
    torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
    torch::Tensor conv_weight, conv_bias, A_log, D;
    int64_t d_inner, d_state, d_conv, dt_rank;
};
TORCH_MODULE(MambaLayer);

class MambaModel : public LanguageModel {
public:
    explicit MambaModel(const ModelConfig& config);
    ForwardOutput forward(const torch::Tensor& tokens, bool trace = false) override;
    std::unique_ptr<StreamState> initial_state(int64_t batch, const torch::Device& device) const override;
    ForwardOutput forward_chunk(const torch::Tensor& tokens, StreamState& state, bool trace = false) override;
    torch::Tensor head_weight() const override;

    torch::nn::Embedding embed{nullptr};
    torch::nn::ModuleList layers;
    RMSNorm final_norm{nullptr};
    torch::nn::Linear head{nullptr};
};

}  // namespace harmonic
