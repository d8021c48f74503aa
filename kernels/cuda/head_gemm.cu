// The output head's log-sum-exp without logits: lse[r] = log Σ_{j<V} exp(features[r] · weight[j]),
// the GEMM and the online softmax in one kernel, so the (rows, V) logits never reach memory. At the
// paper's configuration (2 × 32K tokens, d = 256, V = 50,257) writing bf16 logits is 6.6 GB, as long
// as the GEMM itself at the copy ceiling, and the head GEMM that wrote them was most of the model's
// forward (docs/KERNELS.md § Output head).
//
// Shape of the kernel (Hopper: wgmma and the tensor-memory-access engine, sm_90a):
// - A block owns 256 rows of features, all of K (≤ 256) resident in shared memory (128 KB), and
//   streams the whole weight through it in tiles of 128 classes (the weight, 26 MB in bf16, stays
//   in L2 for all blocks). The resident side sets the L2 traffic: 256 rows give 256 FLOP per byte
//   streamed, half of what a 128-row block would need at the same rate.
// - Warpgroup 0 is the producer: one thread issues the bulk tensor copies (128-byte swizzle, the
//   layout wgmma reads) into a ring of 16 KB stages (128 classes × 64 of K) guarded by mbarriers.
// - Warpgroups 1 and 2 each own 128 of the rows (two m64n128k16 wgmmas per 16 of K, 128 fp32
//   accumulators a thread) and take turns on the tensor cores (named barriers, "ping-pong"): while
//   one runs the GEMM of a tile the other runs the softmax of its previous tile (a max, an FFMA, an
//   ex2 and an add per logit, ~half the GEMM's time), so neither pipe waits for the other.
// - Each thread keeps a running (max, Σ 2^(x·log2e − max·log2e)) for its 4 rows over the columns it
//   holds; the 4 threads of a row share the max (two shuffles a tile) and add their sums at the end.
//
// The target's own logit is a separate dot product per row (head_pick_kernel): picking it inside
// the tile would index the accumulator array at run time (local memory).
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/common.cuh"

