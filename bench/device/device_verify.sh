#!/usr/bin/env bash
# GPU machine: build the non-GUI targets and run every non-GUI suite, each under a time limit,
# logging straight into $OUT so that a timeout still brings the logs back.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
. bench/device/device_lib.sh
device_env
device_configure "$OUT" || exit 1
timeout 170 ninja -k 0 -C build harmonic test_model test_core >"$OUT/build.log" 2>&1
grep -E "error|FAILED" "$OUT/build.log" | head -20
timeout 30 ./build/tests/test_core >"$OUT/test_core.log" 2>&1; tail -2 "$OUT/test_core.log"
timeout 120 ./build/tests/test_model -d yes "[gpu],[kernels],[model],[checkpoint],[scan]" >"$OUT/test_model.log" 2>&1; echo "test_model rc $?"; tail -3 "$OUT/test_model.log"
HARMONIC=./build/app/harmonic FIXTURES=tests/fixtures timeout 60 bash tests/cli_test.sh >"$OUT/cli_test.log" 2>&1; tail -1 "$OUT/cli_test.log"
