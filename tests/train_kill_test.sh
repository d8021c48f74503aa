#!/usr/bin/env bash
# Crash safety of `harmonic train`: a real CPU run with a checkpoint every other step is killed
# (SIGKILL) at random moments, also while it writes a checkpoint. After each kill the run folder
# must load (`harmonic info DIR`) and `--resume DIR` must carry it to the end, and the finished
# log's step/tokens/lr/loss/val columns must equal those of an uninterrupted run, bit for bit.
# Run by CTest with HARMONIC=<binary>; takes under a minute on two busy cores.
set -u
source "$(dirname "$0")/testlib.sh"

# Tiny models run faster on one thread (and CI's two cores are shared); every run of the
# comparison uses the same count, which CPU determinism needs.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=${RUNS:-3}
KILLS=${KILLS:-2}
STEPS=${STEPS:-80}

for i in $(seq 1 400); do
  echo "line $((i * 7919 % 1000)): the quick brown fox jumps over the lazy dog, $((i % 17)) times."
done >"$tmp/train.txt"
head -c 4000 "$tmp/train.txt" >"$tmp/valid.txt"

args=(--model harmonic --d-model 16 --data "$tmp/train.txt" --valid "$tmp/valid.txt" --seq-len 64 --batch 4
      --steps "$STEPS" --lr 1e-2 --checkpoint-every 2 --eval-every 10 --eval-windows 4 --log-every 1
      --device cpu --precision fp32 --seed 5 --cache-dir "$tmp/cache")
final=$(printf 'step-%07d' "$STEPS")

columns() { cut -d, -f1-5 "$1/log.csv"; }

