#!/usr/bin/env bash
# On the GPU machine: the whole-model numbers of docs/BENCHMARKS.md (issue 4) with the CUDA
# kernels in place, from a built ./build/app/harmonic. Each step has its own time limit and logs
# straight into $OUT/model_bench.log, so that a limit still brings the rest back.
# Usage: bash bench/device/model_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
H=./build/app/harmonic
LOG=$OUT/model_bench.log
M28="--d-model 256 --vocab-size 50257 --precision bf16"
run() { echo "\$ harmonic $*" >>"$LOG"; timeout 150 $H "$@" >>"$LOG" 2>&1; echo >>"$LOG"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG"
# Forward (logits included) and training step at the paper's 28M configuration, batch 2.
run bench --model harmonic,transformer,mamba $M28 --seq-len 1024,8192,32768,65536 --batch 2 --out "$OUT/forward.csv"
run bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 2 --train --out "$OUT/train.csv"
# Longest context that trains, batch 1 (an OOM row is the answer, not an error).
run bench --model harmonic $M28 --seq-len 65536,131072,262144 --batch 1 --train --warmup 1 --repeats 3
run bench --model transformer $M28 --seq-len 65536,131072,262144 --batch 1 --train --warmup 1 --repeats 3
run bench --model mamba $M28 --seq-len 65536,131072,262144 --batch 1 --train --warmup 1 --repeats 3
# 1M tokens streamed through the stateful chunked path at constant memory.
run bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 1 --stream 1048576
