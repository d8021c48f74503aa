#!/usr/bin/env bash
# `harmonic score --out` under a memory cap: the address space the tool needs for a tiny text is
# found first (ulimit -v, by bisection), then a 6 MB text is scored with only 192 MB more. Scoring
# streams (text in blocks, rows straight to the CSV, running sums), so it must finish with every
# row written; holding the ids, the scores and the CSV in memory needs several hundred MB, and the
# CSV used to come out cut short with exit status 0. Then `harmonic info` of a 145 MB checkpoint
# under caps around what it needs: the checkpoint and the size named when it does not fit. Run by
# CTest with HARMONIC=<binary>.
set -u
source "$(dirname "$0")/testlib.sh"
# Fewer threads and malloc arenas: the address space then depends on the work, not the machine.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MALLOC_ARENA_MAX=2

"$HARMONIC" init --model harmonic --d-model 16 --out "$tmp/h" >/dev/null || fail "init"
printf 'a few words\n' >"$tmp/tiny.txt"
yes "The quick brown fox jumps over the lazy dog; 0123456789 times." | head -c 6000000 >"$tmp/big.txt"

runs_within() {  # runs_within KB FILE [more args]: exit status of score under `ulimit -v KB`
  local kb=$1 text=$2
  shift 2
  # In a child shell, so that a run killed under a small cap is not reported on this test's stderr.
  bash -c 'ulimit -v "$1" && shift && "$@"; exit $?' _ "$kb" "$HARMONIC" score --checkpoint "$tmp/h" --text "$text" "$@" \
    >"$tmp/out.txt" 2>"$tmp/err.txt"
}
lo=0 hi=$((1024 * 1024))  # KB
while ! runs_within $hi "$tmp/tiny.txt" --out "$tmp/tiny.csv"; do
  lo=$hi hi=$((hi * 2))
  [ $hi -gt $((64 * 1024 * 1024)) ] && { fail "score does not start under 64 GB of address space: $(cat "$tmp/err.txt")"; finish; exit 1; }
done
while [ $((hi - lo)) -gt $((32 * 1024)) ]; do
  mid=$(((lo + hi) / 2))
  if runs_within $mid "$tmp/tiny.txt" --out "$tmp/tiny.csv"; then hi=$mid; else lo=$mid; fi
done
echo "a tiny text needs $((hi / 1024)) MB of address space"

cap=$((hi + 192 * 1024))
if runs_within $cap "$tmp/big.txt" --out "$tmp/big.csv"; then pass; else fail "score of 6 MB under $((cap / 1024)) MB: $(cat "$tmp/err.txt")"; fi
tokens=$(sed -n 's/^tokens: //p' "$tmp/out.txt")
[ "$tokens" = 6000000 ] && pass || fail "tokens printed: '$tokens', expected 6000000"
rows=$(($(wc -l <"$tmp/big.csv") - 1))
[ "$rows" -eq 5999999 ] && pass || fail "the CSV has $rows rows, expected 5999999 (one per scored token)"
[ "$(tail -n 1 "$tmp/big.csv" | cut -d, -f1,2)" = "5999999,5999999" ] && pass || fail "last row: $(tail -n 1 "$tmp/big.csv")"

# Under a cap too small for the model, the tool fails with a message, never exit 0 with a partial CSV.
rm -f "$tmp/small.csv"
if runs_within $((hi / 2)) "$tmp/big.txt" --out "$tmp/small.csv"; then
  fail "score succeeded under half the address space it needs?"
else
  [ ! -e "$tmp/small.csv" ] && pass || fail "a failed score left $tmp/small.csv"
fi

# Loading a checkpoint under caps from "the tool starts" to "the model fits": each run loads it or
# fails with the checkpoint named (the mapping or the model), never the allocator's own words.
"$HARMONIC" init --model harmonic --d-model 1024 --out "$tmp/h1024" >/dev/null || fail "init d = 1024"
named_model=0
for extra in $(seq 0 25 450); do
  bash -c 'ulimit -v "$1" && shift && "$@"; exit $?' _ $((hi + extra * 1024)) "$HARMONIC" info "$tmp/h1024" >/dev/null 2>"$tmp/err.txt"
  rc=$?
  err=$(cat "$tmp/err.txt")
  [ $rc -eq 0 ] && continue
  case "$err" in
    *"$tmp/h1024/model.safetensors: "*) pass ;;
    *) fail "info under $((hi / 1024 + extra)) MB: exit status $rc, message: $err" ;;
  esac
  case "$err" in *"out of memory building the model config.json describes (36200448 parameters, 0.14 GB as F32)"*) named_model=1 ;; esac
done
[ $named_model -eq 1 ] && pass || fail "no cap ended in the out-of-memory message naming the model's size"
finish
