"""Start values: simple, data-based values close enough for Fisher scoring to converge.

Loadings of a factor follow from ratios of indicator covariances (in the spirit of the
non-iterative FABIN estimators of Hagglund 1982): with marker m, ``lambda_j`` is approximated
by ``sum_k S[j,k] / sum_k S[m,k]`` over the factor's other indicators k.  Residual variances
start at half the observed variance (lavaan's default), regressions and covariances at zero,
intercepts at the sample means.  User ``start()`` values and fixed values win.
"""
from __future__ import annotations

import numpy as np

from .partable import ModelVariables, ParTable

__all__ = ["start_values"]


def _factor_start(cov: np.ndarray, idx: list[int]) -> tuple[np.ndarray, float]:
    """Marker-scaled loadings and the factor variance from the indicators' covariances."""
    marker = idx[0]
    loadings = np.ones(len(idx))
    for k, j in enumerate(idx[1:], start=1):
        rest = [i for i in idx if i not in (j, marker)]
        if rest:
            num, den = cov[j, rest].sum(), cov[marker, rest].sum()
        else:
            num, den = cov[j, marker], cov[marker, marker] * 0.5
        lam = num / den if abs(den) > 1e-12 else 1.0
        loadings[k] = lam if np.isfinite(lam) and abs(lam) <= 10 else 1.0
    if len(idx) > 1:
        var = np.mean([cov[marker, j] / loadings[k] for k, j in enumerate(idx[1:], start=1)])
    else:
        var = 0.5 * cov[marker, marker]
    return loadings, float(max(var, 0.05 * cov[marker, marker], 0.05))


def start_values(partable: ParTable, variables: ModelVariables, sample_covs: list,
                 sample_means: list) -> np.ndarray:
    """One start value per row of the parameter table (fixed rows: their fixed value)."""
    values = np.zeros(len(partable))
    ov_index = {v: k for k, v in enumerate(variables.ov)}
    lhs_all = partable["lhs"].tolist()
    op_all = partable["op"].tolist()
    rhs_all = partable["rhs"].tolist()
    group_all = np.asarray(partable["group"])
    free_all = np.asarray(partable["free"]) > 0
    exo_all = np.asarray(partable["exo"]) == 1
    ustart_all = np.asarray(partable["ustart"], float)
    start_all = np.asarray(partable["start"], float)
    lv_x = set(variables.lv_x)
    ov_x = set(variables.ov_x)
    for g, (cov, mean) in enumerate(zip(sample_covs, sample_means)):
        rows = np.flatnonzero(group_all == g + 1)
        fixed_var = {lhs_all[r] for r in rows if op_all[r] == "~~" and lhs_all[r] == rhs_all[r]
                     and not free_all[r]}
        factor = {}
        for lv, inds in variables.indicators.items():
            if inds[0] in ov_index:
                observed = [ov_index[i] for i in inds if i in ov_index]
                lam, var = _factor_start(cov, observed)
                names = [i for i in inds if i in ov_index]
                factor[lv] = (dict(zip(names, lam)), var)
        for r in rows:
            lhs, op, rhs = lhs_all[r], op_all[r], rhs_all[r]
            if exo_all[r]:
                values[r] = mean[ov_index[lhs]] if op == "~1" else cov[ov_index[lhs], ov_index[rhs]]
            elif not free_all[r]:
                values[r] = 0.0 if np.isnan(ustart_all[r]) else ustart_all[r]
            elif not np.isnan(start_all[r]):
                values[r] = start_all[r]
            elif op == "=~":
                values[r] = 1.0
                if lhs in factor and rhs in factor[lhs][0]:
                    lam = factor[lhs][0][rhs]
                    values[r] = lam * np.sqrt(factor[lhs][1]) if lhs in fixed_var else lam
            elif op == "~~":
                if lhs in ov_x and rhs in ov_x:
                    values[r] = cov[ov_index[lhs], ov_index[rhs]]
                elif lhs != rhs:
                    values[r] = 0.0
                elif lhs in ov_index:
                    values[r] = 0.5 * cov[ov_index[lhs], ov_index[lhs]]
                elif lhs in factor:
                    values[r] = factor[lhs][1] if lhs in lv_x else 0.5 * factor[lhs][1]
                else:
                    values[r] = 0.05
            elif op == "~1":
                values[r] = mean[ov_index[lhs]] if lhs in ov_index else 0.0
    return values


def adjust_intercept_starts(values: np.ndarray, partable: ParTable, model,
                            sample_means: list) -> np.ndarray:
    """Shift the start values of free observed intercepts so that the implied means equal the
    sample means at the start (latent means with start values, e.g. in latent congruence
    models, otherwise leave the intercepts far off)."""
    if not model.meanstructure:
        return values
    values = values.copy()
    op = np.asarray(partable["op"])
    free = np.asarray(partable["free"]) > 0
    group = np.asarray(partable["group"])
    ov_index = {v: k for k, v in enumerate(model.ov_names)}
    lhs = partable["lhs"].tolist()
    for g, mean in enumerate(sample_means):
        rows = np.flatnonzero((op == "~1") & free & (group == g + 1))
        rows = [r for r in rows if lhs[r] in ov_index]
        if not rows:
            continue
        implied = model.moments(values, g).mean
        for r in rows:
            k = ov_index[lhs[r]]
            if np.isfinite(mean[k]):
                values[r] += mean[k] - implied[k]
    return values
