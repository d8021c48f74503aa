#!/usr/bin/env python3
"""Summarises a CTest JUnit report (ctest --output-junit) and checks that the build is complete.

    test_summary.py RESULTS.xml [--require-built FILE]... [--require-command "CMD ARGS"]...
                                [--require-ran "NAME\\nNAME..."]

Prints how many tests passed, failed and were skipped, each skipped test with its reason (the line
its output gives, e.g. "skipped: no CUDA GPU ..."), and exits 1 when a test failed, a required file
is missing, a required command fails, or a test named by --require-ran did not run and pass (a GUI
test skipped or missing counts as a failure: the desktop tool is the product).
"""
import argparse
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET


def outcome(case):
    status = case.get("status", "")
    if case.find("failure") is not None or case.find("error") is not None or status == "fail":
        return "failed"
    if case.find("skipped") is not None or status in ("notrun", "disabled"):
        return "skipped"
    return "passed"


def skip_reason(case):
    out = case.findtext("system-out") or ""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith("skipped"):
            return line
    skipped = case.find("skipped")
    if skipped is not None and skipped.get("message"):
        return skipped.get("message")
    return lines[-1] if lines else "no reason given"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--require-built", action="append", default=[])
    parser.add_argument("--require-command", action="append", default=[])
    parser.add_argument("--require-ran", default="")
    args = parser.parse_args()

    if not os.path.isfile(args.results):
        print(f"test summary: {args.results} not found (did CTest run?)")
        return 1
    cases = ET.parse(args.results).getroot().iter("testcase")
    by_outcome = {"passed": [], "failed": [], "skipped": []}
    result_of = {}
    for case in cases:
        name = case.get("name", "?")
        kind = outcome(case)
        by_outcome[kind].append((name, case))
        result_of[name] = kind

    ok = True
    total = sum(len(v) for v in by_outcome.values())
    print(f"CTest: {total} tests: {len(by_outcome['passed'])} passed, {len(by_outcome['failed'])} failed, "
          f"{len(by_outcome['skipped'])} skipped")
    reasons = {}
    for name, case in by_outcome["skipped"]:
        reasons.setdefault(skip_reason(case), []).append(name)
    for reason, names in sorted(reasons.items()):
        print(f"  skipped ({len(names)}): {reason}")
        for name in names[:3]:
            print(f"    {name}")
        if len(names) > 3:
            print(f"    ... and {len(names) - 3} more")
    for name, _ in by_outcome["failed"]:
        print(f"  FAILED: {name}")
        ok = False

    for path in args.require_built:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            print(f"  built: {path}")
        else:
            print(f"  MISSING from the build: {path}")
            ok = False
    for command in args.require_command:
        run = subprocess.run(shlex.split(command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode == 0:
            print(f"  works: {command}")
        else:
            print(f"  FAILS: {command} (status {run.returncode}): {run.stderr.strip()[:300]}")
            ok = False
    required = [n for n in args.require_ran.splitlines() if n.strip()]
    if args.require_ran is not None and "--require-ran" in sys.argv and not required:
        print("  MISSING: no GUI tests are registered in this build")
        ok = False
    not_run = [n for n in required if result_of.get(n) != "passed"]
    if required:
        if not_run:
            ok = False
            print(f"  GUI tests that did not run and pass: {len(not_run)} of {len(required)}")
            for n in not_run[:10]:
                print(f"    {n}: {result_of.get(n, 'not run')}")
        else:
            print(f"  GUI tests: all {len(required)} ran and passed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
