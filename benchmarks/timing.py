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


def block_wall_cpu(func, n: int) -> tuple[float, float]:
    """Mean wall and CPU (this process, all threads) seconds of ``n`` consecutive calls, after
    one untimed call when ``n > 1`` (the R side of :class:`RLapSession` does the same: the
    blocks alternate with the other program's, whose run leaves the caches cold)."""
    if n > 1:
        func()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        func()
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


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


# ------------------------------------------------------------------ laps and peak memory in R
_R_SERVER_LAPS = r"""
lap_clock <- function()  # wall and CPU (user + system) seconds of this R process
  c(as.numeric(Sys.time()), sum(proc.time()[c("user.self", "sys.self")]))
tasks <- local({ %s })
con <- file("stdin"); open(con)
cat("ready\n"); flush(stdout())
while (length(line <- readLines(con, n = 1)) > 0) {
  parts <- strsplit(line, " ")[[1]]
  f <- tasks[[parts[2]]]; n <- as.integer(parts[3])
  total <- NULL
  if (n > 1) invisible(f())  # one untimed run first, as the Python side (warm caches)
  # peak R memory (MB) of the block above the memory in use before it (gc()'s "max used")
  invisible(gc(reset = TRUE)); before <- sum(gc()[, 2]); invisible(gc(reset = TRUE))
  for (i in seq_len(n)) {
    start <- lap_clock(); laps <- f(); end <- lap_clock()
    laps <- if (!is.numeric(laps)) rbind(end - start) else rbind(laps - start, end - start)
    total <- if (is.null(total)) laps else total + laps
  }
  peak <- sum(gc()[, 6]) - before
  # wall laps, then CPU laps, then the peak memory
  cat(paste(sprintf("%%.9f", c(total[, 1] / n, total[, 2] / n, peak)), collapse = " "), "\n")
  flush(stdout())
}
"""


class RLapSession(RSession):
    """A persistent R session whose tasks may return lap times.

    A task is an R function; when it returns ``lap_clock()`` values taken after intermediate
    steps (e.g. after ``sem()`` and before ``fitMeasures()``), :meth:`block_laps` returns the
    mean time from the start to each lap and to the end, so that one run of lavaan times both
    the fit and the fit with its fit measures.  ``last_peak_mb`` is R's peak memory during the
    last block (``gc()``'s "max used", above the memory in use before it)."""

    def __init__(self, setup: str):  # noqa: D107 - same as RSession with the lap server
        import subprocess
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
            fh.write(_R_SERVER_LAPS % setup)
            self._script = fh.name
        self._proc = subprocess.Popen(["Rscript", self._script], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self._proc.stdout.readline().strip()
        if first != "ready":
            err = self._proc.stderr.read()[-800:]
            self.close()
            raise RuntimeError(f"R session did not start: {err}")

    def _ask(self, line: str) -> str:
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        out = self._proc.stdout.readline()
        if not out:
            raise RuntimeError(f"R task {line!r} failed: {self._proc.stderr.read()[-800:]}")
        return out

    last_peak_mb = float("nan")
    last_cpu: list = []

    def block_laps(self, task: str, n: int) -> list[float]:
        """Mean wall seconds from the start of the task to each of its laps and to its end
        (``last_cpu``: the same in CPU seconds of the R process)."""
        values = [float(x) for x in self._ask(f"time {task} {n}").split()]
        self.last_peak_mb = values[-1]
        k = (len(values) - 1) // 2
        self.last_cpu = values[k:2 * k]
        return values[:k]

    def block_mean(self, task: str, n: int) -> float:
        return self.block_laps(task, n)[-1]


def gemm_gflops(size: int = 384, repeat: int = 7) -> float:
    """This machine's single-threaded BLAS speed: GFlop/s of a square matrix product (best of
    ``repeat``), the rate the arithmetic floors are computed with."""
    import numpy as np

    from sem_models.estimation.threads import blas_single_thread

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, size, size))
    best = np.inf
    with blas_single_thread():
        a @ b
        for _ in range(repeat):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best / 1e9
