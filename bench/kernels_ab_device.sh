#!/usr/bin/env bash
# On the GPU machine, in one call: a kernel change tested and timed against the code before it.
#   bash bench/kernels_ab_device.sh BASE_DIR [ROUNDS]
# BASE_DIR holds the files of the base version at their repository paths (for example
# BASE_DIR/kernels/cuda/linear_scan.cu, from `git show main:kernels/cuda/linear_scan.cu`); carry it
# and ".deps". The script builds the kernel benchmark and tests of the working tree ("new"), runs
# the kernel tests, builds the benchmark again with BASE_DIR's files swapped in ("base"), then times
# `bench_kernels --quick` of new and base alternately ROUNDS times each (default 2), so that the
# card's drift falls on both. Logs and reports go to $OUT.
set -uo pipefail
BASE=${1:?usage: kernels_ab_device.sh BASE_DIR [ROUNDS]}
ROUNDS=${2:-2}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
[ -d "$BASE" ] || { echo "kernels_ab_device.sh: $BASE: no such folder"; exit 2; }
export PATH=/usr/local/cuda/bin:$PATH
PY=/opt/torch/.venv/bin/python
TORCH_LIB=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH=$TORCH_LIB:${HARMONIC_DEPS_DIR:-$PWD/.deps}/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

. bench/device_lib.sh

device_build "$OUT" test_kernels_only bench_kernels || exit 1
echo "new: built at ${SECONDS}s"
mkdir -p /tmp/ab
cp build/bench/bench_kernels /tmp/ab/bench_new

echo "== kernel tests (new)"
timeout 300 build/bench/test_kernels_only "[kernels]" -d yes >"$OUT/test_kernels.log" 2>&1
echo "exit $?"
grep -E "^\[kernels\]" "$OUT/test_kernels.log" \
  | awk '{r=$(NF-2)/($NF>1e-30?$NF:1e-30); if (r>m) {m=r; w=$0}} END {print "largest cuda/ref error ratio:", m; print w}'
grep -hE "FAILED|failed|passed" "$OUT/test_kernels.log" | tail -8

# The base: swap BASE's files in, build, swap the new ones back (ninja rebuilds from timestamps).
files=$(cd "$BASE" && find . -type f | sed 's|^\./||')
for f in $files; do cp "$f" "/tmp/ab/new.$(echo "$f" | tr / _)" && cp "$BASE/$f" "$f"; done
ninja -C build bench_kernels >"$OUT/build_base.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build_base.log" | head -20; exit 1; }
cp build/bench/bench_kernels /tmp/ab/bench_base
for f in $files; do cp "/tmp/ab/new.$(echo "$f" | tr / _)" "$f"; done
echo "base: built at ${SECONDS}s"

for r in $(seq 1 "$ROUNDS"); do
  for v in new base; do
    timeout 200 /tmp/ab/bench_$v --quick --out "$OUT/bench_${v}_$r.txt" >/dev/null 2>&1
    echo "round $r $v: exit $? at ${SECONDS}s"
  done
done
# Scan rows side by side: name, then new's and base's % of copy in each round.
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: % of copy (new | base)"
  paste -d'|' <(grep -E "^(linear|level) " "$OUT/bench_new_$r.txt") <(grep -E "^(linear|level) " "$OUT/bench_base_$r.txt") \
    | awk -F'|' '{n=$1; b=$2; match(n, /[0-9.]+% of copy/); pn=substr(n, RSTART, RLENGTH-9);
                  match(b, /[0-9.]+% of copy/); pb=substr(b, RSTART, RLENGTH-9);
                  name=substr(n, 1, 52); printf "%-52s %6s | %6s\n", name, pn, pb}'
done
if [ "$SECONDS" -lt 450 ]; then
  HARMONIC_LIN_BWD_VEC=2 timeout 120 /tmp/ab/bench_new --quick --out "$OUT/bench_new_bwdvec2.txt" >/dev/null 2>&1
  echo "new with HARMONIC_LIN_BWD_VEC=2: exit $?"
  grep -E "^level bwd" "$OUT/bench_new_bwdvec2.txt"
fi
