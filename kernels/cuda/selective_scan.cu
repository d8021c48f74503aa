// CUDA selective scan (Mamba-1), forward and backward, state kept on chip.
//
// Per channel e and state n:  h_t = exp(Δ_t A_n) h_{t-1} + Δ_t B_t,n x_t,
//                             y_t = Σ_n C_t,n h_t,n + D x_t,   out_t = y_t · SiLU(z_t).
// Work split as in linear_scan.cu: a block owns 32 channels (one per lane) and a chunk of
// L = kSelSteps·warps steps (64 by default); each thread scans its steps of one channel (the
// backward 8, the forward 16, with half the backward's warps) with all N states in registers; B_t
// and C_t of the chunk sit in shared memory (read by all 32 channels).
// Pass 1 reduces each thread's steps to the map h ↦ exp(A·ΣΔ) h + H (the decay part of any
// span is fixed by one number per channel, ΣΔ, so a map is N+1 floats); warps are composed in
// shared memory with one thread per (state, channel); chunks are chained by a decoupled look-back
// in which each (state, channel) publishes one 64-bit status word (Σ Δ with H_n, then its state at
// the chunk end; common.cuh); pass 2 rescans with the exact carry-in, forms y, D skip and the
// SiLU(z) gate, and writes out. Nothing of size B·T·E·N touches global memory: the only state
// traffic is N status words and N checkpoint floats per channel per chunk (the chunk-end states
// are the backward's checkpoints).
//
// The price of one pass over memory is two exponentials per (t, e, n): pass 1 cannot keep
// exp(Δ A) for its steps × 16 states in registers, so pass 2 recomputes them (docs/KERNELS.md).
// Each exponential is cell_exp below: ex2.approx of Δ·(A·log2 e) + 1, halved (or not halved:
// cell_exp_doubled).
//
// Backward (recomputation, no stored states): per chunk, the forward states are rebuilt from the
// checkpoint at the previous chunk end; the reverse scan over q_t = dA_t (dh_t + q_{t+1}) with
// dh_t,n = dy_t C_t,n is chained over chunks in reverse by the same look-back. Then per state n:
//   g_t = dy_t C_t,n + q_{t+1};  dB_t,n += g Δ x;  dC_t,n += dy h_t;  dx += g Δ B;
//   dΔ += g (B x + h_{t-1} dA A_n);  dA_n += g h_{t-1} dA Δ;  dh0 = q_0
// (dx and dΔ's B x part from one per-step sum gB = Σ_n g B_n).
// dB, dC (summed over channels) are reduced across the warp through shared memory (kRedRow)
// and added with one atomic per (t, n, tile); dA, dD are written per chunk and summed by the host.
#include <stdexcept>

#include "kernels/cuda/common.cuh"

