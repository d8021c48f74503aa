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

StreamingScorer::StreamingScorer(LanguageModel& model, const torch::Device& device, const StreamOptions& options,
                                 OnToken on_token)
    : model_(model), device_(device), options_(options), on_token_(std::move(on_token)) {
    options_.chunk_tokens = std::max<int64_t>(1, options_.chunk_tokens);
    state_ = model_.initial_state(1, device_);
    // No (chunk, V) logits: each token's bits are (log-sum-exp - target logit) / ln 2 from the
    // features, which on a Hopper GPU is one kernel with the head's GEMM (kernels/output_head.h).
    const bool bf16 = options_.bf16 && device_.is_cuda();
    weight_ = model_.head_weight().detach().to(bf16 ? torch::kBFloat16 : torch::kFloat32);
    ids_.reserve(static_cast<std::size_t>(options_.chunk_tokens + 1));
    tags_.reserve(static_cast<std::size_t>(options_.chunk_tokens + 1));
}

void StreamingScorer::feed(const int64_t* ids, const int64_t* tags, std::size_t count) {
    const auto chunk = static_cast<std::size_t>(options_.chunk_tokens);
    for (std::size_t i = 0; i < count;) {
        // A chunk runs once the token after it (its last target) is known.
        const std::size_t take = std::min(count - i, chunk + 1 - ids_.size());
        ids_.insert(ids_.end(), ids + i, ids + i + take);
        if (tags) tags_.insert(tags_.end(), tags + i, tags + i + take);
        else tags_.resize(ids_.size(), 0);
        i += take;
        fed_ += static_cast<int64_t>(take);
        if (ids_.size() == chunk + 1) run(options_.chunk_tokens);
    }
}

void StreamingScorer::finish() {
    if (ids_.size() >= 2) run(static_cast<int64_t>(ids_.size()) - 1);
}

double StreamingScorer::mean_bpt() const {
    return scored_ > 0 ? total_ / static_cast<double>(scored_) : std::numeric_limits<double>::quiet_NaN();
}

// Runs ids_[0, inputs) through the model and scores ids_[1, inputs]; keeps ids_[inputs] (the
// next chunk's first input).
void StreamingScorer::run(int64_t inputs) {
    torch::NoGradGuard no_grad;
    if (options_.cancel && options_.cancel->load()) throw Cancelled();
    // A copy even on the CPU: ids_ is overwritten by the next chunk while the state may keep a view.
    auto tokens = torch::from_blob(ids_.data(), {1, inputs}, torch::kLong).to(device_, false, true);
    ForwardOutput out;
    {
        Bf16Autocast autocast(options_.bf16 && device_.is_cuda());
        HeadlessForward headless(model_);
        out = model_.forward_chunk(tokens, *state_, options_.trace);
    }
    const auto features = out.features[0].to(weight_.scalar_type());
    auto targets = torch::from_blob(ids_.data() + 1, {inputs}, torch::kLong).to(device_);
    const auto r = kernels::head_lse_fused(features, weight_, targets);
    auto bits = ((r.lse - r.picked) / std::log(2.0)).to(torch::kCPU, torch::kFloat32).contiguous();
    const float* b = bits.data_ptr<float>();
    for (int64_t i = 0; i < inputs; ++i) {
        on_token_(first_ + 1 + i, ids_[static_cast<std::size_t>(i + 1)], tags_[static_cast<std::size_t>(i + 1)], b[i]);
        total_ += b[i];
    }
    scored_ += inputs;
    first_ += inputs;
    ids_.erase(ids_.begin(), ids_.begin() + inputs);
    tags_.erase(tags_.begin(), tags_.begin() + inputs);
}

TokenScores score_tokens(LanguageModel& model, const std::vector<int64_t>& ids, const torch::Device& device,
                         const StreamOptions& options) {
    TokenScores scores;
    scores.bpt.assign(ids.size(), std::numeric_limits<float>::quiet_NaN());
    StreamingScorer scorer(model, device, options,
                           [&](int64_t index, int64_t, int64_t, float bpt) { scores.bpt[static_cast<std::size_t>(index)] = bpt; });
    scorer.feed(ids.data(), nullptr, ids.size());
    scorer.finish();
    scores.mean_bpt = scorer.mean_bpt();
    return scores;
}

}  // namespace harmonic
