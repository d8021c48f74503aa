#!/usr/bin/env bash
# Builds and runs bench/experiments/head_lse_probe.cu on the GPU machine (no LibTorch, one nvcc call).
set -euo pipefail
out=${OUT:-/tmp}
nvcc -std=c++17 -DHARMONIC_HAVE_SM90A -gencode=arch=compute_90a,code=sm_90a -O3 --expt-relaxed-constexpr -lineinfo -I. \
  bench/experiments/head_lse_probe.cu -lcublas -o "$out/head_lse_probe"
for args in "${@:-65536 50257 256 1 20}"; do
  timeout 60 "$out/head_lse_probe" $args
done
