// The three model families: parameter counts, strict causality (full and chunked paths),
// chunked = full, traces, gradients.
#include "torch_catch.h"

#include <cmath>

#include "model/harmonic.h"
#include "model/language_model.h"
#include "model/scoring.h"

using namespace harmonic;
using torch::indexing::Slice;

namespace {

ModelConfig small(Family family, int64_t d = 32, int64_t V = 256) {
    ModelConfig c;
    c.family = family;
    c.d_model = d;
    c.vocab_size = V;
    c.transformer.layers = 2;
    c.transformer.context = 4096;
    c.mamba.layers = 2;
    return c;
}

// Every model variant the tests sweep: the three families and each Harmonic design axis.
std::vector<std::pair<std::string, ModelConfig>> variants() {
    std::vector<std::pair<std::string, ModelConfig>> v;
    v.emplace_back("harmonic", small(Family::Harmonic));
    auto raw = small(Family::Harmonic);
    raw.harmonic.routing = "raw";
    v.emplace_back("harmonic raw routing", raw);
    auto sel = small(Family::Harmonic);
    sel.harmonic.cell = "selective";
    v.emplace_back("harmonic selective cell", sel);
    auto td = small(Family::Harmonic);
    td.harmonic.prediction = "top_down";
    v.emplace_back("harmonic top-down prediction", td);
    auto deep = small(Family::Harmonic);
    deep.harmonic.blocks = 2;
    deep.tie_embeddings = true;
    v.emplace_back("harmonic 2 blocks tied", deep);
    v.emplace_back("transformer", small(Family::Transformer));
    v.emplace_back("mamba", small(Family::Mamba));
    return v;
}

torch::Tensor random_tokens(int64_t B, int64_t T, int64_t V, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return torch::randint(0, V, {B, T}, gen, torch::kLong);
}

torch::Tensor chunked_logits(LanguageModel& model, const torch::Tensor& tokens, int64_t chunk) {
    auto state = model.initial_state(tokens.size(0), tokens.device());
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < tokens.size(1); s += chunk)
        parts.push_back(model.forward_chunk(tokens.index({Slice(), Slice(s, std::min(tokens.size(1), s + chunk))}), *state).logits);
    CHECK(state->position == tokens.size(1));
    return torch::cat(parts, 1);
}

double max_abs(const torch::Tensor& t) { return t.numel() ? t.abs().max().item<double>() : 0.0; }

}  // namespace

TEST_CASE("built modules have exactly the closed-form parameter count", "[model]") {
    for (auto& [name, config] : variants()) {
        INFO(name);
        auto model = make_model(config);
        CHECK(model->parameter_count() == config.parameter_count());
    }
    // The paper's 28M configuration, built for real.
    ModelConfig paper;
    paper.d_model = 256;
    paper.vocab_size = 50257;
    paper.tokenizer = "bpe";
    CHECK(make_model(paper)->parameter_count() == 27'965'952);
    paper.harmonic.routing = "raw";
    CHECK(make_model(paper)->parameter_count() == 27'834'880);
}

TEST_CASE("logits at t never depend on tokens after t (full forward)", "[model][causality]") {
    torch::NoGradGuard no_grad;
    // Bitwise comparisons: one thread, so that no operator splits its work differently between calls.
    OneThread one_thread;
    const int64_t T = 70;
    for (auto& [name, config] : variants()) {
        torch::manual_seed(7);
        auto model = make_model(config);
        model->eval();
        auto tokens = random_tokens(2, T, config.vocab_size, 11);
        auto base = model->forward(tokens).logits;
        {
            // Otherwise a difference below could be run-to-run noise rather than a leak.
            INFO(name << ": the same tokens twice");
            CHECK(max_abs(model->forward(tokens).logits - base) == 0.0);
        }
        // On and off the block boundaries of levels 2 (4 tokens) and 3 (16 tokens).
        for (int64_t t : {0, 2, 3, 4, 14, 15, 16, 17, 31, 47, 63, 64, 68}) {
            auto changed = tokens.clone();
            changed.index_put_({Slice(), Slice(t + 1)}, random_tokens(2, T - t - 1, config.vocab_size, 100 + t));
            auto logits = model->forward(changed).logits;
            INFO(name << ", perturbing every token after t=" << t);
            // Bit-for-bit: rows <= t are computed from the same inputs by the same operations.
            CHECK(max_abs(logits.index({Slice(), Slice(0, t + 1)}) - base.index({Slice(), Slice(0, t + 1)})) == 0.0);
            // ... and the perturbation is visible right after t (the test can see a change).
            if (t + 1 < T) CHECK(max_abs(logits.index({Slice(), t + 1}) - base.index({Slice(), t + 1})) > 0.0);
        }
    }
}

