# Sourced by the shell tests: a temporary folder $tmp removed on exit (with any background
# process whose pid the test adds to `pids`), pass/fail counters, the closing summary, and the
# skip of the GPU-only tests.
: "${HARMONIC:?set HARMONIC to the harmonic binary}"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
passes=0
pass() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# The last line of a test: the counts, and status 0 only when nothing failed.
finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
}
# GPU-only tests: exit 77 (CTest reports it as skipped) with the reason where no CUDA GPU is present.
require_gpu() {
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "skipped: no CUDA GPU on this machine (this test runs on the GPU machine)"
    exit 77
  fi
}
