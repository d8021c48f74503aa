// Device helpers shared by the scan kernels: typed vector loads/stores, conversions, and the
// flag protocol of the decoupled look-back (Merrill & Garland, "Single-pass Parallel Prefix Scan
// with Decoupled Look-back", 2016) that chains time chunks across thread blocks in one pass.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/softplus.h"

namespace harmonic::kernels::cuda {

constexpr float kLog2e = 1.4426950408889634f;

#define HARMONIC_CUDA_CHECK(expr)                                                            \
    do {                                                                                     \
        cudaError_t err_ = (expr);                                                           \
        if (err_ != cudaSuccess) throw_cuda_error(err_, #expr, __FILE__, __LINE__);          \
    } while (0)

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);

using bf16 = __nv_bfloat16;

// Lets `kernel` launch with `bytes` of dynamic shared memory, more than the 48 KB granted without
// asking. The attribute is per device: `opted_in` (one static per kernel at the call site) keeps a
// bit per device it was set on (devices 0–31; others set it on every launch).
template <class Kernel>
void allow_dynamic_smem(Kernel kernel, int bytes, std::atomic<unsigned>& opted_in) {
    int device = 0;
    HARMONIC_CUDA_CHECK(cudaGetDevice(&device));
    const unsigned bit = device < 32 ? 1u << device : 0u;
    if (bit && (opted_in.load() & bit)) return;
    HARMONIC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    opted_in.fetch_or(bit);
}

template <typename T>
__device__ __forceinline__ float to_f(T v);
template <>
__device__ __forceinline__ float to_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f<bf16>(bf16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

// V consecutive elements moved as one aligned access (16 bytes for 4 fp32, 8 for 4 bf16). Loads go
// through an integer vector type (LDG.128 / LDG.64 in the SASS); stores are written as explicit
// vector PTX, because nvcc splits every struct or memcpy'd vector store into scalar STG.E (no
// STG.128 / STG.64 in the SASS otherwise).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
    T v[V];
};

template <int Bytes>
struct RawVec;
template <>
struct RawVec<16> { using type = uint4; };
template <>
struct RawVec<8> { using type = uint2; };
template <>
struct RawVec<4> { using type = unsigned int; };
template <>
struct RawVec<2> { using type = unsigned short; };

template <typename T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
    using R = typename RawVec<sizeof(T) * V>::type;
    const R r = *reinterpret_cast<const R*>(p);
    Pack<T, V> out;
    memcpy(&out, &r, sizeof(R));
    return out;
}

template <typename T, int V>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& v) {
    constexpr int bytes = sizeof(T) * V;
    if constexpr (bytes == 16) {
        unsigned w[4];
        memcpy(w, &v, 16);
        asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(w[0]), "r"(w[1]), "r"(w[2]), "r"(w[3]));
    } else if constexpr (bytes == 8) {
        unsigned w[2];
        memcpy(w, &v, 8);
        asm volatile("st.global.v2.b32 [%0], {%1, %2};" ::"l"(p), "r"(w[0]), "r"(w[1]));
    } else if constexpr (bytes == 4) {
        unsigned w;
        memcpy(&w, &v, 4);
        asm volatile("st.global.b32 [%0], %1;" ::"l"(p), "r"(w));
    } else {
        static_assert(bytes == 2, "store_pack: 2, 4, 8 or 16 bytes");
        unsigned short w;
        memcpy(&w, &v, 2);
        asm volatile("st.global.b16 [%0], %1;" ::"l"(p), "h"(w));
    }
}

// Asynchronous copy of one V-wide pack from global into shared memory (cp.async: no register holds
// it on the way). 16-byte packs bypass L1 (.cg); smaller ones must use .ca.
template <typename T, int V>
__device__ __forceinline__ void async_copy_pack(Pack<T, V>* smem_dst, const T* src) {
    constexpr int bytes = sizeof(T) * V;
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
    if constexpr (bytes == 16) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
    else asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(dst), "l"(src), "n"(bytes) : "memory");
}
__device__ __forceinline__ void async_copy_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void async_copy_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }

