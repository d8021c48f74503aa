# Shared by the GPU-machine scripts (bench/device/*.sh); source it from the repository root.

# device_env: CUDA's tools on PATH, PY the machine's Python (the one that holds PyTorch), and
# LD_LIBRARY_PATH for LibTorch, the carried .deps and CUDA.
device_env() {
  export PATH=/usr/local/cuda/bin:$PATH
  PY=/opt/torch/.venv/bin/python
  local torch_lib
  torch_lib=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
  export LD_LIBRARY_PATH=$torch_lib:${HARMONIC_DEPS_DIR:-$PWD/.deps}/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
}

# device_ab_start SCRIPT VARIANT_DIR...: the A/B scripts' start: at least one variant folder and
# each one present (else a usage line naming SCRIPT, and exit 2), OUT (default /tmp/out) created,
# ROUNDS from AB_ROUNDS (default 2), device_env, and the card's name in $OUT/gpu.txt (printed).
device_ab_start() {
  local script=$1 d
  shift
  [ $# -ge 1 ] || { echo "usage: $script VARIANT_DIR..."; exit 2; }
  for d in "$@"; do [ -d "$d" ] || { echo "$script: $d: no such folder"; exit 2; }; done
  ROUNDS=${AB_ROUNDS:-2}
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT"
  device_env
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
}

# device_configure LOGDIR: configure build/ once for the non-GUI targets against the machine's
# LibTorch and the carried .deps; cmake's output goes to LOGDIR/cmake.log.
device_configure() {
  [ -f build/build.ninja ] && return 0
  cmake -S . -B build -G Ninja -DHARMONIC_GUI=OFF -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH=/opt/torch/.venv/lib/python3.12/site-packages/torch/share/cmake \
    -DHARMONIC_DEPS_DIR="${HARMONIC_DEPS_DIR:-$PWD/.deps}" >"$1/cmake.log" 2>&1 || { tail -20 "$1/cmake.log"; return 1; }
}

# device_build LOGDIR TARGET...: configure, then build the targets into LOGDIR/build.log; on failure
# prints the errors and returns 1.
device_build() {
  local log=$1
  shift
  device_configure "$log" || return 1
  ninja -C build "$@" >"$log/build.log" 2>&1 || { grep -E "error|FAILED" "$log/build.log" | head -30; return 1; }
}

# with_variant_files DIR SAVE_DIR COMMAND...: runs COMMAND with the files under DIR (at their
# repository paths, e.g. DIR/kernels/cuda/linear_scan.cu) in place of the working tree's, then puts
# the working tree's back (copies kept in SAVE_DIR; ninja rebuilds from the timestamps) and returns
# COMMAND's status.
with_variant_files() {
  local dir=$1 save=$2 f files rc
  shift 2
  files=$(cd "$dir" && find . -type f | sed 's|^\./||')
  for f in $files; do cp "$f" "$save/new.$(echo "$f" | tr / _)" && cp "$dir/$f" "$f"; done
  "$@"
  rc=$?
  for f in $files; do cp "$save/new.$(echo "$f" | tr / _)" "$f"; done
  return $rc
}

# build_variants SAVE_DIR BUILD_FUNCTION VARIANT_DIR...: for each folder, BUILD_FUNCTION NAME (NAME
# the folder's name) with that folder's files in place (with_variant_files); sets `names` to "new"
# and the folders' names, in order. Exits the script when a variant fails to build.
build_variants() {
  local save=$1 build=$2 dir name
  shift 2
  names="new"
  for dir in "$@"; do
    name=$(basename "$dir")
    with_variant_files "$dir" "$save" "$build" "$name" || exit 1
    echo "$name: built at ${SECONDS}s"
    names="$names $name"
  done
}
