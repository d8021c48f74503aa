// What the studio window needs from the model library, as plain functions. main.cpp binds
// them to harmonic::analyze / audit_causality / read_text_file (LibTorch); the GUI tests bind
// synthetic ones, so the whole window is tested without a model.
#pragma once

#include <QString>
#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "model/analysis.h"
#include "model/analysis_result.h"

namespace harmonic::studio {

struct StudioBackend {
    std::function<AnalysisResult(const std::vector<std::filesystem::path>& checkpoints, const std::string& text,
                                 const std::string& textName, const AnalysisOptions& options, const ProgressFn& progress,
                                 const std::atomic<bool>* cancel)>
        analyze;
    std::function<CausalityReport(const std::filesystem::path& checkpoint, const std::string& text, int64_t position,
                                  const std::string& device, int trials)>
        auditCausality;
    // Reads a text file; throws with a message naming the file and the problem.
    std::function<std::string(const std::filesystem::path& file)> readText;
    // Optional: the text of a token id under a checkpoint's tokenizer (for predictions).
    std::function<std::function<QString(int32_t)>(const std::filesystem::path& checkpoint)> vocabulary;
};

}  // namespace harmonic::studio
