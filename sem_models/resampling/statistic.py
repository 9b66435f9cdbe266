"""The nonparametric bootstrap of any statistic of a data set (cases or whole clusters,
resampled within strata), on the execution layer of :mod:`.executor` and with the intervals of
:mod:`.intervals`.

:func:`bootstrap_statistic` is what :func:`sem_models.discrepancy.bootstrap_surface` (response
surface quantities) runs on; :func:`sem_models.resampling.bootstrap` is its counterpart for
fitted models.  Replicate ``r`` draws its sample from ``SeedSequence(entropy=seed,
spawn_key=(r,))`` (:func:`~.executor.replication_rng`), so the draws do not depend on the
executor; a statistic that cannot be pickled (a lambda, a closure) runs in this process.
``vectorized=True`` evaluates all replicates in one call of the statistic (array data without
clusters): the samples then come from one generator seeded with ``seed`` (all index draws in
one call), in this process.

References: Davison, A. C., & Hinkley, D. V. (1997). Bootstrap methods and their application.
Cambridge UP (sec. 3.8, clusters).  Efron, B., & Tibshirani, R. J. (1993). An introduction to
the bootstrap. Chapman & Hall.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from .executor import run_replications
from .intervals import METHODS, interval
from .units import Units

__all__ = ["bootstrap_statistic", "StatisticBootstrap"]


class StatisticSizeError(ValueError):
    """The statistic returned another number of estimates than on the original data."""


def as_vector(value: Any) -> tuple[np.ndarray, Optional[list[str]]]:
    """A statistic's value as a float vector and, for a Series, its names."""
    if isinstance(value, pd.Series):
        return value.to_numpy(dtype=float), [str(i) for i in value.index]
    return np.atleast_1d(np.asarray(value, dtype=float)).ravel(), None


def _codes(values: Any, data: Any, n: int, what: str) -> np.ndarray:
    """Integer codes 0..K-1 of a column name (DataFrame data) or one value per row."""
    if isinstance(values, str):
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"{what} given as a column name needs a DataFrame")
        if values not in data.columns:
            raise KeyError(f"{what} column {values!r} is not in the data")
        arr = data[values].to_numpy()
    else:
        arr = np.asarray(values)
    if arr.shape[0] != n:
        raise ValueError(f"{what} must have one entry per row ({n})")
    if pd.isna(arr).any():
        raise ValueError(f"{what} has missing values")
    return pd.factorize(arr)[0]


