#!/usr/bin/env bash
# End-to-end test of the `harmonic` command-line tool: init / info / score, and the exit status
# and message of each kind of bad input. Run by CTest with HARMONIC=<binary>.
set -u
source "$(dirname "$0")/testlib.sh"

# expect_error "description" "phrase in stderr" command...
expect_error() {
  local what=$1 phrase=$2
  shift 2
  local err
  err=$("$@" 2>&1 >/dev/null)
  local rc=$?
  if [ $rc -ne 1 ]; then fail "$what: exit status $rc, expected 1 ($err)"; return; fi
  case "$err" in *"$phrase"*) pass ;; *) fail "$what: stderr lacks '$phrase': $err" ;; esac
}

# init + info: the parameter line is the closed form 2·V·d + 34·d² + 24·d (V = 256, d = 64).
"$HARMONIC" init --model harmonic --d-model 64 --seed 1 --out "$tmp/h" >/dev/null || fail "init harmonic"
out=$("$HARMONIC" info "$tmp/h")
grep -qx "parameters: 173568" <<<"$out" && pass || fail "info harmonic: $out"
"$HARMONIC" init --model harmonic --d-model 64 --routing raw --out "$tmp/hraw" >/dev/null
grep -qx "parameters: 165376" <<<"$("$HARMONIC" info "$tmp/hraw")" && pass || fail "raw routing drops 2·d² parameters"
"$HARMONIC" init --model harmonic --d-model 64 --timescales 16,16,16 --cell selective --out "$tmp/hflat" >/dev/null
grep -qx "parameters: 173568" <<<"$("$HARMONIC" info "$tmp/hflat")" && pass || fail "flat/selective keep the count"
for m in transformer mamba; do
  "$HARMONIC" init --model $m --d-model 64 --out "$tmp/$m" >/dev/null || fail "init $m"
  n=$("$HARMONIC" info "$tmp/$m" | sed -n 's/^parameters: //p')
  # within 3% of Harmonic's 173568
  if [ -n "$n" ] && [ $(( (n - 173568) * 100 / 173568 )) -ge -3 ] && [ $(( (n - 173568) * 100 / 173568 )) -le 3 ]; then pass; else fail "$m parameters $n not within 3%"; fi
done

# score: CSV header and one row per scored token; mean printed.
printf 'The quick brown fox jumps over the lazy dog.\nÜber naïve café — 東京.\n' >"$tmp/text.txt"
bytes=$(wc -c <"$tmp/text.txt")
out=$("$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/text.txt" --chunk 7 --out "$tmp/s.csv") || fail "score"
grep -q "mean bpt:" <<<"$out" && pass || fail "score prints the mean: $out"
[ "$(head -1 "$tmp/s.csv")" = "index,byte_offset,token_id,bpt" ] && pass || fail "CSV header"
[ "$(($(wc -l <"$tmp/s.csv") - 1))" -eq $((bytes - 1)) ] && pass || fail "CSV has one row per scored byte token"
# chunked scoring does not depend on the chunk size (mean to 3 decimals)
m7=$(sed -n 's/^mean bpt: //p' <<<"$out")
m1000=$("$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/text.txt" --chunk 1000 | sed -n 's/^mean bpt: //p')
[ "$m7" = "$m1000" ] && pass || fail "mean bpt differs by chunk size: $m7 vs $m1000"

