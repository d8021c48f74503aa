#include "kernels/kernel_tuning.h"

#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>

#include "kernels/error.h"

namespace harmonic::kernels {

KernelTuning KernelTuning::from_environment() {
    KernelTuning t;
    if (const char* e = std::getenv("HARMONIC_SCAN_SCRATCH"); e && *e) {
        if (std::string(e) != "fill")
            throw Error(std::string("environment variable HARMONIC_SCAN_SCRATCH='") + e + "': expected 'fill' or unset");
        t.scratch_per_launch = true;
    }
    t.lookback_window = static_cast<int>(env_number("HARMONIC_LOOKBACK_WINDOW", t.lookback_window, 1, 8, true));
    t.lin_fwd_vec = env_choice("HARMONIC_LIN_VEC", t.lin_fwd_vec, {1, 2, 4});
    t.lin_bwd_vec = env_choice("HARMONIC_LIN_BWD_VEC", t.lin_bwd_vec, {1, 2, 4});
    t.lin_bwd_stage = env_choice("HARMONIC_LIN_STAGE", 1, {0, 1}) == 1;
    t.sel_warps = env_choice("HARMONIC_SEL_WARPS", t.sel_warps, {8, 16});
    t.head_gemm = env_choice("HARMONIC_HEAD_GEMM", 1, {0, 1}) == 1;
    return t;
}

namespace {

std::mutex g_mutex;
std::optional<KernelTuning> g_tuning;  // empty until first read or set

}  // namespace

KernelTuning kernel_tuning() {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_tuning) g_tuning = KernelTuning::from_environment();
    return *g_tuning;
}

void set_kernel_tuning(const KernelTuning& tuning) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_tuning = tuning;
}

}  // namespace harmonic::kernels
