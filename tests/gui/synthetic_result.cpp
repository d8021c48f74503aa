#include "synthetic_result.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace harmonic::testing {

namespace {

// splitmix64: the same numbers on every platform and standard library.
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    double normal() {
        const double u1 = std::max(uniform(), 1e-300);
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
    size_t index(size_t n) { return static_cast<size_t>(next() % n); }

private:
    uint64_t state_;
};

std::string makeText(int64_t bytes, Rng& rng) {
    static const char* words[] = {"the", "model", "hierarchy", "state", "token", "level", "slow", "fast", "über",
                                  "timescale", "of", "and", "predicts", "naïve", "context", "long", "error", "a"};
    std::string text;
    int64_t sentence = 0;
    while (static_cast<int64_t>(text.size()) < bytes) {
        text += words[rng.index(std::size(words))];
        ++sentence;
        if (sentence % 11 == 0) text += ".\n";
        else if (sentence % 7 == 0) text += " — ";
        else text += ' ';
    }
    text.resize(static_cast<size_t>(bytes));
    // Never end inside a multi-byte character: the text must stay valid UTF-8.
    size_t lead = text.size();
    while (lead > 0 && (static_cast<unsigned char>(text[lead - 1]) & 0xC0) == 0x80) --lead;
    if (lead > 0) {
        const auto b = static_cast<unsigned char>(text[lead - 1]);
        const size_t length = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        if (text.size() - (lead - 1) < length)
            for (size_t i = lead - 1; i < text.size(); ++i) text[i] = 'x';
    }
    return text;
}

LevelTrace makeLevel(const std::string& name, int64_t stride, double nominalTau, int64_t tokens, int channels,
                     int64_t maxRows, bool withError, Rng& rng) {
    LevelTrace level;
    level.name = name;
    level.stride = stride;
    level.nominal_tau = nominalTau;
    const int64_t steps = std::max<int64_t>(tokens / stride, 1);

    level.channel_decay.resize(static_cast<size_t>(channels));
    level.channel_tau.resize(static_cast<size_t>(channels));
    for (int c = 0; c < channels; ++c) {
        // Log-uniform taus around the nominal one, so levels differ visibly.
        const double tau = nominalTau * std::pow(10.0, (rng.uniform() - 0.5) * 1.5);
        const double a = std::exp(-1.0 / tau);
        level.channel_decay[static_cast<size_t>(c)] = static_cast<float>(a);
        level.channel_tau[static_cast<size_t>(c)] = static_cast<float>(-1.0 / std::log(a));
    }

    // States: one AR(1) process per channel, the level's own rate.
    std::vector<float> states(static_cast<size_t>(steps * channels));
    std::vector<double> h(static_cast<size_t>(channels), 0.0);
    for (int64_t j = 0; j < steps; ++j) {
        for (int c = 0; c < channels; ++c) {
            const double a = level.channel_decay[static_cast<size_t>(c)];
            h[static_cast<size_t>(c)] = a * h[static_cast<size_t>(c)] + std::sqrt(1 - a * a) * rng.normal();
            states[static_cast<size_t>(j * channels + c)] = static_cast<float>(h[static_cast<size_t>(c)] + 0.1 * c / channels);
        }
    }

    // Heatmap: uniform time bins of whole steps; the last row may be shorter.
    const int64_t rows = std::min(steps, maxRows);
    const int64_t stepsPerRow = (steps + rows - 1) / rows;
    level.rows = (steps + stepsPerRow - 1) / stepsPerRow;
    level.channels = channels;
    level.hidden.assign(static_cast<size_t>(level.rows * channels), 0.0F);
    level.row_token_begin.resize(static_cast<size_t>(level.rows + 1));
    for (int64_t r = 0; r < level.rows; ++r) {
        const int64_t s0 = r * stepsPerRow;
        const int64_t s1 = std::min(steps, s0 + stepsPerRow);
        level.row_token_begin[static_cast<size_t>(r)] = s0 * stride;
        for (int c = 0; c < channels; ++c) {
            double sum = 0;
            for (int64_t s = s0; s < s1; ++s) sum += states[static_cast<size_t>(s * channels + c)];
            level.hidden[static_cast<size_t>(r * channels + c)] = static_cast<float>(sum / static_cast<double>(s1 - s0));
        }
    }
    level.row_token_begin[static_cast<size_t>(level.rows)] = std::min(tokens, steps * stride);

    if (withError) {
        level.error_norm.resize(static_cast<size_t>(steps));
        level.error_token.resize(static_cast<size_t>(steps));
        for (int64_t j = 0; j < steps; ++j) {
            level.error_norm[static_cast<size_t>(j)] =
                static_cast<float>(1.0 + 0.5 * std::sin(j * 0.05) + 0.3 * std::abs(rng.normal()));
            level.error_token[static_cast<size_t>(j)] = j * stride + stride - 1;
        }
    }

    // Autocorrelation at log-spaced lags, and the exponential fit a model would report.
    std::vector<float> taus = level.channel_tau;
    std::nth_element(taus.begin(), taus.begin() + static_cast<std::ptrdiff_t>(taus.size() / 2), taus.end());
    const double fitted = taus[taus.size() / 2];
    for (double lag = 1; lag <= std::max<double>(steps / 4.0, 2.0); lag *= 1.25) {
        const double l = std::round(lag);
        if (!level.autocorr_lag.empty() && level.autocorr_lag.back() == static_cast<float>(l)) continue;
        level.autocorr_lag.push_back(static_cast<float>(l));
        level.autocorr.push_back(static_cast<float>(std::exp(-l / fitted) + 0.01 * rng.normal()));
    }
    level.fitted_tau_steps = fitted;
    level.fitted_tau_tokens = fitted * static_cast<double>(stride);

    // Lorentzian spectrum with the corner at the level's timescale, in cycles per token.
    const double corner = 1.0 / (2.0 * 3.141592653589793 * fitted * static_cast<double>(stride));
    for (int64_t k = 1; k <= steps / 2; k = std::max(k + 1, static_cast<int64_t>(static_cast<double>(k) * 1.05))) {
        const double f = static_cast<double>(k) / static_cast<double>(steps * stride);
        level.spectrum_frequency.push_back(static_cast<float>(f));
        level.spectrum_power.push_back(
            static_cast<float>(1.0 / (1.0 + (f / corner) * (f / corner)) * (1.0 + 0.1 * rng.normal())));
    }
    return level;
}

}  // namespace

