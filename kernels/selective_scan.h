// Mamba's selective scan (Gu & Dao 2023, Algorithm 2), per channel e and state index n:
//     dA_t = exp(Δ_t,e · A_e,n)                 (zero-order hold)
//     h_t  = dA_t ⊙ h_{t-1} + Δ_t,e · B_t,n · x_t,e
//     y_t,e = Σ_n C_t,n h_t,e,n + D_e x_t,e,     then y ⊙ SiLU(z) when z is given.
// x, delta, z: (B, T, E);  A: (E, N);  Bm, Cm: (B, T, N);  D: (E) or undefined (no skip);
// z undefined: no gate;  h0: (B, E, N) or undefined.
// delta is already positive (softplus applied by the caller).
#pragma once

#include <torch/types.h>

#include <utility>

namespace harmonic::kernels {

struct SelectiveScanResult {
    torch::Tensor y;        // (B, T, E) in x's dtype
    torch::Tensor h_last;   // (B, E, N) fp32, the state after the last step (for stateful chunks)
};

// Picks the CUDA kernel for CUDA tensors when built with CUDA (d_state ≤ 16; larger N takes the
// reference), else the reference. The CUDA path is a torch::autograd::Function: gradients for
// every input, h_last included.
SelectiveScanResult selective_scan(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                   const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                   const torch::Tensor& z, const torch::Tensor& h0);

// What selective_scan runs where the CUDA kernel does not apply: on the CPU with no gradient wanted
// (GradMode off, or no input requires one: the desktop tool, `harmonic score`) selective_scan_cpu,
// else the reference.
SelectiveScanResult selective_scan_fallback(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                            const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                            const torch::Tensor& z, const torch::Tensor& h0);

// Sequential scan on the CPU without autograd: each (batch, channel) walks time with its N states,
// O(T·E·N) work in fp32, channels as vector lanes, blocks of channels in parallel. The reference
// builds a (B, chunk, E, N) tensor per chunk and makes log2(chunk) passes over it, several times
// slower on a few cores (docs/KERNELS.md § CPU paths).
SelectiveScanResult selective_scan_cpu(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                       const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                       const torch::Tensor& z, const torch::Tensor& h0);

// The decay per channel and step averaged over the states, mean_n exp(Δ_t,e · A_e,n): (B, T, E) fp32,
// no autograd (a trace for the timescale views). On the CPU one vectorised pass that never forms
// the (B, T, E, N) tensor (which made it a quarter of a CPU analysis of the demo Mamba); elsewhere
// that tensor's mean in LibTorch.
torch::Tensor selective_decay_mean(const torch::Tensor& delta, const torch::Tensor& A);

// Pure-LibTorch reference: time is cut into chunks of `chunk` steps, each scanned in parallel with
// linear_scan_reference over the flattened (E·N) state, so memory is O(B·chunk·E·N), not O(B·T·E·N).
SelectiveScanResult selective_scan_reference(const torch::Tensor& x, const torch::Tensor& delta,
                                             const torch::Tensor& A, const torch::Tensor& Bm,
                                             const torch::Tensor& Cm, const torch::Tensor& D,
                                             const torch::Tensor& z, const torch::Tensor& h0,
                                             int64_t chunk = 128);

}  // namespace harmonic::kernels
