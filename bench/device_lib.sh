# Shared by the GPU-machine scripts (bench/*_device.sh); source it from the repository root.

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
