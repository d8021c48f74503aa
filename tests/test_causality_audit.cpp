// The causality audit (model/causality_audit.h), the detector the desktop tool offers: no leak on
// every family and Harmonic variant, and a leak found at the right position on two test-only models
// that can see the future: one reads the next token, one reads the pooled block that contains the
// token instead of the latest block that has ended (the mistake a strided hierarchy invites).
#include "torch_catch.h"

#include "model/causality_audit.h"
#include "model/language_model.h"

using namespace harmonic;

namespace {

// A stand-in for the models' stateful interface; the audit only calls forward().
struct NoState : StreamState {
    void detach() override {}
};

// Logits at t from the embeddings of tokens t and t + 1: the textbook off-by-one leak.
class PeekAheadModel : public LanguageModel {
public:
    explicit PeekAheadModel(const ModelConfig& c) : LanguageModel(c) {
        embed = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
    }
    ForwardOutput forward(const torch::Tensor& tokens, bool) override {
        auto x = embed->forward(tokens);
        auto next = torch::cat({x.slice(1, 1), torch::zeros_like(x.slice(1, 0, 1))}, 1);
        ForwardOutput out;
        out.features = x + next;
        out.logits = torch::matmul(out.features, embed->weight.t());
        return out;
    }
    std::unique_ptr<StreamState> initial_state(int64_t, const torch::Device&) const override {
        return std::make_unique<NoState>();
    }
    ForwardOutput forward_chunk(const torch::Tensor& tokens, StreamState&, bool trace) override {
        return forward(tokens, trace);
    }
    torch::Tensor head_weight() const override { return embed->weight; }
    torch::nn::Embedding embed{nullptr};
};

// Token t reads the mean of the stride-K block that contains it, floor(t / K), instead of the
// latest block that ended at or before t, floor((t + 1) / K) − 1: positions inside a block see the
// block's later tokens.
class PooledBlockLeakModel : public PeekAheadModel {
public:
    PooledBlockLeakModel(const ModelConfig& c, int64_t K) : PeekAheadModel(c), K_(K) {}
    ForwardOutput forward(const torch::Tensor& tokens, bool) override {
        auto x = embed->forward(tokens);
        const int64_t B = x.size(0), T = x.size(1), d = x.size(2), blocks = (T + K_ - 1) / K_;
        auto padded = torch::cat({x, x.new_zeros({B, blocks * K_ - T, d})}, 1);
        auto means = padded.reshape({B, blocks, K_, d}).mean(2);
        auto read = means.repeat_interleave(K_, 1).slice(1, 0, T);
        ForwardOutput out;
        out.features = x + read;
        out.logits = torch::matmul(out.features, embed->weight.t());
        return out;
    }

private:
    int64_t K_;
};

std::vector<int64_t> text_ids(int64_t n, int64_t vocab) {
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % vocab);
    return ids;
}

ModelConfig small_config(Family family) {
    ModelConfig c;
    c.family = family;
    c.d_model = 32;
    c.vocab_size = 256;
    c.transformer.layers = 2;
    c.mamba.layers = 2;
    return c;
}

}  // namespace

TEST_CASE("causality audit: no leak on every family and Harmonic variant", "[causality][audit]") {
    OneThread one_thread;
    std::vector<std::pair<std::string, ModelConfig>> models;
    for (Family f : {Family::Harmonic, Family::Transformer, Family::Mamba}) models.emplace_back(family_name(f), small_config(f));
    auto variant = [&](const std::string& name, auto&& change) {
        ModelConfig c = small_config(Family::Harmonic);
        change(c);
        models.emplace_back("harmonic " + name, c);
    };
    variant("routing raw", [](ModelConfig& c) { c.harmonic.routing = "raw"; });
    variant("selective cell", [](ModelConfig& c) { c.harmonic.cell = "selective"; });
    variant("top-down prediction", [](ModelConfig& c) { c.harmonic.prediction = "top_down"; });
    variant("two blocks, tied", [](ModelConfig& c) {
        c.harmonic.blocks = 2;
        c.tie_embeddings = true;
    });
    variant("pool 2, four levels", [](ModelConfig& c) {
        c.harmonic.pool = 2;
        c.harmonic.timescales = {2.0, 8.0, 32.0, 64.0};
    });
    const auto ids = text_ids(120, 256);
    for (const auto& [name, config] : models) {
        INFO(name);
        torch::manual_seed(3);
        auto model = make_model(config);
        // Positions inside a pooling block and at its end, for strides 4, 16 and 64.
        for (int64_t position : {0, 5, 15, 62, 63}) {
            INFO("position " << position);
            const auto r = audit_model_causality(*model, ids, position, torch::kCPU, 2);
            CHECK(r.causal);
            CHECK(r.first_leaking_position == -1);
            CHECK(r.max_abs_change == 0.0);
            CHECK(r.noise == 0.0);  // the CPU forward repeats exactly, so the audit is exact
        }
    }
}

TEST_CASE("causality audit: a model that reads the next token leaks at the audited position", "[causality][audit]") {
    OneThread one_thread;
    torch::manual_seed(4);
    PeekAheadModel model(small_config(Family::Harmonic));
    const auto ids = text_ids(100, 256);
    for (int64_t position : {0, 17, 40}) {
        INFO("position " << position);
        const auto r = audit_model_causality(model, ids, position, torch::kCPU, 3);
        CHECK_FALSE(r.causal);
        CHECK(r.first_leaking_position == position);
        CHECK(r.max_abs_change > 0.1);
    }
}

TEST_CASE("causality audit: reading the pooled block that contains t leaks from the block's start", "[causality][audit]") {
    OneThread one_thread;
    torch::manual_seed(5);
    PooledBlockLeakModel model(small_config(Family::Harmonic), 4);
    const auto ids = text_ids(100, 256);
    // Inside a block, every earlier position of the block sees the perturbed tokens.
    for (int64_t position : {0, 9, 22, 41}) {
        INFO("position " << position);
        const auto r = audit_model_causality(model, ids, position, torch::kCPU, 3);
        CHECK_FALSE(r.causal);
        CHECK(r.first_leaking_position == position - position % 4);
    }
    // At a block's last token the block has ended: nothing after it is read, and the audit says so.
    for (int64_t position : {3, 23}) {
        INFO("position " << position);
        const auto r = audit_model_causality(model, ids, position, torch::kCPU, 3);
        CHECK(r.causal);
    }
}

TEST_CASE("causality audit: refuses a position without later tokens", "[causality][audit]") {
    torch::manual_seed(6);
    auto model = make_model(small_config(Family::Mamba));
    const auto ids = text_ids(10, 256);
    CHECK_THROWS_WITH(audit_model_causality(*model, ids, 9, torch::kCPU), Catch::Contains("later token"));
    CHECK_THROWS_WITH(audit_model_causality(*model, ids, -1, torch::kCPU), Catch::Contains("position -1"));
}
