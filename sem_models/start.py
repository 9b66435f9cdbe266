"""Start values: simple, data-based values close enough for Fisher scoring to converge.

Loadings of a factor follow from ratios of indicator covariances (in the spirit of the
non-iterative FABIN estimators of Hagglund 1982): with marker m, ``lambda_j`` is approximated
by ``sum_k S[j,k] / sum_k S[m,k]`` over the factor's other indicators k.  Residual variances
start at half the observed variance (lavaan's default), regressions and covariances at zero,
intercepts at the sample means.  User ``start()`` values and fixed values win.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .partable import ModelVariables

__all__ = ["start_values"]


def _factor_start(cov: pd.DataFrame, indicators: list[str]) -> tuple[dict, float]:
    """Marker-scaled loadings and the factor variance from the indicators' covariances."""
    marker = indicators[0]
    loadings = {marker: 1.0}
    others = indicators[1:]
    for j in others:
        rest = [k for k in indicators if k not in (j, marker)]
        if rest:
            num = cov.loc[j, rest].sum()
            den = cov.loc[marker, rest].sum()
        else:
            num, den = cov.loc[j, marker], cov.loc[marker, marker] * 0.5
        loadings[j] = float(num / den) if abs(den) > 1e-12 else 1.0
        if not np.isfinite(loadings[j]) or abs(loadings[j]) > 10:
            loadings[j] = 1.0
    if others:
        var = np.mean([cov.loc[marker, j] / loadings[j] for j in others])
    else:
        var = 0.5 * cov.loc[marker, marker]
    var = float(max(var, 0.05 * cov.loc[marker, marker], 0.05))
    return loadings, var


def start_values(partable: pd.DataFrame, variables: ModelVariables, sample_covs: list,
                 sample_means: list) -> np.ndarray:
    """One start value per row of the parameter table (fixed rows: their fixed value)."""
    values = np.zeros(len(partable))
    ov = variables.ov
    for g, (cov_arr, mean_arr) in enumerate(zip(sample_covs, sample_means)):
        cov = pd.DataFrame(cov_arr, index=ov, columns=ov)
        mean = pd.Series(mean_arr, index=ov)
        factor = {}
        for lv, inds in variables.indicators.items():
            observed = [i for i in inds if i in ov]
            if observed and observed[0] == inds[0]:
                factor[lv] = _factor_start(cov, observed)
        rows = partable.index[partable["group"] == g + 1]
        for r in rows:
            lhs, op, rhs = partable.at[r, "lhs"], partable.at[r, "op"], partable.at[r, "rhs"]
            free = partable.at[r, "free"] > 0
            if partable.at[r, "exo"] == 1:
                values[r] = mean[lhs] if op == "~1" else cov.loc[lhs, rhs]
                continue
            if not free:
                u = partable.at[r, "ustart"]
                values[r] = 0.0 if np.isnan(u) else u
                continue
            user_start = partable.at[r, "start"]
            if not np.isnan(user_start):
                values[r] = user_start
                continue
            values[r] = _default_start(lhs, op, rhs, variables, cov, mean, factor, partable, g)
    return values


def _default_start(lhs, op, rhs, variables, cov, mean, factor, partable, g) -> float:
    if op == "=~":
        if lhs in factor and rhs in factor[lhs][0]:
            lam = factor[lhs][0][rhs]
            if _std_lv(partable, lhs, g):
                lam *= np.sqrt(factor[lhs][1])
            return lam
        return 1.0
    if op == "~~":
        if lhs in variables.ov_x and rhs in variables.ov_x:
            return cov.loc[lhs, rhs]
        if lhs == rhs:
            if lhs in variables.ov:
                return 0.5 * cov.loc[lhs, lhs]
            if lhs in factor:
                return factor[lhs][1] if lhs in variables.lv_x else 0.5 * factor[lhs][1]
            return 0.05
        return 0.0
    if op == "~1":
        return mean[lhs] if lhs in variables.ov else 0.0
    return 0.0


def _std_lv(partable: pd.DataFrame, lv: str, g: int) -> bool:
    """True when the factor's variance is fixed (fixed-factor scaling)."""
    row = partable[(partable["lhs"] == lv) & (partable["op"] == "~~") & (partable["rhs"] == lv)
                   & (partable["group"] == g + 1)]
    return len(row) == 1 and row["free"].iat[0] == 0