namespace harmonic::kernels::cuda {

namespace {

constexpr int kRows = 256;                      // feature rows per block (resident)
constexpr int kCols = 128;                      // classes per tile
constexpr int kKBlock = 64;                     // K per 128-byte swizzled row
constexpr int kStages = 6;                      // ring of weight stages
constexpr int kThreads = 384;                   // producer + two consumer warpgroups
constexpr int kStageBytes = kCols * kKBlock * 2;
constexpr int kABlockBytes = kRows * kKBlock * 2;  // one K block of the resident features

// Device code for the arch-specific target only (wgmma, setmaxnreg); other targets get an empty
// kernel, which head_lse_gemm_supported never launches.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define HARMONIC_SM90A 1

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- mbarriers and bulk tensor copies -----------------------------------------------------------
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
    uint32_t done = 0;
    do {
        asm volatile(
            "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
            : "=r"(done)
            : "r"(smem_addr(bar)), "r"(parity)
            : "memory");
    } while (!done);
}
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(
            smem_addr(dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(c0), "r"(c1)
        : "memory");
}

// ---- named barriers (ids 1 and 2; 0 is __syncthreads) ----------------------------------------
__device__ __forceinline__ void bar_sync(int id) { asm volatile("bar.sync %0, 256;" ::"r"(id) : "memory"); }
__device__ __forceinline__ void bar_arrive(int id) { asm volatile("bar.arrive %0, 256;" ::"r"(id) : "memory"); }

// ---- wgmma ------------------------------------------------------------------------------------
// Shared-memory matrix descriptor of a K-major tile in the 128-byte swizzle the copy engine writes:
// rows of 128 bytes (64 bf16 of K), 8-row groups 1024 bytes apart (stride byte offset), leading
// byte offset unused for this layout (1 by convention), base offset 0 (tiles are 1024-aligned).
__device__ __forceinline__ uint64_t smem_desc(const void* tile) {
    const uint64_t addr = smem_addr(tile);
    return ((addr & 0x3ffff) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma.
__device__ __forceinline__ void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// d (64 × 128, fp32) = A (64 × 16) · B (128 × 16)ᵀ [+ d], both bf16 K-major in shared memory.
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
        "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, "
        "%41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, "
        "%61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(a), "l"(b), "r"(accumulate));
}

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Releases the K blocks of a tile as the tensor cores finish them (the oldest group first).
template <int NKB>
__device__ __forceinline__ void release_stages(uint64_t* empty, int first_stage, bool arrive) {
#pragma unroll
    for (int kb = 0; kb < NKB; ++kb) {
        // wait_group takes an immediate: one instantiation per position.
        if (kb == 0) wgmma_wait<NKB - 1 < 0 ? 0 : NKB - 1>();
        else if (kb == 1) wgmma_wait<NKB - 2 < 0 ? 0 : NKB - 2>();
        else if (kb == 2) wgmma_wait<NKB - 3 < 0 ? 0 : NKB - 3>();
        else wgmma_wait<0>();
        if (arrive) mbar_arrive(&empty[(first_stage + kb) % kStages]);
    }
}
#endif

// One consumer warpgroup's running softmax state for its 4 rows per thread (2 halves × 2 rows).
struct RowStats {
    float m[2][2];  // running max, in logit units
    float s[2][2];  // this thread's Σ exp(x − m) over the columns it holds
};

}  // namespace

template <int NKB>
__global__ void __launch_bounds__(kThreads, 1)
    head_lse_gemm_kernel(const __grid_constant__ CUtensorMap features_map, const __grid_constant__ CUtensorMap weight_map,
                         int64_t M, int V, float* __restrict__ lse, float2* __restrict__ partial) {
#ifdef HARMONIC_SM90A
    extern __shared__ unsigned char smem_raw[];
    // The 128-byte swizzle repeats every 1024 bytes; tiles must start on that boundary.
    unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    unsigned char* sA = smem;                              // NKB blocks of (256 rows × 128 bytes)
    unsigned char* sB = smem + NKB * kABlockBytes;         // kStages × (128 rows × 128 bytes)
    __shared__ __align__(8) uint64_t full[kStages], empty[kStages], a_full;

    const int wg = threadIdx.x / 128;
    // Split y of gridDim.y takes tiles [tile0, tile1) of the vocabulary (more blocks when the rows
    // alone would not fill the GPU); its (max, sum) pairs go to `partial` for head_lse_merge_kernel.
    const int all_tiles = (V + kCols - 1) / kCols;
    const int per_split = (all_tiles + gridDim.y - 1) / gridDim.y;
    const int tile0 = min(all_tiles, int(blockIdx.y) * per_split), tile1 = min(all_tiles, tile0 + per_split);
    const int64_t row0 = int64_t(blockIdx.x) * kRows;

    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 8);  // lane 0 of each consumer warp
        }
        mbar_init(&a_full, 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (threadIdx.x == 0) {
            mbar_arrive_expect_tx(&a_full, NKB * kABlockBytes);
            for (int kb = 0; kb < NKB; ++kb)
                tma_load(sA + kb * kABlockBytes, &features_map, kb * kKBlock, int(row0), &a_full);
            int stage = 0;
            uint32_t phase = 0;
            for (int j = tile0; j < tile1; ++j) {
                for (int kb = 0; kb < NKB; ++kb) {
                    mbar_wait(&empty[stage], phase ^ 1);  // passes at once on the first lap
                    mbar_arrive_expect_tx(&full[stage], kStageBytes);
                    tma_load(sB + stage * kStageBytes, &weight_map, kb * kKBlock, j * kCols, &full[stage]);
                    if (++stage == kStages) stage = 0, phase ^= 1;
                }
            }
        }
        return;
    }

    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
    const int cw = wg - 1;                 // consumer 0 or 1: rows cw·128 … cw·128 + 127 of the block
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const bool lead = lane == 0;
    float acc[2][64];
    RowStats st;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int i = 0; i < 2; ++i) st.m[h][i] = -INFINITY, st.s[h][i] = 0.f;

    mbar_wait(&a_full, 0);
    const unsigned char* a_rows = sA + (cw * 128) * 128;  // this warpgroup's rows, K block 0
    int stage = 0;
    uint32_t phase = 0;
    if (cw == 1 && tile0 < tile1) bar_arrive(1);  // consumer 0 takes the tensor cores first

    for (int j = tile0; j < tile1; ++j) {
        bar_sync(1 + cw);  // my turn on the tensor cores
        const int first_stage = stage;
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int r = 0; r < 64; ++r) fence_operand(acc[h][r]);
#pragma unroll
        for (int kb = 0; kb < NKB; ++kb) {
            // Each K block as soon as its stage lands (the stages of the next tile are still being
            // filled while the other consumer reads this one's); the fence after the wait keeps
            // ptxas from serialising the wgmmas across the branch (its warning C7520).
            mbar_wait(&full[stage], phase);
            wgmma_fence();
            const uint64_t db = smem_desc(sB + stage * kStageBytes);
            const uint64_t da0 = smem_desc(a_rows + kb * kABlockBytes);
            const uint64_t da1 = smem_desc(a_rows + kb * kABlockBytes + 64 * 128);
#pragma unroll
            for (int k = 0; k < kKBlock / 16; ++k) {
                // 16 of K = 32 bytes along the swizzled row: +2 in the descriptor's 16-byte units.
                wgmma_m64n128k16(acc[0], da0 + 2 * k, db + 2 * k, kb | k);
                wgmma_m64n128k16(acc[1], da1 + 2 * k, db + 2 * k, kb | k);
            }
            wgmma_commit();
            if (++stage == kStages) stage = 0, phase ^= 1;
        }
        if (cw == 0 || j + 1 < tile1) bar_arrive(2 - cw);  // the other consumer's turn
        release_stages<NKB>(empty, first_stage, lead);
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int r = 0; r < 64; ++r) fence_operand(acc[h][r]);

        // Online softmax over this tile's 128 columns. Thread (warp, lane) holds, for half h and
        // i ∈ {0, 1}, row 64h + 16·warp + lane/4 + 8i at columns 8c + 2(lane % 4) + {0, 1}, c < 16,
        // in acc[h][4c + 2i + {0, 1}].
        // The four rows run side by side and each row's max and sum are trees / split chains: done
        // one row at a time, each a serial chain of 32 dependent max or add steps, the softmax takes
        // longer than the other consumer's GEMM and leaves the tensor cores idle.
        const int col0 = j * kCols;
        if (col0 + kCols > V) {  // the last tile: columns past V do not count
#pragma unroll
            for (int c = 0; c < 16; ++c)
#pragma unroll
                for (int e = 0; e < 2; ++e)
                    if (col0 + 8 * c + 2 * (lane % 4) + e >= V) {
#pragma unroll
                        for (int h = 0; h < 2; ++h)
#pragma unroll
                            for (int i = 0; i < 2; ++i) acc[h][4 * c + 2 * i + e] = -INFINITY;
                    }
        }
        float mx[2][2];
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                float t[16];
#pragma unroll
                for (int c = 0; c < 16; ++c) t[c] = fmaxf(acc[h][4 * c + 2 * i], acc[h][4 * c + 2 * i + 1]);
