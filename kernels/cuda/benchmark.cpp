// The kernel benchmark behind `harmonic bench --kernels` and `bench_kernels`: the card's two
// ceilings (device-to-device copy bandwidth, bf16 matrix rate), then each CUDA scan's time and
// effective bandwidth (the bytes that must move / time) as a fraction of the measured copy
// bandwidth, next to the pure-LibTorch reference.
//
// Times are medians of CUDA-event-timed repetitions after warm-up; inputs rotate over several
// sets when one set would fit in L2. Bytes counted: every input read once, every output written
// once (status/checkpoint traffic of the kernels is not counted: it is overhead).
#include "kernels/cuda/benchmark.h"

#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/ops.h"
#include "kernels/kernel_tuning.h"
#include "kernels/level_scan.h"
#include "kernels/linear_scan.h"
#include "kernels/output_head.h"
#include "kernels/selective_scan.h"

namespace harmonic::kernels::cuda {

using torch::Tensor;
namespace hk = harmonic::kernels;
namespace hc = harmonic::kernels::cuda;

namespace {

std::ostringstream g_log;

void emit(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    g_log << line << "\n";
}

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Median time in ms of one call of f over `reps` samples after `warmup` calls; each sample times
// kCallsPerSample calls issued back to back between two events, so the host's work in a call
// (allocations, the launches) runs while the GPU executes the previous one, as in a model's step,
// and the time is the GPU's: each call's kernels and the gaps between them. Timing one
// synchronised call instead puts the host's preparation before the first kernel into every
// sample, a large share of a scan that takes a fraction of a millisecond. One call is issued
// before the first event for the same reason: without it the GPU idles from that event until the
// host has launched the sample's first call (docs/KERNELS.md § Measuring a change).
// A call that takes the host longer than the GPU still shows its gaps. f's argument counts
// calls, for rotating inputs.
constexpr int kCallsPerSample = 5;
double time_ms(const std::function<void(int)>& f, int warmup, int reps) {
    auto stream = at::cuda::getCurrentCUDAStream().stream();
    for (int i = 0; i < warmup; ++i) f(i);
    check(cudaStreamSynchronize(stream), "sync");
    cudaEvent_t e0, e1;
    check(cudaEventCreate(&e0), "event");
    check(cudaEventCreate(&e1), "event");
    std::vector<float> ts;
    int call = 0;
    for (int r = 0; r < reps; ++r) {
        f(call++);  // keeps the GPU busy while the host launches the sample's calls
        check(cudaEventRecord(e0, stream), "record");
        for (int k = 0; k < kCallsPerSample; ++k) f(call++);
        check(cudaEventRecord(e1, stream), "record");
        check(cudaEventSynchronize(e1), "sync");
        float ms = 0;
        check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
        ts.push_back(ms / kCallsPerSample);
    }
    check(cudaGetLastError(), "kernel");
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

double g_copy_gbs = 0;  // measured device-to-device copy bandwidth, GB/s (read + write)

// ref_ms: the reference's time for the same work (for a backward row: its forward + autograd backward).
void row(const std::string& name, double ms, double bytes, double ref_ms) {
    const double gbs = bytes / ms / 1e6;
    std::string r = fmt("%-52s %9.3f ms %8.0f GB/s %5.1f%% of copy", name.c_str(), ms, gbs, 100.0 * gbs / g_copy_gbs);
    if (ref_ms > 0) r += fmt("   reference %9.2f ms (x%.0f)", ref_ms, ref_ms / ms);
    emit(r);
}

int rotation(double bytes_per_set) { return bytes_per_set < 200e6 ? 4 : 1; }

// What every section of a run shares: the device, the repetitions and the lengths.
struct BenchRun {
    torch::TensorOptions dev;
    bool quick = false;
    int reps = 20;
    int64_t B = 2, C = 512;
    std::vector<int64_t> Ts;
};

// Two launches each of the kernels worth profiling, at T = 65536 (ncu -k regex:... -c N); no timing.
void profile_launches(const torch::TensorOptions& dev) {
    const int64_t B = 2, C = 512, T = 65536, E = 512, N = 16;
    auto a = torch::rand({B, T, C}, dev) * 0.5 + 0.5, b = torch::randn({B, T, C}, dev), dh = torch::randn({B, T, C}, dev);
    auto af = torch::rand({C}, dev) * 0.2 + 0.79, b16 = torch::randn({B, T, C}, dev).to(torch::kBFloat16);
    auto a16 = a.to(torch::kBFloat16), dh16 = dh.to(torch::kBFloat16);
    for (int r = 0; r < 2; ++r) {
        auto f = hc::scan_forward(hc::Cell::Linear, a, b, Tensor());
        hc::scan_backward(hc::Cell::Linear, a, b, Tensor(), f, dh, Tensor(), true);
        auto ff16 = hc::scan_forward(hc::Cell::Linear, af, b16, Tensor());
        hc::scan_backward(hc::Cell::Linear, af, b16, Tensor(), ff16, dh16, Tensor(), true);
        auto f16 = hc::scan_forward(hc::Cell::Linear, a16, b16, Tensor());
        hc::scan_backward(hc::Cell::Linear, a16, b16, Tensor(), f16, dh16, Tensor(), true);
        // The selective level cell (pre, u as in the benchmark's rows: N(0, 1), tau 32).
        auto s32 = hc::scan_forward(hc::Cell::Selective, b, dh, Tensor(), 32.0);
        hc::scan_backward(hc::Cell::Selective, b, dh, Tensor(), s32, b, Tensor(), true, 32.0);
        auto s16 = hc::scan_forward(hc::Cell::Selective, b16, dh16, Tensor(), 32.0);
        hc::scan_backward(hc::Cell::Selective, b16, dh16, Tensor(), s16, b16, Tensor(), true, 32.0);
    }
    auto x = torch::randn({B, T, E}, dev).to(torch::kBFloat16), d = (torch::rand({B, T, E}, dev) * 0.1).to(torch::kBFloat16);
    auto A = -torch::rand({E, N}, dev) * 8 - 1, Bm = torch::randn({B, T, N}, dev), Cm = torch::randn({B, T, N}, dev);
    // Mamba's scan: forward and backward in bf16, then in fp32 (ncu -k regex:sel_ -c 4).
    for (auto dt : {torch::kBFloat16, torch::kFloat32}) {
        auto xs = x.to(dt), ds = d.to(dt);
        auto f = hc::sel_forward(xs, ds, A, Bm, Cm, Tensor(), xs, Tensor());
        hc::sel_backward(xs, ds, A, Bm, Cm, Tensor(), xs, Tensor(), f, xs, Tensor());
    }
    check(cudaDeviceSynchronize(), "sync");
}

// The card's two ceilings; sets g_copy_gbs, which every later row is a fraction of.
void ceiling_rows(const BenchRun& run) {
    const auto& dev = run.dev;
    // Ceiling 1: device-to-device copy of 1 GiB (bytes read + bytes written).
    {
        const int64_t n = (int64_t(1) << 30) / 4;
        auto src = torch::randn({n}, dev), dst = torch::empty({n}, dev);
        const double ms = time_ms([&](int) { dst.copy_(src); }, 3, run.reps);
        g_copy_gbs = 2.0 * n * 4 / ms / 1e6;
        emit(fmt("ceiling: device-to-device copy 1 GiB: %.3f ms, %.0f GB/s (read + write)", ms, g_copy_gbs));
    }
    // Ceiling 2: bf16 matrix product 8192^3 on random data.
    {
        const int64_t n = 8192;
        auto a = torch::randn({n, n}, dev.dtype(torch::kBFloat16)), b = torch::randn({n, n}, dev.dtype(torch::kBFloat16));
        auto c = torch::empty({n, n}, dev.dtype(torch::kBFloat16));
        const double ms = time_ms([&](int) { torch::mm_out(c, a, b); }, 3, run.quick ? 5 : 10);
        emit(fmt("ceiling: bf16 matmul 8192^3: %.3f ms, %.0f TFLOP/s", ms, 2.0 * n * n * n / ms / 1e9));
    }
}

void linear_scan_rows(const BenchRun& run) {
    const auto& dev = run.dev;
    const int64_t B = run.B, C = run.C;
    const auto& Ts = run.Ts;
    const bool quick = run.quick;
    const int reps = run.reps;
    emit("");
    emit("linear scan h_t = a_t h_{t-1} + b_t, B=2 C=512 (bytes: a, b read once, h written once; backward: a, b, dh read, da, db written)");
    for (int64_t T : Ts) {
        for (bool per_token : {false, true}) {
            for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
                const double s = dt == torch::kBFloat16 ? 2 : 4, n = double(B) * T * C;
                const double sa = per_token ? (dt == torch::kBFloat16 ? 2 : 4) : 0;
                const int R = rotation(n * (s + sa));
                std::vector<Tensor> as, bs, dhs;
                for (int r = 0; r < R; ++r) {
                    as.push_back(per_token ? (torch::rand({B, T, C}, dev) * 0.5 + 0.5).to(dt)
                                           : torch::rand({C}, dev) * 0.2 + 0.79);
                    bs.push_back(torch::randn({B, T, C}, dev).to(dt));
                    dhs.push_back(torch::randn({B, T, C}, dev).to(dt));
                }
                auto h0 = torch::randn({B, C}, dev);
                const std::string tag = fmt("T=%-6lld %s %s", (long long)T, per_token ? "per-token" : "fixed    ",
                                            dt == torch::kBFloat16 ? "bf16" : "fp32");
                hc::ScanForward fw;
                const double f_ms = time_ms([&](int r) { fw = hc::scan_forward(hc::Cell::Linear, as[r % R], bs[r % R], h0); }, 3, reps);
                double ref_ms = -1;
                if (!quick || T == Ts.front())
                    ref_ms = time_ms([&](int r) { hk::linear_scan_reference(as[r % R], bs[r % R], h0); }, 1, 3);
                row("linear fwd " + tag, f_ms, n * (2 * s + sa), ref_ms);
                auto fw0 = hc::scan_forward(hc::Cell::Linear, as[0], bs[0], h0);
                const double b_ms = time_ms(
                    [&](int r) {
                        hc::scan_backward(hc::Cell::Linear, as[0], bs[0], h0, fw0, dhs[r % R], Tensor(), true);
                    },
                    3, reps);
                double refb_ms = -1;
                if (T == Ts.front()) {
                    torch::AutoGradMode grad(true);
                    auto a = as[0].clone().requires_grad_(true), b = bs[0].clone().requires_grad_(true);
                    refb_ms = time_ms(
                        [&](int r) {
                            auto h = hk::linear_scan_reference(a, b, h0);
                            torch::autograd::grad({h}, {a, b}, {dhs[r % R]});
                        },
                        1, 3);
                }
                row("linear bwd " + tag, b_ms, n * (3 * s + 2 * sa), refb_ms);
            }
        }
    }
}

// Variants of the linear and level scans' settings at the longest length: the look-back window
// (status words read per round trip) and the channels per thread of the forward, then the
// backward's inputs staged in shared memory (the default) or held in registers. Each variant runs
// under a KernelTuning changed in one field; the run's own tuning comes back after the section.
void linear_variant_rows(const BenchRun& run) {
    const auto& dev = run.dev;
    const int64_t B = run.B, C = run.C, T = run.Ts.back();
    const int reps = run.reps;
    const double n = double(B) * T * C;
    emit("");
    emit(fmt("look-back window (predecessors read per round trip; linear scan default 8), forward, T=%lld:", (long long)T));
    auto a = torch::rand({B, T, C}, dev) * 0.5 + 0.5, b = torch::randn({B, T, C}, dev);
    auto af = torch::rand({C}, dev) * 0.2 + 0.79, b16 = torch::randn({B, T, C}, dev).to(torch::kBFloat16);
    // Per-token fp32 and fixed bf16 forward rows under each value of one setting; `label` formats
    // the value into the row name.
    auto variant_rows = [&](int KernelTuning::*field, std::initializer_list<int> values, const char* label) {
        for (int value : values) {
            KernelTuning tuning = kernel_tuning();
            tuning.*field = value;
            const ScopedKernelTuning scoped(tuning);
            const std::string v = fmt(label, value);
            row("linear fwd per-token fp32, " + v,
                time_ms([&](int) { hc::scan_forward(hc::Cell::Linear, a, b, Tensor()); }, 3, reps), n * 12, -1);
            row("linear fwd fixed bf16, " + v,
                time_ms([&](int) { hc::scan_forward(hc::Cell::Linear, af, b16, Tensor()); }, 3, reps), n * 4, -1);
        }
    };
    variant_rows(&KernelTuning::lookback_window, {1, 4, 8}, "window %d");
    variant_rows(&KernelTuning::lin_fwd_vec, {2, 4}, "%d channels/thread");
    auto a16 = a.to(torch::kBFloat16), bb16 = b.to(torch::kBFloat16), dh16 = torch::randn({B, T, C}, dev).to(torch::kBFloat16);
    auto dh32 = torch::randn({B, T, C}, dev);
    auto f16 = hc::scan_forward(hc::Cell::Linear, a16, bb16, Tensor()), ff16 = hc::scan_forward(hc::Cell::Linear, af, b16, Tensor());
    auto f32 = hc::scan_forward(hc::Cell::Linear, a, b, Tensor()), ff32 = hc::scan_forward(hc::Cell::Linear, af, b, Tensor());
    auto g16 = hc::scan_forward(hc::Cell::GatedEma, a16, bb16, Tensor(), 32.0);
    auto s16 = hc::scan_forward(hc::Cell::Selective, a16, bb16, Tensor(), 32.0);
    for (bool stage : {false, true}) {
        KernelTuning tuning = kernel_tuning();
        tuning.lin_bwd_stage = stage;
        const ScopedKernelTuning scoped(tuning);
        const std::string how = stage ? "inputs staged" : "inputs in registers";
        auto bwd_row = [&](const std::string& name, hc::Cell cell, const Tensor& pa, const Tensor& pb,
                           const hc::ScanForward& f, const Tensor& dh, double bytes) {
            row(name + ", " + how,
                time_ms([&](int) { hc::scan_backward(cell, pa, pb, Tensor(), f, dh, Tensor(), true, 32.0); }, 3, reps),
                n * bytes, -1);
        };
        bwd_row("linear bwd per-token fp32", hc::Cell::Linear, a, b, f32, dh32, 20);
        bwd_row("linear bwd fixed fp32", hc::Cell::Linear, af, b, ff32, dh32, 12);
        bwd_row("linear bwd per-token bf16", hc::Cell::Linear, a16, bb16, f16, dh16, 10);
        bwd_row("linear bwd fixed bf16", hc::Cell::Linear, af, b16, ff16, dh16, 6);
        bwd_row("level bwd gated_ema bf16", hc::Cell::GatedEma, a16, bb16, g16, dh16, 10);
        bwd_row("level bwd selective bf16", hc::Cell::Selective, a16, bb16, s16, dh16, 10);
    }
}

void level_cell_rows(const BenchRun& run) {
    const auto& dev = run.dev;
    const int64_t B = run.B, C = run.C;
    const int reps = run.reps;
    emit("");
    emit("fused Harmonic level cell (pre, u read; h written; backward: pre, u, dh read, dpre, du written), B=2 D=512, tau=32");
    for (int64_t T : run.Ts) {
        for (bool selective : {false, true}) {
            for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
                const double s = dt == torch::kBFloat16 ? 2 : 4, n = double(B) * T * C;
                const int R = rotation(n * 2 * s);
                std::vector<Tensor> ps, us, dhs;
                for (int r = 0; r < R; ++r) {
                    ps.push_back(torch::randn({B, T, C}, dev).to(dt));
                    us.push_back(torch::randn({B, T, C}, dev).to(dt));
                    dhs.push_back(torch::randn({B, T, C}, dev).to(dt));
                }
                const auto cell = selective ? hc::Cell::Selective : hc::Cell::GatedEma;
                const std::string tag = fmt("T=%-6lld %s %s", (long long)T, selective ? "selective" : "gated_ema",
                                            dt == torch::kBFloat16 ? "bf16" : "fp32");
                const double f_ms = time_ms([&](int r) { hc::scan_forward(cell, ps[r % R], us[r % R], Tensor(), 32.0); }, 3, reps);
                // The unfused LibTorch path of the model (elementwise a, b, then the CUDA linear scan).
                const double u_ms = time_ms(
                    [&](int r) {
                        const auto& pre = ps[r % R];
                        const auto& u = us[r % R];
                        Tensor a, b;
                        if (selective) {
                            a = torch::exp(-torch::nn::functional::softplus(pre.to(torch::kFloat32)) / 32.0);
                            b = (1.0 - a) * u;
                        } else {
                            const double decay = std::exp(-1.0 / 32.0);
                            a = torch::full({C}, decay, u.options().dtype(torch::kFloat32));
                            b = (1.0 - decay) * torch::sigmoid(pre) * u;
                        }
                        hk::linear_scan(a, b, Tensor());
                    },
                    2, reps);
                row("level fwd " + tag, f_ms, n * 3 * s, -1);
                emit(fmt("    unfused (LibTorch elementwise + CUDA linear scan): %.3f ms (fused is x%.1f)", u_ms, u_ms / f_ms));
                auto fw0 = hc::scan_forward(cell, ps[0], us[0], Tensor(), 32.0);
                const double b_ms = time_ms(
                    [&](int r) { hc::scan_backward(cell, ps[0], us[0], Tensor(), fw0, dhs[r % R], Tensor(), true, 32.0); }, 3,
                    reps);
                row("level bwd " + tag, b_ms, n * 5 * s, -1);
            }
        }
    }
}

void selective_scan_rows(const BenchRun& run) {
    const auto& dev = run.dev;
    const int64_t B = run.B;
    const bool quick = run.quick;
    const int reps = run.reps;
    const auto& Ts = run.Ts;
    emit("");
    emit("selective scan (Mamba), B=2 E=512 N=16, delta in the dtype of x; bytes: x, delta, z read + y written "
         "(+ B, C fp32); backward: x, delta, z, dy read, dx, ddelta, dz written (+ B, C read, dB, dC written)");
    for (int64_t T : Ts) {
        for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
            const int64_t E = 512, N = 16;
            const double s = dt == torch::kBFloat16 ? 2 : 4, n = double(B) * T * E, nbc = double(B) * T * N * 4;
            const int R = rotation(n * 3 * s);
            std::vector<Tensor> xs, ds, zs, dys;
            for (int r = 0; r < R; ++r) {
                xs.push_back(torch::randn({B, T, E}, dev).to(dt));
                ds.push_back((torch::rand({B, T, E}, dev) * 0.1 + 1e-3).to(dt));
                zs.push_back(torch::randn({B, T, E}, dev).to(dt));
                dys.push_back(torch::randn({B, T, E}, dev).to(dt));
            }
            auto A = -(torch::arange(1, N + 1, dev.dtype(torch::kFloat32)).unsqueeze(0).expand({E, N}).contiguous());
            auto Bm = torch::randn({B, T, N}, dev), Cm = torch::randn({B, T, N}, dev), D = torch::randn({E}, dev);
            auto h0 = torch::randn({B, E, N}, dev);
            const std::string tag = fmt("T=%-6lld %s", (long long)T, dt == torch::kBFloat16 ? "bf16" : "fp32");
            const double f_ms =
                time_ms([&](int r) { hc::sel_forward(xs[r % R], ds[r % R], A, Bm, Cm, D, zs[r % R], h0); }, 3, reps);
            double ref_ms = -1;
            if (T <= 32768 && (!quick || T == Ts.front()))
                ref_ms = time_ms([&](int r) { hk::selective_scan_reference(xs[r % R], ds[r % R], A, Bm, Cm, D, zs[r % R], h0); }, 1, 2);
            row("selective fwd " + tag, f_ms, n * 4 * s + 2 * nbc, ref_ms);
            auto fw0 = hc::sel_forward(xs[0], ds[0], A, Bm, Cm, D, zs[0], h0);
            const double b_ms = time_ms(
                [&](int r) { hc::sel_backward(xs[0], ds[0], A, Bm, Cm, D, zs[0], h0, fw0, dys[r % R], Tensor()); }, 3, reps);
            double refb_ms = -1;
            if (T == 8192) {
                torch::AutoGradMode grad(true);
                auto x = xs[0].clone().requires_grad_(true), d = ds[0].clone().requires_grad_(true);
                refb_ms = time_ms(
                    [&](int r) {
                        auto y = hk::selective_scan_reference(x, d, A, Bm, Cm, D, zs[0], h0).y;
                        torch::autograd::grad({y}, {x, d}, {dys[r % R]});
                    },
                    1, 2);
            }
            row("selective bwd " + tag, b_ms, n * 7 * s + 4 * nbc, refb_ms);
        }
    }
}

