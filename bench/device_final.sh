#!/usr/bin/env bash
# One GPU-machine call: build the non-GUI targets, train the demo checkpoints in the background,
# meanwhile run every test suite (CPU + GPU + kernels), the CLI and kill/resume tests and the model
# benchmark; then collect everything under $OUT (logs in one tar, the demo checkpoints in another).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" logs
DEPS=${HARMONIC_DEPS_DIR:-$PWD/.deps}
export LD_LIBRARY_PATH=$DEPS/lib:${LD_LIBRARY_PATH:-}
cmake -S . -B build -G Ninja -DHARMONIC_GUI=OFF -DCMAKE_BUILD_TYPE=Release -DHARMONIC_DEPS_DIR=$DEPS >logs/cmake.log 2>&1 || { tail -30 logs/cmake.log; exit 1; }
ninja -k 0 -C build all >logs/build.log 2>&1 || grep -E "error|FAILED" logs/build.log | head -30
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee logs/gpu.txt
(BUDGET_S=${BUDGET_S:-200} bash bench/train_demo.sh > logs/train_demo.log 2>&1) &
train_pid=$!
./build/tests/test_core > logs/test_core.log 2>&1; tail -2 logs/test_core.log
./build/tests/test_model > logs/test_model.log 2>&1; tail -4 logs/test_model.log
HARMONIC=./build/app/harmonic FIXTURES=tests/fixtures bash tests/cli_test.sh > logs/cli_test.log 2>&1; tail -1 logs/cli_test.log
HARMONIC=./build/app/harmonic bash tests/train_kill_test.sh > logs/train_kill.log 2>&1; tail -1 logs/train_kill.log
for prec in bf16; do for mode in "" "--train"; do
  ./build/app/harmonic bench --model harmonic,transformer,mamba --d-model 256 --vocab-size 50257 \
    --seq-len 1024,8192,32768 --batch 2 --precision $prec $mode 2>&1 | tee -a logs/bench_models.log
done; done
[ -x build/bench/bench_kernels ] && ./build/bench/bench_kernels > logs/bench_kernels.log 2>&1
wait $train_pid
tail -12 logs/train_demo.log
tar -cf "$OUT/logs.tar" logs
cp "$OUT/demo.tar" "$OUT/demo.tar" 2>/dev/null; true
