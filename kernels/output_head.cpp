#include "kernels/output_head.h"

#include <torch/torch.h>

#include <algorithm>

namespace harmonic::kernels {

namespace {

void check_args(const char* what, const torch::Tensor& logits, int64_t V, const torch::Tensor& targets) {
    TORCH_CHECK(logits.dim() == 2 && logits.is_contiguous(), what, ": logits must be contiguous (n, ld), got ",
                logits.sizes());
    TORCH_CHECK(V >= 1 && V <= logits.size(1), what, ": V = ", V, " must be in [1, ", logits.size(1), "]");
    TORCH_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0) && targets.scalar_type() == torch::kLong,
                what, ": targets must be (n) int64, got ", targets.sizes());
}

void check_out(const torch::Tensor& logits, const torch::Tensor& out) {
    TORCH_CHECK(!out.defined() || (out.sizes() == logits.sizes() && out.scalar_type() == logits.scalar_type() &&
                                   out.is_contiguous() && out.device() == logits.device()),
                "head_softmax_grad: out must be a contiguous tensor like logits, got ", out.sizes());
}

}  // namespace

void check_fused_args(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets) {
    TORCH_CHECK(features.dim() == 2 && weight.dim() == 2 && features.size(1) == weight.size(1) && weight.size(0) >= 1,
                "head_lse_fused: features (n, K) and weight (V, K) must share K, got ", features.sizes(), " and ",
                weight.sizes());
    TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0) && targets.scalar_type() == torch::kLong,
                "head_lse_fused: targets must be (n) int64, got ", targets.sizes());
}

HeadLse head_lse_fused_reference(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets) {
    check_fused_args(features, weight, targets);
    const auto acc = torch::promote_types(torch::promote_types(features.scalar_type(), weight.scalar_type()), torch::kFloat32);
    const auto w = weight.to(acc);
    const int64_t n = features.size(0), V = weight.size(0);
    const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 26) / V);  // rows whose logits take 256 MB in fp32
    HeadLse out{torch::empty({n}, features.options().dtype(acc)), torch::empty({n}, features.options().dtype(acc))};
    for (int64_t i = 0; i < n; i += chunk) {
        const int64_t m = std::min(chunk, n - i);
        const auto r = head_lse_reference(torch::matmul(features.slice(0, i, i + m).to(acc), w.t()), V,
                                          targets.slice(0, i, i + m));
        out.lse.slice(0, i, i + m).copy_(r.lse);
        out.picked.slice(0, i, i + m).copy_(r.picked);
    }
    return out;
}

HeadLse head_lse_reference(const torch::Tensor& logits, int64_t V, const torch::Tensor& targets) {
    check_args("head_lse", logits, V, targets);
    auto classes = logits.narrow(1, 0, V).to(torch::promote_types(logits.scalar_type(), torch::kFloat32));
    return {torch::logsumexp(classes, 1), classes.gather(1, targets.unsqueeze(1)).squeeze(1)};
}

torch::Tensor head_softmax_grad_reference(const torch::Tensor& logits, int64_t V, const torch::Tensor& lse,
                                          const torch::Tensor& targets, const torch::Tensor& scale,
                                          const torch::Tensor& out) {
    check_args("head_softmax_grad", logits, V, targets);
    check_out(logits, out);
    const auto acc = torch::promote_types(logits.scalar_type(), torch::kFloat32);
    auto p = torch::exp(logits.narrow(1, 0, V).to(acc) - lse.to(acc).unsqueeze(1));
    p.scatter_add_(1, targets.unsqueeze(1), -torch::ones({p.size(0), 1}, p.options()));
    auto g = out.defined() ? out : torch::empty_like(logits);
    g.narrow(1, 0, V).copy_(p * scale.to(acc).reshape({}));
    if (V < g.size(1)) g.narrow(1, V, g.size(1) - V).zero_();
    return g;
}

#ifndef HARMONIC_WITH_CUDA_KERNELS
bool head_lse_fused_applies(const torch::Tensor&, const torch::Tensor&) { return false; }

HeadLse head_lse_fused(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets) {
    return head_lse_fused_reference(features, weight, targets);
}

HeadLse head_lse(const torch::Tensor& logits, int64_t V, const torch::Tensor& targets) {
    return head_lse_reference(logits, V, targets);
}

torch::Tensor head_softmax_grad(const torch::Tensor& logits, int64_t V, const torch::Tensor& lse,
                                const torch::Tensor& targets, const torch::Tensor& scale, const torch::Tensor& out) {
    return head_softmax_grad_reference(logits, V, lse, targets, scale, out);
}
#endif

}  // namespace harmonic::kernels
