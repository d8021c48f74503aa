// LibTorch side of the CUDA kernels: the checks that decide whether a kernel applies, the input
// preparation and launch of each raw pass (ops.h), and the dispatch of linear_scan / level_scan /
// selective_scan / the head / the residual sum (CUDA kernels for CUDA tensors, the pure-LibTorch
// references otherwise). The autograd functions are in autograd.cpp, the scan scratch in
// scan_scratch.cpp, the settings in kernels/kernel_tuning.h. Compiled only when
// HARMONIC_WITH_CUDA_KERNELS is defined.
#include "kernels/cuda/ops.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda/autograd.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/scan_scratch.h"
#include "kernels/kernel_tuning.h"
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

static_assert(KernelTuning{}.lookback_window == kLookbackBatch && KernelTuning{}.sel_warps == kSelWarps,
              "the tuning's defaults are the kernels' compile-time defaults");

// Channels a thread in the linear backward: 4 with bf16 inputs (8 steps a thread; 16 for the fixed
// decay, whose recomputed states then live in shared memory), 2 otherwise (fp32 inputs at 4
// channels would not fit the registers), or the tuning's 1 or 2. With bf16 inputs 4 channels give
// 8- or 16-byte accesses and twice the channels a block, which is faster than 2 (docs/KERNELS.md
// § Linear scan).
int lin_bwd_vec(const KernelTuning& t, bool bf16) {
    const int v = t.lin_bwd_vec ? t.lin_bwd_vec : (bf16 ? 4 : 2);
    return v == 4 && !bf16 ? 2 : v;
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

LinParams params(const LinInputs& in, double tau, const KernelTuning& tuning) {
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
    p.window = tuning.lookback_window;
    return p;
}

}  // namespace

ScanForward scan_forward(Cell cell, const Tensor& a_in, const Tensor& b_in, const Tensor& h0_in, double tau) {
    TORCH_CHECK(b_in.is_cuda() && a_in.device() == b_in.device(), "scan_forward: CUDA tensors on one device");
    c10::cuda::CUDAGuard guard(b_in.device());
    const KernelTuning tuning = kernel_tuning();
    const auto in = prepare(cell, a_in, b_in, h0_in);
    LinParams p = params(in, tau, tuning);
    auto h = torch::empty_like(in.b);
    p.h = h.data_ptr();
    p.vec = pick_vec(p.C, tuning.lin_fwd_vec, {in.mode == LinMode::LinearFixed ? nullptr : &in.a, &in.b, &h});
    const auto scratch = scan_scratch(lin_scratch_words(p, false), 0, in.b.options(), tuning.scratch_per_launch);
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
    const KernelTuning tuning = kernel_tuning();
    const auto in = prepare(cell, a_in, b_in, h0_in);
    LinParams p = params(in, tau, tuning);
    auto dh = dh_in.to(in.b.scalar_type()).contiguous();
    Tensor dlast;
    if (dh_last.defined()) dlast = dh_last.to(torch::kFloat32).contiguous();
    ScanBackward g;
    g.db = torch::empty_like(in.b);
    if (in.mode != LinMode::LinearFixed) g.da = torch::empty_like(in.mode == LinMode::Linear ? in.a : in.b);
    if (in.h0.defined()) g.dh0 = torch::empty({p.B, p.C}, in.b.options().dtype(torch::kFloat32));
    p.vec = pick_vec(p.C, lin_bwd_vec(tuning, p.tb == DType::BF16 && (p.ta == DType::BF16 || p.mode == LinMode::LinearFixed)),
                     {in.mode == LinMode::LinearFixed ? nullptr : &in.a, &in.b, &dh, &g.da, &g.db});
    p.stage_inputs = tuning.lin_bwd_stage;
    const bool fixed_da = in.mode == LinMode::LinearFixed && need_da;
    p.ckpt = fwd.ckpt.data_ptr<float>();
    p.dh = dh.data_ptr();
    p.dh_last = dlast.defined() ? dlast.data_ptr<float>() : nullptr;
    p.da = g.da.defined() ? g.da.data_ptr() : nullptr;
    p.fixed_da = fixed_da;
    p.db = g.db.data_ptr();
    p.dh0 = g.dh0.defined() ? g.dh0.data_ptr<float>() : nullptr;
    const auto scratch = scan_scratch(lin_scratch_words(p, true), fixed_da ? p.C : 0, in.b.options(), tuning.scratch_per_launch);
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

SelParams sel_params(const SelInputs& in, const KernelTuning& tuning) {
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
    p.window = tuning.lookback_window;
    return p;
}

}  // namespace

