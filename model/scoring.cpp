#include "model/scoring.h"

#include <cmath>
#include <limits>

#include "kernels/output_head.h"
#include "model/error.h"

namespace harmonic {

void stream_tokens(LanguageModel& model, const std::vector<int64_t>& ids, const torch::Device& device,
                   const StreamOptions& options,
                   const std::function<void(const ForwardOutput&, int64_t, const torch::Tensor&)>& on_chunk) {
    torch::NoGradGuard no_grad;
    auto state = model.initial_state(1, device);
    const int64_t n = static_cast<int64_t>(ids.size());
    const int64_t chunk = std::max<int64_t>(1, options.chunk_tokens);
    for (int64_t start = 0; start < n; start += chunk) {
        if (options.cancel && options.cancel->load()) throw Cancelled();
        const int64_t len = std::min(chunk, n - start);
        auto tokens = torch::from_blob(const_cast<int64_t*>(ids.data() + start), {1, len}, torch::kLong).to(device);
        ForwardOutput out;
        {
            Bf16Autocast autocast(options.bf16 && device.is_cuda());
            out = model.forward_chunk(tokens, *state, options.trace);
        }
        on_chunk(out, start, tokens);
    }
}

TokenScores score_tokens(LanguageModel& model, const std::vector<int64_t>& ids, const torch::Device& device,
                         const StreamOptions& options) {
    TokenScores scores;
    const int64_t n = static_cast<int64_t>(ids.size());
    scores.bpt.assign(n, std::numeric_limits<float>::quiet_NaN());
    double total = 0.0;
    // No (chunk, V) logits: each token's bits are (log-sum-exp − target logit) / ln 2 from the
    // features, which on a Hopper GPU is one kernel with the head's GEMM (kernels/output_head.h).
    const bool bf16 = options.bf16 && device.is_cuda();
    const auto weight = model.head_weight().detach().to(bf16 ? torch::kBFloat16 : torch::kFloat32);
    HeadlessForward headless(model);
    stream_tokens(model, ids, device, options, [&](const ForwardOutput& out, int64_t start, const torch::Tensor& tokens) {
        // Position i of this chunk predicts token start + i + 1; the last one predicts the next
        // chunk's first token, whose id we already know.
        const int64_t len = tokens.size(1);
        const int64_t scored = std::min(len, n - 1 - start);
        if (scored <= 0) return;
        const auto features = out.features[0].slice(0, 0, scored).to(weight.scalar_type());
        auto targets = torch::from_blob(const_cast<int64_t*>(ids.data() + start + 1), {scored}, torch::kLong).to(device);
        const auto r = kernels::head_lse_fused(features, weight, targets);
        auto bits = ((r.lse - r.picked) / std::log(2.0)).to(torch::kCPU, torch::kFloat32).contiguous();
        const float* b = bits.data_ptr<float>();
        for (int64_t i = 0; i < scored; ++i) {
            scores.bpt[start + 1 + i] = b[i];
            total += b[i];
        }
    });
    scores.mean_bpt = n > 1 ? total / static_cast<double>(n - 1) : std::numeric_limits<double>::quiet_NaN();
    return scores;
}

}  // namespace harmonic