TEST_CASE("logits at t never depend on tokens after t (chunked path)", "[model][causality]") {
    torch::NoGradGuard no_grad;
    OneThread one_thread;  // bitwise comparisons, as above
    const int64_t T = 53;
    for (auto& [name, config] : variants()) {
        torch::manual_seed(8);
        auto model = make_model(config);
        model->eval();
        auto tokens = random_tokens(1, T, config.vocab_size, 12);
        auto base = chunked_logits(*model, tokens, 7);
        for (int64_t t : {3, 6, 7, 15, 16, 20, 35}) {
            auto changed = tokens.clone();
            changed.index_put_({Slice(), Slice(t + 1)}, random_tokens(1, T - t - 1, config.vocab_size, 200 + t));
            auto logits = chunked_logits(*model, changed, 7);
            INFO(name << ", chunk 7, perturbing after t=" << t);
            CHECK(max_abs(logits.index({Slice(), Slice(0, t + 1)}) - base.index({Slice(), Slice(0, t + 1)})) == 0.0);
        }
    }
}

TEST_CASE("chunked forward equals the full forward for any chunk size", "[model][chunked]") {
    torch::NoGradGuard no_grad;
    const int64_t T = 75;
    for (auto& [name, config] : variants()) {
        torch::manual_seed(9);
        auto model = make_model(config);
        model->eval();
        auto tokens = random_tokens(2, T, config.vocab_size, 13);
        auto full = model->forward(tokens).logits;
        const double scale = std::max(1.0, max_abs(full));
        for (int64_t chunk : {1, 3, 5, 7, 13, 16, 33, 75}) {
            INFO(name << ", chunk " << chunk);
            // Chunk boundaries regroup the scan's fp32 sums; 1e-5 relative is far below any real bug.
            CHECK(max_abs(chunked_logits(*model, tokens, chunk) - full) <= 1e-5 * scale);
        }
    }
}

TEST_CASE("Mamba on the CPU: the same bits for any thread count and any chunk size", "[model][chunked][determinism]") {
    // Large enough that LibTorch splits its elementwise work across threads, where its own SiLU
    // and softplus gave elements at the split points (and at chunk ends) other bits.
    torch::NoGradGuard no_grad;
    ModelConfig c;
    c.family = Family::Mamba;
    c.d_model = 128;
    c.vocab_size = 256;
    c.mamba.layers = 2;
    torch::manual_seed(21);
    auto model = make_model(c);
    model->eval();
    auto tokens = random_tokens(1, 700, c.vocab_size, 22);
    torch::Tensor one_thread_full;
    {
        OneThread one_thread;
        one_thread_full = model->forward(tokens).logits;
    }
    const int previous = torch::get_num_threads();
    torch::set_num_threads(std::max(2, previous));
    const auto many_threads_full = model->forward(tokens).logits;
    torch::set_num_threads(previous);
    CHECK(max_abs(many_threads_full - one_thread_full) == 0.0);
    // Chunks regroup nothing elementwise, and the scan carries its state exactly between them.
    // (Chunks of a few tokens make the projections small matrix products, which BLAS sums in
    // another order; the tolerance test above covers those.)
    for (int64_t chunk : {97, 333, 700}) {
        INFO("chunk " << chunk);
        CHECK(max_abs(chunked_logits(*model, tokens, chunk) - one_thread_full) == 0.0);
    }
}

TEST_CASE("Transformer chunked forward keeps a sliding window of `context` tokens", "[model][chunked]") {
    torch::NoGradGuard no_grad;
    auto config = small(Family::Transformer);
    config.transformer.context = 8;
    config.transformer.layers = 1;  // with more layers the receptive field grows by context - 1 per layer
    torch::manual_seed(10);
    auto model = make_model(config);
    model->eval();
    auto tokens = random_tokens(1, 40, 256, 14);
    auto streamed = chunked_logits(*model, tokens, 5);
    // Token 30 sees tokens 23..30 only: the window alone must give the same logits.
    auto window = tokens.index({Slice(), Slice(23, 31)});
    auto state = model->initial_state(1, torch::kCPU);
    state->position = 23;  // the same absolute positions (RoPE is relative anyway)
    auto direct = model->forward_chunk(window, *state).logits.index({Slice(), -1});
    CHECK(max_abs(direct - streamed.index({Slice(), 30})) < 1e-5);
    // A full forward longer than the window applies the same band.
    CHECK(max_abs(model->forward(tokens).logits - streamed) < 1e-5);
}

