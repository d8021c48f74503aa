#!/usr/bin/env bash
# scripts/build configures again, from a fresh cache, when the options given or the installed
# packages changed since it last configured, and not otherwise. Runs scripts/build on a throwaway
# build folder with `-t targets` (a ninja tool: nothing is compiled). Run by CTest.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
export HARMONIC_BUILD=$tmp/build HARMONIC_DPKG_STATUS=$tmp/status
echo "Package: a" >"$tmp/status"
configure() { HARMONIC_CMAKE_ARGS="$1" scripts/build -t targets 2>&1 | grep -c "configuring afresh"; }
gui_in_cache() { sed -n 's/^HARMONIC_GUI:BOOL=//p' "$tmp/build/CMakeCache.txt"; }

configure "-DHARMONIC_GUI=OFF -DHARMONIC_TESTS=OFF" >/dev/null
[ "$(gui_in_cache)" = OFF ] || fail "first configure: HARMONIC_GUI is '$(gui_in_cache)', expected OFF"
n=$(configure "-DHARMONIC_GUI=OFF -DHARMONIC_TESTS=OFF")
[ "$n" -eq 0 ] || fail "nothing changed, yet it configured again"
# An option dropped: the cached OFF must not survive (a plain re-run of cmake would keep it).
n=$(configure "-DHARMONIC_TESTS=OFF")
[ "$n" -eq 1 ] || fail "options changed, but it did not configure again"
[ "$(gui_in_cache)" = ON ] || fail "after dropping -DHARMONIC_GUI=OFF the cache still says '$(gui_in_cache)'"
# A package installed or removed.
echo "Package: b" >>"$tmp/status"
n=$(configure "-DHARMONIC_TESTS=OFF")
[ "$n" -eq 1 ] || fail "the package database changed, but it did not configure again"
n=$(configure "-DHARMONIC_TESTS=OFF")
[ "$n" -eq 0 ] || fail "configured again although nothing changed since the last time"
[ "$failures" -eq 0 ] && echo "scripts/build reconfigures exactly when options or packages change"
[ "$failures" -eq 0 ]
