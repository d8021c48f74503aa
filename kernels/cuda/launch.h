// The raw interface between the LibTorch wrappers (ops.cpp, compiled by the C++ compiler) and the
// CUDA kernels (*.cu, compiled by nvcc without any LibTorch header). Plain pointers and sizes only.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace harmonic::kernels::cuda {

enum class DType : int { F32 = 0, BF16 = 1 };

// ---------------------------------------------------------------------------------------------
// A chained scan's scratch (common.cuh, request_ticket). Its control words: 0 holds the block-ticket
// counter (low half) and the launch's epoch (high half), 1 and 2 how many words of half 0 and half 1
// the last launch that used them wrote; accumulators some launches keep follow (8-byte words, zero
// between launches). A launch of epoch e uses half[e & 1], which it finds all zero, and its blocks
// zero between them the words the previous launch wrote in the other half, so that consecutive
// launches on one stream need no fill (scan_scratch.cpp). A buffer zero-filled for one launch
// (both halves the same, nothing written in either) is the same protocol with epoch 0.
constexpr int kScratchControlWords = 4;

struct ScanScratch {
    unsigned long long* control = nullptr;  // kScratchControlWords, then the accumulators
    unsigned long long* half[2] = {};       // status words, 16-byte aligned, capacity even
    int64_t words = 0;                      // status words this launch writes (≤ each half's capacity)
};

// ---------------------------------------------------------------------------------------------
// First-order linear scan h_t = a_t ⊙ h_{t-1} + b_t over (B, T, C), and the fused Harmonic level
// cells that compute (a_t, b_t) from the cell's pre-activations on the fly.
enum class LinMode : int {
    Linear = 0,       // a: (B,T,C) of dtype ta, b: (B,T,C) of dtype tb
    LinearFixed = 1,  // a: (C) fp32, one decay per channel for all steps; b: (B,T,C) of dtype tb
    Gated = 2,        // gated_ema cell: a = c0 (scalar), b = c1 σ(pre) u with c1 = 1 - a; pre = `a` ptr, u = `b` ptr (dtype tb)
    SelLevel = 3,     // selective cell: a = exp(-softplus(pre) · c0) (c0 = 1/τ), b = (1 - a) u
};

// Chunk geometry. A block has kLinWarps warps along time and owns lin_steps · kLinWarps steps
// (8, 16 or 32 steps a thread, by input dtype; see linear_scan.cu): 1, 2 or 4 checkpoint spans. The
// forward writes the state at the end of every span; a backward block starts from the one before it.
constexpr int kLinSteps = 8;     // fewest consecutive steps per thread
constexpr int kLinWarps = 8;     // warps along time per block
constexpr int kLinSpan = kLinSteps * kLinWarps;  // steps per checkpoint
constexpr int kLookbackBatch = 8;  // most status words a thread reads per look-back round trip

struct LinParams {
    LinMode mode = LinMode::Linear;
    DType ta = DType::F32, tb = DType::F32;  // input dtypes (for fused modes ta == tb == dtype of pre and u)
    int vec = 1;                            // channels per thread: 4, 2 or 1 (C % vec == 0, aligned)
    int window = kLookbackBatch;            // look-back predecessors read per round trip (1..kLookbackBatch)
    // Backward: inputs copied into shared memory (cp.async) rather than held in registers, so a
    // thread runs 16 steps (see linear_scan.cu, lin_bwd_kernel).
    bool stage_inputs = true;
    int64_t B = 0, T = 0, C = 0;
    float c0 = 0.f;                         // Gated: decay a; SelLevel: 1/τ
    float c1 = 0.f;                         // Gated: 1 - a, rounded from double on the host
    const void* a = nullptr;                // per-token a / fixed a (fp32) / pre
    const void* b = nullptr;                // b / u
    const float* h0 = nullptr;              // (B, C) fp32 or null
    void* h = nullptr;                      // forward output (B, T, C) in dtype tb
    // Ticket, the lin_scratch_words chained-scan status words of each chunk and channel (common.cuh,
    // StatusWord) and, for a fixed-decay backward (fixed_da), C fp64 accumulators of dL/da after the
    // control words (lin_fixed_da_finish rounds them to fp32 and clears them).
    ScanScratch scratch;
    // (lin_num_chunks(T), B·C) fp32, the state at the end of every kLinSpan steps (the last: at
    // T − 1): written by the forward, read by the backward as its checkpoints.
    float* ckpt = nullptr;
    // Backward only.
    const void* dh = nullptr;               // dL/dh (B, T, C) in dtype tb
    const float* dh_last = nullptr;         // dL/dh_{T-1} from a separate final-state output (B, C) or null
    void* da = nullptr;                     // Linear: (B,T,C) dtype ta; fused modes: d pre (dtype tb)
    bool fixed_da = false;                  // LinearFixed: sum dL/da into the scratch's fp64 accumulators
    void* db = nullptr;                     // d b / d u (dtype tb)
    float* dh0 = nullptr;                   // (B, C) or null
};

