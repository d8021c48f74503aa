// CUDA linear scan h_t = a_t ⊙ h_{t-1} + b_t over (B, T, C), forward and backward, one pass over
// memory each, and the fused Harmonic level cells (see launch.h, LinMode).
//
// Work split. A thread block owns a tile of 32·V channels and a chunk of L = kLinWarps·S time
// steps (S = 8, 16 or 32 steps a thread by input dtype, see steps_for below): lane l of warp w
// holds channels [32·V·tile + V·l, +V) for the S steps [L·chunk + S·w, +S), loaded as one V-wide
// access per step (warp-wide coalesced rows) and kept between the two passes, in registers (the
// backward: in shared memory where that is faster, see lin_bwd_kernel):
//   pass 1: each thread reduces its steps to an affine map h ↦ A·h + H (A = Π a, H from h = 0);
//           the block composes its warps' maps in shared memory (exclusive prefixes and the block
//           map); then each of the first 32·V threads, one per channel, publishes its channel's
//           block map, finds its carry-in with a decoupled look-back over earlier chunks of the
//           same channel (their published maps or inclusive states) and publishes its inclusive
//           state (the state at the chunk end), each a single 64-bit status word (common.cuh);
//   pass 2: each thread rescans its steps from its exact carry-in and writes h.
// So a, b are read once and h written once: the bytes that must move, plus one 8-byte status word
// per channel per chunk and one fp32 checkpoint per channel per 64 steps (under 4 % at L = 64,
// fp32). The checkpoints (the state at the end of every kLinSpan steps) let the backward recompute
// h_{t-1} from a, b in registers instead of reading h (the same bytes, but fp32-exact where h is
// stored in bf16).
//
// Products in fp64. The decay of a span (Π a over a thread's 8 steps, a block's 64, several
// chunks in a look-back) multiplies whatever carry crosses it. Formed in fp32 it collects one
// rounding per factor (about sqrt(64)·u/√3 ≈ 3e-7 relative per chunk, random-walk), enough to put
// dL/dh0 of a long fixed-decay scan outside the tests' 2x rule (the reference takes a^t from pow;
// docs/KERNELS.md § Numerics). The products and the compositions that apply them are therefore
// kept in double (a few DMUL/DFMA per channel and chunk: free in a memory-bound kernel) and rounded
// once where they are stored; the per-step recurrence h = a h + b stays fp32 (one rounding per step,
// damped by later decays).
//
// Backward (reverse scan, q-form). With g_t = dL/dh_t (total) and q_t = a_t g_t:
//     g_t = dh_t + q_{t+1},  q_t = a_t (dh_t + q_{t+1}),  q_T = dL/dh_{T-1} of a final-state output,
// an affine scan in reverse time with the same decays, chained over chunks in reverse order by the
// same look-back. Per step: db_t = g_t, da_t = g_t h_{t-1}, and dL/dh0 = q_0.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace harmonic::kernels::cuda {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
    throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorString(err) + " at " + file + ":" +
                             std::to_string(line) + " (" + expr + ")");
}

