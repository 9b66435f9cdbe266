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

import numpy as np
import pandas as pd

from .constraints import defined_values, numerical_jacobian

__all__ = ["standardize_values", "standardized_solution"]


def standardize_values(fit, values: np.ndarray, kind: str) -> np.ndarray:
    """Standardized versions of all parameter-table rows (``kind``: lv, all or nox)."""
    pt = fit._partable
    model = fit.model
    index = {name: k for k, name in enumerate(model.var_names)}
    lv = set(fit.variables.lv)
    ov_x = set(fit.variables.ov_x)
    out = values.copy()
    for g in range(model.n_groups):
        mom = model.moments(values, g)
        A, S, M = model.matrices(values, g)
        total_sd = np.sqrt(np.clip(np.diag(mom.full_cov), 0, None))
        scaled = np.array([name in lv or kind == "all" or (kind == "nox" and name not in ov_x)
                           for name in model.var_names])
        sd = np.where(scaled, total_sd, 1.0)
        param_var = np.diag(S).copy()
        rows = np.flatnonzero(pt["group"].to_numpy() == g + 1)
        for r in rows:
            lhs, op, rhs = pt["lhs"].iat[r], pt["op"].iat[r], pt["rhs"].iat[r]
            est = values[r]
            if op == "=~":
                out[r] = est * sd[index[lhs]] / sd[index[rhs]]
            elif op == "~":
                out[r] = est * sd[index[rhs]] / sd[index[lhs]]
            elif op == "~1":
                out[r] = est / sd[index[lhs]]
            elif op == "~~":
                i, j = index[lhs], index[rhs]
                if i == j:
                    out[r] = est / sd[i] ** 2
                else:
                    scale_i = np.sqrt(param_var[i]) if scaled[i] else 1.0
                    scale_j = np.sqrt(param_var[j]) if scaled[j] else 1.0
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[r] = est / (scale_i * scale_j)
    defined = np.flatnonzero(pt["op"].to_numpy() == ":=")
    if len(defined):
        env = defined_values(pt, out)
        for r in defined:
            out[r] = env[pt["lhs"].iat[r]]
    return out


def standardized_solution(fit, se: bool = True) -> pd.DataFrame:
    """Estimates with ``std_lv``, ``std_all`` and ``std_nox`` columns (and ``se_std_all``)."""
    table = fit.estimates()
    pt = fit._partable
    keep = ~pt["op"].isin(["==", "<", ">"]).to_numpy()
    values = fit.values.copy()
    # defined parameters: keep their estimates in the value vector for the expressions
    for kind in ("lv", "all", "nox"):
        table[f"std_{kind}"] = standardize_values(fit, values, kind)[keep]
    if se:
        rows = fit.problem.pmap.free_rows

        def func(theta_free):
            vals = values.copy()
            vals[rows] = theta_free
            return standardize_values(fit, vals, "all")[keep]

        jac = numerical_jacobian(func, values[rows])
        cov = jac @ fit._vcov_free @ jac.T
        se_all = np.sqrt(np.clip(np.diag(cov), 0, None))
        # parameters that standardize to constants (fixed 1 for a standardized marker) get 0
        se_all[np.abs(se_all) < 1e-10] = 0.0
        table["se_std_all"] = se_all
    return table
