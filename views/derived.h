// Statistics derived from an AnalysisResult for display: smoothing, running means, buckets,
// histograms, channel orders. Cheap, deterministic, and shared by the views and their CSVs so
// a CSV always holds exactly the numbers that were drawn.
#pragma once

#include <QString>
#include <cstdint>
#include <vector>

#include "model/analysis_result.h"

namespace harmonic::views {

// Centred moving average over `window` tokens (window <= 1: a copy). NaN entries are skipped;
// a position whose window holds no finite value stays NaN.
std::vector<double> movingAverage(const std::vector<float>& values, int window);

// Mean of values[1..i] for every i, skipping NaN (the long-context curve of one text).
std::vector<double> runningMean(const std::vector<float>& values);

// Mean of the finite values in [begin, end); NaN when there are none.
double finiteMean(const std::vector<float>& values, int64_t begin, int64_t end);

// Positions in context, in powers of four: [1,4), [4,16), ... up to the token count.
struct ContextBucket {
    int64_t begin = 0;
    int64_t end = 0;
    QString label;  // "4–15", "1K–4K" (inclusive; K = 1024)
};
std::vector<ContextBucket> contextBuckets(int64_t tokenCount);

// Short labels for bucket bounds: 999 -> "999", 1023 -> "1K", 1999 -> "2K", 262143 -> "256K".
QString compactCount(int64_t n);

// Histogram over logarithmically spaced bins of the finite, positive values.
struct Histogram {
    std::vector<double> edges;   // bins + 1 entries
    std::vector<int64_t> counts; // bins entries
};
Histogram logHistogram(const std::vector<double>& values, int bins);

// Channel indices ordered by channel_tau ascending (fast channels first); identity order when
// the level has no taus.
std::vector<int> channelOrderByTau(const LevelTrace& level);

// The q-quantile of the finite values (sampled when there are many, so it stays cheap).
double finiteQuantile(const std::vector<float>& values, double q);

// True when a level's heatmap fields agree with each other (rows, channels, hidden,
// row_token_begin); views skip a heatmap that does not, instead of reading out of bounds.
bool hasValidHeatmap(const LevelTrace& level);

// The token's bytes, or "" when token_text is shorter than token_ids (a malformed result).
const std::string& tokenText(const AnalysisResult& result, int64_t token);

// Index of the first model that has levels with heatmaps, or -1.
int firstModelWithLevels(const AnalysisResult& result);

}  // namespace harmonic::views
