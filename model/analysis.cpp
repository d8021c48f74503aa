// The analysis behind the desktop tool and `harmonic analyze`: checkpoints + text -> AnalysisResult.
// Models stream the text in stateful chunks; per chunk we keep what the views need (see the
// resolution policy in analysis_result.h) and drop the rest, so memory does not grow with the
// hidden states of the whole text.
#include "model/analysis.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "model/checkpoint.h"
#include "model/error.h"
#include "model/io.h"
#include "model/level_statistics.h"
#include "model/scoring.h"

namespace harmonic {

namespace fs = std::filesystem;

namespace {

// Accumulates one level's trace chunk by chunk.
struct LevelAccumulator {
    LevelTrace trace;
    int64_t steps_expected = 0;  // steps this level will have over the whole text
    int64_t bin_steps = 1;       // steps averaged into one heatmap row
    std::vector<double> row_sum;
    std::vector<int64_t> row_count;
    std::vector<double> decay_sum;
    int64_t decay_count = 0;
    std::vector<float> kept;  // first spectrum_steps steps, full resolution (steps x channels)
    int64_t kept_steps = 0;
};

void init_level(LevelAccumulator& acc, const LevelOutput& level, int64_t n_tokens, const AnalysisOptions& o) {
    acc.trace.name = level.name;
    acc.trace.stride = level.stride;
    acc.trace.nominal_tau = level.nominal_tau;
    acc.trace.channels = level.hidden.size(2);
    acc.steps_expected = n_tokens / level.stride;
    const int64_t max_rows = std::max<int64_t>(1, o.max_heatmap_rows);
    acc.bin_steps = std::max<int64_t>(1, (acc.steps_expected + max_rows - 1) / max_rows);
    acc.trace.rows = (acc.steps_expected + acc.bin_steps - 1) / acc.bin_steps;
    acc.row_sum.assign(acc.trace.rows * acc.trace.channels, 0.0);
    acc.row_count.assign(acc.trace.rows, 0);
    acc.decay_sum.assign(acc.trace.channels, 0.0);
}

void accumulate_level(LevelAccumulator& acc, const LevelOutput& level, const AnalysisOptions& o) {
    const int64_t C = acc.trace.channels, stride = acc.trace.stride;
    auto hidden = level.hidden[0].to(torch::kCPU, torch::kFloat32).contiguous();  // (steps, C)
    const int64_t steps = hidden.size(0);
    const float* h = hidden.data_ptr<float>();
    for (int64_t j = 0; j < steps; ++j) {
        const int64_t global = level.first_step + j;
        const int64_t row = std::min(acc.trace.rows - 1, global / acc.bin_steps);
        if (row < 0) continue;
        double* dst = acc.row_sum.data() + row * C;
        for (int64_t c = 0; c < C; ++c) dst[c] += h[j * C + c];
        acc.row_count[row] += 1;
    }
    const int64_t keep = std::min(steps, o.spectrum_steps - acc.kept_steps);
    if (keep > 0) {
        acc.kept.insert(acc.kept.end(), h, h + keep * C);
        acc.kept_steps += keep;
    }
    if (level.error.defined()) {
        auto norms = level.error[0].to(torch::kFloat32).norm(2, -1).to(torch::kCPU).contiguous();
        const float* e = norms.data_ptr<float>();
        for (int64_t j = 0; j < norms.size(0); ++j) {
            acc.trace.error_norm.push_back(e[j]);
            acc.trace.error_token.push_back((level.first_step + j + 1) * stride - 1);
        }
    }
    if (level.decay.defined()) {
        // Fixed decay: (C); per-token decay: (B, steps, C) -> mean over steps.
        auto d = level.decay.dim() == 1 ? level.decay : level.decay[0].mean(0);
        auto dc = d.to(torch::kCPU, torch::kFloat64).contiguous();
        const int64_t weight = level.decay.dim() == 1 ? 1 : level.decay.size(1);
        for (int64_t c = 0; c < C && c < dc.numel(); ++c) acc.decay_sum[c] += dc.data_ptr<double>()[c] * weight;
        acc.decay_count += weight;
    }
}

// The heatmap rows and decays; the autocorrelation, its fit and the power spectrum from the kept
// full-resolution steps (level_statistics).
void finish_level(LevelAccumulator& acc) {
    LevelTrace& t = acc.trace;
    const int64_t C = t.channels;
    t.hidden.resize(t.rows * C);
    t.row_token_begin.resize(t.rows + 1);
    for (int64_t r = 0; r < t.rows; ++r) {
        const double n = std::max<int64_t>(1, acc.row_count[r]);
        for (int64_t c = 0; c < C; ++c) t.hidden[r * C + c] = static_cast<float>(acc.row_sum[r * C + c] / n);
        t.row_token_begin[r] = r * acc.bin_steps * t.stride;
    }
    t.row_token_begin[t.rows] = acc.steps_expected * t.stride;
    if (acc.decay_count > 0) {
        for (int64_t c = 0; c < C; ++c) {
            const double a = acc.decay_sum[c] / static_cast<double>(acc.decay_count);
            t.channel_decay.push_back(static_cast<float>(a));
            t.channel_tau.push_back(a > 0.0 && a < 1.0 ? static_cast<float>(-1.0 / std::log(a)) : 0.0F);
        }
    }
    const int64_t n = acc.kept_steps;
    if (n < 4) return;
    const auto stats = level_statistics(torch::from_blob(acc.kept.data(), {n, C}, torch::kFloat32));
    for (std::size_t i = 0; i < stats.lags.size(); ++i) {
        t.autocorr_lag.push_back(static_cast<float>(stats.lags[i]));
        t.autocorr.push_back(static_cast<float>(stats.autocorr[i]));
    }
    if (stats.fitted_tau > 0) {
        t.fitted_tau_steps = stats.fitted_tau;
        t.fitted_tau_tokens = stats.fitted_tau * double(t.stride);
    }
    for (std::size_t i = 0; i < stats.frequency.size(); ++i) {
        t.spectrum_frequency.push_back(static_cast<float>(stats.frequency[i] / double(t.stride)));  // per token
        t.spectrum_power.push_back(static_cast<float>(stats.power[i]));
    }
}

std::string display_name(const fs::path& dir, std::map<std::string, int>& seen) {
    auto clean = fs::path(dir).lexically_normal();
    std::string name = clean.filename().empty() ? clean.parent_path().filename().string() : clean.filename().string();
    if (name.empty()) name = "model";
    const int k = ++seen[name];
    return k == 1 ? name : name + " (" + std::to_string(k) + ")";
}


}  // namespace

namespace {

AnalysisResult analyze_in_memory(const std::vector<fs::path>& checkpoints, const std::string& text, const std::string& text_name,
                                 const AnalysisOptions& options, const ProgressFn& progress, const std::atomic<bool>* cancel,
                                 int64_t& tokens);

}  // namespace

AnalysisResult analyze(const std::vector<fs::path>& checkpoints, const std::string& text, const std::string& text_name,
                       const AnalysisOptions& options, const ProgressFn& progress, const std::atomic<bool>* cancel) {
    // The analysis keeps every token's results (bits, top predictions, level traces) for the
    // views, so a long text can exhaust host memory; that ends in a message, not a bad_alloc.
    int64_t tokens = 0;
    auto too_big = [&] {
        return Error(text_name + ": out of memory analysing " + (tokens > 0 ? std::to_string(tokens) + " tokens" : std::string("the text")) +
                     " (the analysis keeps every token's results in memory); analyse a part of it (--max-tokens N in "
                     "`harmonic analyze`) or score it with `harmonic score`, which streams");
    };
    try {
        return analyze_in_memory(checkpoints, text, text_name, options, progress, cancel, tokens);
    } catch (const std::bad_alloc&) {
        throw too_big();
    } catch (const c10::Error& e) {
        // The CPU allocator's failure is a c10::Error ("DefaultCPUAllocator: can't allocate memory").
        const std::string what = e.what();
        if (what.find("can't allocate memory") != std::string::npos || what.find("DefaultCPUAllocator") != std::string::npos)
            throw too_big();
        throw;
    }
}

namespace {

AnalysisResult analyze_in_memory(const std::vector<fs::path>& checkpoints, const std::string& text, const std::string& text_name,
                                 const AnalysisOptions& options, const ProgressFn& progress, const std::atomic<bool>* cancel,
                                 int64_t& tokens) {
    const auto started = std::chrono::steady_clock::now();
    if (checkpoints.empty()) throw Error("analysis: no checkpoint loaded (open at least one checkpoint folder)");
    if (text.empty()) throw Error(text_name + ": the text is empty");
    if (options.precision != "fp32" && options.precision != "bf16")
        throw Error("precision: expected fp32 or bf16, got '" + options.precision + "'");
    const torch::Device device = parse_device(options.device);

    AnalysisResult result;
    result.text_name = text_name;
    result.device = device.str();
    result.precision = device.is_cuda() ? options.precision : "fp32";
    if (!device.is_cuda() && options.precision == "bf16") result.notes.push_back("bf16 needs CUDA: ran in fp32 on the CPU");

    std::vector<LoadedModel> models;
    for (const auto& dir : checkpoints) {
        if (progress) progress(0.0, "loading " + dir.string());
        models.push_back(load_checkpoint(dir, device));
        for (const auto& w : models.back().warnings) result.notes.push_back(w);
    }
    // One token axis for all views: every model must tokenize the text the same way.
    const auto& first = models.front();
    for (const auto& m : models) {
        if (m.config.tokenizer != first.config.tokenizer ||
            (m.config.tokenizer == "bpe" &&
             read_file_bytes(m.dir / "tokenizer.json", 1u << 30) != read_file_bytes(first.dir / "tokenizer.json", 1u << 30)))
            throw Error(m.dir.string() + ": uses a different tokenizer from " + first.dir.string() +
                        "; models compared on one token axis must share their tokenizer");
    }
    result.tokenizer = first.config.tokenizer;
    Encoding enc = first.tokenizer->encode(text);
    if (options.max_tokens > 0 && static_cast<int64_t>(enc.ids.size()) > options.max_tokens) {
        enc.ids.resize(options.max_tokens);
        enc.byte_offsets.resize(options.max_tokens);
        result.notes.push_back("analysed the first " + std::to_string(options.max_tokens) + " tokens");
    }
    const int64_t n = static_cast<int64_t>(enc.ids.size());
    tokens = n;
    if (n < 2) throw Error(text_name + ": needs at least 2 tokens, has " + std::to_string(n));
    result.token_ids.assign(enc.ids.begin(), enc.ids.end());
    result.byte_offsets = enc.byte_offsets;
    result.token_text.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
        const int64_t end = i + 1 < n ? enc.byte_offsets[i + 1] : static_cast<int64_t>(text.size());
        result.token_text.push_back(text.substr(enc.byte_offsets[i], end - enc.byte_offsets[i]));
    }
    const int64_t vocab = first.tokenizer->vocab_size();
    result.vocab_text.reserve(vocab);
    for (int64_t id = 0; id < vocab; ++id) result.vocab_text.push_back(first.tokenizer->token_bytes(id));

