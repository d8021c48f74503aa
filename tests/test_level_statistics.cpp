// The timescale inspector's statistics (model/level_statistics.h) on signals whose answer is known.
#include "torch_catch.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/level_statistics.h"

using namespace harmonic;

namespace {

// Every 2^a·3^b·5^c up to `limit`, ascending, built from the products (not by testing divisibility
// as the implementation does).
std::vector<int64_t> five_smooth_up_to(int64_t limit) {
    std::vector<int64_t> out;
    for (int64_t p2 = 1; p2 <= limit; p2 *= 2)
        for (int64_t p3 = p2; p3 <= limit; p3 *= 3)
            for (int64_t p5 = p3; p5 <= limit; p5 *= 5) out.push_back(p5);
    std::sort(out.begin(), out.end());
    return out;
}

// x_t = a x_{t-1} + noise per channel: autocorrelation a^k, timescale -1 / ln a.
torch::Tensor ar1(int64_t n, int64_t C, double a, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto noise = torch::randn({n, C}, gen, torch::kFloat64);
    auto x = torch::empty({n, C}, torch::kFloat64);
    auto* xp = x.data_ptr<double>();
    const auto* e = noise.data_ptr<double>();
    for (int64_t c = 0; c < C; ++c) xp[c] = e[c] / std::sqrt(1.0 - a * a);  // stationary start
    for (int64_t t = 1; t < n; ++t)
        for (int64_t c = 0; c < C; ++c) xp[t * C + c] = a * xp[(t - 1) * C + c] + e[t * C + c];
    return x.to(torch::kFloat32);
}

}  // namespace

TEST_CASE("FFT lengths: the nearest 2^a 3^b 5^c at or above / at or below n", "[analysis]") {
    const auto smooth = five_smooth_up_to(4000);
    for (int64_t n = 1; n <= 3000; ++n) {
        INFO("n = " << n);
        const auto at_least = std::lower_bound(smooth.begin(), smooth.end(), n);
        const auto at_most = std::upper_bound(smooth.begin(), smooth.end(), n) - 1;
        REQUIRE(fft_length_at_least(n) == *at_least);
        REQUIRE(fft_length_at_most(n) == *at_most);
    }
    CHECK(fft_length_at_least(2 * 10898 - 1) == 21870);  // the demo text: 2·3^7·5
    CHECK(fft_length_at_most(7919) == 7776);              // a prime: 2^5·3^5
}

TEST_CASE("level statistics: an AR(1) process gives its autocorrelation a^k and timescale -1/ln a", "[analysis]") {
    for (double tau : {3.0, 20.0, 80.0}) {
        const double a = std::exp(-1.0 / tau);
        INFO("tau = " << tau);
        const auto s = level_statistics(ar1(7919, 48, a, 5));  // a prime number of steps
        REQUIRE(!s.lags.empty());
        CHECK(s.lags.front() == 1);
        CHECK(s.lags.back() <= 7919 / 4);
        CHECK(s.autocorr.front() == Approx(a).margin(0.02));
        for (std::size_t i = 0; i < s.lags.size(); ++i)
            if (s.lags[i] <= 2 * tau) CHECK(s.autocorr[i] == Approx(std::pow(a, double(s.lags[i]))).margin(0.05));
        CHECK(s.fitted_tau == Approx(tau).epsilon(0.15));
    }
    // White noise: nothing to fit.
    CHECK(level_statistics(ar1(4000, 16, 0.0, 6)).fitted_tau == 0.0);
}

TEST_CASE("level statistics: the autocorrelation is the linear (not circular) one, at any length", "[analysis]") {
    // Direct sums against the FFT's padded result for a prime length and a short one.
    for (int64_t n : {5, 997}) {
        auto x = ar1(n, 3, 0.9, 7).to(torch::kFloat64);
        x = x - x.mean(0, true);
        const auto s = level_statistics(x.to(torch::kFloat32));
        const auto* xp = x.data_ptr<double>();
        for (std::size_t i = 0; i < s.lags.size(); ++i) {
            const int64_t k = s.lags[i];
            double mean_rho = 0.0;
            for (int64_t c = 0; c < 3; ++c) {
                double lagged = 0.0, var = 0.0;
                for (int64_t t = 0; t < n; ++t) var += xp[t * 3 + c] * xp[t * 3 + c];
                for (int64_t t = 0; t + k < n; ++t) lagged += xp[t * 3 + c] * xp[(t + k) * 3 + c];
                mean_rho += (lagged / double(n - k)) / (var / double(n)) / 3.0;
            }
            INFO("n = " << n << ", lag " << k);
            CHECK(s.autocorr[i] == Approx(mean_rho).margin(1e-5));
        }
    }
}

TEST_CASE("level statistics: the spectrum peaks at a sinusoid's frequency and is flat for white noise", "[analysis]") {
    const int64_t n = 6007;  // prime: the spectrum uses the largest fast length below
    auto t = torch::arange(n, torch::kFloat64).unsqueeze(1);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
    auto sine = (torch::sin(2 * M_PI * 0.05 * t + torch::rand({1, 4}, gen, torch::kFloat64) * 6.28) +
                 0.01 * torch::randn({n, 4}, gen, torch::kFloat64));
    const auto s = level_statistics(sine.to(torch::kFloat32));
    REQUIRE(!s.power.empty());
    REQUIRE(s.frequency.size() == s.power.size());
    const auto peak = std::max_element(s.power.begin(), s.power.end()) - s.power.begin();
    CHECK(s.frequency[peak] == Approx(0.05).epsilon(0.05));
    CHECK(s.frequency.back() <= 0.5);
    for (std::size_t i = 1; i < s.frequency.size(); ++i) CHECK(s.frequency[i] > s.frequency[i - 1]);

    // White noise of variance 1: the periodogram averages 1 at every frequency.
    const auto w = level_statistics(torch::randn({n, 64}, gen));
    double lo = 1e9, hi = 0;
    for (std::size_t i = w.power.size() / 2; i < w.power.size(); ++i) lo = std::min(lo, w.power[i]), hi = std::max(hi, w.power[i]);
    CHECK(lo > 0.7);
    CHECK(hi < 1.3);
}

TEST_CASE("level statistics: too few steps give nothing; a wrong shape is an error", "[analysis]") {
    const auto s = level_statistics(torch::randn({3, 5}));
    CHECK(s.lags.empty());
    CHECK(s.power.empty());
    CHECK(s.fitted_tau == 0.0);
    CHECK_THROWS_WITH(level_statistics(torch::randn({10})), Catch::Matchers::Contains("(steps, channels)"));
}