#pragma unroll
                for (int c = 0; c < 8; ++c) t[c] = fmaxf(t[c], t[c + 8]);
#pragma unroll
                for (int c = 0; c < 4; ++c) t[c] = fmaxf(t[c], t[c + 4]);
                mx[h][i] = fmaxf(fmaxf(t[0], t[2]), fmaxf(t[1], t[3]));
            }
#pragma unroll
        for (int o = 1; o <= 2; o *= 2)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int i = 0; i < 2; ++i) mx[h][i] = fmaxf(mx[h][i], __shfl_xor_sync(0xffffffffu, mx[h][i], o));
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const float m_new = fmaxf(st.m[h][i], mx[h][i]);
                const float m_scaled = m_new * kLog2e;
                float part[4] = {st.s[h][i] * fast_exp2(st.m[h][i] * kLog2e - m_scaled), 0.f, 0.f, 0.f};
#pragma unroll
                for (int c = 0; c < 16; ++c)
#pragma unroll
                    for (int e = 0; e < 2; ++e)
                        part[(2 * c + e) % 4] += fast_exp2(fmaf(acc[h][4 * c + 2 * i + e], kLog2e, -m_scaled));
                st.s[h][i] = (part[0] + part[1]) + (part[2] + part[3]);
                st.m[h][i] = m_new;
            }
    }

