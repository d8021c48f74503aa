// Where the kernels' CPU paths (sequential loops, no autograd) replace the differentiable
// references: every defined input on the CPU, and no gradient wanted through any of them (grad
// mode off, or no input requires one), as in the desktop tool and `harmonic score`.
#pragma once

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

namespace harmonic::kernels {

inline bool cpu_without_grad(std::initializer_list<const torch::Tensor*> inputs) {
    bool grad = false;
    for (const torch::Tensor* t : inputs) {
        if (!t->defined()) continue;
        if (!t->device().is_cpu()) return false;
        grad = grad || t->requires_grad();
    }
    return !(grad && torch::GradMode::is_enabled());
}

// The sequential first-order scan h_t = a_t h_{t-1} + b_t over (B, T, C) fp32 buffers, shared by
// the linear and level scans' CPU paths. A task is one batch row and a block of channels, walking
// time; each step covers a contiguous run of channels, which the compiler vectorises where
// `coef` allows. The state is fp64, rounded once per output: an fp32 state collects one rounding a
// step, which with decays near 1 (long memory) goes past the tests' 2x rule within a few thousand
// steps and grows with T. coef(e, c, a, b) gives the coefficients of element e = (b·T + t)·C + c,
// c its channel; h0: (B, C) or null (zeros).
template <typename Coef>
void sequential_scan_cpu(int64_t B, int64_t T, int64_t C, const float* h0, float* h, Coef coef) {
    constexpr int64_t kBlock = 256;
    const int64_t blocks = (C + kBlock - 1) / kBlock;
    at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
        double state[kBlock];
        for (int64_t task = begin; task < end; ++task) {
            const int64_t bb = task / blocks, c0 = (task % blocks) * kBlock, n = std::min(C, c0 + kBlock) - c0;
            for (int64_t i = 0; i < n; ++i) state[i] = h0 ? h0[bb * C + c0 + i] : 0.f;
            for (int64_t t = 0; t < T; ++t) {
                const int64_t row = (bb * T + t) * C + c0;
                float* __restrict__ h_t = h + row;
#pragma omp simd
                for (int64_t i = 0; i < n; ++i) {
                    float a, b;
                    coef(row + i, c0 + i, a, b);
                    state[i] = double(a) * state[i] + double(b);
                    h_t[i] = static_cast<float>(state[i]);
                }
            }
        }
    });
}

}  // namespace harmonic::kernels
