"""Bootstrap confidence intervals of one statistic from its draws: percentile, basic, normal
and BCa (one implementation for every bootstrap of the package: fitted models, response
surfaces, any statistic).

Quantiles use the normal-scale interpolation of the order statistics of Davison & Hinkley
(1997, eq. 5.8), as R's ``boot`` and lavaan, or numpy's linear interpolation.  BCa: Efron
(1987, eqs. 6.6-6.8), Efron & Tibshirani (1993, eqs. 14.9-14.15), with the acceleration from
jackknife values (leaving out one case or one cluster at a time).

References: Davison, A. C., & Hinkley, D. V. (1997). Bootstrap methods and their application.
Cambridge UP.  Efron, B. (1987). Better bootstrap confidence intervals. JASA 82, 171-185.
Efron, B., & Tibshirani, R. J. (1993). An introduction to the bootstrap. Chapman & Hall.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["percentile_interval", "bca_interval", "acceleration", "interval", "METHODS"]


def _norm_ppf(p):
    from scipy.special import ndtri
    return ndtri(p)


def _norm_cdf(x):
    from scipy.special import ndtr
    return ndtr(x)


def _quantiles(sorted_draws: np.ndarray, probs: np.ndarray, interpolation: str) -> np.ndarray:
    """Quantiles of sorted draws: ``"normal"`` interpolates the order statistics on the normal
    scale (Davison & Hinkley 1997, eq. 5.8: ``t_(k)`` with ``k = (B + 1) p``, interpolated
    between neighbours when not an integer, the extremes outside ``1 .. B``); ``"linear"``
    is numpy's default (R's type 7)."""
    probs = np.asarray(probs, float)
    B = len(sorted_draws)
    if B == 0:
        return np.full(probs.shape, np.nan)
    if interpolation == "linear":
        return np.quantile(sorted_draws, probs)
    if interpolation != "normal":
        raise ValueError(f"interpolation must be 'normal' or 'linear', not {interpolation!r}")
    out = np.full(probs.shape, np.nan)
    with np.errstate(invalid="ignore"):
        rank = (B + 1) * probs
    finite = np.isfinite(rank)
    k = np.where(finite, np.floor(rank + 1e-10), 0).astype(int)
    exact = finite & (np.abs(rank - np.round(rank)) < 1e-10) & (k >= 1) & (k <= B)
    out[exact] = sorted_draws[k[exact] - 1]
    low = finite & ~exact & (k <= 0)
    high = finite & ~exact & (k >= B)
    out[low] = sorted_draws[0]
    out[high] = sorted_draws[-1]
    mid = finite & ~exact & ~low & ~high
    if mid.any():
        km = k[mid]
        q, q1, q2 = (_norm_ppf(probs[mid]), _norm_ppf(km / (B + 1)),
                     _norm_ppf((km + 1) / (B + 1)))
        t1, t2 = sorted_draws[km - 1], sorted_draws[km]
        out[mid] = t1 + (q - q1) / (q2 - q1) * (t2 - t1)
    return out


def percentile_interval(draws: np.ndarray, level: float = 0.95, *,
                        interpolation: str = "normal") -> tuple[float, float]:
    """Percentile interval (Efron & Tibshirani 1993, eq. 13.5) of one statistic's draws."""
    draws = np.sort(np.asarray(draws, float)[np.isfinite(draws)])
    alpha = (1 - level) / 2
    lo, hi = _quantiles(draws, np.array([alpha, 1 - alpha]), interpolation)
    return float(lo), float(hi)


def acceleration(jackknife: np.ndarray) -> float:
    """Jackknife estimate of the BCa acceleration (Efron 1987, eq. 6.6; Efron & Tibshirani
    1993, eq. 14.15): ``sum d^3 / (6 (sum d^2)^1.5)`` with ``d = mean(theta_(.)) - theta_(i)``."""
    jack = np.asarray(jackknife, float)
    jack = jack[np.isfinite(jack)]
    d = jack.mean() - jack if len(jack) else jack
    denom = 6.0 * np.sum(d ** 2) ** 1.5
    return float(np.sum(d ** 3) / denom) if denom > 0 else 0.0


