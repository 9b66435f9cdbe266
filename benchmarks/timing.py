"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
import tracemalloc


def median_time(func, repeat: int) -> float:
    """Median wall time (s) of ``repeat`` calls after one warm-up call (imports, caches)."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(func) -> tuple[float, float]:
    """(seconds, peak MB of Python/numpy allocations) of one call, traced by tracemalloc."""
    tracemalloc.start()
    start = time.perf_counter()
    func()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak / 2 ** 20


def block_mean(func, n: int) -> float:
    """Mean wall time (s) of ``n`` consecutive calls."""
    start = time.perf_counter()
    for _ in range(n):
        func()
    return (time.perf_counter() - start) / n


_R_SERVER = r"""
tasks <- local({ %s })
con <- file("stdin"); open(con)
cat("ready\n"); flush(stdout())
while (length(line <- readLines(con, n = 1)) > 0) {
  f <- tasks[[sub(" [0-9]+$", "", line)]]; n <- as.integer(sub(".* ", "", line))
  start <- Sys.time(); for (i in seq_len(n)) f()
  cat(sprintf("%%.9f\n", as.numeric(Sys.time() - start, units = "secs") / n)); flush(stdout())
}
"""


class RSession:
    """A persistent ``Rscript`` process that times named R tasks on request.

    ``setup`` is R code whose last value is a named list of functions (the tasks).  Keeping one
    R session alive lets a benchmark alternate blocks of our fits and lavaan's fits, so that
    both see the same machine load (timings on a shared VM drift by 20-40% within minutes).
    """

    def __init__(self, setup: str):
        import subprocess
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
            fh.write(_R_SERVER % setup)
            self._script = fh.name
        self._proc = subprocess.Popen(["Rscript", self._script], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self._proc.stdout.readline().strip()
        if first != "ready":
            err = self._proc.stderr.read()[-500:]
            self.close()
            raise RuntimeError(f"R session did not start: {err}")

    def block_mean(self, task: str, n: int) -> float:
        """Mean wall time (s) of ``n`` consecutive runs of an R task."""
        self._proc.stdin.write(f"{task} {n}\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"R task {task!r} failed: {self._proc.stderr.read()[-500:]}")
        return float(line)

    def close(self) -> None:
        from pathlib import Path

        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        Path(self._script).unlink(missing_ok=True)
