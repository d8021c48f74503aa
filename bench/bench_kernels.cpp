// bench_kernels [--out FILE] [--quick] [--profile]: the kernel benchmark without the model library
// (it builds in a minute on the GPU machine); `harmonic bench --kernels` runs the same report.
#include <cstdio>
#include <exception>
#include <string>

#include "kernels/cuda/benchmark.h"

int main(int argc, char** argv) {
    harmonic::kernels::cuda::KernelBenchmarkOptions options;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--out" && i + 1 < argc) options.out = argv[++i];
        else if (a == "--quick") options.quick = true;
        else if (a == "--profile") options.profile = true;
        else {
            std::printf("usage: bench_kernels [--out FILE] [--quick] [--profile]\n");
            return a == "--help" ? 0 : 2;
        }
    }
    try {
        harmonic::kernels::cuda::run_kernel_benchmark(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_kernels: %s\n", e.what());
        return 1;
    }
    return 0;
}
