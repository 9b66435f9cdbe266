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
