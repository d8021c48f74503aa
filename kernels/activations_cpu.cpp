#include "kernels/activations_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu_math.h"

namespace harmonic::kernels {

namespace {

// Elements go through the function in blocks of kLanes, the last block padded, so that no element
// takes a scalar epilogue that the others do not.
constexpr int64_t kLanes = 16;

template <float (*F)(float)>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void apply_blocks(const float* __restrict__ in, float* __restrict__ out, int64_t b0, int64_t b1, int64_t n) {
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t start = b * kLanes;
        alignas(64) float x[kLanes], y[kLanes];
        for (int64_t i = 0; i < kLanes; ++i) x[i] = start + i < n ? in[start + i] : 0.f;
#pragma omp simd
        for (int64_t i = 0; i < kLanes; ++i) y[i] = F(x[i]);
        const int64_t m = std::min(kLanes, n - start);
        for (int64_t i = 0; i < m; ++i) out[start + i] = y[i];
    }
}

template <float (*F)(float)>
torch::Tensor elementwise(const torch::Tensor& x, const char* name) {
    TORCH_CHECK(x.device().is_cpu() && x.is_floating_point(), name, ": a floating CPU tensor, got ", x.toString());
    const auto in = x.to(torch::kFloat32).contiguous();
    auto out = torch::empty_like(in);
    const int64_t n = in.numel(), blocks = (n + kLanes - 1) / kLanes;
    const float* src = in.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, blocks, 2048, [&](int64_t b0, int64_t b1) { apply_blocks<F>(src, dst, b0, b1, n); });
    return out;
}

}  // namespace

torch::Tensor silu_cpu(const torch::Tensor& x) { return elementwise<silu_vectorisable>(x, "silu_cpu"); }

torch::Tensor softplus_cpu(const torch::Tensor& x) { return elementwise<softplus_vectorisable>(x, "softplus_cpu"); }

}  // namespace harmonic::kernels
