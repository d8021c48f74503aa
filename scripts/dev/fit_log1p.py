#!/usr/bin/env python3
"""Fits P in log1p(f) = f + f^2 P(f) on [-1/3, 1/3], the polynomial of kernels/cuda/softplus.h.

    python3 scripts/dev/fit_log1p.py [DEGREE]     (needs numpy and mpmath, e.g. the torch venv's)

Weighted least squares on Chebyshev nodes, reweighted (Lawson) towards the minimax fit of the
relative error of log1p itself; the targets (log1p(f) - f)/f^2 in 40-digit arithmetic. Prints the
relative error with the fp64 coefficients and the coefficients rounded to fp32, lowest degree first
(softplus.h evaluates them by Horner from the highest). Degree 8 gives 4.5e-9, well under half an
ulp of fp32 (6e-8); the fp32 evaluation is checked by the test "the CUDA scans' branch-free softplus".
"""
import sys

import mpmath as mp
import numpy as np

mp.mp.dps = 40
LO, HI = -1 / 3, 1 / 3


def target(f):
    f = mp.mpf(f)
    return mp.mpf(-0.5) if f == 0 else (mp.log1p(f) - f) / f**2


def fit(degree, nodes=4000, rounds=60):
    xs = [(LO + HI) / 2 + (HI - LO) / 2 * mp.cos(mp.pi * (k + 0.5) / nodes) for k in range(nodes)]
    basis = np.array([[float(x) ** j for j in range(degree + 1)] for x in xs])
    y = np.array([float(target(x)) for x in xs])
    # The error of f + f^2 P relative to log1p(f) is f^2 / log1p(f) times P's error.
    w = np.abs(np.array([float(x**2 / mp.log1p(x)) for x in xs])) + 1e-30
    lawson = np.ones(nodes)
    for _ in range(rounds):
        scale = w * np.sqrt(lawson)
        coef, *_ = np.linalg.lstsq(basis * scale[:, None], y * scale, rcond=None)
        err = np.abs((basis @ coef - y) * w)
        lawson *= err
        lawson /= lawson.sum()
    return coef, err.max()


def main():
    degree = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    coef, err = fit(degree)
    print(f"degree {degree}: relative error of log1p {err:.3g}")
    for j, c in enumerate(coef.astype(np.float32)):
        print(f"  f^{j}: {float(c)!r}f")


if __name__ == "__main__":
    main()
