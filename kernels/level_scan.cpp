#include "kernels/level_scan.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "kernels/cpu_path.h"
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
    const auto [a, b] = level_coefficients(pre, u, tau, selective);
    return with_last_state(linear_scan_cpu(a, b, h0), u, h0);
}

#ifndef HARMONIC_WITH_CUDA_KERNELS
LevelScanResult level_scan(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0, double tau,
                           bool selective) {
    return level_scan_fallback(pre, u, h0, tau, selective);
}
#endif

}  // namespace harmonic::kernels
