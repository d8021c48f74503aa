#include "kernels/residual.h"

#include <torch/torch.h>

#include <algorithm>

namespace harmonic::kernels {

void check_residual_args(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                         const std::vector<int64_t>& strides, int64_t pos0) {
    TORCH_CHECK(x.dim() == 3 && y.sizes() == x.sizes(), "residual_upsample_sum: x and y must be (B, C, d) alike, got ",
                x.sizes(), " and ", y.sizes());
    TORCH_CHECK(exts.size() == strides.size(), "residual_upsample_sum: one stride per level");
    TORCH_CHECK(pos0 >= 0, "residual_upsample_sum: pos0 must be >= 0");
    const int64_t C = x.size(1);
    for (std::size_t l = 0; l < exts.size(); ++l) {
        const int64_t s = strides[l];
        TORCH_CHECK(s >= 1, "residual_upsample_sum: stride must be >= 1");
        const int64_t rows = (pos0 + C) / s - pos0 / s + 1;  // the last token's row, plus one
        TORCH_CHECK(exts[l].dim() == 3 && exts[l].size(0) == x.size(0) && exts[l].size(2) == x.size(2) &&
                        exts[l].size(1) >= rows,
                    "residual_upsample_sum: level ", l, " needs (B, >= ", rows, ", d) rows, got ", exts[l].sizes());
    }
}

namespace {

// o += up(ext) in place, o (B, C, d).
void add_causal_upsample(torch::Tensor& o, const torch::Tensor& ext, int64_t pos0, int64_t stride) {
    const int64_t C = o.size(1);
    if (pos0 % stride != 0) {
        auto t = torch::arange(pos0, pos0 + C, torch::TensorOptions().dtype(torch::kLong).device(o.device()));
        o.add_(ext.index_select(1, torch::div(t + 1, stride, "floor") - pos0 / stride));
        return;
    }
    // On a step boundary the reads are runs: tokens 0 … stride−2 read row 0, then each run of
    // `stride` tokens reads the next row. Broadcast adds over views of o need no gathered (B, C, d)
    // copy, and their backward sums each run instead of an index_add.
    const int64_t head = std::min(stride - 1, C), runs = (C - head) / stride, tail = C - head - runs * stride;
    if (head > 0) o.narrow(1, 0, head).add_(ext.narrow(1, 0, 1));
    if (runs > 0)
        o.narrow(1, head, runs * stride)
            .view({o.size(0), runs, stride, o.size(2)})
            .add_(ext.narrow(1, 1, runs).unsqueeze(2));
    if (tail > 0) o.narrow(1, head + runs * stride, tail).add_(ext.narrow(1, runs + 1, 1));
}

}  // namespace

torch::Tensor residual_upsample_sum_reference(const torch::Tensor& x, const torch::Tensor& y,
                                              const std::vector<torch::Tensor>& exts,
                                              const std::vector<int64_t>& strides, int64_t pos0) {
    check_residual_args(x, y, exts, strides, pos0);
    auto o = (x + y).to(torch::promote_types(x.scalar_type(), torch::kFloat32));
    for (std::size_t l = 0; l < exts.size(); ++l) add_causal_upsample(o, exts[l], pos0, strides[l]);
    return o;
}

torch::Tensor causal_upsample_grad(const torch::Tensor& g, int64_t rows, int64_t pos0, int64_t stride) {
    const int64_t B = g.size(0), C = g.size(1), d = g.size(2);
    auto out = torch::zeros({B, rows, d}, g.options());
    if (pos0 % stride != 0) {
        auto t = torch::arange(pos0, pos0 + C, torch::TensorOptions().dtype(torch::kLong).device(g.device()));
        return out.index_add_(1, torch::div(t + 1, stride, "floor") - pos0 / stride, g);
    }
    const int64_t head = std::min(stride - 1, C), runs = (C - head) / stride, tail = C - head - runs * stride;
    if (head > 0) out.narrow(1, 0, 1).copy_(g.narrow(1, 0, head).sum(1, true));
    if (runs > 0) out.narrow(1, 1, runs).copy_(g.narrow(1, head, runs * stride).view({B, runs, stride, d}).sum(2));
    if (tail > 0) out.narrow(1, runs + 1, 1).copy_(g.narrow(1, head + runs * stride, tail).sum(1, true));
    return out;
}

#ifndef HARMONIC_WITH_CUDA_KERNELS
torch::Tensor residual_upsample_sum(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                                    const std::vector<int64_t>& strides, int64_t pos0) {
    return residual_upsample_sum_reference(x, y, exts, strides, pos0);
}
#endif

}  // namespace harmonic::kernels
