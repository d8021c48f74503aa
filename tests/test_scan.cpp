// The pure-LibTorch recurrences against a plain sequential loop in fp64.
#include "torch_catch.h"

#include "kernels/linear_scan.h"
#include "kernels/selective_scan.h"

using namespace harmonic::kernels;

namespace {

torch::Tensor naive_scan(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0) {
    const int64_t B = b.size(0), T = b.size(1), C = b.size(2);
    auto h = h0.defined() ? h0.to(torch::kFloat64) : torch::zeros({B, C}, torch::kFloat64);
    auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
    std::vector<torch::Tensor> out;
    for (int64_t t = 0; t < T; ++t) {
        auto at = a64.dim() == 1 ? a64 : a64.select(1, t);
        h = at * h + b64.select(1, t);
        out.push_back(h);
    }
    return torch::stack(out, 1);
}

double rel_err(const torch::Tensor& x, const torch::Tensor& ref) {
    auto r = ref.to(torch::kFloat64);
    return ((x.to(torch::kFloat64) - r).abs().max() / r.abs().max().clamp_min(1e-12)).item<double>();
}

}  // namespace

TEST_CASE("linear scan matches the sequential recurrence", "[scan]") {
    torch::manual_seed(1);
    for (int64_t T : {1, 2, 3, 37, 128, 1000}) {
        for (bool per_token : {false, true}) {
            for (bool with_h0 : {false, true}) {
                INFO("T=" << T << " per_token=" << per_token << " h0=" << with_h0);
                const int64_t B = 2, C = 5;
                auto b = torch::randn({B, T, C});
                auto a = per_token ? torch::rand({B, T, C}) : torch::rand({C}) * 0.5 + 0.5;
                auto h0 = with_h0 ? torch::randn({B, C}) : torch::Tensor();
                auto h = linear_scan_reference(a, b, h0);
                CHECK(h.sizes() == b.sizes());
                CHECK(rel_err(h, naive_scan(a, b, h0)) < 1e-5);
            }
        }
    }
}

TEST_CASE("linear scan gradients match the sequential recurrence", "[scan]") {
    torch::manual_seed(2);
    const int64_t B = 2, T = 19, C = 3;
    for (bool per_token : {false, true}) {
        auto a = (per_token ? torch::rand({B, T, C}) : torch::rand({C})).to(torch::kFloat64).requires_grad_();
        auto b = torch::randn({B, T, C}, torch::kFloat64).requires_grad_();
        auto h0 = torch::randn({B, C}, torch::kFloat64).requires_grad_();
        auto w = torch::randn({B, T, C}, torch::kFloat64);
        auto g_ref = torch::autograd::grad({(naive_scan(a, b, h0) * w).sum()}, {a, b, h0});
        // The reference computes in fp32 internally; compare its fp32 gradients to the fp64 loop.
        auto g = torch::autograd::grad({(linear_scan_reference(a, b, h0) * w).sum()}, {a, b, h0});
        for (int i = 0; i < 3; ++i) CHECK(rel_err(g[i], g_ref[i]) < 1e-5);
    }
}

TEST_CASE("selective scan matches the sequential recurrence, chunk boundaries included", "[scan]") {
    torch::manual_seed(3);
    const int64_t B = 2, E = 4, N = 3;
    for (int64_t T : {1, 7, 33}) {
        auto x = torch::randn({B, T, E}), delta = torch::rand({B, T, E}) * 0.5, z = torch::randn({B, T, E});
        auto A = -torch::rand({E, N}) * 2.0, Bm = torch::randn({B, T, N}), Cm = torch::randn({B, T, N});
        auto D = torch::randn({E}), h0 = torch::randn({B, E, N});
        // Naive fp64 loop.
        auto h = h0.to(torch::kFloat64);
        std::vector<torch::Tensor> ys;
        for (int64_t t = 0; t < T; ++t) {
            auto dt = delta.select(1, t).to(torch::kFloat64).unsqueeze(-1);                // (B,E,1)
            h = torch::exp(dt * A.to(torch::kFloat64)) * h +
                dt * x.select(1, t).to(torch::kFloat64).unsqueeze(-1) * Bm.select(1, t).to(torch::kFloat64).unsqueeze(1);
            auto y = (h * Cm.select(1, t).to(torch::kFloat64).unsqueeze(1)).sum(-1) + x.select(1, t).to(torch::kFloat64) * D.to(torch::kFloat64);
            ys.push_back(y * torch::silu(z.select(1, t).to(torch::kFloat64)));
        }
        auto y_ref = torch::stack(ys, 1);
        for (int64_t chunk : {1, 4, 128}) {
            INFO("T=" << T << " chunk=" << chunk);
            auto r = selective_scan_reference(x, delta, A, Bm, Cm, D, z, h0, chunk);
            CHECK(rel_err(r.y, y_ref) < 1e-5);
            CHECK(rel_err(r.h_last, h) < 1e-5);
        }
    }
}
