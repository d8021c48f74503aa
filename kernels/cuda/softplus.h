// The CUDA scans' softplus and its log(1 + t), without a branch, in a plain header so that the CPU
// tests can check them against long double (tests/test_kernels.cpp).
#pragma once

#include <cmath>

#ifdef __CUDACC__
#define HARMONIC_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HARMONIC_HOST_DEVICE inline
#endif

namespace harmonic::kernels::cuda {

// log(1 + t) for t in [0, 1], without a branch, for the selective cell's fp32 backward (sel_coef in
// linear_scan.cu). libm's log1pf (and a softplus that branches at its threshold) put each element
// of a scan in its own branch region, and ptxas does not interleave instructions across those: the
// elements of a thread run as one chain of dependent libm steps. Here: log1p(t) for t <= 1/3; above it, with the
// exact split t - 1 = hi + lo (Fast2Sum: |1| >= |t|), log(1 + t) = ln 2 + log1p(f + c) with f = hi/2,
// c = lo/2, |f| <= 1/3, and log1p(f + c) = log1p(f) + c/(1 + f) to first order in c. log1p(f) =
// f + f^2 P(f), P of degree 8 fitted to (log1p(f) - f)/f^2 on [-1/3, 1/3] (relative error 4.5e-9;
// fitted by scripts/dev/fit_log1p.py). Host-checked over 2e7 arguments: at most 1.08 ulp.
HARMONIC_HOST_DEVICE float log1p_unit(float t) {
    const bool big = t > (1.f / 3.f);
    const float hi = t - 1.f;
    const float lo = t - (hi + 1.f);
    const float f = big ? 0.5f * hi : t;
    const float c = big ? 0.5f * lo : 0.f;
    float p = -0.12948833405971527f;
    p = fmaf(p, f, 0.14004762470722198f);
    p = fmaf(p, f, -0.12167185544967651f);
    p = fmaf(p, f, 0.14001159369945526f);
    p = fmaf(p, f, -0.16682302951812744f);
    p = fmaf(p, f, 0.20010747015476227f);
    p = fmaf(p, f, -0.24999716877937317f);
    p = fmaf(p, f, 0.3333320915699005f);
    p = fmaf(p, f, -0.5f);
    const float l = fmaf(p, f * f, f) + fmaf(c, -f, c);
    return big ? l + 0.693147180559945309f : l;
}

// torch.nn.functional.softplus with beta 1, threshold 20, in LibTorch's order of operations (libm,
// fp32): the CPU level scan and the CUDA fp32 forward form their decays with it, to the ulp of the
// reference's.
HARMONIC_HOST_DEVICE float softplus_reference(float x) { return x > 20.f ? x : log1pf(expf(x)); }

// The same softplus as max(x, 0) + log1p(e^-|x|): no branch
// (see log1p_unit), and above the threshold e^-x < ulp(x)/2, so the sum rounds to x as the threshold
// does. Host-checked on [-90, 30] against long double: at most 1.46 ulp, where log1pf(expf(x)) has
// 1.49 (both with glibc's expf).
HARMONIC_HOST_DEVICE float softplusf_(float x) { return fmaxf(x, 0.f) + log1p_unit(expf(-fabsf(x))); }

}  // namespace harmonic::kernels::cuda
