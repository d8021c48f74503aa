#!/usr/bin/env bash
# On the GPU machine: the fused output head (head_bits_sum) against the materialised logits, at
# the paper's 28M configuration, from a built ./build/app/harmonic. Logs to $OUT/head_bench.log.
# Usage: bash bench/head_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
H=./build/app/harmonic
LOG=$OUT/head_bench.log
M28="--d-model 256 --vocab-size 50257 --precision bf16"
run() { echo "\$ harmonic $*" >>"$LOG"; timeout 150 $H "$@" >>"$LOG" 2>&1; echo >>"$LOG"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG"
# Training step at 8K, batch 2: logits path and fused head in the same run.
run bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 2 --train --head full
run bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 2 --train --head fused
# Scoring (every token's bits, no logits kept) against the plain forward with logits.
run bench --model harmonic $M28 --seq-len 1024,8192,32768,65536 --batch 2 --head full
run bench --model harmonic,transformer,mamba $M28 --seq-len 1024,8192,32768,65536 --batch 2 --head fused
# Longest context that trains with the fused head, batch 1.
run bench --model harmonic $M28 --seq-len 131072,262144,524288,1048576 --batch 1 --train --head fused --warmup 1 --repeats 3
run bench --model transformer,mamba $M28 --seq-len 131072,262144,524288 --batch 1 --train --head fused --warmup 1 --repeats 3
