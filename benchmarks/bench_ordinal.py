"""Time ordinal (WLSMV) fits: sem-models against lavaan on a 16-item, 4-category CFA.

Run:  python benchmarks/bench_ordinal.py [--rounds 7] [--block 5]

Data: ``tests/reference/data/ord_bench.csv`` (written by
``tests/reference/cases_ordinal_fits.R``): 16 four-category items of four correlated factors,
two groups of 500 cases (``g``).  Models: the 4-factor CFA with ``ordered`` items by WLSMV,
(1) one group (all 1,000 cases) and (2) two groups (``group = "g"``).

Timed for us: the fit with standard errors (``cfa(...)`` then ``estimates()``), and the fit
with standard errors and all fit measures (``measures()``: the scaled-shifted test, the
baseline model, robust CFI / RMSEA).  For lavaan (one persistent R session, when ``Rscript``
is on PATH): ``cfa(..., ordered = ...)`` (which computes the sample statistics, the estimates,
standard errors and the test) and ``cfa()`` + ``fitMeasures()``.  Blocks of our runs and
lavaan's alternate, as the machine's load drifts; printed are the medians over rounds and the
median and worst per-round ratios.  The estimates are checked against lavaan's (the committed
reference ``tests/reference/json/ord_bench_*.json``) before timing.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sem_models as sm  # noqa: E402

from timing import RSession, block_mean  # noqa: E402  (benchmarks/timing.py)

DATA = ROOT / "tests" / "reference" / "data" / "ord_bench.csv"
MODEL = ("f1 =~ y1 + y2 + y3 + y4\nf2 =~ y5 + y6 + y7 + y8\n"
         "f3 =~ y9 + y10 + y11 + y12\nf4 =~ y13 + y14 + y15 + y16")
ITEMS = [f"y{i}" for i in range(1, 17)]

R_TASKS = r"""
suppressMessages(library(lavaan))
d <- read.csv("%s")
m <- 'f1 =~ y1 + y2 + y3 + y4
f2 =~ y5 + y6 + y7 + y8
f3 =~ y9 + y10 + y11 + y12
f4 =~ y13 + y14 + y15 + y16'
y <- paste0("y", 1:16)
list("fit1" = function() cfa(m, d, ordered = y),
     "all1" = function() fitMeasures(cfa(m, d, ordered = y)),
     "fit2" = function() cfa(m, d, ordered = y, group = "g"),
     "all2" = function() fitMeasures(cfa(m, d, ordered = y, group = "g")))
"""


def check_against_lavaan(data: pd.DataFrame) -> None:
    """The benchmark fits reproduce lavaan's estimates and test statistics."""
    for case, options in (("ord_bench_1g", {}), ("ord_bench_2g", {"group": "g"})):
        ref = json.loads((ROOT / "tests" / "reference" / "json" / f"{case}.json").read_text())
        fit = sm.cfa(MODEL, data, ordered=ITEMS, **options)
        est = fit.estimates()["est"].to_numpy()
        theirs = np.array([r["est"] for r in ref["parameters"]], float)
        diff = float(np.max(np.abs(est - theirs)))
        m = fit.measures()
        print(f"  {case}: largest |estimate - lavaan| {diff:.1e}; chisq {m['chisq']:.3f} "
              f"(lavaan {ref['fit']['chisq']:.3f}), scaled {m['chisq_scaled']:.3f} "
              f"(lavaan {ref['fit']['chisq_scaled']:.3f})")


def run(rounds: int, block: int) -> dict:
    data = pd.read_csv(DATA)
    check_against_lavaan(data)

    def fit_se(groups: bool):
        fit = sm.cfa(MODEL, data, ordered=ITEMS, group="g" if groups else None)
        fit.estimates()
        return fit

    ours = {"fit1": lambda: fit_se(False), "all1": lambda: fit_se(False).measures(),
            "fit2": lambda: fit_se(True), "all2": lambda: fit_se(True).measures()}
    session = RSession(R_TASKS % DATA.as_posix()) if shutil.which("Rscript") else None
    times: dict = {f"ours_{k}": [] for k in ours}
    try:
        for func in ours.values():
            func()  # warm-up
        if session is not None:
            for k in ours:
                times[f"lavaan_{k}"] = []
                session.block_mean(k, 1)
        for _ in range(rounds):
            for k, func in ours.items():
                times[f"ours_{k}"].append(block_mean(func, block))
                if session is not None:
                    times[f"lavaan_{k}"].append(session.block_mean(k, block))
    finally:
        if session is not None:
            session.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds")
    parser.add_argument("--block", type=int, default=5, help="runs per block")
    args = parser.parse_args()
    print("16-item, 4-category ordinal CFA (4 factors), WLSMV")
    times = run(args.rounds, args.block)
    med = {k: statistics.median(v) for k, v in times.items()}
    labels = {"fit1": "one group, N = 1000: fit + SE", "all1": "one group: + fit measures",
              "fit2": "two groups of 500: fit + SE", "all2": "two groups: + fit measures"}
    for k, label in labels.items():
        line = f"  {label:36s} sem-models {med[f'ours_{k}'] * 1e3:7.1f} ms"
        if f"lavaan_{k}" in med:
            ratios = [t / o for t, o in zip(times[f"lavaan_{k}"], times[f"ours_{k}"])]
            line += (f"   lavaan {med[f'lavaan_{k}'] * 1e3:7.1f} ms   ratio "
                     f"{statistics.median(ratios):5.1f}x (worst round {min(ratios):.1f}x)")
        else:
            line += "   lavaan: Rscript not on PATH"
        print(line)


if __name__ == "__main__":
    main()
