"""Time bootstrap refits: sem-models against lavaan's bootstrapLavaan, and the speed-up with
local worker processes.

Run:  python benchmarks/bench_bootstrap.py [--rounds 5] [--block 200] [--big 1000]

1. Per refit, one core: ``sm.bootstrap(fit, R=block, executor="serial")`` of the HS39
   three-factor CFA (ordinary bootstrap: draw, refit warm-started from the estimates through
   :class:`sem_models.resampling.refit.Refitter`, extract the estimates and the chi-square)
   against ``bootstrapLavaan(fit, R = block)`` (lavaan's default: ``coef()`` of each refit) in
   one persistent R session (``benchmarks/timing.py``'s ``RSession``).  Blocks of ours and
   lavaan's alternate (timings on a shared machine drift); printed are the medians over
   rounds and the median and worst per-round ratio.
2. ``--big`` refits (default 1000) wall time, start to finish (process start-up included),
   in this process and with 1 and 2 local worker processes (``executor=1`` / ``2``), and the
   speed-up from 1 to 2 workers.  The draws are checked to be identical in all three.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sem_models as sm  # noqa: E402
from sem_models.resampling import bootstrap  # noqa: E402

from timing import RSession  # noqa: E402  (benchmarks/timing.py)

MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
DATA = ROOT / "data" / "HolzingerSwineford1939.csv"

R_TASKS = r"""
suppressMessages(library(lavaan))
d <- read.csv("%s")
fit <- cfa('%s', d)
set.seed(1)
list("boot" = function() bootstrapLavaan(fit, R = %d))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--block", type=int, default=200, help="refits per block")
    parser.add_argument("--big", type=int, default=1000, help="refits of the wall-time runs")
    args = parser.parse_args()

    data = pd.read_csv(DATA)
    fit = sm.cfa(MODEL, data)
    bootstrap(fit, 20, seed=0, executor="serial", progress=False)  # warm-up: imports
    session = RSession(R_TASKS % (DATA.as_posix(), MODEL, args.block)) \
        if shutil.which("Rscript") else None
    ours, theirs, ratios = [], [], []
    try:
        if session is not None:
            session.block_mean("boot", 1)  # warm-up
        for k in range(args.rounds):
            start = time.perf_counter()
            bootstrap(fit, args.block, seed=k, executor="serial", progress=False)
            ours.append((time.perf_counter() - start) / args.block)
            if session is not None:
                theirs.append(session.block_mean("boot", 1) / args.block)
                ratios.append(theirs[-1] / ours[-1])
    finally:
        if session is not None:
            session.close()
    print(f"HS39 CFA bootstrap, {args.block} refits per block, {args.rounds} rounds "
          f"({os.cpu_count()} cores)")
    print(f"  sem-models per refit   {1e3 * statistics.median(ours):7.2f} ms (one core)")
    if theirs:
        print(f"  lavaan per refit       {1e3 * statistics.median(theirs):7.2f} ms "
              "(bootstrapLavaan)")
        print(f"  ratio                  {statistics.median(ratios):7.1f}x median, "
              f"{min(ratios):.1f}x worst round")

    walls = {}
    draws = {}
    for name, executor in (("in process", "serial"), ("1 worker", 1), ("2 workers", 2)):
        start = time.perf_counter()
        res = bootstrap(fit, args.big, seed=2024, executor=executor, progress=False)
        walls[name] = time.perf_counter() - start
        draws[name] = res.draws
        print(f"  {args.big} refits, {name:10s} {walls[name]:6.2f} s wall "
              f"({res.n_valid} converged)")
    same = all(np.array_equal(draws["in process"][res.names].to_numpy(),
                              d[res.names].to_numpy(), equal_nan=True) for d in draws.values())
    print(f"  speed-up 1 -> 2 workers {walls['1 worker'] / walls['2 workers']:5.2f}x; "
          f"identical draws: {same}")


if __name__ == "__main__":
    main()
