// The kernel benchmark (`harmonic bench --kernels`, `bench_kernels`): ceilings of the card, then
// time and effective bandwidth of every CUDA scan. Only present when
// built with HARMONIC_WITH_CUDA_KERNELS.
#pragma once

#include <string>

namespace harmonic::kernels::cuda {

struct KernelBenchmarkOptions {
    std::string out;       // also write the report to this file (empty: stdout only)
    bool quick = false;    // fewer lengths and repetitions
    bool profile = false;  // a few launches of each kernel worth profiling, no timing (for ncu)
};

// Prints the report line by line; throws std::runtime_error without a CUDA GPU or when `out`
// cannot be written.
void run_kernel_benchmark(const KernelBenchmarkOptions& options);

}  // namespace harmonic::kernels::cuda
