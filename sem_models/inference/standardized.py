"""Standardized solutions (lavaan's ``standardizedSolution`` / ``std.lv``, ``std.all``, ``std.nox``).

With ``sd`` the model-implied standard deviations (total variances of the RAM model,
``diag(B S B')``; Bollen 1989, p. 349):

* ``=~``  est * sd(factor) / sd(indicator)
* ``~``   est * sd(predictor) / sd(outcome)
* ``~~``  variances: est / sd(lhs)^2; covariances: est / sqrt(var_lhs var_rhs) with the
  *parameters'* variances (residual variances for endogenous variables, so residual
  covariances become residual correlations, as in lavaan)
* ``~1``  est / sd(lhs)
* ``:=``  the expression evaluated on the standardized values.

``std_lv`` rescales latent variables only, ``std_all`` every variable, ``std_nox`` every
variable but the observed exogenous covariates.  Standard errors of ``std_all`` by the delta
method (numerical Jacobian).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..model.constraints import defined_values, numerical_jacobian

__all__ = ["standardize_values", "standardized_solution"]


def _row_indices(fit) -> dict:
    """Per group: table rows by operator with the RAM indices of their variables (cached)."""
    cache = fit.__dict__.get("_std_rows")
    if cache is not None:
        return cache
    pt = fit._partable
    index = {name: k for k, name in enumerate(fit.model.var_names)}
    group = pt["group"].to_numpy()
    op = pt["op"].to_numpy()
    lhs = np.array([index.get(v, -1) for v in pt["lhs"].tolist()])
    rhs = np.array([index.get(v, -1) for v in pt["rhs"].tolist()])
    cache = []
    for g in range(fit.model.n_groups):
        rows = {key: np.flatnonzero((group == g + 1) & (op == key))
                for key in ("=~", "~", "~1", "~~")}
        cache.append((rows, lhs, rhs))
    fit.__dict__["_std_rows"] = cache
    return cache


def standardize_values(fit, values: np.ndarray, kind: str) -> np.ndarray:
    """Standardized versions of all parameter-table rows (``kind``: lv, all or nox)."""
    model = fit.model
    lv = set(fit.variables.lv)
    ov_x = set(fit.variables.ov_x)
    scaled = np.array([name in lv or kind == "all" or (kind == "nox" and name not in ov_x)
                       for name in model.var_names])
    out = values.copy()
    for g, (rows, lhs, rhs) in enumerate(_row_indices(fit)):
        mom = model.moments(values, g)
        _, S, _ = model.matrices(values, g)
        sd = np.where(scaled, np.sqrt(np.clip(np.diag(mom.full_cov), 0, None)), 1.0)
        r = rows["=~"]
        out[r] = values[r] * sd[lhs[r]] / sd[rhs[r]]
        r = rows["~"]
        out[r] = values[r] * sd[rhs[r]] / sd[lhs[r]]
        r = rows["~1"]
        out[r] = values[r] / sd[lhs[r]]
        r = rows["~~"]
        i, j = lhs[r], rhs[r]
        # covariances: divided by the square roots of the variance *parameters*
        param_sd = np.where(scaled, np.sqrt(np.abs(np.diag(S))), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[r] = np.where(i == j, values[r] / sd[i] ** 2,
                              values[r] / (param_sd[i] * param_sd[j]))
    pt = fit._partable
    defined = np.flatnonzero(pt["op"].to_numpy() == ":=")
    if len(defined):
        env = defined_values(pt, out)
        for r in defined:
            out[r] = env[pt["lhs"].iat[r]]
    return out


def standardized_solution(fit, se: bool = True) -> pd.DataFrame:
    """Estimates with ``std_lv``, ``std_all`` and ``std_nox`` columns (and ``se_std_all``)."""
    # defined parameters: keep their estimates in the value vector for the expressions
    return standardized_table(fit, fit.values.copy(),
                              lambda vals, kind: standardize_values(fit, vals, kind), se)


def standardized_table(fit, values: np.ndarray, std: Callable[[np.ndarray, str], np.ndarray],
                       se: bool = True) -> pd.DataFrame:
    """``fit.estimates()`` with the columns ``std_lv`` / ``std_all`` / ``std_nox`` of
    ``std(values, kind)`` (one value per table row) and, with ``se``, ``se_std_all`` by the
    delta method (numerical Jacobian of ``std(., "all")`` in the free parameters)."""
    table = fit.estimates()
    pt = fit._partable
    keep = ~pt["op"].isin(["==", "<", ">"]).to_numpy()
    for kind in ("lv", "all", "nox"):
        table[f"std_{kind}"] = std(values, kind)[keep]
    if se:
        rows = fit.problem.pmap.free_rows

        def func(theta_free):
            vals = values.copy()
            vals[rows] = theta_free
            return std(vals, "all")[keep]

        jac = numerical_jacobian(func, values[rows])
        cov = jac @ fit._vcov_free @ jac.T
        se_all = np.sqrt(np.clip(np.diag(cov), 0, None))
        # parameters that standardize to constants (fixed 1 for a standardized marker) get 0
        se_all[np.abs(se_all) < 1e-10] = 0.0
        table["se_std_all"] = se_all
    return table
