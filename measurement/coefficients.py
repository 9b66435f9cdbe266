"""Reliability and latent state-trait coefficients from a fitted model.

Written against the fit-object API of the ``sem_models`` engine and nothing else:

* ``fit.estimates()``: DataFrame with ``lhs, op, rhs, [group,] label, est, se, ...`` (fixed
  parameters included, as lavaan's ``parameterEstimates``);
* ``fit.implied()``: ``{group: {"cov": DataFrame, "mean": Series or None}}`` (key ``None``
  for a single group).

Formulas
--------
* Omega (McDonald 1999; Raykov 1997), as ``semTools::compRelSEM`` (default ``obs.var=TRUE``):
  ``omega_f = (sum_j lambda_jf)^2 Var(f) / 1' Sigma_f 1`` where ``Var(f)`` is the total
  (model-implied) factor variance and ``Sigma_f`` the covariance matrix of the factor's
  indicators: the observed (saturated-model) one with ``obs_var=True`` -- sample covariance
  with divisor N, or its EM estimate under missing data -- or the model-implied one with
  ``obs_var=False``. Factors with fewer than two observed indicators are dropped.
* Average variance extracted (Fornell & Larcker 1981, as ``semTools::AVE``):
  ``AVE_f = sum_j lambda_jf^2 Var(f) / sum_j Sigma_jj``; missing when an indicator loads on
  another reported factor.
* Cronbach's alpha (Cronbach 1951): ``k / (k - 1) * (1 - sum_j s_jj / 1' S 1)`` from the
  data (complete cases of the factor's items).
* Latent state-trait coefficients (Steyer, Ferring & Schmitt 1992; Steyer, Schmitt & Eid
  1999), for ``Y_it = a_it + l_it S_t + e_it``, ``S_t = g_t xi + zeta_t``:
  consistency ``Con = (l g)^2 Var(xi) / Var(Y)``, occasion specificity
  ``OSpe = l^2 Var(zeta_t) / Var(Y)``, method specificity ``MSpe`` (variance due to a wording
  factor, 0 without one) and reliability ``Rel = Con + OSpe + MSpe``, with ``Var(Y)`` the
  model-implied variance.
"""
from __future__ import annotations

from typing import Any, Hashable, Optional, Sequence

import numpy as np
import pandas as pd

from .design import Design

__all__ = ["reliability", "state_trait_coefficients", "cronbach_alpha", "saturated_moments"]


# ---------------------------------------------------------------------------------------------
# access to the fit object
# ---------------------------------------------------------------------------------------------

def _blocks(fit: Any) -> list[tuple[Hashable, pd.DataFrame, pd.DataFrame]]:
    """(group, estimates of that group, implied covariance) per group."""
    est = fit.estimates()
    implied = fit.implied()
    keys = list(implied.keys())
    multi = "group" in est.columns and est["group"].notna().any() and \
        est["group"].nunique(dropna=True) > 1
    if not multi:
        key = None if None in implied else keys[0]
        return [(None, est, implied[key]["cov"])]
    out = []
    groups = list(pd.unique(est["group"].dropna()))
    for n, g in enumerate(groups):
        if g in implied:
            key = g
        elif isinstance(g, (int, np.integer)) and 1 <= int(g) <= len(keys):
            key = keys[int(g) - 1]  # lavaan-style 1-based group index
        else:
            key = keys[n]
        out.append((key, est[est["group"] == g], implied[key]["cov"]))
    return out


def _value(est: pd.DataFrame, lhs: str, op: str, rhs: str, *, symmetric: bool = False,
           default: Optional[float] = None) -> float:
    sel = est[(est["lhs"] == lhs) & (est["op"] == op) & (est["rhs"] == rhs)]
    if sel.empty and symmetric:
        sel = est[(est["lhs"] == rhs) & (est["op"] == op) & (est["rhs"] == lhs)]
    if sel.empty:
        if default is not None:
            return default
        raise ValueError(f"the fit has no parameter '{lhs} {op} {rhs}'")
    return float(sel["est"].iloc[0])


