"""Start values: simple, data-based values close enough for Fisher scoring to converge.

Loadings of a factor follow from ratios of indicator covariances (in the spirit of the
non-iterative FABIN estimators of Hagglund 1982): with marker m, ``lambda_j`` is approximated
by ``sum_k S[j,k] / sum_k S[m,k]`` over the factor's other indicators k.  Residual variances
start at half the observed variance (lavaan's default), regressions and covariances at zero,
intercepts at the sample means.  User ``start()`` values and fixed values win.

Every threshold is relative to the variables' own variances, so the start values (and the
path of the optimizer) do not depend on the units of the data: multiplying a variable by c
multiplies its start loadings and variances by c and c^2.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from ..linalg import cholesky_lower
from .partable import ModelVariables, ParTable, rows_of_group

__all__ = ["start_values", "apply_start"]


def _factor_start(S: list, idx: list[int]) -> tuple[list[float], float]:
    """Marker-scaled loadings and the factor variance from the indicators' covariances
    (``S`` the sample covariance matrix as nested lists: scalar work in plain Python)."""
    marker = idx[0]
    loadings = [1.0] * len(idx)
    sd = [math.sqrt(max(S[i][i], 0.0)) for i in idx]
    for k, j in enumerate(idx[1:], start=1):
        rest = [i for i in idx if i != j and i != marker]
        if rest:
            num, den = sum(S[j][i] for i in rest), sum(S[marker][i] for i in rest)
            scale = sd[0] * sum(math.sqrt(max(S[i][i], 0.0)) for i in rest)
        else:
            num, den = S[j][marker], S[marker][marker] * 0.5
            scale = S[marker][marker]
        # |den| small relative to what the variances allow: no usable covariance
        lam = num / den if abs(den) > 1e-12 * scale else math.nan
        ratio = sd[k] / sd[0] if sd[0] > 0 else 1.0  # the loading's natural unit
        loadings[k] = lam if math.isfinite(lam) and abs(lam) <= 10 * ratio else ratio
    ratios = [S[marker][j] / loadings[k] for k, j in enumerate(idx[1:], start=1)
              if loadings[k] != 0.0]
    var = sum(ratios) / len(ratios) if ratios else 0.5 * S[marker][marker]
    return loadings, max(var, 0.05 * S[marker][marker])


def _factor_covariance_start(S: list, ov_index: dict, factor: dict, f1: str, f2: str,
                             fixed_var: set) -> float:
    """Covariance of two exogenous factors from their indicators' cross-covariances:
    the mean of ``S[j, k] / (lambda_j lambda_k)`` (marker scale), shrunk to a correlation of at
    most 0.9; a correlation when the factor variances are fixed (``std_lv``)."""
    if f1 not in factor or f2 not in factor:
        return 0.0
    (lam1, var1), (lam2, var2) = factor[f1], factor[f2]
    ratios = [S[ov_index[j]][ov_index[k]] / (lam1[j] * lam2[k])
              for j in lam1 for k in lam2 if j != k and lam1[j] * lam2[k] != 0.0]
    if not ratios:
        return 0.0
    bound = 0.9 * math.sqrt(var1 * var2)
    value = min(max(sum(ratios) / len(ratios), -bound), bound)
    if f1 in fixed_var or f2 in fixed_var:
        return value / math.sqrt(var1 * var2)
    return value


def _residual_start(variance: float, name: str, factor: dict) -> float:
    """Residual variance of an observed variable: what its one factor leaves unexplained
    (``S_jj - lambda_j^2 phi``, at least 10% of the variance), else half its variance."""
    owners = [lv for lv, (lam, _) in factor.items() if name in lam]
    if len(owners) != 1:
        return 0.5 * variance
    lam, var = factor[owners[0]]
    return max(variance - lam[name] ** 2 * var, 0.1 * variance)


def start_values(partable: ParTable, variables: ModelVariables, sample_covs: list,
                 sample_means: list) -> np.ndarray:
    """One start value per row of the parameter table (fixed rows: their fixed value)."""
    values = np.zeros(len(partable))
    ov_index = {v: k for k, v in enumerate(variables.ov)}
    lhs_all = partable["lhs"].tolist()
    op_all = partable["op"].tolist()
    rhs_all = partable["rhs"].tolist()
    free_all = (partable["free"] > 0).tolist()
    exo_all = (partable["exo"] == 1).tolist()
    ustart_all = partable["ustart"].tolist()
    start_all = partable["start"].tolist()
    lv_x = set(variables.lv_x)
    ov_x = set(variables.ov_x)
    # free rows whose start this function derives (no user start())
    derived = [free and math.isnan(start) for free, start in zip(free_all, start_all)]
    for g, (cov, mean) in enumerate(zip(sample_covs, sample_means)):
        S, m = cov.tolist(), mean.tolist()  # scalar work below: plain Python floats
        rows = rows_of_group(partable, g).tolist()
        fixed_var = {lhs_all[r] for r in rows if op_all[r] == "~~" and lhs_all[r] == rhs_all[r]
                     and not free_all[r]}
        factor = {}
        for lv, inds in variables.indicators.items():
            if inds[0] in ov_index:
                names = [i for i in inds if i in ov_index]
                lam, var = _factor_start(S, [ov_index[i] for i in names])
                factor[lv] = (dict(zip(names, lam)), var)
        for r in rows:
            lhs, op, rhs = lhs_all[r], op_all[r], rhs_all[r]
            if exo_all[r]:
                values[r] = m[ov_index[lhs]] if op == "~1" else S[ov_index[lhs]][ov_index[rhs]]
            elif not free_all[r]:
                values[r] = 0.0 if math.isnan(ustart_all[r]) else ustart_all[r]
            elif not math.isnan(start_all[r]):
                values[r] = start_all[r]
            elif op == "=~":
                values[r] = 1.0
                if lhs in factor and rhs in factor[lhs][0]:
                    lam = factor[lhs][0][rhs]
                    values[r] = lam * math.sqrt(factor[lhs][1]) if lhs in fixed_var else lam
            elif op == "~~":
                if lhs in ov_x and rhs in ov_x:
                    values[r] = S[ov_index[lhs]][ov_index[rhs]]
                elif lhs != rhs:
                    values[r] = _factor_covariance_start(S, ov_index, factor, lhs, rhs,
                                                         fixed_var) \
                        if lhs in lv_x and rhs in lv_x else 0.0
                elif lhs in ov_index:
                    values[r] = _residual_start(S[ov_index[lhs]][ov_index[lhs]], lhs, factor)
                elif lhs in factor:
                    values[r] = factor[lhs][1] if lhs in lv_x else 0.5 * factor[lhs][1]
                else:
                    values[r] = 0.05
            elif op == "~1":
                values[r] = m[ov_index[lhs]] if lhs in ov_index else 0.0
        _keep_factor_covariances_pd(values, rows, lhs_all, op_all, rhs_all, lv_x, derived)
    return values


def _keep_factor_covariances_pd(values: np.ndarray, rows: np.ndarray, lhs: list, op: list,
                                rhs: list, lv_x: set, derived: list) -> None:
    """Zero the derived start covariances of the exogenous factors of one group when together
    they do not form a positive-definite matrix (pairwise bounds do not guarantee it)."""
    names = sorted(lv_x)
    if len(names) < 3:
        return
    index = {name: k for k, name in enumerate(names)}
    phi = np.eye(len(names))
    cells = [r for r in rows if op[r] == "~~" and lhs[r] in index and rhs[r] in index]
    for r in cells:
        phi[index[lhs[r]], index[rhs[r]]] = phi[index[rhs[r]], index[lhs[r]]] = values[r]
    if cholesky_lower(phi) is None:
        for r in cells:
            if lhs[r] != rhs[r] and derived[r]:
                values[r] = 0.0


def adjust_intercept_starts(values: np.ndarray, partable: ParTable, model,
                            sample_means: list) -> np.ndarray:
    """Start the mean structure at the sample means.

    Free latent means whose marker indicator has a fixed intercept (marker-intercept
    identification, e.g. semTools' ``measEq.syntax(ID.fac = "marker")``) start at the marker's
    sample mean over its loading; then free observed intercepts are shifted so that the implied
    means equal the sample means (latent means with start values, e.g. in latent congruence
    models, otherwise leave the intercepts far off)."""
    if not model.meanstructure:
        return values
    values = values.copy()
    op = partable["op"]
    free = partable["free"] > 0
    user_start = ~np.isnan(partable["start"])
    ov_index = {v: k for k, v in enumerate(model.ov_names)}
    lhs, rhs = partable["lhs"].tolist(), partable["rhs"].tolist()
    markers = {lv: inds[0] for lv, inds in model.variables.indicators.items()
               if inds[0] in ov_index}
    for g, mean in enumerate(sample_means):
        in_group = rows_of_group(partable, g)
        row_of = {(lhs[r], op[r], rhs[r]): r for r in in_group.tolist()}
        means_free = in_group[(op[in_group] == "~1") & free[in_group]]
        latent = [r for r in means_free[~user_start[means_free]].tolist() if lhs[r] in markers]
        if latent:
            implied = model.moments(values, g).mean
            for r in latent:
                marker = markers[lhs[r]]
                load = row_of.get((lhs[r], "=~", marker))
                intercept = row_of.get((marker, "~1", ""))
                k = ov_index[marker]
                if (load is None or intercept is None or free[intercept]
                        or abs(values[load]) < 1e-8 or not np.isfinite(mean[k])):
                    continue
                values[r] += (mean[k] - implied[k]) / values[load]
        rows = [r for r in means_free.tolist() if lhs[r] in ov_index]
        if not rows:
            continue
        implied = model.moments(values, g).mean
        for r in rows:
            k = ov_index[lhs[r]]
            if np.isfinite(mean[k]):
                values[r] += mean[k] - implied[k]
    return values


def apply_start(values: np.ndarray, free: np.ndarray, start,
                table: Optional[ParTable] = None) -> np.ndarray:
    """Warm start (lavaan's ``start = fit``): the free rows of ``values`` from ``start``, a
    fitted model (its ``values``; a model with another parameter table, e.g. a nested one:
    matched by name as below), one number per parameter-table row, or a parameter table
    (a DataFrame with ``lhs``, ``op``, ``rhs``, optionally ``group``, and ``est`` or
    ``start``, e.g. another model's ``fit.partable``: rows matched by ``lhs op rhs`` and
    group, as lavaan matches ``start = parTable(fit)``; rows it lacks keep their start
    values); checked first."""
    from ..errors import ModelError
    if isinstance(start, pd.DataFrame):
        if table is None:
            raise ModelError("start= as a parameter table needs this model's parameter table")
        return _start_by_name(values, free, _table_rows(start), table)
    own = getattr(start, "_table", None)
    if table is not None and isinstance(own, ParTable) and not _same_rows(own, table):
        # another model's fit (e.g. a nested one): its estimates matched by name
        rows = zip(own["lhs"].tolist(), own["op"].tolist(), own["rhs"].tolist(),
                   own["group"].tolist(), np.asarray(start.values, float).tolist())
        return _start_by_name(values, free, rows, table)
    try:
        previous = np.asarray(getattr(start, "values", start), float)
    except (TypeError, ValueError):
        raise ModelError("start= must be a fitted model (SEMFit), one number per "
                         "parameter-table row or a parameter table (DataFrame), got "
                         f"{type(start).__name__}") from None
    if previous.shape != values.shape:
        raise ModelError(f"start= has {previous.size} values but the parameter table of "
                         f"this model has {values.size} rows: fit the same model, or give a "
                         "parameter table (e.g. fit.partable) to match rows by name")
    if not np.all(np.isfinite(previous[free])):
        raise ModelError("start= has non-finite values for free parameters")
    values[free] = previous[free]
    return values


def _same_rows(a: ParTable, b: ParTable) -> bool:
    """Whether two parameter tables list the same parameters in the same order."""
    return len(a) == len(b) and all(np.array_equal(a[c], b[c])
                                    for c in ("lhs", "op", "rhs", "group"))


def _table_rows(start: pd.DataFrame):
    """``(lhs, op, rhs, group, value)`` of the rows of a parameter table given as start."""
    from ..errors import ModelError
    column = "est" if "est" in start.columns else "start" if "start" in start.columns else None
    missing = [c for c in ("lhs", "op", "rhs") if c not in start.columns]
    if column is None or missing:
        raise ModelError("start= as a parameter table needs the columns lhs, op, rhs and est "
                         f"(or start); it lacks {missing or ['est']}")
    groups = start["group"].tolist() if "group" in start.columns else [1] * len(start)
    return zip(start["lhs"].tolist(), start["op"].tolist(), start["rhs"].tolist(), groups,
               start[column].to_numpy(float).tolist())


def _start_by_name(values: np.ndarray, free: np.ndarray, rows, table: ParTable) -> np.ndarray:
    """The free rows of ``values`` whose ``(lhs, op, rhs, group)`` (covariances in either
    order) have a finite value among ``rows`` (``(lhs, op, rhs, group, value)``)."""
    given = {}
    for lhs, op, rhs, g, value in rows:
        if math.isfinite(value):
            given[(lhs, op, rhs, g)] = value
            if op == "~~":
                given.setdefault((rhs, op, lhs, g), value)
    for r, lhs, op, rhs, g in zip(np.flatnonzero(free).tolist(),
                                  table["lhs"][free].tolist(), table["op"][free].tolist(),
                                  table["rhs"][free].tolist(), table["group"][free].tolist()):
        value = given.get((lhs, op, rhs, g))
        if value is not None:
            values[r] = value
    return values
