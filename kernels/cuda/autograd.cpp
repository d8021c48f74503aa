// Autograd functions of the CUDA kernels (autograd.h): each saves what its backward pass needs and
// calls the raw passes of ops.cpp.
#include "kernels/cuda/autograd.h"

#include <torch/torch.h>

#include "kernels/residual.h"

namespace harmonic::kernels::cuda {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// torch::autograd::Function cannot take undefined tensors (VariableInfo asks them for a device):
// optional inputs travel as empty tensors and are turned back into undefined ones here.
Tensor opt(const Tensor& t) { return t.defined() && t.numel() > 0 ? t : Tensor(); }
Tensor placeholder(const Tensor& t, const Tensor& like) {
    return t.defined() ? t : torch::empty({0}, like.options());
}

Tensor or_undefined(const Tensor& t, bool want) { return want ? t : Tensor(); }

// Linear scan and level cells: one autograd function (the cell is a saved integer).
struct ScanFn : public torch::autograd::Function<ScanFn> {
    static variable_list forward(AutogradContext* ctx, const Tensor& a, const Tensor& b, const Tensor& h0_in,
                                 int64_t cell, double tau) {
        const Tensor h0 = opt(h0_in);
        auto f = scan_forward(static_cast<Cell>(cell), a, b, h0, tau);
        const int64_t B = b.size(0), C = b.size(2), chunks = f.ckpt.size(0);
        auto h_last = f.ckpt[chunks - 1].view({B, C}).clone();
        ctx->save_for_backward({a, b, h0_in, f.ckpt});
        ctx->saved_data["cell"] = cell;
        ctx->saved_data["tau"] = tau;
        return {f.h, h_last};
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const auto cell = static_cast<Cell>(ctx->saved_data["cell"].toInt());
        const double tau = ctx->saved_data["tau"].toDouble();
        const Tensor &a = saved[0], &b = saved[1], h0 = opt(saved[2]);
        ScanForward f{Tensor(), saved[3]};
        Tensor dh = grads[0].defined() ? grads[0] : torch::zeros_like(b);
        auto g = scan_backward(cell, a, b, h0, f, dh, grads[1], ctx->needs_input_grad(0), tau);
        Tensor da = g.da.defined() ? g.da.to(a.scalar_type()) : Tensor();
        Tensor dh0 = g.dh0.defined() ? g.dh0.to(h0.scalar_type()) : Tensor();
        return {or_undefined(da, ctx->needs_input_grad(0)), or_undefined(g.db.to(b.scalar_type()), ctx->needs_input_grad(1)),
                or_undefined(dh0, ctx->needs_input_grad(2)), Tensor(), Tensor()};
    }
};

struct SelectiveScanFn : public torch::autograd::Function<SelectiveScanFn> {
    static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& delta, const Tensor& A,
                                 const Tensor& Bm, const Tensor& Cm, const Tensor& D, const Tensor& z,
                                 const Tensor& h0) {
        auto f = sel_forward(x, delta, A, Bm, Cm, opt(D), opt(z), opt(h0));
        ctx->save_for_backward({x, delta, A, Bm, Cm, D, z, h0, f.ckpt});
        ctx->saved_data["warps"] = static_cast<int64_t>(f.warps);
        return {f.y, f.h_last};
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto s = ctx->get_saved_variables();
        SelForward f{Tensor(), Tensor(), s[8], static_cast<int>(ctx->saved_data["warps"].toInt())};
        Tensor dy = grads[0].defined() ? grads[0] : torch::zeros_like(s[0]);
        auto g = sel_backward(s[0], s[1], s[2], s[3], s[4], opt(s[5]), opt(s[6]), opt(s[7]), f, dy, grads[1]);
        return {or_undefined(g.dx, ctx->needs_input_grad(0)), or_undefined(g.ddelta, ctx->needs_input_grad(1)),
                or_undefined(g.dA, ctx->needs_input_grad(2)), or_undefined(g.dB, ctx->needs_input_grad(3)),
                or_undefined(g.dC, ctx->needs_input_grad(4)), or_undefined(g.dD, ctx->needs_input_grad(5)),
                or_undefined(g.dz, ctx->needs_input_grad(6)), or_undefined(g.dh0, ctx->needs_input_grad(7))};
    }
};

// The residual sum with its gradient: dx = g, dy = g, d ext_l = g summed over the tokens that read
// each row (causal_upsample_grad). Inputs: x, y, then the levels' ext; strides and pos0 saved.
struct ResidualFn : public torch::autograd::Function<ResidualFn> {
    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& y,
                                 at::TensorList exts, const std::vector<int64_t>& strides, int64_t pos0) {
        auto out = residual_forward(x, y, exts.vec(), strides, pos0);
        ctx->saved_data["strides"] = strides;
        ctx->saved_data["pos0"] = pos0;
        std::vector<int64_t> rows;
        for (const auto& e : exts) rows.push_back(e.size(1));
        ctx->saved_data["rows"] = rows;
        ctx->saved_data["y_dtype"] = static_cast<int64_t>(y.scalar_type());
        return out;
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        const auto strides = ctx->saved_data["strides"].toIntVector();
        const auto rows = ctx->saved_data["rows"].toIntVector();
        const int64_t pos0 = ctx->saved_data["pos0"].toInt();
        const auto ydt = static_cast<c10::ScalarType>(ctx->saved_data["y_dtype"].toInt());
        const auto& g = grads[0];
        // One gradient per input as forward's arguments flatten: x, y, each ext (a TensorList
        // argument counts one input per tensor), then the strides and pos0 (none).
        variable_list result{g, g.to(ydt)};
        for (std::size_t l = 0; l < strides.size(); ++l)
            result.push_back(causal_upsample_grad(g, rows[l], pos0, strides[l]).to(ydt));
        result.push_back(torch::Tensor());
        result.push_back(torch::Tensor());
        return result;
    }
};

}  // namespace

std::pair<Tensor, Tensor> scan_with_grad(Cell cell, const Tensor& a, const Tensor& b, const Tensor& h0, double tau) {
    auto out = ScanFn::apply(a, b, placeholder(h0, b), static_cast<int64_t>(cell), tau);
    return {out[0], out[1]};
}

std::pair<Tensor, Tensor> selective_scan_with_grad(const Tensor& x, const Tensor& delta, const Tensor& A,
                                                   const Tensor& Bm, const Tensor& Cm, const Tensor& D,
                                                   const Tensor& z, const Tensor& h0) {
    auto out = SelectiveScanFn::apply(x, delta, A, Bm, Cm, placeholder(D, x), placeholder(z, x), placeholder(h0, x));
    return {out[0], out[1]};
}

Tensor residual_with_grad(const Tensor& x, const Tensor& y, const std::vector<Tensor>& exts,
                          const std::vector<int64_t>& strides, int64_t pos0) {
    return ResidualFn::apply(x, y, at::TensorList(exts), strides, pos0);
}

}  // namespace harmonic::kernels::cuda