def _latent_structure(est: pd.DataFrame, observed: Sequence[str]):
    """Loadings on observed indicators and the total latent covariance matrix.

    Builds ``B`` (latent on latent: second-order loadings and regressions) and ``Psi``
    (latent (residual) covariances) from the estimates and returns
    ``lambda_df`` (observed x latent) and ``cov_lv = (I - B)^-1 Psi (I - B)^-T``.
    Observed variables that predict latent variables enter as phantom latents with their
    model-implied (co)variances supplied by the caller.
    """
    obs = set(observed)
    load = est[est["op"] == "=~"]
    latents = list(dict.fromkeys(load["lhs"]))
    for _, r in est[est["op"] == "~"].iterrows():
        for v in (r["lhs"], r["rhs"]):
            if v not in obs and v not in latents:
                latents.append(v)
    phantoms = [r["rhs"] for _, r in est[(est["op"] == "~") & est["rhs"].isin(obs)
                                          & est["lhs"].isin(latents)].iterrows()]
    phantoms = list(dict.fromkeys(phantoms))
    allv = latents + phantoms
    pos = {v: n for n, v in enumerate(allv)}
    m = len(allv)
    B = np.zeros((m, m))
    Psi = np.zeros((m, m))
    lam = pd.DataFrame(0.0, index=list(observed), columns=latents)
    for _, r in load.iterrows():
        if r["rhs"] in obs:
            lam.loc[r["rhs"], r["lhs"]] = r["est"]
        elif r["rhs"] in pos:
            B[pos[r["rhs"]], pos[r["lhs"]]] = r["est"]
    for _, r in est[est["op"] == "~"].iterrows():
        if r["lhs"] in pos and r["rhs"] in pos:
            B[pos[r["lhs"]], pos[r["rhs"]]] = r["est"]
    for _, r in est[est["op"] == "~~"].iterrows():
        if r["lhs"] in pos and r["rhs"] in pos:
            a, b = pos[r["lhs"]], pos[r["rhs"]]
            Psi[a, b] = Psi[b, a] = r["est"]
    return lam, allv, B, Psi, phantoms