// The two selective-scan block shapes (chunks of 64 steps: backward 8 warps, two blocks per SM,
// forward 4 × 16 steps; chunks of 128: backward 16 warps, one block, forward 8 × 16).
void selective_variant_rows(const BenchRun& run) {
    const auto& dev = run.dev;
    const int64_t B = run.B, T = run.Ts.back(), E = 512, N = 16;
    const int reps = run.reps;
    emit("");
    emit(fmt("selective scan block shape, T=%lld (default 8 backward warps = 2 blocks/SM; 16 = 1 block/SM):", (long long)T));
    auto A = -(torch::arange(1, N + 1, dev.dtype(torch::kFloat32)).unsqueeze(0).expand({E, N}).contiguous());
    auto Bm = torch::randn({B, T, N}, dev), Cm = torch::randn({B, T, N}, dev), D = torch::randn({E}, dev);
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
        auto x = torch::randn({B, T, E}, dev).to(dt), d = (torch::rand({B, T, E}, dev) * 0.1 + 1e-3).to(dt);
        auto z = torch::randn({B, T, E}, dev).to(dt), dy = torch::randn({B, T, E}, dev).to(dt);
        const double s = dt == torch::kBFloat16 ? 2 : 4, n = double(B) * T * E, nbc = double(B) * T * N * 4;
        for (int warps : {16, 8}) {
            KernelTuning tuning = kernel_tuning();
            tuning.sel_warps = warps;
            const ScopedKernelTuning scoped(tuning);
            const double f_ms = time_ms([&](int) { hc::sel_forward(x, d, A, Bm, Cm, D, z, Tensor()); }, 2, reps);
            auto fw = hc::sel_forward(x, d, A, Bm, Cm, D, z, Tensor());
            const double b_ms =
                time_ms([&](int) { hc::sel_backward(x, d, A, Bm, Cm, D, z, Tensor(), fw, dy, Tensor()); }, 2, reps);
            const char* tn = dt == torch::kBFloat16 ? "bf16" : "fp32";
            row(fmt("selective fwd %s, %d warps", tn, warps), f_ms, n * 4 * s + 2 * nbc, -1);
            row(fmt("selective bwd %s, %d warps", tn, warps), b_ms, n * 7 * s + 4 * nbc, -1);
        }
    }
}

