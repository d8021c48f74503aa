#!/usr/bin/env python3
"""The SASS hot spots of each kernel in `ncu --import REPORT --page source --csv --print-source sass`
output: per kernel, the instructions where warps were sampled most often (stalled or issuing), with
their share of the kernel's samples, and the samples summed by opcode.

    python3 scripts/dev/ncu_source_top.py source.csv [--top N]

The report must hold warp-state sampling (ncu's WarpStateStats and SourceCounters sections).
Columns are found by name, so a header this script does not know is printed instead of guessed at.
"""
import argparse
import collections
import csv
import io
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    with open(args.csv, newline="", errors="replace") as f:
        lines = f.read().splitlines()

    blocks, title, current = [], "", None
    for line in lines:
        row = next(csv.reader(io.StringIO(line)), [])
        if any(c.startswith("Warp Stall Sampling (All") for c in row) and any(c == "Source" for c in row):
            current = {"title": title, "header": row, "rows": []}
            blocks.append(current)
        elif current is not None and len(row) == len(current["header"]):
            current["rows"].append(row)
        else:
            current = None
            if line.strip():
                title = line.strip()
    if not blocks:
        print(f"ncu_source_top: no source table with warp-stall samples in {args.csv}; it begins:")
        print("\n".join(lines[:8]))
        return 1

    for b in blocks:
        h = b["header"]
        src = h.index("Source")
        samp = next(i for i, c in enumerate(h) if c.startswith("Warp Stall Sampling (All"))
        addr = h.index("Address") if "Address" in h else None
        rows = [(number(r[samp]), r) for r in b["rows"]]
        total = sum(v for v, _ in rows) or 1.0
        print(f"== {b['title'][:160]}")
        print(f"   {len(rows)} instructions, {total:.0f} samples")
        for v, r in sorted(rows, key=lambda x: -x[0])[: args.top]:
            a = r[addr] if addr is not None else ""
            print(f"   {100 * v / total:5.1f} %  {a:>8}  {r[src].strip()[:90]}")
        by_op = collections.Counter()
        for v, r in rows:
            text = r[src].strip()
            op = text.split()[0] if text else "?"
            if op.startswith("@") and len(text.split()) > 1:
                op = text.split()[1]
            by_op[op.split(".")[0]] += v
        print("   by opcode: " + ", ".join(f"{op} {100 * v / total:.1f}%" for op, v in by_op.most_common(14)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
