"""Time sem-models against semopy and lavaan on the HS39 CFA and the 4-level invariance fits.

Run:  python benchmarks/bench_core.py [--rounds 9]

Tasks:
  cfa          the 3-factor CFA (lavaan: ``cfa()``, which also computes SEs and the test);
  cfa+results  the CFA with its estimates table and all fit measures (lavaan:
               ``parameterEstimates()`` + ``fitMeasures()``): the fair comparison, since our
               fit object computes SEs and fit measures only when asked;
  4 fits       configural, metric, scalar and strict fits by school;
  sequence     ``invariance.sequence`` with its fit-change table (lavaan: the four fits +
               ``lavTestLRT`` + ``fitMeasures``);
  sequence cold  the same with the parse caches emptied before every run (the syntax of
               every level parsed from scratch, as in a fresh process; issue 18).

Timings on a shared VM drift by 20-40% within minutes, so the packages are timed in
alternating blocks: per round, a block of our runs, a block of lavaan's runs in one persistent
R session (no start-up cost) and, for the CFA, a block of semopy's.  Printed per task: the
median over rounds of each package's mean time per run, the median ratio to ours and the
worst (smallest) round's ratio, and our peak memory (tracemalloc).  semopy fits each group
separately and has no cross-group equality constraints, so it is timed on the CFA only.

Import time is measured in fresh interpreters with bytecode available (as after ``pip
install``): ``import sem_models`` (the public names load lazily), the import plus the first
use of ``sem_models.cfa`` (which loads numpy, pandas and the engine) and numpy + pandas alone.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys

from timing import RSession, block_mean, peak_memory  # benchmarks/timing.py

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
LEVELS = [[], ["loadings"], ["loadings", "intercepts"], ["loadings", "intercepts", "residuals"]]
BLOCK = {"cfa": 10, "cfa+results": 10, "4 fits": 2, "sequence": 2, "sequence cold": 2}
#: our tasks timed against another task's R code
R_TASK = {"sequence cold": "sequence"}

R_TASKS = r"""
suppressMessages(library(lavaan))
HS <- HolzingerSwineford1939
m <- 'visual =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed =~ x7 + x8 + x9'
levels <- list("", "loadings", c("loadings", "intercepts"),
               c("loadings", "intercepts", "residuals"))
fits <- function() lapply(levels, function(ge) cfa(m, HS, group = "school", group.equal = ge))
list(
  "cfa" = function() cfa(m, HS),
  "cfa+results" = function() { f <- cfa(m, HS); parameterEstimates(f); fitMeasures(f) },
  "4 fits" = fits,
  "sequence" = function() {
    f <- fits(); lavTestLRT(f[[1]], f[[2]], f[[3]], f[[4]]); lapply(f, fitMeasures) })
"""


def import_times(runs: int = 7) -> dict[str, float]:
    """Median import times (s) in fresh interpreters, bytecode written and used."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    snippets = {
        "import sem_models": "import sem_models",
        "import + first use (loads numpy, pandas, engine)": "import sem_models; sem_models.cfa",
        "numpy + pandas alone": "import numpy, pandas",
    }
    out = {}
    for label, stmt in snippets.items():
        code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
        times = []
        for k in range(runs + 1):  # the first run writes the bytecode
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, env=env)
            if k:
                times.append(float(res.stdout.strip()))
        out[label] = statistics.median(times)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds per task")
    args = parser.parse_args(argv)

    import invariance
    import sem_models as sm
    from sem_models.datasets import load
    from sem_models.model.syntax import _clear_parse_caches

    hs = load("HolzingerSwineford1939")

    def sequence_cold():
        _clear_parse_caches()
        return invariance.sequence(HS_MODEL, hs, group="school", identification="lavaan").table

    def cfa_results():
        fit = sm.cfa(HS_MODEL, hs)
        fit.estimates()
        fit.measures()

    ours = {
        "cfa": lambda: sm.cfa(HS_MODEL, hs),
        "cfa+results": cfa_results,
        "4 fits": lambda: [sm.cfa(HS_MODEL, hs, group="school", group_equal=ge)
                           for ge in LEVELS],
        "sequence": lambda: invariance.sequence(HS_MODEL, hs, group="school",
                                                identification="lavaan").table,
        "sequence cold": sequence_cold,
    }
    others = {task: {} for task in ours}
    try:
        import semopy

        columns = [f"x{i}" for i in range(1, 10)]
        others["cfa"]["semopy"] = lambda n: block_mean(
            lambda: semopy.Model(HS_MODEL).fit(hs[columns], obj="MLW", solver="L-BFGS-B"), n)
    except ImportError:
        print("semopy not installed: skipped")
    session = None
    if shutil.which("Rscript"):
        session = RSession(R_TASKS)
        for task in ours:
            others[task]["lavaan"] = lambda n, task=task: session.block_mean(
                R_TASK.get(task, task), n)
    else:
        print("Rscript not found: lavaan skipped")

    times = {task: {"sem_models": []} for task in ours}
    try:
        for task, func in ours.items():
            n = BLOCK[task]
            block_mean(func, 1)  # warm-up: imports, caches
            for name, timer in others[task].items():
                timer(1)
                times[task][name] = []
            for _ in range(args.rounds):
                times[task]["sem_models"].append(block_mean(func, n))
                for name, timer in others[task].items():
                    times[task][name].append(timer(max(1, n // 2) if name == "semopy" else n))
    finally:
        if session is not None:
            session.close()
    memory = {task: peak_memory(func)[1] for task, func in ours.items()}

    for label, seconds in import_times().items():
        print(f"{label:<50}{seconds * 1000:8.1f} ms")
    print(f"\n{'task':<14}{'package':<12}{'ms per run':>12}{'x ours':>9}{'worst round':>13}"
          f"{'peak MB':>10}")
    for task, by_package in times.items():
        base = by_package["sem_models"]
        for name, series in by_package.items():
            ratios = [t / b for t, b in zip(series, base)]
            median_ms = statistics.median(series) * 1000
            if name == "sem_models":
                print(f"{task:<14}{name:<12}{median_ms:12.2f}{1.0:9.1f}{'':>13}"
                      f"{memory[task]:10.1f}")
            else:
                print(f"{task:<14}{name:<12}{median_ms:12.2f}{statistics.median(ratios):9.1f}"
                      f"{min(ratios):13.1f}")


if __name__ == "__main__":
    main()
