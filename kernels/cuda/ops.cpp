// LibTorch side of the CUDA kernels: input preparation, scratch buffers, autograd functions, and
// the dispatch of linear_scan / level_scan / selective_scan (CUDA kernels for CUDA tensors, the
// pure-LibTorch references otherwise). Compiled only when HARMONIC_WITH_CUDA_KERNELS is defined.
#include "kernels/cuda/ops.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "kernels/cuda/launch.h"
#include "kernels/level_scan.h"
#include "kernels/linear_scan.h"
#include "kernels/output_head.h"
#include "kernels/residual.h"
#include "kernels/selective_scan.h"

namespace harmonic::kernels {

namespace cuda {

namespace {

using torch::Tensor;

bool kernel_dtype(const Tensor& t) {
    return t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16;
}
DType dtype_of(const Tensor& t) { return t.scalar_type() == torch::kBFloat16 ? DType::BF16 : DType::F32; }

// Widest channel vector (≤ max_vec) that divides C and keeps every pointer aligned to it.
int pick_vec(int64_t C, int max_vec, const std::vector<const Tensor*>& ts) {
    for (int v = max_vec; v > 1; v /= 2) {
        if (C % v) continue;
        bool ok = true;
        for (const Tensor* t : ts)
            if (t && t->defined() && reinterpret_cast<std::uintptr_t>(t->data_ptr()) % (v * t->element_size()))
                ok = false;
        if (ok) return v;
    }
    return 1;
}

cudaStream_t stream() { return at::cuda::getCurrentCUDAStream().stream(); }

// Look-back window: status words read per round trip, kLookbackBatch (all in flight at once; with
// one round trip per step the window hardly matters, docs/KERNELS.md § Settings);
// HARMONIC_LOOKBACK_WINDOW=1..kLookbackBatch overrides it (benchmark knob).
int lookback_window() {
    const char* e = std::getenv("HARMONIC_LOOKBACK_WINDOW");
    return e ? std::clamp(std::atoi(e), 1, kLookbackBatch) : kLookbackBatch;
}

// Channels per thread in the linear forward: 4 (default), or HARMONIC_LIN_VEC=2 / 1 (benchmark knob:
// fewer registers, more resident blocks; see docs/KERNELS.md § Linear scan).
int lin_fwd_vec() {
    const char* e = std::getenv("HARMONIC_LIN_VEC");
    const int v = e ? std::atoi(e) : 4;
    return v == 1 || v == 2 ? v : 4;
}

// Channels per thread in the linear backward: 4 with bf16 inputs (8 steps a thread; 16 for the fixed
// decay, whose recomputed states then live in shared memory), 2 otherwise (fp32 inputs at 4 channels
// would not fit the registers); HARMONIC_LIN_BWD_VEC=2 / 1 overrides it (benchmark knob). With bf16
// inputs 4 channels give 8- or 16-byte accesses and twice the channels a block, which is faster
// than 2 (docs/KERNELS.md § Linear scan).
int lin_bwd_vec(bool bf16) {
    const char* e = std::getenv("HARMONIC_LIN_BWD_VEC");
    const int v = e ? std::atoi(e) : (bf16 ? 4 : 2);
    return v == 1 || (v == 4 && bf16) ? v : 2;
}

// The linear backward's inputs staged in shared memory, 16 steps a thread (default), or
// HARMONIC_LIN_STAGE=0 for inputs in registers (benchmark knob; docs/KERNELS.md § Linear scan).
bool lin_bwd_stage_inputs() {
    const char* e = std::getenv("HARMONIC_LIN_STAGE");
    return !(e && std::atoi(e) == 0);
}

// Selective-scan block size: kSelWarps (8), or HARMONIC_SEL_WARPS=16 (one 512-thread backward block per SM;
// tests and benchmark run both).
int sel_warps() {
    const char* e = std::getenv("HARMONIC_SEL_WARPS");
    if (e && std::atoi(e) == 8) return 8;
    if (e && std::atoi(e) == 16) return 16;
    return kSelWarps;
}

// torch::autograd::Function cannot take undefined tensors (VariableInfo asks them for a device):
// optional inputs travel as empty tensors and are turned back into undefined ones here.
Tensor opt(const Tensor& t) { return t.defined() && t.numel() > 0 ? t : Tensor(); }
Tensor placeholder(const Tensor& t, const Tensor& like) {
    return t.defined() ? t : torch::empty({0}, like.options());
}

LinMode mode_of(Cell cell, const Tensor& a) {
    switch (cell) {
        case Cell::GatedEma: return LinMode::Gated;
        case Cell::Selective: return LinMode::SelLevel;
        case Cell::Linear: break;
    }
    return a.dim() == 1 ? LinMode::LinearFixed : LinMode::Linear;
}

// Inputs as the kernel reads them: contiguous, fp32 or bf16; fixed decay in fp32; pre and u of one
// dtype; h0 in fp32. Anything else is converted (to fp32), which costs a pass but keeps the result
// exact to the kernel's fp32 arithmetic.
struct LinInputs {
    LinMode mode;
    Tensor a, b, h0;
};

LinInputs prepare(Cell cell, const Tensor& a_in, const Tensor& b_in, const Tensor& h0_in) {
    LinInputs r;
    r.mode = mode_of(cell, a_in);
    r.b = b_in.contiguous();
    if (!kernel_dtype(r.b)) r.b = r.b.to(torch::kFloat32);
    if (r.mode == LinMode::LinearFixed) {
        r.a = a_in.to(torch::kFloat32).contiguous();
    } else if (r.mode == LinMode::Linear) {
        r.a = a_in.contiguous();
        if (!kernel_dtype(r.a)) r.a = r.a.to(torch::kFloat32);
    } else {
        r.a = a_in.contiguous();
        if (r.a.scalar_type() != r.b.scalar_type()) {
            r.a = r.a.to(torch::kFloat32);
            r.b = r.b.to(torch::kFloat32);
        }
    }
    if (h0_in.defined()) r.h0 = h0_in.to(torch::kFloat32).contiguous();
    return r;
}

LinParams params(const LinInputs& in, double tau) {
    LinParams p;
    p.mode = in.mode;
    p.ta = dtype_of(in.a);
    p.tb = dtype_of(in.b);
    p.B = in.b.size(0);
    p.T = in.b.size(1);
    p.C = in.b.size(2);
    if (in.mode == LinMode::Gated) {
        const double decay = std::exp(-1.0 / tau);
        p.c0 = static_cast<float>(decay);
        p.c1 = static_cast<float>(1.0 - decay);  // not 1 - (float)decay: that loses ~4e-6 at τ = 128
    } else if (in.mode == LinMode::SelLevel) {
        p.c0 = static_cast<float>(1.0 / tau);
    }
    p.a = in.a.data_ptr();
    p.b = in.b.data_ptr();
    p.h0 = in.h0.defined() ? in.h0.data_ptr<float>() : nullptr;
    p.window = lookback_window();
    return p;
}

// A scan's scratch (launch.h, ScanScratch): `words` status words and `acc` accumulators. Kept per
// device and stream, so that consecutive launches need no zero fill between them (common.cuh,
// request_ticket); grown (a new zero-filled buffer) when a launch needs more. A launch in a CUDA graph
// capture gets a buffer of its own, zero-filled by the graph: a graph may be replayed on another
// stream, concurrently with eager launches on its capture stream, which would then share one
// epoch. So does a launch above kScratchMaxHalf words (Mamba's scan beyond ~2 × 16K tokens: two
// halves kept for it would hold 2 × 64 MB), and every launch when HARMONIC_SCAN_SCRATCH=fill
// (benchmark and test knob). `keep` holds the buffer until the call returns (the caching
// allocator reuses memory freed on a stream only after the work queued on it).
struct ScratchLease {
    ScanScratch s;
    Tensor keep;
};

constexpr int64_t kScratchMaxHalf = int64_t(1) << 23;

bool fill_scratch_per_launch() {
    static const bool fill = [] {
        const char* e = std::getenv("HARMONIC_SCAN_SCRATCH");
        return e && std::string(e) == "fill";
    }();
    return fill;
}

// Capacity rounded up to a power of two (at least `least`), so growth happens a few times at most.
int64_t capacity_for(int64_t n, int64_t least) {
    int64_t c = least;
    while (c < n) c *= 2;
    return c;
}

ScratchLease scan_scratch(int64_t words, int64_t acc, const torch::TensorOptions& opts) {
    const cudaStream_t s = stream();
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    C10_CUDA_CHECK(cudaStreamIsCapturing(s, &capture));
    const auto i64 = opts.dtype(torch::kInt64);
    auto lease_of = [&](const Tensor& buf, int64_t acc_cap, int64_t half_cap) {
        ScratchLease l;
        l.keep = buf;
        auto* base = reinterpret_cast<unsigned long long*>(buf.data_ptr<int64_t>());
        l.s.control = base;
        l.s.half[0] = base + kScratchControlWords + acc_cap;
        l.s.half[1] = l.s.half[0] + half_cap;
        l.s.words = words;
        return l;
    };
    if (capture != cudaStreamCaptureStatusNone || words > kScratchMaxHalf || fill_scratch_per_launch()) {
        // Both halves the same: nothing in the control words says either was written.
        const int64_t acc_cap = (acc + 1) / 2 * 2;  // keeps the status words 16-byte aligned
        return lease_of(torch::zeros({kScratchControlWords + acc_cap + words}, i64), acc_cap, 0);
    }
    struct Kept {
        Tensor buf;
        int64_t acc_cap = 0, half_cap = 0;
    };
    static std::mutex mutex;
    // Never destroyed: CUDA memory must not be freed by static destructors after the allocator's.
    static auto* kept = new std::map<std::pair<int, cudaStream_t>, Kept>;
    std::lock_guard<std::mutex> lock(mutex);
    Kept& k = (*kept)[{opts.device().index(), s}];
    if (!k.buf.defined() || words > k.half_cap || acc > k.acc_cap) {
        k.half_cap = std::max(k.half_cap, capacity_for(words, int64_t(1) << 16));
        k.acc_cap = std::max(k.acc_cap, capacity_for(acc, 1024));
        k.buf = torch::zeros({kScratchControlWords + k.acc_cap + 2 * k.half_cap}, i64);
    }
    return lease_of(k.buf, k.acc_cap, k.half_cap);
}

}  // namespace

ScanForward scan_forward(Cell cell, const Tensor& a_in, const Tensor& b_in, const Tensor& h0_in, double tau) {
    TORCH_CHECK(b_in.is_cuda() && a_in.device() == b_in.device(), "scan_forward: CUDA tensors on one device");
    c10::cuda::CUDAGuard guard(b_in.device());
    const auto in = prepare(cell, a_in, b_in, h0_in);
    LinParams p = params(in, tau);
    auto h = torch::empty_like(in.b);
    p.h = h.data_ptr();
    p.vec = pick_vec(p.C, lin_fwd_vec(), {in.mode == LinMode::LinearFixed ? nullptr : &in.a, &in.b, &h});
    const auto scratch = scan_scratch(lin_scratch_words(p, false), 0, in.b.options());
    p.scratch = scratch.s;
    auto ckpt = torch::empty({lin_num_chunks(p.T), p.B * p.C}, in.b.options().dtype(torch::kFloat32));
    p.ckpt = ckpt.data_ptr<float>();
    lin_forward(p, stream());
    return {h, ckpt};
}

ScanBackward scan_backward(Cell cell, const Tensor& a_in, const Tensor& b_in, const Tensor& h0_in,
                           const ScanForward& fwd, const Tensor& dh_in, const Tensor& dh_last, bool need_da,
                           double tau) {
    c10::cuda::CUDAGuard guard(b_in.device());
    const auto in = prepare(cell, a_in, b_in, h0_in);
    LinParams p = params(in, tau);
    auto dh = dh_in.to(in.b.scalar_type()).contiguous();
    Tensor dlast;
    if (dh_last.defined()) dlast = dh_last.to(torch::kFloat32).contiguous();
    ScanBackward g;
    g.db = torch::empty_like(in.b);
    if (in.mode != LinMode::LinearFixed) g.da = torch::empty_like(in.mode == LinMode::Linear ? in.a : in.b);
    if (in.h0.defined()) g.dh0 = torch::empty({p.B, p.C}, in.b.options().dtype(torch::kFloat32));
    p.vec = pick_vec(p.C, lin_bwd_vec(p.tb == DType::BF16 && (p.ta == DType::BF16 || p.mode == LinMode::LinearFixed)),
                     {in.mode == LinMode::LinearFixed ? nullptr : &in.a, &in.b, &dh, &g.da, &g.db});
    p.stage_inputs = lin_bwd_stage_inputs();
    const bool fixed_da = in.mode == LinMode::LinearFixed && need_da;
    p.ckpt = fwd.ckpt.data_ptr<float>();
    p.dh = dh.data_ptr();
    p.dh_last = dlast.defined() ? dlast.data_ptr<float>() : nullptr;
    p.da = g.da.defined() ? g.da.data_ptr() : nullptr;
    p.fixed_da = fixed_da;
    p.db = g.db.data_ptr();
    p.dh0 = g.dh0.defined() ? g.dh0.data_ptr<float>() : nullptr;
    const auto scratch = scan_scratch(lin_scratch_words(p, true), fixed_da ? p.C : 0, in.b.options());
    p.scratch = scratch.s;
    lin_backward(p, stream());
    if (fixed_da) {
        g.da = torch::empty({p.C}, in.b.options().dtype(torch::kFloat32));
        lin_fixed_da_finish(p, g.da.data_ptr<float>(), stream());
    }
    return g;
}

namespace {

struct SelInputs {
    Tensor x, dt, A, Bm, Cm, D, z, h0;  // h0 as [B][N][E]
};

SelInputs prepare_sel(const Tensor& x_in, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const Tensor& z_in, const Tensor& h0) {
    SelInputs r;
    r.x = x_in.contiguous();
    if (z_in.defined()) r.z = z_in.contiguous();
    if (!kernel_dtype(r.x) || (r.z.defined() && r.z.scalar_type() != r.x.scalar_type())) {
        r.x = r.x.to(torch::kFloat32);
        if (r.z.defined()) r.z = r.z.to(torch::kFloat32);
    }
    r.dt = delta.contiguous();
    if (r.dt.scalar_type() != r.x.scalar_type()) r.dt = r.dt.to(torch::kFloat32);
    r.A = A.to(torch::kFloat32).contiguous();
    r.Bm = Bm.to(torch::kFloat32).contiguous();
    r.Cm = Cm.to(torch::kFloat32).contiguous();
    if (D.defined()) r.D = D.to(torch::kFloat32).contiguous();
    if (h0.defined()) r.h0 = h0.to(torch::kFloat32).permute({0, 2, 1}).contiguous();
    return r;
}

SelParams sel_params(const SelInputs& in) {
    SelParams p;
    p.tx = dtype_of(in.x);
    p.td = dtype_of(in.dt);
    p.B = in.x.size(0);
    p.T = in.x.size(1);
    p.E = in.x.size(2);
    p.N = in.A.size(1);
    p.x = in.x.data_ptr();
    p.dt = in.dt.data_ptr();
    p.z = in.z.defined() ? in.z.data_ptr() : nullptr;
    p.A = in.A.data_ptr<float>();
    p.Bm = in.Bm.data_ptr<float>();
    p.Cm = in.Cm.data_ptr<float>();
    p.D = in.D.defined() ? in.D.data_ptr<float>() : nullptr;
    p.h0 = in.h0.defined() ? in.h0.data_ptr<float>() : nullptr;
    p.window = lookback_window();
    return p;
}

}  // namespace

SelForward sel_forward(const Tensor& x, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                       const Tensor& D, const Tensor& z, const Tensor& h0) {
    c10::cuda::CUDAGuard guard(x.device());
    const auto in = prepare_sel(x, delta, A, Bm, Cm, D, z, h0);
    SelParams p = sel_params(in);
    p.warps = sel_warps();
    auto y = torch::empty_like(in.x);
    p.y = y.data_ptr();
    const auto scratch = scan_scratch(sel_scratch_words(p), 0, in.x.options());
    p.scratch = scratch.s;
    const int64_t chunks = sel_num_chunks(p.T, p.warps);
    auto incl = torch::empty({chunks, p.B, p.N, p.E}, in.x.options().dtype(torch::kFloat32));
    p.incl = incl.data_ptr<float>();
    sel_forward(p, stream());
    SelForward r;
    r.warps = p.warps;
    r.y = y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
    r.h_last = incl[chunks - 1].permute({0, 2, 1}).contiguous();
    r.ckpt = incl;
    return r;
}

SelBackward sel_backward(const Tensor& x, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                         const Tensor& D, const Tensor& z, const Tensor& h0, const SelForward& fwd,
                         const Tensor& dy_in, const Tensor& dh_last) {
    c10::cuda::CUDAGuard guard(x.device());
    const auto in = prepare_sel(x, delta, A, Bm, Cm, D, z, h0);
    SelParams p = sel_params(in);
    p.warps = fwd.warps;
    TORCH_CHECK(fwd.ckpt.size(0) == sel_num_chunks(p.T, p.warps), "sel_backward: checkpoints of another chunking");
    auto dy = dy_in.to(in.x.scalar_type()).contiguous();
    Tensor dlast;
    if (dh_last.defined()) dlast = dh_last.to(torch::kFloat32).permute({0, 2, 1}).contiguous();
    const auto f32 = in.x.options().dtype(torch::kFloat32);
    const int64_t chunks = sel_num_chunks(p.T, p.warps);
    auto dx = torch::empty_like(in.x), ddt = torch::empty_like(in.dt);
    Tensor dz = in.z.defined() ? torch::empty_like(in.z) : Tensor();
    auto dB = torch::zeros({p.B, p.T, p.N}, f32), dC = torch::zeros({p.B, p.T, p.N}, f32);
    auto dA_part = torch::empty({chunks, p.B, p.N, p.E}, f32);
    auto dD_part = torch::empty({chunks, p.B, p.E}, f32);
    Tensor dh0 = in.h0.defined() ? torch::empty({p.B, p.N, p.E}, f32) : Tensor();
    p.ckpt = fwd.ckpt.data_ptr<float>();
    p.dy = dy.data_ptr();
    p.dh_last = dlast.defined() ? dlast.data_ptr<float>() : nullptr;
    p.dx = dx.data_ptr();
    p.ddt = ddt.data_ptr();
    p.dz = dz.defined() ? dz.data_ptr() : nullptr;
    p.dB = dB.data_ptr<float>();
    p.dC = dC.data_ptr<float>();
    p.dA_part = dA_part.data_ptr<float>();
    p.dD_part = dD_part.data_ptr<float>();
    p.dh0 = dh0.defined() ? dh0.data_ptr<float>() : nullptr;
    const auto scratch = scan_scratch(sel_scratch_words(p), 0, in.x.options());
    p.scratch = scratch.s;
    sel_backward(p, stream());
    SelBackward g;
    g.dx = dx.to(x.scalar_type());
    g.ddelta = ddt.to(delta.scalar_type());
    g.dA = dA_part.sum(std::vector<int64_t>{0, 1}).t().to(A.scalar_type());
    g.dB = dB.to(Bm.scalar_type());
    g.dC = dC.to(Cm.scalar_type());
    if (D.defined()) g.dD = dD_part.sum(std::vector<int64_t>{0, 1}).to(D.scalar_type());
    if (dz.defined()) g.dz = dz.to(z.scalar_type());
    if (dh0.defined()) g.dh0 = dh0.permute({0, 2, 1}).to(h0.scalar_type());
    return g;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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

bool all_cuda(std::initializer_list<const Tensor*> ts, const Tensor& ref) {
    for (const Tensor* t : ts)
        if (t->defined() && (!t->is_cuda() || t->device() != ref.device())) return false;
    return true;
}

}  // namespace

}  // namespace cuda

bool cuda_kernels_available() { return true; }

torch::Tensor linear_scan(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& h0) {
    const bool shapes_ok = b.dim() == 3 && ((a.dim() == 1 && a.size(0) == b.size(2)) || a.sizes() == b.sizes()) &&
                           (!h0.defined() || (h0.dim() == 2 && h0.size(0) == b.size(0) && h0.size(1) == b.size(2)));
    if (!shapes_ok || !b.is_cuda() || !cuda::all_cuda({&a, &h0}, b) || b.numel() == 0)
        return linear_scan_fallback(a, b, h0);  // checks shapes, or the CPU path
    return cuda::ScanFn::apply(a, b, cuda::placeholder(h0, b), static_cast<int64_t>(cuda::Cell::Linear), 1.0)[0];
}

LevelScanResult level_scan(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0, double tau,
                           bool selective) {
    const bool shapes_ok = u.dim() == 3 && pre.sizes() == u.sizes() &&
                           (!h0.defined() || (h0.dim() == 2 && h0.size(0) == u.size(0) && h0.size(1) == u.size(2)));
    if (!shapes_ok || !u.is_cuda() || !cuda::all_cuda({&pre, &h0}, u) || u.numel() == 0)
        return level_scan_fallback(pre, u, h0, tau, selective);
    const auto cell = selective ? cuda::Cell::Selective : cuda::Cell::GatedEma;
    auto out = cuda::ScanFn::apply(pre, u, cuda::placeholder(h0, u), static_cast<int64_t>(cell), tau);
    auto h = out[0].scalar_type() == u.scalar_type() ? out[0] : out[0].to(u.scalar_type());
    return {h, out[1]};
}

SelectiveScanResult selective_scan(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                                   const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D,
                                   const torch::Tensor& z, const torch::Tensor& h0) {
    const bool shapes_ok =
        x.dim() == 3 && delta.sizes() == x.sizes() && A.dim() == 2 && A.size(0) == x.size(2) &&
        Bm.dim() == 3 && Bm.size(0) == x.size(0) && Bm.size(1) == x.size(1) && Bm.size(2) == A.size(1) &&
        Cm.sizes() == Bm.sizes() && (!D.defined() || (D.dim() == 1 && D.size(0) == x.size(2))) &&
        (!z.defined() || z.sizes() == x.sizes()) &&
        (!h0.defined() || h0.sizes() == torch::IntArrayRef({x.size(0), x.size(2), A.size(1)}));
    if (!shapes_ok || !x.is_cuda() || !cuda::all_cuda({&delta, &A, &Bm, &Cm, &D, &z, &h0}, x) || x.numel() == 0 ||
        A.size(1) > cuda::kSelMaxN || A.size(1) == 0)
        return selective_scan_fallback(x, delta, A, Bm, Cm, D, z, h0);
    auto out = cuda::SelectiveScanFn::apply(x, delta, A, Bm, Cm, cuda::placeholder(D, x), cuda::placeholder(z, x),
                                            cuda::placeholder(h0, x));
    return {out[0], out[1]};
}

namespace {

// The head kernels take a contiguous chunk of fp32 or bf16 logits on one CUDA device.
bool head_kernel_applies(const torch::Tensor& logits, int64_t V, const torch::Tensor& targets,
                         std::initializer_list<const torch::Tensor*> more) {
    if (!logits.is_cuda() || logits.dim() != 2 || !logits.is_contiguous() || !cuda::kernel_dtype(logits)) return false;
    if (V < 1 || V > logits.size(1) || targets.dim() != 1 || targets.size(0) != logits.size(0) ||
        targets.scalar_type() != torch::kLong)
        return false;
    return cuda::all_cuda({&targets}, logits) && cuda::all_cuda(more, logits);
}

}  // namespace

HeadLse head_lse(const torch::Tensor& logits, int64_t V, const torch::Tensor& targets) {
    if (!head_kernel_applies(logits, V, targets, {})) return head_lse_reference(logits, V, targets);
    const c10::cuda::CUDAGuard guard(logits.device());
    const int64_t n = logits.size(0);
    auto opts = logits.options().dtype(torch::kFloat32);
    HeadLse out{torch::empty({n}, opts), torch::empty({n}, opts)};
    const auto t = targets.contiguous();
    cuda::HeadParams p;
    p.t = cuda::dtype_of(logits);
    p.n = n, p.V = V, p.ld = logits.size(1);
    p.logits = logits.data_ptr();
    p.targets = t.data_ptr<int64_t>();
    p.lse = out.lse.data_ptr<float>();
    p.picked = out.picked.data_ptr<float>();
    cuda::head_lse(p, cuda::stream());
    return out;
}

bool head_lse_fused_applies(const torch::Tensor& features, const torch::Tensor& weight) {
    static const bool enabled = [] {
        const char* e = std::getenv("HARMONIC_HEAD_GEMM");
        return !e || std::string(e) != "0";
    }();
    if (!enabled || !features.is_cuda() || features.dim() != 2 || weight.dim() != 2 ||
        features.size(1) != weight.size(1) || features.scalar_type() != torch::kBFloat16 ||
        weight.scalar_type() != torch::kBFloat16 || !cuda::all_cuda({&weight}, features))
        return false;
    return cuda::head_lse_gemm_supported(features.size(1), weight.size(0), features.get_device());
}

HeadLse head_lse_fused(const torch::Tensor& features, const torch::Tensor& weight, const torch::Tensor& targets) {
    check_fused_args(features, weight, targets);
    if (!head_lse_fused_applies(features, weight) || !cuda::all_cuda({&targets}, features))
        return head_lse_fused_reference(features, weight, targets);
    const c10::cuda::CUDAGuard guard(features.device());
    // The copy engine reads 16-byte aligned rows: contiguous tensors from the caching allocator are.
    auto f = features.contiguous(), w = weight.contiguous();
    if (reinterpret_cast<std::uintptr_t>(f.data_ptr()) % 16) f = f.clone();
    if (reinterpret_cast<std::uintptr_t>(w.data_ptr()) % 16) w = w.clone();
    const auto t = targets.contiguous();
    const int64_t n = f.size(0);
    auto opts = f.options().dtype(torch::kFloat32);
    HeadLse out{torch::empty({n}, opts), torch::empty({n}, opts)};
    cuda::HeadGemmParams p;
    p.M = n, p.V = w.size(0), p.K = static_cast<int>(f.size(1));
    p.features = f.data_ptr(), p.weight = w.data_ptr(), p.targets = t.data_ptr<int64_t>();
    p.lse = out.lse.data_ptr<float>(), p.picked = out.picked.data_ptr<float>();
    p.splits = cuda::head_lse_gemm_splits(p.M, p.V, at::cuda::getDeviceProperties(f.get_device())->multiProcessorCount);
    torch::Tensor partial;
    if (p.splits > 1) {
        partial = torch::empty({2 * p.splits * n}, opts);
        p.partial = partial.data_ptr<float>();
    }
    cuda::head_lse_gemm(p, cuda::stream());
    return out;
}

torch::Tensor head_softmax_grad(const torch::Tensor& logits, int64_t V, const torch::Tensor& lse,
                                const torch::Tensor& targets, const torch::Tensor& scale, const torch::Tensor& out) {
    const bool out_ok = !out.defined() || (out.sizes() == logits.sizes() && out.scalar_type() == logits.scalar_type() &&
                                           out.is_contiguous() && out.device() == logits.device());
    if (!head_kernel_applies(logits, V, targets, {&lse, &scale}) || lse.scalar_type() != torch::kFloat32 ||
        lse.numel() != logits.size(0) || scale.numel() != 1 || !out_ok)
        return head_softmax_grad_reference(logits, V, lse, targets, scale, out);
    const c10::cuda::CUDAGuard guard(logits.device());
    // Each element is read before it is written by the same thread, so out may be logits.
    auto g = out.defined() ? out : torch::empty_like(logits);
    const auto t = targets.contiguous();
    const auto l = lse.contiguous();
    const auto s = scale.to(torch::kFloat32).contiguous();
    cuda::HeadParams p;
    p.t = cuda::dtype_of(logits);
    p.n = logits.size(0), p.V = V, p.ld = logits.size(1);
    p.logits = logits.data_ptr();
    p.targets = t.data_ptr<int64_t>();
    p.lse = const_cast<float*>(l.data_ptr<float>());
    p.scale = s.data_ptr<float>();
    p.g = g.data_ptr();
    cuda::head_softmax_grad(p, cuda::stream());
    return g;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The residual sum with its gradient: dx = g, dy = g, d ext_l = g summed over the tokens that read
// each row (causal_upsample_grad). Inputs: x, y, then the levels' ext; strides and pos0 saved.
struct ResidualFn : public torch::autograd::Function<ResidualFn> {
    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& y,
                                 at::TensorList exts, const std::vector<int64_t>& strides, int64_t pos0) {
        const c10::cuda::CUDAGuard guard(x.device());
        const auto xc = x.contiguous(), yc = y.contiguous();
        auto out = torch::empty_like(xc);
        cuda::ResidualParams p;
        p.ty = cuda::dtype_of(yc);
        p.levels = static_cast<int>(exts.size());
        p.B = x.size(0), p.C = x.size(1), p.d = x.size(2), p.pos0 = pos0;
        p.x = xc.data_ptr<float>();
        p.y = yc.data_ptr();
        p.out = out.data_ptr<float>();
        std::vector<torch::Tensor> ec;
        for (const auto& e : exts) ec.push_back(e.contiguous());
        for (int l = 0; l < p.levels; ++l) {
            p.ext[l] = ec[l].data_ptr();
            p.rows[l] = ec[l].size(1);
            p.stride[l] = strides[l];
        }
        std::vector<const torch::Tensor*> all{&xc, &yc, &out};
        for (const auto& e : ec) all.push_back(&e);
        p.vec = cuda::pick_vec(p.d, 4, all) == 4 ? 4 : 1;  // the kernel is built for 4 and 1
        cuda::residual_upsample_sum(p, cuda::stream());
        ctx->saved_data["strides"] = strides;
        ctx->saved_data["pos0"] = pos0;
        std::vector<int64_t> rows;
        for (const auto& e : ec) rows.push_back(e.size(1));
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

torch::Tensor residual_upsample_sum(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                                    const std::vector<int64_t>& strides, int64_t pos0) {
    check_residual_args(x, y, exts, strides, pos0);
    bool kernel = x.is_cuda() && x.scalar_type() == torch::kFloat32 && cuda::kernel_dtype(y) &&
                  exts.size() <= std::size_t(cuda::kResidualMaxLevels) && cuda::all_cuda({&y}, x);
    for (const auto& e : exts) kernel = kernel && e.scalar_type() == y.scalar_type() && cuda::all_cuda({&e}, x);
    if (!kernel) return residual_upsample_sum_reference(x, y, exts, strides, pos0);
    return ResidualFn::apply(x, y, at::TensorList(exts), strides, pos0);
}

}  // namespace harmonic::kernels
