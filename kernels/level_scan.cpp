#include "kernels/level_scan.h"

#include <torch/torch.h>

#include <cmath>

#include "kernels/linear_scan.h"

namespace harmonic::kernels {

LevelScanResult level_scan_reference(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0,
                                     double tau, bool selective) {
    TORCH_CHECK(u.dim() == 3 && pre.sizes() == u.sizes(), "level_scan: pre and u must be (B, T, D), got ",
                pre.sizes(), " and ", u.sizes());
    const auto f32 = torch::kFloat32;
    auto pf = pre.to(f32), uf = u.to(f32);
    torch::Tensor a, b;
    if (selective) {
        a = torch::exp(-torch::nn::functional::softplus(pf) / tau);
        b = (1.0 - a) * uf;
    } else {
        const double decay = std::exp(-1.0 / tau);
        a = torch::full({u.size(2)}, decay, uf.options());
        b = (1.0 - decay) * torch::sigmoid(pf) * uf;
    }
    auto h = linear_scan_reference(a, b, h0);  // fp32
    const int64_t T = u.size(1);
    torch::Tensor h_last;
    if (T > 0)
        h_last = h.select(1, T - 1);
    else
        h_last = h0.defined() ? h0.to(f32) : torch::zeros({u.size(0), u.size(2)}, uf.options());
    return {h.to(u.scalar_type()), h_last};
}

#ifndef HARMONIC_WITH_CUDA_KERNELS
LevelScanResult level_scan(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0, double tau,
                           bool selective) {
    return level_scan_reference(pre, u, h0, tau, selective);
}
#endif

}  // namespace harmonic::kernels