#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            float s = st.s[h][i];
            s += __shfl_xor_sync(0xffffffffu, s, 1);
            s += __shfl_xor_sync(0xffffffffu, s, 2);
            const int64_t r = row0 + cw * 128 + 64 * h + 16 * warp + lane / 4 + 8 * i;
            if (lane % 4 != 0 || r >= M) continue;
            if (gridDim.y == 1) lse[r] = st.m[h][i] + logf(s);
            else partial[blockIdx.y * M + r] = make_float2(st.m[h][i], s);
        }
#else
    __trap();  // built without sm_90a: head_lse_gemm_supported said no
#endif
}

namespace {

// lse[r] from the splits' (max, Σ exp(x − max)) pairs.
__global__ void head_lse_merge_kernel(const float2* __restrict__ partial, int splits, int64_t M, float* __restrict__ lse) {
    const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= M) return;
    float m = -INFINITY;
    for (int y = 0; y < splits; ++y) m = fmaxf(m, partial[y * M + r].x);
    float s = 0.f;
    for (int y = 0; y < splits; ++y) {
        const float2 ms = partial[y * M + r];
        if (ms.y > 0.f) s += ms.y * expf(ms.x - m);
    }
    lse[r] = m + logf(s);
}

// picked[r] = features[r] · weight[targets[r]] in fp32, one warp a row, 16-byte loads (K % 8 == 0).
__global__ void head_pick_kernel(const bf16* __restrict__ features, const bf16* __restrict__ weight,
                                 const int64_t* __restrict__ targets, int64_t M, int V, int K,
                                 float* __restrict__ picked) {
    const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (r >= M) return;
    const int64_t t = targets[r];
    const bool valid = t >= 0 && t < V;  // out of range: NaN rather than a read outside the weight
    float sum = 0.f;
    if (valid) {
        for (int k = lane * 8; k < K; k += 32 * 8) {
            const auto f = load_pack<bf16, 8>(features + r * K + k);
            const auto w = load_pack<bf16, 8>(weight + t * K + k);
#pragma unroll
            for (int e = 0; e < 8; ++e) sum = fmaf(to_f(f.v[e]), to_f(w.v[e]), sum);
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) picked[r] = valid ? sum : NAN;
}

PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void* f = nullptr;
        cudaDriverEntryPointQueryResult found{};
        HARMONIC_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found));
        if (found != cudaDriverEntryPointSuccess || !f)
            throw std::runtime_error("head_lse_gemm: the CUDA driver has no cuTensorMapEncodeTiled");
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
    }();
    return fn;
}

// A (rows, K) bf16 row-major matrix read in boxes of (box_rows × 64 of K), 128-byte swizzled.
// Rows past the end read as zeros.
CUtensorMap tile_map(const void* base, int64_t rows, int K, int box_rows) {
    CUtensorMap map;
    const cuuint64_t dims[2] = {cuuint64_t(K), cuuint64_t(rows)};
    const cuuint64_t strides[1] = {cuuint64_t(K) * 2};
    const cuuint32_t box[2] = {kKBlock, cuuint32_t(box_rows)};
    const cuuint32_t elem_strides[2] = {1, 1};
    const CUresult res = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims, strides,
                                        box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (res != CUDA_SUCCESS)
        throw std::runtime_error("head_lse_gemm: cuTensorMapEncodeTiled failed (" + std::to_string(int(res)) + ")");
    return map;
}

