#include "kernels/selective_scan.h"

#include <torch/torch.h>

#include "kernels/linear_scan.h"

namespace harmonic::kernels {

SelectiveScanResult selective_scan_reference(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                             const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                             const torch::Tensor& z, const torch::Tensor& h0, int64_t chunk) {
    TORCH_CHECK(x.dim() == 3 && delta.sizes() == x.sizes(), "selective_scan: x and delta must be (B, T, E)");
    TORCH_CHECK(A.dim() == 2 && A.size(0) == x.size(2), "selective_scan: A must be (E, N)");
    const int64_t Bsz = x.size(0), T = x.size(1), E = x.size(2), N = A.size(1);
    TORCH_CHECK(Bm.sizes() == torch::IntArrayRef({Bsz, T, N}) && Cm.sizes() == Bm.sizes(),
                "selective_scan: B and C must be (B, T, N)");
    using torch::indexing::Slice;
    const auto f32 = torch::kFloat32;
    auto xf = x.to(f32), df = delta.to(f32), Af = A.to(f32), Bf = Bm.to(f32), Cf = Cm.to(f32);
    torch::Tensor h = h0.defined() ? h0.to(f32) : torch::zeros({Bsz, E, N}, xf.options());
    std::vector<torch::Tensor> ys;
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
        const int64_t t1 = std::min(T, t0 + chunk), L = t1 - t0;
        auto dt = df.index({Slice(), Slice(t0, t1)}).unsqueeze(-1);                  // (B, L, E, 1)
        auto dA = torch::exp(dt * Af);                                                // (B, L, E, N)
        auto dBx = dt * xf.index({Slice(), Slice(t0, t1)}).unsqueeze(-1) *
                   Bf.index({Slice(), Slice(t0, t1)}).unsqueeze(2);                   // (B, L, E, N)
        auto hs = linear_scan_reference(dA.reshape({Bsz, L, E * N}), dBx.reshape({Bsz, L, E * N}),
                                        h.reshape({Bsz, E * N}))
                      .reshape({Bsz, L, E, N});
        ys.push_back((hs * Cf.index({Slice(), Slice(t0, t1)}).unsqueeze(2)).sum(-1));  // (B, L, E)
        h = hs.index({Slice(), L - 1});
    }
    auto y = T > 0 ? torch::cat(ys, 1) : torch::zeros_like(xf);
    if (D.defined()) y = y + xf * D.to(f32);
    if (z.defined()) y = y * torch::silu(z.to(f32));
    return {y.to(x.scalar_type()), h};
}

#ifndef HARMONIC_WITH_CUDA_KERNELS
SelectiveScanResult selective_scan(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                   const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                   const torch::Tensor& z, const torch::Tensor& h0) {
    return selective_scan_reference(x, delta, A, Bm, Cm, D, z, h0);
}
#endif

}  // namespace harmonic::kernels
