#include <ATen/autocast_mode.h>

#include <cmath>

#include "model/error.h"
#include "model/harmonic.h"
#include "model/language_model.h"
#include "model/mamba.h"
#include "model/transformer.h"

namespace harmonic {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
    weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
    // Statistics in fp32 whatever the activation dtype (bf16 autocast).
    auto xf = x.to(torch::kFloat32);
    auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
    return (y * weight.to(torch::kFloat32)).to(x.scalar_type());
}

Bf16Autocast::Bf16Autocast(bool enable) : active_(enable) {
    if (!active_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
}

Bf16Autocast::~Bf16Autocast() {
    if (!active_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
}

int64_t LanguageModel::parameter_count() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
}

std::shared_ptr<LanguageModel> make_model(const ModelConfig& config) {
    config.validate("model config");
    switch (config.family) {
        case Family::Harmonic: return std::make_shared<HarmonicModel>(config);
        case Family::Transformer: return std::make_shared<TransformerModel>(config);
        case Family::Mamba: return std::make_shared<MambaModel>(config);
    }
    throw Error("unknown model family");
}

torch::Tensor bits_per_token(const torch::Tensor& logits, const torch::Tensor& tokens) {
    using torch::indexing::Slice;
    const int64_t V = logits.size(-1);
    auto pred = logits.index({Slice(), Slice(0, -1)}).reshape({-1, V}).to(torch::kFloat32);
    auto target = tokens.index({Slice(), Slice(1)}).reshape({-1});
    return torch::nn::functional::cross_entropy(pred, target) / std::log(2.0);
}

}  // namespace harmonic
