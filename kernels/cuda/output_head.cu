// The output head's softmax passes over a chunk of logits (launch.h, HeadParams). Both are one
// read of the chunk (bf16 logits: 2 bytes per class), where the LibTorch reference converts the
// chunk to fp32 and makes four passes over it (copy, max, exp-sum, gather / exp, scatter, scale,
// copy back): at a 50,257-way head those passes dominate the chunked head (docs/KERNELS.md § Output head).
#include <cmath>
#include <stdexcept>

#include "kernels/cuda/common.cuh"

namespace harmonic::kernels::cuda {

namespace {

constexpr int kHeadThreads = 256;  // one block per row: 50K classes are ~25 16-byte loads a thread
constexpr int kUnroll = 4;         // 16-byte loads a thread issues back to back

// Running (max, Σ exp(x − max)) pairs, merged without ever subtracting two infinities.
struct MaxSum {
    float m = -INFINITY, s = 0.f;
    __device__ __forceinline__ void add(float x) {
        if (x > m) {
            s = s * expf(m - x) + 1.f;
            m = x;
        } else if (m > -INFINITY) {
            s += expf(x - m);
        }
    }
    __device__ __forceinline__ void merge(MaxSum o) {
        if (o.m > m) {
            s = o.s + s * expf(m - o.m);
            m = o.m;
        } else if (o.m > -INFINITY) {
            s += o.s * expf(o.m - m);
        }
    }
};

// Elements per 16-byte access, and whether the rows allow it (every row start aligned).
template <typename T>
constexpr int kVec = 16 / sizeof(T);

template <typename T>
bool rows_vectorisable(const HeadParams& p) {
    return (p.ld * sizeof(T)) % 16 == 0 && reinterpret_cast<std::uintptr_t>(p.logits) % 16 == 0 &&
           (!p.g || reinterpret_cast<std::uintptr_t>(p.g) % 16 == 0);
}

// Visits a row's first nv 16-byte vectors, f(vector, index), with kUnroll independent loads in
// flight per thread before any arithmetic: with one at a time the read stays well under the copy
// ceiling.
template <typename T, class F>
__device__ __forceinline__ void for_each_vector(const T* row, int64_t nv, F&& f) {
    constexpr int W = kVec<T>;
    for (int64_t v0 = threadIdx.x; v0 < nv; v0 += kUnroll * kHeadThreads) {
        Pack<T, W> x[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
            if (v0 + u * kHeadThreads < nv) x[u] = load_pack<T, W>(row + (v0 + u * kHeadThreads) * W);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t v = v0 + u * kHeadThreads;
            if (v >= nv) break;
            f(x[u], v);
        }
    }
}

template <typename T, bool Vec>
__global__ void __launch_bounds__(kHeadThreads) head_lse_kernel(HeadParams p) {
    const int64_t r = blockIdx.x;
    const T* row = static_cast<const T*>(p.logits) + r * p.ld;
    MaxSum acc;
    int64_t j0 = 0;
    if constexpr (Vec) {
        constexpr int W = kVec<T>;
        const int64_t nv = p.V / W;
        for_each_vector(row, nv, [&](const Pack<T, W>& x, int64_t) {
            float f[W];
            float vm = -INFINITY;
#pragma unroll
            for (int k = 0; k < W; ++k) f[k] = to_f(x.v[k]), vm = fmaxf(vm, f[k]);
            // One rescale per vector instead of one per element.
            if (vm > acc.m) {
                acc.s *= expf(acc.m - vm);
                acc.m = vm;
            }
            if (acc.m > -INFINITY) {
#pragma unroll
                for (int k = 0; k < W; ++k) acc.s += expf(f[k] - acc.m);
            }
        });
        j0 = nv * W;
    }
    for (int64_t j = j0 + threadIdx.x; j < p.V; j += kHeadThreads) acc.add(to_f(row[j]));
#pragma unroll
    for (int o = 16; o > 0; o /= 2) {
        MaxSum other;
        other.m = __shfl_xor_sync(0xffffffffu, acc.m, o);
        other.s = __shfl_xor_sync(0xffffffffu, acc.s, o);
        acc.merge(other);
    }
    __shared__ MaxSum warps[kHeadThreads / 32];
    if ((threadIdx.x & 31) == 0) warps[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        MaxSum total = warps[0];
        for (int w = 1; w < kHeadThreads / 32; ++w) total.merge(warps[w]);
        p.lse[r] = total.m + logf(total.s);
        const int64_t t = p.targets[r];
        // An out-of-range target gives NaN rather than a read outside the row.
        p.picked[r] = (t >= 0 && t < p.V) ? to_f(row[t]) : NAN;
    }
}

template <typename T, bool Vec>
__global__ void __launch_bounds__(kHeadThreads) head_grad_kernel(HeadParams p) {
    const int64_t r = blockIdx.x;
    const T* row = static_cast<const T*>(p.logits) + r * p.ld;
    T* grow = static_cast<T*>(p.g) + r * p.ld;
    const float lse = p.lse[r], scale = *p.scale;
    const int64_t t = p.targets[r];
    auto grad = [&](float x, int64_t j) { return scale * (expf(x - lse) - (j == t ? 1.f : 0.f)); };
    int64_t j0 = 0;
    if constexpr (Vec) {
        constexpr int W = kVec<T>;
        const int64_t nv = p.ld / W;  // padding columns are written too (as zeros), so the whole row
        for_each_vector(row, nv, [&](const Pack<T, W>& x, int64_t v) {
            Pack<T, W> out;
#pragma unroll
            for (int k = 0; k < W; ++k) {
                const int64_t j = v * W + k;
                out.v[k] = from_f<T>(j < p.V ? grad(to_f(x.v[k]), j) : 0.f);
            }
            store_pack<T, W>(grow + v * W, out);
        });
        j0 = nv * W;
    }
    for (int64_t j = j0 + threadIdx.x; j < p.ld; j += kHeadThreads)
        grow[j] = from_f<T>(j < p.V ? grad(to_f(row[j]), j) : 0.f);
}

template <typename T>
void launch(const HeadParams& p, bool grad, cudaStream_t stream) {
    if (p.n == 0) return;
    if (p.n > 0x7fffffff) throw std::invalid_argument("head softmax: too many rows");
    const auto blocks = static_cast<unsigned>(p.n);
    const bool vec = rows_vectorisable<T>(p);
    if (grad) {
        if (vec) head_grad_kernel<T, true><<<blocks, kHeadThreads, 0, stream>>>(p);
        else head_grad_kernel<T, false><<<blocks, kHeadThreads, 0, stream>>>(p);
    } else {
        if (vec) head_lse_kernel<T, true><<<blocks, kHeadThreads, 0, stream>>>(p);
        else head_lse_kernel<T, false><<<blocks, kHeadThreads, 0, stream>>>(p);
    }
    HARMONIC_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void head_lse(const HeadParams& p, cudaStream_t stream) {
    p.t == DType::BF16 ? launch<bf16>(p, false, stream) : launch<float>(p, false, stream);
}

void head_softmax_grad(const HeadParams& p, cudaStream_t stream) {
    p.t == DType::BF16 ? launch<bf16>(p, true, stream) : launch<float>(p, true, stream);
}

}  // namespace harmonic::kernels::cuda