namespace {

constexpr int kWarps = kLinWarps;  // warps a block; the comments' V is kVec (channels a thread), S is kSteps (steps)
static_assert(kLinSteps * kLinWarps == kLinSpan, "8 steps a thread make one checkpoint span");

// Why the fused modes exist: in the model, b = (1-a)·σ(pre)·u (gated_ema) or a = exp(-softplus(pre)/τ),
// b = (1-a)·u (selective) are 3 to 5 elementwise LibTorch passes, each reading and writing a
// (B,T,C) tensor, before the scan reads a and b again. Computing (a, b) here from pre and u reads
// each input once and never writes a or b: forward 3 tensor passes instead of about 9, and the
// backward likewise returns dL/dpre, dL/du directly.
// σ of the gated_ema cell: two MUFU operations for bf16 inputs, where the cell is instruction-bound
// and the fast form is faster; libm's for fp32, whose backward was slower with the fast form and
// which keeps fp32's accuracy (docs/KERNELS.md § Level scan).
template <typename TypeB>
__device__ __forceinline__ float gate_sigmoid(float x) {
    if constexpr (sizeof(TypeB) == 2) return sigmoid_fast(x);
    else return sigmoidf_(x);
}

// The selective cell's decay a = exp(−softplus(pre)/τ) in the forward (c0 = 1/τ). bf16 inputs: three
// MUFU operations (softplus_fast, then 2^(−softplus·log2 e/τ)) and a few FP32 ones, so that each
// element is a short chain: with libm's expf, log1pf and expf it is a long chain of dependent steps,
// which bounds the bf16 forward by latency rather than bytes (docs/KERNELS.md § Level scan).
// fp32: libm, whose forward is memory-bound anyway and equals the reference's to
// the ulp.
template <typename TypeB>
__device__ __forceinline__ float cell_decay(float pre, float c0) {
    // 2^y as 2^(y + 1) / 2: ex2.approx's error is about 2^-23 absolute, which is 2 ulp of a result in
    // [0.5, 1) but 1 ulp in [1, 2) (libm's expf shifts its argument the same way). Straight
    // 2^y fails the tests' bound on the fp32 final state at τ = 128, where
    // an ulp of a near 1 is 1 % of 1 − a.
    if constexpr (sizeof(TypeB) == 2) return 0.5f * ex2_approx(fmaf(-softplus_fast(pre), c0 * kLog2e, 1.f));
    else return expf(-softplus_reference(pre) * c0);
}

// k = a·σ(pre)/τ = −da/dpre of the bf16 cell, from the decay a that cell_decay gave: σ from
// t = e^−|pre| (the ex2 that softplus_fast also takes) and one reciprocal.
__device__ __forceinline__ float sel_slope(float pre, float a, float c0) {
    const float t = ex2_approx(-fabsf(pre) * kLog2e), r = __fdividef(1.f, 1.f + t);
    return a * (pre >= 0.f ? r : t * r) * c0;
}

// The selective cell's coefficients for its backward: the decay a = exp(−softplus(pre)/τ) and
// k = a·σ(pre)/τ = −da/dpre, with σ(pre) from the exponential that softplus needed. Computed once an
// element (pass 1 keeps them for pass 2). Fast (bf16 inputs): a exactly as the bf16 forward forms it
// (cell_decay, four MUFU operations with σ's reciprocal; docs/KERNELS.md § Level scan). fp32: libm's expf and the
// branch-free softplus of softplus.h (within 1.5 ulp of long double, as libm's log1pf(expf) is; the
// recomputed states may then differ from the forward's by an ulp of a a step, well inside the
// gradients' bounds).
template <bool Fast>
__device__ __forceinline__ void sel_coef(float pre, float c0, float& a, float& k) {
    // Without a branch (selects only), so that ptxas can interleave the chains of a thread's
    // elements (see softplus.h).
    if constexpr (Fast) {
        // a as the bf16 forward forms it (bitwise).
        a = cell_decay<bf16>(pre, c0);
        k = sel_slope(pre, a, c0);
    } else {
        // σ(pre) from softplus's own t = e^-|pre|: 1/(1 + t) for pre >= 0, t/(1 + t) below.
        const float t = expf(-fabsf(pre)), r = __fdividef(1.f, 1.f + t);  // t: softplusf_'s own
        a = expf(-softplusf_(pre) * c0);
        k = a * (pre >= 0.f ? r : t * r) * c0;
    }
}

// (a, b) of one step from the raw inputs.
template <LinMode Mode, typename TypeB>
__device__ __forceinline__ void coef(float ra, float rb, float afix, float c0, float c1, float& a, float& b) {
    if constexpr (Mode == LinMode::Linear) {
        a = ra;
        b = rb;
    } else if constexpr (Mode == LinMode::LinearFixed) {
        a = afix;
        b = rb;
    } else if constexpr (Mode == LinMode::Gated) {
        a = c0;
        b = c1 * gate_sigmoid<TypeB>(ra) * rb;
    } else {
        a = cell_decay<TypeB>(ra, c0);
        b = (1.f - a) * rb;
    }
}

template <LinMode Mode, typename TypeA, int kVec>
__device__ __forceinline__ float raw_a(const Pack<TypeA, kVec>& p, int v) {
    if constexpr (Mode == LinMode::LinearFixed) return 0.f;
    else return to_f(p.v[v]);
}

// Both a (unless fixed) and b in bf16.
template <LinMode Mode, typename TypeA, typename TypeB>
constexpr bool bf16_inputs() {
    return sizeof(TypeB) == 2 && (Mode == LinMode::LinearFixed || sizeof(TypeA) == 2);
}

// Steps per thread: about 64 bytes of input per channel held in registers in the forward (8 steps
// of fp32 a and b) and 48 to 96 in the backward, whatever the dtypes. A block's look-back and
// barriers cost about the same time however many bytes it moves, so with 8 steps of bf16 (half the
// bytes) the plain bf16 scans ran at half the fp32 scans' fraction of copy bandwidth; 16 or 32
// steps give them as many bytes per block. The backward also keeps the recomputed fp32 states of
// its steps, so it stops at 16. The fused cells stay at 8 (but see steps_for: their bf16 forwards):
// their forward keeps fp32 coefficients (8 bytes a step whatever the input dtype), and with libm's
// transcendental chains 16 steps are slower, the serial work of a chunk growing faster than its
// bytes; the bf16 cells, whose chains are on the MUFU pipe, run 16 (docs/KERNELS.md § Level scan).
//
constexpr bool fused_cell(LinMode m) { return m == LinMode::Gated || m == LinMode::SelLevel; }
// Bytes per (channel, step) of the inputs a thread holds: a (unless fixed) and b, the backward adds
// dh; the fused cells count as 12 (their coefficients, see above).
constexpr int held_bytes(LinMode m, int a_bytes, int b_bytes, bool backward) {
    if (fused_cell(m)) return 12;
    return b_bytes * (backward ? 2 : 1) + (m == LinMode::LinearFixed ? 0 : a_bytes);
}
// A staged backward (LinParams::stage_inputs, lin_bwd_kernel's kStaged) copies its inputs into shared
// memory with cp.async, which moves 4, 8 or 16 bytes: a launch with 2-byte packs (one bf16 channel a
// thread) is not staged.
// The selective cell is staged in bf16 only, where its coefficients come from the MUFU pipe and the
// staged form keeps its decays in registers (see lin_bwd_kernel, kSelStaged). In fp32, bound by
// libm's exp / log1p chains, it is slower staged at 16 steps. Nor is the fixed-decay bf16 scan,
// which runs 16 steps with its states in shared memory (states_in_shared) and is faster that way
// than staged (docs/KERNELS.md § Linear scan).
//
constexpr bool bwd_staged(LinMode m, int a_bytes, int b_bytes, int vec, bool stage_inputs) {
    const bool fixed_bf16 = m == LinMode::LinearFixed && b_bytes == 2;
    const bool sel_fp32 = m == LinMode::SelLevel && b_bytes == 4;
    return stage_inputs && !sel_fp32 && !fixed_bf16 &&
           (m == LinMode::LinearFixed || a_bytes * vec >= 4) && b_bytes * vec >= 4;
}
// Steps per thread of a launch with `vec` channels a thread. With 4 channels (bf16 backward only) 16
// steps fit when the thread holds 4 bytes a step (fixed decay: b and dh, its recomputed states in
// shared memory), 8 otherwise. A staged backward holds only g_t (the selective cell: a_t) in
// registers and runs 16 steps (at most 96 KB of inputs a block in shared memory, two blocks an SM).
// 32 steps of 2 bf16 channels, the same bytes a block as 16 of 4, are slower.
constexpr int steps_for(LinMode m, int a_bytes, int b_bytes, int vec, bool backward, bool staged = false) {
    if (backward && staged) return 16;
    // The gated_ema cell's decay is a constant: its forward keeps only b, and in bf16, with σ from
    // two MUFU operations (gate_sigmoid), 16 steps fit in registers without spilling: twice the
    // bytes a block for the same look-back.
    if (m == LinMode::Gated && !backward && b_bytes == 2) return 16;
    // The selective cell's bf16 forward, its decay on the MUFU pipe (cell_decay), likewise runs
    // 16 steps, its decays kept in shared memory for pass 2 (sel_keeps_decay).
    if (m == LinMode::SelLevel && !backward && b_bytes == 2) return 16;
    const int held = held_bytes(m, a_bytes, b_bytes, backward);
    if (!backward) return held <= 2 ? 32 : held <= 4 ? 16 : 8;
    if (vec == 4) return held <= 4 ? 16 : 8;
    return held <= 8 ? 16 : 8;
}
// The selective cell's bf16 forward keeps its decays a in shared memory (64 KB a block) and forms
// b = (1 - a) u again in pass 2: at 16 steps a thread, (a, b) would take 128 registers, and
// computing them again in pass 2 doubled the MUFU operations, the busiest pipe after issue.
template <LinMode Mode, typename TypeB>
constexpr bool sel_keeps_decay() {
    return Mode == LinMode::SelLevel && sizeof(TypeB) == 2;
}
template <LinMode Mode, typename TypeB, int kVec, int kSteps>
constexpr int fwd_smem_bytes() {
    return sel_keeps_decay<Mode, TypeB>() ? kWarps * 32 * kSteps * kVec * int(sizeof(float)) : 0;
}
// The fixed-decay bf16 backward keeps the recomputed states of its steps in shared memory.
template <LinMode Mode, typename TypeB>
constexpr bool states_in_shared() {
    return Mode == LinMode::LinearFixed && sizeof(TypeB) == 2;
}

struct Geometry {
    int64_t nTiles, chunk, tile, bb, ct, c0, t0, BC;
    int nvalid;
    bool cvalid;
};

template <int kVec, int kSteps>
__device__ __forceinline__ Geometry geometry(const LinParams& p, int64_t id, bool reverse) {
    constexpr int W = 32 * kVec, L = kSteps * kWarps;
    Geometry g;
    const int64_t nTilesC = (p.C + W - 1) / W;
    g.nTiles = p.B * nTilesC;
    const int64_t nChunks = (p.T + L - 1) / L;
    g.chunk = id / g.nTiles;
    if (reverse) g.chunk = nChunks - 1 - g.chunk;
    g.tile = id % g.nTiles;
    g.bb = g.tile / nTilesC;
    g.ct = g.tile % nTilesC;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    g.c0 = g.ct * W + lane * kVec;
    g.cvalid = g.c0 < p.C;
    g.t0 = g.chunk * L + w * kSteps;
    g.nvalid = g.cvalid ? steps_left(p.T - g.t0, kSteps) : 0;
    g.BC = p.B * p.C;
    return g;
}

// Folds published chunk maps h ↦ A·h + H, nearest first (look_back in common.cuh); the decay
// products in double (see "Products in fp64" above).
struct DecayFold {
    double accA = 1.0, accH = 0.0;
    __device__ void aggregate(float A, float H) {
        accH = fma(accA, double(H), accH);
        accA *= double(A);
    }
    __device__ float inclusive(float h) const { return static_cast<float>(fma(accA, double(h), accH)); }
};

template <LinMode Mode, typename TypeA, typename TypeB, int kVec, int kSteps>
__global__ void __launch_bounds__(kWarps * 32, 2) lin_fwd_kernel(LinParams p) {
    constexpr int W = 32 * kVec, L = kSteps * kWarps;
    constexpr int spans = L / kLinSpan, warps_per_span = kWarps / spans;
    static_assert(L % kLinSpan == 0 && kWarps % spans == 0, "checkpoint spans start at warp boundaries");
    __shared__ double sA[kWarps][W];  // decay products: see "Products in fp64" above
    __shared__ float sH[kWarps][W];
    __shared__ int s_ticket[3];
    extern __shared__ __align__(16) unsigned char fwd_smem[];
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const ScanTicket ticket = take_ticket(p.scratch, s_ticket);
    const int64_t id = ticket.id;
    StatusWord* const status = ticket.status;
    const Geometry g = geometry<kVec, kSteps>(p, id, false);
    // sel_keeps_decay: the decays of this thread's steps, V at a time, thread-contiguous.
    constexpr bool kSmemDecay = sel_keeps_decay<Mode, TypeB>();
    auto* const kept_decay = reinterpret_cast<Pack<float, kVec>*>(fwd_smem);

    // Load this thread's steps (V channels each) into registers.
    const TypeA* pa = static_cast<const TypeA*>(p.a);
    const TypeB* pb = static_cast<const TypeB*>(p.b);
    Pack<TypeA, kVec> ra[kSteps];
    Pack<TypeB, kVec> rb[kSteps];
    float afix[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v)
        afix[v] = (Mode == LinMode::LinearFixed && g.cvalid) ? static_cast<const float*>(p.a)[g.c0 + v] : 1.f;
    const int64_t base = (g.bb * p.T + g.t0) * p.C + g.c0;
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
        if (i < g.nvalid) {
            if constexpr (Mode != LinMode::LinearFixed) ra[i] = load_pack<TypeA, kVec>(pa + base + i * p.C);
            rb[i] = load_pack<TypeB, kVec>(pb + base + i * p.C);
        }
    }

