#!/usr/bin/env bash
# One device call: GPU model checks + the CPU suites (fast on 16 cores) + the CLI test.
set -uo pipefail
OUT=${OUT:-/tmp/out}
bash bench/device/gpu_model_check.sh
./build/tests/test_model 2>&1 | tail -40 > "$OUT/test_model_all.log"
tail -5 "$OUT/test_model_all.log"
HARMONIC=./build/app/harmonic FIXTURES=tests/fixtures bash tests/cli_test.sh 2>&1 | tail -15 | tee "$OUT/cli_test.log"