TEST_CASE("random-token bpt of an untrained model is about log2 V", "[model]") {
    torch::NoGradGuard no_grad;
    for (auto& [name, config] : variants()) {
        torch::manual_seed(4);
        auto model = make_model(config);
        auto tokens = random_tokens(2, 64, config.vocab_size, 15);
        const double bpt = bits_per_token(model->forward(tokens).logits, tokens).item<double>();
        INFO(name << " bpt " << bpt);
        CHECK(std::abs(bpt - std::log2(double(config.vocab_size))) < 0.5);
    }
}

TEST_CASE("Harmonic traces: each level at its own rate", "[model][trace]") {
    torch::NoGradGuard no_grad;
    auto config = small(Family::Harmonic);
    auto model = make_model(config);
    auto out = model->forward(random_tokens(1, 70, 256, 16), true);
    REQUIRE(out.levels.size() == 3);
    const int64_t D = 2 * config.d_model;
    CHECK(out.levels[0].stride == 1);
    CHECK(out.levels[0].hidden.sizes() == torch::IntArrayRef({1, 70, D}));
    CHECK(out.levels[1].stride == 4);
    CHECK(out.levels[1].hidden.sizes() == torch::IntArrayRef({1, 17, D}));  // floor(70 / 4) complete blocks
    CHECK(out.levels[1].error.sizes() == torch::IntArrayRef({1, 17, config.d_model}));
    CHECK(out.levels[2].stride == 16);
    CHECK(out.levels[2].hidden.size(1) == 4);                                  // floor(70 / 16)
    CHECK(out.levels[0].nominal_tau == 4.0);
    CHECK(out.levels[2].nominal_tau == 128.0);
    CHECK(out.levels[1].decay.numel() == D);
    CHECK(std::abs(out.levels[1].decay[0].item<double>() - std::exp(-1.0 / 32.0)) < 1e-6);
}

TEST_CASE("design axes change the model: routing, flat timescales, selective decay", "[model]") {
    torch::NoGradGuard no_grad;
    auto tokens = random_tokens(1, 48, 256, 17);
    auto logits_of = [&](ModelConfig c) {
        torch::manual_seed(5);
        return make_model(c)->forward(tokens).logits;
    };
    auto base = small(Family::Harmonic);
    auto flat = base;
    flat.harmonic.timescales = {32, 32, 32};
    auto raw = base;
    raw.harmonic.routing = "raw";
    CHECK(max_abs(logits_of(base) - logits_of(flat)) > 1e-4);
    CHECK(max_abs(logits_of(base) - logits_of(raw)) > 1e-4);

    auto sel = base;
    sel.harmonic.cell = "selective";
    torch::manual_seed(6);
    auto model = make_model(sel);
    auto out = model->forward(tokens, true);
    for (const auto& level : out.levels) {
        CHECK(level.decay.dim() == 3);
        CHECK(level.decay.min().item<double>() > 0.0);
        CHECK(level.decay.max().item<double>() < 1.0);
    }
}

TEST_CASE("every parameter receives a finite gradient", "[model][grad]") {
    for (auto& [name, config] : variants()) {
        INFO(name);
        torch::manual_seed(3);
        auto model = make_model(config);
        auto tokens = random_tokens(2, 40, config.vocab_size, 18);
        auto loss = bits_per_token(model->forward(tokens).logits, tokens);
        loss.backward();
        for (const auto& p : model->named_parameters()) {
            INFO(p.key());
            REQUIRE(p.value().grad().defined());
            CHECK(torch::isfinite(p.value().grad()).all().item<bool>());
            CHECK(p.value().grad().abs().sum().item<double>() > 0.0);
        }
    }
}