    // Pass 1: this thread's map h -> A h + H. The fused cells keep the coefficients they computed
    // for pass 2 instead of their raw inputs (the same registers at 8 steps): their transcendental
    // chains (σ; exp, log1p, exp) made the bf16 cells compute-bound when evaluated in both passes.
    constexpr bool kKeep = fused_cell(Mode) && !kSmemDecay;
    float ka[kKeep ? kSteps : 1][kVec], kb[kKeep ? kSteps : 1][kVec];
    double A[kVec];
    float H[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v) A[v] = 1.0, H[v] = 0.f;
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
        if (i < g.nvalid) {
            Pack<float, kVec> decays;
#pragma unroll
            for (int v = 0; v < kVec; ++v) {
                float a, b;
                coef<Mode, TypeB>(raw_a<Mode, TypeA, kVec>(ra[i], v), to_f(rb[i].v[v]), afix[v], p.c0, p.c1, a, b);
                if constexpr (kKeep) ka[i][v] = a, kb[i][v] = b;
                decays.v[v] = a;
                H[v] = fmaf(a, H[v], b);
                A[v] *= a;
            }
            if constexpr (kSmemDecay) kept_decay[i * (kWarps * 32) + tid] = decays;
        }
    }
#pragma unroll
    for (int v = 0; v < kVec; ++v) sA[w][lane * kVec + v] = A[v], sH[w][lane * kVec + v] = H[v];
    __syncthreads();

    // Compose the warps (one thread per channel of the tile): exclusive prefixes in place.
    const int64_t cidx = g.ct * W + tid;
    const bool cok = tid < W && cidx < p.C;
    const int64_t gc = g.bb * p.C + cidx;
    double blkA = 1.0;
    float blkH = 0.f;
    if (tid < W) {
#pragma unroll
        for (int ww = 0; ww < kWarps; ++ww) {
            const double a = sA[ww][tid];
            const float h = sH[ww][tid];
            sA[ww][tid] = blkA;
            sH[ww][tid] = blkH;
            blkH = static_cast<float>(fma(a, double(blkH), double(h)));
            blkA *= a;
        }
        // Publish this chunk's map (chunk 0 publishes only its inclusive state, so every walk
        // ends there at the latest), find the carry-in, publish the state at the chunk end.
        StatusWord* const mine = status + g.chunk * g.BC + gc;
        float carry = 0.f;
        if (cok) {
            if (g.chunk > 0) {
                publish_status(mine, __float_as_uint(static_cast<float>(blkA)), blkH);
                DecayFold fold;
                carry = look_back(status + gc, g.BC, g.chunk, -1, g.chunk, p.window, fold);
            } else if (p.h0) {
                carry = p.h0[gc];
            }
        }
        const float incl = static_cast<float>(fma(blkA, double(carry), double(blkH)));
        if (cok) publish_status(mine, kStatusInclusive, incl);  // first: later chunks may be waiting on it
#pragma unroll
        for (int ww = 0; ww < kWarps; ++ww)
            sH[ww][tid] = static_cast<float>(fma(sA[ww][tid], double(carry), double(sH[ww][tid])));
        // The backward's checkpoints: the state at the end of each kLinSpan-step span of the chunk,
        // the carry into the warp that starts the next span (the chunk's own state for its last).
        if (cok) {
#pragma unroll
            for (int j = 0; j < spans; ++j) {
                const int64_t gs = g.chunk * spans + j;
                if (gs * kLinSpan < p.T) {
                    const bool next = j + 1 < spans && (gs + 1) * kLinSpan < p.T;
                    p.ckpt[gs * g.BC + gc] = next ? sH[(j + 1) * warps_per_span][tid] : incl;
                }
            }
        }
    }
    __syncthreads();

    // Pass 2: rescan from the exact carry-in and write h.
    if constexpr (!kKeep && (sizeof(TypeA) == 2 || sizeof(TypeB) == 2)) {
#pragma unroll
        for (int i = 0; i < kSteps; ++i) {
            if constexpr (Mode != LinMode::LinearFixed && !kSmemDecay) opaque(ra[i]);  // kSmemDecay: pre is spent
            opaque(rb[i]);
        }
    }
    float h[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v) h[v] = sH[w][lane * kVec + v];
    TypeB* out = static_cast<TypeB*>(p.h);
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
        if (i < g.nvalid) {
            Pack<TypeB, kVec> o;
            const Pack<float, kVec> decays = kSmemDecay ? kept_decay[i * (kWarps * 32) + tid] : Pack<float, kVec>{};
#pragma unroll
            for (int v = 0; v < kVec; ++v) {
                float a, b;
                if constexpr (kKeep) a = ka[i][v], b = kb[i][v];
                else if constexpr (kSmemDecay) a = decays.v[v], b = (1.f - a) * to_f(rb[i].v[v]);
                else coef<Mode, TypeB>(raw_a<Mode, TypeA, kVec>(ra[i], v), to_f(rb[i].v[v]), afix[v], p.c0, p.c1, a, b);
                h[v] = fmaf(a, h[v], b);
                o.v[v] = from_f<TypeB>(h[v]);
            }
            store_pack<TypeB, kVec>(out + base + i * p.C, o);
        }
    }
    // Last: after its loads, with its 32 steps of inputs in registers, it would spill.
    clear_stale_half(ticket);
}

