#!/usr/bin/env bash
# GPU out of memory during training: under a forced 3 GB cap (HARMONIC_CUDA_MEMORY_LIMIT_GB), a
# run whose first step needs far more must stop with a message that says what happened and what to
# do, leave its last checkpoint loadable, and continue with --resume once memory allows.
# Needs a CUDA GPU; elsewhere it exits 77, which CTest reports as skipped.
set -u
source "$(dirname "$0")/testlib.sh"
require_gpu
head -c 300000 /dev/urandom | base64 >"$tmp/train.txt"
# 2 x 32768 tokens with a 50,257-way head through the full logits (--head full): ~13 GB of fp32
# logits in the first step.
args=(--model harmonic --d-model 64 --vocab-size 50257 --data "$tmp/train.txt" --seq-len 32768 --batch 2
      --steps 3 --checkpoint-every 1 --eval-every 0 --head full --device cuda --cache-dir "$tmp/cache" --out "$tmp/run")
out=$(HARMONIC_CUDA_MEMORY_LIMIT_GB=3 timeout 300 "$HARMONIC" train "${args[@]}" 2>&1)
status=$?
echo "$out" | tail -2
[ $status = 1 ] && pass || fail "exit status $status under the cap, expected 1"
grep -q "CUDA out of memory at step 1" <<<"$out" && pass || fail "no out-of-memory message: $out"
grep -q "step-0000000, is intact" <<<"$out" && pass || fail "the message does not name the intact checkpoint: $out"
grep -q "terminate called\|Segmentation\|Aborted" <<<"$out" && fail "crashed: $out" || pass
"$HARMONIC" info "$tmp/run" >/dev/null 2>&1 && pass || fail "the last checkpoint does not load"
out=$(timeout 300 "$HARMONIC" train --resume "$tmp/run" 2>&1)
status=$?
[ $status = 0 ] && grep -q "^done: 3 steps" <<<"$out" && pass || fail "resume without the cap: status $status: $out"
finish
