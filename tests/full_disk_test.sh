#!/usr/bin/env bash
# Every writer on a full file system (a 64 KB tmpfs): exit status 1, a message naming the file and
# "No space left on device", and no partial file left where a reader could see it. Needs root to
# mount; exits 77 (skipped) with the reason otherwise. Run by CTest with HARMONIC=<binary>.
set -u
source "$(dirname "$0")/testlib.sh"

full="$tmp/full"
mkdir -p "$full"
if ! mount -t tmpfs -o size=64k tmpfs "$full" 2>"$tmp/mount.err"; then
  echo "skipped: cannot mount a tmpfs here ($(cat "$tmp/mount.err")); this test needs root"
  exit 77
fi
trap 'umount "$full" 2>/dev/null; cleanup' EXIT

# expect_no_space "description" "file named in the message" command...
expect_no_space() {
  local what=$1 file=$2
  shift 2
  expect_failure "$what" "*$file*No space left on device*" "$@"
}
# Nothing but `keep` may be left on the tmpfs (no temporary files, no partial outputs).
expect_clean() {
  local what=$1 left
  left=$(cd "$full" && find . -mindepth 1 ! -name filler | sort | tr '\n' ' ')
  [ -z "$left" ] && pass || fail "$what: left behind: $left"
}

"$HARMONIC" init --model harmonic --d-model 16 --out "$tmp/h" >/dev/null || fail "init"
# 40 KB of text: a 1 MB CSV, which cannot fit.
for i in $(seq 1 1000); do echo "line $i of a text that is scored byte by byte."; done >"$tmp/text.txt"

expect_no_space "score --out on a full disk" "$full/s.csv" \
  "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/text.txt" --out "$full/s.csv"
expect_clean "score --out"
# The same output on a disk with room is whole: a header and one row per scored byte.
"$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/text.txt" --out "$tmp/s.csv" >/dev/null || fail "score --out with room"
[ "$(($(wc -l <"$tmp/s.csv") - 1))" -eq $(($(wc -c <"$tmp/text.txt") - 1)) ] && pass || fail "the CSV with room is whole"

expect_no_space "init --out (a checkpoint) on a full disk" "$full/ckpt/model.safetensors" \
  "$HARMONIC" init --model harmonic --d-model 64 --out "$full/ckpt"
[ ! -e "$full/ckpt/config.json" ] && pass || fail "a failed checkpoint write left a config.json"
rm -rf "$full/ckpt"
expect_clean "init --out"

# A nearly full disk: the small eval table does not fit either.
dd if=/dev/zero of="$full/filler" bs=1k count=64 2>/dev/null
expect_no_space "eval --out on a full disk" "$full/e.csv" \
  "$HARMONIC" eval --checkpoint "$tmp/h" --data "$tmp/text.txt" --context 64 --out "$full/e.csv" --cache-dir "$tmp/cache"
expect_clean "eval --out"
rm -f "$full/filler"

# Training: the run folder on a full disk ends with the file named, not a crash.
err=$("$HARMONIC" train --model harmonic --d-model 64 --data "$tmp/text.txt" --seq-len 32 --batch 1 --steps 2 \
  --device cpu --out "$full/run" --cache-dir "$tmp/cache" 2>&1 >/dev/null)
rc=$?
[ $rc -eq 1 ] && pass || fail "train on a full disk: exit status $rc ($err)"
case "$err" in *"$full/run"*"No space left on device"*) pass ;; *) fail "train on a full disk: $err" ;; esac
finish
