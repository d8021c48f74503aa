#!/usr/bin/env bash
# On the GPU machine: build the non-GUI targets, run the GPU tests, and benchmark the three models
# (forward and training, fp32 and bf16) at the paper's 28M configuration (d=256, V=50257, batch 2).
# Logs go to $OUT (the device tool brings them back).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
. bench/device/device_lib.sh
device_env
device_build "$OUT" harmonic test_model || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
./build/tests/test_model "[gpu]" 2>&1 | tee "$OUT/test_gpu.log" | tail -5
./build/tests/test_model "[model]" 2>&1 | tail -3
for mode in "" "--train"; do
  for prec in fp32 bf16; do
    ./build/app/harmonic bench --model harmonic,transformer,mamba --d-model 256 --vocab-size 50257 \
      --seq-len 1024,8192 --batch 2 --precision $prec $mode --out "$OUT/bench_${prec}${mode:+_train}.csv" 2>&1 | tee -a "$OUT/bench.log"
  done
done
