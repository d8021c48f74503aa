#include "kernels/level_scan.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "kernels/cpu_path.h"
#include "kernels/cuda/softplus.h"
#include "kernels/linear_scan.h"

namespace harmonic::kernels {

namespace {

void check_level_args(const torch::Tensor& pre, const torch::Tensor& u) {
    TORCH_CHECK(u.dim() == 3 && pre.sizes() == u.sizes(), "level_scan: pre and u must be (B, T, D), got ",
                pre.sizes(), " and ", u.sizes());
}

// The cell's (a, b) in fp32 (level_scan.h); a is (D) for the fixed decay.
std::pair<torch::Tensor, torch::Tensor> level_coefficients(const torch::Tensor& pre, const torch::Tensor& u,
                                                           double tau, bool selective) {
    const auto f32 = torch::kFloat32;
    auto pf = pre.to(f32), uf = u.to(f32);
    if (selective) {
        auto a = torch::exp(-torch::nn::functional::softplus(pf) / tau);
        return {a, (1.0 - a) * uf};
    }
    const double decay = std::exp(-1.0 / tau);
    return {torch::full({u.size(2)}, decay, uf.options()), (1.0 - decay) * torch::sigmoid(pf) * uf};
}

LevelScanResult with_last_state(const torch::Tensor& h, const torch::Tensor& u, const torch::Tensor& h0) {
    const int64_t T = u.size(1);
    torch::Tensor h_last;
    if (T > 0)
        h_last = h.select(1, T - 1);
    else
        h_last = h0.defined() ? h0.to(torch::kFloat32)
                              : torch::zeros({u.size(0), u.size(2)}, u.options().dtype(torch::kFloat32));
    return {h.to(u.scalar_type()), h_last};
}

// Forms (a, b) of each element inside one sequential pass (as the CUDA kernel does), in fp32 with
// glibc's expf and log1pf in the reference's order of operations, and keeps the state in fp64
// (sequential_scan_cpu). Besides saving the passes over memory, it keeps LibTorch's
// vectorised exp out of the CPU path: on a loaded 2-core machine its first multithreaded call in a
// process returned values up to 16 ulp off in about 3 of 100 fresh processes (never with one
// thread), and at τ = 128 an ulp of a is 1e-5 of h, enough to fail the chunked = full and
// causality tests in CI (2026-11-27).
torch::Tensor level_scan_cpu(const torch::Tensor& pre_in, const torch::Tensor& u_in, const torch::Tensor& h0_in,
                             double tau, bool selective) {
    const auto pre = pre_in.to(torch::kFloat32).contiguous(), u = u_in.to(torch::kFloat32).contiguous();
    const int64_t B = u.size(0), T = u.size(1), C = u.size(2);
    auto h = torch::empty({B, T, C}, u.options());
    const auto h0 = h0_in.defined() ? h0_in.to(torch::kFloat32).contiguous() : torch::Tensor();
    TORCH_CHECK(!h0.defined() || (h0.dim() == 2 && h0.size(0) == B && h0.size(1) == C), "level_scan: h0 must be (B, D)");
    const float *pp = pre.data_ptr<float>(), *up = u.data_ptr<float>();
    const float* h0p = h0.defined() ? h0.data_ptr<float>() : nullptr;
    float* hp = h.data_ptr<float>();
    const float tau_f = static_cast<float>(tau);
    const double fixed_decay = std::exp(-1.0 / tau);
    const float a_fixed = static_cast<float>(fixed_decay), gain = static_cast<float>(1.0 - fixed_decay);
    if (selective) {
        sequential_scan_cpu(B, T, C, h0p, hp, [=](int64_t e, int64_t, float& a, float& b) {
            const float p = pp[e];
            a = std::exp(-cuda::softplus_reference(p) / tau_f);
            b = (1.f - a) * up[e];
        });
    } else {
        sequential_scan_cpu(B, T, C, h0p, hp, [=](int64_t e, int64_t, float& a, float& b) {
            a = a_fixed;
            b = gain * (1.f / (1.f + std::exp(-pp[e]))) * up[e];
        });
    }
    return h;
}

}  // namespace

LevelScanResult level_scan_reference(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0,
                                     double tau, bool selective) {
    check_level_args(pre, u);
    const auto [a, b] = level_coefficients(pre, u, tau, selective);
    return with_last_state(linear_scan_reference(a, b, h0), u, h0);  // h in fp32
}

LevelScanResult level_scan_fallback(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0,
                                    double tau, bool selective) {
    check_level_args(pre, u);
    if (!cpu_without_grad({&pre, &u, &h0})) return level_scan_reference(pre, u, h0, tau, selective);
    return with_last_state(level_scan_cpu(pre, u, h0, tau, selective), u, h0);
}

#ifndef HARMONIC_WITH_CUDA_KERNELS
LevelScanResult level_scan(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0, double tau,
                           bool selective) {
    return level_scan_fallback(pre, u, h0, tau, selective);
}
#endif

}  // namespace harmonic::kernels
