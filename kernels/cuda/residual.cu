// A Harmonic block's residual stream in one pass (launch.h, ResidualParams; kernels/residual.h):
// out = x + y + Σ_l up_l(ext_l). Why a kernel: in LibTorch this is an add for x + y and then, per
// coarse level, a broadcast add over runs of tokens that LibTorch runs on its unvectorised
// elementwise path (well under the copy bandwidth), each a
// full read and write of the fp32 stream. Here x and y are read once and out written once; the
// coarse rows (4 and 16 times fewer) come from cache. The sums are formed in the reference's order
// (x + y first, then the levels in turn), so the result is bitwise the reference's.
#include <stdexcept>

#include "kernels/cuda/common.cuh"

namespace harmonic::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <typename TY, int V>
__global__ void __launch_bounds__(kThreads) residual_kernel(ResidualParams p) {
    const int dv = static_cast<int>(p.d / V);
    // Rows per block: several short rows share a block; a long row is looped over.
    const int per_block = dv >= kThreads ? 1 : kThreads / dv;
    const int local = threadIdx.x / (dv >= kThreads ? kThreads : dv);
    const int64_t row = int64_t(blockIdx.x) * per_block + local;
    if (local >= per_block || row >= p.B * p.C) return;
    const int64_t j = row % p.C, b = row / p.C;
    int64_t erow[kResidualMaxLevels];
#pragma unroll
    for (int l = 0; l < kResidualMaxLevels; ++l)
        if (l < p.levels) erow[l] = (b * p.rows[l] + (p.pos0 + j + 1) / p.stride[l] - p.pos0 / p.stride[l]) * p.d;
    const TY* y = static_cast<const TY*>(p.y);
    const int step = dv >= kThreads ? kThreads : dv;
    for (int c = threadIdx.x % step; c < dv; c += step) {
        const int64_t off = row * p.d + int64_t(c) * V;
        const Pack<float, V> xv = load_pack<float, V>(p.x + off);
        const Pack<TY, V> yv = load_pack<TY, V>(y + off);
        Pack<float, V> o;
#pragma unroll
        for (int v = 0; v < V; ++v) o.v[v] = xv.v[v] + to_f(yv.v[v]);
#pragma unroll
        for (int l = 0; l < kResidualMaxLevels; ++l) {
            if (l < p.levels) {
                const Pack<TY, V> e = load_pack<TY, V>(static_cast<const TY*>(p.ext[l]) + erow[l] + int64_t(c) * V);
#pragma unroll
                for (int v = 0; v < V; ++v) o.v[v] += to_f(e.v[v]);
            }
        }
        store_pack<float, V>(p.out + off, o);
    }
}

template <typename TY>
void launch(const ResidualParams& p, cudaStream_t stream) {
    const int64_t rows = p.B * p.C;
    if (rows == 0 || p.d == 0) return;
    const int64_t dv = p.d / p.vec;
    const int64_t per_block = dv >= kThreads ? 1 : kThreads / dv;
    const int64_t blocks = (rows + per_block - 1) / per_block;
    if (blocks > 0x7fffffff) throw std::invalid_argument("residual_upsample_sum: too many rows");
    if (p.vec == 4) residual_kernel<TY, 4><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    else residual_kernel<TY, 1><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    HARMONIC_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void residual_upsample_sum(const ResidualParams& p, cudaStream_t stream) {
    if (p.levels > kResidualMaxLevels) throw std::invalid_argument("residual_upsample_sum: too many levels");
    p.ty == DType::BF16 ? launch<bf16>(p, stream) : launch<float>(p, stream);
}

}  // namespace harmonic::kernels::cuda
