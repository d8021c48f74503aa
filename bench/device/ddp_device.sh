#!/usr/bin/env bash
# On a GPU machine with several GPUs (nvidia-h100-x2 / -x4): builds `harmonic`, runs the
# data-parallel test on NCCL in fp32 and bf16, then measures training throughput of the paper's
# 28M configuration (d = 256, 50,257-way head) at 8K context on 1, 2, ... GPUs.
# Carry .deps (scripts/device_deps) and .corpus (the corpus splits). Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
. bench/device/device_lib.sh
device_env
# NVLink multicast stays off (the device notes: it can take a shared host's GPUs out of service).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
{ nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv; nvidia-smi topo -m; } >"$OUT/gpu.txt" 2>&1
GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
device_build "$OUT" harmonic || exit 1
grep NCCL "$OUT/cmake.log" 2>/dev/null
H=./build/app/harmonic
LOG=$OUT/ddp.log
for p in "fp32 1e-3" "bf16 2e-2"; do
  set -- $p
  echo "== data-parallel test, NCCL, 2 GPUs, $1" >>"$LOG"
  DEVICE=cuda NPROC=2 PRECISION=$1 TOL=$2 HARMONIC=$H timeout 240 bash tests/data_parallel_test.sh >>"$LOG" 2>&1
  echo "exit $?" >>"$LOG"
done
echo "== scaling: harmonic 28M (d=256, V=50257), seq 8192, batch 2 per GPU, bf16, 60 steps" >>"$LOG"
for n in 1 2 4 8; do
  [ "$n" -le "$GPUS" ] || break
  timeout 240 $H train --model harmonic --d-model 256 --vocab-size 50257 --data .corpus/train.txt --seq-len 8192 \
    --batch 2 --steps 60 --log-every 10 --checkpoint-every 100000 --eval-every 0 --precision bf16 --nproc $n \
    --out /tmp/scale$n >"$OUT/scale$n.log" 2>&1
  echo "nproc $n exit $?" >>"$LOG"
  # tokens/s of the steady rows (after the first 20 steps), all GPUs together
  awk -F, -v n=$n 'NR > 1 && $1 > 20 {s += $6; k++} END {if (k) printf "GPUs %d: %.0f tok/s (mean of %d log rows)\n", n, s / k, k}' \
    /tmp/scale$n/log.csv >>"$LOG"
done
cat "$LOG"
