#!/usr/bin/env bash
# Training replayed as a CUDA graph (GraphedTrainStep) against eager steps, and resumed from a
# checkpoint written between replays: the loss curve of a graphed run must equal the eager run's,
# and a run resumed from its step-8 checkpoint must continue the uninterrupted curve (the optimizer
# state, its step counts included, is what the checkpoint holds). Needs a CUDA GPU; elsewhere it
# exits 77, which CTest reports as skipped.
set -u
source "$(dirname "$0")/testlib.sh"
require_gpu
for i in $(seq 1 3000); do echo "line $i: the quick brown fox jumps over the lazy dog $((i * 7919 % 1000))."; done >"$tmp/train.txt"
args=(--model harmonic --d-model 64 --vocab-size 300 --data "$tmp/train.txt" --seq-len 256 --batch 4 --steps 12
      --checkpoint-every 4 --log-every 1 --eval-every 0 --device cuda --precision fp32 --cache-dir "$tmp/cache")
out=$(timeout 300 "$HARMONIC" train "${args[@]}" --out "$tmp/graph" 2>&1) || fail "graphed run: $out"
grep -q "replay a CUDA graph" <<<"$out" && pass || fail "the graphed run does not say it replays a graph: $out"
grep -q "capture failed" <<<"$out" && fail "capture failed: $out" || pass
timeout 300 "$HARMONIC" train "${args[@]}" --no-cuda-graph --out "$tmp/eager" >/dev/null 2>&1 || fail "eager run"
# Resume from step 8: drop the later checkpoint and point `latest` at step 8.
cp -r "$tmp/graph" "$tmp/resumed"
rm -rf "$tmp/resumed/step-0000012"
echo "step-0000008" >"$tmp/resumed/latest"
timeout 300 "$HARMONIC" train --resume "$tmp/resumed" >/dev/null 2>&1 || fail "resume from step 8"
# loss column (4) of rows 1..12: graph = eager, and resumed = graph.
compare() {  # name file_a file_b tolerance
  awk -F, -v name="$1" -v tol="$4" 'NR == FNR { if (FNR > 1) a[$1] = $4; next }
    FNR > 1 && ($1 in a) { n++; d = a[$1] - $4; if (d < 0) d = -d; r = d / (a[$1] < 0 ? -a[$1] : a[$1]); if (r > worst) worst = r }
    END { printf "%s: %d rows, largest relative difference %.2e (tolerance %s)\n", name, n, worst, tol; exit !(n == 12 && worst <= tol) }' \
    "$2" "$3"
}
compare "graphed vs eager" "$tmp/eager/log.csv" "$tmp/graph/log.csv" 1e-5 && pass || fail "graphed and eager curves differ"
compare "resumed at step 8 vs uninterrupted" "$tmp/graph/log.csv" "$tmp/resumed/log.csv" 1e-5 && pass || fail "the resumed curve differs"
finish
