// The causality audit: replace every token after a position with random
// ones and check that no logit at or before it moves.
#include "model/causality_audit.h"

#include <algorithm>
#include <string>

#include "model/checkpoint.h"
#include "model/error.h"

namespace harmonic {

namespace fs = std::filesystem;

namespace {

// Multiple of the measured run-to-run noise above which a change is a leak. A real leak moves
// logits by the order of their size; noise from reduction order is a few ulps.
constexpr double kNoiseMargin = 8.0;

// Largest |a − b| per position (over the vocabulary), as a CPU fp64 vector.
torch::Tensor change_per_position(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().amax(-1)[0].to(torch::kCPU);
}

}  // namespace

CausalityReport audit_model_causality(LanguageModel& model, const std::vector<int64_t>& ids, int64_t position,
                                      const torch::Device& device, int trials) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(ids.size()), position + 65);
    if (position < 0 || position + 1 >= n)
        throw Error("causality audit: position " + std::to_string(position) +
                    " needs at least one later token (the text has " + std::to_string(ids.size()) + ")");
    if (trials < 1) throw Error("causality audit: trials must be at least 1, got " + std::to_string(trials));
    CausalityReport report;
    report.position = position;
    report.tokens = n;
    report.trials = trials;
    torch::NoGradGuard no_grad;
    auto tokens = torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + n), torch::kLong).unsqueeze(0).to(device);
    auto logits_up_to_position = [&](const torch::Tensor& t) {
        return model.forward(t).logits.slice(1, 0, position + 1);
    };
    const auto base = logits_up_to_position(tokens);
    report.noise = change_per_position(logits_up_to_position(tokens), base).max().item<double>();
    report.threshold = kNoiseMargin * report.noise;

    auto gen = at::make_generator<at::CPUGeneratorImpl>(12345);
    for (int trial = 0; trial < trials; ++trial) {
        auto changed = tokens.clone();
        auto noise = torch::randint(0, model.config().vocab_size, {1, n - position - 1}, gen, torch::kLong).to(device);
        changed.slice(1, position + 1, n).copy_(noise);
        const auto diff = change_per_position(logits_up_to_position(changed), base);
        report.max_abs_change = std::max(report.max_abs_change, diff.max().item<double>());
        const auto moved = torch::nonzero(diff > report.threshold);
        if (moved.numel() > 0) {
            const int64_t first = moved[0][0].item<int64_t>();
            if (report.first_leaking_position < 0 || first < report.first_leaking_position)
                report.first_leaking_position = first;
        }
    }
    report.causal = report.first_leaking_position < 0;
    return report;
}

CausalityReport audit_causality(const fs::path& checkpoint, const std::string& text, int64_t position,
                                const std::string& device_name, int trials) {
    const torch::Device device = parse_device(device_name);
    auto loaded = load_checkpoint(checkpoint, device);
    const Encoding enc = loaded.tokenizer->encode(text);
    CausalityReport report = audit_model_causality(*loaded.model, enc.ids, position, device, trials);
    report.checkpoint = checkpoint.string();
    return report;
}

}  // namespace harmonic
