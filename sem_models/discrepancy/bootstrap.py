"""Bootstrap intervals for surface quantities: percentile and BCa (Efron 1987; Efron &
Tibshirani 1993) with resampling of cases or of whole clusters."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from .surface import SurfaceWarning, _crit

__all__ = ["BootstrapResult", "bootstrap_surface"]


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


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
        Leave-one-unit-out values used for the BCa acceleration (``None`` for percentile).
    """

    table: pd.DataFrame
    replicates: pd.DataFrame = field(repr=False)
    method: str
    level: float
    n_failed: int
    jackknife: np.ndarray | None = field(default=None, repr=False)


def _as_vector(val: Any) -> tuple[np.ndarray, list[str] | None]:
    if isinstance(val, pd.Series):
        return val.to_numpy(dtype=float), [str(i) for i in val.index]
    arr = np.atleast_1d(np.asarray(val, dtype=float)).ravel()
    return arr, None


def _groups(values: Any, data: Any, n: int, what: str) -> np.ndarray:
    if isinstance(values, str):
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"{what} given as a column name needs a DataFrame")
        arr = data[values].to_numpy()
    else:
        arr = np.asarray(values)
    if arr.shape[0] != n:
        raise ValueError(f"{what} must have one entry per row ({n})")
    if pd.isna(arr).any():
        raise ValueError(f"{what} has missing values")
    return pd.factorize(arr)[0]


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
) -> BootstrapResult:
    """Nonparametric bootstrap confidence intervals (percentile or BCa) for any statistic.

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
        ``"percentile"`` (Efron & Tibshirani, 1993, ch. 13) or ``"bca"`` (bias-corrected and
        accelerated; Efron, 1987), whose acceleration comes from a leave-one-unit-out jackknife
        (one extra evaluation per case, or per cluster).
    seed
        Seed or ``numpy.random.Generator`` for reproducible resampling.
    strata, cluster
        Column names (DataFrame data) or arrays with one entry per row.
    vectorized
        If true (array data without clusters), ``statistic`` is called once with all
        replicates stacked, shape ``(n_boot, n, ...)``, and must return shape ``(n_boot,)`` or
        ``(n_boot, k)``; it is also called with the original data of shape ``(1, n, ...)``.
        For example ``statistic=lambda a: a.mean(axis=1)`` for the mean.
    names
        Names of the estimates (default: the Series index, or ``stat0, stat1, ...``).

    Returns
    -------
    BootstrapResult
    """
    method = method.lower()
    if method not in ("percentile", "bca"):
        raise ValueError("method must be 'percentile' or 'bca'")
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    _crit(level)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    is_frame = isinstance(data, pd.DataFrame)
    arr = None if is_frame else np.asarray(data)
    n = len(data)
    if n < 2:
        raise ValueError("need at least two cases")
    strat = _groups(strata, data, n, "strata") if strata is not None else np.zeros(n, dtype=int)
    clus = _groups(cluster, data, n, "cluster") if cluster is not None else None
    if vectorized and (is_frame or clus is not None):
        raise ValueError("vectorized=True needs array data and no clusters")

    def take(idx: np.ndarray) -> Any:
        return data.iloc[idx] if is_frame else arr[idx]

    # resampling units: rows, or clusters (each a list of rows) within strata
    if clus is None:
        unit_rows = None
        unit_stratum = strat
    else:
        n_units = int(clus.max()) + 1
        unit_rows = [np.flatnonzero(clus == u) for u in range(n_units)]
        unit_stratum = np.array([strat[r[0]] for r in unit_rows])
        for u, r in enumerate(unit_rows):
            if np.any(strat[r] != unit_stratum[u]):
                raise ValueError("clusters must be nested in strata")
    strata_units = [np.flatnonzero(unit_stratum == s) for s in range(int(unit_stratum.max()) + 1)]
    # unit draws for all replicates at once: shape (n_boot, n_units)
    draws = np.concatenate(
        [units[rng.integers(0, units.size, size=(n_boot, units.size))] for units in strata_units],
        axis=1,
    )

    # estimate on the original data
    if vectorized:
        est0 = np.asarray(statistic(arr[np.newaxis]), dtype=float)
        est = est0.reshape(1, -1)[0]
        found_names = None
    else:
        est, found_names = _as_vector(statistic(data))
    k = est.size
    labels = list(names) if names is not None else (found_names or [f"stat{i}" for i in range(k)])
    if len(labels) != k:
        raise ValueError(f"{len(labels)} names given for {k} estimates")

    n_failed = 0
    if vectorized:
        reps = np.asarray(statistic(arr[draws]), dtype=float).reshape(n_boot, -1)
        if reps.shape[1] != k:
            raise ValueError("the vectorized statistic returned the wrong number of estimates")
    else:
        reps = np.full((n_boot, k), np.nan)
        for i in range(n_boot):
            if unit_rows is None:
                idx = draws[i]
            else:
                idx = np.concatenate([unit_rows[u] for u in draws[i]])
            try:
                v, _ = _as_vector(statistic(take(idx)))
            except Exception:  # noqa: BLE001 - a failed fit must not abort the bootstrap
                n_failed += 1
                continue
            if v.size != k:
                raise ValueError("the statistic returned a different number of estimates")
            reps[i] = v
        if n_failed:
            warnings.warn(f"{n_failed} of {n_boot} bootstrap replicates failed and were dropped",
                          SurfaceWarning, stacklevel=2)

    alpha = 1.0 - level
    finite = np.isfinite(reps)
    n_valid = finite.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        boot_se = np.nanstd(reps, axis=0, ddof=1)
        jack = None
        if method == "percentile":
            lo = np.nanquantile(reps, alpha / 2, axis=0)
            hi = np.nanquantile(reps, 1 - alpha / 2, axis=0)
        else:
            jack = _jackknife(statistic, data, arr, is_frame, unit_rows, n, k, vectorized)
            lo, hi = _bca_limits(reps, est, jack, alpha)
    table = pd.DataFrame(
        {"est": est, "boot_se": boot_se, "ci_lower": lo, "ci_upper": hi, "n_valid": n_valid},
        index=pd.Index(labels, name="parameter"),
    )
    return BootstrapResult(
        table=table,
        replicates=pd.DataFrame(reps, columns=labels),
        method=method,
        level=level,
        n_failed=n_failed,
        jackknife=jack,
    )


