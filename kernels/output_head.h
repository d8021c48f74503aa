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

// The log-sum-exp and the target logit of every row of features · weightᵀ without the (n, V)
// logits. features: (n, K), weight: (V, K), targets: (n) int64 in [0, V). On CUDA, in bf16, with K a
// multiple of 64 up to 256, on a Hopper GPU (head_lse_fused_applies), one kernel computes the GEMM
// and the softmax together (kernels/cuda/head_gemm.cu); otherwise the reference. Results in fp32
// (fp64 for fp64 inputs), from logits accumulated in fp32 and never rounded.
HeadLse head_lse_fused(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets);
// Checks head_lse_fused's shapes and dtypes; throws a message naming the mismatch.
void check_fused_args(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets);
// Whether head_lse_fused runs its kernel for these tensors (HARMONIC_HEAD_GEMM=0 turns it off, to
// time the chunked head next to it).
bool head_lse_fused_applies(const torch::Tensor& features, const torch::Tensor& weight);

// Pure LibTorch (logsumexp / gather / exp in fp32, or fp64 for fp64 logits); runs anywhere; the yardstick for the kernels.
HeadLse head_lse_reference(const torch::Tensor& logits, int64_t V, const torch::Tensor& targets);
HeadLse head_lse_fused_reference(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets);
torch::Tensor head_softmax_grad_reference(const torch::Tensor& logits, int64_t V, const torch::Tensor& lse,
                                          const torch::Tensor& targets, const torch::Tensor& scale,
                                          const torch::Tensor& out = {});

}  // namespace harmonic::kernels
