// The scan scratch's host side: which buffer of control and status words a scan launch gets
// (launch.h, ScanScratch; the protocol the kernels follow is in common.cuh, request_ticket).
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "kernels/cuda/launch.h"

namespace harmonic::kernels::cuda {

// A launch's scratch and the buffer behind it: `keep` holds the buffer until the call returns (the
// caching allocator reuses memory freed on a stream only after the work queued on it).
struct ScratchLease {
    ScanScratch s;
    torch::Tensor keep;
};

// Scratch for a launch on the current stream of `opts`' device writing `words` status words and
// keeping `acc` accumulators. Kept per device and stream, so that consecutive launches need no zero
// fill between them; a fresh zero-filled buffer inside a CUDA graph capture, above
// kScratchMaxHalf words, or for every launch when `per_launch` (KernelTuning::scratch_per_launch).
ScratchLease scan_scratch(int64_t words, int64_t acc, const torch::TensorOptions& opts, bool per_launch);

}  // namespace harmonic::kernels::cuda
