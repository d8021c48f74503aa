#!/usr/bin/env bash
# The paper's crossover at reduced scale (docs/RESULTS.md), on a machine with one or more GPUs:
# byte-level models at d = 256 (parameter parity), an equal token budget per run, contexts 1K to
# 64K, 2 seeds at 4K, the two ablations at 4K, stateful vs random windows at 1K, and a deeper set
# (Harmonic with 4 blocks, Transformer and Mamba with 12 layers, grown to the same count) at 1K
# and 16K. One run per GPU at a time (clean tokens/s and memory), jobs pulled from one queue,
# longest first. Every run is evaluated on the whole valid and test splits at its own context.
# Expects ./build/app/harmonic and the corpus splits in $CORPUS; writes $OUT/crossover.csv,
# $OUT/crossover.log and $OUT/crossover_runs.tar (each run's log.csv, training and eval output).
set -uo pipefail
OUT=${OUT:-/tmp/out}
CORPUS=${CORPUS:-.corpus}
TOKENS=${TOKENS:-20M}
DEADLINE_S=${DEADLINE_S:-320}       # no new run starts after this many seconds
RUN_LIMIT_S=${RUN_LIMIT_S:-180}     # one run's training at most
DEVICE=${DEVICE:-cuda}
D_MODEL=${D_MODEL:-256}
FIRST_GPU=${FIRST_GPU:-0}
H=$PWD/build/app/harmonic
RUNS=/tmp/crossover
mkdir -p "$RUNS" "$OUT"
GPUS=$(nvidia-smi -L | wc -l)
LOG=$OUT/crossover.log
start=$SECONDS

# name | family | context | seed | extra training flags
cat >"$RUNS/jobs" <<'EOF'
mamba-64k|mamba|65536|1|
transformer-64k|transformer|65536|1|
harmonic-64k|harmonic|65536|1|
mamba-deep-16k|mamba|16384|1|--blocks 4 --layers 12
transformer-deep-16k|transformer|16384|1|--blocks 4 --layers 12
harmonic-deep-16k|harmonic|16384|1|--blocks 4
mamba-deep-1k|mamba|1024|1|--blocks 4 --layers 12
transformer-deep-1k|transformer|1024|1|--blocks 4 --layers 12
harmonic-deep-1k|harmonic|1024|1|--blocks 4
mamba-16k|mamba|16384|1|
transformer-16k|transformer|16384|1|
harmonic-16k|harmonic|16384|1|
mamba-4k|mamba|4096|1|
transformer-4k|transformer|4096|1|
harmonic-4k|harmonic|4096|1|
mamba-4k-seed2|mamba|4096|2|
transformer-4k-seed2|transformer|4096|2|
harmonic-4k-seed2|harmonic|4096|2|
harmonic-raw-4k|harmonic|4096|1|--routing raw
harmonic-flat-4k|harmonic|4096|1|--timescales 32,32,32
mamba-1k|mamba|1024|1|
transformer-1k|transformer|1024|1|
harmonic-1k|harmonic|1024|1|
mamba-stateful-1k|mamba|1024|1|--stateful
transformer-stateful-1k|transformer|1024|1|--stateful
harmonic-stateful-1k|harmonic|1024|1|--stateful
EOF

# Token caches are shared: tokenize both splits once before the workers start.
$H eval --checkpoint "$($H init --model harmonic --d-model 16 --out "$RUNS/tiny" >/dev/null && echo "$RUNS/tiny")" \
  --data "$CORPUS/valid.txt" --context 1024 --max-tokens 4096 --device cpu >/dev/null 2>&1
$H train --model harmonic --d-model 16 --data "$CORPUS/train.txt" --seq-len 64 --batch 1 --steps 1 --device cpu \
  --out "$RUNS/warm" >/dev/null 2>&1
$H eval --checkpoint "$RUNS/tiny" --data "$CORPUS/test.txt" --context 1024 --max-tokens 4096 --device cpu >/dev/null 2>&1
echo "caches ready at $((SECONDS - start)) s" >>"$LOG"

