#!/usr/bin/env bash
# The real window end to end: small random checkpoints of all three families (harmonic init),
# a text, `harmonic-studio --screenshot`, then test_gui checks that the picture shows the views.
# Run by CTest with HARMONIC, STUDIO and TEST_GUI set to the binaries. Uses Xvfb (the real xcb
# platform) when xvfb-run is installed, else the offscreen platform.
set -eu
: "${HARMONIC:?set HARMONIC to the harmonic binary}" "${STUDIO:?set STUDIO to harmonic-studio}" "${TEST_GUI:?set TEST_GUI to test_gui}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in harmonic transformer mamba; do
  "$HARMONIC" init --model "$m" --d-model 64 --seed 1 --out "$tmp/$m" >/dev/null
done
for i in $(seq 1 40); do
  printf 'The slow levels of the hierarchy summarise what the fast ones saw. Über naïve café — %s.\n' "$i"
done >"$tmp/text.txt"
run=("$STUDIO" --checkpoint "$tmp/harmonic" --checkpoint "$tmp/transformer" --checkpoint "$tmp/mamba"
     --text "$tmp/text.txt" --device cpu --settings "$tmp/settings.ini" --screenshot "$tmp/studio.png")
if command -v xvfb-run >/dev/null 2>&1; then
  QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1920x1200x24" "${run[@]}"
else
  QT_QPA_PLATFORM=offscreen "${run[@]}"
fi
HARMONIC_SCREENSHOT="$tmp/studio.png" QT_QPA_PLATFORM=offscreen "$TEST_GUI" "[screenshot]"
if [ -n "${KEEP_SCREENSHOT:-}" ]; then cp "$tmp/studio.png" "$KEEP_SCREENSHOT"; fi
