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

namespace {

// The fused head as an autograd function (see head_bits_sum). Forward keeps only each row's
// log-sum-exp; backward recomputes a chunk's logits, turns them into softmax − onehot and
// multiplies back, so neither pass holds more than one chunk of (rows, V).
struct HeadBits : public torch::autograd::Function<HeadBits> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& features,
                                 const torch::Tensor& weight, const torch::Tensor& targets, int64_t chunk, bool bf16) {
        const auto compute = bf16 ? torch::kBFloat16 : torch::promote_types(features.scalar_type(), weight.scalar_type());
        const auto acc = torch::promote_types(compute, torch::kFloat32);  // softmax and sums: fp32 at least
        const auto w = weight.to(compute);
        const int64_t N = features.size(0);
        auto lse = torch::empty({N}, features.options().dtype(acc));
        auto total = torch::zeros({}, features.options().dtype(acc));
        for (int64_t i = 0; i < N; i += chunk) {
            const int64_t n = std::min(chunk, N - i);
            auto logits = torch::matmul(features.slice(0, i, i + n).to(compute), w.t()).to(acc);
            auto l = torch::logsumexp(logits, 1);
            auto picked = logits.gather(1, targets.slice(0, i, i + n).unsqueeze(1)).squeeze(1);
            total = total + (l - picked).sum();
            lse.slice(0, i, i + n).copy_(l);
        }
        ctx->save_for_backward({features, weight, targets, lse});
        ctx->saved_data["chunk"] = chunk;
        ctx->saved_data["bf16"] = bf16;
        return total / std::log(2.0);
    }

    static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
        const auto saved = ctx->get_saved_variables();
        const auto& features = saved[0];
        const auto& weight = saved[1];
        const auto& targets = saved[2];
        const auto& lse = saved[3];
        const int64_t chunk = ctx->saved_data["chunk"].toInt();
        const auto compute = ctx->saved_data["bf16"].toBool()
                                 ? torch::kBFloat16
                                 : torch::promote_types(features.scalar_type(), weight.scalar_type());
        const auto acc = torch::promote_types(compute, torch::kFloat32);
        const auto w = weight.to(compute);
        const auto scale = (grads[0] / std::log(2.0)).to(acc);
        const int64_t N = features.size(0);
        auto d_features = torch::empty_like(features);
        auto d_weight = torch::zeros(weight.sizes(), weight.options().dtype(acc));
        for (int64_t i = 0; i < N; i += chunk) {
            const int64_t n = std::min(chunk, N - i);
            const auto f = features.slice(0, i, i + n).to(compute);
            auto p = torch::exp(torch::matmul(f, w.t()).to(acc) - lse.slice(0, i, i + n).unsqueeze(1));
            p.scatter_add_(1, targets.slice(0, i, i + n).unsqueeze(1),
                           -torch::ones({n, 1}, p.options()));  // softmax − onehot(target)
            const auto g = (p * scale).to(compute);
            d_features.slice(0, i, i + n).copy_(torch::matmul(g, w));
            d_weight.add_(torch::matmul(g.t(), f).to(acc));
        }
        return {d_features, d_weight.to(weight.scalar_type()), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace

torch::Tensor head_bits_sum(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets,
                            int64_t chunk_rows) {
    const int64_t d = features.size(-1), V = weight.size(0);
    if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, (int64_t(1) << 27) / V);
    const bool bf16 = features.is_cuda() && at::autocast::is_autocast_enabled(at::kCUDA);
    return HeadBits::apply(features.reshape({-1, d}), weight, targets.reshape({-1}), chunk_rows, bf16);
}

}  // namespace harmonic
