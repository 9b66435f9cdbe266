"""Bootstrap intervals for surface quantities (percentile, BCa, ...) with resampling of cases
or of whole clusters within strata.

A thin layer over the package's bootstrap of any statistic
(:func:`sem_models.resampling.statistic.bootstrap_statistic`): the samples are drawn, the
replicates run (in this process, local processes or on a dask cluster, ``executor=``) and
the intervals computed (:mod:`sem_models.resampling.intervals`: one percentile / BCa /
jackknife implementation for every bootstrap of the package) there.

References: Efron, B. (1987). Better bootstrap confidence intervals. JASA 82, 171-185.
Efron, B., & Tibshirani, R. J. (1993). An introduction to the bootstrap. Chapman & Hall.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .surface import SurfaceWarning, _crit

__all__ = ["BootstrapResult", "bootstrap_surface"]

#: interval methods of :func:`bootstrap_surface`
METHODS = ("percentile", "bca", "bca_simple", "basic", "normal")


@dataclass
class BootstrapResult:
    """Result of :func:`bootstrap_surface`.

    Attributes
    ----------
    table
        Index = statistic names; columns ``est`` (on the original data), ``boot_se``,
        ``ci_lower``, ``ci_upper``, ``n_valid`` (replicates with a finite value).
    replicates
        DataFrame of bootstrap replicates (``n_boot`` rows; NaN rows for failed replicates).
    method, level, n_failed
        Interval method, confidence level, and number of replicates whose statistic raised.
    jackknife
        Leave-one-unit-out values used for the BCa acceleration (``None`` otherwise).
    """

    table: pd.DataFrame
    replicates: pd.DataFrame = field(repr=False)
    method: str
    level: float
    n_failed: int
    jackknife: np.ndarray | None = field(default=None, repr=False)


def bootstrap_surface(
    data: pd.DataFrame | np.ndarray,
    statistic: Callable[[Any], Any],
    n_boot: int = 2000,
    level: float = 0.95,
    method: str = "percentile",
    seed: int | np.random.Generator | None = None,
    strata: Any = None,
    cluster: Any = None,
    vectorized: bool = False,
    names: Sequence[str] | None = None,
    executor: Any = None,
    progress: bool = False,
) -> BootstrapResult:
    """Nonparametric bootstrap confidence intervals for any statistic.

    Cases (rows) are resampled with replacement; with ``cluster`` whole clusters are
    resampled (e.g. schools), and with ``strata`` resampling happens within each stratum
    (e.g. treatment format, keeping group sizes fixed as in multi-group bootstrapping).
    Clusters must be nested in strata.

    Parameters
    ----------
    data
        A DataFrame (``statistic`` receives row subsets, ``data.iloc[idx]``) or an array whose
        first axis indexes cases.
    statistic
        ``data -> estimates``: a scalar, 1-D array or Series (whose index names the estimates),
        e.g. ``lambda d: surface_quantities(fit(d))``. A replicate whose statistic raises is
        recorded as NaN and counted in ``n_failed`` (a :class:`SurfaceWarning` reports how many).
    n_boot
        Number of bootstrap replicates.
    level
        Confidence level.
    method
        ``"percentile"`` (Efron & Tibshirani, 1993, ch. 13), ``"bca"`` (bias-corrected and
        accelerated; Efron, 1987), whose acceleration comes from a leave-one-unit-out jackknife
        (one extra evaluation per case, or per cluster), ``"bca_simple"`` (bias-corrected
        only), ``"basic"`` or ``"normal"`` (:func:`sem_models.resampling.intervals.interval`).
    seed
        Seed or ``numpy.random.Generator`` for reproducible resampling (replicate r draws from
        its own stream, so ``executor`` does not change the result).
    strata, cluster
        Column names (DataFrame data) or arrays with one entry per row.
    vectorized
        If true (array data without clusters), ``statistic`` is called once with all
        replicates stacked, shape ``(n_boot, n, ...)``, and must return shape ``(n_boot,)`` or
        ``(n_boot, k)``; it is also called with the original data of shape ``(1, n, ...)``.
        For example ``statistic=lambda a: a.mean(axis=1)`` for the mean.
    names
        Names of the estimates (default: the Series index, or ``stat0, stat1, ...``).
    executor, progress
        Where the replicates run (:func:`sem_models.resampling.run_replications`; a statistic
        that cannot be pickled always runs in this process) and whether a progress bar is
        shown.

    Returns
    -------
    BootstrapResult
    """
    from ..resampling.statistic import bootstrap_statistic

    method = method.lower()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    _crit(level)
    boot = bootstrap_statistic(data, statistic, int(n_boot), seed=seed, strata=strata,
                               cluster=cluster, vectorized=vectorized, names=names,
                               executor=executor, progress=progress)
    n_failed = boot.n_failed
    if n_failed:
        warnings.warn(f"{n_failed} of {n_boot} bootstrap replicates failed and were dropped",
                      SurfaceWarning, stacklevel=2)
    table = boot.table(method, level)
    return BootstrapResult(
        table=table,
        replicates=pd.DataFrame(boot.values(), columns=boot.names),
        method=method,
        level=level,
        n_failed=n_failed,
        jackknife=boot.jackknife() if method == "bca" else None,
    )
