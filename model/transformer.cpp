#include "model/transformer.h"

#include <cmath>

namespace harmonic {

using torch::indexing::Slice;

TransformerLayerImpl::TransformerLayerImpl(int64_t d, int64_t heads_, int64_t d_ff) : heads(heads_) {
    auto no_bias = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
    ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    wq = register_module("wq", no_bias(d, d));
    wk = register_module("wk", no_bias(d, d));
    wv = register_module("wv", no_bias(d, d));
    wo = register_module("wo", no_bias(d, d));
    ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    fc1 = register_module("fc1", torch::nn::Linear(d, d_ff));
    fc2 = register_module("fc2", torch::nn::Linear(d_ff, d));
}

namespace {

struct TransformerState : StreamState {
    std::vector<torch::Tensor> keys, values;  // per layer (B, H, L, hd), rotated keys of the window
    void detach() override {
        for (auto& k : keys) k = k.detach();
        for (auto& v : values) v = v.detach();
    }
};

// Rotary embedding (rotate-half form) for absolute positions; angles in fp64 so that positions
// in the millions keep their precision.
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& positions, double theta) {
    const int64_t hd = x.size(-1), half = hd / 2;
    auto inv = torch::pow(theta, -torch::arange(0, half, positions.options().dtype(torch::kFloat64)) * 2.0 / double(hd));
    auto angles = positions.to(torch::kFloat64).unsqueeze(1) * inv.unsqueeze(0);  // (T, half)
    auto cos = torch::cos(angles).to(x.scalar_type()), sin = torch::sin(angles).to(x.scalar_type());
    auto x1 = x.index({"...", Slice(0, half)}), x2 = x.index({"...", Slice(half)});
    return torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
}

}  // namespace

TransformerModel::TransformerModel(const ModelConfig& config) : LanguageModel(config) {
    const auto& c = config_;
    embed = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.transformer.layers; ++i)
        layers->push_back(TransformerLayer(c.d_model, c.transformer.heads, c.transformer.d_ff));
    final_norm = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
    if (!c.tie_embeddings)
        head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(embed->weight, 0.0, 0.02);
    if (head) torch::nn::init::normal_(head->weight, 0.0, 0.02);
}

std::unique_ptr<StreamState> TransformerModel::initial_state(int64_t batch, const torch::Device& device) const {
    auto st = std::make_unique<TransformerState>();
    const int64_t H = config_.transformer.heads, hd = config_.d_model / H;
    for (int64_t i = 0; i < config_.transformer.layers; ++i) {
        st->keys.push_back(torch::zeros({batch, H, 0, hd}, torch::TensorOptions().device(device)));
        st->values.push_back(torch::zeros({batch, H, 0, hd}, torch::TensorOptions().device(device)));
    }
    return st;
}

ForwardOutput TransformerModel::forward(const torch::Tensor& tokens, bool trace) { return run(tokens, nullptr, trace); }

ForwardOutput TransformerModel::forward_chunk(const torch::Tensor& tokens, StreamState& state, bool trace) {
    return run(tokens, &state, trace);
}

ForwardOutput TransformerModel::run(const torch::Tensor& tokens, StreamState* state_base, bool trace) {
    TORCH_CHECK(tokens.dim() == 2, "Transformer: tokens must be (B, T)");
    auto* state = state_base ? &dynamic_cast<TransformerState&>(*state_base) : nullptr;
    const int64_t B = tokens.size(0), T = tokens.size(1), d = config_.d_model;
    const int64_t H = config_.transformer.heads, hd = d / H, window = config_.transformer.context;
    const int64_t pos0 = state ? state->position : 0;
    auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(tokens.device());
    auto q_pos = torch::arange(pos0, pos0 + T, long_opts);
    ForwardOutput out;
    auto x = embed->forward(tokens);
    for (std::size_t i = 0; i < layers->size(); ++i) {
        auto& layer = *layers[i]->as<TransformerLayerImpl>();
        auto hsplit = [&](const torch::Tensor& t) { return t.view({B, T, H, hd}).transpose(1, 2); };
        auto a = layer.ln1(x);
        auto q = rope(hsplit(layer.wq(a)), q_pos, config_.transformer.rope_theta);
        auto k = rope(hsplit(layer.wk(a)), q_pos, config_.transformer.rope_theta);
        auto v = hsplit(layer.wv(a));
        torch::Tensor att;
        if (!state && T <= window) {
            att = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
        } else if (!state) {
            // Longer than the window the model was trained with: the same band the streamed path
            // keeps, so that one text scores the same whichever way it is fed (RoPE extrapolates
            // badly to distances never seen in training).
            auto qp = q_pos.unsqueeze(1), kp = q_pos.unsqueeze(0);
            att = at::scaled_dot_product_attention(q, k, v, (kp <= qp) & (kp > qp - window), 0.0, false);
        } else {
            auto keys = torch::cat({state->keys[i].to(k.scalar_type()), k}, 2);
            auto values = torch::cat({state->values[i].to(v.scalar_type()), v}, 2);
            const int64_t L = keys.size(2);
            auto k_pos = torch::arange(pos0 + T - L, pos0 + T, long_opts);
            auto qp = q_pos.unsqueeze(1), kp = k_pos.unsqueeze(0);
            auto mask = (kp <= qp) & (kp > qp - window);  // (T, L): true = may attend
            att = at::scaled_dot_product_attention(q, keys, values, mask, 0.0, false);
            const int64_t keep = std::min<int64_t>(L, window - 1);
            state->keys[i] = keys.index({Slice(), Slice(), Slice(L - keep)});
            state->values[i] = values.index({Slice(), Slice(), Slice(L - keep)});
        }
        x = x + layer.wo(att.transpose(1, 2).reshape({B, T, d}));
        x = x + linear(layer.fc2, torch::gelu(linear(layer.fc1, layer.ln2(x))));
        if (trace) out.levels.push_back({"layer " + std::to_string(i + 1), 1, 0.0, x, {}, {}, pos0});
    }
    auto z = final_norm(x);
    out.features = z;
    if (!headless()) out.logits = output_logits(z, head_weight());
    if (state) state->position += T;
    return out;
}

torch::Tensor TransformerModel::head_weight() const { return head ? head->weight : embed->weight; }

}  // namespace harmonic
