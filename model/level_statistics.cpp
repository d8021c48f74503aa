#include "model/level_statistics.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace harmonic {

namespace {

bool five_smooth(int64_t n) {
    for (int64_t p : {2, 3, 5})
        while (n % p == 0) n /= p;
    return n == 1;
}

}  // namespace

int64_t fft_length_at_least(int64_t n) {
    int64_t m = std::max<int64_t>(1, n);
    while (!five_smooth(m)) ++m;  // gaps between 5-smooth numbers are small next to n
    return m;
}

int64_t fft_length_at_most(int64_t n) {
    int64_t m = std::max<int64_t>(1, n);
    while (!five_smooth(m)) --m;
    return m;
}

LevelStatistics level_statistics(const torch::Tensor& states) {
    TORCH_CHECK(states.dim() == 2, "level_statistics: states must be (steps, channels), got ", states.sizes());
    LevelStatistics s;
    const int64_t n = states.size(0);
    if (n < 4 || states.size(1) == 0) return s;
    // Channel-major (each channel's transform over contiguous memory). The transforms run in fp32,
    // about half the time of fp64, which is enough here:
    // ρ is plotted and fitted where it exceeds 0.05, far above fp32's ~1e-6 error;
    // the means and the fit are fp64.
    auto x = states.to(torch::kCPU, torch::kFloat64).t().contiguous();  // (C, n)
    x = (x - x.mean(1, true)).to(torch::kFloat32);
    auto power_of = [](const torch::Tensor& spectrum) { return torch::view_as_real(spectrum).pow(2).sum(-1); };

    const int64_t nfft = fft_length_at_least(2 * n - 1);
    auto acf = torch::fft::irfft(power_of(torch::fft::rfft(x, nfft, 1)), nfft, 1).slice(1, 0, n);  // lag 0 … n−1
    acf = acf.to(torch::kFloat64);
    auto var = acf.select(1, 0).unsqueeze(1).clamp_min(1e-30);
    auto pairs = torch::arange(n, 0, -1, torch::kFloat64).unsqueeze(0) / double(n);
    auto rho = ((acf / var) / pairs).mean(0).contiguous();
    const double* r = rho.data_ptr<double>();
    const int64_t max_lag = std::max<int64_t>(1, n / 4);
    for (double l = 1.0; l <= double(max_lag); l *= 1.15) {
        const auto li = static_cast<int64_t>(std::llround(l));
        if (s.lags.empty() || s.lags.back() != li) s.lags.push_back(li), s.autocorr.push_back(r[li]);
    }
    double sxx = 0, sxy = 0;
    for (int64_t k = 1; k < max_lag && r[k] > 0.05; ++k) {
        sxx += double(k) * double(k);
        sxy += double(k) * std::log(r[k]);
    }
    if (sxx > 0 && sxy < 0) s.fitted_tau = -sxx / sxy;

    const int64_t m = fft_length_at_most(n);
    auto xm = x.slice(1, 0, m);
    xm = xm - xm.mean(1, true);
    auto pm = (power_of(torch::fft::rfft(xm, m, 1)).to(torch::kFloat64).mean(0) / double(m)).contiguous();
    const double* p = pm.data_ptr<double>();
    const int64_t bins = pm.size(0);
    for (double lo = 1.0; lo < double(bins);) {
        const double hi = std::max(lo + 1.0, lo * 1.04);
        const auto k0 = static_cast<int64_t>(lo), k1 = std::min<int64_t>(bins, static_cast<int64_t>(hi));
        double sum = 0.0;
        for (int64_t k = k0; k < k1; ++k) sum += p[k];
        if (k1 > k0) {
            const double k_mid = (lo + std::min(hi, double(bins)) - 1.0) / 2.0;
            s.frequency.push_back(k_mid / double(m));
            s.power.push_back(sum / double(k1 - k0));
        }
        lo = hi;
    }
    return s;
}

}  // namespace harmonic