TEST_CASE("fused head: bits and gradients equal the logits path, any chunk size", "[model][head]") {
    torch::manual_seed(21);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    auto features = torch::randn({37, 16}, f64);
    auto weight = torch::randn({50, 16}, f64) * 0.5;
    auto targets = torch::randint(0, 50, {37}, torch::TensorOptions().dtype(torch::kLong));
    auto f_ref = features.clone().requires_grad_(), w_ref = weight.clone().requires_grad_();
    auto reference = torch::nn::functional::cross_entropy(
                         torch::matmul(f_ref, w_ref.t()), targets,
                         torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                     std::log(2.0);
    (reference * 3.0).backward();
    for (int64_t chunk : {0, 1, 7, 36, 37, 100})
    for (int64_t keep_bytes : {int64_t(-1), int64_t(0)}) {  // gradient kept from the forward / recomputed
        INFO("chunk " << chunk << ", keep_bytes " << keep_bytes);
        auto f = features.clone().requires_grad_(), w = weight.clone().requires_grad_();
        auto fused = head_bits_sum(f, w, targets, chunk, keep_bytes);
        CHECK(std::abs(fused.item<double>() - reference.item<double>()) < 1e-10 * reference.item<double>());
        (fused * 3.0).backward();
        CHECK(max_abs(f.grad() - f_ref.grad()) < 1e-12);
        CHECK(max_abs(w.grad() - w_ref.grad()) < 1e-12);
    }
}

TEST_CASE("fused head: a bad HARMONIC_HEAD_CHUNK_ROWS or HARMONIC_HEAD_KEEP_GB is an error naming it", "[model][head]") {
    auto features = torch::randn({5, 4}), weight = torch::randn({7, 4});
    auto targets = torch::randint(0, 7, {5}, torch::TensorOptions().dtype(torch::kLong));
    const double reference = head_bits_sum(features, weight, targets).item<double>();
    for (const char* name : {"HARMONIC_HEAD_CHUNK_ROWS", "HARMONIC_HEAD_KEEP_GB"}) {
        for (const char* value : {"abc", "-1", "3x"}) {
            INFO(name << "=" << value);
            setenv(name, value, 1);
            CHECK_THROWS_WITH(head_bits_sum(features, weight, targets),
                              Catch::Contains(name) && Catch::Contains(std::string("'") + value + "'"));
        }
        setenv(name, "2", 1);  // a valid value is used
        CHECK(std::abs(head_bits_sum(features, weight, targets).item<double>() - reference) < 1e-5 * reference);
        unsetenv(name);
    }
    setenv("HARMONIC_HEAD_CHUNK_ROWS", "2.5", 1);  // rows are whole
    CHECK_THROWS_WITH(head_bits_sum(features, weight, targets), Catch::Contains("expected an integer"));
    unsetenv("HARMONIC_HEAD_CHUNK_ROWS");
}

TEST_CASE("headless forward: no logits, and the fused loss equals the loss from the logits", "[model][head]") {
    for (auto& [name, config] : variants()) {
        INFO(name);
        torch::manual_seed(22);
        auto model = make_model(config);
        auto tokens = random_tokens(2, 33, config.vocab_size, 23);
        auto x = tokens.slice(1, 0, 32), y = tokens.slice(1, 1);
        auto full = model->forward(x);
        auto expected = torch::nn::functional::cross_entropy(
            full.logits.reshape({-1, config.vocab_size}), y.reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) / std::log(2.0);
        HeadlessForward headless(*model);
        auto out = model->forward(x);
        CHECK_FALSE(out.logits.defined());
        REQUIRE(out.features.defined());
        auto fused = head_bits_sum(out.features, model->head_weight(), y);
        CHECK(std::abs(fused.item<double>() - expected.item<double>()) < 1e-4 * expected.item<double>());
        fused.backward();
        for (const auto& p : model->parameters()) CHECK(p.grad().defined());
    }
}

TEST_CASE("score_tokens: per-token bits without logits equal those of the full forward's logits, any chunk", "[model][head]") {
    torch::NoGradGuard no_grad;
    for (auto& [name, config] : variants()) {
        torch::manual_seed(5);
        auto model = make_model(config);
        auto tokens = random_tokens(1, 50, config.vocab_size, 16);
        // bits of token t + 1 from logits at t: -log2 softmax(logits[t])[token t + 1].
        const auto logp = torch::log_softmax(model->forward(tokens).logits[0], -1);
        const auto want = -logp.slice(0, 0, 49).gather(1, tokens[0].slice(0, 1).unsqueeze(1)).squeeze(1) / std::log(2.0);
        std::vector<int64_t> ids(tokens.data_ptr<int64_t>(), tokens.data_ptr<int64_t>() + 50);
        for (int64_t chunk : {7, 50}) {
            INFO(name << ", chunk " << chunk);
            StreamOptions options;
            options.chunk_tokens = chunk;
            const auto got = score_tokens(*model, ids, torch::kCPU, options);
            REQUIRE(got.bpt.size() == 50);
            CHECK(std::isnan(got.bpt[0]));
            double worst = 0.0, sum = 0.0;
            for (int64_t i = 1; i < 50; ++i) {
                worst = std::max(worst, std::abs(double(got.bpt[i]) - want[i - 1].item<double>()));
                sum += got.bpt[i];
            }
            CHECK(worst < 1e-4);
            CHECK(std::abs(got.mean_bpt - sum / 49.0) < 1e-9);
        }
    }
}
