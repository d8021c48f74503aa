// The residual stream of a Harmonic block before its output triple, in one pass where it can be:
//   out = x + y + Σ_l up_l(ext_l),   up_l(e)[:, j] = e[:, floor((pos0 + j + 1) / stride_l) − pos0 / stride_l]
// x (B, C, d): the block's input; y (B, C, d): level 1's output; ext_l (B, R_l, d): a coarser level's
// outputs with the step before the chunk as row 0, so token j (absolute position pos0 + j) reads
// the latest step of level l that ended at or before it (causal). out is fp32 (x's dtype when x is
// fp64). Differentiable in x, y and every ext_l.
#pragma once

#include <torch/types.h>

#include <vector>

namespace harmonic::kernels {

// Picks the CUDA kernel for CUDA tensors when built with CUDA (reads x and y once, the coarse rows
// from cache, writes out once), else the reference.
torch::Tensor residual_upsample_sum(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                                    const std::vector<int64_t>& strides, int64_t pos0);

// Pure LibTorch: x + y, then per level an in-place broadcast add over runs of `stride` tokens (or a
// gather where the chunk starts mid-step); runs anywhere; the yardstick for the kernel.
torch::Tensor residual_upsample_sum_reference(const torch::Tensor& x, const torch::Tensor& y,
                                              const std::vector<torch::Tensor>& exts,
                                              const std::vector<int64_t>& strides, int64_t pos0);

// Throws, naming the level, unless x, y and every ext fit the definition above (each level has a row
// for every token of the chunk). Both paths check with it.
void check_residual_args(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                         const std::vector<int64_t>& strides, int64_t pos0);

// The gradient of up(ext) with respect to ext: g (B, C, d) summed over the tokens that read each of
// ext's `rows` rows, (B, rows, d) in g's dtype.
torch::Tensor causal_upsample_grad(const torch::Tensor& g, int64_t rows, int64_t pos0, int64_t stride);

}  // namespace harmonic::kernels