# bad input: exit 1, message names the file or flag
expect_error "missing checkpoint" "$tmp/nope" "$HARMONIC" info "$tmp/nope"
expect_error "missing text" "$tmp/none.txt" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/none.txt"
: >"$tmp/empty.txt"
expect_error "empty text" "empty" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/empty.txt"
printf 'ok\xff\xfe bad' >"$tmp/bad.txt"
expect_error "invalid UTF-8" "UTF-8" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/bad.txt"
printf 'a\0b\0c' >"$tmp/bin.txt"
expect_error "binary text" "binary" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/bin.txt"
expect_error "unknown model" "unknown model_type 'lstm'" "$HARMONIC" init --model lstm --d-model 8 --out "$tmp/x"
expect_error "bad timescales" "--timescales" "$HARMONIC" init --model harmonic --d-model 8 --timescales 4,x --out "$tmp/x"
expect_error "bad routing" "harmonic.routing" "$HARMONIC" init --model harmonic --d-model 8 --routing up --out "$tmp/x"
expect_error "bad chunk" "--chunk" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/text.txt" --chunk 0
# CLI11 converted with strtoll, which saturated this to 2^63 - 1 without a word.
expect_error "huge chunk" "--chunk: '99999999999999999999' is out of range" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/text.txt" --chunk 99999999999999999999
expect_error "bad device" "--device" "$HARMONIC" score --checkpoint "$tmp/h" --text "$tmp/text.txt" --device tpu
expect_error "kernel benchmark with --train" "--kernels" "$HARMONIC" bench --kernels --train
# Without a GPU (CI) the kernel benchmark says why it cannot run (on the GPU machine it would run).
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect_error "kernel benchmark without a GPU" "--kernels:" "$HARMONIC" bench --kernels --quick
fi
mkdir -p "$tmp/broken" && cp "$tmp/h/config.json" "$tmp/broken/" && head -c 100 "$tmp/h/model.safetensors" >"$tmp/broken/model.safetensors"
expect_error "truncated weights" "model.safetensors" "$HARMONIC" info "$tmp/broken"
"$HARMONIC" score --checkpoint "$tmp/h" >/dev/null 2>&1
[ $? -ne 0 ] && pass || fail "missing --text must fail"

# analyze (Qt builds only): the headless figure set of two models, every format.
if "$HARMONIC" --help 2>/dev/null | grep -qE "^ +analyze"; then
  export QT_QPA_PLATFORM=offscreen
  out=$("$HARMONIC" analyze --checkpoint "$tmp/h" --checkpoint "$tmp/mamba" --text "$tmp/text.txt" --device cpu \
        --out "$tmp/figs" --formats pdf,svg,png,csv --dpi 150 2>&1) || fail "analyze: $out"
  for ext in pdf svg png csv; do
    n=$(find "$tmp/figs" -name "*.$ext" -size +0 | wc -l)
    [ "$n" -ge 3 ] && pass || fail "analyze wrote $n .$ext files"
  done
  head -c 4 "$(find "$tmp/figs" -name '*.pdf' | head -1)" | grep -q '%PDF' && pass || fail "analyze PDF header"
  expect_error "analyze bad formats" "--formats" "$HARMONIC" analyze --checkpoint "$tmp/h" --text "$tmp/text.txt" --out "$tmp/f2" --formats gif
  expect_error "analyze mixed tokenizers or bad checkpoint" "$tmp/nope" "$HARMONIC" analyze --checkpoint "$tmp/nope" --text "$tmp/text.txt" --out "$tmp/f3"
fi

# train: the Transformer's attention window is the training length unless --window says otherwise;
# a vocabulary smaller than the tokenizer's is refused; --vocab-size widens the head.
for i in $(seq 1 200); do echo "line $i: the quick brown fox jumps over the lazy dog."; done >"$tmp/train.txt"
small=(--d-model 16 --data "$tmp/train.txt" --seq-len 32 --batch 2 --steps 2 --device cpu --cache-dir "$tmp/cache")
"$HARMONIC" train --model transformer "${small[@]}" --out "$tmp/tf_run" >/dev/null 2>&1 || fail "train transformer"
grep -q '"context": 32' "$tmp/tf_run/config.json" && pass || fail "window is not --seq-len: $(cat "$tmp/tf_run/config.json")"
"$HARMONIC" train --model transformer "${small[@]}" --window 64 --out "$tmp/tf_run64" >/dev/null 2>&1 || fail "train --window"
grep -q '"context": 64' "$tmp/tf_run64/config.json" && pass || fail "--window 64 not kept"
"$HARMONIC" train --model harmonic "${small[@]}" --vocab-size 300 --head full --no-cuda-graph --out "$tmp/h300" >/dev/null 2>&1 || fail "train --vocab-size --head full --no-cuda-graph"
grep -q '"vocab_size": 300' "$tmp/h300/config.json" && pass || fail "--vocab-size 300 not kept"
grep -q '"fused_head": false' "$tmp/h300/config.json" "$tmp/h300"/step-*/trainer_state.json 2>/dev/null && pass || fail "--head full not kept"
expect_error "train vocabulary smaller than the tokenizer's" "--vocab-size 100" "$HARMONIC" train --model harmonic "${small[@]}" --vocab-size 100 --out "$tmp/h100"
expect_error "train unknown --head" "--head" "$HARMONIC" train --model harmonic "${small[@]}" --head sideways --out "$tmp/hside"

finish
