#!/usr/bin/env bash
# shellcheck disable=SC2086  # M28 and S are lists of arguments, split on purpose
# On the GPU machine, one call: every headline number of docs/BENCHMARKS.md, each raw output in
# $OUT/<name>.txt (docs/results/bench/README.md says which table each backs):
#   gpu.txt           card, driver, torch, commit, date, build
#   kernels.txt       `harmonic bench --kernels`: ceilings, every scan at 8K / 32K / 64K, knob rows, head rows
#   scoring.txt       scoring (no logits) and the forward with logits, 28M configuration, 2 x 1K..64K;
#                     Harmonic eager and with the chunked head; ncu's GPU time of scoring at 2 x 32K
#   training.txt      the training step at 2 x 8K (graphed, and Harmonic eager); `harmonic train` on
#                     the corpus when .corpus/train.txt is carried
#   long_context.txt  Harmonic's longest context (256K, 1M tokens a step) and 1M tokens streamed
#   head_gemm.txt     bench/experiments/head_gemm.py: cuBLAS's head GEMM at V = 50,257 and padded
#   ddp.txt           data-parallel scaling when the machine has several GPUs (else says why not)
# Carry ".deps" (scripts/device_deps), and ".corpus" for the `harmonic train` and data-parallel rows.
# Each command runs under its own time limit, trimmed to what is left of BENCH_BUDGET_S (default
# 480 s from the start, build included); a command that no longer fits is logged as skipped. The
# whole-model rows run first (each well under a minute), then the kernel benchmark (full where
# 200 s are left, else --quick), then ncu and the data-parallel rows.
# BENCH_COMMIT names the commit in gpu.txt where the checkout has no .git.
# Usage: BENCH_COMMIT=$(git rev-parse --short HEAD) bash bench/device/benchmarks_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
. bench/device/device_lib.sh
device_env
BUDGET=${BENCH_BUDGET_S:-480}
LOGS=/tmp/benchmarks_logs
mkdir -p "$LOGS"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo "${BENCH_COMMIT:-unknown}")
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__)"
  echo "commit $commit"
  echo "date $(date -u +%FT%TZ)"
} >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)