SelForward sel_forward(const Tensor& x, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                       const Tensor& D, const Tensor& z, const Tensor& h0) {
    c10::cuda::CUDAGuard guard(x.device());
    const KernelTuning tuning = kernel_tuning();
    const auto in = prepare_sel(x, delta, A, Bm, Cm, D, z, h0);
    SelParams p = sel_params(in, tuning);
    p.warps = tuning.sel_warps;
    auto y = torch::empty_like(in.x);
    p.y = y.data_ptr();
    const auto scratch = scan_scratch(sel_scratch_words(p), 0, in.x.options(), tuning.scratch_per_launch);
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
    const KernelTuning tuning = kernel_tuning();
    const auto in = prepare_sel(x, delta, A, Bm, Cm, D, z, h0);
    SelParams p = sel_params(in, tuning);
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
    const auto scratch = scan_scratch(sel_scratch_words(p), 0, in.x.options(), tuning.scratch_per_launch);
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

torch::Tensor residual_forward(const Tensor& x, const Tensor& y, const std::vector<Tensor>& exts,
                               const std::vector<int64_t>& strides, int64_t pos0) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto xc = x.contiguous(), yc = y.contiguous();
    auto out = torch::empty_like(xc);
    ResidualParams p;
    p.ty = dtype_of(yc);
    p.levels = static_cast<int>(exts.size());
    p.B = x.size(0), p.C = x.size(1), p.d = x.size(2), p.pos0 = pos0;
    p.x = xc.data_ptr<float>();
    p.y = yc.data_ptr();
    p.out = out.data_ptr<float>();
    std::vector<Tensor> ec;
    for (const auto& e : exts) ec.push_back(e.contiguous());
    for (int l = 0; l < p.levels; ++l) {
        p.ext[l] = ec[l].data_ptr();
        p.rows[l] = ec[l].size(1);
        p.stride[l] = strides[l];
    }
    std::vector<const Tensor*> all{&xc, &yc, &out};
    for (const auto& e : ec) all.push_back(&e);
    p.vec = pick_vec(p.d, 4, all) == 4 ? 4 : 1;  // the kernel is built for 4 and 1
    residual_upsample_sum(p, stream());
    return out;
}

namespace {

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
    return cuda::scan_with_grad(cuda::Cell::Linear, a, b, h0, 1.0).first;
}

LevelScanResult level_scan(const torch::Tensor& pre, const torch::Tensor& u, const torch::Tensor& h0, double tau,
                           bool selective) {
    const bool shapes_ok = u.dim() == 3 && pre.sizes() == u.sizes() &&
                           (!h0.defined() || (h0.dim() == 2 && h0.size(0) == u.size(0) && h0.size(1) == u.size(2)));
    if (!shapes_ok || !u.is_cuda() || !cuda::all_cuda({&pre, &h0}, u) || u.numel() == 0)
        return level_scan_fallback(pre, u, h0, tau, selective);
    const auto cell = selective ? cuda::Cell::Selective : cuda::Cell::GatedEma;
    auto [h, h_last] = cuda::scan_with_grad(cell, pre, u, h0, tau);
    if (h.scalar_type() != u.scalar_type()) h = h.to(u.scalar_type());
    return {h, h_last};
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
    auto [y, h_last] = cuda::selective_scan_with_grad(x, delta, A, Bm, Cm, D, z, h0);
    return {y, h_last};
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
    if (!kernel_tuning().head_gemm || !features.is_cuda() || features.dim() != 2 || weight.dim() != 2 ||
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

torch::Tensor residual_upsample_sum(const torch::Tensor& x, const torch::Tensor& y, const std::vector<torch::Tensor>& exts,
                                    const std::vector<int64_t>& strides, int64_t pos0) {
    check_residual_args(x, y, exts, strides, pos0);
    bool kernel = x.is_cuda() && x.scalar_type() == torch::kFloat32 && cuda::kernel_dtype(y) &&
                  exts.size() <= std::size_t(cuda::kResidualMaxLevels) && cuda::all_cuda({&y}, x);
    for (const auto& e : exts) kernel = kernel && e.scalar_type() == y.scalar_type() && cuda::all_cuda({&e}, x);
    if (!kernel) return residual_upsample_sum_reference(x, y, exts, strides, pos0);
    return cuda::residual_with_grad(x, y, exts, strides, pos0);
}

}  // namespace harmonic::kernels