class _Layout:
    """Rows of each stratum and the resampling units within strata."""

    def __init__(self, data: Any, strata: Any, cluster: Any):
        n = len(data)
        strat = _codes(strata, data, n, "strata") if strata is not None else np.zeros(n, int)
        self.rows = [np.flatnonzero(strat == s) for s in range(int(strat.max()) + 1)]
        clusters = None
        if cluster is not None:
            clus = _codes(cluster, data, n, "cluster")
            per_cluster = pd.Series(strat).groupby(clus).nunique()
            if (per_cluster > 1).any():
                raise ValueError("clusters must be nested in strata")
            clusters = [clus[r] for r in self.rows]
        self.units = Units([len(r) for r in self.rows], clusters)
        self.clustered = cluster is not None

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Rows of one bootstrap sample (strata in order)."""
        return np.concatenate([rows[pos] for rows, pos in zip(self.rows,
                                                              self.units.draw(rng))])

    def leave_out(self) -> list[np.ndarray]:
        """Rows kept by each jackknife value (one unit left out)."""
        n = sum(len(r) for r in self.rows)
        everything = np.arange(n)
        out = []
        for s, pos in self.units.jackknife():
            keep = np.ones(n, bool)
            keep[self.rows[s][pos]] = False
            out.append(everything[keep])
        return out


def _take(data: Any, idx: np.ndarray) -> Any:
    return data.iloc[idx] if isinstance(data, pd.DataFrame) else np.asarray(data)[idx]


class _StatisticTask:
    """Replicate r: the statistic of one bootstrap sample (picklable when the statistic is)."""

    def __init__(self, data, statistic, layout: _Layout, names: list[str]):
        self.data = data
        self.statistic = statistic
        self.layout = layout
        self.names = names

    def __call__(self, rng: np.random.Generator, r: int) -> dict:
        value, _ = as_vector(self.statistic(_take(self.data, self.layout.sample(rng))))
        if value.size != len(self.names):
            raise StatisticSizeError(f"{value.size} estimates instead of {len(self.names)}")
        return dict(zip(self.names, value.tolist()))


class _JackknifeStatistic:
    """Jackknife value r: the statistic without unit r."""

    def __init__(self, data, statistic, keep: list[np.ndarray], names: list[str]):
        self.data = data
        self.statistic = statistic
        self.keep = keep
        self.names = names

    def __call__(self, rng: np.random.Generator, r: int) -> dict:
        value, _ = as_vector(self.statistic(_take(self.data, self.keep[r])))
        if value.size != len(self.names):
            raise StatisticSizeError(f"{value.size} estimates instead of {len(self.names)}")
        return dict(zip(self.names, value.tolist()))


def _check_sizes(frame: pd.DataFrame) -> None:
    errors = frame["error"].dropna()
    if errors.str.startswith("StatisticSizeError").any():
        raise ValueError("the statistic returned a different number of estimates on a "
                         "bootstrap sample than on the data")


class StatisticBootstrap:
    """Bootstrap draws of a statistic: ``estimate`` (on the data), ``draws`` (one row per
    replicate, NaN for a replicate whose statistic raised; ``error`` says why), ``names``,
    ``n_failed``; :meth:`jackknife` and :meth:`table` (intervals)."""

    def __init__(self, data, statistic, estimate: np.ndarray, names: list[str],
                 draws: pd.DataFrame, layout: _Layout, vectorized: bool, executor, progress):
        self.data = data
        self.statistic = statistic
        self.estimate = estimate
        self.names = names
        self.draws = draws
        self._layout = layout
        self._vectorized = vectorized
        self._executor = executor
        self._progress = progress
        self._jackknife: Optional[np.ndarray] = None
        self._values = draws[names].to_numpy(float)

    @property
    def n_failed(self) -> int:
        return int(pd.notna(self.draws["error"].to_numpy(object)).sum())

    def values(self) -> np.ndarray:
        """The draws as a (replicates x estimates) array (NaN for failed replicates)."""
        return self._values

    def jackknife(self) -> np.ndarray:
        """Leave-one-unit-out values (units x estimates; NaN where the statistic raised)."""
        if self._jackknife is None:
            keep = self._layout.leave_out()
            if self._vectorized:
                if len({len(k) for k in keep}) != 1:
                    raise ValueError("vectorized=True needs units of one row each")
                arr = np.asarray(self.data)
                values = np.asarray(self.statistic(arr[np.stack(keep)]), dtype=float)
                self._jackknife = values.reshape(len(keep), len(self.names))
            else:
                task = _JackknifeStatistic(self.data, self.statistic, keep, self.names)
                frame = run_replications(task, len(keep), seed=0, executor=self._executor,
                                         progress=self._progress, desc="jackknife")
                _check_sizes(frame)
                for name in self.names:
                    if name not in frame:
                        frame[name] = np.nan
                self._jackknife = frame[self.names].to_numpy(float)
        return self._jackknife

    def table(self, method: str = "percentile", level: float = 0.95, *,
              interpolation: str = "normal") -> pd.DataFrame:
        """Per estimate: ``est``, ``boot_se`` (SD of the finite draws), ``ci_lower``,
        ``ci_upper`` and ``n_valid`` (finite draws); intervals by :func:`.intervals.interval`
        (``method`` one of :data:`.intervals.METHODS`)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        reps = self.values()
        jack = self.jackknife() if method == "bca" else None
        k = len(self.names)
        lo, hi, se = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
        n_valid = np.isfinite(reps).sum(axis=0)
        for j in range(k):
            col = reps[:, j]
            col = col[np.isfinite(col)]
            if len(col) > 1:
                se[j] = np.std(col, ddof=1)
            jk = None
            if jack is not None:
                jk = jack[:, j][np.isfinite(jack[:, j])]
                if len(jk) < 2:
                    continue
            lo[j], hi[j] = interval(col, self.estimate[j], method, level, jackknife=jk,
                                    interpolation=interpolation)
        return pd.DataFrame({"est": self.estimate, "boot_se": se, "ci_lower": lo,
                             "ci_upper": hi, "n_valid": n_valid},
                            index=pd.Index(self.names, name="parameter"))


