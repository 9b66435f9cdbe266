"""Time the two-level Demo.twolevel fit: sem-models against lavaan, side by side.

Run:  python benchmarks/bench_twolevel.py [--rounds 7] [--block 3]

lavaan's example model (``level: 1  fw =~ y1+y2+y3; fw ~ x1+x2+x3  level: 2  fb =~ y1+y2+y3;
fb ~ w1+w2``) on lavaan's Demo.twolevel (2500 rows, 200 clusters,
``tests/reference/data/demo_twolevel.csv``), ML and MLR:

* ours: ``sem(model, data, cluster="cluster")`` followed by ``estimates()`` (the standard
  errors: observed information, as lavaan), and the same with ``measures()`` (chi-square,
  baseline model, CFI/TLI/RMSEA, SRMR per level, for MLR the Yuan-Bentler scaling);
* lavaan's ``sem(model, data, cluster = "cluster")`` (which computes the standard errors, the
  test and the baseline model) and ``fitMeasures(sem(...))``, in one persistent R session
  (``benchmarks/timing.py``'s ``RSession``).

Blocks of our runs and lavaan's alternate (timings on a shared machine drift); printed are
the medians over rounds and the median and worst per-round ratio.  The rows are shuffled
first (both programs get the same shuffled file), to time the general case.
"""
from __future__ import annotations

import argparse
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

MODEL = """level: 1
  fw =~ y1 + y2 + y3
  fw ~ x1 + x2 + x3
level: 2
  fb =~ y1 + y2 + y3
  fb ~ w1 + w2"""
DATA = ROOT / "tests" / "reference" / "data" / "demo_twolevel.csv"

R_TASKS = r"""
suppressMessages(library(lavaan))
d <- read.csv("%s")
m <- '%s'
list("ml" = function() sem(m, d, cluster = "cluster"),
     "ml_all" = function() fitMeasures(sem(m, d, cluster = "cluster")),
     "mlr" = function() sem(m, d, cluster = "cluster", estimator = "MLR"),
     "mlr_all" = function() fitMeasures(sem(m, d, cluster = "cluster", estimator = "MLR")))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds")
    parser.add_argument("--block", type=int, default=3, help="runs per block")
    args = parser.parse_args()

    data = pd.read_csv(DATA)
    data = data.iloc[np.random.default_rng(16).permutation(len(data))].reset_index(drop=True)
    shuffled = Path("/tmp") / "sem_models_bench_twolevel.csv"
    data.to_csv(shuffled, index=False, float_format="%.17g")

    def ours(estimator, measures):
        def run():
            fit = sm.sem(MODEL, data, cluster="cluster", estimator=estimator)
            fit.estimates()
            if measures:
                fit.measures()
        return run

    tasks = {"ml": ours("ML", False), "ml_all": ours("ML", True),
             "mlr": ours("MLR", False), "mlr_all": ours("MLR", True)}
    session = RSession(R_TASKS % (shuffled.as_posix(), MODEL)) if shutil.which("Rscript") \
        else None
    times = {name: [] for name in tasks}
    lav = {name: [] for name in tasks}
    try:
        for name, func in tasks.items():
            func()  # warm-up
            if session is not None:
                session.block_mean(name, 1)
        for _ in range(args.rounds):
            for name, func in tasks.items():
                times[name].append(block_mean(func, args.block))
                if session is not None:
                    lav[name].append(session.block_mean(name, args.block))
    finally:
        if session is not None:
            session.close()
        shuffled.unlink(missing_ok=True)
    labels = {"ml": "ML fit + SEs", "ml_all": "ML + fit measures", "mlr": "MLR fit + SEs",
              "mlr_all": "MLR + fit measures"}
    print("Demo.twolevel (2500 rows, 200 clusters, rows shuffled), lavaan's example model")
    for name, label in labels.items():
        mine = statistics.median(times[name])
        line = f"  {label:<20} sem-models {mine * 1e3:7.1f} ms"
        if session is not None:
            theirs = statistics.median(lav[name])
            ratios = [t / o for t, o in zip(lav[name], times[name])]
            line += (f"   lavaan {theirs * 1e3:7.1f} ms   ratio {statistics.median(ratios):5.1f}x "
                     f"(worst round {min(ratios):.1f}x)")
        print(line)
    if session is None:
        print("  lavaan: Rscript not on PATH, skipped")


if __name__ == "__main__":
    main()
