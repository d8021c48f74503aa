// Harmonic (docs/MODEL.md §2). Symbols: x_t token embedding, y_l level-l output, m_l,j mean of the
// level-below outputs over block j, e_l,j = m_l,j − P_l m_l,j−1 the prediction error fed upward,
// K = pool, stride_l = K^(l-1) tokens per level-l step.
#include "model/harmonic.h"

#include <cmath>

#include "kernels/level_scan.h"
#include "kernels/residual.h"
#include "model/error.h"

namespace harmonic {

using torch::indexing::Slice;

LevelCellImpl::LevelCellImpl(int64_t d, double tau_, bool selective_) : tau(tau_), selective(selective_) {
    const int64_t D = 2 * d;
    norm = register_module("norm", RMSNorm(d));
    w_in = register_module("w_in", torch::nn::Linear(d, D));
    w_g = register_module("w_g", torch::nn::Linear(D, D));
    w_out = register_module("w_out", torch::nn::Linear(D, d));
    if (selective) {
        // softplus(b) = 1 at init, so the mean decay starts at exp(-1/tau), the fixed cell's value.
        torch::NoGradGuard no_grad;
        w_g->bias.fill_(std::log(std::exp(1.0) - 1.0));
    }
}

LevelCellImpl::Out LevelCellImpl::forward(const torch::Tensor& x, const torch::Tensor& h0, bool want_decay) {
    auto u = linear(w_in, norm(x));
    auto pre = linear(w_g, u);
    // The decay a and the scan input b are formed inside the (fused) scan and never stored.
    auto r = kernels::level_scan(pre, u, h0, tau, selective);
    torch::Tensor decay;
    if (want_decay) {
        decay = selective ? torch::exp(-torch::nn::functional::softplus(pre.detach().to(torch::kFloat32)) / tau)
                          : torch::full({u.size(2)}, std::exp(-1.0 / tau), u.options().dtype(torch::kFloat32));
    }
    return {linear(w_out, r.h), r.h, decay, r.h_last};
}

OutputTripleImpl::OutputTripleImpl(int64_t d) {
    fc1 = register_module("fc1", torch::nn::Linear(d, 2 * d));
    fc2 = register_module("fc2", torch::nn::Linear(2 * d, 2 * d));
    fc3 = register_module("fc3", torch::nn::Linear(2 * d, d));
}

torch::Tensor OutputTripleImpl::forward(const torch::Tensor& o) {
    return linear(fc3, torch::gelu(linear(fc2, torch::gelu(linear(fc1, o)))));
}

HarmonicBlockImpl::HarmonicBlockImpl(const ModelConfig& c)
    : pool(c.harmonic.pool),
      error_routing(c.harmonic.routing == "error"),
      top_down(c.harmonic.prediction == "top_down") {
    const int64_t d = c.d_model;
    levels = register_module("levels", torch::nn::ModuleList());
    predictors = register_module("predictors", torch::nn::ModuleList());
    for (std::size_t l = 0; l < c.harmonic.timescales.size(); ++l) {
        levels->push_back(LevelCell(d, c.harmonic.timescales[l], c.harmonic.cell == "selective"));
        if (l > 0 && error_routing) predictors->push_back(torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
    }
    out = register_module("out", OutputTriple(d));
}

namespace {

// Recurrent state of one level: its scan state h, the outputs of the level below that do not yet
// fill a block (at most K-1 rows), the previous block mean m_{j-1} (temporal prediction) and this
// level's latest output (what tokens read until its next step completes; top-down prediction).
struct LevelState {
    torch::Tensor h, pending, prev_m, last_y;
};

struct HarmonicState : StreamState {
    std::vector<std::vector<LevelState>> blocks;
    void detach() override {
        for (auto& block : blocks)
            for (auto& s : block) {
                s.h = s.h.detach();
                s.pending = s.pending.detach();
                s.prev_m = s.prev_m.detach();
                s.last_y = s.last_y.detach();
            }
    }
};

int64_t ipow(int64_t base, std::size_t exp) {
    int64_t r = 1;
    for (std::size_t i = 0; i < exp; ++i) r *= base;
    return r;
}

// One block over a chunk of C tokens starting at global position pos0. Returns the new residual
// stream r = o + Triple(o), o = x + y1 + Σ_l read_l.
torch::Tensor block_forward(HarmonicBlockImpl& block, const torch::Tensor& x, std::vector<LevelState>& st,
                            int64_t pos0, const std::string& prefix, std::vector<LevelOutput>* traces) {
    const int64_t B = x.size(0), K = block.pool;
    auto& level1 = *block.levels[0]->as<LevelCellImpl>();
    auto first = level1.forward(x, st[0].h, traces != nullptr);
    st[0].h = first.h_last;
    if (traces) traces->push_back({prefix + "level 1", 1, level1.tau, first.h, {}, first.decay, pos0});

    // The residual stream x + y_1 + the coarse levels read at token rate, summed in one pass
    // once every level has run (kernels/residual.h).
    std::vector<torch::Tensor> coarse;
    std::vector<int64_t> strides;
    torch::Tensor below = first.y;  // outputs of level l-1 produced in this chunk
    for (std::size_t l = 1; l < block.levels->size(); ++l) {
        auto& cell = *block.levels[l]->as<LevelCellImpl>();
        LevelState& s = st[l];
        const int64_t stride = ipow(K, l);
        // Upward: pool complete blocks of K outputs of the level below (pending rows first; no
        // copy of `below` when none are pending, as in a whole-sequence forward).
        auto rows = s.pending.size(1) == 0 ? below : torch::cat({s.pending.to(below.scalar_type()), below}, 1);
        const int64_t n = rows.size(1) / K;
        s.pending = rows.index({Slice(), Slice(n * K)});
        const torch::Tensor last_before = s.last_y;
        torch::Tensor y, h, decay, err;
        if (n > 0) {
            auto m = rows.index({Slice(), Slice(0, n * K)}).reshape({B, n, K, rows.size(2)}).mean(2);
            if (block.top_down) {
                // e_j = m_j − P y_{j−1}: each step needs this level's previous output, so the level
                // runs step by step (slow; for fidelity experiments).
                auto& P = *block.predictors[l - 1]->as<torch::nn::LinearImpl>();
                std::vector<torch::Tensor> ys, hs, ds, es;
                torch::Tensor y_prev = last_before;
                for (int64_t j = 0; j < n; ++j) {
                    auto e = m.index({Slice(), Slice(j, j + 1)}) - P.forward(y_prev.to(m.scalar_type())).unsqueeze(1);
                    auto step = cell.forward(e, s.h, traces != nullptr);
                    s.h = step.h_last;
                    y_prev = step.y.index({Slice(), -1});
                    ys.push_back(step.y), hs.push_back(step.h), es.push_back(e);
                    if (step.decay.defined())
                        ds.push_back(step.decay.dim() == 1 ? step.decay.expand({B, 1, step.decay.size(0)}) : step.decay);
                }
                y = torch::cat(ys, 1), h = torch::cat(hs, 1), err = torch::cat(es, 1);
                if (!ds.empty()) decay = torch::cat(ds, 1);
            } else {
                if (block.error_routing) {
                    // e_j = m_j − P m_{j−1}, with m_{−1} = 0 carried in the state.
                    auto& P = *block.predictors[l - 1]->as<torch::nn::LinearImpl>();
                    auto prev = torch::cat({s.prev_m.to(m.scalar_type()).unsqueeze(1), m.index({Slice(), Slice(0, n - 1)})}, 1);
                    err = m - P.forward(prev);
                } else {
                    err = m;
                }
                s.prev_m = m.index({Slice(), -1});
                auto out = cell.forward(err, s.h, traces != nullptr);
                y = out.y, h = out.h, decay = out.decay;
                s.h = out.h_last;
            }
        } else {
            y = below.new_zeros({B, 0, below.size(2)});
        }
        // Downward: token t reads the output of the latest level-l step that ended at or before t,
        // i.e. step floor((t+1)/stride) − 1; index 0 of `ext` is the step before this chunk.
        coarse.push_back(torch::cat({last_before.to(y.scalar_type()).unsqueeze(1), y}, 1));
        strides.push_back(stride);
        if (n > 0) s.last_y = y.index({Slice(), -1});
        if (traces && n > 0)
            traces->push_back({prefix + "level " + std::to_string(l + 1), stride, cell.tau, h, err, decay,
                               pos0 / stride});
        below = y;
    }
    const auto o = kernels::residual_upsample_sum(x, first.y, coarse, strides, pos0);
    return o + block.out->forward(o);
}

}  // namespace

HarmonicModel::HarmonicModel(const ModelConfig& config) : LanguageModel(config) {
    const auto& c = config_;
    embed = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t b = 0; b < c.harmonic.blocks; ++b) blocks->push_back(HarmonicBlock(c));
    final_norm = register_module("final_norm", RMSNorm(c.d_model));
    if (!c.tie_embeddings)
        head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
    torch::NoGradGuard no_grad;
    // Untied: the embedding is only ever read through RMSNorm or next to normalised outputs, so unit
    // scale. Tied: it is also the head, and must give near-uniform logits at initialisation.
    torch::nn::init::normal_(embed->weight, 0.0, c.tie_embeddings ? 0.02 : 1.0);
    if (head) torch::nn::init::normal_(head->weight, 0.0, 0.02);
}

std::unique_ptr<StreamState> HarmonicModel::initial_state(int64_t batch, const torch::Device& device) const {
    auto st = std::make_unique<HarmonicState>();
    const int64_t d = config_.d_model;
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    for (int64_t b = 0; b < config_.harmonic.blocks; ++b) {
        std::vector<LevelState> levels;
        for (std::size_t l = 0; l < config_.harmonic.timescales.size(); ++l)
            levels.push_back({torch::zeros({batch, 2 * d}, opts), torch::zeros({batch, 0, d}, opts),
                              torch::zeros({batch, d}, opts), torch::zeros({batch, d}, opts)});
        st->blocks.push_back(std::move(levels));
    }
    return st;
}

ForwardOutput HarmonicModel::forward(const torch::Tensor& tokens, bool trace) {
    auto state = initial_state(tokens.size(0), tokens.device());
    return forward_chunk(tokens, *state, trace);
}

ForwardOutput HarmonicModel::forward_chunk(const torch::Tensor& tokens, StreamState& state_base, bool trace) {
    auto& state = dynamic_cast<HarmonicState&>(state_base);
    TORCH_CHECK(tokens.dim() == 2, "Harmonic: tokens must be (B, T)");
    TORCH_CHECK(static_cast<int64_t>(state.blocks.size()) == config_.harmonic.blocks, "Harmonic: state of another model");
    ForwardOutput out;
    auto r = embed->forward(tokens);
    for (std::size_t b = 0; b < blocks->size(); ++b) {
        const std::string prefix = blocks->size() > 1 ? "block " + std::to_string(b + 1) + " " : "";
        r = block_forward(*blocks[b]->as<HarmonicBlockImpl>(), r, state.blocks[b], state.position, prefix,
                          trace ? &out.levels : nullptr);
    }
    auto z = final_norm(r);
    out.features = z;
    if (!headless()) out.logits = output_logits(z, head_weight());
    state.position += tokens.size(1);
    return out;
}

torch::Tensor HarmonicModel::head_weight() const { return head ? head->weight : embed->weight; }

}  // namespace harmonic
