#!/usr/bin/env bash
# Data-parallel `harmonic train --nproc N` (c10d) against one process with N times the batch:
#  1. N ranks with per-rank batch B reproduce one process with batch N*B (loss and validation
#     columns of log.csv within TOL relative), and rank 0 alone writes the checkpoints;
#  2. a run resumes on a different number of processes (N -> 1 and 1 -> N) and continues the
#     one-process curve;
#  3. a global batch that does not split over --nproc, and a worker that fails, end with a clear
#     error and no hang.
# CTest runs it on the CPU (the store collectives); on the GPU machine run it with DEVICE=cuda
# (NCCL, one GPU per rank): DEVICE=cuda NPROC=2 PRECISION=bf16 TOL=2e-2 bash tests/data_parallel_test.sh
set -u
source "$(dirname "$0")/testlib.sh"
DEVICE=${DEVICE:-cpu}
NPROC=${NPROC:-2}
PRECISION=${PRECISION:-fp32}
TOL=${TOL:-2e-6}
MODEL=${MODEL:-harmonic}
D=${D_MODEL:-32}
read -r -a EXTRA <<<"${EXTRA_FLAGS:-}"  # e.g. EXTRA_FLAGS=--stateful: the same checks for stateful rows
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

for i in $(seq 1 3000); do
  echo "line $((i * 7919 % 1000)): the quick brown fox jumps over the lazy dog, $((i % 17)) times."
done >"$tmp/train.txt"
head -c 20000 "$tmp/train.txt" >"$tmp/valid.txt"
B=2
args=(--model "$MODEL" --d-model "$D" --data "$tmp/train.txt" --valid "$tmp/valid.txt" --seq-len 64 --steps 6
      --checkpoint-every 3 --eval-every 3 --eval-windows 4 --log-every 1 --device "$DEVICE" --precision "$PRECISION"
      --seed 3 --lr 3e-3 --cache-dir "$tmp/cache" "${EXTRA[@]}")

# Relative agreement of the loss and validation columns (step, tokens and lr must be equal).
same_curve() {  # label, log A, log B, first step to compare
  python3 - "$1" "$2" "$3" "${4:-1}" "$TOL" <<'PY'
import csv, sys
label, a, b, first, tol = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ra = [r for r in csv.DictReader(open(a)) if int(r["step"]) >= first]
rb = [r for r in csv.DictReader(open(b)) if int(r["step"]) >= first]
if len(ra) != len(rb) or not ra:
    sys.exit(f"{label}: {len(ra)} rows against {len(rb)}")
worst = 0.0
for x, y in zip(ra, rb):
    for k in ("step", "tokens", "lr"):
        if x[k] != y[k]:
            sys.exit(f"{label}: step {x['step']}: {k} {x[k]} != {y[k]}")
    for k in ("loss_bpt", "val_bpt"):
        if (x[k] == "") != (y[k] == ""):
            sys.exit(f"{label}: step {x['step']}: {k} present in one log only")
        if x[k]:
            worst = max(worst, abs(float(x[k]) - float(y[k])) / abs(float(x[k])))
print(f"{label}: {len(ra)} rows, largest relative difference {worst:.2e} (tolerance {tol:g})")
sys.exit(0 if worst <= tol else 1)
PY
}

# Rolls a finished run back to its step-3 checkpoint, as if it had stopped there.
roll_back() {  # source run, new folder
  cp -r "$1" "$2"
  rm -rf "$2/step-0000006"
  cp "$2/step-0000003/model.safetensors" "$2/step-0000003/config.json" "$2/"
  echo step-0000003 >"$2/latest"
}

"$HARMONIC" train "${args[@]}" --batch $((NPROC * B)) --out "$tmp/one" >"$tmp/one.log" 2>&1 \
  && pass || fail "one process: $(tail -3 "$tmp/one.log")"
if timeout 300 "$HARMONIC" train "${args[@]}" --batch $B --nproc "$NPROC" --out "$tmp/dp" >"$tmp/dp.log" 2>&1; then
  pass
else
  fail "--nproc $NPROC: $(tail -5 "$tmp/dp.log")"
fi
same_curve "$NPROC ranks x batch $B vs 1 x batch $((NPROC * B))" "$tmp/one/log.csv" "$tmp/dp/log.csv" && pass || fail "curves differ"
[ "$(grep -c '^done:' "$tmp/dp.log")" = 1 ] && pass || fail "expected one 'done:' line (rank 0 only), log: $(cat "$tmp/dp.log")"
"$HARMONIC" info "$tmp/dp" >/dev/null 2>&1 && pass || fail "the data-parallel run's checkpoint does not load"
grep -q "\"world_size\": $NPROC" "$tmp/dp/step-0000006/trainer_state.json" && pass || fail "trainer_state.json lacks world_size $NPROC"

# Resume on another number of processes: same global batch, same windows, same curve.
roll_back "$tmp/dp" "$tmp/dp_to_one"
"$HARMONIC" train --resume "$tmp/dp_to_one" --device "$DEVICE" >"$tmp/dp_to_one.log" 2>&1 \
  && pass || fail "resume $NPROC -> 1: $(tail -3 "$tmp/dp_to_one.log")"
same_curve "resume $NPROC -> 1 process" "$tmp/one/log.csv" "$tmp/dp_to_one/log.csv" 4 && pass || fail "resume $NPROC -> 1 differs"
roll_back "$tmp/one" "$tmp/one_to_dp"
timeout 300 "$HARMONIC" train --resume "$tmp/one_to_dp" --device "$DEVICE" --nproc "$NPROC" >"$tmp/one_to_dp.log" 2>&1 \
  && pass || fail "resume 1 -> $NPROC: $(tail -3 "$tmp/one_to_dp.log")"
same_curve "resume 1 -> $NPROC processes" "$tmp/one/log.csv" "$tmp/one_to_dp/log.csv" 4 && pass || fail "resume 1 -> $NPROC differs"

# Errors: an uneven split, and a worker that fails (every rank fails to read the data here).
roll_back "$tmp/one" "$tmp/uneven"
out=$(timeout 120 "$HARMONIC" train --resume "$tmp/uneven" --device "$DEVICE" --nproc $((NPROC * B - 1)) 2>&1)
status=$?
# (on a machine with fewer GPUs than that, the device count is the error instead)
{ [ $status = 1 ] && grep -qE "do not split evenly|CUDA device" <<<"$out"; } && pass || fail "uneven split: status $status: $out"
out=$(timeout 120 "$HARMONIC" train "${args[@]}" --data "$tmp/missing.txt" --batch $B --nproc "$NPROC" --out "$tmp/bad" 2>&1)
status=$?
{ [ $status = 1 ] && grep -q "missing.txt" <<<"$out"; } && pass || fail "failing workers: status $status (124 = hang): $out"

finish