// The gated_ema cell's gradients need no state: its decay is a constant, so dL/dpre and dL/du come
// from g_t, pre and u alone. Its backward therefore skips the forward map, the checkpoints and the
// recomputed states, and evaluates σ once per element instead of twice.
constexpr bool bwd_needs_states(LinMode m) { return m != LinMode::Gated; }

// Shared memory of a backward block beyond its static arrays: g_t of its steps for the fixed-decay
// bf16 scan unless staged (states_in_shared); the unstaged selective cell's coefficients a and k of
// its steps (sel_coef); or, staged, the chunk's inputs (a unless fixed, b, dh: each thread's own
// packs, step-major, so a warp's copies are contiguous and its reads conflict-free).
template <LinMode Mode, typename TypeB, int kVec, int kSteps, bool kStaged>
constexpr int bwd_kept_smem_bytes() {
    if constexpr (Mode == LinMode::SelLevel) return kStaged ? 0 : kWarps * 32 * kSteps * kVec * 2 * int(sizeof(float));
    return states_in_shared<Mode, TypeB>() && !kStaged ? kWarps * 32 * kSteps * kVec * int(sizeof(float)) : 0;
}
template <LinMode Mode, typename TypeA, typename TypeB, int kVec, int kSteps>
constexpr int bwd_stage_bytes() {
    return kWarps * 32 * kSteps * ((Mode == LinMode::LinearFixed ? 0 : int(sizeof(TypeA))) + 2 * int(sizeof(TypeB))) * kVec;
}

