#!/usr/bin/env bash
# On the GPU machine, in one call: whole-model `harmonic bench` rows for the working tree and for
# other versions of some files, so a kernel change is seen in the model's step time.
#   AB_BENCH="--model mamba --seq-len 8192 --batch 2 --train" [AB_ROUNDS=2] \
#     bash bench/device/model_ab_device.sh VARIANT_DIR...
# Each VARIANT_DIR holds one version's files at their repository paths (as for
# kernels_ab_device.sh); carry them and ".deps". AB_BENCH is one set of `harmonic bench` arguments,
# or several separated by ';'; the 28M configuration (--d-model 256 --vocab-size 50257 --precision
# bf16) is added to each. Every version is built as its own `harmonic`, then the rows run version
# after version, AB_ROUNDS rounds, so that the card's drift falls on each. Logs go to
# $OUT/model_ab.log.
set -uo pipefail
[ -n "${AB_BENCH:-}" ] || { echo "model_ab_device.sh: set AB_BENCH to the harmonic bench arguments"; exit 2; }
. bench/device/device_lib.sh
device_ab_start model_ab_device.sh "$@"
LOG=$OUT/model_ab.log
cp "$OUT/gpu.txt" "$LOG"

device_build "$OUT" harmonic || exit 1
echo "new: built at ${SECONDS}s"
mkdir -p /tmp/model_ab
cp build/app/harmonic /tmp/model_ab/harmonic_new
build_variant() {
  ninja -C build harmonic >"$OUT/build_$1.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build_$1.log" | head -20; return 1; }
  cp build/app/harmonic "/tmp/model_ab/harmonic_$1"
}
build_variants /tmp/model_ab build_variant "$@"

M28="--d-model 256 --vocab-size 50257 --precision bf16"
IFS=';' read -ra benches <<<"$AB_BENCH"
for r in $(seq 1 "$ROUNDS"); do
  for b in "${benches[@]}"; do
    for v in $names; do
      echo "== round $r, $v: harmonic bench $b" | tee -a "$LOG"
      # shellcheck disable=SC2086
      timeout 150 "/tmp/model_ab/harmonic_$v" bench $b $M28 2>&1 | tee -a "$LOG" | grep -E "^(model|[a-z]+ +[0-9])" | tail -6
    done
  done
done