def bca_interval(draws: np.ndarray, estimate: float, jackknife: Optional[np.ndarray],
                 level: float = 0.95, *, interpolation: str = "normal") -> tuple[float, float]:
    """Bias-corrected and accelerated interval of one statistic (Efron 1987; Efron &
    Tibshirani 1993, eqs. 14.9-14.10).

    ``z0 = Phi^-1(share of draws below the estimate)`` (ties count one half), ``a`` from the
    jackknife values (:func:`acceleration`; ``jackknife=None``: ``a = 0``, the bias-corrected
    percentile interval, lavaan's ``"bca.simple"``), and the interval is the pair of draw
    quantiles at ``Phi(z0 + (z0 + z_alpha) / (1 - a (z0 + z_alpha)))`` for ``alpha`` and
    ``1 - alpha``.  NaN when every draw lies on one side of the estimate.
    """
    draws = np.sort(np.asarray(draws, float)[np.isfinite(draws)])
    if len(draws) == 0 or not np.isfinite(estimate):
        return np.nan, np.nan
    below = np.count_nonzero(draws < estimate) + 0.5 * np.count_nonzero(draws == estimate)
    with np.errstate(divide="ignore"):
        z0 = _norm_ppf(below / len(draws))
    if not np.isfinite(z0):
        return np.nan, np.nan
    a = acceleration(jackknife) if jackknife is not None else 0.0
    alpha = (1 - level) / 2
    z = _norm_ppf(np.array([alpha, 1 - alpha]))
    probs = _norm_cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lo, hi = _quantiles(draws, probs, interpolation)
    return float(lo), float(hi)




#: interval methods (lavaan's boot.ci.type: "perc", "basic", "norm", "bca.simple"; and BCa)
METHODS = ("percentile", "bca", "bca_simple", "normal", "basic")


def interval(draws: np.ndarray, estimate: float, method: str = "percentile",
             level: float = 0.95, *, jackknife: Optional[np.ndarray] = None,
             centre: Optional[float] = None,
             interpolation: str = "normal") -> tuple[float, float]:
    """One bootstrap interval of one statistic from its draws (non-finite draws ignored).

    ``"percentile"`` (Efron & Tibshirani 1993, eq. 13.5); ``"basic"`` (``2 est`` minus the
    percentile bounds; Davison & Hinkley 1997, eq. 5.6); ``"normal"`` (``est - bias +- z se``
    with the bias ``centre - est``, ``centre`` the mean of the draws unless given; lavaan's
    ``"norm"``); ``"bca"`` (with the ``jackknife`` values for the acceleration) and
    ``"bca_simple"`` (no acceleration; lavaan's ``"bca.simple"``).
    """
    if method not in METHODS:
        raise ValueError(f"the interval method must be one of {METHODS}, not {method!r}")
    draws = np.asarray(draws, float)
    draws = draws[np.isfinite(draws)]
    if len(draws) < 2 or not np.isfinite(estimate):
        return np.nan, np.nan
    if method == "percentile":
        return percentile_interval(draws, level, interpolation=interpolation)
    if method == "basic":
        lo, hi = percentile_interval(draws, level, interpolation=interpolation)
        return 2 * estimate - hi, 2 * estimate - lo
    if method == "normal":
        se = float(np.std(draws, ddof=1))
        mid = estimate - ((draws.mean() if centre is None else centre) - estimate)
        crit = float(_norm_ppf(0.5 + level / 2))
        return mid - crit * se, mid + crit * se
    if method == "bca":
        if jackknife is None:
            raise ValueError("BCa intervals need the jackknife values")
        return bca_interval(draws, estimate, jackknife, level, interpolation=interpolation)
    return bca_interval(draws, estimate, None, level, interpolation=interpolation)
