#include "model/mamba.h"

#include <cmath>

#include "kernels/activations_cpu.h"
#include "kernels/selective_scan.h"

namespace harmonic {

using torch::indexing::Slice;

MambaLayerImpl::MambaLayerImpl(int64_t d, int64_t E, int64_t N, int64_t k, int64_t R)
    : d_inner(E), d_state(N), d_conv(k), dt_rank(R) {
    norm = register_module("norm", RMSNorm(d));
    in_proj = register_module("in_proj", torch::nn::Linear(torch::nn::LinearOptions(d, 2 * E).bias(false)));
    conv_weight = register_parameter("conv_weight", torch::empty({E, 1, k}));
    conv_bias = register_parameter("conv_bias", torch::zeros({E}));
    x_proj = register_module("x_proj", torch::nn::Linear(torch::nn::LinearOptions(E, R + 2 * N).bias(false)));
    dt_proj = register_module("dt_proj", torch::nn::Linear(R, E));
    A_log = register_parameter("A_log", torch::log(torch::arange(1, N + 1, torch::kFloat32)).repeat({E, 1}));
    D = register_parameter("D", torch::ones({E}));
    out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(E, d).bias(false)));
    torch::NoGradGuard no_grad;
    const double bound = 1.0 / std::sqrt(static_cast<double>(k));
    conv_weight.uniform_(-bound, bound);
    // Δ starts log-uniform in [1e-3, 1e-1] (the Mamba reference initialisation): bias = softplus⁻¹(Δ).
    const double rank_scale = 1.0 / std::sqrt(static_cast<double>(R));
    dt_proj->weight.uniform_(-rank_scale, rank_scale);
    auto dt = torch::exp(torch::rand({E}) * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3));
    dt_proj->bias.copy_(dt + torch::log(-torch::expm1(-dt)));
}

namespace {

struct MambaState : StreamState {
    std::vector<torch::Tensor> conv;  // per layer (B, E, k-1): the last k-1 conv inputs
    std::vector<torch::Tensor> ssm;   // per layer (B, E, N), fp32
    void detach() override {
        for (auto& c : conv) c = c.detach();
        for (auto& s : ssm) s = s.detach();
    }
};

}  // namespace

MambaModel::MambaModel(const ModelConfig& config) : LanguageModel(config) {
    const auto& c = config_;
    embed = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.mamba.layers; ++i)
        layers->push_back(MambaLayer(c.d_model, c.mamba.d_inner, c.mamba.d_state, c.mamba.d_conv, c.mamba.dt_rank));
    final_norm = register_module("final_norm", RMSNorm(c.d_model));
    if (!c.tie_embeddings)
        head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(embed->weight, 0.0, 0.02);
    if (head) torch::nn::init::normal_(head->weight, 0.0, 0.02);
}

std::unique_ptr<StreamState> MambaModel::initial_state(int64_t batch, const torch::Device& device) const {
    auto st = std::make_unique<MambaState>();
    const auto& m = config_.mamba;
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    for (int64_t i = 0; i < m.layers; ++i) {
        st->conv.push_back(torch::zeros({batch, m.d_inner, m.d_conv - 1}, opts));
        st->ssm.push_back(torch::zeros({batch, m.d_inner, m.d_state}, opts));
    }
    return st;
}

ForwardOutput MambaModel::forward(const torch::Tensor& tokens, bool trace) {
    auto state = initial_state(tokens.size(0), tokens.device());
    return forward_chunk(tokens, *state, trace);
}

ForwardOutput MambaModel::forward_chunk(const torch::Tensor& tokens, StreamState& state_base, bool trace) {
    auto& state = dynamic_cast<MambaState&>(state_base);
    TORCH_CHECK(tokens.dim() == 2, "Mamba: tokens must be (B, T)");
    const int64_t T = tokens.size(1);
    ForwardOutput out;
    auto x = embed->forward(tokens);
    for (std::size_t i = 0; i < layers->size(); ++i) {
        auto& L = *layers[i]->as<MambaLayerImpl>();
        const int64_t E = L.d_inner, N = L.d_state, R = L.dt_rank;
        auto xz = L.in_proj(L.norm(x));
        auto xs = xz.index({"...", Slice(0, E)}).transpose(1, 2);  // (B, E, T)
        auto z = xz.index({"...", Slice(E)});
        // Causal depthwise conv: the k-1 inputs before this chunk come from the state.
        auto padded = torch::cat({state.conv[i].to(xs.scalar_type()), xs}, 2);
        state.conv[i] = padded.index({Slice(), Slice(), Slice(padded.size(2) - (L.d_conv - 1))});
        auto conv = torch::conv1d(padded, L.conv_weight.to(xs.scalar_type()), L.conv_bias.to(xs.scalar_type()),
                                  /*stride=*/torch::IntArrayRef{1}, /*padding=*/torch::IntArrayRef{0},
                                  /*dilation=*/torch::IntArrayRef{1}, /*groups=*/E);
        // Without autograd on the CPU, the activations that give every element the same bits however
        // the work is split across threads and chunks (kernels/activations_cpu.h).
        const bool exact_cpu = conv.device().is_cpu() && !conv.requires_grad();
        auto u = (exact_cpu ? kernels::silu_cpu(conv).to(conv.scalar_type()) : torch::silu(conv)).transpose(1, 2);
        auto dbc = L.x_proj(u);
        auto dt = linear(L.dt_proj, dbc.index({"...", Slice(0, R)}));
        auto delta = exact_cpu ? kernels::softplus_cpu(dt).to(dt.scalar_type()) : torch::nn::functional::softplus(dt);
        auto Bm = dbc.index({"...", Slice(R, R + N)});
        auto Cm = dbc.index({"...", Slice(R + N)});
        auto A = -torch::exp(L.A_log.to(torch::kFloat32));
        auto scan = kernels::selective_scan(u, delta, A, Bm, Cm, L.D, z, state.ssm[i]);
        state.ssm[i] = scan.h_last;
        x = x + L.out_proj(scan.y);
        if (trace) {
            // Per-channel decay per step, averaged over the N state dimensions.
            auto decay = kernels::selective_decay_mean(delta, A);
            LevelOutput level;
            level.name = "layer " + std::to_string(i + 1);
            level.hidden = scan.y;
            level.decay = decay;
            level.first_step = state.position;
            out.levels.push_back(level);
        }
    }
    auto zf = final_norm(x);
    out.features = zf;
    if (!headless()) out.logits = output_logits(zf, head_weight());
    state.position += T;
    return out;
}

torch::Tensor MambaModel::head_weight() const { return head ? head->weight : embed->weight; }

}  // namespace harmonic
