#!/usr/bin/env bash
# On the GPU machine, in one call: a kernel change tested and timed against other versions.
#   [AB_ROUNDS=2] bash bench/kernels_ab_device.sh VARIANT_DIR...
# Each VARIANT_DIR holds one version's files at their repository paths (for example
# .ab/base/kernels/cuda/linear_scan.cu, from `git show main:kernels/cuda/linear_scan.cu`); carry
# them and ".deps". The script builds the kernel benchmark and tests of the working tree ("new"),
# runs the kernel tests, builds the benchmark again with each variant's files swapped in (named by
# its folder), then times `bench_kernels --quick` of all of them in turn, AB_ROUNDS rounds, so that
# the card's drift falls on each. AB_NEW_ENV="VAR=VALUE ..." adds a column: the working tree's build
# run under those variables (a benchmark knob). Logs and reports go to $OUT.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: kernels_ab_device.sh VARIANT_DIR..."; exit 2; }
ROUNDS=${AB_ROUNDS:-2}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for d in "$@"; do [ -d "$d" ] || { echo "kernels_ab_device.sh: $d: no such folder"; exit 2; }; done
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

# Each variant: swap its files in, build, swap the working tree's back (ninja rebuilds from timestamps).
names="new"
for dir in "$@"; do
  name=$(basename "$dir")
  files=$(cd "$dir" && find . -type f | sed 's|^\./||')
  for f in $files; do cp "$f" "/tmp/ab/new.$(echo "$f" | tr / _)" && cp "$dir/$f" "$f"; done
  ninja -C build bench_kernels >"$OUT/build_$name.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build_$name.log" | head -20; exit 1; }
  cp build/bench/bench_kernels "/tmp/ab/bench_$name"
  for f in $files; do cp "/tmp/ab/new.$(echo "$f" | tr / _)" "$f"; done
  echo "$name: built at ${SECONDS}s"
  names="$names $name"
done

if [ -n "${AB_NEW_ENV:-}" ]; then
  printf '#!/bin/sh\nexec env %s /tmp/ab/bench_new "$@"\n' "$AB_NEW_ENV" >/tmp/ab/bench_newenv && chmod +x /tmp/ab/bench_newenv
  names="$names newenv"
  echo "newenv: new under $AB_NEW_ENV"
fi
for r in $(seq 1 "$ROUNDS"); do
  for v in $names; do
    timeout 200 "/tmp/ab/bench_$v" --quick --out "$OUT/bench_${v}_$r.txt" >/dev/null 2>&1
    echo "round $r $v: exit $? at ${SECONDS}s"
  done
done
# Scan rows side by side: the row's name, then each version's % of copy.
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: % of copy ($names)"
  files=""
  for v in $names; do files="$files $OUT/bench_${v}_$r.txt"; done
  awk 'FNR == 1 {k++} /^(linear|level) .*% of copy/ {
         i = FNR; name[i] = substr($0, 1, 52); match($0, /[0-9.]+% of copy/); pct[i, k] = substr($0, RSTART, RLENGTH - 9); if (i > n) n = i }
       END { for (i = 1; i <= n; i++) if (i in name) { line = sprintf("%-52s", name[i]); for (j = 1; j <= k; j++) line = line sprintf(" %6s", pct[i, j]); print line } }' $files
done
