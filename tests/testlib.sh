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
# expect_failure "description" "glob for stderr" command...: exit status 1 and a message matching
# the glob; a command still running after 120 s counts as hung (status 124) and fails.
expect_failure() {
  local what=$1 pattern=$2
  shift 2
  local err
  err=$(timeout 120 "$@" 2>&1 >/dev/null)
  local rc=$?
  if [ $rc -eq 124 ]; then fail "$what: hung (killed after 120 s)"; return; fi
  if [ $rc -ne 1 ]; then fail "$what: exit status $rc, expected 1 ($err)"; return; fi
  # shellcheck disable=SC2254
  case "$err" in $pattern) pass ;; *) fail "$what: stderr does not match '$pattern': $err" ;; esac
}
