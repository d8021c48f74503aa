#!/usr/bin/env bash
# On the GPU machine, one call (carry ".deps"): build the non-GUI targets, run the output head's
# GPU tests, then Harmonic's scoring forward (`--head fused`) with the fused log-sum-exp kernel and
# without it (HARMONIC_HEAD_GEMM=0: the chunked GEMM + softmax passes), the forward with logits,
# the training step, all in one run, and ncu's GPU time per kernel of scoring at 32K.
# Logs under $OUT/head/, packed into $OUT/head.tgz. Usage: bash bench/device/head_device.sh [kernels | probe]
# (kernels: also `harmonic bench --kernels --quick`; probe: ncu sections of the fused kernel alone).
# TESTS="[gpu],..." picks the test_model tags (default "[head],[optim]").
set -uo pipefail
OUT=${OUT:-/tmp/out}
L=$OUT/head
mkdir -p "$L"
export LD_LIBRARY_PATH=$PWD/.deps/lib:${LD_LIBRARY_PATH:-}
trap 'tar -C "$OUT" -czf "$OUT/head.tgz" head' EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$L/gpu.txt"
date -u >>"$L/gpu.txt"
. bench/device/device_lib.sh
device_build "$L" harmonic test_model || exit 1
echo "built at ${SECONDS}s"
TESTS=${TESTS:-[head],[optim]}
timeout 300 ./build/tests/test_model "$TESTS" >"$L/test_head.log" 2>&1
echo "test_model $TESTS: exit $?"; tail -3 "$L/test_head.log"
grep -E "^\[kernels\] fused head" "$L/test_head.log" | head -20
H=./build/app/harmonic
M28="--d-model 256 --vocab-size 50257 --precision bf16"
run() { echo "\$ $*" >>"$L/bench.log"; timeout 150 "$@" >>"$L/bench.log" 2>&1; echo >>"$L/bench.log"; }
S="--seq-len 1024,8192,32768,65536 --batch 2"
run $H bench --model harmonic,transformer,mamba $M28 $S --head fused --out "$L/score.csv"
run $H bench --model harmonic $M28 $S --head fused --no-cuda-graph --out "$L/score_eager.csv"
run env HARMONIC_HEAD_GEMM=0 $H bench --model harmonic $M28 $S --head fused --out "$L/score_chunked.csv"
run $H bench --model harmonic,transformer,mamba $M28 $S --out "$L/forward.csv"
run $H bench --model harmonic $M28 $S --no-cuda-graph --out "$L/forward_eager.csv"
run $H bench --model harmonic $M28 --seq-len 8192 --batch 2 --train --head fused --out "$L/train_fused.csv"
echo "benches done at ${SECONDS}s"; grep -E "^(\\$|harmonic )" "$L/bench.log"
P="$M28 --batch 2 --warmup 1 --repeats 1"
timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv $H bench --model harmonic $P --seq-len 32768 --head fused \
  >"$L/profile_score32k.csv" 2>"$L/profile_score32k.err"
echo "profile: exit $?"
python3 scripts/dev/ncu_summary.py "$L/profile_score32k.csv" 2>&1 | head -30
if [ "${1:-}" = probe ]; then
  nvcc -std=c++17 -DHARMONIC_HAVE_SM90A -gencode=arch=compute_90a,code=sm_90a -O3 --expt-relaxed-constexpr -lineinfo -I. \
    bench/experiments/head_lse_probe.cu -lcublas -o "$L/probe"
  timeout 120 ncu --clock-control none -k regex:head_lse_gemm -s 2 -c 1 --section SpeedOfLight --section ComputeWorkloadAnalysis \
    --section MemoryWorkloadAnalysis --section WarpStateStats "$L/probe" 65536 50257 256 1 3 >"$L/ncu_probe.txt" 2>&1
  echo "ncu probe: exit $?"; grep -E "Throughput|Pipe|Busy|Stall|Duration|Hit|Bandwidth|Issue" "$L/ncu_probe.txt" | head -40
fi
if [ "${1:-}" = kernels ]; then
  timeout 200 $H bench --kernels --quick --out "$L/bench_kernels.txt" >"$L/bench_kernels.log" 2>&1
  echo "harmonic bench --kernels --quick: exit $?"; grep -E "ceiling|rows=" "$L/bench_kernels.txt"
fi