// kStaged: the block's inputs go to shared memory by cp.async instead of into registers, which
// then hold only g_t: 16 steps of 4 bf16 channels fit (in registers, the inputs and the states of
// 16 steps need ~160 registers, so the bf16 backward would run 8 steps, half the bytes per block of
// the fp32 one for the same look-back; docs/KERNELS.md § Linear scan).
template <LinMode Mode, typename TypeA, typename TypeB, int kVec, int kSteps, bool kStaged>
__global__ void __launch_bounds__(kWarps * 32, 2) lin_bwd_kernel(LinParams p) {
    constexpr int W = 32 * kVec, L = kSteps * kWarps, spans = L / kLinSpan;
    static_assert(L % kLinSpan == 0, "backward chunks start at checkpoints");
    constexpr bool kStates = bwd_needs_states(Mode);
    constexpr bool kFixed = Mode == LinMode::LinearFixed;
    __shared__ double sA[kWarps][W];
    __shared__ float sF[kWarps][W];
    __shared__ float sR[kWarps][W];
    __shared__ int s_ticket[3];
    extern __shared__ __align__(16) unsigned char bwd_smem[];
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    // The fixed-decay bf16 scan takes its chunk by index and its ticket after its loads (common.cuh,
    // request_ticket), which takes a round trip off its blocks' critical path; the others are slower
    // that way and take the ticket first (docs/KERNELS.md § The chained scan).
    constexpr bool kIndexOrder = states_in_shared<Mode, TypeB>() && !kStaged;
    ScanTicket ticket{};
    if constexpr (!kIndexOrder) ticket = take_ticket(p.scratch, s_ticket);
    const Geometry g = geometry<kVec, kSteps>(p, kIndexOrder ? int64_t(blockIdx.x) : ticket.id, true);
    const int64_t nChunks = (p.T + L - 1) / L;

    const TypeA* pa = static_cast<const TypeA*>(p.a);
    const TypeB* pb = static_cast<const TypeB*>(p.b);
    const TypeB* pd = static_cast<const TypeB*>(p.dh);
    float afix[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v)
        afix[v] = (kFixed && g.cvalid) ? static_cast<const float*>(p.a)[g.c0 + v] : 1.f;
    const int64_t base = (g.bb * p.T + g.t0) * p.C + g.c0;

    // The composition's two inputs from global memory: the forward carry into the chunk (h0, or the
    // checkpoint at the previous chunk's end: no look-back needed) and, in the last chunk, dL/dh
    // after the sequence. Loaded after the block's second barrier, each was a memory round trip on
    // the block's critical path. The fixed-decay bf16 scan, whose registers are full (held in
    // registers through pass 1 they would spill), copies them first by cp.async into the first
    // 2·W floats of its g_t area, which pass 2 only writes after the composition has read them.
    constexpr bool kEarlyCarry = states_in_shared<Mode, TypeB>() && !kStaged;
    float* const early_carry = reinterpret_cast<float*>(bwd_smem);
    // Where they come from, for the channel of thread tid < W (its global index gc), or null.
    auto carry_src = [&](bool cok, int64_t gc) -> const float* {
        if (!cok) return nullptr;
        if (g.chunk > 0) return p.ckpt + (g.chunk * spans - 1) * g.BC + gc;
        return p.h0 ? p.h0 + gc : nullptr;
    };
    auto dh_after_src = [&](bool cok, int64_t gc) -> const float* {
        return cok && g.chunk == nChunks - 1 && p.dh_last ? p.dh_last + gc : nullptr;
    };
    if constexpr (kEarlyCarry) {
        if (tid < W) {
            const bool cok = g.ct * W + tid < p.C;
            const int64_t gc = g.bb * p.C + g.ct * W + tid;
            const float* src[2] = {carry_src(cok, gc), dh_after_src(cok, gc)};
#pragma unroll
            for (int k = 0; k < 2; ++k) {
                float* dst = early_carry + k * W + tid;
                if (src[k]) async_copy_pack<float, 1>(reinterpret_cast<Pack<float, 1>*>(dst), src[k]);
                else *dst = 0.f;
            }
            async_copy_commit();
        }
    }

    // This chunk's inputs: in registers, or (staged) in shared memory, a (unless fixed), b, dh.
    float* const g_shared = reinterpret_cast<float*>(bwd_smem);
    constexpr int kSlots = kWarps * 32 * kSteps;
    auto* const stage_a = reinterpret_cast<Pack<TypeA, kVec>*>(bwd_smem);
    auto* const stage_b = reinterpret_cast<Pack<TypeB, kVec>*>(stage_a + (kFixed ? 0 : kSlots));
    auto* const stage_d = stage_b + kSlots;
    auto slot = [&](int i) { return i * (kWarps * 32) + tid; };
    Pack<TypeA, kVec> ra[kStaged ? 1 : kSteps];
    Pack<TypeB, kVec> rb[kStaged ? 1 : kSteps];
    Pack<TypeB, kVec> rd[kStaged ? 1 : kSteps];
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
        if (i < g.nvalid) {
            if constexpr (kStaged) {
                if constexpr (!kFixed) async_copy_pack<TypeA, kVec>(stage_a + slot(i), pa + base + i * p.C);
                async_copy_pack<TypeB, kVec>(stage_b + slot(i), pb + base + i * p.C);
                async_copy_pack<TypeB, kVec>(stage_d + slot(i), pd + base + i * p.C);
            } else {
                if constexpr (!kFixed) ra[i] = load_pack<TypeA, kVec>(pa + base + i * p.C);
                rb[i] = load_pack<TypeB, kVec>(pb + base + i * p.C);
                rd[i] = load_pack<TypeB, kVec>(pd + base + i * p.C);
            }
        }
    }
    TicketRequest ticket_request;
    if constexpr (kIndexOrder) ticket_request = request_ticket(p.scratch);
    else clear_stale_half(ticket);
    if constexpr (kStaged) {
        // Each thread reads only its own slots: waiting for its own copies is enough.
        async_copy_commit();
        async_copy_wait_all();
    }
    auto in_a = [&](int i) {
        if constexpr (kFixed) return Pack<TypeA, kVec>{};  // never read: raw_a ignores it
        else if constexpr (kStaged) return stage_a[slot(i)];
        else return ra[i];
    };
    auto in_b = [&](int i) {
        if constexpr (kStaged) return stage_b[slot(i)];
        else return rb[i];
    };
    auto in_d = [&](int i) {
        if constexpr (kStaged) return stage_d[slot(i)];
        else return rd[i];
    };

    // The selective cell computes its coefficients once, in pass 1, and keeps them for both walks of
    // pass 2: its transcendental chains (expf, log1pf, expf and σ), evaluated again in each walk,
    // would make its backward compute-bound (docs/KERNELS.md § Level scan).
    // Unstaged (fp32), a and k go to shared memory. Staged (bf16, kSelStaged), the
    // inputs fill shared memory, so a stays in registers (a_keep: 16 steps of 4 channels, in place of
    // the g_t that the other staged scans keep there), and the reverse walk writes dL/du = g (1 - a)
    // itself and keeps g·k (sel_slope: σ from two MUFU operations) in its spent pre and dh slots, so
    // that the forward walk needs neither g nor pre (recomputing a and k in each walk instead makes
    // the MUFU queue the limit).
    constexpr bool kSel = Mode == LinMode::SelLevel;
    float* const sel_keep = reinterpret_cast<float*>(bwd_smem);
    auto kept_a = [&](int i, int v) -> float& { return sel_keep[(i * kVec + v) * (kWarps * 32) + tid]; };
    auto kept_k = [&](int i, int v) -> float& { return sel_keep[((kSteps + i) * kVec + v) * (kWarps * 32) + tid]; };

    // Pass 1: reverse map (A, R) of this thread's steps, q_first = A·q_after + R with
    // R = Σ_t (Π_{s<=t} a_s) dh_t, and where the gradients need states the forward map (A, F).
    // The selective cell's bf16 backward forms its thread's 8-step A and R in fp32 (two conversions
    // and two fp64 operations an element less; its outputs carry bf16-sized errors): the chunk-level
    // products stay in fp64 ("Products in fp64" above).
    using Acc = std::conditional_t<kSel && sizeof(TypeB) == 2, float, double>;
    Acc A[kVec], R[kVec];
    constexpr bool kSelStaged = kSel && kStaged;
    float a_keep[kSelStaged ? kSteps : 1][kVec];  // the staged selective cell's decays (see above)
    float F[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v) A[v] = 1.0, F[v] = 0.f, R[v] = 0.0;
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
        if (i < g.nvalid) {
            const Pack<TypeA, kVec> xa = in_a(i);
            const Pack<TypeB, kVec> xb = in_b(i), xd = in_d(i);
#pragma unroll
            for (int v = 0; v < kVec; ++v) {
                float a, b;
                if constexpr (kSelStaged) {
                    a = cell_decay<TypeB>(raw_a<Mode, TypeA, kVec>(xa, v), p.c0);
                    b = (1.f - a) * to_f(xb.v[v]);
                    a_keep[i][v] = a;
                } else if constexpr (kSel) {
                    float k;
                    sel_coef<sizeof(TypeB) == 2>(raw_a<Mode, TypeA, kVec>(xa, v), p.c0, a, k);
                    b = (1.f - a) * to_f(xb.v[v]);
                    kept_a(i, v) = a, kept_k(i, v) = k;
                } else {
                    coef<Mode, TypeB>(raw_a<Mode, TypeA, kVec>(xa, v), to_f(xb.v[v]), afix[v], p.c0, p.c1, a, b);
                }
                if constexpr (kStates) F[v] = fmaf(a, F[v], b);
                A[v] *= a;
                R[v] = fma(A[v], Acc(to_f(xd.v[v])), R[v]);
            }
        }
    }