int64_t lin_num_chunks(int64_t T);                   // checkpoint spans: ceil(T / kLinSpan)
int lin_steps(const LinParams& p, bool backward);     // steps per thread (8, 16 or 32)
int64_t lin_chunks(const LinParams& p, bool backward);  // blocks along time: ceil(T / (lin_steps · kLinWarps))
int64_t lin_num_tiles(const LinParams& p);      // channel tiles: B · ceil(C / (32·vec))
int64_t lin_scratch_words(const LinParams& p, bool backward);  // status words: chunks·B·C
// A fixed-decay backward's dL/da (C fp32) from its accumulators, which are cleared for the next launch.
void lin_fixed_da_finish(const LinParams& p, float* da, cudaStream_t stream);
void lin_forward(const LinParams& p, cudaStream_t stream);
void lin_backward(const LinParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// Mamba's selective scan. States are kept as [B][N][E] (channel fastest) in every global buffer.
constexpr int kSelSteps = 8;
constexpr int kSelWarps = 8;     // default backward warps per block (8: two blocks of 256 per SM; 16 also built)
constexpr int kSelMaxN = 16;     // d_state handled by the kernel; larger falls back to the reference

struct SelParams {
    DType tx = DType::F32;        // x, z, y, dL/dy, dx, dz
    DType td = DType::F32;        // delta, d delta
    int window = kLookbackBatch;  // forward: look-back predecessors read per round trip (1..kLookbackBatch);
                                  // the backward walks a thread's pairs together (selective_scan.cu,
                                  // sel_lookback_batch words each)
    int warps = kSelWarps;        // warps along time per block, 8 or 16: chunk = kSelSteps·warps steps;
                                  // the backward must use the forward's value (its checkpoints)
    int64_t B = 0, T = 0, E = 0, N = 0;
    const void* x = nullptr;      // (B, T, E)
    const void* dt = nullptr;     // (B, T, E), already positive
    const void* z = nullptr;      // (B, T, E) or null (no gate)
    const float* A = nullptr;     // (E, N)
    const float* Bm = nullptr;    // (B, T, N) fp32
    const float* Cm = nullptr;    // (B, T, N) fp32
    const float* D = nullptr;     // (E) or null
    const float* h0 = nullptr;    // [B][N][E] or null
    void* y = nullptr;            // (B, T, E)
    // Ticket and the sel_scratch_words status words of each (chunk, b, n, e) (common.cuh).
    ScanScratch scratch;
    float* incl = nullptr;        // forward: (nChunks, B, N, E) out, the state at each chunk end (checkpoints)
    // Backward only.
    const float* ckpt = nullptr;
    const void* dy = nullptr;
    const float* dh_last = nullptr;  // [B][N][E] or null
    void* dx = nullptr;
    void* ddt = nullptr;
    void* dz = nullptr;
    float* dB = nullptr;          // (B, T, N) fp32, zeroed (accumulated with atomics over channel tiles)
    float* dC = nullptr;
    float* dA_part = nullptr;     // (nChunks, B, N, E)
    float* dD_part = nullptr;     // (nChunks, B, E)
    float* dh0 = nullptr;         // [B][N][E] or null
};

int64_t sel_num_chunks(int64_t T, int warps);
int64_t sel_num_tiles(const SelParams& p);
int64_t sel_scratch_words(const SelParams& p);  // status words: nChunks·B·N·E
void sel_forward(const SelParams& p, cudaStream_t stream);
void sel_backward(const SelParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// The output head's softmax over a chunk of logits (n rows of ld elements, the first V the
// classes): per-row log-sum-exp and target logit, and the gradient scale·(softmax − onehot).
struct HeadParams {
    DType t = DType::F32;            // logits and g
    int64_t n = 0, V = 0, ld = 0;
    const void* logits = nullptr;    // (n, ld)
    const int64_t* targets = nullptr;  // (n)
    float* lse = nullptr;            // (n) out (head_lse) / in (head_softmax_grad)
    float* picked = nullptr;         // (n) out (head_lse)
    const float* scale = nullptr;    // one fp32 value on the device (head_softmax_grad)
    void* g = nullptr;               // (n, ld) out (head_softmax_grad)
};

void head_lse(const HeadParams& p, cudaStream_t stream);
void head_softmax_grad(const HeadParams& p, cudaStream_t stream);

// The log-sum-exp of every row of features · weightᵀ without writing the logits (head_gemm.cu: the
// GEMM and the online softmax in one Hopper kernel), and each row's target logit.
constexpr int kHeadGemmMaxK = 256;  // features resident in shared memory: 256 rows × K bf16

struct HeadGemmParams {
    int64_t M = 0, V = 0;
    int K = 0;                           // multiple of 64, at most kHeadGemmMaxK
    const void* features = nullptr;      // (M, K) bf16, rows contiguous, 16-byte aligned
    const void* weight = nullptr;        // (V, K) bf16, the same
    const int64_t* targets = nullptr;    // (M), for picked
    float* lse = nullptr;                // (M) out: log Σ_j exp(features[r] · weight[j])
    float* picked = nullptr;             // (M) out or null: features[r] · weight[targets[r]] (NaN out of range)
    int splits = 1;                      // blocks along the vocabulary per 256 rows (head_lse_gemm_splits)
    float* partial = nullptr;            // splits > 1: scratch of 2 · splits · M floats
};
constexpr int kHeadGemmMaxSplits = 128;

// Whether head_lse_gemm runs these shapes on this device (K, a compute capability 9.0 GPU).
bool head_lse_gemm_supported(int64_t K, int64_t V, int device);
// Splits along the vocabulary for M rows on a GPU with `sms` multiprocessors (pure arithmetic).
int head_lse_gemm_splits(int64_t M, int64_t V, int sms);
void head_lse_gemm(const HeadGemmParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// A Harmonic block's residual stream, out = x + y + Σ_l up_l(ext_l) (kernels/residual.h).
constexpr int kResidualMaxLevels = 4;

struct ResidualParams {
    DType ty = DType::F32;                     // y and every ext
    int vec = 1;                               // channels per thread: 4 (aligned, d % 4 == 0) or 1
    int levels = 0;
    int64_t B = 0, C = 0, d = 0, pos0 = 0;
    const float* x = nullptr;                  // (B, C, d)
    const void* y = nullptr;                   // (B, C, d)
    float* out = nullptr;                      // (B, C, d)
    const void* ext[kResidualMaxLevels] = {};  // (B, rows[l], d)
    int64_t rows[kResidualMaxLevels] = {};
    int64_t stride[kResidualMaxLevels] = {};
};

void residual_upsample_sum(const ResidualParams& p, cudaStream_t stream);

}  // namespace harmonic::kernels::cuda