# Waits (up to 60 s) until the run in $1 has completed a checkpoint or process $2 has exited.
wait_for_checkpoint() {
  local i
  for i in $(seq 1 600); do
    [ -f "$1/latest" ] && return 0
    kill -0 "$2" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# The uninterrupted run, timed from its first checkpoint to its end: kill moments are drawn
# over 90% of the time a run still has to go, so that nearly every kill lands mid-run.
"$HARMONIC" train "${args[@]}" --out "$tmp/ref" >"$tmp/ref.out" 2>&1 &
pid=$!
pids+=("$pid")
wait_for_checkpoint "$tmp/ref" "$pid"
start=$(date +%s%N)
if wait "$pid"; then pass; else fail "reference run: $(tail -3 "$tmp/ref.out")"; fi
train_ms=$((($(date +%s%N) - start) / 1000000))
echo "uninterrupted run: ${train_ms} ms after its first checkpoint"
[ "$train_ms" -lt 200 ] && train_ms=200
total_kills=0

for run in $(seq 1 "$RUNS"); do
  dir=$tmp/run$run
  "$HARMONIC" train "${args[@]}" --out "$dir" >>"$tmp/run$run.out" 2>&1 &
  pid=$!
  pids+=("$pid")
  kills=0
  while :; do
    wait_for_checkpoint "$dir" "$pid" || { fail "run $run: no checkpoint after 60 s"; break; }
    at=$(sed -n 's/^step-0*\([0-9]\)/\1/p' "$dir/latest" 2>/dev/null)
    window_ms=$((train_ms * (STEPS - ${at:-0}) * 9 / (STEPS * 10) + 1))
    ms=$(((RANDOM * 32768 + RANDOM) % window_ms))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      kills=$((kills + 1))
      total_kills=$((total_kills + 1))
      at=$(cat "$dir/latest" 2>/dev/null)
      echo "run $run: killed after ${ms} ms (latest: ${at:-none})"
      if "$HARMONIC" info "$dir" >/dev/null 2>"$tmp/info.err"; then pass; else fail "run $run: info after kill: $(cat "$tmp/info.err")"; fi
    else
      wait "$pid" 2>/dev/null
    fi
    if [ "$(cat "$dir/latest" 2>/dev/null)" = "$final" ] && [ -f "$dir/$final/trainer_state.json" ]; then break; fi
    if [ "$kills" -ge "$KILLS" ]; then
      # Last resume: let it finish.
      if "$HARMONIC" train --resume "$dir" >>"$tmp/run$run.out" 2>&1; then pass; else fail "run $run: final resume: $(tail -3 "$tmp/run$run.out")"; fi
      break
    fi
    "$HARMONIC" train --resume "$dir" >>"$tmp/run$run.out" 2>&1 &
    pid=$!
    pids+=("$pid")
  done
  if "$HARMONIC" info "$dir" >/dev/null 2>&1; then pass; else fail "run $run: info at the end"; fi
  if [ "$(cat "$dir/latest" 2>/dev/null)" = "$final" ]; then pass; else fail "run $run: latest is $(cat "$dir/latest" 2>/dev/null), expected $final"; fi
  if diff <(columns "$tmp/ref") <(columns "$dir") >"$tmp/diff.txt"; then
    pass
  else
    fail "run $run: log differs from the uninterrupted run:"
    head -10 "$tmp/diff.txt"
  fi
  leftovers=$(find "$dir" -name '*.tmp-*' | wc -l)
  [ "$leftovers" -eq 0 ] && pass || fail "run $run: $leftovers temporary files left behind"
  steps_kept=$(find "$dir" -maxdepth 1 -name 'step-*' -type d | wc -l)
  [ "$steps_kept" -le 2 ] && pass || fail "run $run: $steps_kept step folders kept, expected at most 2"
done

echo "$total_kills kills in $RUNS runs"
[ "$total_kills" -ge 1 ] && pass || fail "no run was killed mid-way: the test proved nothing"

# Resume refuses new settings, and a fresh start refuses a folder that holds a run.
err=$("$HARMONIC" train --resume "$tmp/ref" --lr 1 2>&1 >/dev/null)
[ $? -eq 1 ] && [[ "$err" == *"--lr"* ]] && pass || fail "--resume with --lr: $err"
err=$("$HARMONIC" train "${args[@]}" --out "$tmp/ref" 2>&1 >/dev/null)
[ $? -eq 1 ] && [[ "$err" == *"already holds a training run"* ]] && pass || fail "train into a used folder: $err"

# The trained checkpoint evaluates: windowed and stateful, a CSV row per context, clear errors.
out=$("$HARMONIC" eval --checkpoint "$tmp/ref" --data "$tmp/valid.txt" --context 64,256 --device cpu \
      --cache-dir "$tmp/cache" --out "$tmp/eval.csv" 2>&1) && pass || fail "eval: $out"
[ "$(wc -l <"$tmp/eval.csv")" -eq 3 ] && pass || fail "eval CSV: $(cat "$tmp/eval.csv")"
bpt=$(awk -F, 'NR == 2 { print $6 }' "$tmp/eval.csv")
# Training must have taught the model the text: at least a bit per token better than the same
# model untrained (about 8 bits, uniform over bytes).
"$HARMONIC" init --model harmonic --d-model 16 --vocab bytes --seed 5 --out "$tmp/untrained" >/dev/null &&
  "$HARMONIC" eval --checkpoint "$tmp/untrained" --data "$tmp/valid.txt" --context 64,256 --device cpu \
      --cache-dir "$tmp/cache" --out "$tmp/eval-untrained.csv" >/dev/null 2>&1 && pass || fail "eval of the untrained model"
untrained=$(awk -F, 'NR == 2 { print $6 }' "$tmp/eval-untrained.csv")
echo "eval bpt at context 64: trained $bpt, untrained $untrained"
awk -v b="$bpt" -v u="$untrained" 'BEGIN { exit !(b > 0 && b < u - 1) }' && pass ||
  fail "eval bpt $bpt after training is not a bit below the untrained model's $untrained"
# A run killed and resumed evaluates exactly like the uninterrupted one.
"$HARMONIC" eval --checkpoint "$tmp/run1" --data "$tmp/valid.txt" --context 64,256 --device cpu \
    --cache-dir "$tmp/cache" --out "$tmp/eval-run1.csv" >/dev/null 2>&1 && pass || fail "eval of the resumed run"
cmp -s <(cut -d, -f1-6 "$tmp/eval.csv") <(cut -d, -f1-6 "$tmp/eval-run1.csv") && pass ||
  fail "the resumed run evaluates differently: $(cat "$tmp/eval.csv" "$tmp/eval-run1.csv")"
out=$("$HARMONIC" eval --checkpoint "$tmp/ref" --data "$tmp/valid.txt" --context 64 --stateful --warmup-chunks 2 \
      --device cpu --cache-dir "$tmp/cache" 2>&1) && pass || fail "eval --stateful: $out"
[[ "$out" == *stateful* ]] && pass || fail "eval --stateful prints its mode: $out"
err=$("$HARMONIC" eval --checkpoint "$tmp/ref" --data "$tmp/valid.txt" --context 100000 --device cpu \
      --cache-dir "$tmp/cache" 2>&1 >/dev/null)
[ $? -eq 1 ] && [[ "$err" == *"longer than the data"* ]] && pass || fail "eval with a too-long context: $err"

finish
