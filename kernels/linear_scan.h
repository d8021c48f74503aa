// The first-order linear recurrence behind every Harmonic level:
//     h_t = a_t ⊙ h_{t-1} + b_t,   t = 0 .. T-1,   h_{-1} = h0.
// a: (B, T, C) per-token decay, or (C) one decay per channel for all steps (the fixed-decay cell).
// b: (B, T, C).  h0: (B, C) or an undefined tensor (zeros).  Returns h: (B, T, C), in b's dtype,
// accumulated in fp32.
#pragma once

#include <torch/types.h>

namespace harmonic::kernels {

// Picks the CUDA kernel for CUDA tensors when the project was built with CUDA, else
// linear_scan_fallback.
// The CUDA path is a torch::autograd::Function (gradients for a, b and h0).
torch::Tensor linear_scan(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0);

// Pure-LibTorch reference: a Hillis–Steele scan (log2 T passes of whole-tensor ops, no per-step
// loop), differentiable by autograd, runs on CPU and GPU. Its error against an fp64 evaluation
// is the yardstick for the CUDA kernel.
torch::Tensor linear_scan_reference(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0);

// CPU only, no autograd: one sequential pass over time (fp32 state), channels in parallel. What
// linear_scan runs for CPU tensors when no gradient is wanted (the desktop tool, `harmonic score`):
// one pass over memory instead of the reference's log2 T passes and their temporaries.
torch::Tensor linear_scan_cpu(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0);
// CPU tensors: linear_scan_cpu when no gradient is wanted, else the reference (the build without
// CUDA kernels, and the CUDA build for CPU tensors).
torch::Tensor linear_scan_fallback(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0);
// True when this build contains the CUDA kernels (HARMONIC_WITH_CUDA_KERNELS); says nothing about
// whether a GPU is present.
bool cuda_kernels_available();

}  // namespace harmonic::kernels
