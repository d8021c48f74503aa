#!/usr/bin/env python3
"""Summarise an `ncu --csv --metrics gpu__time_duration.sum` log: total GPU time per kernel name,
largest first. Usage: scripts/dev/ncu_summary.py profile.csv [--skip N] (skip the first N launches,
e.g. the warm-up step's)."""
import csv
import sys
from collections import defaultdict


def main():
    path = sys.argv[1]
    skip = int(sys.argv[sys.argv.index("--skip") + 1]) if "--skip" in sys.argv else 0
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    rows = list(csv.DictReader(lines))
    by_id = {}
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = r["Metric Unit"]
        v = float(r["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}[unit]
        by_id[int(r["ID"])] = (r["Kernel Name"], v * scale)
    launches = [by_id[k] for k in sorted(by_id)][skip:]
    total = sum(t for _, t in launches)
    agg = defaultdict(lambda: [0, 0.0])
    for name, t in launches:
        agg[name[:110]][0] += 1
        agg[name[:110]][1] += t
    print(f"{len(launches)} launches, {total / 1000:.3f} ms of GPU time")
    for name, (n, t) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:40]:
        print(f"{t / 1000:8.3f} ms {100 * t / total:5.1f}% {n:5d}x  {name}")


if __name__ == "__main__":
    main()
