#include <ATen/autocast_mode.h>

#include <cmath>

#include "kernels/output_head.h"

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
    // Statistics in fp32 whatever the activation dtype (bf16 autocast). On CUDA, LibTorch's fused
    // kernel (one pass, and one for the backward) instead of the eight elementwise and reduction
    // kernels below.
    if (x.is_cuda() && x.numel() > 0) {
        const int64_t d = x.size(-1);
        return at::rms_norm(x.to(torch::kFloat32), {d}, weight.to(torch::kFloat32), eps).to(x.scalar_type());
    }
    auto xf = x.to(torch::kFloat32);
    auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
    return (y * weight.to(torch::kFloat32)).to(x.scalar_type());
}

torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
    const auto& bias = layer->bias;
    if (!x.is_cuda() || !bias.defined() || x.dim() < 2) return layer.ptr()->forward(x);
    auto sizes = x.sizes().vec();
    sizes.back() = layer->weight.size(0);
    return torch::addmm(bias, x.reshape({-1, x.size(-1)}), layer->weight.t()).view(sizes);
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

// cuBLAS runs the head GEMM on its aligned tensor-core kernels only when the output's row stride is
// a multiple of 8 elements; with the paper's V = 50,257 it falls back to an "align1" kernel several
// times slower (docs/KERNELS.md § Output head; bench/experiments/head_gemm.py). So on CUDA the
// weight gets zero rows up to a multiple of 64 (+0.1 % work) and the logits are a view of the first V
// columns. The CPU path is left as it was (no gain there).
constexpr int64_t kHeadAlign = 64;

int64_t padded_vocab(const torch::Tensor& features, int64_t V) {
    return features.is_cuda() ? (V + kHeadAlign - 1) / kHeadAlign * kHeadAlign : V;
}

torch::Tensor pad_rows(const torch::Tensor& weight, int64_t rows) {
    if (rows == weight.size(0)) return weight;
    return torch::cat({weight, weight.new_zeros({rows - weight.size(0), weight.size(1)})});
}

// Rows per chunk: about 2^28 logits (512 MB in bf16), the fastest of the sizes tried: chunks near
// the L2's size do not keep the logits in L2 anyway, and small chunks pay per-launch costs; memory
// stays flat in the length (docs/KERNELS.md § Output head).
// HARMONIC_HEAD_CHUNK_ROWS overrides it (benchmark knob).
int64_t default_head_chunk_rows(int64_t V) {
    const double fallback = double(std::max<int64_t>(1, (int64_t(1) << 28) / V));
    return static_cast<int64_t>(env_number("HARMONIC_HEAD_CHUNK_ROWS", fallback, 1, double(int64_t(1) << 40), true));
}

// The gradient of the loss with respect to the logits, softmax − onehot, is kept from the forward
// when it fits this many bytes (HARMONIC_HEAD_KEEP_GB, default 4): the backward is then two GEMMs
// with no recomputed logits (2 x 8K tokens x 50,257 in bf16: 1.6 GB). Longer inputs recompute it.
int64_t default_head_keep_bytes() {
    return static_cast<int64_t>(env_number("HARMONIC_HEAD_KEEP_GB", 4.0, 0.0, 1e6) * double(int64_t(1) << 30));
}