namespace harmonic::kernels::cuda {

namespace {

constexpr int S = kSelSteps;
constexpr int NM = kSelMaxN;

// exp(Δ·A) per (t, e, n) cell as 2^(Δ·A' + 1) / 2 with A' = A·log2 e: one FFMA, one MUFU and one
// FMUL instead of libm's expf (~8 instructions). ex2.approx's error is about 2^-23 absolute, one ulp
// of a result in [1, 2): the shift puts the result there (as libm does), and the one extra rounding
// (A') is the size of the reference's own rounding of Δ·A (docs/KERNELS.md § Selective scan).
__device__ __forceinline__ float cell_exp(float d, float a2) { return 0.5f * ex2_approx(fmaf(d, a2, 1.f)); }
// 2·exp(Δ·A), cell_exp without its halving. A scan that takes the decay of step i doubled carries
// its state doubled once more per step, h̃_i = 2^(i+1) h_i (the input term scaled by 2^(i+1)
// instead), which is exact: powers of two commute with every rounding, so the results are bitwise
// those of the halved form, one FMUL a cell fewer. The scale stays below 2^17 over a thread's run.
__device__ __forceinline__ float cell_exp_doubled(float d, float a2) { return ex2_approx(fmaf(d, a2, 1.f)); }

// kWarps warps along time per block (the backward: kSelWarps = 8 by default, 16 also built; the
// forward half of that). The composition step gives each thread NM / kWarps (state, channel) pairs,
// one warp-wide group of 32 channels each.
template <int kWarps, int kSteps>
struct FwdSmem {
    static constexpr int L = kSteps * kWarps;
    float Bs[L][NM];
    float Cs[L][NM];
    float sx[kSteps][kWarps * 32];   // this thread's x, Δ, z (the step loops are not unrolled: the steps ×
    float sd[kSteps][kWarps * 32];   // 16 states fully unrolled needed more than the 128 registers a thread
    float sz[kSteps][kWarps * 32];   // may have, and spilled)
    float sS[kWarps][32];        // Σ Δ per warp
    float sP[kWarps][32];        // exclusive prefix of Σ Δ over warps
    float sH[kWarps][NM][32];    // per-warp state maps, then per-warp carry-in states
    int ticket[3];
};

// dB and dC of one state are summed over the warp's 32 channels through shared memory: each lane
// writes its 16 values (8 steps of dB, 8 of dC) as a row of kRedRow floats (16-byte stores; rows
// 16..31 start 16 floats further, so that the column reads of the two half-warps fall in disjoint
// banks), then lane l sums column l mod 16 over its half-warp's 16 rows and one shuffle joins the
// halves: 4 stores, 16 loads, 17 adds and a shuffle a state, against 16 shuffles, 30 selects and
// 16 adds for a register reduce-scatter.
constexpr int kRedRow = 20;
static_assert(2 * S == 16, "a lane's reduction row holds dB and dC of its steps: 16 values");

template <int kWarps>
struct BwdSmem {
    static constexpr int L = S * kWarps;
    float Bs[L][NM];
    float Cs[L][NM];
    float sS[kWarps][32];
    float sRS[kWarps][32];       // exclusive suffix of Σ Δ over warps
    float sF[kWarps][NM][32];    // forward maps -> forward carry-ins -> dA partials
    float sR[kWarps][NM][32];    // reverse maps -> reverse carry-ins
    float sx[S][kWarps * 32];    // x and the gate's factor dL/dz ÷ y, needed only after the state loop:
    float sfz[S][kWarps * 32];   // here rather than in registers, which pass 1 and the loop fill
    // The state loop's operands: B and C by state (one thread's steps contiguous: two 16-byte
    // loads each instead of eight), A of the tile, and each warp's reduction rows (below).
    float BT[NM][L + 4];     // + 4: the transposing stores of one row conflict 2-way, not 16-way
    float CT[NM][L + 4];
    float sA[NM][32];
    float red[kWarps][kRedRow * 32 + 16];
    int ticket[3];
};

struct SelGeometry {
    int64_t nTiles, chunk, tile, bb, ct, e, t0, BE, NBE;
    int nvalid;
    bool evalid;
};

template <int L, int kSteps = S>
__device__ __forceinline__ SelGeometry sel_geometry(const SelParams& p, int64_t id, bool reverse) {
    // Block indices fit 32 bits (a grid has fewer than 2^31 blocks): 32-bit divisions, not libgcc's
    // 64-bit ones.
    SelGeometry g;
    const int nTilesE = static_cast<int>((p.E + 31) / 32), nTiles = static_cast<int>(p.B) * nTilesE;
    const int nChunks = static_cast<int>((p.T + L - 1) / L), idi = static_cast<int>(id);
    g.nTiles = nTiles;
    g.chunk = idi / nTiles;
    if (reverse) g.chunk = nChunks - 1 - g.chunk;
    const int tile = idi % nTiles;
    g.tile = tile;
    g.bb = tile / nTilesE;
    g.ct = tile % nTilesE;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    g.e = g.ct * 32 + lane;
    g.evalid = g.e < p.E;
    g.t0 = g.chunk * L + w * kSteps;
    g.nvalid = g.evalid ? steps_left(p.T - g.t0, kSteps) : 0;
    g.BE = p.B * p.E;
    g.NBE = p.B * p.N * p.E;
    return g;
}

// B and C of the chunk into shared memory, zero past T and for n >= N (padded states stay 0);
// with kByState also by state (the backward's BT, CT). The trip count is a constant (kThreads =
// the block's threads), so every load is issued before the first store waits: one memory round
// trip, not one per iteration.
template <int kThreads, bool kByState = false, class Smem>
__device__ __forceinline__ void load_bc(const SelParams& p, const SelGeometry& g, Smem& sm) {
    constexpr int L = Smem::L;
    static_assert(L * NM % kThreads == 0, "load_bc: whole rounds of the block");
    float bv[L * NM / kThreads], cv[L * NM / kThreads];
#pragma unroll
    for (int r = 0; r < L * NM / kThreads; ++r) {
        const int idx = r * kThreads + threadIdx.x, tl = idx / NM, n = idx % NM;
        const int64_t t = g.chunk * L + tl;
        const bool ok = t < p.T && n < p.N;
        const int64_t o = (g.bb * p.T + t) * p.N + n;
        bv[r] = ok ? p.Bm[o] : 0.f;
        cv[r] = ok ? p.Cm[o] : 0.f;
    }
#pragma unroll
    for (int r = 0; r < L * NM / kThreads; ++r) {
        const int idx = r * kThreads + threadIdx.x, tl = idx / NM, n = idx % NM;
        sm.Bs[tl][n] = bv[r];
        sm.Cs[tl][n] = cv[r];
        if constexpr (kByState) sm.BT[n][tl] = bv[r], sm.CT[n][tl] = cv[r];
    }
}

__device__ __forceinline__ float silu_(float z) { return z * sigmoidf_(z); }

// Status words a pair reads per round of look_back_columns: kLookbackBatch shared by a thread's kPairs
// pairs, all in flight at once.
constexpr int sel_lookback_batch(int nq) { return nq >= kLookbackBatch ? 1 : kLookbackBatch / nq; }

// Folds published chunk maps (Σ Δ, H) of one (state, channel), nearest first (look_back in
// common.cuh): a span's decay is exp(A·Σ Δ), so the accumulated Σ Δ of the chunks folded so far
// scales each further H.
struct SelFold {
    float A2;  // A·log2 e (cell_exp)
    float accS = 0.f, accH = 0.f;
    __device__ void aggregate(float S, float H) {
        accH = fmaf(cell_exp(accS, A2), H, accH);
        accS += S;
    }
    __device__ float inclusive(float h) const { return fmaf(cell_exp(accS, A2), h, accH); }
};

// kWarps warps × kSteps steps a thread. A chunk runs with half the backward's warps at twice its steps
// (the default 64 steps as 4 warps × 16, four blocks an SM; 128 as 8 × 16, two): a block's fixed
// part (ticket, loads, composition, look-back) is long against its two passes, so each block gets
// more steps for it, and other blocks resident on the SM run their passes meanwhile
// (docs/KERNELS.md § Selective scan).
template <typename TypeX, typename TypeDelta, int kWarps, int kSteps>
__global__ void __launch_bounds__(kWarps * 32, 16 / kWarps) sel_fwd_kernel(SelParams p) {
    constexpr int L = kSteps * kWarps;
    constexpr int kPairs = NM / kWarps;  // (state, channel) pairs per thread in the composition
    extern __shared__ __align__(16) unsigned char smem_raw[];
    FwdSmem<kWarps, kSteps>& sm = *reinterpret_cast<FwdSmem<kWarps, kSteps>*>(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const ScanTicket ticket = take_ticket(p.scratch, sm.ticket);
    const int64_t id = ticket.id;
    const SelGeometry g = sel_geometry<L, kSteps>(p, id, false);
    StatusWord* const status = ticket.status;
    load_bc<kWarps * 32>(p, g, sm);

    const TypeX* px = static_cast<const TypeX*>(p.x);
    const TypeDelta* pd = static_cast<const TypeDelta*>(p.dt);
    const TypeX* pz = static_cast<const TypeX*>(p.z);
    const int64_t base = (g.bb * p.T + g.t0) * p.E + g.e;
    {
        // Raw values first, converted once every load is issued (as in the backward).
        TypeX xr[kSteps], zr[kSteps];
        TypeDelta dr[kSteps];
#pragma unroll
        for (int i = 0; i < kSteps; ++i) {
            const bool ok = i < g.nvalid;
            xr[i] = ok ? px[base + i * p.E] : TypeX(0.f);
            dr[i] = ok ? pd[base + i * p.E] : TypeDelta(0.f);
            zr[i] = (ok && pz) ? pz[base + i * p.E] : TypeX(0.f);
        }
        clear_stale_half(ticket);
#pragma unroll
        for (int i = 0; i < kSteps; ++i) sm.sx[i][tid] = to_f(xr[i]), sm.sd[i][tid] = to_f(dr[i]), sm.sz[i][tid] = to_f(zr[i]);
    }
    float A2[NM];
#pragma unroll
    for (int n = 0; n < NM; ++n) A2[n] = (g.evalid && n < p.N) ? p.A[g.e * p.N + n] * kLog2e : 0.f;
    const float Dv = (g.evalid && p.D) ? p.D[g.e] : 0.f;
    __syncthreads();

    // Pass 1: this thread's map (Σ Δ, H).
    float h[NM];
#pragma unroll
    for (int n = 0; n < NM; ++n) h[n] = 0.f;
    float s = 0.f, scale = 1.f;  // h holds 2^(i+1) h_i (cell_exp_doubled)
#pragma unroll 1
    for (int i = 0; i < kSteps; ++i) {
        const float d = sm.sd[i][tid];
        scale *= 2.f;
        const float u = d * sm.sx[i][tid] * scale;
        s += d;
        const float* Bt = sm.Bs[w * kSteps + i];
#pragma unroll
        for (int n = 0; n < NM; ++n) h[n] = fmaf(cell_exp_doubled(d, A2[n]), h[n], u * Bt[n]);
    }
    sm.sS[w][lane] = s;
#pragma unroll
    for (int n = 0; n < NM; ++n) sm.sH[w][n][lane] = h[n] * (1.f / float(1 << kSteps));
    __syncthreads();

    // Composition: pair k of this thread is state pn = w + k·kWarps of channel `lane`.
    const int64_t pe = g.ct * 32 + lane;
    float PS[kPairs], PH[kPairs], pA[kPairs];
    bool pok[kPairs];
    int64_t sidx[kPairs];
#pragma unroll
    for (int k = 0; k < kPairs; ++k) {
        const int pn = w + k * kWarps;
        pok[k] = pe < p.E && pn < p.N;
        pA[k] = pok[k] ? p.A[pe * p.N + pn] : 0.f;
        sidx[k] = (g.bb * p.N + pn) * p.E + pe;
        float ps = 0.f, ph = 0.f;
#pragma unroll
        for (int ww = 0; ww < kWarps; ++ww) {
            const float sw = sm.sS[ww][lane], hw = sm.sH[ww][pn][lane];
            sm.sH[ww][pn][lane] = ph;
            if (pn == 0) sm.sP[ww][lane] = ps;
            ph = fmaf(cell_exp(sw, pA[k] * kLog2e), ph, hw);
            ps += sw;
        }
        PS[k] = ps;
        PH[k] = ph;
        // This chunk's map of the pair (chunk 0 publishes only its inclusive state).
        if (g.chunk > 0 && pok[k]) publish_status(status + g.chunk * g.NBE + sidx[k], __float_as_uint(ps), ph);
    }
    __syncthreads();  // sP

#pragma unroll
    for (int k = 0; k < kPairs; ++k) {
        const int pn = w + k * kWarps;
        float carry = 0.f;
        if (pok[k]) {
            if (g.chunk > 0) {
                SelFold fold{pA[k] * kLog2e};
                carry = look_back(status + sidx[k], g.NBE, g.chunk, -1, g.chunk, p.window, fold);
            } else if (p.h0) {
                carry = p.h0[sidx[k]];
            }
            const float incl = fmaf(cell_exp(PS[k], pA[k] * kLog2e), carry, PH[k]);
            publish_status(status + g.chunk * g.NBE + sidx[k], kStatusInclusive, incl);
            p.incl[g.chunk * g.NBE + sidx[k]] = incl;
        }
#pragma unroll
        for (int ww = 0; ww < kWarps; ++ww)
            sm.sH[ww][pn][lane] = fmaf(cell_exp(sm.sP[ww][lane], pA[k] * kLog2e), carry, sm.sH[ww][pn][lane]);
    }
    __syncthreads();

    // Pass 2: exact states, output with D skip and SiLU(z) gate.
#pragma unroll
    for (int n = 0; n < NM; ++n) h[n] = sm.sH[w][n][lane];
    TypeX* py = static_cast<TypeX*>(p.y);
    float unscale = 1.f;  // h holds 2^(i+1) h_i, as in pass 1
    scale = 1.f;
#pragma unroll 1
    for (int i = 0; i < kSteps; ++i) {
        const float x = sm.sx[i][tid], d = sm.sd[i][tid];
        scale *= 2.f, unscale *= 0.5f;
        const float u = d * x * scale;
        const float* Bt = sm.Bs[w * kSteps + i];
        const float* Ct = sm.Cs[w * kSteps + i];
        float y = 0.f;
#pragma unroll
        for (int n = 0; n < NM; ++n) {
            h[n] = fmaf(cell_exp_doubled(d, A2[n]), h[n], u * Bt[n]);
            y = fmaf(Ct[n], h[n], y);
        }
        y = fmaf(Dv, x, y * unscale);
        if (pz) y *= silu_(sm.sz[i][tid]);
        if (i < g.nvalid) py[base + i * p.E] = from_f<TypeX>(y);
    }
}

template <typename TypeX, typename TypeDelta, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, 16 / kWarps) sel_bwd_kernel(SelParams p) {
    constexpr int L = S * kWarps;
    constexpr int kPairs = NM / kWarps;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    BwdSmem<kWarps>& sm = *reinterpret_cast<BwdSmem<kWarps>*>(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    // The chunk by index, the ticket after the loads (common.cuh, request_ticket: its round trip
    // overlaps the loads; the forward gains nothing that way and takes the ticket first).
    const SelGeometry g = sel_geometry<L>(p, blockIdx.x, true);
    const int64_t nChunks = (p.T + L - 1) / L;
    load_bc<kWarps * 32, true>(p, g, sm);

    const TypeX* px = static_cast<const TypeX*>(p.x);
    const TypeDelta* pd = static_cast<const TypeDelta*>(p.dt);
    const TypeX* pz = static_cast<const TypeX*>(p.z);
    const TypeX* pg = static_cast<const TypeX*>(p.dy);
    const int64_t base = (g.bb * p.T + g.t0) * p.E + g.e;
    // Per step in registers: Δ, ũ = 2^(i+1) Δ x and 2^(S-1-i) dL/dy before the gate (the state
    // loop's doubled decays, below); x and the gate's own factor dL/dz ÷ y wait in shared memory; z
    // and dL/dout are not kept.
    // All loads first: the gate's σ below has a branch (the division's slow path) that no load
    // after it would be hoisted across, which cost one memory round trip per step.
    // The raw values are kept until every load is issued (converted at once, bf16 loads were
    // issued three at a time, each group's conversion waiting on it).
    float dv[S], us[S], dys[S];
    TypeX xr[S], zr[S], gr[S];
    TypeDelta dr[S];
#pragma unroll
    for (int i = 0; i < S; ++i) {
        const bool ok = i < g.nvalid;
        xr[i] = ok ? px[base + i * p.E] : TypeX(0.f);
        dr[i] = ok ? pd[base + i * p.E] : TypeDelta(0.f);
        zr[i] = (ok && pz) ? pz[base + i * p.E] : TypeX(0.f);
        gr[i] = ok ? pg[base + i * p.E] : TypeX(0.f);
    }
    const TicketRequest ticket_request = request_ticket(p.scratch);
#pragma unroll
    for (int i = 0; i < S; ++i) {
        dv[i] = to_f(dr[i]);
        const float xi = to_f(xr[i]), zi = to_f(zr[i]), gi = to_f(gr[i]);
        us[i] = dv[i] * xi * float(2 << i);
        sm.sx[i][tid] = xi;
        float dy = gi;
        if (pz) {
            const float sg = sigmoidf_(zi);
            dy = gi * zi * sg;                                     // dL/dy = dL/dout · SiLU(z)
            sm.sfz[i][tid] = gi * sg * fmaf(zi, 1.f - sg, 1.f);    // dL/dz = y · dL/dout · SiLU'(z)
        }
        dys[i] = dy * float(1 << (S - 1 - i));
    }
    const float Dv = (g.evalid && p.D) ? p.D[g.e] : 0.f;
    for (int idx = tid; idx < NM * 32; idx += kWarps * 32) {
        const int n = idx / 32, l = idx % 32, e = g.ct * 32 + l;
        sm.sA[n][l] = (e < p.E && n < p.N) ? p.A[e * p.N + n] : 0.f;
    }
    post_ticket(p.scratch, ticket_request, sm.ticket);
    __syncthreads();
    const ScanTicket ticket = read_ticket(p.scratch, sm.ticket);
    StatusWord* const status = ticket.status;
    clear_stale_half(ticket);

    // Pass 1: forward map (Σ Δ, F) and reverse map (Σ Δ, R) of this thread's steps, all states.
    {
        float A2[NM], F[NM], P[NM], R[NM];
#pragma unroll
        for (int n = 0; n < NM; ++n) {
            A2[n] = (g.evalid && n < p.N) ? p.A[g.e * p.N + n] * kLog2e : 0.f;
            F[n] = 0.f, P[n] = 1.f, R[n] = 0.f;
        }
        float s = 0.f;
#pragma unroll
        // Doubled decays (cell_exp_doubled): F and P hold 2^(i+1) times their values after step i,
        // so u enters scaled by 2^(i+1) and dL/dy by 2^-(i+1).
        for (int i = 0; i < S; ++i) {
            const float d = dv[i], u = us[i], w_dy = dys[i] * (1.f / float(1 << S));
            s += d;
            const float* Bt = sm.Bs[w * S + i];
            const float* Ct = sm.Cs[w * S + i];
#pragma unroll
            for (int n = 0; n < NM; ++n) {
                const float dA2 = cell_exp_doubled(d, A2[n]);
                F[n] = fmaf(dA2, F[n], u * Bt[n]);
                P[n] *= dA2;
                R[n] = fmaf(P[n], w_dy * Ct[n], R[n]);
            }
        }
        sm.sS[w][lane] = s;
#pragma unroll
        for (int n = 0; n < NM; ++n) sm.sF[w][n][lane] = F[n] * (1.f / float(1 << S)), sm.sR[w][n][lane] = R[n];
    }
    __syncthreads();

    const int64_t pe = g.ct * 32 + lane;
    float RS[kPairs], RH[kPairs], pA[kPairs];
    bool pok[kPairs];
    int64_t sidx[kPairs];
#pragma unroll
    for (int k = 0; k < kPairs; ++k) {
        const int pn = w + k * kWarps;
        pok[k] = pe < p.E && pn < p.N;
        pA[k] = pok[k] ? p.A[pe * p.N + pn] : 0.f;
        sidx[k] = (g.bb * p.N + pn) * p.E + pe;
        // Forward carries from the checkpoint at the previous chunk end (no look-back needed).
        float hc = 0.f;
        if (g.chunk == 0) {
            if (pok[k] && p.h0) hc = p.h0[sidx[k]];
        } else if (pok[k]) {
            hc = p.ckpt[(g.chunk - 1) * g.NBE + sidx[k]];
        }
#pragma unroll
        for (int ww = 0; ww < kWarps; ++ww) {
            const float sw = sm.sS[ww][lane], f = sm.sF[ww][pn][lane];
            sm.sF[ww][pn][lane] = hc;
            hc = fmaf(cell_exp(sw, pA[k] * kLog2e), hc, f);
        }
        float rs = 0.f, rh = 0.f;
#pragma unroll
        for (int ww = kWarps - 1; ww >= 0; --ww) {
            const float sw = sm.sS[ww][lane], r = sm.sR[ww][pn][lane];
            sm.sR[ww][pn][lane] = rh;
            if (pn == 0) sm.sRS[ww][lane] = rs;
            rh = fmaf(cell_exp(sw, pA[k] * kLog2e), rh, r);
            rs += sw;
        }
        RS[k] = rs;
        RH[k] = rh;
        // Same protocol in reverse chunk order; the last chunk starts the chain.
        if (g.chunk < nChunks - 1 && pok[k]) publish_status(status + g.chunk * g.NBE + sidx[k], __float_as_uint(rs), rh);
    }
    __syncthreads();  // sRS

    // The reverse carries of this thread's pairs, their look-backs walked together: one round trip a
    // round for all of them. The 4-warp forward's four pairs walked together (two words each a
    // round) are slower, so the forward walks them one by one.
    float qb[kPairs];
    {
        SelFold fold[kPairs];
        const StatusWord* cols[kPairs];
        bool open[kPairs];
        const bool last = g.chunk == nChunks - 1;
#pragma unroll
        for (int k = 0; k < kPairs; ++k) {
            fold[k] = SelFold{pA[k] * kLog2e};
            cols[k] = status + sidx[k];
            open[k] = pok[k] && !last;
            qb[k] = (pok[k] && last && p.dh_last) ? p.dh_last[sidx[k]] : 0.f;
        }
        if (!last) look_back_columns<kPairs, sel_lookback_batch(kPairs)>(cols, open, g.NBE, g.chunk, +1, nChunks - 1 - g.chunk, fold, qb);
    }
#pragma unroll
    for (int k = 0; k < kPairs; ++k) {
        const int pn = w + k * kWarps;
        if (pok[k])
            publish_status(status + g.chunk * g.NBE + sidx[k], kStatusInclusive, fmaf(cell_exp(RS[k], pA[k] * kLog2e), qb[k], RH[k]));
#pragma unroll
        for (int ww = 0; ww < kWarps; ++ww)
            sm.sR[ww][pn][lane] = fmaf(cell_exp(sm.sRS[ww][lane], pA[k] * kLog2e), qb[k], sm.sR[ww][pn][lane]);
    }
    __syncthreads();

    // Pass 2, one state at a time: forward rebuild of the states, then the reverse walk. Per step,
    // gB = Σ_n g B_n gives both dL/dx = Δ gB and dL/dΔ's B x part = x gB, so the walk forms neither
    // product per state; g·dA·h_{t-1} is the new q times h_{t-1}. Decays doubled, as in pass 1:
    // the walk carries h̃_i = 2^(i+1) h_i (input ũ), ĝ_i = 2^(S-1-i) g_i (input 2^(S-1-i) dL/dy) and
    // q̂ likewise, so that q̂_{i-1} = 2·dA_i · ĝ_i; every product a cell needs is then 2^S times its
    // true value or carries a per-step power of two that is removed once per state or step below.
    // Powers of two commute with rounding: the results are bitwise those of the halved decays.
    float ys[S], gBs[S], dda[S];  // 2^(i+1) y_i, 2^(S-1-i) gB_i, 2^S dL/dΔ's A part
#pragma unroll
    for (int i = 0; i < S; ++i) ys[i] = 0.f, gBs[i] = 0.f, dda[i] = 0.f;
    constexpr float kUnscale = 1.f / float(1 << S);
    // Lanes 0..15 add column `lane` of the reduction: step lane % S of dB (lane < S) or dC.
    float* const red_row = &sm.red[w][lane * kRedRow + (lane >= 16 ? 16 : 0)];
    const float* const red_col = &sm.red[w][(lane & 15) + (lane >= 16 ? 16 * kRedRow + 16 : 0)];
    float* red_out = nullptr;
    if (lane < 16 && g.t0 + lane % S < p.T)
        red_out = (lane < S ? p.dB : p.dC) + (g.bb * p.T + g.t0 + lane % S) * p.N;
#pragma unroll 1
    for (int n = 0; n < p.N; ++n) {
        const float An = sm.sA[n][lane], An2 = An * kLog2e;
        float q = sm.sR[w][n][lane];
        float dA2[S], hs[S + 1];  // hs[i]: 2^i h_{t0+i-1}, the (scaled) state before step i
        hs[0] = sm.sF[w][n][lane];
        float Bn[S], Cn[S];
#pragma unroll
        for (int i = 0; i < S; ++i) Bn[i] = sm.BT[n][w * S + i], Cn[i] = sm.CT[n][w * S + i];
#pragma unroll
        for (int i = 0; i < S; ++i) {
            dA2[i] = cell_exp_doubled(dv[i], An2);
            hs[i + 1] = fmaf(dA2[i], hs[i], us[i] * Bn[i]);
            ys[i] = fmaf(Cn[i], hs[i + 1], ys[i]);
        }
        float vals[2 * S];  // 2^S dB and dC of this thread's steps
        float dAacc = 0.f;
#pragma unroll
        for (int i = S - 1; i >= 0; --i) {
            const float gt = fmaf(dys[i], Cn[i], q);
            vals[i] = gt * us[i];
            vals[S + i] = dys[i] * hs[i + 1];
            gBs[i] = fmaf(gt, Bn[i], gBs[i]);
            q = dA2[i] * gt;
            const float gdA = q * hs[i];
            dda[i] = fmaf(gdA, An, dda[i]);
            dAacc = fmaf(gdA, dv[i], dAacc);
        }
        if (g.chunk == 0 && w == 0 && g.evalid && p.dh0) p.dh0[(g.bb * p.N + n) * p.E + g.e] = q * kUnscale;
        __syncwarp();
#pragma unroll
        for (int v = 0; v < 2 * S; v += 4)
            *reinterpret_cast<float4*>(red_row + v) = make_float4(vals[v], vals[v + 1], vals[v + 2], vals[v + 3]);
        __syncwarp();
        float sum = 0.f;
#pragma unroll
        for (int r = 0; r < 16; ++r) sum += red_col[r * kRedRow];
        sum += __shfl_xor_sync(0xffffffffu, sum, 16);
        if (red_out) atomicAdd(red_out + n, sum * kUnscale);
        sm.sF[w][n][lane] = dAacc * kUnscale;  // this thread's own slot, read above
    }
#pragma unroll
    for (int i = 0; i < S; ++i) dda[i] *= kUnscale;

    TypeX* odx = static_cast<TypeX*>(p.dx);
    TypeDelta* odt = static_cast<TypeDelta*>(p.ddt);
    TypeX* odz = static_cast<TypeX*>(p.dz);
    float dDacc = 0.f;
#pragma unroll
    for (int i = 0; i < S; ++i) {
        if (i < g.nvalid) {
            const float x = sm.sx[i][tid], dy = dys[i] * (1.f / float(1 << (S - 1 - i)));
            const float gB = gBs[i] * (1.f / float(1 << (S - 1 - i))), y = ys[i] * (1.f / float(2 << i));
            if (pz) odz[base + i * p.E] = from_f<TypeX>(sm.sfz[i][tid] * fmaf(Dv, x, y));
            odx[base + i * p.E] = from_f<TypeX>(fmaf(dy, Dv, dv[i] * gB));
            odt[base + i * p.E] = from_f<TypeDelta>(fmaf(x, gB, dda[i]));
            dDacc = fmaf(dy, x, dDacc);
        }
    }
    sm.sS[w][lane] = dDacc;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kPairs; ++k) {
        const int pn = w + k * kWarps;
        if (pok[k]) {
            float acc = 0.f;
#pragma unroll
            for (int ww = 0; ww < kWarps; ++ww) acc += sm.sF[ww][pn][lane];
            p.dA_part[g.chunk * g.NBE + sidx[k]] = acc;
        }
        if (pn == 0 && pe < p.E) {
            float acc = 0.f;
#pragma unroll
            for (int ww = 0; ww < kWarps; ++ww) acc += sm.sS[ww][lane];
            p.dD_part[g.chunk * g.BE + g.bb * p.E + pe] = acc;
        }
    }
}

template <typename Kernel>
void launch_sel(Kernel kernel, int warps, size_t smem, const SelParams& p, cudaStream_t stream) {
    const int64_t blocks = sel_num_chunks(p.T, p.warps) * sel_num_tiles(p);  // chunks of kSelSteps·p.warps
    if (blocks == 0) return;
    HARMONIC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    kernel<<<static_cast<unsigned>(blocks), warps * 32, smem, stream>>>(p);
    HARMONIC_CUDA_CHECK(cudaGetLastError());
}

// kWarps: the backward's warps (chunk = kSelSteps·kWarps steps); the forward covers the same chunk with
// half as many warps of twice the steps (16 warps: 8 × 16 steps, two blocks an SM; 8 warps: 4 × 16,
// four blocks an SM).
template <int kWarps>
void sel_dispatch(const SelParams& p, bool backward, cudaStream_t stream) {
    constexpr int kFwdWarps = kWarps / 2, kFwdSteps = 2 * S;
    const size_t fs = sizeof(FwdSmem<kFwdWarps, kFwdSteps>), bs = sizeof(BwdSmem<kWarps>);
    if (p.tx == DType::BF16 && p.td == DType::BF16)
        return backward ? launch_sel(sel_bwd_kernel<bf16, bf16, kWarps>, kWarps, bs, p, stream)
                        : launch_sel(sel_fwd_kernel<bf16, bf16, kFwdWarps, kFwdSteps>, kFwdWarps, fs, p, stream);
    if (p.tx == DType::BF16)
        return backward ? launch_sel(sel_bwd_kernel<bf16, float, kWarps>, kWarps, bs, p, stream)
                        : launch_sel(sel_fwd_kernel<bf16, float, kFwdWarps, kFwdSteps>, kFwdWarps, fs, p, stream);
    if (p.td == DType::F32)
        return backward ? launch_sel(sel_bwd_kernel<float, float, kWarps>, kWarps, bs, p, stream)
                        : launch_sel(sel_fwd_kernel<float, float, kFwdWarps, kFwdSteps>, kFwdWarps, fs, p, stream);
    throw std::invalid_argument("selective scan kernel: unsupported dtypes");
}

void dispatch(const SelParams& p, bool backward, cudaStream_t stream) {
    if (p.N > NM) throw std::invalid_argument("selective scan kernel: d_state > 16");
    if (p.warps == 8) return sel_dispatch<8>(p, backward, stream);
    if (p.warps == 16) return sel_dispatch<16>(p, backward, stream);
    throw std::invalid_argument("selective scan kernel: warps must be 8 or 16");
}

}  // namespace

int64_t sel_num_chunks(int64_t T, int warps) {
    const int64_t L = int64_t(S) * warps;
    return (T + L - 1) / L;
}
int64_t sel_num_tiles(const SelParams& p) { return p.B * ((p.E + 31) / 32); }
int64_t sel_scratch_words(const SelParams& p) { return sel_num_chunks(p.T, p.warps) * p.B * p.N * p.E; }

void sel_forward(const SelParams& p, cudaStream_t stream) { dispatch(p, false, stream); }
void sel_backward(const SelParams& p, cudaStream_t stream) { dispatch(p, true, stream); }

}  // namespace harmonic::kernels::cuda