// The output head at the paper's configuration: the log-sum-exp of (2·T, 256) · (50,257, 256)ᵀ
// by the fused kernel (no logits), against the chunked head's two steps on one chunk of the
// same rows: cuBLAS's GEMM writing bf16 logits (the weight padded to 50,304) and head_lse.
void output_head_rows(const BenchRun& run) {
    const auto& dev = run.dev;
    const int reps = run.reps;
    const int64_t d = 256, V = 50257, Vp = 50304;
    emit("");
    emit("output head, d=256 V=50257 bf16 (TFLOP/s: 2·rows·V·d over the time; % of the bf16 matmul ceiling above)");
    std::vector<int64_t> Ns = {2 * 1024, 2 * 8192, 2 * 32768};
    if (run.quick) Ns = {2 * 8192, 2 * 32768};
    auto w = (torch::randn({V, d}, dev) * 0.05).to(torch::kBFloat16);
    auto wp = torch::cat({w, torch::zeros({Vp - V, d}, dev.dtype(torch::kBFloat16))});
    for (int64_t N : Ns) {
        auto f = torch::randn({N, d}, dev).to(torch::kBFloat16);
        auto t = torch::randint(0, V, {N}, dev.dtype(torch::kLong));
        const double flop = 2.0 * N * V * d;
        const double fused_ms = time_ms([&](int) { hk::head_lse_fused(f, w, t); }, 3, reps);
        auto logits = torch::empty({N, Vp}, dev.dtype(torch::kBFloat16));
        const double gemm_ms = time_ms([&](int) { torch::mm_out(logits, f, wp.t()); }, 3, reps);
        const double lse_ms = time_ms([&](int) { hk::head_lse(logits, V, t); }, 3, reps);
        emit(fmt("rows=%-6lld fused lse+target %7.3f ms %4.0f TFLOP/s | GEMM writing logits %7.3f ms %4.0f TFLOP/s "
                 "+ head_lse %7.3f ms = %7.3f ms%s",
                 (long long)N, fused_ms, flop / fused_ms / 1e9, gemm_ms, flop / gemm_ms / 1e9, lse_ms,
                 gemm_ms + lse_ms, hk::head_lse_fused_applies(f, w) ? "" : "  (fused kernel not applicable: reference)"));
    }
}

}  // namespace

