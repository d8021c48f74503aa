#!/usr/bin/env bash
# On the GPU machine, in one call: a kernel change tested and timed against other versions.
#   [AB_ROUNDS=2] bash bench/device/kernels_ab_device.sh VARIANT_DIR...
# Each VARIANT_DIR holds one version's files at their repository paths (for example
# .ab/base/kernels/cuda/linear_scan.cu, from `git show main:kernels/cuda/linear_scan.cu`); carry
# them and ".deps". The script builds the kernel benchmark and tests of the working tree ("new"),
# runs the kernel tests, builds the benchmark again with each variant's files swapped in (named by
# its folder), then times `bench_kernels --quick` of all of them in turn, AB_ROUNDS rounds, so that
# the card's drift falls on each. AB_NEW_ENV="VAR=VALUE ..." adds a column: the working tree's build
# run under those variables (a benchmark knob). AB_NCU="REGEX" then profiles each version's
# `bench_kernels --profile` with ncu (stall reasons, instruction mix, occupancy) for the kernels whose
# demangled names match REGEX, e.g. 'LinMode.3, __nv_bfloat16' (the selective cell in bf16), while
# AB_NCU_BUDGET_S (default 540) seconds of the call are not yet spent (AB_NCU_COUNT kernels,
# default 4; AB_NCU_VERSIONS="new ..." limits it to those versions; each kernel's SASS hot spots
# are printed by scripts/dev/ncu_source_top.py). AB_TEST_VARIANTS="CATCH_FILTER" also runs those kernel tests on each variant (the
# working tree runs all "[kernels]" tests). Logs, reports and profiles go to $OUT/ab_logs.tgz.
set -uo pipefail
. bench/device/device_lib.sh
device_ab_start kernels_ab_device.sh "$@"

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

# Each variant: its files swapped in, the benchmark (and the tests) built and kept, then run.
build_variant() {
  local name=$1 targets="bench_kernels"
  [ -n "${AB_TEST_VARIANTS:-}" ] && targets="$targets test_kernels_only"
  ninja -C build $targets >"$OUT/build_$name.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build_$name.log" | head -20; return 1; }
  cp build/bench/bench_kernels "/tmp/ab/bench_$name"
  if [ -n "${AB_TEST_VARIANTS:-}" ]; then
    timeout 200 build/bench/test_kernels_only "$AB_TEST_VARIANTS" -d yes >"$OUT/test_kernels_$name.log" 2>&1
    echo "$name: kernel tests \"$AB_TEST_VARIANTS\" exit $?"; grep -hE "FAILED|passed|failed" "$OUT/test_kernels_$name.log" | tail -4
  fi
}
build_variants /tmp/ab build_variant "$@"

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
  awk 'FNR == 1 {k++} /^(linear|level|selective) .*% of copy/ {
         i = FNR; name[i] = substr($0, 1, 52); match($0, /[0-9.]+% of copy/); pct[i, k] = substr($0, RSTART, RLENGTH - 9); if (i > n) n = i }
       END { for (i = 1; i <= n; i++) if (i in name) { line = sprintf("%-52s", name[i]); for (j = 1; j <= k; j++) line = line sprintf(" %6s", pct[i, j]); print line } }' $files
done

if [ -n "${AB_NCU:-}" ]; then
  for v in ${AB_NCU_VERSIONS:-$names}; do
    [ "$v" = newenv ] && continue
    if [ "$SECONDS" -gt "${AB_NCU_BUDGET_S:-540}" ]; then echo "ncu $v: skipped, ${SECONDS}s spent"; continue; fi
    timeout 150 ncu --clock-control none --kernel-name-base demangled -k "regex:$AB_NCU" -c "${AB_NCU_COUNT:-4}" \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      --section SchedulerStats --section InstructionStats --section SourceCounters --import-source no \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
      -o "$OUT/ncu_$v" "/tmp/ab/bench_$v" --profile >"$OUT/ncu_$v.log" 2>&1
    echo "ncu $v: exit $? at ${SECONDS}s"
    ncu --import "$OUT/ncu_$v.ncu-rep" >"$OUT/ncu_$v.txt" 2>&1
    # Per SASS instruction: where the warps were sampled stalled (the hot spots of each kernel).
    ncu --import "$OUT/ncu_$v.ncu-rep" --page source --csv --print-source sass >"$OUT/ncu_src_$v.csv" 2>&1
    "$PY" scripts/dev/ncu_source_top.py "$OUT/ncu_src_$v.csv" --top "${AB_NCU_TOP:-30}" 2>&1 | head -400
    # Per kernel: its name, time, issue and the largest stall reasons (ncu's per-instruction cycles).
    awk '/^  [a-z_ ]*.*(lin_|sel_).*\(/ { gsub(/harmonic::kernels::cuda::|\(anonymous namespace\)::/, ""); print substr($0, 1, 110) }
         /Duration|Issue Slots Busy|Warp Cycles Per Issued|Achieved Occupancy|Executed Instructions  / { $1 = $1; print "    " $0 }
         /smsp__average_warps_issue_stalled_/ && $NF + 0 >= 0.3 { sub(/smsp__average_warps_issue_stalled_/, "stall "); sub(/_per_issue_active.ratio/, ""); $1 = $1; print "    " $0 }' \
      "$OUT/ncu_$v.txt" | head -120
  done
fi
# Everything but the GPU's name in one archive: the device tool brings back at most 8 files.
(cd "$OUT" && tar czf ab_logs.tgz --remove-files $(ls | grep -v -e '^gpu.txt$' -e '^ab_logs.tgz$'))
echo "logs: $OUT/ab_logs.tgz"
