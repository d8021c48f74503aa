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
     --text "$tmp/text.txt" --device cpu --settings "$tmp/settings.ini")
# shot SCREEN FILE [ARGS...]: the window on a display of SCREEN (WxH) rendered to FILE.
shot() {
  local screen=$1 file=$2
  shift 2
  if command -v xvfb-run >/dev/null 2>&1; then
    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 ${screen}x24" "${run[@]}" --screenshot "$file" "$@"
  else
    QT_QPA_PLATFORM=offscreen "${run[@]}" --screenshot "$file" "$@"
  fi
}
# Explicit size on a large display, then the size it opens with on a 1280x800 laptop.
shot 1920x1200 "$tmp/studio.png" --size 1600x1000
HARMONIC_SCREENSHOT="$tmp/studio.png" HARMONIC_SCREENSHOT_SIZE=1600x1000 QT_QPA_PLATFORM=offscreen "$TEST_GUI" "[screenshot]"
rm -f "$tmp/settings.ini"  # a fresh start: no window size remembered from the first run
shot 1280x800 "$tmp/studio_laptop.png"
if command -v xvfb-run >/dev/null 2>&1; then
  HARMONIC_SCREENSHOT="$tmp/studio_laptop.png" HARMONIC_SCREENSHOT_MAX=1280x800 QT_QPA_PLATFORM=offscreen "$TEST_GUI" "[screenshot]"
fi
if [ -n "${KEEP_SCREENSHOT:-}" ]; then cp "$tmp/studio.png" "$KEEP_SCREENSHOT"; fi
