// The softmax of the output head over one chunk of logits, the two passes the fused head
// (model/modules.cpp, head_bits_sum) needs besides its GEMMs. logits: (n, ld) contiguous, fp32 or
// bf16, whose first V columns are the classes (ld ≥ V: the GEMM's output may be padded to an aligned
// width, see output_logits); targets: (n) int64 in [0, V).
#pragma once

#include <torch/types.h>

namespace harmonic::kernels {

struct HeadLse {
    torch::Tensor lse;     // (n) fp32 (fp64 for fp64 logits): log Σ_{j<V} exp(logits[r, j])
    torch::Tensor picked;  // (n) same dtype: logits[r, targets[r]]
};

// Picks the CUDA kernel for CUDA tensors when built with CUDA (one read of the chunk, no fp32
// copy), else the reference.
HeadLse head_lse(const torch::Tensor& logits, int64_t V, const torch::Tensor& targets);

// The gradient of Σ_r (lse_r − picked_r) · scale with respect to the logits: (n, ld) in logits'
// dtype, scale · (exp(logits − lse) − onehot(target)) in the first V columns, 0 in the padding.
// scale: a one-element tensor (stays on the device: no synchronisation). out: where to write (n, ld),
// contiguous, logits' dtype; may be `logits` itself (in place); undefined: a new tensor.
torch::Tensor head_softmax_grad(const torch::Tensor& logits, int64_t V, const torch::Tensor& lse,
                                const torch::Tensor& targets, const torch::Tensor& scale,
                                const torch::Tensor& out = {});

// Pure LibTorch (logsumexp / gather / exp in fp32, or fp64 for fp64 logits); runs anywhere; the yardstick for the kernels.
HeadLse head_lse_reference(const torch::Tensor& logits, int64_t V, const torch::Tensor& targets);
torch::Tensor head_softmax_grad_reference(const torch::Tensor& logits, int64_t V, const torch::Tensor& lse,
                                          const torch::Tensor& targets, const torch::Tensor& scale,
                                          const torch::Tensor& out = {});

}  // namespace harmonic::kernels
