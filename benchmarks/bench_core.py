"""Time sem-models against semopy and lavaan on the HS39 CFA and the 4-level invariance fits.

Run:  python benchmarks/bench_core.py [--repeat 20]

Tasks: the CFA; the four invariance fits by school (configural, metric, scalar, strict); and
``invariance.sequence`` with its fit-change table against lavaan's four fits + ``lavTestLRT`` +
``fitMeasures``.  Prints, per task, the median wall time of one run for each package, the ratio to ours and our
peak memory (tracemalloc).  lavaan is timed inside one R session (no start-up cost) when
``Rscript`` is on PATH; semopy fits each group separately and has no cross-group equality
constraints, so it is timed on the single-group CFA only.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import median_time, peak_memory  # benchmarks/timing.py

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
LEVELS = [[], ["loadings"], ["loadings", "intercepts"], ["loadings", "intercepts", "residuals"]]


def peak_memory_mb(func) -> float:
    return peak_memory(func)[1]


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import sem_models; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


R_SCRIPT = r"""
suppressMessages(library(lavaan))
HS <- HolzingerSwineford1939
m <- 'visual =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed =~ x7 + x8 + x9'
rep <- as.integer(commandArgs(TRUE)[1])
med <- function(f) { f(); median(sapply(seq_len(rep), function(i) system.time(f())[["elapsed"]])) }
cfa_time <- med(function() cfa(m, HS))
levels <- list("", "loadings", c("loadings", "intercepts"), c("loadings", "intercepts", "residuals"))
seq_time <- med(function() for (ge in levels) cfa(m, HS, group = "school", group.equal = ge))
inv_time <- med(function() {
  fits <- lapply(levels, function(ge) cfa(m, HS, group = "school", group.equal = ge))
  lavTestLRT(fits[[1]], fits[[2]], fits[[3]], fits[[4]])
  lapply(fits, fitMeasures)
})
cat(sprintf('{"cfa": %.6f, "sequence": %.6f, "invariance": %.6f}', cfa_time, seq_time, inv_time))
"""


def lavaan_times(repeat: int):
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    out = subprocess.run(["Rscript", fh.name, str(repeat)], capture_output=True, text=True)
    Path(fh.name).unlink()
    if out.returncode != 0:
        print("lavaan timing failed:", out.stderr.strip()[-300:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    import sem_models as sm
    from sem_models.datasets import load

    hs = load("HolzingerSwineford1939")

    def ours_cfa():
        sm.cfa(HS_MODEL, hs)

    def ours_sequence():
        for ge in LEVELS:
            sm.cfa(HS_MODEL, hs, group="school", group_equal=ge)

    import invariance

    def ours_invariance():
        invariance.sequence(HS_MODEL, hs, group="school", identification="lavaan").table

    results = {"cfa": {"sem_models": median_time(ours_cfa, args.repeat)},
               "sequence": {"sem_models": median_time(ours_sequence, args.repeat)},
               "invariance": {"sem_models": median_time(ours_invariance, args.repeat)}}
    memory = {"cfa": peak_memory_mb(ours_cfa), "sequence": peak_memory_mb(ours_sequence),
              "invariance": peak_memory_mb(ours_invariance)}
    try:
        import semopy

        columns = [f"x{i}" for i in range(1, 10)]

        def semopy_cfa():
            semopy.Model(HS_MODEL).fit(hs[columns], obj="MLW", solver="L-BFGS-B")

        results["cfa"]["semopy"] = median_time(semopy_cfa, max(3, args.repeat // 4))
    except ImportError:
        print("semopy not installed: skipped")
    lav = lavaan_times(args.repeat)
    if lav:
        for task in results:
            results[task]["lavaan"] = lav[task]
    else:
        print("Rscript not found: lavaan skipped")

    print(f"import sem_models: {import_time():.3f} s")
    print(f"{'task':<32}{'package':<12}{'time (ms)':>12}{'x ours':>10}{'peak MB':>10}")
    labels = {"cfa": "HS39 3-factor CFA", "sequence": "HS39 4-level invariance fits",
              "invariance": "invariance.sequence (+LRT, fit)"}
    for task, times in results.items():
        ours = times["sem_models"]
        for pkg, t in times.items():
            mem = f"{memory[task]:10.1f}" if pkg == "sem_models" else ""
            print(f"{labels[task]:<32}{pkg:<12}{t * 1000:12.2f}{t / ours:10.1f}{mem}")


if __name__ == "__main__":
    main()
