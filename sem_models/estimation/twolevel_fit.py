"""Fitting two-level level moments: the saturated (h1) and the independence (baseline)
models, and a general Fisher-scoring fit of a subset of free moments (complete data).

See :mod:`sem_models.estimation.twolevel` for the model, coordinates and references;
EM for incomplete data lives in :mod:`sem_models.estimation.twolevel_missing`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .twolevel import (TwoLevelData, TwoLevelMoments, _as_moments, _require_complete,
                       _vech_idx, twolevel_gradient, twolevel_information_expected,
                       twolevel_loglik)

__all__ = ["TwoLevelFit", "fit_moments", "fit_h1", "fit_baseline", "saturated_free",
           "baseline_free", "loglik_x"]


@dataclass
class TwoLevelFit:
    """Result of fitting level moments: ``moments``, ``loglik``, ``iterations``,
    ``converged``, ``method`` and the free-coordinate mask ``free``."""

    moments: TwoLevelMoments
    loglik: float
    iterations: int
    converged: bool
    method: str
    free: np.ndarray = field(repr=False, default=None)

    def npar(self) -> int:
        return int(np.sum(self.free)) if self.free is not None else 0


def fit_moments(data: TwoLevelData, free: np.ndarray, start: Optional[TwoLevelMoments] = None,
                max_iter: int = 500, tol: float = 1e-10) -> TwoLevelFit:
    """Maximise the complete-data log-likelihood over the moment coordinates marked ``free``
    (boolean mask over the moment vector; the others stay at ``start``) by Fisher scoring
    with the exact expected information and step halving (Jennrich & Sampson 1976).

    Converged when the step's largest change is below ``sqrt(tol)`` and the log-likelihood
    change below ``tol * (1 + |logL|)``."""
    _require_complete(data)
    lay = data.layout
    free = np.asarray(free, bool)
    if free.shape != (lay.dim,):
        raise ValueError(f"free must be a boolean mask of length {lay.dim}")
    m0 = data.start_moments() if start is None else _as_moments(data, start)
    v = m0.vector()
    ll = twolevel_loglik(data, lay.moments(v))
    if not np.isfinite(ll):
        raise ValueError("start moments are not positive definite")
    idx = np.where(free)[0]
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        mom = lay.moments(v)
        g = twolevel_gradient(data, mom)[idx]
        Inf = twolevel_information_expected(data, mom)[np.ix_(idx, idx)]
        try:
            step = np.linalg.solve(Inf, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(Inf, g, rcond=None)[0]
        alpha, accepted = 1.0, False
        while alpha > 1e-10:
            vn = v.copy()
            vn[idx] += alpha * step
            lln = twolevel_loglik(data, lay.moments(vn))
            if np.isfinite(lln) and lln >= ll - 1e-12 * (1 + abs(ll)):
                accepted = True
                break
            alpha /= 2
        if not accepted:
            converged = np.max(np.abs(g)) < 1e-4 * (1 + abs(ll)) / max(data.nobs, 1)
            break
        change = np.max(np.abs(alpha * step))
        dll = lln - ll
        v, ll = vn, lln
        if change < np.sqrt(tol) and abs(dll) < tol * (1 + abs(ll)):
            converged = True
            break
    return TwoLevelFit(lay.moments(v), ll, it, converged, "fisher-scoring", free)


def saturated_free(data: TwoLevelData) -> np.ndarray:
    """Free mask of the unrestricted (h1) model: all of Sigma_W, Sigma_B, mu_B and the
    within means of the within-only variables (the within means of "both" variables are 0:
    their mean lives in mu_B)."""
    lay = data.layout
    free = np.ones(lay.dim, bool)
    free[lay.mu_w] = data.kind[data.level1] == "within"
    return free


def baseline_free(data: TwoLevelData, exo_within: Sequence = (), exo_between: Sequence = ()
                  ) -> np.ndarray:
    """Free mask of lavaan's two-level independence (baseline) model: diagonal Sigma_W and
    Sigma_B, free means; the blocks of the exogenous (fixed.x) variables ``exo_within``
    (level-1 names) and ``exo_between`` (level-2 names) -- covariances and means -- stay
    fixed (at the h1 values passed as ``start``)."""
    lay = data.layout
    free = np.zeros(lay.dim, bool)
    x1 = np.isin(data.level1_names, list(exo_within))
    x2 = np.isin(data.level2_names, list(exo_between))
    for n in list(exo_within):
        if n not in data.level1_names:
            raise ValueError(f"exo_within variable {n!r} is not a level-1 variable")
    for n in list(exo_between):
        if n not in data.level2_names:
            raise ValueError(f"exo_between variable {n!r} is not a level-2 variable")
    free[lay.mu_w] = (data.kind[data.level1] == "within") & ~x1
    r, c = _vech_idx(data.p1)
    free[lay.sigma_w] = (r == c) & ~x1[r]
    free[lay.mu_b] = ~x2
    r, c = _vech_idx(data.p2)
    free[lay.sigma_b] = (r == c) & ~x2[r]
    return free


def fit_h1(data: TwoLevelData, method: str = "auto", **kw) -> TwoLevelFit:
    """The unrestricted (saturated) two-level model: its log-likelihood is the h1 logl of the
    chi-square test.  ``method``: "scoring" (complete data only), "em" (EM with SQUAREM,
    complete or missing data), "auto" (scoring for complete data, EM for missing data)."""
    if method == "auto":
        method = "em" if data.has_missing else "scoring"
    if method == "scoring":
        return fit_moments(data, saturated_free(data), **kw)
    if method == "em":
        from .twolevel_missing import em_moments
        return em_moments(data, "saturated", **kw)
    raise ValueError(f"unknown method {method!r}")


def fit_baseline(data: TwoLevelData, exo_within: Sequence = (), exo_between: Sequence = (),
                 h1: Optional[TwoLevelMoments] = None, method: str = "auto", **kw
                 ) -> TwoLevelFit:
    """lavaan's two-level independence model (``lav_object_independence``): diagonal
    Sigma_W and Sigma_B with free means, except that with fixed.x the covariance block and
    means of the exogenous variables (``exo_within`` / ``exo_between``, by name) stay at their
    h1 values (``h1``, fitted here if not given)."""
    if (len(exo_within) or len(exo_between)) and h1 is None:
        h1 = fit_h1(data).moments
    start = data.start_moments() if h1 is None else _as_moments(data, h1).copy()
    free = baseline_free(data, exo_within, exo_between)
    # start: zero the off-diagonal free part
    v = start.vector()
    lay = data.layout
    x1 = np.isin(data.level1_names, list(exo_within))
    x2 = np.isin(data.level2_names, list(exo_between))
    r, c = _vech_idx(data.p1)
    off = (r != c) & ~(x1[r] & x1[c])
    v[lay.sigma_w.start + np.where(off)[0]] = 0.0
    r, c = _vech_idx(data.p2)
    off = (r != c) & ~(x2[r] & x2[c])
    v[lay.sigma_b.start + np.where(off)[0]] = 0.0
    mu_w = v[lay.mu_w]
    mu_w[(data.kind[data.level1] == "both")] = 0.0
    if h1 is not None:   # keep the total mean of "both" variables
        hb = _as_moments(data, h1)
        v[lay.mu_b] = hb.mu_b + data.P.T @ np.where(data.kind[data.level1] == "both",
                                                     hb.mu_w, 0.0)
    v[lay.mu_w] = mu_w
    start = lay.moments(v)
    if method == "auto":
        method = "em" if data.has_missing else "scoring"
    if method == "scoring":
        return fit_moments(data, free, start=start, **kw)
    if method == "em":
        from .twolevel_missing import em_moments
        return em_moments(data, "baseline", start=start, free=free, **kw)
    raise ValueError(f"unknown method {method!r}")


def loglik_x(data: TwoLevelData, exo: Sequence[str]) -> float:
    """Saturated two-level log-likelihood of the exogenous (fixed.x) variables alone.

    lavaan (``YLp[[2]]$loglik.x``) reports, with ``fixed.x = TRUE``, the log-likelihood of a
    two-level model (and of its h1 and baseline models) as the joint log-likelihood of all
    variables minus this quantity, i.e. conditional on the covariates."""
    if len(exo) == 0:
        return 0.0
    return fit_h1(data.subset(list(exo))).loglik
