// Plain-arithmetic versions of libm functions for the CPU paths: the compiler vectorises the loops
// that call them (libm is a call per element), and every element gets the same operations, so a
// result does not depend on which vector lane or thread computed it.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/softplus.h"

namespace harmonic::kernels {

// e^x within 1 ulp on [−87, 88] (Cody–Waite reduction, Cephes's degree-5 polynomial), clamped
// there (e^−87 ≈ 1.6e−38 stands for 0), NaN kept. Plain arithmetic, so that the compiler
// vectorises the loops that call it; libm's expf is a call per element, which made it two thirds
// of a CPU Mamba forward (BENCHMARKS § CPU path).
inline float exp_vectorisable(float x) {
    x = x < -87.f ? -87.f : x;
    x = x > 88.f ? 88.f : x;
    constexpr float kRound = 12582912.f;  // 1.5·2^23: adding it rounds to an integer
    const float kf = (x * 1.44269504088896341f + kRound) - kRound;
    float r = x - kf * 0.693359375f;  // ln 2 in two parts: the first exact in kf·(…)
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.f;
    return p * std::bit_cast<float>((static_cast<int32_t>(kf) + 127) << 23);
}

// softplus(x) = log(1 + e^x) as max(x, 0) + log1p(e^−|x|), with the branch-free log1p of the CUDA
// scans (kernels/cuda/softplus.h): above LibTorch's threshold of 20, e^−x is below half an ulp of x
// and the sum rounds to x, as the threshold does.
inline float softplus_vectorisable(float x) {
    return std::fmax(x, 0.f) + cuda::log1p_unit(exp_vectorisable(-std::fabs(x)));
}

// silu(x) = x · sigmoid(x).
inline float silu_vectorisable(float x) { return x / (1.f + exp_vectorisable(-x)); }

}  // namespace harmonic::kernels