def _jackknife(
    statistic: Callable[[Any], Any],
    data: Any,
    arr: np.ndarray | None,
    is_frame: bool,
    unit_rows: list[np.ndarray] | None,
    n: int,
    k: int,
    vectorized: bool,
) -> np.ndarray:
    """Leave-one-unit-out estimates, shape (units, k)."""
    if vectorized:
        idx = np.arange(n)
        loo = np.stack([np.delete(idx, i) for i in range(n)])  # (n, n - 1)
        return np.asarray(statistic(arr[loo]), dtype=float).reshape(n, k)
    groups = [np.array([i]) for i in range(n)] if unit_rows is None else unit_rows
    out = np.full((len(groups), k), np.nan)
    for j, rows in enumerate(groups):
        keep = np.setdiff1d(np.arange(n), rows, assume_unique=True)
        try:
            v, _ = _as_vector(statistic(data.iloc[keep] if is_frame else arr[keep]))
        except Exception:  # noqa: BLE001
            continue
        out[j] = v
    return out


def _bca_limits(
    reps: np.ndarray, est: np.ndarray, jack: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """BCa interval limits (Efron, 1987; Efron & Tibshirani, 1993, section 14.3)."""
    k = est.size
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    z_lo, z_hi = stats.norm.ppf(alpha / 2), stats.norm.ppf(1 - alpha / 2)
    for j in range(k):
        r = reps[:, j]
        r = r[np.isfinite(r)]
        jk = jack[:, j]
        jk = jk[np.isfinite(jk)]
        if r.size < 2 or jk.size < 2 or not np.isfinite(est[j]):
            continue
        prop = (np.sum(r < est[j]) + 0.5 * np.sum(r == est[j])) / r.size
        if prop <= 0.0 or prop >= 1.0:
            continue  # bias correction infinite: the estimate lies outside the replicates
        z0 = stats.norm.ppf(prop)
        dev = jk.mean() - jk
        den = 6.0 * np.sum(dev**2) ** 1.5
        acc = np.sum(dev**3) / den if den > 0 else 0.0
        qs = []
        for zq in (z_lo, z_hi):
            w = z0 + zq
            qs.append(stats.norm.cdf(z0 + w / (1.0 - acc * w)))
        lo[j], hi[j] = np.quantile(r, qs)
    return lo, hi