AnalysisResult syntheticResult(const SyntheticOptions& options) {
    Rng rng(options.seed);
    AnalysisResult result;
    result.text_name = "synthetic.txt";
    result.tokenizer = "bytes";
    result.device = "cpu";
    result.precision = "fp32";
    result.seconds = 1.25;
    const std::string text = makeText(options.tokens, rng);
    const auto n = static_cast<int64_t>(text.size());
    result.token_ids.resize(static_cast<size_t>(n));
    result.byte_offsets.resize(static_cast<size_t>(n));
    result.token_text.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const auto byte = static_cast<unsigned char>(text[static_cast<size_t>(i)]);
        result.token_ids[static_cast<size_t>(i)] = byte;
        result.byte_offsets[static_cast<size_t>(i)] = i;
        result.token_text[static_cast<size_t>(i)] = std::string(1, static_cast<char>(byte));
    }

    struct Spec {
        const char* name;
        const char* family;
        double offset;   // bits above the harmonic model
        double longContext;  // how much the model gains from context
        int64_t parameters;
    };
    const Spec specs[] = {{"harmonic-28M", "harmonic", 0.0, 1.6, 28'000'000},
                          {"transformer-28M", "transformer", 0.15, 1.3, 28'400'000},
                          {"mamba-28M", "mamba", 0.1, 1.4, 27'900'000}};
    const int models = std::clamp(options.models, 1, 3);
    // A shared difficulty per token (word starts are hard, spaces easy), so models correlate.
    std::vector<double> difficulty(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const char c = text[static_cast<size_t>(i)];
        const char prev = i > 0 ? text[static_cast<size_t>(i - 1)] : ' ';
        double d = c == ' ' ? 0.6 : (prev == ' ' || prev == '\n' ? 4.0 : 1.6);
        d += 0.8 * std::abs(rng.normal());
        difficulty[static_cast<size_t>(i)] = d;
    }
    for (int m = 0; m < models; ++m) {
        const Spec& spec = specs[m];
        ModelTrace model;
        model.name = spec.name;
        model.family = spec.family;
        model.checkpoint = std::string("/synthetic/") + spec.name;
        model.parameters = spec.parameters;
        model.bpt.resize(static_cast<size_t>(n));
        double sum = 0;
        int64_t count = 0;
        for (int64_t i = 0; i < n; ++i) {
            if (i == 0) {
                model.bpt[0] = std::numeric_limits<float>::quiet_NaN();
                continue;
            }
            const double context = spec.longContext / std::sqrt(1.0 + static_cast<double>(i) / 64.0);
            const double v = std::max(0.01, difficulty[static_cast<size_t>(i)] + spec.offset + context + 0.3 * rng.normal());
            model.bpt[static_cast<size_t>(i)] = static_cast<float>(v);
            sum += static_cast<float>(v);
            ++count;
        }
        model.mean_bpt = count ? sum / static_cast<double>(count) : 0.0;
        model.top_k = 5;
        model.top.resize(static_cast<size_t>(n * model.top_k));
        for (int64_t i = 0; i < n; ++i) {
            double mass = 0.9;
            for (int r = 0; r < model.top_k; ++r) {
                TopPrediction p;
                // The true next token usually ranks first.
                p.token_id = (r == 0 && i + 1 < n && rng.uniform() < 0.6) ? result.token_ids[static_cast<size_t>(i + 1)]
                                                                             : static_cast<int32_t>(97 + rng.index(26));
                const double share = mass * (0.3 + 0.4 * rng.uniform());
                p.probability = static_cast<float>(share);
                mass -= share;
                model.top[static_cast<size_t>(i * model.top_k + r)] = p;
            }
        }
        if (options.traces) {
            if (std::string(spec.family) == "harmonic") {
                const int64_t strides[] = {1, 4, 16};
                const double taus[] = {4, 16, 64};
                for (int l = 0; l < 3; ++l)
                    model.levels.push_back(makeLevel("level " + std::to_string(l + 1), strides[l], taus[l], n, options.channels,
                                                     options.maxHeatmapRows, l > 0, rng));
            } else {
                for (int l = 0; l < 2; ++l) {
                    LevelTrace level = makeLevel("layer " + std::to_string(l + 1), 1, 8.0 * (l + 1), n, options.channels,
                                                 options.maxHeatmapRows, false, rng);
                    if (std::string(spec.family) == "transformer") {
                        // Attention layers have no decays.
                        level.channel_decay.clear();
                        level.channel_tau.clear();
                    }
                    model.levels.push_back(std::move(level));
                }
            }
        }
        result.models.push_back(std::move(model));
    }
    result.notes.push_back("synthetic result for tests");
    return result;
}

AnalysisResult syntheticModelResult(const std::string& checkpoint, const SyntheticOptions& options) {
    SyntheticOptions o = options;
    o.models = 3;
    AnalysisResult r = syntheticResult(o);
    std::string folder = checkpoint;
    while (!folder.empty() && folder.back() == '/') folder.pop_back();
    folder = folder.substr(folder.find_last_of('/') + 1);
    size_t pick = 2;
    if (folder.find("harmonic") != std::string::npos) pick = 0;
    else if (folder.find("transformer") != std::string::npos) pick = 1;
    ModelTrace model = std::move(r.models[pick]);
    model.name = folder;
    model.checkpoint = checkpoint;
    r.models.clear();
    r.models.push_back(std::move(model));
    return r;
}

}  // namespace harmonic::testing