#pragma unroll
    for (int v = 0; v < kVec; ++v) {
        sA[w][lane * kVec + v] = A[v];
        if constexpr (kStates) sF[w][lane * kVec + v] = F[v];
        sR[w][lane * kVec + v] = static_cast<float>(R[v]);
    }
    if constexpr (kIndexOrder) post_ticket(p.scratch, ticket_request, s_ticket);
    __syncthreads();
    if constexpr (kIndexOrder) {
        ticket = read_ticket(p.scratch, s_ticket);
        clear_stale_half(ticket);  // by every thread, while threads tid < W compose the chunk
    }
    StatusWord* const status = ticket.status;

    const int64_t cidx = g.ct * W + tid;
    const bool cok = tid < W && cidx < p.C;
    const int64_t gc = g.bb * p.C + cidx;
    double RA = 1.0, RH = 0.0;
    if (tid < W) {
        float carry_in = 0.f, dh_after = 0.f;
        if constexpr (kEarlyCarry) {
            async_copy_wait_all();
            carry_in = early_carry[tid];
            dh_after = early_carry[W + tid];
        } else {
            if (const float* c = carry_src(cok, gc)) carry_in = *c;
            if (const float* d = dh_after_src(cok, gc)) dh_after = *d;
        }
        if constexpr (kStates) {
            float hc = carry_in;
#pragma unroll
            for (int ww = 0; ww < kWarps; ++ww) {
                const double a = sA[ww][tid];
                const float f = sF[ww][tid];
                sF[ww][tid] = hc;
                hc = static_cast<float>(fma(a, double(hc), double(f)));
            }
        }
        // Reverse: exclusive suffix maps (warps after ww), in place of sA / sR.
#pragma unroll
        for (int ww = kWarps - 1; ww >= 0; --ww) {
            const double a = sA[ww][tid];
            const float r = sR[ww][tid];
            sA[ww][tid] = RA;
            sR[ww][tid] = static_cast<float>(RH);
            RH = fma(a, RH, double(r));
            RA *= a;
        }
        // Same protocol as the forward in reverse chunk order; the last chunk starts the chain.
        StatusWord* const mine = status + g.chunk * g.BC + gc;
        float q = 0.f;
        if (cok) {
            if (g.chunk < nChunks - 1) {
                publish_status(mine, __float_as_uint(static_cast<float>(RA)), static_cast<float>(RH));
                DecayFold fold;
                q = look_back(status + gc, g.BC, g.chunk, +1, nChunks - 1 - g.chunk, p.window, fold);
            } else {
                q = dh_after;
            }
            publish_status(mine, kStatusInclusive, static_cast<float>(fma(RA, double(q), RH)));
        }
#pragma unroll
        for (int ww = 0; ww < kWarps; ++ww)
            sR[ww][tid] = static_cast<float>(fma(sA[ww][tid], double(q), double(sR[ww][tid])));
    }
    __syncthreads();

    // Pass 2 walks the steps twice. Backwards: g_t = dh_t + q_{t+1}, q_t = a_t g_t, writing what
    // needs no state (db of the plain scans, both gradients of the gated_ema cell) and keeping
    // g_t (fp32) in place of dh_t. Forwards: recompute h_{t-1} from the chunk's carry and write
    // what needs it (da; the selective cell's gradients).
    auto hide_inputs = [&] {
        if constexpr (!kStaged && (sizeof(TypeA) == 2 || sizeof(TypeB) == 2)) {
#pragma unroll
            for (int i = 0; i < kSteps; ++i) {
                if constexpr (!kFixed && !kSel) opaque(ra[i]);  // the selective cell's pre is spent
                opaque(rb[i]);
                opaque(rd[i]);
            }
        }
    };
    hide_inputs();
    float q[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v) q[v] = sR[w][lane * kVec + v];
    // The fixed-decay bf16 scan keeps g in shared memory (thread-contiguous, so conflict-free),
    // which leaves the registers to 4 channels of 16 steps: twice the bytes per block for the
    // same look-back (as for the recomputed states).
    constexpr bool kGShared = states_in_shared<Mode, TypeB>() && !kStaged;
    float g_reg[kStates && !kGShared && !kSelStaged ? kSteps : 1][kVec];
    auto gkept = [&](int i, int v) -> float& {
        if constexpr (kGShared) return g_shared[(i * kVec + v) * (kWarps * 32) + tid];
        else return g_reg[kStates && !kSelStaged ? i : 0][v];
    };
    // The staged selective cell's reverse walk writes dL/du and keeps g·k (fp32) for the forward
    // walk in this thread's own spent slots of pre and dh (V/2 floats each).
    auto keep_gk = [&](int i, const float (&gk)[kVec]) {
        float* lo = reinterpret_cast<float*>(stage_a + slot(i));
        float* hi = reinterpret_cast<float*>(stage_d + slot(i));
#pragma unroll
        for (int v = 0; v < kVec / 2; ++v) lo[v] = gk[v], hi[v] = gk[kVec / 2 + v];
    };
    auto kept_gk = [&](int i, int v) -> float {
        return v < kVec / 2 ? reinterpret_cast<const float*>(stage_a + slot(i))[v]
                         : reinterpret_cast<const float*>(stage_d + slot(i))[v - kVec / 2];
    };
    TypeA* out_a = static_cast<TypeA*>(p.da);
    TypeB* out_b = static_cast<TypeB*>(p.db);