template <int NKB>
void launch_lse(const HeadGemmParams& p, cudaStream_t stream) {
    static std::atomic<unsigned> opted_in{0};
    allow_dynamic_smem(head_lse_gemm_kernel<NKB>, NKB * kABlockBytes + kStages * kStageBytes + 1024, opted_in);
    const CUtensorMap a = tile_map(p.features, p.M, p.K, kRows);
    const CUtensorMap b = tile_map(p.weight, p.V, p.K, kCols);
    const dim3 grid(static_cast<unsigned>((p.M + kRows - 1) / kRows), static_cast<unsigned>(p.splits));
    head_lse_gemm_kernel<NKB><<<grid, kThreads, NKB * kABlockBytes + kStages * kStageBytes + 1024, stream>>>(
        a, b, p.M, int(p.V), p.lse, reinterpret_cast<float2*>(p.partial));
    HARMONIC_CUDA_CHECK(cudaGetLastError());
    if (p.splits > 1) {
        head_lse_merge_kernel<<<static_cast<unsigned>((p.M + 255) / 256), 256, 0, stream>>>(
            reinterpret_cast<const float2*>(p.partial), p.splits, p.M, p.lse);
        HARMONIC_CUDA_CHECK(cudaGetLastError());
    }
}

}  // namespace

bool head_lse_gemm_supported(int64_t K, int64_t V, int device) {
#ifndef HARMONIC_HAVE_SM90A
    (void)K, (void)V, (void)device;
    return false;  // built for other architectures than sm_90a: the kernel body is empty
#endif
    if (K % kKBlock != 0 || K < kKBlock || K > kHeadGemmMaxK || V < 1 || V > (int64_t(1) << 30)) return false;
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
        return false;
    return major == 9 && minor == 0;  // the kernel is built for sm_90a only
}

int head_lse_gemm_splits(int64_t M, int64_t V, int sms) {
    if (sms < 1) throw std::invalid_argument("head_lse_gemm_splits: sms must be positive");
    const int64_t row_blocks = (M + kRows - 1) / kRows, tiles = (V + kCols - 1) / kCols;
    // The fewest splits whose blocks fill the last wave best (one block per SM): a 256-row block
    // streams the whole vocabulary, so 2 × 1K tokens alone would run on 8 of 132 SMs.
    int best = 1;
    double best_fill = 0.;
    for (int s = 1; s <= std::min<int64_t>(tiles, kHeadGemmMaxSplits); ++s) {
        const double waves = double(row_blocks * s) / sms, fill = waves / std::ceil(waves);
        if (fill > best_fill * 1.02) best = s, best_fill = fill;  // more blocks only for 2 % more fill
        if (row_blocks * s >= 4 * sms) break;  // enough blocks that the tail no longer matters
    }
    return best;
}

void head_lse_gemm(const HeadGemmParams& p, cudaStream_t stream) {
    if (p.M == 0) return;
    if (p.M > (int64_t(1) << 31) - kRows) throw std::invalid_argument("head_lse_gemm: too many rows");
    if (p.splits < 1 || p.splits > kHeadGemmMaxSplits || (p.splits > 1 && !p.partial))
        throw std::invalid_argument("head_lse_gemm: splits must be in [1, kHeadGemmMaxSplits], with scratch when > 1");
    switch (p.K / kKBlock) {
        case 1: launch_lse<1>(p, stream); break;
        case 2: launch_lse<2>(p, stream); break;
        case 3: launch_lse<3>(p, stream); break;
        case 4: launch_lse<4>(p, stream); break;
        default: throw std::invalid_argument("head_lse_gemm: K must be 64, 128, 192 or 256");
    }
    if (p.picked) {
        constexpr int kPickThreads = 256;
        const auto blocks = static_cast<unsigned>((p.M * 32 + kPickThreads - 1) / kPickThreads);
        head_pick_kernel<<<blocks, kPickThreads, 0, stream>>>(static_cast<const bf16*>(p.features),
                                                              static_cast<const bf16*>(p.weight), p.targets, p.M,
                                                              int(p.V), p.K, p.picked);
        HARMONIC_CUDA_CHECK(cudaGetLastError());
    }
}

}  // namespace harmonic::kernels::cuda
