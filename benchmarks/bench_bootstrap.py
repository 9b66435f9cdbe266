"""Time bootstrap refits: sem-models against lavaan's bootstrapLavaan, and the speed-up with
local worker processes.

Run:  python benchmarks/bench_bootstrap.py [--rounds 5] [--block 200] [--scale 10000]

1. Per refit, one core: ``sm.bootstrap(fit, R=block, executor="serial")`` of the HS39
   three-factor CFA (ordinary bootstrap: draw, refit warm-started from the estimates by the
   vectorised kernel of :mod:`sem_models.resampling.batched`, extract the estimates and the
   chi-square) against ``bootstrapLavaan(fit, R = block)`` (lavaan's default: ``coef()`` of
   each refit) in one persistent R session (``benchmarks/timing.py``'s ``RSession``).
   Blocks of ours and lavaan's alternate (timings on a shared machine drift); printed are
   the medians over rounds and the median and worst per-round ratio.  Next to our figure:
   its floor, the time of what every refit must do before fitting (the replicate's
   generator, drawing the sample, its covariance matrix), and the time of the kernel's fits
   alone.
2. ``--scale`` refits (default 10,000) wall time, start to finish, in this process and with
   1 and 2 local worker processes (``executor=1`` / ``2``), and the speed-up from 1 to 2
   workers; the start-up of a pool (processes started and ``sem_models`` imported in each,
   measured on its own) is printed separately, and the CPU time of each run (this process and
   its workers) with the load average: on a shared machine the wall-time speed-up is bounded
   by the cores the other processes leave free.  The draws are checked to be identical in all
   three.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import resource
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
from sem_models.resampling.batched import sample_moments  # noqa: E402
from sem_models.resampling.boot import _Refit  # noqa: E402
from sem_models.resampling.executor import replication_rng  # noqa: E402
from sem_models.resampling.units import _Sampler  # noqa: E402

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


def _worker_ready(_: int) -> int:
    """Run in a fresh worker: import the modules a bootstrap batch uses."""
    import sem_models.resampling.batched  # noqa: F401
    import sem_models.resampling.boot  # noqa: F401
    return os.getpid()


def pool_startup(workers: int) -> float:
    """Seconds to start a pool of ``workers`` processes and import sem_models in each."""
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_worker_ready, range(4 * workers)))
    return time.perf_counter() - start


def floor_and_kernel(fit, n: int, seed: int) -> tuple[float, float]:
    """Per refit: (generator + sample + covariance matrix, the kernel's fits alone)."""
    refit = _Refit(fit, [g.X for g in fit.data.groups])
    sampler = _Sampler("ordinary", refit.Xs, None, None)
    kernel = refit.kernel
    chunk = kernel.chunk_size()
    start = time.perf_counter()
    moments = []
    for first in range(0, n, chunk):
        samples = [sampler(replication_rng(seed, r)) for r in range(first, min(n, first + chunk))]
        moments.append(sample_moments(samples, kernel.G, kernel.p))
    floor = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for covs, means, nobs, usable in moments:
        kernel.fit(covs, means, nobs, usable)
    return floor, (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--block", type=int, default=200, help="refits per block")
    parser.add_argument("--scale", type=int, default=10_000,
                        help="refits of the wall-time runs (1 -> 2 workers)")
    args = parser.parse_args()

    data = pd.read_csv(DATA)
    fit = sm.cfa(MODEL, data)
    bootstrap(fit, 20, seed=0, executor="serial", progress=False)  # warm-up: imports
    session = RSession(R_TASKS % (DATA.as_posix(), MODEL, args.block)) \
        if shutil.which("Rscript") else None
    ours, theirs, ratios, floors, kernels = [], [], [], [], []
    try:
        if session is not None:
            session.block_mean("boot", 1)  # warm-up
        for k in range(args.rounds):
            start = time.perf_counter()
            bootstrap(fit, args.block, seed=k, executor="serial", progress=False)
            ours.append((time.perf_counter() - start) / args.block)
            floor, kern = floor_and_kernel(fit, args.block, seed=k)
            floors.append(floor)
            kernels.append(kern)
            if session is not None:
                theirs.append(session.block_mean("boot", 1) / args.block)
                ratios.append(theirs[-1] / ours[-1])
    finally:
        if session is not None:
            session.close()
    print(f"HS39 CFA bootstrap, {args.block} refits per block, {args.rounds} rounds "
          f"({os.cpu_count()} cores)")
    print(f"  sem-models per refit   {1e3 * statistics.median(ours):7.3f} ms (one core; floor "
          f"{1e3 * statistics.median(floors):.3f} ms = generator + sample + covariance; "
          f"kernel fits {1e3 * statistics.median(kernels):.3f} ms)")
    if theirs:
        print(f"  lavaan per refit       {1e3 * statistics.median(theirs):7.3f} ms "
              "(bootstrapLavaan)")
        print(f"  ratio                  {statistics.median(ratios):7.1f}x median, "
              f"{min(ratios):.1f}x worst round")

    startup = {w: pool_startup(w) for w in (1, 2)}
    print(f"  pool start-up (processes + import): 1 worker {startup[1]:.2f} s, "
          f"2 workers {startup[2]:.2f} s")
    walls, cpus, draws = {}, {}, {}
    for name, executor in (("in process", "serial"), ("1 worker", 1), ("2 workers", 2)):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, start = time.process_time(), time.perf_counter()
        res = bootstrap(fit, args.scale, seed=2024, executor=executor, progress=False)
        walls[name] = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus[name] = (time.process_time() - cpu) + (after.ru_utime - children.ru_utime) + (
            after.ru_stime - children.ru_stime)
        draws[name] = res.draws
        print(f"  {args.scale} refits, {name:10s} {walls[name]:6.2f} s wall, "
              f"{cpus[name]:6.2f} s CPU ({1e3 * walls[name] / args.scale:.3f} ms wall per "
              f"refit; {res.n_valid} converged)")
    same = all(np.array_equal(draws["in process"][res.names].to_numpy(),
                              d[res.names].to_numpy(), equal_nan=True) for d in draws.values())
    net = {w: walls[name] - startup[w] for w, name in ((1, "1 worker"), (2, "2 workers"))}
    print(f"  speed-up 1 -> 2 workers {walls['1 worker'] / walls['2 workers']:5.2f}x wall, "
          f"{net[1] / net[2]:.2f}x without the pool start-up; identical draws: {same}")
    # on a shared machine the wall-time speed-up is bounded by the cores left free: the CPU
    # times show whether the parallel run does more work than the single one
    print(f"  CPU time 2 workers / 1 worker {cpus['2 workers'] / cpus['1 worker']:.2f} "
          f"(1.00: no parallel overhead); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
