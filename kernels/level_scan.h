// The Harmonic level cell's recurrence with its coefficients formed inside the scan
// (docs/MODEL.md §2), so that neither a nor b is ever written to memory:
//   gated_ema  (selective = false): a = exp(-1/τ) for every channel and step,
//                                   h_t = a h_{t-1} + (1 - a) σ(pre_t) ⊙ u_t
//   selective  (selective = true):  a_t = exp(-softplus(pre_t) / τ),
//                                   h_t = a_t ⊙ h_{t-1} + (1 - a_t) ⊙ u_t
// pre = W_g u + b_g and u: (B, T, D), of one dtype (fp32 or bf16; a mix is computed in fp32);
// h0: (B, D) or undefined (zeros). Everything is computed in fp32.
#pragma once

#include <torch/types.h>

namespace harmonic::kernels {

struct LevelScanResult {
    torch::Tensor h;       // (B, T, D) in u's dtype
    torch::Tensor h_last;  // (B, D) fp32, the state after the last step (h0, or zeros, when T = 0)
};

// Picks the fused CUDA kernel for CUDA tensors when built with CUDA, else level_scan_fallback.
// Differentiable with respect to pre, u and h0 (h_last too).
LevelScanResult level_scan(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0, double tau,
                           bool selective);

// CPU tensors: when no gradient is wanted, one sequential pass forming a and b per element as the
// reference does (fp32, libm) with an fp64 state; else the reference.
LevelScanResult level_scan_fallback(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0,
                                    double tau, bool selective);
// Pure LibTorch: forms a and b in fp32 and calls linear_scan_reference.
LevelScanResult level_scan_reference(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0,
                                     double tau, bool selective);

}  // namespace harmonic::kernels