#pragma unroll
    for (int i = kSteps - 1; i >= 0; --i) {
        if (i < g.nvalid) {
            const Pack<TypeA, kVec> xa = in_a(i);
            const Pack<TypeB, kVec> xb = in_b(i), xd = in_d(i);
            Pack<TypeA, kVec> oa;
            Pack<TypeB, kVec> ob;
            float gk[kVec];
#pragma unroll
            for (int v = 0; v < kVec; ++v) {
                const float pre = raw_a<Mode, TypeA, kVec>(xa, v), u = to_f(xb.v[v]);
                float a, b;
                if constexpr (kSelStaged) a = a_keep[i][v];
                else if constexpr (kSel) a = kept_a(i, v);
                else coef<Mode, TypeB>(pre, u, afix[v], p.c0, p.c1, a, b);
                const float gt = to_f(xd.v[v]) + q[v];
                q[v] = a * gt;
                if constexpr (Mode == LinMode::Gated) {
                    const float s = gate_sigmoid<TypeB>(pre), k = p.c1 * gt;
                    oa.v[v] = from_f<TypeA>(k * u * s * (1.f - s));
                    ob.v[v] = from_f<TypeB>(k * s);
                } else if constexpr (kSelStaged) {
                    ob.v[v] = from_f<TypeB>(gt * (1.f - a));
                    gk[v] = gt * sel_slope(pre, a, p.c0);
                } else {
                    if constexpr (Mode != LinMode::SelLevel) ob.v[v] = from_f<TypeB>(gt);
                    gkept(i, v) = gt;
                }
            }
            if constexpr (Mode == LinMode::Gated) store_pack<TypeA, kVec>(out_a + base + i * p.C, oa);
            if constexpr (Mode != LinMode::SelLevel || kSelStaged) store_pack<TypeB, kVec>(out_b + base + i * p.C, ob);
            if constexpr (kSelStaged) keep_gk(i, gk);
        }
    }
    if (g.chunk == 0 && w == 0 && g.cvalid && p.dh0) {
#pragma unroll
        for (int v = 0; v < kVec; ++v) p.dh0[g.bb * p.C + g.c0 + v] = q[v];
    }
    if constexpr (kStates) {
        hide_inputs();
        float h[kVec], dafix[kVec];
#pragma unroll
        for (int v = 0; v < kVec; ++v) h[v] = sF[w][lane * kVec + v], dafix[v] = 0.f;
#pragma unroll
        for (int i = 0; i < kSteps; ++i) {
            if (i < g.nvalid) {
                const Pack<TypeA, kVec> xa = in_a(i);
                const Pack<TypeB, kVec> xb = in_b(i);
                Pack<TypeA, kVec> oa;
                Pack<TypeB, kVec> ob;
#pragma unroll
                for (int v = 0; v < kVec; ++v) {
                    const float u = to_f(xb.v[v]);
                    float a, b, k = 0.f;
                    if constexpr (kSelStaged) a = a_keep[i][v], b = (1.f - a) * u, k = 1.f;  // gt is g·k
                    else if constexpr (kSel) a = kept_a(i, v), b = (1.f - a) * u, k = kept_k(i, v);
                    else coef<Mode, TypeB>(raw_a<Mode, TypeA, kVec>(xa, v), u, afix[v], p.c0, p.c1, a, b);
                    const float gt = kSelStaged ? kept_gk(i, v) : gkept(i, v), hprev = h[v];
                    if constexpr (Mode == LinMode::Linear) {
                        oa.v[v] = from_f<TypeA>(gt * hprev);
                    } else if constexpr (Mode == LinMode::LinearFixed) {
                        dafix[v] = fmaf(gt, hprev, dafix[v]);
                    } else {
                        // a = exp(-softplus(pre)/τ), b = (1-a) u:  dL/da = g h_{t-1} - g u,
                        // dL/dpre = -dL/da · k (sel_coef).
                        const float dla = gt * (hprev - u);
                        oa.v[v] = from_f<TypeA>(-dla * k);
                        ob.v[v] = from_f<TypeB>(gt * (1.f - a));
                    }
                    h[v] = fmaf(a, hprev, b);
                }
                if constexpr (!kFixed) store_pack<TypeA, kVec>(out_a + base + i * p.C, oa);
                if constexpr (Mode == LinMode::SelLevel && !kSelStaged) store_pack<TypeB, kVec>(out_b + base + i * p.C, ob);
            }
        }
        if constexpr (kFixed) {
            if (p.fixed_da) {
                // dL/da of the shared decay: each block adds its channels' sums over its steps to fp64
                // accumulators after the scratch's control words (zero at the start of a launch:
                // lin_fixed_da_finish rounds them to fp32 and clears them), not a per-chunk
                // (chunks, B·C) buffer summed by LibTorch afterwards, a separate pass over it;
                // rounding in the block that finishes last would need a fence in every block,
                // which costs more than it saves (docs/KERNELS.md § Linear scan).
                // fp64, so the atomics' order changes nothing that survives the rounding to
                // fp32 but in the rarest ties.
                double* const acc = reinterpret_cast<double*>(p.scratch.control + kScratchControlWords);
                // Each thread overwrites only the slots it read at the start of the forward walk.
#pragma unroll
                for (int v = 0; v < kVec; ++v) sF[w][lane * kVec + v] = dafix[v];
                __syncthreads();
                if (cok) {
                    float s = 0.f;
#pragma unroll
                    for (int ww = 0; ww < kWarps; ++ww) s += sF[ww][tid];
                    atomicAdd(acc + cidx, double(s));
                }
            }
        }
    }
}

// The fixed decay's dL/da rounded to fp32, its accumulators left zero for the next launch on the
// stream (a launch's blocks cannot do it cheaply: the last one to finish would need a fence in every
// block).
__global__ void fixed_da_finish_kernel(double* acc, float* da, int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    da[c] = static_cast<float>(acc[c]);
    acc[c] = 0.0;
}

