#include "kernels/selective_scan.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/linear_scan.h"

namespace harmonic::kernels {

namespace {

void check_args(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A, const torch::Tensor& Bm,
                const torch::Tensor& Cm, const torch::Tensor& D, const torch::Tensor& z, const torch::Tensor& h0) {
    TORCH_CHECK(x.dim() == 3 && delta.sizes() == x.sizes(), "selective_scan: x and delta must be (B, T, E)");
    TORCH_CHECK(A.dim() == 2 && A.size(0) == x.size(2), "selective_scan: A must be (E, N)");
    const int64_t Bsz = x.size(0), T = x.size(1), E = x.size(2), N = A.size(1);
    TORCH_CHECK(Bm.sizes() == torch::IntArrayRef({Bsz, T, N}) && Cm.sizes() == Bm.sizes(),
                "selective_scan: B and C must be (B, T, N)");
    TORCH_CHECK(!D.defined() || (D.dim() == 1 && D.size(0) == E), "selective_scan: D must be (E)");
    TORCH_CHECK(!z.defined() || z.sizes() == x.sizes(), "selective_scan: z must be (B, T, E)");
    TORCH_CHECK(!h0.defined() || h0.sizes() == torch::IntArrayRef({Bsz, E, N}), "selective_scan: h0 must be (B, E, N)");
}

}  // namespace

SelectiveScanResult selective_scan_reference(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                             const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                             const torch::Tensor& z, const torch::Tensor& h0, int64_t chunk) {
    check_args(x, delta, A, Bm, Cm, D, z, h0);
    const int64_t Bsz = x.size(0), T = x.size(1), E = x.size(2), N = A.size(1);
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

SelectiveScanResult selective_scan_cpu(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                       const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                       const torch::Tensor& z, const torch::Tensor& h0) {
    check_args(x, delta, A, Bm, Cm, D, z, h0);
    TORCH_CHECK(x.device().is_cpu(), "selective_scan_cpu: CPU tensors");
    const int64_t Bsz = x.size(0), T = x.size(1), E = x.size(2), N = A.size(1);
    auto f32 = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat32).contiguous() : t; };
    const auto xf = f32(x), df = f32(delta), Af = f32(A), Bf = f32(Bm), Cf = f32(Cm), Df = f32(D), zf = f32(z);
    auto y = torch::empty({Bsz, T, E}, xf.options());
    auto h = h0.defined() ? h0.to(torch::kFloat32).contiguous().clone() : torch::zeros({Bsz, E, N}, xf.options());
    const float *xp = xf.data_ptr<float>(), *dp = df.data_ptr<float>(), *Ap = Af.data_ptr<float>(),
                *Bp = Bf.data_ptr<float>(), *Cp = Cf.data_ptr<float>();
    const float* Dp = Df.defined() ? Df.data_ptr<float>() : nullptr;
    const float* zp = zf.defined() ? zf.data_ptr<float>() : nullptr;
    float *yp = y.data_ptr<float>(), *hp = h.data_ptr<float>();
    // A task is one batch row and a block of channels: at each step the block reads a contiguous
    // run of x, Δ (and z), and B_t, C_t once for all its channels.
    constexpr int64_t kBlock = 16;
    const int64_t blocks = (E + kBlock - 1) / kBlock;
    at::parallel_for(0, Bsz * blocks, 1, [&](int64_t begin, int64_t end) {
        // The block's states and each step's decays in task-local buffers: nothing the compiler
        // must assume aliases the inputs, so the loops over states stay in registers and L1.
        std::vector<float> states(kBlock * N), decay(N);
        float* __restrict__ hs = states.data();
        float* __restrict__ dA = decay.data();
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / blocks, e0 = (task % blocks) * kBlock, ne = std::min(E, e0 + kBlock) - e0;
            std::copy_n(hp + (b * E + e0) * N, ne * N, hs);
            for (int64_t t = 0; t < T; ++t) {
                const int64_t row = b * T + t;
                const float* __restrict__ Bt = Bp + row * N;
                const float* __restrict__ Ct = Cp + row * N;
                for (int64_t i = 0; i < ne; ++i) {
                    const int64_t e = e0 + i;
                    const float d = dp[row * E + e], xv = xp[row * E + e], u = d * xv;
                    const float* __restrict__ Ae = Ap + e * N;
                    float* __restrict__ he = hs + i * N;
                    for (int64_t n = 0; n < N; ++n) dA[n] = std::exp(d * Ae[n]);
                    float acc = 0.f;
                    for (int64_t n = 0; n < N; ++n) {
                        he[n] = dA[n] * he[n] + u * Bt[n];
                        acc += Ct[n] * he[n];
                    }
                    if (Dp) acc += xv * Dp[e];
                    if (zp) {
                        const float zv = zp[row * E + e];
                        acc *= zv / (1.f + std::exp(-zv));
                    }
                    yp[row * E + e] = acc;
                }
            }
            std::copy_n(hs, ne * N, hp + (b * E + e0) * N);
        }
    });
    return {y.to(x.scalar_type()), h};
}

SelectiveScanResult selective_scan_fallback(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                            const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                            const torch::Tensor& z, const torch::Tensor& h0) {
    bool cpu = true, grad = false;
    for (const torch::Tensor* t : {&x, &delta, &A, &Bm, &Cm, &D, &z, &h0}) {
        if (!t->defined()) continue;
        cpu = cpu && t->device().is_cpu();
        grad = grad || t->requires_grad();
    }
    if (cpu && !(grad && torch::GradMode::is_enabled())) return selective_scan_cpu(x, delta, A, Bm, Cm, D, z, h0);
    return selective_scan_reference(x, delta, A, Bm, Cm, D, z, h0);
}

#ifndef HARMONIC_WITH_CUDA_KERNELS
SelectiveScanResult selective_scan(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                   const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                   const torch::Tensor& z, const torch::Tensor& h0) {
    return selective_scan_fallback(x, delta, A, Bm, Cm, D, z, h0);
}
#endif

}  // namespace harmonic::kernels
