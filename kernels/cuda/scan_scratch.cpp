// The scan scratch (scan_scratch.h). Kept per device and stream, grown (a new zero-filled buffer)
// when a launch needs more. A launch in a CUDA graph capture gets a buffer of its own, zero-filled
// by the graph: a graph may be replayed on another stream, concurrently with eager launches on its
// capture stream, which would then share one epoch. So does a launch above kScratchMaxHalf words
// (Mamba's scan beyond ~2 × 16K tokens: two halves kept for it would hold 2 × 64 MB), and every
// launch under HARMONIC_SCAN_SCRATCH=fill (benchmark and test knob).
#include "kernels/cuda/scan_scratch.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

namespace harmonic::kernels::cuda {

namespace {

constexpr int64_t kScratchMaxHalf = int64_t(1) << 23;

// Capacity rounded up to a power of two (at least `least`), so growth happens a few times at most.
int64_t capacity_for(int64_t n, int64_t least) {
    int64_t c = least;
    while (c < n) c *= 2;
    return c;
}

}  // namespace

ScratchLease scan_scratch(int64_t words, int64_t acc, const torch::TensorOptions& opts, bool per_launch) {
    using torch::Tensor;
    const cudaStream_t s = at::cuda::getCurrentCUDAStream().stream();
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
    if (capture != cudaStreamCaptureStatusNone || words > kScratchMaxHalf || per_launch) {
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

}  // namespace harmonic::kernels::cuda