template <LinMode Mode, typename TypeA, typename TypeB, int kVec>
void launch(const LinParams& p, bool backward, cudaStream_t stream) {
    const int64_t blocks = lin_chunks(p, backward) * lin_num_tiles(p);
    if (blocks == 0) return;
    if (blocks > 0x7fffffff) throw std::invalid_argument("lin scan: too many blocks");
    if (backward) {
        if constexpr (kVec <= 2 || bf16_inputs<Mode, TypeA, TypeB>()) {
            constexpr bool kCanStage = bwd_staged(Mode, sizeof(TypeA), sizeof(TypeB), kVec, true);
            // Above the 48 KB granted without asking, a kernel must opt in (per device).
            auto run = [&](auto kernel, int smem, std::atomic<unsigned>& opted_in) {
                if (smem > 0) allow_dynamic_smem(kernel, smem, opted_in);
                kernel<<<static_cast<unsigned>(blocks), kWarps * 32, smem, stream>>>(p);
            };
            if constexpr (kCanStage) {
                if (p.stage_inputs) {
                    constexpr int S = steps_for(Mode, sizeof(TypeA), sizeof(TypeB), kVec, true, true);
                    static std::atomic<unsigned> opted_in{0};
                    run(lin_bwd_kernel<Mode, TypeA, TypeB, kVec, S, true>, bwd_stage_bytes<Mode, TypeA, TypeB, kVec, S>(), opted_in);
                    HARMONIC_CUDA_CHECK(cudaGetLastError());
                    return;
                }
            }
            constexpr int S = steps_for(Mode, sizeof(TypeA), sizeof(TypeB), kVec, true);
            static std::atomic<unsigned> opted_in{0};
            run(lin_bwd_kernel<Mode, TypeA, TypeB, kVec, S, false>, bwd_kept_smem_bytes<Mode, TypeB, kVec, S, false>(), opted_in);
        }
    } else {
        constexpr int S = steps_for(Mode, sizeof(TypeA), sizeof(TypeB), kVec, false);
        constexpr int smem = fwd_smem_bytes<Mode, TypeB, kVec, S>();
        if constexpr (smem > 0) {
            static std::atomic<unsigned> opted_in{0};
            allow_dynamic_smem(lin_fwd_kernel<Mode, TypeA, TypeB, kVec, S>, smem, opted_in);
        }
        lin_fwd_kernel<Mode, TypeA, TypeB, kVec, S><<<static_cast<unsigned>(blocks), kWarps * 32, smem, stream>>>(p);
    }
    HARMONIC_CUDA_CHECK(cudaGetLastError());
}

// Forward: 4 channels a thread (16-byte fp32 / 8-byte bf16 accesses). Backward: 2 with fp32 inputs,
// since 16 steps of its three inputs fill 96 KB of shared memory at 2 (staged) or the registers
// (unstaged): 4 would halve occupancy or spill; 4 with bf16 inputs (ops.cpp, lin_bwd_vec).
template <LinMode Mode, typename TypeA, typename TypeB>
void launch_vec(const LinParams& p, bool backward, cudaStream_t stream) {
    if (backward) {
        if constexpr (bf16_inputs<Mode, TypeA, TypeB>()) {
            if (p.vec == 4) return launch<Mode, TypeA, TypeB, 4>(p, true, stream);
        }
        if (p.vec == 2) return launch<Mode, TypeA, TypeB, 2>(p, true, stream);
        if (p.vec == 1) return launch<Mode, TypeA, TypeB, 1>(p, true, stream);
    } else {
        if (p.vec == 4) return launch<Mode, TypeA, TypeB, 4>(p, false, stream);
        if (p.vec == 2) return launch<Mode, TypeA, TypeB, 2>(p, false, stream);
        if (p.vec == 1) return launch<Mode, TypeA, TypeB, 1>(p, false, stream);
    }
    throw std::invalid_argument("lin scan: vec must be 1, 2 or 4 (forward), 1 or 2 (backward; 4 with bf16)");
}

void dispatch(const LinParams& p, bool backward, cudaStream_t stream) {
    const bool bfb = p.tb == DType::BF16, bfa = p.ta == DType::BF16;
    switch (p.mode) {
        case LinMode::Linear:
            if (bfa && bfb) return launch_vec<LinMode::Linear, bf16, bf16>(p, backward, stream);
            if (bfa) return launch_vec<LinMode::Linear, bf16, float>(p, backward, stream);
            if (bfb) return launch_vec<LinMode::Linear, float, bf16>(p, backward, stream);
            return launch_vec<LinMode::Linear, float, float>(p, backward, stream);
        case LinMode::LinearFixed:
            if (bfb) return launch_vec<LinMode::LinearFixed, float, bf16>(p, backward, stream);
            return launch_vec<LinMode::LinearFixed, float, float>(p, backward, stream);
        case LinMode::Gated:
            if (bfb) return launch_vec<LinMode::Gated, bf16, bf16>(p, backward, stream);
            return launch_vec<LinMode::Gated, float, float>(p, backward, stream);
        case LinMode::SelLevel:
            if (bfb) return launch_vec<LinMode::SelLevel, bf16, bf16>(p, backward, stream);
            return launch_vec<LinMode::SelLevel, float, float>(p, backward, stream);
    }
    throw std::invalid_argument("lin scan: unknown mode");
}

}  // namespace

int64_t lin_num_chunks(int64_t T) { return (T + kLinSpan - 1) / kLinSpan; }

int lin_steps(const LinParams& p, bool backward) {
    auto bytes = [](DType t) { return t == DType::BF16 ? 2 : 4; };
    return steps_for(p.mode, bytes(p.ta), bytes(p.tb), p.vec, backward,
                     backward && bwd_staged(p.mode, bytes(p.ta), bytes(p.tb), p.vec, p.stage_inputs));
}

int64_t lin_chunks(const LinParams& p, bool backward) {
    const int64_t L = int64_t(lin_steps(p, backward)) * kWarps;
    return (p.T + L - 1) / L;
}

int64_t lin_scratch_words(const LinParams& p, bool backward) { return lin_chunks(p, backward) * p.B * p.C; }

void lin_fixed_da_finish(const LinParams& p, float* da, cudaStream_t stream) {
    if (p.C == 0) return;
    constexpr int threads = 256;
    fixed_da_finish_kernel<<<static_cast<unsigned>((p.C + threads - 1) / threads), threads, 0, stream>>>(
        reinterpret_cast<double*>(p.scratch.control + kScratchControlWords), da, p.C);
    HARMONIC_CUDA_CHECK(cudaGetLastError());
}

int64_t lin_num_tiles(const LinParams& p) {
    const int64_t W = 32 * p.vec;
    return p.B * ((p.C + W - 1) / W);
}

void lin_forward(const LinParams& p, cudaStream_t stream) { dispatch(p, false, stream); }
void lin_backward(const LinParams& p, cudaStream_t stream) { dispatch(p, true, stream); }

}  // namespace harmonic::kernels::cuda
