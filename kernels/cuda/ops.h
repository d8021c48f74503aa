// LibTorch entry points of the CUDA kernels, below the autograd functions: raw forward and backward
// passes (for the benchmark and the tests). Only present when built with HARMONIC_WITH_CUDA_KERNELS;
// the models use the dispatching functions of kernels/linear_scan.h, level_scan.h, selective_scan.h.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace harmonic::kernels::cuda {

// Linear scan / fused level cell. `a` is the per-token decay (B,T,C), the fixed decay (C), or the
// cell's pre-activation (level modes). ckpt: the fp32 state at the end of every kLinSpan (64) steps
// (ceil(T / 64), B·C), the last at T − 1.
struct ScanForward {
    torch::Tensor h;
    torch::Tensor ckpt;
};
struct ScanBackward {
    torch::Tensor da;   // dL/da (same shape as a; for fixed a, summed to (C)) or dL/dpre
    torch::Tensor db;   // dL/db or dL/du
    torch::Tensor dh0;  // (B, C) fp32, undefined without h0
};

enum class Cell { Linear, GatedEma, Selective };

ScanForward scan_forward(Cell cell, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0,
                         double tau = 1.0);
ScanBackward scan_backward(Cell cell, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0,
                           const ScanForward& fwd, const torch::Tensor& dh, const torch::Tensor& dh_last,
                           bool need_da, double tau = 1.0);

struct SelForward {
    torch::Tensor y;       // (B,T,E)
    torch::Tensor h_last;  // (B,E,N) fp32
    torch::Tensor ckpt;    // (nChunks, B, N, E) fp32
    int warps = 0;         // the block size used (the backward must chunk the same way)
};
struct SelBackward {
    torch::Tensor dx, ddelta, dA, dB, dC, dD, dz, dh0;
};

SelForward sel_forward(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                       const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                       const torch::Tensor& z, const torch::Tensor& h0);
SelBackward sel_backward(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                         const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                         const torch::Tensor& z, const torch::Tensor& h0, const SelForward& fwd,
                         const torch::Tensor& dy, const torch::Tensor& dh_last);

// A Harmonic block's residual sum (kernels/residual.h), without its gradient; the arguments checked
// and on one CUDA device, x fp32, y and exts fp32 or bf16.
torch::Tensor residual_forward(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                               const std::vector<int64_t>& strides, int64_t pos0);

}  // namespace harmonic::kernels::cuda