def _cov_lv(est: pd.DataFrame, cov: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    observed = list(cov.index)
    lam, allv, B, Psi, phantoms = _latent_structure(est, observed)
    if phantoms:
        idx = [allv.index(p) for p in phantoms]
        Psi[np.ix_(idx, idx)] = cov.loc[phantoms, phantoms].to_numpy()
    inv = np.linalg.inv(np.eye(len(allv)) - B)
    phi = pd.DataFrame(inv @ Psi @ inv.T, index=allv, columns=allv)
    return lam, phi


# ---------------------------------------------------------------------------------------------
# saturated moments and alpha
# ---------------------------------------------------------------------------------------------

def saturated_moments(data: pd.DataFrame, columns: Sequence[str], *, missing: str = "listwise",
                      tol: float = 1e-10, max_iter: int = 10000) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and ML covariance matrix (divisor N) of ``columns``.

    ``missing="listwise"`` uses the complete cases; ``missing="ml"`` the EM estimates of the
    saturated normal model from all cases (Dempster, Laird & Rubin 1977), as lavaan's
    ``sampstat`` under ``missing="ml"``.
    """
    X = data.loc[:, list(columns)].to_numpy(dtype=float)
    if missing == "listwise":
        X = X[~np.isnan(X).any(axis=1)]
        if X.shape[0] < 2:
            raise ValueError("fewer than two complete cases")
        mu = X.mean(axis=0)
        D = X - mu
        return mu, D.T @ D / X.shape[0]
    if missing not in ("ml", "fiml"):
        raise ValueError("missing must be 'listwise' or 'ml'")
    X = X[~np.isnan(X).all(axis=1)]
    n, p = X.shape
    obs = ~np.isnan(X)
    mu = np.nanmean(X, axis=0)
    sigma = np.diag(np.nanvar(X, axis=0))
    patterns, inverse = np.unique(obs, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for _ in range(max_iter):
        T1 = np.zeros(p)
        T2 = np.zeros((p, p))
        for k, pat in enumerate(patterns):
            rows = X[inverse == k]
            o, m = np.flatnonzero(pat), np.flatnonzero(~pat)
            Y = np.zeros((rows.shape[0], p))
            Y[:, o] = rows[:, o]
            C = np.zeros((p, p))
            if m.size:
                S_oo = sigma[np.ix_(o, o)]
                coef = np.linalg.solve(S_oo, sigma[np.ix_(o, m)]) if o.size else \
                    np.zeros((0, m.size))
                Y[:, m] = mu[m] + (rows[:, o] - mu[o]) @ coef
                C[np.ix_(m, m)] = sigma[np.ix_(m, m)] - sigma[np.ix_(m, o)] @ coef
            T1 += Y.sum(axis=0)
            T2 += Y.T @ Y + rows.shape[0] * C
        mu_new = T1 / n
        sigma_new = T2 / n - np.outer(mu_new, mu_new)
        done = (np.max(np.abs(mu_new - mu)) < tol and np.max(np.abs(sigma_new - sigma)) < tol)
        mu, sigma = mu_new, sigma_new
        if done:
            break
    return mu, sigma


def cronbach_alpha(data: pd.DataFrame, columns: Sequence[str]) -> float:
    """Cronbach's (1951) alpha of ``columns`` from the complete cases.

    ``alpha = k / (k - 1) * (1 - sum of item variances / variance of the sum score)``.
    """
    X = data.loc[:, list(columns)].dropna().to_numpy(dtype=float)
    k = X.shape[1]
    if k < 2:
        raise ValueError("alpha needs at least two items")
    if X.shape[0] < 2:
        raise ValueError("alpha needs at least two complete cases")
    S = np.cov(X, rowvar=False)
    return float(k / (k - 1) * (1.0 - np.trace(S) / S.sum()))


# ---------------------------------------------------------------------------------------------
# reliability
# ---------------------------------------------------------------------------------------------

def reliability(fit: Any, data: Optional[pd.DataFrame] = None, *, obs_var: Optional[bool] = None,
                group: Optional[str] = None, missing: str = "listwise") -> pd.DataFrame:
    """Omega, Cronbach's alpha and average variance extracted per factor.

    Parameters
    ----------
    fit : a fitted ``sem_models`` model (see module docstring for the calls used).
    data : the data the model was fitted to (reverse-scored items). Needed for alpha and for
        ``obs_var=True``.
    obs_var : denominator of omega and AVE from the observed covariance matrix (``True``,
        semTools' default) or the model-implied one (``False``). Default: ``True`` when
        ``data`` is given, else ``False``.
    group : the grouping column of a multi-group fit (to split ``data``).
    missing : how the observed covariance matrix treats missing values: ``"listwise"``
        (complete cases on all model variables, lavaan's default) or ``"ml"`` (EM estimate,
        as lavaan under ``missing="ml"``).

    Returns
    -------
    DataFrame indexed by factor (by ``(group, factor)`` for several groups) with columns
    ``n_items, omega, alpha, ave``. Factors with fewer than two observed indicators (e.g. the
    trait factors of a state-trait model) are not reported.
    """
    if obs_var is None:
        obs_var = data is not None
    if obs_var and data is None:
        raise ValueError("obs_var=True needs the data (the observed covariance matrix); pass "
                         "data=... or use obs_var=False for the model-implied covariances")
    blocks = _blocks(fit)
    if data is not None and len(blocks) > 1 and group is None:
        raise ValueError("a multi-group fit needs group= (the grouping column of data)")
    rows = []
    for g, est, cov in blocks:
        observed = list(cov.index)
        lam, phi = _cov_lv(est, cov)
        nonzero = lam != 0
        factors = [f for f in lam.columns if nonzero[f].sum() >= 2]
        gdata = None
        if data is not None:
            gdata = data if g is None or len(blocks) == 1 else data[data[group] == g]
            missing_cols = [c for c in observed if c not in gdata.columns]
            if missing_cols:
                raise ValueError(f"data lack model variables: {missing_cols}")
        if obs_var:
            _, S = saturated_moments(gdata, observed, missing=missing)
            sigma = pd.DataFrame(S, index=observed, columns=observed)
        else:
            sigma = cov
        for f in factors:
            ind = list(lam.index[nonzero[f]])
            lf = lam.loc[ind, f].to_numpy()
            var_f = phi.loc[f, f]
            sig = sigma.loc[ind, ind].to_numpy()
            omega = float(lf.sum() ** 2 * var_f / sig.sum())
            cross = (nonzero.loc[ind, factors].sum(axis=1) > 1).any()
            ave = np.nan if cross else float((lf ** 2).sum() * var_f / np.trace(sig))
            alpha = cronbach_alpha(gdata, ind) if gdata is not None else np.nan
            rows.append({"group": g, "factor": f, "n_items": len(ind), "omega": omega,
                         "alpha": alpha, "ave": ave})
    out = pd.DataFrame(rows)
    if len(blocks) > 1:
        return out.set_index(["group", "factor"])
    return out.drop(columns="group").set_index("factor")


# ---------------------------------------------------------------------------------------------
# latent state-trait coefficients
# ---------------------------------------------------------------------------------------------

def state_trait_coefficients(fit: Any, design: Design) -> pd.DataFrame:
    """Consistency, occasion specificity, method specificity and reliability per indicator.

    For a fit of :func:`measurement.state_trait_model` (Steyer et al. 1992, 1999; STUDY.md):
    ``consistency = (l g)^2 Var(xi) / Var(Y)``, ``occasion_specificity = l^2 Var(zeta_t) /
    Var(Y)``, ``method_specificity`` = share of a wording factor (0 without one) and
    ``reliability`` = their sum; ``Var(Y)`` is model-implied. ``state_consistency`` is the
    consistency of the state factor itself, ``g^2 Var(xi) / Var(S_t)``.

    Returns a DataFrame with one row per indicator (and group): ``[group,] indicator,
    informant, occasion, dimension, item, state, trait, consistency, occasion_specificity,
    method_specificity, reliability, state_consistency``.
    """
    rows = []
    blocks = _blocks(fit)
    for g, est, cov in blocks:
        observed = list(cov.index)
        lam, phi = _cov_lv(est, cov)
        for i in design.informants:
            for o in design.occasions:
                for dim in design.dimensions:
                    state, trait = design.factor(i, dim, o), design.factor(i, dim)
                    gam = _value(est, trait, "=~", state)
                    _value(est, trait, "~~", trait)  # raises if the trait is not there
                    var_xi = float(phi.loc[trait, trait])  # total variance
                    var_z = _value(est, state, "~~", state)
                    for k in design.items[dim]:
                        col = design.column(i, o, dim, k)
                        if col not in observed:
                            raise ValueError(f"indicator {col!r} is not in the fitted model")
                        l = _value(est, state, "=~", col)
                        var_y = float(cov.loc[col, col])
                        others = [f for f in lam.columns
                                  if f != state and lam.loc[col, f] != 0]
                        a = lam.loc[col, others].to_numpy()
                        msp = float(a @ phi.loc[others, others].to_numpy() @ a) / var_y \
                            if others else 0.0
                        con = (l * gam) ** 2 * var_xi / var_y
                        spe = l ** 2 * var_z / var_y
                        rows.append({"group": g, "indicator": col, "informant": i,
                                     "occasion": o, "dimension": dim, "item": k,
                                     "state": state, "trait": trait, "consistency": con,
                                     "occasion_specificity": spe, "method_specificity": msp,
                                     "reliability": con + spe + msp,
                                     "state_consistency": gam ** 2 * var_xi /
                                     (gam ** 2 * var_xi + var_z)})
    out = pd.DataFrame(rows)
    if len(blocks) == 1:
        out = out.drop(columns="group")
    return out
