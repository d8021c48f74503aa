#!/usr/bin/env bash
# On the GPU machine, one call: build the non-GUI targets, run the GPU tests of the output head and
# the kernels, the whole-model numbers of docs/BENCHMARKS.md (forward with logits, scoring through
# the fused head, training step, logits vs fused), the scan kernels (`harmonic bench --kernels
# --quick`), and a kernel-by-kernel profile of Harmonic's forward and training step (ncu, GPU time
# only, clocks left alone). Carry ".deps". Everything is
# logged under $OUT/perf/ and packed into $OUT/perf.tgz.
# Usage: bash bench/device/perf_device.sh [quick]
set -uo pipefail
OUT=${OUT:-/tmp/out}
L=$OUT/perf
mkdir -p "$L"
export LD_LIBRARY_PATH=$PWD/.deps/lib:${LD_LIBRARY_PATH:-}
pack() { tar -C "$OUT" -czf "$OUT/perf.tgz" perf; }
trap pack EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$L/gpu.txt"
date -u >>"$L/gpu.txt"
. bench/device/device_lib.sh
device_build "$L" harmonic test_model || exit 1
echo "built at ${SECONDS}s"
timeout 240 ./build/tests/test_model "[head],[gpu],[kernels]" >"$L/test_gpu.log" 2>&1
echo "test_model [head],[gpu],[kernels]: exit $?"; tail -3 "$L/test_gpu.log"
grep -E "^\[kernels\] head" "$L/test_gpu.log" | head -40
H=./build/app/harmonic
M28="--d-model 256 --vocab-size 50257 --precision bf16"
run() { echo "\$ $*" >>"$L/bench.log"; timeout 150 "$@" >>"$L/bench.log" 2>&1; echo >>"$L/bench.log"; }
run $H bench --model harmonic,transformer,mamba $M28 --seq-len 1024,8192,32768,65536 --batch 2 --out "$L/forward.csv"
run $H bench --model harmonic,transformer,mamba $M28 --seq-len 1024,8192,32768,65536 --batch 2 --head fused --out "$L/score.csv"
for rows in 256 2048 8192; do
  run env HARMONIC_HEAD_CHUNK_ROWS=$rows $H bench --model harmonic $M28 --seq-len 8192,32768 --batch 2 --head fused
done
run $H bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 2 --train --head full --out "$L/train_full.csv"
run $H bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 2 --train --head fused --out "$L/train_fused.csv"
run $H bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 1 --stream 1048576 --out "$L/stream.csv"
run $H bench --model harmonic $M28 --seq-len 262144,1048576 --batch 1 --train --head fused --warmup 1 --repeats 2 --out "$L/longest.csv"
echo "benches done at ${SECONDS}s"; grep -E "^(harmonic|transformer|mamba) " "$L/bench.log"
[ "${1:-}" = quick ] && exit 0
timeout 150 $H bench --kernels --quick --out "$L/bench_kernels.txt" >"$L/bench_kernels.log" 2>&1
echo "harmonic bench --kernels: exit $?"; grep -E "channels/thread|copy" "$L/bench_kernels.log" | head -12
P="$M28 --batch 2 --warmup 1 --repeats 1"
prof() { local n=$1; shift; timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv "$@" >"$L/profile_$n.csv" 2>"$L/profile_$n.err"; echo "profile $n: exit $?"; }
prof fwd32k $H bench --model harmonic $P --seq-len 32768
prof score32k $H bench --model harmonic $P --seq-len 32768 --head fused
prof train8k $H bench --model harmonic $P --seq-len 8192 --train --head fused
