#!/usr/bin/env bash
# On the GPU machine: where the time of Harmonic's forward (32K) and training step (8K) goes, kernel
# by kernel (ncu, one metric: GPU time per launch, clocks left alone), from a built
# ./build/app/harmonic. Raw CSVs under $OUT/profile_*.csv; summarise with scripts/dev/ncu_summary.py.
# Usage: bash bench/device/profile_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
H=./build/app/harmonic
M28="--d-model 256 --vocab-size 50257 --precision bf16 --batch 2 --warmup 1 --repeats 1"
prof() {
    local name=$1; shift
    timeout 240 ncu --clock-control none --metrics gpu__time_duration.sum --csv "$@" >"$OUT/profile_$name.csv" 2>"$OUT/profile_$name.err"
    echo "profile $name: exit $?" >>"$OUT/profile.log"
}
prof fwd32k $H bench --model harmonic $M28 --seq-len 32768
prof train8k $H bench --model harmonic $M28 --seq-len 8192 --train
prof score32k $H bench --model harmonic $M28 --seq-len 32768 --head fused
