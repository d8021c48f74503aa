#include "views/derived.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace harmonic::views {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> movingAverage(const std::vector<float>& values, int window) {
    const auto n = static_cast<int64_t>(values.size());
    std::vector<double> out(values.size(), kNaN);
    if (window <= 1) {
        for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = values[static_cast<size_t>(i)];
        return out;
    }
    // Prefix sums of the finite values and of their count: O(n) for any window.
    std::vector<double> sum(values.size() + 1, 0.0);
    std::vector<int64_t> count(values.size() + 1, 0);
    for (int64_t i = 0; i < n; ++i) {
        const float v = values[static_cast<size_t>(i)];
        const bool ok = std::isfinite(v);
        sum[static_cast<size_t>(i + 1)] = sum[static_cast<size_t>(i)] + (ok ? v : 0.0);
        count[static_cast<size_t>(i + 1)] = count[static_cast<size_t>(i)] + (ok ? 1 : 0);
    }
    const int64_t left = window / 2;
    const int64_t right = window - left - 1;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t a = std::max<int64_t>(0, i - left);
        const int64_t b = std::min<int64_t>(n, i + right + 1);
        const int64_t c = count[static_cast<size_t>(b)] - count[static_cast<size_t>(a)];
        if (c > 0) out[static_cast<size_t>(i)] = (sum[static_cast<size_t>(b)] - sum[static_cast<size_t>(a)]) / c;
    }
    return out;
}

std::vector<double> runningMean(const std::vector<float>& values) {
    std::vector<double> out(values.size(), kNaN);
    double sum = 0.0;
    int64_t count = 0;
    for (size_t i = 0; i < values.size(); ++i) {
        if (std::isfinite(values[i])) {
            sum += values[i];
            ++count;
        }
        if (count > 0) out[i] = sum / static_cast<double>(count);
    }
    return out;
}

double finiteMean(const std::vector<float>& values, int64_t begin, int64_t end) {
    begin = std::max<int64_t>(begin, 0);
    end = std::min<int64_t>(end, static_cast<int64_t>(values.size()));
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t i = begin; i < end; ++i) {
        const float v = values[static_cast<size_t>(i)];
        if (std::isfinite(v)) {
            sum += v;
            ++count;
        }
    }
    return count > 0 ? sum / static_cast<double>(count) : kNaN;
}

QString compactCount(int64_t n) {
    // Binary K and M: context buckets are powers of four, so 1023 reads "1K" and 262143 "256K".
    auto scaled = [](double v, const char* suffix) {
        QString s = QString::number(v, 'f', v < 10 ? 1 : 0);
        if (s.endsWith(QLatin1String(".0"))) s.chop(2);
        return s + QLatin1String(suffix);
    };
    if (n >= 1000 * 1024) return scaled(static_cast<double>(n + 1) / (1024.0 * 1024.0), "M");
    if (n >= 1000) return scaled(static_cast<double>(n + 1) / 1024.0, "K");
    return QString::number(n);
}

std::vector<ContextBucket> contextBuckets(int64_t tokenCount) {
    std::vector<ContextBucket> buckets;
    // Position 0 has no context (its bpt is NaN), so buckets start at 1.
    for (int64_t begin = 1; begin < tokenCount; begin *= 4) {
        ContextBucket b;
        b.begin = begin;
        b.end = std::min(begin * 4, tokenCount);
        b.label = b.end - b.begin == 1 ? compactCount(b.begin)
                                        : compactCount(b.begin) + QStringLiteral("–") + compactCount(b.end - 1);
        buckets.push_back(b);
    }
    return buckets;
}

Histogram logHistogram(const std::vector<double>& values, int bins) {
    Histogram h;
    double lo = std::numeric_limits<double>::infinity();
    double hi = -lo;
    for (double v : values) {
        if (std::isfinite(v) && v > 0) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    }
    if (!std::isfinite(lo) || bins <= 0) return h;
    // Widen to whole half-decades so histograms of different levels share bin edges visually.
    double llo = std::floor(std::log10(lo) * 2.0) / 2.0;
    double lhi = std::ceil(std::log10(hi) * 2.0) / 2.0;
    if (lhi <= llo) lhi = llo + 0.5;
    h.edges.resize(static_cast<size_t>(bins) + 1);
    for (int i = 0; i <= bins; ++i) h.edges[static_cast<size_t>(i)] = std::pow(10.0, llo + (lhi - llo) * i / bins);
    h.counts.assign(static_cast<size_t>(bins), 0);
    for (double v : values) {
        if (!(std::isfinite(v) && v > 0)) continue;
        int b = static_cast<int>((std::log10(v) - llo) / (lhi - llo) * bins);
        b = std::clamp(b, 0, bins - 1);
        ++h.counts[static_cast<size_t>(b)];
    }
    return h;
}

std::vector<int> channelOrderByTau(const LevelTrace& level) {
    std::vector<int> order(static_cast<size_t>(std::max<int64_t>(level.channels, 0)));
    std::iota(order.begin(), order.end(), 0);
    if (level.channel_tau.size() != order.size()) return order;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        const float ta = level.channel_tau[static_cast<size_t>(a)];
        const float tb = level.channel_tau[static_cast<size_t>(b)];
        // NaN taus (no decay) go last.
        if (std::isnan(ta)) return false;
        if (std::isnan(tb)) return true;
        return ta < tb;
    });
    return order;
}

double finiteQuantile(const std::vector<float>& values, double q) {
    std::vector<float> sample;
    const size_t step = std::max<size_t>(1, values.size() / 100000);
    sample.reserve(values.size() / step + 1);
    for (size_t i = 0; i < values.size(); i += step)
        if (std::isfinite(values[i])) sample.push_back(values[i]);
    if (sample.empty()) return kNaN;
    const auto k = static_cast<size_t>(std::clamp(q, 0.0, 1.0) * static_cast<double>(sample.size() - 1));
    std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(k), sample.end());
    return sample[k];
}

bool hasValidHeatmap(const LevelTrace& level) {
    return level.rows > 0 && level.channels > 0 && static_cast<int64_t>(level.row_token_begin.size()) == level.rows + 1 &&
           static_cast<int64_t>(level.hidden.size()) >= level.rows * level.channels;
}

const std::string& tokenText(const AnalysisResult& result, int64_t token) {
    static const std::string empty;
    return token >= 0 && static_cast<size_t>(token) < result.token_text.size() ? result.token_text[static_cast<size_t>(token)] : empty;
}

int firstModelWithLevels(const AnalysisResult& result) {
    for (size_t m = 0; m < result.models.size(); ++m)
        for (const auto& level : result.models[m].levels)
            if (hasValidHeatmap(level) || !level.channel_tau.empty()) return static_cast<int>(m);
    return -1;
}

}  // namespace harmonic::views
