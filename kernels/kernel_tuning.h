// The kernels' tuning settings: which variant of a scan kernel runs, read once from the environment
// (docs/KERNELS.md § Settings). The defaults are the measured best; the others exist to time or
// test the alternatives. No LibTorch, no CUDA: the settings are checked in every build.
#pragma once

namespace harmonic::kernels {

struct KernelTuning {
    // HARMONIC_SCAN_SCRATCH=fill: every scan launch gets its own zero-filled scratch, as a launch
    // in a CUDA graph capture does, instead of the scratch kept per (device, stream).
    bool scratch_per_launch = false;
    // HARMONIC_LOOKBACK_WINDOW, 1..8: status words a look-back reads per round trip (kLookbackBatch).
    int lookback_window = 8;
    // HARMONIC_LIN_VEC, 1, 2 or 4: channels a thread in the linear and level forward.
    int lin_fwd_vec = 4;
    // HARMONIC_LIN_BWD_VEC, 1, 2 or 4: channels a thread in the linear and level backward; 0 (unset)
    // picks 4 with bf16 inputs and 2 with fp32 ones, and 4 applies only to bf16 inputs (fp32 inputs
    // at 4 channels do not fit the registers), so fp32 inputs run 2 under it.
    int lin_bwd_vec = 0;
    // HARMONIC_LIN_STAGE, 0 or 1: the linear and level backward stage their inputs in shared memory
    // (1) or keep them in registers (0).
    bool lin_bwd_stage = true;
    // HARMONIC_SEL_WARPS, 8 or 16: warps a selective-scan backward block (kSelWarps; the forward
    // runs half as many at twice the steps).
    int sel_warps = 8;
    // HARMONIC_HEAD_GEMM, 0 or 1: the fused GEMM + log-sum-exp of the output head (1) or the
    // chunked head (0).
    bool head_gemm = true;

    // Reads every setting from the environment; an unset or empty variable keeps its default, any
    // other value outside the accepted ones throws Error naming the variable and what it accepts.
    static KernelTuning from_environment();
};

// The settings every kernel launch of this process uses: read from the environment on first use
// (which throws Error for a bad value), or the value given to set_kernel_tuning.
KernelTuning kernel_tuning();
void set_kernel_tuning(const KernelTuning& tuning);

// Sets the tuning for a scope and puts the previous one back at its end (the benchmark's variant
// rows, tests that run a variant).
class ScopedKernelTuning {
public:
    explicit ScopedKernelTuning(const KernelTuning& tuning) : previous_(kernel_tuning()) { set_kernel_tuning(tuning); }
    ~ScopedKernelTuning() { set_kernel_tuning(previous_); }
    ScopedKernelTuning(const ScopedKernelTuning&) = delete;
    ScopedKernelTuning& operator=(const ScopedKernelTuning&) = delete;

private:
    KernelTuning previous_;
};

}  // namespace harmonic::kernels
