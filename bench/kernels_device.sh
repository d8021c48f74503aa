#!/usr/bin/env bash
# On the GPU machine, in one call: the kernel tests and the kernel benchmark, then the project's
# non-GUI build and test_model "[kernels]". Logs go to $OUT (the device tool brings them back).
# Carry ".deps" (scripts/device_deps). Usage: bash bench/kernels_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
PY=/opt/torch/.venv/bin/python
TORCH_LIB=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
DEPS=${HARMONIC_DEPS_DIR:-$PWD/.deps}
export LD_LIBRARY_PATH=$TORCH_LIB:$DEPS/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
BUDGET=${KERNELS_BUDGET_S:-570}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"

. bench/device_lib.sh

device_configure "$OUT" && ninja -C build test_kernels_only bench_kernels >"$OUT/build_kernels.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build_kernels.log" | head -30; exit 1; }
echo "kernel targets built at ${SECONDS}s"
TK=build/bench/test_kernels_only
BK=build/bench/bench_kernels

echo "== kernel tests ($TK)"
timeout 300 "$TK" "[kernels]" -d yes >"$OUT/test_kernels.log" 2>&1
echo "exit $?"
HARMONIC_SEL_WARPS=8 timeout 120 "$TK" "selective scan*" -d yes >"$OUT/test_kernels_sel8.log" 2>&1
echo "selective scan with 8-warp blocks: exit $?"
HARMONIC_LIN_STAGE=0 timeout 150 "$TK" "linear scan*,level scan*" -d yes >"$OUT/test_kernels_lin_blocks.log" 2>&1
echo "linear and level scans, backward inputs in registers: exit $?"
cat "$OUT/test_kernels.log" "$OUT/test_kernels_sel8.log" "$OUT/test_kernels_lin_blocks.log" | grep -E "^\[kernels\]" \
  | awk '{r=$(NF-2)/($NF>1e-30?$NF:1e-30); if (r>m) {m=r; w=$0}} END {print "largest cuda/ref error ratio:", m; print w}'
grep -hE "FAILED|failed|passed" "$OUT/test_kernels.log" "$OUT/test_kernels_sel8.log" "$OUT/test_kernels_lin_blocks.log" | tail -12

echo "== kernel benchmark ($BK)"
timeout 240 "$BK" --out "$OUT/bench_kernels.txt" 2>&1 | tail -60

echo "== ncu (clocks left alone)"
timeout 150 ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats \
  --section WarpStateStats -k regex:"lin_fwd|lin_bwd|sel_fwd" -c 5 "$BK" --profile >"$OUT/ncu.txt" 2>&1
echo "ncu exit $?"
grep -E "lin_fwd|lin_bwd|sel_fwd|Memory Throughput|DRAM Throughput|Duration|Achieved Occupancy|Registers Per|Theoretical Occ" "$OUT/ncu.txt" | head -60

for o in linear_scan selective_scan; do
  cuobjdump -sass "build/kernels/CMakeFiles/harmonic_kernels.dir/cuda/$o.cu.o" 2>/dev/null \
    | grep -oE "(LDG|STG|LDS|STS|RED|ATOMG|LDL|STL)(\.[A-Z0-9]+)*" | sort | uniq -c >"$OUT/sass_$o.txt"
done

left=$((BUDGET - SECONDS))
echo "== project build (test_model harmonic bench_kernels), ${left}s left"
if [ "$left" -gt 120 ]; then
  device_configure "$OUT" && timeout $((left - 60)) ninja -C build test_model harmonic bench_kernels >"$OUT/build.log" 2>&1
  echo "build exit $?"; grep -E "error|FAILED" "$OUT/build.log" | head -20
  left=$((BUDGET - SECONDS))
  if [ -x build/tests/test_model ] && [ "$left" -gt 30 ]; then
    timeout $((left - 10)) ./build/tests/test_model "[kernels]" >"$OUT/test_model_kernels.log" 2>&1
    echo "test_model [kernels] exit $?"; tail -3 "$OUT/test_model_kernels.log"
  fi
fi