device_build "$LOGS" harmonic || { cp "$LOGS"/*.log "$OUT/" 2>/dev/null; exit 1; }
echo "build: harmonic built at ${SECONDS}s" | tee -a "$OUT/gpu.txt"
H=./build/app/harmonic
M28="--d-model 256 --vocab-size 50257 --precision bf16"
S="--seq-len 1024,8192,32768,65536 --batch 2"

# run FILE LIMIT_S COMMAND...: appends "$ COMMAND" and its output to $OUT/FILE under LIMIT_S seconds,
# or less where less of the budget is left; skipped (and logged so) under 20 s left.
run() {
  local name=$1 file=$OUT/$1 limit=$2 left
  shift 2
  left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "\$ $* -- skipped: ${SECONDS}s of ${BUDGET}s spent" | tee -a "$file"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "\$ $*" >>"$file"
  timeout "$limit" "$@" >>"$file" 2>&1
  local rc=$?
  echo "# exit $rc at ${SECONDS}s" >>"$file"
  echo >>"$file"
  echo "$name: exit $rc at ${SECONDS}s"
}

# Scoring and forward (BENCHMARKS § Scoring and forward).
run scoring.txt 150 $H bench --model harmonic,transformer,mamba $M28 $S --head fused
run scoring.txt 100 $H bench --model harmonic $M28 $S --head fused --no-cuda-graph
run scoring.txt 100 env HARMONIC_HEAD_GEMM=0 $H bench --model harmonic $M28 $S --head fused
run scoring.txt 150 $H bench --model harmonic,transformer,mamba $M28 $S

# Training step (BENCHMARKS § Training step).
run training.txt 120 $H bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 2 --train --head fused
run training.txt 60 $H bench --model harmonic $M28 --seq-len 8192 --batch 2 --train --head fused --no-cuda-graph
if [ -f .corpus/train.txt ]; then
  run training.txt 120 $H train --model harmonic --d-model 256 --vocab-size 50257 --data .corpus/train.txt \
    --seq-len 8192 --batch 2 --steps 60 --log-every 10 --eval-every 0 --checkpoint-every 100000 --precision bf16 \
    --out /tmp/benchmarks_train
else
  echo "# harmonic train on the corpus: skipped (.corpus/train.txt not carried)" >>"$OUT/training.txt"
fi

# Longest context and streaming (BENCHMARKS § Longest context and streaming).
run long_context.txt 120 $H bench --model harmonic $M28 --seq-len 262144,1048576 --batch 1 --train --head fused \
  --warmup 1 --repeats 2
run long_context.txt 150 $H bench --model harmonic,transformer,mamba $M28 --seq-len 8192 --batch 1 --stream 1048576

# The head GEMM alone through cuBLAS, V = 50,257 against the padded 50,304 (BENCHMARKS § Head GEMM).
run head_gemm.txt 60 "$PY" bench/experiments/head_gemm.py

# Scans and the head against the copy and matmul ceilings (BENCHMARKS § Scans, § Head GEMM): the
# full benchmark (20 repetitions) where 200 s are left, else --quick (fewer lengths and repeats).
if [ $((BUDGET - SECONDS)) -ge 200 ]; then
  run kernels.txt 240 $H bench --kernels
else
  run kernels.txt 120 $H bench --kernels --quick
fi

# ncu's GPU time per kernel of Harmonic's scoring forward at 2 x 32K (BENCHMARKS § Scoring and forward).
if [ $((BUDGET - SECONDS)) -gt 90 ]; then
  timeout 120 ncu --clock-control none --metrics gpu__time_duration.sum --csv $H bench --model harmonic $M28 \
    --batch 2 --warmup 1 --repeats 1 --seq-len 32768 --head fused >"$LOGS/profile_score32k.csv" 2>"$LOGS/profile.err"
  { echo "\$ ncu --metrics gpu__time_duration.sum harmonic bench --model harmonic --seq-len 32768 --head fused (exit $?)"
    echo "# two forwards (warm-up and one timed step), GPU time per kernel:"
    python3 scripts/dev/ncu_summary.py "$LOGS/profile_score32k.csv" 2>&1 | head -30; echo; } >>"$OUT/scoring.txt"
else
  echo "# ncu profile of scoring at 2 x 32K: skipped (${SECONDS}s of ${BUDGET}s spent)" >>"$OUT/scoring.txt"
fi

# Data-parallel scaling (BENCHMARKS § Data-parallel training): needs several GPUs and the corpus.
if [ "$GPUS" -ge 2 ] && [ -f .corpus/train.txt ]; then
  # NVLink multicast stays off (the device notes: it can take a shared host's GPUs out of service).
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  for n in 1 2 4 8; do
    [ "$n" -le "$GPUS" ] || break
    run ddp.txt 120 $H train --model harmonic --d-model 256 --vocab-size 50257 --data .corpus/train.txt \
      --seq-len 8192 --batch 2 --steps 60 --log-every 10 --eval-every 0 --checkpoint-every 100000 --precision bf16 \
      --nproc "$n" --out "/tmp/benchmarks_ddp$n"
    awk -F, -v n="$n" 'NR > 1 && $1 > 20 {s += $6; k++} END {if (k) printf "GPUs %d: %.0f tok/s (mean of %d log rows after step 20)\n", n, s / k, k}' \
      "/tmp/benchmarks_ddp$n/log.csv" >>"$OUT/ddp.txt" 2>/dev/null
  done
else
  echo "data-parallel scaling: skipped ($GPUS GPU(s); .corpus/train.txt $([ -f .corpus/train.txt ] && echo present || echo missing)); run on nvidia-h100-x2 or larger" >"$OUT/ddp.txt"
fi

echo "done at ${SECONDS}s"
grep -hE "^(harmonic|transformer|mamba) |% of copy|GPUs " "$OUT"/*.txt | head -80
