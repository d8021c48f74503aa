// The kernels' tuning settings (kernels/kernel_tuning.h): read strictly from the environment, a bad
// value an error that names the variable and what it accepts.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "kernels/error.h"
#include "kernels/kernel_tuning.h"

using harmonic::Error;
using harmonic::kernels::KernelTuning;
using Catch::Matchers::Contains;

namespace {

// Sets one variable for a scope, then unsets it.
struct EnvValue {
    const char* name;
    EnvValue(const char* n, const char* value) : name(n) { setenv(n, value, 1); }
    ~EnvValue() { unsetenv(name); }
};

}  // namespace

TEST_CASE("kernel tuning: defaults when the settings are unset", "[kernels]") {
    const KernelTuning t = KernelTuning::from_environment();
    CHECK_FALSE(t.scratch_per_launch);
    CHECK(t.lookback_window == 8);
    CHECK(t.lin_fwd_vec == 4);
    CHECK(t.lin_bwd_vec == 0);
    CHECK(t.lin_bwd_stage);
    CHECK(t.sel_warps == 8);
    CHECK(t.head_gemm);
}

TEST_CASE("kernel tuning: accepted values are read", "[kernels]") {
    const EnvValue a("HARMONIC_SEL_WARPS", "16"), b("HARMONIC_LOOKBACK_WINDOW", "3"), c("HARMONIC_LIN_STAGE", "0"),
        d("HARMONIC_SCAN_SCRATCH", "fill"), e("HARMONIC_LIN_BWD_VEC", "1"), f("HARMONIC_HEAD_GEMM", "0"),
        g("HARMONIC_LIN_VEC", "2");
    const KernelTuning t = KernelTuning::from_environment();
    CHECK(t.sel_warps == 16);
    CHECK(t.lookback_window == 3);
    CHECK_FALSE(t.lin_bwd_stage);
    CHECK(t.scratch_per_launch);
    CHECK(t.lin_bwd_vec == 1);
    CHECK_FALSE(t.head_gemm);
    CHECK(t.lin_fwd_vec == 2);
}

TEST_CASE("kernel tuning: a bad value is an error naming the variable and the accepted values", "[kernels]") {
    SECTION("not a number") {
        const EnvValue v("HARMONIC_SEL_WARPS", "abc");
        CHECK_THROWS_MATCHES(KernelTuning::from_environment(), Error,
                             Catch::Matchers::Message("environment variable HARMONIC_SEL_WARPS='abc': expected one of 8, 16"));
    }
    SECTION("a number not accepted") {
        const EnvValue v("HARMONIC_SEL_WARPS", "12");
        CHECK_THROWS_WITH(KernelTuning::from_environment(), Contains("HARMONIC_SEL_WARPS") && Contains("8, 16"));
    }
    SECTION("out of range, formerly clamped") {
        const EnvValue v("HARMONIC_LOOKBACK_WINDOW", "9");
        CHECK_THROWS_WITH(KernelTuning::from_environment(),
                          Contains("HARMONIC_LOOKBACK_WINDOW='9'") && Contains("an integer in [1, 8]"));
    }
    SECTION("trailing characters") {
        const EnvValue v("HARMONIC_LIN_VEC", "4x");
        CHECK_THROWS_WITH(KernelTuning::from_environment(), Contains("HARMONIC_LIN_VEC") && Contains("1, 2, 4"));
    }
    SECTION("a switch that is neither 0 nor 1") {
        const EnvValue v("HARMONIC_LIN_STAGE", "no");
        CHECK_THROWS_WITH(KernelTuning::from_environment(), Contains("HARMONIC_LIN_STAGE") && Contains("0, 1"));
    }
    SECTION("an unknown scratch mode") {
        const EnvValue v("HARMONIC_SCAN_SCRATCH", "zero");
        CHECK_THROWS_WITH(KernelTuning::from_environment(), Contains("HARMONIC_SCAN_SCRATCH") && Contains("'fill'"));
    }
}