    const int top_k = std::max(1, options.top_k);
    std::map<std::string, int> seen;
    for (std::size_t mi = 0; mi < models.size(); ++mi) {
        auto& loaded = models[mi];
        ModelTrace trace;
        trace.name = display_name(loaded.dir, seen);
        trace.family = family_name(loaded.config.family);
        trace.checkpoint = loaded.dir.string();
        trace.parameters = loaded.model->parameter_count();
        trace.top_k = top_k;
        int64_t chunk = std::max<int64_t>(1, options.chunk_tokens);
        for (;;) {
            trace.bpt.assign(n, std::numeric_limits<float>::quiet_NaN());
            trace.top.assign(n * top_k, TopPrediction{});
            std::vector<LevelAccumulator> levels;
            StreamOptions so;
            so.chunk_tokens = chunk;
            so.trace = true;
            so.bf16 = result.precision == "bf16";
            so.cancel = cancel;
            try {
                stream_tokens(*loaded.model, enc.ids, device, so, [&](const ForwardOutput& out, int64_t start, const torch::Tensor& tokens) {
                    const int64_t len = tokens.size(1);
                    auto logp = torch::log_softmax(out.logits[0].to(torch::kFloat32), -1);  // (len, V)
                    auto top = logp.topk(top_k, -1);
                    auto top_p = std::get<0>(top).exp().to(torch::kCPU).contiguous();
                    auto top_i = std::get<1>(top).to(torch::kCPU, torch::kInt32).contiguous();
                    for (int64_t i = 0; i < len; ++i)
                        for (int r = 0; r < top_k; ++r)
                            trace.top[(start + i) * top_k + r] = {top_i.data_ptr<int32_t>()[i * top_k + r],
                                                                  top_p.data_ptr<float>()[i * top_k + r]};
                    const int64_t scored = std::min(len, n - 1 - start);
                    if (scored > 0) {
                        auto targets = tokens[0].slice(0, 1, len).to(torch::kLong);
                        // Targets are the next tokens: inside this chunk, then the next chunk's first.
                        auto next = torch::tensor({start + len < n ? enc.ids[start + len] : int64_t(0)}, torch::kLong).to(targets.device());
                        auto all_targets = torch::cat({targets, next}).slice(0, 0, scored);
                        auto bits = (-logp.slice(0, 0, scored).gather(1, all_targets.unsqueeze(1)).squeeze(1) / std::log(2.0))
                                        .to(torch::kCPU)
                                        .contiguous();
                        for (int64_t i = 0; i < scored; ++i) trace.bpt[start + 1 + i] = bits.data_ptr<float>()[i];
                    }
                    if (levels.empty())
                        for (const auto& level : out.levels) {
                            levels.emplace_back();
                            init_level(levels.back(), level, n, options);
                        }
                    for (const auto& level : out.levels)
                        for (auto& acc : levels)
                            if (acc.trace.name == level.name) accumulate_level(acc, level, options);
                    if (progress) {
                        const double done = (double(mi) + double(start + len) / double(n)) / double(models.size());
                        progress(done, trace.name + ": " + std::to_string(start + len) + " / " + std::to_string(n) + " tokens");
                    }
                });
            } catch (const c10::Error& e) {
                if (!device.is_cuda() || !is_out_of_memory(e) || chunk <= 64) throw;
                chunk /= 2;
                cuda_release_cached_memory(device);
                result.notes.push_back(trace.name + ": CUDA out of memory; retried with " + std::to_string(chunk) + "-token chunks");
                continue;
            }
            for (auto& acc : levels) {
                finish_level(acc);
                trace.levels.push_back(std::move(acc.trace));
            }
            break;
        }
        double total = 0.0;
        for (int64_t i = 1; i < n; ++i) total += trace.bpt[i];
        trace.mean_bpt = total / double(n - 1);
        result.models.push_back(std::move(trace));
    }
    if (progress) progress(1.0, "done");
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
}

}  // namespace

}  // namespace harmonic
