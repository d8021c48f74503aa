#!/usr/bin/env bash
# On the GPU machine: trains the three bundled demo checkpoints (byte-level, d = 256, ~2.4M
# parameters each) on the linux-doc corpus, in parallel on one GPU, then scores the test split.
# Stateful training (sequential chunks, state carried): the desktop tool reads long texts in
# carried-state chunks, and models trained on independent windows degrade when their state is
# carried past the training length (bits per byte rise when the state outlives the training window).
# Expects the corpus splits in $CORPUS (default .corpus/, carried from scripts/corpus) and a built
# ./build/app/harmonic. Each run gets a step count sized from a quick throughput probe so that it
# finishes in about $BUDGET_S seconds while the three share the GPU.
set -uo pipefail
OUT=${OUT:-/tmp/out}
CORPUS=${CORPUS:-.corpus}
BUDGET_S=${BUDGET_S:-300}
H=./build/app/harmonic
SEQ=512
BATCH=32
mkdir -p "$OUT" demo
for m in harmonic transformer mamba; do
  tps=$($H bench --model $m --d-model 256 --vocab-size 256 --seq-len $SEQ --batch $BATCH --train --repeats 5 --warmup 2 \
        | awk -v m=$m '$1==m {print $7}')
  # three runs share the GPU: each keeps about half its solo rate
  steps=$(awk -v t="${tps:-10000}" -v b=$BUDGET_S -v n=$((SEQ * BATCH)) 'BEGIN {s = int(t / 2 * b / n); if (s < 200) s = 200; print s}')
  echo "$m: solo ${tps} tok/s -> $steps steps"
  (timeout $((BUDGET_S + 90)) $H train --model $m --d-model 256 --data $CORPUS/train.txt --valid $CORPUS/valid.txt \
      --seq-len $SEQ --batch $BATCH --steps $steps --lr 2e-3 --min-lr 1e-4 --warmup-frac 0.03 \
      --checkpoint-every 500 --eval-every 250 --eval-windows 64 --precision bf16 --stateful --seed 1 --out demo/$m \
      > demo/$m.train.log 2>&1; echo "$m exit $?" >> demo/$m.train.log) &
done
wait
for m in harmonic transformer mamba; do
  tail -3 demo/$m.train.log
  { $H eval --checkpoint demo/$m --data $CORPUS/test.txt --context 512,2048 --device cuda
    $H eval --checkpoint demo/$m --data $CORPUS/test.txt --context 512,2048 --stateful --device cuda; } 2>&1 | tee demo/$m.eval.log
done
# Demo checkpoints in bf16 (small files), plus their logs.
for m in harmonic transformer mamba; do
  mkdir -p pack/$m
  cp demo/$m/config.json demo/$m/log.csv demo/$m.train.log demo/$m.eval.log pack/$m/ 2>/dev/null
  python3 - "$m" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
m = sys.argv[1]
t = load_file(f"demo/{m}/model.safetensors")
save_file({k: v.to(torch.bfloat16) for k, v in t.items()}, f"pack/{m}/model.safetensors", metadata={"format": "pt", "model_type": m})
PY
done
tar -C pack -cf "$OUT/demo.tar" .
ls -la pack/*