def bootstrap_statistic(data: Any, statistic: Callable[[Any], Any], R: int = 2000, *,
                        seed=None, strata: Any = None, cluster: Any = None,
                        vectorized: bool = False, names: Optional[Sequence[str]] = None,
                        executor=None, batch_size: Optional[int] = None,
                        progress: bool = True, checkpoint=None) -> StatisticBootstrap:
    """Bootstrap a statistic of ``data`` (DataFrame rows, or the first axis of an array).

    ``statistic(sample)`` returns a scalar, a vector or a Series (whose index names the
    estimates).  ``strata``: resampling within each stratum (sizes kept); ``cluster``: whole
    clusters resampled (nested in strata); both a column name (DataFrame data) or one value
    per row.  ``seed``: an integer (or a ``numpy.random.Generator``, from which one is drawn).
    ``executor``, ``batch_size``, ``progress``, ``checkpoint``: as
    :func:`~.executor.run_replications`.  ``vectorized=True``: ``statistic`` takes all
    replicates stacked, shape ``(R, n, ...)``, and returns ``(R,)`` or ``(R, k)``.
    """
    R = int(R)
    if R < 2:
        raise ValueError(f"R must be at least 2, not {R}")
    n = len(data)
    if n < 2:
        raise ValueError("need at least two cases")
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 2 ** 63))
    layout = _Layout(data, strata, cluster)
    is_frame = isinstance(data, pd.DataFrame)
    if vectorized and (is_frame or cluster is not None):
        raise ValueError("vectorized=True needs array data and no clusters")
    if vectorized:
        arr = np.asarray(data)
        estimate = np.asarray(statistic(arr[np.newaxis]), dtype=float).reshape(1, -1)[0]
        found = None
    else:
        estimate, found = as_vector(statistic(data))
    k = estimate.size
    labels = list(names) if names is not None else (found or [f"stat{i}" for i in range(k)])
    if len(labels) != k:
        raise ValueError(f"{len(labels)} names given for {k} estimates")
    if len(set(labels)) != k:
        raise ValueError(f"the names of the estimates are not unique: {labels}")
    if vectorized:
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rows[rng.integers(0, len(rows), size=(R, len(rows)))]
                              for rows in layout.rows], axis=1)
        values = np.asarray(statistic(arr[idx]), dtype=float).reshape(R, -1)
        if values.shape[1] != k:
            raise ValueError("the vectorized statistic returned the wrong number of estimates")
        draws = pd.DataFrame(values, columns=labels)
        draws["error"] = None
        draws.index.name = "rep"
    else:
        task = _StatisticTask(data, statistic, layout, labels)
        draws = run_replications(task, R, seed=seed, executor=executor, batch_size=batch_size,
                                 progress=progress, checkpoint=checkpoint, desc="bootstrap")
        _check_sizes(draws)
        for name in labels:  # every replicate failed: no column
            if name not in draws:
                draws[name] = np.nan
    return StatisticBootstrap(data, statistic, estimate, labels, draws, layout, vectorized,
                              executor, progress)
