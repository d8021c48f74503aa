#!/usr/bin/env bash
# The CPU path's numbers (docs/BENCHMARKS.md § CPU path), on a machine without a GPU:
# `harmonic score` of the demo text repeated 8 times (87,184 tokens) through each demo model, and
# `harmonic analyze` of the demo text with all three, wall seconds each. To compare two builds run
# it with HARMONIC=path/to/other/harmonic alternately with this one: a shared machine's speed drifts.
# Usage: bash bench/cpu_path.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
H=${HARMONIC:-build/app/harmonic}
ROUNDS=${1:-1}
[ -x "$H" ] || { echo "bench/cpu_path.sh: $H is not built (run scripts/build, or set HARMONIC)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for _ in 1 2 3 4 5 6 7 8; do cat resources/demo/demo.txt; done >"$tmp/demo8.txt"
seconds() {  # wall time of a command; its output only when it fails
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}
echo "# $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u +%FT%TZ), $H"
for r in $(seq 1 "$ROUNDS"); do
  for m in harmonic transformer mamba; do
    t=$(seconds "$H" score --checkpoint resources/demo/$m --text "$tmp/demo8.txt" --device cpu) || exit 1
    echo "round $r  score $m (87,184 tokens): $t s"
  done
  rm -rf "$tmp/figs"
  t=$(seconds "$H" analyze --checkpoint resources/demo/harmonic --checkpoint resources/demo/transformer \
      --checkpoint resources/demo/mamba --text resources/demo/demo.txt --out "$tmp/figs" --formats csv --device cpu) || exit 1
  echo "round $r  analyze, 3 models (10,898 tokens, CSV): $t s"
done
