#!/usr/bin/env bash
# Peak resident memory of `harmonic score` against the length of the text (docs/results/score_memory.md):
# for each size, a text made of resources/demo/demo.txt repeated, scored with and without --out,
# peak RSS from /usr/bin/time -v (kB) and wall seconds. The model is small on purpose (what is
# measured is what grows with the text, not the model): a Harmonic of width 32 made with
# `harmonic init`, or CHECKPOINT=folder, scored in 16K-token chunks on one thread (OMP_NUM_THREADS=1;
# on a shared machine more threads only spin), which changes the speed, not what is kept. Flat is
# the goal. OUT="no yes" (default) runs each size without and with --out; OUT=yes only with.
# Usage: bash bench/score_memory.sh [SIZES_MB...]   (default: 1 10 100; add 1000 for 1 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
H=${HARMONIC:-build/app/harmonic}
[ -x "$H" ] || { echo "bench/score_memory.sh: $H is not built (run scripts/build, or set HARMONIC)" >&2; exit 1; }
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1 10 100)
tmp=${TMPDIR:-/tmp}/score_memory.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
CKPT=${CHECKPOINT:-$tmp/model}
[ -n "${CHECKPOINT:-}" ] || "$H" init --model harmonic --d-model 32 --seed 1 --out "$CKPT" >/dev/null

# A block of at least 1 MB of the demo text, repeated to make each size.
block="$tmp/block.txt"
for _ in $(seq 1 $((1000 * 1000 / $(wc -c <resources/demo/demo.txt) + 1))); do cat resources/demo/demo.txt; done >"$block"

echo "# $(nproc --all) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GB," \
     "$(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), $H, checkpoint $CKPT"
printf '%8s  %-6s %12s %12s %9s\n' "text_MB" "out" "tokens" "peak_rss_MB" "wall_s"
for mb in "${SIZES[@]}"; do
  text="$tmp/text-$mb.txt"
  bytes=$((mb * 1000 * 1000))
  for ((i = 0; i <= mb; i++)); do cat "$block"; done 2>/dev/null | head -c "$bytes" >"$text" || true
  for out in ${OUT:-no yes}; do
    args=(score --checkpoint "$CKPT" --text "$text" --device cpu --chunk 16384)
    [ "$out" = yes ] && args+=(--out "$tmp/scores.csv")
    /usr/bin/time -v -o "$tmp/time.txt" "$H" "${args[@]}" >"$tmp/log" 2>&1 || { cat "$tmp/log" "$tmp/time.txt" >&2; exit 1; }
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time.txt")
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/time.txt")
    tokens=$(sed -n 's/^tokens: //p' "$tmp/log")
    printf '%8s  %-6s %12s %12.1f %9s\n' "$mb" "$out" "$tokens" "$(echo "$rss / 1024" | bc -l)" "$wall"
    rm -f "$tmp/scores.csv"
  done
  rm -f "$text"
done