// Hides a register's value from the compiler (an empty asm that "may change" it). Applied to packed
// bf16 inputs between two passes over them, so the compiler cannot keep pass 1's float conversions
// alive through the look-back: without it ptxas holds twice the registers and spills at 16 bf16
// steps a thread.
template <typename T, int V>
__device__ __forceinline__ void opaque(Pack<T, V>& p) {
    static_assert(sizeof(Pack<T, V>) % 4 == 0 || sizeof(Pack<T, V>) == 2, "opaque: whole 32-bit words");
    if constexpr (sizeof(Pack<T, V>) >= 4) {
        unsigned w[sizeof(Pack<T, V>) / 4];
        memcpy(w, &p, sizeof w);
#pragma unroll
        for (unsigned& x : w) asm volatile("" : "+r"(x));
        memcpy(&p, w, sizeof w);
    } else {
        unsigned short x;
        memcpy(&x, &p, 2);
        asm volatile("" : "+h"(x));
        memcpy(&p, &x, 2);
    }
}

// Chained-scan status of one (chunk, channel) — or (chunk, state, channel) in the selective scan —
// as one 64-bit word, the low half a state value, the high half the tag (stored inverted, so that
// the zero-filled buffer a launch starts from reads as empty everywhere):
//   kStatusEmpty      nothing published yet;
//   kStatusInclusive  the low half is the state at the chunk end;
//   anything else     an aggregate: the high half a float describing the chunk's decay (linear:
//                     the product A of its decays; selective: its Σ Δ), the low half its H (the
//                     chunk maps h to decay·h + H).
// Data and flag share one single-copy-atomic word, so a reader that sees the tag sees the value:
// publishing is one relaxed store (no block barrier, no fence) and a look-back step is one L2
// round trip. A flag-then-data protocol (one flag per chunk and tile, set after a barrier and a
// fence, then the data read in a second dependent round trip) keeps the warps waiting at that
// barrier instead (docs/KERNELS.md § The chained scan). Both tags are
// NaNs whose payload GPU arithmetic never returns (it returns the canonical 0x7fffffff), and every
// decay word is computed, so no value can be mistaken for a tag. Empty is zero (rather than 0xff
// bytes), so that one zero fill of a new buffer starts every word of its protocol
// (launch.h, ScanScratch: tickets, epochs, status words and accumulators).
using StatusWord = unsigned long long;
constexpr unsigned kStatusEmpty = 0xffffffffu;
constexpr unsigned kStatusInclusive = 0xfffffffeu;
constexpr StatusWord kEmptyWord = 0;  // a whole word as stored before anything is published

__device__ __forceinline__ void publish_status(StatusWord* p, unsigned tag, float value) {
    const StatusWord w = (static_cast<StatusWord>(~tag) << 32) | __float_as_uint(value);
    asm volatile("st.relaxed.gpu.global.b64 [%0], %1;" ::"l"(p), "l"(w) : "memory");
}
__device__ __forceinline__ StatusWord read_status(const StatusWord* p) {
    StatusWord w;
    asm volatile("ld.relaxed.gpu.global.b64 %0, [%1];" : "=l"(w) : "l"(p) : "memory");
    return w;
}
__device__ __forceinline__ unsigned status_tag(StatusWord w) { return ~static_cast<unsigned>(w >> 32); }
__device__ __forceinline__ float status_value(StatusWord w) { return __uint_as_float(static_cast<unsigned>(w)); }

