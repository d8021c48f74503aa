// SiLU and softplus over CPU tensors with one code path for every element. LibTorch's own CPU
// kernels compute the tail of each thread's range with scalar libm and the rest with vector
// approximations, so an element's value depended on the thread count and on where a chunk of the
// text started; these give each element the same bits however the work is split.
#pragma once

#include <torch/torch.h>

namespace harmonic::kernels {

// fp32 results of the same shape; x: a floating CPU tensor (any layout). No autograd: callers use
// them where cpu_without_grad (kernels/cpu_path.h) holds and LibTorch's ops elsewhere.
torch::Tensor silu_cpu(const torch::Tensor& x);
torch::Tensor softplus_cpu(const torch::Tensor& x);

}  // namespace harmonic::kernels
