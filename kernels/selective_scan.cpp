#include "kernels/selective_scan.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu_math.h"
#include "kernels/cpu_path.h"
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

namespace {

struct ScanTask {
    const float *x, *delta, *A, *Bm, *Cm, *D, *z;
    float *y, *h;
    int64_t T, E, N;
};

// One batch row b and the channels [e0, e0 + ne), ne <= W, with the channels as the vector lanes:
// per step and state, e^(Δ·A), the state update and C·h are one vector operation each (W = 16: one
// AVX-512 register), and the sum over states needs no horizontal reduction (it runs in the scalar
// loop's order). Cloned for AVX-512 and AVX2 + FMA, chosen at load time, with a baseline x86-64
// version.
template <int64_t W>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void scan_channels(const ScanTask& p, int64_t b, int64_t e0, int64_t ne, float* __restrict__ hs,
                   float* __restrict__ At) {
    const int64_t T = p.T, E = p.E, N = p.N;
    // State-major copies, lane = channel; idle lanes get A = 0 and Δ = x = 0, so they stay at 0.
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < W; ++i) {
            At[n * W + i] = i < ne ? p.A[(e0 + i) * N + n] : 0.f;
            hs[n * W + i] = i < ne ? p.h[(b * E + e0 + i) * N + n] : 0.f;
        }
    alignas(64) float d[W], xv[W], u[W], acc[W];
    for (int64_t t = 0; t < T; ++t) {
        const int64_t row = (b * T + t) * E + e0;
        for (int64_t i = 0; i < W; ++i) {
            d[i] = i < ne ? p.delta[row + i] : 0.f;
            xv[i] = i < ne ? p.x[row + i] : 0.f;
            u[i] = d[i] * xv[i];
            acc[i] = 0.f;
        }
        const float* __restrict__ Bt = p.Bm + (b * T + t) * N;
        const float* __restrict__ Ct = p.Cm + (b * T + t) * N;
        for (int64_t n = 0; n < N; ++n) {
            const float bn = Bt[n], cn = Ct[n];
            float* __restrict__ hn = hs + n * W;
            const float* __restrict__ an = At + n * W;
#pragma omp simd
            for (int64_t i = 0; i < W; ++i) {
                hn[i] = exp_vectorisable(d[i] * an[i]) * hn[i] + u[i] * bn;
                acc[i] += cn * hn[i];
            }
        }
        if (p.D)
            for (int64_t i = 0; i < ne; ++i) acc[i] += xv[i] * p.D[e0 + i];
        if (p.z) {
#pragma omp simd
            for (int64_t i = 0; i < W; ++i) {
                const float zv = i < ne ? p.z[row + i] : 0.f;
                acc[i] *= silu_vectorisable(zv);
            }
        }
        for (int64_t i = 0; i < ne; ++i) p.y[row + i] = acc[i];
    }
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < ne; ++i) p.h[(b * E + e0 + i) * N + n] = hs[n * W + i];
}

// Row block [r0, r1) of the (rows, E) deltas: out[r, e] = mean_n exp(delta[r, e] · At[n, e]), At = Aᵀ.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void decay_mean_rows(const float* __restrict__ delta, const float* __restrict__ At, float* __restrict__ out,
                     int64_t r0, int64_t r1, int64_t E, int64_t N) {
    const float inv_n = 1.f / static_cast<float>(N);
    for (int64_t r = r0; r < r1; ++r) {
        const float* __restrict__ d = delta + r * E;
        float* __restrict__ o = out + r * E;
        for (int64_t e = 0; e < E; ++e) o[e] = 0.f;
        for (int64_t n = 0; n < N; ++n) {
            const float* __restrict__ an = At + n * E;
#pragma omp simd
            for (int64_t e = 0; e < E; ++e) o[e] += exp_vectorisable(d[e] * an[e]);
        }
#pragma omp simd
        for (int64_t e = 0; e < E; ++e) o[e] *= inv_n;
    }
}

}  // namespace

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
    const ScanTask task{xf.data_ptr<float>(),
                        df.data_ptr<float>(),
                        Af.data_ptr<float>(),
                        Bf.data_ptr<float>(),
                        Cf.data_ptr<float>(),
                        Df.defined() ? Df.data_ptr<float>() : nullptr,
                        zf.defined() ? zf.data_ptr<float>() : nullptr,
                        y.data_ptr<float>(),
                        h.data_ptr<float>(),
                        T,
                        E,
                        N};
    // A task is one batch row and a block of channels: at each step the block reads a contiguous
    // run of x, Δ (and z), and B_t, C_t once for all its channels. Blocks of 64 channels (four
    // independent vector chains a state) are faster than blocks of 16 (docs/KERNELS.md § CPU
    // paths), but give fewer tasks: 16 where 64 would leave threads idle.
    auto run = [&](auto lanes) {
        constexpr int64_t W = decltype(lanes)::value;
        const int64_t blocks = (E + W - 1) / W;
        at::parallel_for(0, Bsz * blocks, 1, [&](int64_t begin, int64_t end) {
            // The block's states and its A (state-major) in task-local buffers: nothing the compiler
            // must assume aliases the inputs, so the loops over states stay in registers and L1.
            std::vector<float> states(W * N), a_lanes(W * N);
            for (int64_t i = begin; i < end; ++i) {
                const int64_t b = i / blocks, e0 = (i % blocks) * W;
                scan_channels<W>(task, b, e0, std::min(E, e0 + W) - e0, states.data(), a_lanes.data());
            }
        });
    };
    if (Bsz * ((E + 63) / 64) >= 2 * int64_t(at::get_num_threads()))
        run(std::integral_constant<int64_t, 64>{});
    else
        run(std::integral_constant<int64_t, 16>{});
    return {y.to(x.scalar_type()), h};
}

torch::Tensor selective_decay_mean(const torch::Tensor& delta, const torch::Tensor& A) {
    TORCH_CHECK(delta.dim() == 3 && A.dim() == 2 && A.size(0) == delta.size(2),
                "selective_decay_mean: delta must be (B, T, E) and A (E, N), got ", delta.sizes(), " and ", A.sizes());
    torch::NoGradGuard no_grad;
    const auto d = delta.to(torch::kFloat32);
    const auto a = A.to(d.device(), torch::kFloat32);
    if (!d.device().is_cpu() || A.size(1) == 0) return torch::exp(d.unsqueeze(-1) * a).mean(-1);
    const auto dc = d.contiguous(), At = a.t().contiguous();
    const int64_t E = d.size(2), N = a.size(1), rows = d.size(0) * d.size(1);
    auto out = torch::empty(d.sizes(), dc.options());
    const float *dp = dc.data_ptr<float>(), *ap = At.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) { decay_mean_rows(dp, ap, op, r0, r1, E, N); });
    return out;
}

SelectiveScanResult selective_scan_fallback(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                            const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                            const torch::Tensor& z, const torch::Tensor& h0) {
    if (cpu_without_grad({&x, &delta, &A, &Bm, &Cm, &D, &z, &h0})) return selective_scan_cpu(x, delta, A, Bm, Cm, D, z, h0);
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
