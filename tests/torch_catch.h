// Include this instead of <catch2/catch.hpp> in tests that use LibTorch. LibTorch's logging header
// defines a glog-style CHECK macro that aborts the process; included after Catch it would silently
// replace Catch's CHECK. Including LibTorch first and dropping its CHECK keeps Catch's.
#pragma once

#include <torch/torch.h>

#undef CHECK
#include <catch2/catch.hpp>

// GPU tests ([gpu]) start with `if (!have_cuda_gpu()) return;`. Under CTest they never get here
// without a GPU (tests/model_main.cpp skips them first); run by hand, they return with a warning.
inline bool have_cuda_gpu() {
    if (torch::cuda::is_available()) return true;
    WARN("no CUDA GPU on this machine: GPU test not run here (it runs on the GPU machine)");
    return false;
}

// Runs LibTorch's CPU operators on one thread for its lifetime and restores the previous count.
// Tiny models train several times faster on one thread than on two busy ones, and a bitwise
// comparison of two forwards must not depend on how intra-op work was split between threads.
struct OneThread {
    int previous = torch::get_num_threads();
    OneThread() { torch::set_num_threads(1); }
    ~OneThread() { torch::set_num_threads(previous); }
    OneThread(const OneThread&) = delete;
    OneThread& operator=(const OneThread&) = delete;
};
