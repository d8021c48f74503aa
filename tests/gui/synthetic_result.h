// A deterministic AnalysisResult with realistic shapes, for GUI tests without a model:
// byte-level text with multi-byte characters and newlines, a Harmonic model with three levels
// (strides 1, 4, 16), a Transformer and a Mamba baseline.
#pragma once

#include <cstdint>
#include <string>

#include "model/analysis_result.h"

namespace harmonic::testing {

struct SyntheticOptions {
    int64_t tokens = 2000;
    int models = 3;            // 1..3: harmonic, transformer, mamba
    int64_t maxHeatmapRows = 512;
    int channels = 24;
    bool traces = true;        // false: bpt only (cheap, for million-token tests)
    uint64_t seed = 7;
};

AnalysisResult syntheticResult(const SyntheticOptions& options = {});

// What analysing one checkpoint folder gives: the synthetic model of the family its folder is
// named after (harmonic, transformer, anything else: mamba), named after the folder.
AnalysisResult syntheticModelResult(const std::string& checkpoint, const SyntheticOptions& options = {});

}  // namespace harmonic::testing
