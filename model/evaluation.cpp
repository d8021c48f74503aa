#include "model/evaluation.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/error.h"
#include "model/format.h"

namespace harmonic {

namespace {

// Cross-entropy summed over every target, in bits.
torch::Tensor bits_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
    const int64_t V = logits.size(-1);
    return torch::nn::functional::cross_entropy(
               logits.reshape({-1, V}).to(torch::kFloat32), targets.reshape({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
           std::log(2.0);
}

// Count, sum and sum of squared deviations (Welford), updated one value at a time.
struct RunningStats {
    int64_t n = 0;
    double sum = 0.0, mean = 0.0, m2 = 0.0;
    void add(double x) {
        ++n;
        sum += x;
        const double delta = x - mean;
        mean += delta / static_cast<double>(n);
        m2 += delta * (x - mean);
    }
};

}  // namespace

torch::Tensor forward_bits(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, StreamState* state,
                           bool bf16, bool fused) {
    Bf16Autocast autocast(bf16);
    HeadlessForward headless(model, fused);
    auto out = state ? model.forward_chunk(x, *state) : model.forward(x);
    return fused ? head_bits_sum(out.features, model.head_weight(), y) : bits_sum(out.logits, y);
}

std::vector<EvalRow> evaluate_contexts(LanguageModel& model, const TokenStream& tokens, const torch::Device& device,
                                       const EvalOptions& options) {
    torch::NoGradGuard no_grad;
    model.eval();
    int64_t n = tokens.size();
    if (options.max_tokens > 0) n = std::min(n, options.max_tokens);
    if (options.warmup_chunks < 0) throw Error("--warmup-chunks: must not be negative");
    if (options.warmup_chunks > 0 && !options.stateful) throw Error("--warmup-chunks: needs --stateful");
    std::vector<EvalRow> rows;
    for (const int64_t C : options.contexts) {
        if (C < 1) throw Error("--context: each length must be at least 1, got " + std::to_string(C));
        const int64_t windows = (n - 1) / C;  // complete windows of C inputs and C shifted targets
        if (windows < 1)
            throw Error(strf("--context %lld is longer than the data: %lld tokens, a window needs %lld",
                               static_cast<long long>(C), static_cast<long long>(n), static_cast<long long>(C + 1)));
        if (options.stateful && windows <= options.warmup_chunks)
            throw Error(strf("--context %lld: the data has %lld tokens, %lld chunk(s); --warmup-chunks %lld leaves none to "
                               "score (needs at least %lld tokens)",
                               static_cast<long long>(C), static_cast<long long>(n), static_cast<long long>(windows),
                               static_cast<long long>(options.warmup_chunks),
                               static_cast<long long>((options.warmup_chunks + 1) * C + 1)));
        RunningStats bpt;  // constant memory however many windows
        std::vector<int64_t> host;
        const bool bf16 = options.bf16 && device.is_cuda();
        if (options.stateful) {
            auto state = model.initial_state(1, device);
            host.resize(static_cast<std::size_t>(C + 1));
            for (int64_t k = 0; k < windows; ++k) {
                tokens.read(k * C, C + 1, host.data());
                auto all = torch::from_blob(host.data(), {1, C + 1}, torch::kLong).clone().to(device);
                const double bits = forward_bits(model, all.slice(1, 0, C).contiguous(), all.slice(1, 1, C + 1), state.get(),
                                                 bf16, options.fused_head)
                                        .item<double>();
                if (k >= options.warmup_chunks) bpt.add(bits / double(C));
                tokens.release(k * C, C);
            }
        } else {
            const int64_t B = options.batch > 0 ? options.batch : std::max<int64_t>(1, 16384 / C);
            for (int64_t k = 0; k < windows; k += B) {
                const int64_t rows_now = std::min(B, windows - k);
                host.resize(static_cast<std::size_t>(rows_now * (C + 1)));
                for (int64_t r = 0; r < rows_now; ++r) tokens.read((k + r) * C, C + 1, host.data() + r * (C + 1));
                tokens.release(k * C, rows_now * C);
                auto all = torch::from_blob(host.data(), {rows_now, C + 1}, torch::kLong).clone().to(device);
                if (options.fused_head) {
                    // One window's bits at a time through the fused head: the logits never exist.
                    Bf16Autocast autocast(bf16);
                    HeadlessForward headless(model);
                    const auto features = model.forward(all.slice(1, 0, C).contiguous()).features;
                    for (int64_t r = 0; r < rows_now; ++r)
                        bpt.add(head_bits_sum(features[r], model.head_weight(), all[r].slice(0, 1, C + 1)).item<double>() /
                                      double(C));
                    continue;
                }
                torch::Tensor logits;
                {
                    Bf16Autocast autocast(bf16);
                    logits = model.forward(all.slice(1, 0, C).contiguous()).logits;
                }
                const int64_t V = logits.size(-1);
                auto bits = torch::nn::functional::cross_entropy(
                                logits.reshape({-1, V}).to(torch::kFloat32), all.slice(1, 1, C + 1).reshape({-1}),
                                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                                .view({rows_now, C})
                                .mean(1)
                                .div(std::log(2.0))
                                .to(torch::kCPU, torch::kFloat64)
                                .contiguous();
                const double* b = bits.data_ptr<double>();
                for (int64_t r = 0; r < rows_now; ++r) bpt.add(b[r]);
            }
        }
        EvalRow row;
        row.context = C;
        row.mode = options.stateful ? "stateful" : "windowed";
        row.warmup_chunks = options.stateful ? options.warmup_chunks : 0;
        row.windows = bpt.n;
        row.tokens = row.windows * C;
        row.mean_bpt = bpt.sum / static_cast<double>(bpt.n);
        if (bpt.n >= 2) {
            row.sd = std::sqrt(bpt.m2 / static_cast<double>(bpt.n - 1));
            row.ci95 = 1.96 * row.sd / std::sqrt(static_cast<double>(bpt.n));
        } else {
            row.sd = row.ci95 = std::numeric_limits<double>::quiet_NaN();
        }
        rows.push_back(row);
    }
    return rows;
}

}  // namespace harmonic
