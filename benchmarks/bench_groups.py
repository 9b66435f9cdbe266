"""Multi-group fit time against the number of groups G (issue 18, item 3): ours only.

Run:  python benchmarks/bench_groups.py [--groups 10 20 50 100] [--rounds 3] [--n 200] [--dense]

Per group: a 1-factor, 6-indicator model simulated with group-specific factor means and
variances (loadings 0.7-0.8, residual variances 0.4-0.5, intercepts 0-1, N = ``--n`` per group);
fitted with ``cfa(..., group="g", group_equal=["loadings", "intercepts"])`` (ML, complete data,
standard errors included).  Printed: the median over rounds of the time of the fit alone
(``fit_model``: the optimizer) and of fit + ``estimates()`` per G, the time per group, and a
least-squares fit ``time = a + b G`` with its largest relative residual, plus the log-log slope
between the smallest and the largest G (1 for linear growth).  ``--dense`` turns off the
block-arrow solves of :mod:`sem_models.estimation.structured` (the dense n_z x n_z
factorisations and inverse used before; for comparisons).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sem_models as sm  # noqa: E402

MODEL = "f =~ y1 + y2 + y3 + y4 + y5 + y6"


def simulate(n_groups: int, n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lam = np.array([1.0, 0.8, 0.7, 0.75, 0.8, 0.7])
    nu = np.linspace(0.0, 1.0, 6)
    theta = np.linspace(0.4, 0.5, 6)
    frames = []
    for g in range(n_groups):
        eta = rng.normal(0.2 * (g % 5), np.sqrt(0.8 + 0.1 * (g % 3)), n)
        y = nu + np.outer(eta, lam) + rng.normal(size=(n, 6)) * np.sqrt(theta)
        frame = pd.DataFrame(y, columns=[f"y{j}" for j in range(1, 7)])
        frame["g"] = f"g{g:03d}"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fit(data: pd.DataFrame, estimates: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sm.cfa(MODEL, data, group="g", group_equal=["loadings", "intercepts"])
        if estimates:
            result.estimates()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--dense", action="store_true",
                        help="dense curvature solves and inverse (no block-arrow structure)")
    args = parser.parse_args(argv)
    if args.dense:
        import sem_models.estimation.structured as structured
        structured.STRUCTURED_MIN_NZ = 10**9
    rows = []
    for G in args.groups:
        data = simulate(G, args.n)
        first = fit(data, True)  # warm-up (and a check that it converges)
        t_fit, t_est = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            fit(data, False)
            t_fit.append(time.perf_counter() - start)
            start = time.perf_counter()
            fit(data, True)
            t_est.append(time.perf_counter() - start)
        rows.append((G, statistics.median(t_fit), statistics.median(t_est),
                     int(first.problem.pmap.n_z), bool(first.converged)))
    print(f"{'G':>5} {'n_z':>6} {'fit s':>8} {'fit+est s':>10} {'ms/group':>9} conv")
    for G, tf, te, nz, conv in rows:
        print(f"{G:>5} {nz:>6} {tf:8.3f} {te:10.3f} {1000 * te / G:9.2f} {conv}")
    if len(rows) >= 2:
        G = np.array([r[0] for r in rows], float)
        for name, col in (("fit", 1), ("fit+est", 2)):
            t = np.array([r[col] for r in rows])
            b, a = np.polyfit(G, t, 1)
            resid = np.max(np.abs(t - (a + b * G)) / t)
            slope = np.log(t[-1] / t[0]) / np.log(G[-1] / G[0])
            print(f"{name:8s} linear fit: {a * 1000:.1f} ms + {b * 1000:.2f} ms x G "
                  f"(largest relative residual {resid:.0%}); log-log slope "
                  f"G={G[0]:.0f}..{G[-1]:.0f}: {slope:.2f}")


if __name__ == "__main__":
    main()
