// The CUDA kernels as differentiable LibTorch operations: autograd functions over the raw passes of
// ops.h. The dispatching functions (linear_scan, level_scan, selective_scan, residual_upsample_sum)
// call these once they have decided a kernel applies. Optional inputs may be undefined tensors.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/cuda/ops.h"

namespace harmonic::kernels::cuda {

// h and the final state (B, C) fp32 of the linear scan or a level cell.
std::pair<torch::Tensor, torch::Tensor> scan_with_grad(Cell cell, const torch::Tensor& a, const torch::Tensor& b,
                                                       const torch::Tensor& h0, double tau);

// y and the final state (B, E, N) fp32 of Mamba's selective scan.
std::pair<torch::Tensor, torch::Tensor> selective_scan_with_grad(const torch::Tensor& x, const torch::Tensor& delta,
                                                                 const torch::Tensor& A, const torch::Tensor& Bm,
                                                                 const torch::Tensor& Cm, const torch::Tensor& D,
                                                                 const torch::Tensor& z, const torch::Tensor& h0);

// A Harmonic block's residual sum (kernels/residual.h).
torch::Tensor residual_with_grad(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                                 const std::vector<int64_t>& strides, int64_t pos0);

}  // namespace harmonic::kernels::cuda
