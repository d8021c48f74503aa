#!/usr/bin/env bash
# Every input the tool opens given as a FIFO with no writer (or a device): refused at once with a
# message naming it, never a hang in open(2). expect_failure runs each command under `timeout`, so
# a hang fails the test instead of blocking CTest. Run by CTest with HARMONIC=<binary>.
set -u
source "$(dirname "$0")/testlib.sh"

# expect_refused "description" "file named in the message" command...
expect_refused() {
  local what=$1 file=$2
  shift 2
  expect_failure "$what" "*$file*not a regular file*" "$@"
}

"$HARMONIC" init --model harmonic --d-model 16 --out "$tmp/h" >/dev/null || fail "init"
printf 'Some text to score.\n' >"$tmp/text.txt"
mkfifo "$tmp/fifo"

expect_refused "score --text FIFO" "$tmp/fifo" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/fifo"
expect_refused "score --text /dev/zero" "/dev/zero" "$HARMONIC" score --checkpoint "$tmp/h" --text /dev/zero
expect_refused "eval --data FIFO" "$tmp/fifo" "$HARMONIC" eval --checkpoint "$tmp/h" --data "$tmp/fifo" --cache-dir "$tmp/cache"

# A checkpoint folder whose files are FIFOs, one at a time.
for f in config.json model.safetensors; do
  rm -rf "$tmp/c" && cp -r "$tmp/h" "$tmp/c" && rm "$tmp/c/$f" && mkfifo "$tmp/c/$f"
  expect_refused "info with $f a FIFO" "$tmp/c/$f" "$HARMONIC" info "$tmp/c"
  expect_refused "score with $f a FIFO" "$tmp/c/$f" "$HARMONIC" score --checkpoint "$tmp/c" --text "$tmp/text.txt"
done
# A BPE checkpoint's tokenizer.json.
rm -rf "$tmp/c" && cp -r "$tmp/h" "$tmp/c" && mkfifo "$tmp/c/tokenizer.json"
sed -i 's/"tokenizer": *"bytes"/"tokenizer": "bpe"/' "$tmp/c/config.json"
grep -q '"bpe"' "$tmp/c/config.json" || fail "could not switch the config to BPE"
expect_refused "info with tokenizer.json a FIFO" "$tmp/c/tokenizer.json" "$HARMONIC" info "$tmp/c"
expect_refused "init --vocab FIFO" "$tmp/fifo" "$HARMONIC" init --model harmonic --d-model 16 --vocab "$tmp/fifo" --out "$tmp/x"
expect_refused "train --tokenizer FIFO" "$tmp/fifo" "$HARMONIC" train --model harmonic --d-model 16 --tokenizer "$tmp/fifo" \
  --data "$tmp/text.txt" --steps 1 --out "$tmp/run" --device cpu
expect_refused "train --config FIFO" "$tmp/fifo" "$HARMONIC" train --config "$tmp/fifo" \
  --data "$tmp/text.txt" --steps 1 --out "$tmp/run2" --device cpu
finish
