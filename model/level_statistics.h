// The timescale statistics of one level's states (the desktop tool's timescale inspector):
// autocorrelation against lag with a fitted exponential timescale, and the power spectrum.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace harmonic {

struct LevelStatistics {
    // Autocorrelation of the mean-removed states at log-spaced lags 1 … n/4 (in steps), averaged
    // over channels; each channel's estimate is normalised by its overlapping pairs (unbiased).
    std::vector<int64_t> lags;
    std::vector<double> autocorr;
    // τ of ρ(k) = exp(−k/τ), least squares on log ρ over the lags before ρ first falls below 0.05;
    // 0 when there is nothing to fit (ρ(1) ≤ 0.05 or not decaying).
    double fitted_tau = 0.0;
    // Periodogram |X(f)|² / m averaged over channels, log-binned (~200 points at most),
    // frequency in cycles per step; m ≤ n steps (see level_statistics).
    std::vector<double> frequency;
    std::vector<double> power;
};

// states: (n, C), n steps of C channels. Needs n >= 4 (else returns empty statistics).
// Transforms are kept at 2^a·3^b·5^c lengths, which every FFT library runs at full speed (a length
// with a large prime factor falls back to slower algorithms, in some libraries by orders of
// magnitude): the autocorrelation pads to the next such length ≥ 2n − 1 (exact: the linear, not
// the circular, correlation) and the spectrum uses the first m steps, m the largest such length ≤ n.
LevelStatistics level_statistics(const torch::Tensor& states);

// The smallest 2^a·3^b·5^c >= n, and the largest <= n (n >= 1).
int64_t fft_length_at_least(int64_t n);
int64_t fft_length_at_most(int64_t n);

}  // namespace harmonic