run_job() {  # gpu, job line
  local gpu=$1 name family ctx seed extra
  IFS='|' read -r name family ctx seed extra <<<"$2"
  local dir=$RUNS/$name stateful=""
  [[ "$extra" == *--stateful* ]] && stateful="--stateful"
  local t0=$SECONDS
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$gpu timeout $RUN_LIMIT_S $H train --model "$family" --d-model "$D_MODEL" --data "$CORPUS/train.txt" \
    --valid "$CORPUS/valid.txt" --seq-len "$ctx" --tokens "$TOKENS" --lr 1e-3 --min-lr 1e-5 --warmup-frac 0.05 \
    --eval-every 0 --eval-windows 16 --checkpoint-every 1000000 --log-every 10 --device "$DEVICE" --seed "$seed" \
    $extra --out "$dir" >"$RUNS/$name.train.log" 2>&1
  local train_status=$? train_s=$((SECONDS - t0))
  local ev=("" "" "" "") k=0
  # A run that did not finish has only its step-0 checkpoint: nothing to evaluate.
  [ "$train_status" = 0 ] && for split in valid test; do
    for mode in "" $stateful; do
      # shellcheck disable=SC2086
      CUDA_VISIBLE_DEVICES=$gpu timeout 60 $H eval --checkpoint "$dir" --data "$CORPUS/$split.txt" --context "$ctx" \
        $mode --device "$DEVICE" >>"$RUNS/$name.eval.log" 2>&1
      ev[k++]=$(tail -1 "$RUNS/$name.eval.log" | awk '{print $6}')
    done
  done
  local params tps peak
  params=$(grep -oE "[0-9]+ parameters" "$RUNS/$name.train.log" | head -1 | awk '{print $1}')
  tps=$(awk -F, 'NR > 1 && $1 > 50 {s += $6; k++} END {if (k) printf "%.0f", s / k}' "$dir/log.csv" 2>/dev/null)
  peak=$(grep -oE "peak GPU memory [0-9.]+" "$RUNS/$name.train.log" | awk '{print $4}')
  local steps_tokens
  steps_tokens=$(grep -oE "^done: [0-9]+ steps, [0-9]+ tokens" "$RUNS/$name.train.log" | awk '{print $2 "," $4}')
  if [ -n "$stateful" ]; then
    echo "$name,$family,$ctx,$seed,\"$extra\",$params,${steps_tokens:-,},${ev[0]},${ev[2]},${ev[1]},${ev[3]},$tps,$peak,$train_s,$train_status" >>"$OUT/crossover.csv"
  else
    echo "$name,$family,$ctx,$seed,\"$extra\",$params,${steps_tokens:-,},${ev[0]},${ev[1]},,,$tps,$peak,$train_s,$train_status" >>"$OUT/crossover.csv"
  fi
  echo "[$((SECONDS - start)) s] GPU $gpu: $name done in ${train_s} s (train exit $train_status): valid ${ev[0]} test ${ev[k > 0 ? k - 1 : 0]}" >>"$LOG"
}

worker() {  # gpu
  # LATE_GPU joins once LATE_GPU_READY exists (the GPU tests of the same device call ran there first).
  if [ "$1" = "${LATE_GPU:-none}" ]; then
    while [ ! -e "${LATE_GPU_READY:-/nonexistent}" ] && [ $((SECONDS - start)) -lt "$DEADLINE_S" ]; do sleep 2; done
  fi
  while [ $((SECONDS - start)) -lt "$DEADLINE_S" ]; do
    local job
    job=$(flock "$RUNS/jobs" bash -c 'j=$(head -1 "$0"); [ -n "$j" ] && sed -i 1d "$0"; echo "$j"' "$RUNS/jobs")
    [ -n "$job" ] || return 0
    run_job "$1" "$job"
  done
}

echo "name,family,context,seed,flags,parameters,steps,tokens,valid_bpt,test_bpt,valid_bpt_stateful,test_bpt_stateful,tokens_per_s,peak_gb,train_s,exit" >"$OUT/crossover.csv"
for ((g = FIRST_GPU; g < GPUS; g++)); do worker $g & done
wait
echo "not run (deadline): $(wc -l <"$RUNS/jobs")" >>"$LOG"
cat "$RUNS/jobs" >>"$LOG"
(cd "$RUNS" && tar -cf "$OUT/crossover_runs.tar" --exclude='*.safetensors' --exclude='*.tokens' ./*.log ./*/log.csv ./*/config.json 2>/dev/null)
cat "$LOG"
