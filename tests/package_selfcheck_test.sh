#!/usr/bin/env bash
# The package self-check (scripts/package_selfcheck) on this build: everything it found under /usr
# comes from scripts/setup's list; and the check is shown a positive: with a package the build
# needs dropped from the list, it must fail and name what that package provided.
# Run by CTest with BUILD=<build folder> and GUI=ON|OFF; exit 77 (skipped) off scripts/setup machines.
set -u
cd "$(dirname "$0")/.."
out=$(scripts/package_selfcheck "$BUILD" 2>&1)
rc=$?
[ "$rc" -eq 77 ] && { echo "$out"; exit 77; }
failures=0
if [ "$rc" -ne 0 ]; then
  echo "$out"
  echo "FAIL: the build found packages scripts/setup does not install"
  failures=$((failures + 1))
else
  echo "$out" | tail -1
fi
# Drop a package whose files the build found: the GUI's OpenGL CMake files, or nlohmann-json's.
if [ "${GUI:-ON}" = ON ]; then drop=libqt6opengl6-dev want=Qt6OpenGL_DIR; else drop=nlohmann-json3-dev want=nlohmann_json_DIR; fi
out=$(scripts/package_selfcheck "$BUILD" --without "$drop" 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && grep -q "^MISSING *$want: .*$drop" <<<"$out"; then
  echo "without $drop: fails and names $want, as it must"
else
  echo "$out" | grep -v '^ok'
  echo "FAIL: with $drop dropped from the list, the check gave status $rc and did not name $want"
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ]