// A block's ticket and its launch's status words (launch.h, ScanScratch). The ticket counts the
// launch's blocks: the block that takes the last ticket starts the next epoch (every other block of
// the launch has its ticket by then), so the next launch on the stream uses the other half. Both
// halves' written-word counts are read with the ticket, in the same round trip: the other half's
// count is stable during the launch (only the launch after next rewrites it), and the block with
// ticket 0 records this launch's.
// A block's chunk is either its ticket (take_ticket, before anything else): blocks take chunks in
// the order they start, so every block a look-back waits on has started and will finish, whatever
// the hardware's block order. Or its index (blockIdx.x), as in CUB's single-pass scan, which relies
// on the hardware starting a grid's blocks in index order: then thread 0 asks for the ticket once
// the block's input loads are issued (request_ticket), posts it before the block's next barrier,
// which the scan has anyway (post_ticket), and the block reads it after that barrier
// (read_ticket), so that the round trip overlaps the loads. The fixed-decay bf16 linear backward
// and the selective backward take their chunks by index, which is faster for them; every other
// scan is slower that way (docs/KERNELS.md § The chained scan).
struct ScanTicket {
    int64_t id;              // the ticket: the block's place in the launch's start order
    StatusWord* status;
    StatusWord* stale;       // the other half
    unsigned stale_words;    // written there by the previous launch that used it
};
// Thread 0's share: request_ticket issues the atomic and the counts' loads, post_ticket waits for
// them and writes the ticket to shared memory.
struct TicketRequest {
    unsigned long long w = 0, written0 = 0, written1 = 0;
};
__device__ __forceinline__ TicketRequest request_ticket(const ScanScratch& s) {
    TicketRequest r;
    if (threadIdx.x == 0) {
        r.written0 = s.control[1], r.written1 = s.control[2];  // issued before the atomic
        r.w = atomicAdd(s.control, 1ull);
    }
    return r;
}
__device__ __forceinline__ void post_ticket(const ScanScratch& s, const TicketRequest& r, int* smem /* 3 ints */) {
    if (threadIdx.x == 0) {
        const unsigned ticket = static_cast<unsigned>(r.w), epoch = static_cast<unsigned>(r.w >> 32);
        if (ticket == gridDim.x * gridDim.y * gridDim.z - 1)
            atomicExch(s.control, static_cast<unsigned long long>(epoch + 1) << 32);
        const int half = static_cast<int>(epoch & 1);
        if (ticket == 0) s.control[1 + half] = static_cast<unsigned long long>(s.words);
        smem[0] = static_cast<int>(ticket);
        smem[1] = half;
        smem[2] = static_cast<int>(half ? r.written0 : r.written1);  // below 2^31 (scan_scratch.cpp, kScratchMaxHalf)
    }
}
// After the barrier that follows post_ticket.
__device__ __forceinline__ ScanTicket read_ticket(const ScanScratch& s, const int* smem) {
    const int half = smem[1];
    return {static_cast<int64_t>(smem[0]), s.half[half], s.half[half ^ 1], static_cast<unsigned>(smem[2])};
}
// The ticket before anything else, for a block whose chunk is its ticket (the start order).
__device__ __forceinline__ ScanTicket take_ticket(const ScanScratch& s, int* smem /* 3 ints */) {
    post_ticket(s, request_ticket(s), smem);
    __syncthreads();
    return read_ticket(s, smem);
}

// This block's share of zeroing what the previous launch on the stream wrote in the half this
// launch does not use (the next launch's): 1/gridDim of a few MB in 16-byte stores that nothing
// waits on. The zero fill that used to run before every launch (a kernel, and the gap after it) is
// spread over the launch after. Called after the block's input loads are issued, so that its stores
// do not hold those loads back (the compiler cannot tell the stores from the inputs apart).
__device__ __forceinline__ void clear_stale_half(const ScanTicket& t) {
    const unsigned blocks = gridDim.x * gridDim.y * gridDim.z, id = static_cast<unsigned>(t.id);
    const unsigned pairs = (t.stale_words + 1) / 2, per = (pairs + blocks - 1) / blocks;
    ulonglong2* const other = reinterpret_cast<ulonglong2*>(t.stale);
    const unsigned end = min(pairs, (id + 1) * per);
    for (unsigned i = id * per + threadIdx.x; i < end; i += blockDim.x) other[i] = make_ulonglong2(0, 0);
}

// The carry into `chunk` of one channel (or state), each thread on its own: walks the n_avail
// chunks before it (dir −1) or after it (dir +1), nearest first, reading `window` (≤
// kLookbackBatch) status words per round trip (independent loads, all in flight at once), and
// folds aggregates, fold.aggregate(decay word, H), until an inclusive state ends the walk with
// fold.inclusive(state). The first chunk of the walk's direction publishes only its inclusive
// state, so every walk ends there at the latest.
template <class Fold>
__device__ __forceinline__ float look_back(const StatusWord* status, int64_t stride, int64_t chunk, int dir,
                                           int64_t n_avail, int window, Fold& fold) {
    int64_t done = 0;
    for (;;) {
        StatusWord w[kLookbackBatch];
#pragma unroll
        for (int i = 0; i < kLookbackBatch; ++i)
            w[i] = (i < window && done + i < n_avail) ? read_status(status + (chunk + dir * (done + i + 1)) * stride)
                                                      : kEmptyWord;
        int n = 0;  // aggregates folded this round; the walk stops at the first empty word
#pragma unroll
        for (int i = 0; i < kLookbackBatch; ++i) {
            if (n != i) continue;
            const unsigned tag = status_tag(w[i]);
            if (tag == kStatusInclusive) return fold.inclusive(status_value(w[i]));
            if (tag == kStatusEmpty) continue;
            fold.aggregate(__uint_as_float(tag), status_value(w[i]));
            n = i + 1;
        }
        done += n;
        if (n == 0) __nanosleep(32);
    }
}