// The fused head as an autograd function (see head_bits_sum). Forward: each chunk's logits by one
// GEMM on the padded weight, then the softmax passes of kernels/output_head.h (one read of the
// chunk on CUDA). What the backward needs is either the gradient softmax − onehot of every row,
// written over the chunk's logits in place when it fits the keep budget (backward: two GEMMs), or
// only each row's log-sum-exp (backward: recompute each chunk's logits, then the gradient). Either
// way no pass holds the (rows, V) logits beyond the budget.
struct HeadBits : public torch::autograd::Function<HeadBits> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& features,
                                 const torch::Tensor& weight, const torch::Tensor& targets, int64_t chunk, bool bf16,
                                 int64_t keep_bytes) {
        const auto compute = bf16 ? torch::kBFloat16 : torch::promote_types(features.scalar_type(), weight.scalar_type());
        const auto acc = torch::promote_types(compute, torch::kFloat32);  // softmax and sums: fp32 at least
        const int64_t V = weight.size(0), Vp = padded_vocab(features, V);
        const int64_t N = features.size(0);
        // keep_bytes is 0 when no gradient is wanted (see head_bits_sum).
        const bool keep = keep_bytes > 0 && N * Vp * int64_t(c10::elementSize(compute)) <= keep_bytes;
        auto save = [&](const torch::Tensor& kept_or_lse) {
            ctx->save_for_backward({features, weight, targets, kept_or_lse});
            ctx->saved_data["chunk"] = chunk;
            ctx->saved_data["bf16"] = bf16;
            ctx->saved_data["kept"] = keep;
        };
        // Cast once: the weight for either path, the features whole when only the log-sum-exp is
        // kept (the chunks below then slice the cast copy).
        const auto wc = weight.to(compute);
        const auto fc = keep ? features : features.to(compute);
        if (!keep && kernels::head_lse_fused_applies(fc, wc)) {
            // On a Hopper GPU one kernel computes it with the GEMM, the logits never written
            // (kernels/output_head.h, head_lse_fused).
            const auto r = kernels::head_lse_fused(fc, wc, targets);
            save(r.lse);
            return (r.lse - r.picked).sum() / std::log(2.0);
        }
        const auto w = pad_rows(wc, Vp);
        auto lse = torch::empty({N}, features.options().dtype(acc));
        auto picked = torch::empty({N}, features.options().dtype(acc));
        torch::Tensor grad_logits = keep ? torch::empty({N, Vp}, features.options().dtype(compute)) : torch::Tensor();
        const auto one = torch::ones({1}, features.options().dtype(acc));
        for (int64_t i = 0; i < N; i += chunk) {
            const int64_t n = std::min(chunk, N - i);
            const auto f = fc.slice(0, i, i + n).to(compute);
            torch::Tensor logits;
            if (keep) {
                logits = grad_logits.slice(0, i, i + n);
                at::mm_out(logits, f, w.t());
            } else {
                logits = torch::matmul(f, w.t());
            }
            const auto t = targets.slice(0, i, i + n);
            auto r = kernels::head_lse(logits, V, t);
            lse.slice(0, i, i + n).copy_(r.lse);
            picked.slice(0, i, i + n).copy_(r.picked);
            if (keep) kernels::head_softmax_grad(logits, V, r.lse, t, one, logits);  // in place
        }
        save(keep ? grad_logits : lse);
        return (lse - picked).sum() / std::log(2.0);
    }

    static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
        const auto saved = ctx->get_saved_variables();
        const auto& features = saved[0];
        const auto& weight = saved[1];
        const auto& targets = saved[2];
        const int64_t chunk = ctx->saved_data["chunk"].toInt();
        const auto compute = ctx->saved_data["bf16"].toBool()
                                 ? torch::kBFloat16
                                 : torch::promote_types(features.scalar_type(), weight.scalar_type());
        const auto acc = torch::promote_types(compute, torch::kFloat32);
        const int64_t V = weight.size(0), Vp = padded_vocab(features, V);
        const auto w = pad_rows(weight.to(compute), Vp);
        const auto scale = (grads[0] / std::log(2.0)).to(acc);
        // bf16 on CUDA: the weight gradient accumulates in fp32 inside the GEMM (no bf16 rounding
        // of each chunk's contribution).
        const bool fp32_out = compute == torch::kBFloat16 && features.is_cuda();
        auto weight_grad = [&](const torch::Tensor& g, const torch::Tensor& f) {
            return fp32_out ? at::mm(g.t(), f, acc) : torch::matmul(g.t(), f).to(acc);
        };
        torch::Tensor d_features, d_weight;
        if (ctx->saved_data["kept"].toBool()) {
            const auto& g = saved[3];  // softmax − onehot, unscaled
            const auto f = features.to(compute);
            d_features = (torch::matmul(g, w).to(acc) * scale).to(features.scalar_type());
            d_weight = weight_grad(g, f) * scale;
        } else {
            const auto& lse = saved[3];
            const int64_t N = features.size(0);
            d_features = torch::empty_like(features);
            d_weight = torch::zeros({Vp, weight.size(1)}, weight.options().dtype(acc));
            for (int64_t i = 0; i < N; i += chunk) {
                const int64_t n = std::min(chunk, N - i);
                const auto f = features.slice(0, i, i + n).to(compute);
                auto logits = torch::matmul(f, w.t());
                const auto g = kernels::head_softmax_grad(logits, V, lse.slice(0, i, i + n), targets.slice(0, i, i + n),
                                                          scale, logits);  // in place
                d_features.slice(0, i, i + n).copy_(torch::matmul(g, w));
                if (fp32_out) d_weight = at::addmm(d_weight, g.t(), f, acc);
                else d_weight.add_(torch::matmul(g.t(), f).to(acc));
            }
        }
        return {d_features, d_weight.narrow(0, 0, V).to(weight.scalar_type()), torch::Tensor(), torch::Tensor(),
                torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace

torch::Tensor output_logits(const torch::Tensor& features, const torch::Tensor& weight) {
    const int64_t V = weight.size(0), Vp = padded_vocab(features, V);
    if (Vp == V) return torch::matmul(features, weight.t());
    // Under autocast the GEMM reads the weight in the autocast dtype: cast before padding, so the
    // padded copy is made in bf16 (half the bytes) rather than in fp32 and then cast again.
    const bool autocast = features.is_cuda() && at::autocast::is_autocast_enabled(at::kCUDA);
    const auto w = autocast ? weight.to(at::autocast::get_autocast_dtype(at::kCUDA)) : weight;
    return torch::matmul(features, pad_rows(w, Vp).t()).narrow(-1, 0, V);
}

torch::Tensor head_bits_sum(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets,
                            int64_t chunk_rows, int64_t keep_bytes) {
    const int64_t d = features.size(-1), V = weight.size(0);
    if (chunk_rows <= 0) chunk_rows = default_head_chunk_rows(V);
    const bool bf16 = features.is_cuda() && at::autocast::is_autocast_enabled(at::kCUDA);
    if (keep_bytes < 0) keep_bytes = default_head_keep_bytes();
    // Grad mode is off inside the function's forward: decide here whether a backward can follow.
    if (!torch::GradMode::is_enabled() || !(features.requires_grad() || weight.requires_grad())) keep_bytes = 0;
    return HeadBits::apply(features.reshape({-1, d}), weight, targets.reshape({-1}), chunk_rows, bf16, keep_bytes);
}

}  // namespace harmonic