void run_kernel_benchmark(const KernelBenchmarkOptions& options) {
    if (!torch::cuda::is_available()) throw std::runtime_error("the kernel benchmark needs a CUDA GPU, and none was found");
    g_log.str("");
    torch::NoGradGuard no_grad;
    BenchRun run;
    run.dev = torch::TensorOptions().device(torch::kCUDA);
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "props");
    if (options.profile) {
        profile_launches(run.dev);
        return;
    }
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    emit(fmt("card: %s, %d SMs, L2 %d MB, %.1f GB; %s", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20,
             prop.totalGlobalMem / 1e9, date));
    run.quick = options.quick;
    run.reps = options.quick ? 5 : 20;
    run.Ts = options.quick ? std::vector<int64_t>{8192, 65536} : std::vector<int64_t>{8192, 32768, 65536};

    ceiling_rows(run);
    linear_scan_rows(run);
    linear_variant_rows(run);
    level_cell_rows(run);
    selective_scan_rows(run);
    selective_variant_rows(run);
    output_head_rows(run);

    if (!options.out.empty()) {
        std::ofstream file(options.out);
        file << g_log.str();
        if (!file.flush()) throw std::runtime_error(options.out + ": cannot be written");
        std::printf("written to %s\n", options.out.c_str());
    }
}

}  // namespace harmonic::kernels::cuda