// look_back for K columns of one thread at once (the selective scan's (state, channel) pairs):
// each round reads up to Batch words of every column still open, all in one round trip, instead of
// K walks one after another (the selective backward, two pairs a thread),
// and folds them as look_back does. Columns with open[k] false on entry are not
// walked (carry[k] untouched). look_back keeps its own loop: written as this one with K = 1, or
// through a shared per-round helper, every linear scan's SASS changes (and one spills), and the
// linear kernels lose speed to such changes (docs/KERNELS.md § Constraints learned).
template <int K, int Batch, class Fold>
__device__ __forceinline__ void look_back_columns(const StatusWord* const (&cols)[K], bool (&open)[K], int64_t stride,
                                                  int64_t chunk, int dir, int64_t n_avail, Fold (&fold)[K],
                                                  float (&carry)[K]) {
    int64_t done[K];
#pragma unroll
    for (int k = 0; k < K; ++k) done[k] = 0;
    for (;;) {
        StatusWord w[K][Batch];
#pragma unroll
        for (int k = 0; k < K; ++k)
#pragma unroll
            for (int i = 0; i < Batch; ++i)
                w[k][i] = (open[k] && done[k] + i < n_avail) ? read_status(cols[k] + (chunk + dir * (done[k] + i + 1)) * stride)
                                                             : kEmptyWord;
        bool any_open = false, moved = false;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            if (!open[k]) continue;
            int n = 0;
            bool found = false;
#pragma unroll
            for (int i = 0; i < Batch; ++i) {
                if (n != i || found) continue;
                const unsigned tag = status_tag(w[k][i]);
                if (tag == kStatusInclusive) {
                    carry[k] = fold[k].inclusive(status_value(w[k][i]));
                    found = true;
                } else if (tag != kStatusEmpty) {
                    fold[k].aggregate(__uint_as_float(tag), status_value(w[k][i]));
                    n = i + 1;
                }
            }
            done[k] += n;
            open[k] = !found;
            moved |= found || n > 0;
            any_open |= !found;
        }
        if (!any_open) return;
        if (!moved) __nanosleep(32);
    }
}

// Valid steps of a thread's run of s steps that has `left` steps of the sequence ahead of it.
__device__ __forceinline__ int steps_left(int64_t left, int s) {
    return left <= 0 ? 0 : (left >= s ? s : static_cast<int>(left));
}

// 2^x from one MUFU operation (~2 ulp; subnormal results flushed to 0).
__device__ __forceinline__ float ex2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }
// σ from two MUFU operations (ex2 and rcp, ~2 ulp each, plus the rounding of x·log2 e) instead of
// libm's expf and an IEEE division (~14 instructions); see gate_sigmoid in linear_scan.cu.
__device__ __forceinline__ float sigmoid_fast(float x) { return __fdividef(1.f, 1.f + __expf(-x)); }
// softplus from two MUFU operations and no branch: max(x, 0) + ln 2 · log2(1 + 2^(−|x|·log2 e)).
// Its absolute error, about 2e-7 (lg2.approx's 2^-22 on [1, 2], ex2.approx's 2 ulp of a term at
// most 1), enters the selective cell's decay a = exp(−softplus/τ) divided by τ: at τ >= 4 it is
// under one rounding of a. Where 1 + 2^(…) rounds to 1 (x < −17) it returns 0 instead of e^x, as
// exp(−e^x/τ) rounds to 1 in fp32 there anyway.
__device__ __forceinline__ float softplus_fast(float x) {
    constexpr float kLn2 = 0.6931471805599453f;
    return fmaf(kLn2, __log2f(1.f + ex2_approx(-fabsf(x) * kLog2e)), fmaxf(x, 0.f));
}

}  // namespace harmonic::kernels::cuda
