"""Bartlett factor scores (lavaan's ``lavPredict(fit, method = "Bartlett")``).

With the measurement model ``y = nu + Lambda eta + eps``, ``Cov(eps) = Theta``, Bartlett's
(1937) weighted least-squares scores are

    eta_hat = E(eta) + (Lambda' Theta^-1 Lambda)^-1 Lambda' Theta^-1 (y - E(y)),

conditionally unbiased (``E(eta_hat | eta) = eta``), unlike the regression scores
``E(eta | y)`` of :meth:`sem_models.results.SEMFit.factor_scores` (Thurstone 1935).  ``E(eta)``
and ``E(y)`` are the model-implied means (the sample means without a mean structure).
Lambda and Theta are read off the RAM matrices: the paths from the latent to the observed
variables and the (residual) covariances of the observed variables.  Rows with missing
values (FIML) use their observed variables only.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["bartlett_scores", "latent_means", "scores_by_pattern"]


def latent_means(fit, g: int, mom) -> np.ndarray:
    """Model-implied means of the latent variables in group g.  Without a mean structure
    the intercepts are 0 and the exogenous covariates sit at their sample means, so
    ``E(eta) = [(I - A)^-1 m0]_eta`` with ``m0`` the covariates' sample means (as lavaan's
    ``lavPredict``: a MIMIC model's scores centre on ``Gamma x_bar``)."""
    model = fit.model
    p = model.n_ov
    lv_idx = np.arange(p, model.n_var)
    if model.meanstructure:
        return mom.full_mean[lv_idx]
    ov = list(model.ov_names)
    m0 = np.zeros(model.n_var)
    x_idx = [ov.index(v) for v in fit.variables.ov_x]
    if x_idx:
        m0[x_idx] = fit.sample_moments_arrays[g][1][x_idx]
    return (mom.B @ m0)[lv_idx]


def bartlett_scores(fit) -> pd.DataFrame:
    """Bartlett factor scores for the analysed rows (columns: the latent variables; a first
    column ``group`` with several groups), indexed like the caller's DataFrame."""
    model = fit.model
    p = model.n_ov
    lv = list(fit.variables.lv)
    if not lv:
        raise ValueError("the model has no latent variables: there are no factor scores")
    lv_idx = np.arange(p, model.n_var)

    def group_weights(g, mom, gd):
        A, S, _ = model.matrices(fit.values, g)
        if np.any(A[:p, :p]) or np.any(A[np.ix_(lv_idx, np.arange(p))][:, _indicator_mask(A, p)]):
            raise ValueError("Bartlett factor scores need a measurement model in which the "
                             "observed indicators depend on latent variables only (no "
                             "regressions among observed variables); use method='regression'")
        Lam = A[:p][:, lv_idx]
        Theta = S[:p, :p]
        return lambda pat: _bartlett_weights(fit, gd, Lam, Theta, pat)

    return scores_by_pattern(fit, group_weights)


def _bartlett_weights(fit, gd, Lam: np.ndarray, Theta: np.ndarray, pat: np.ndarray):
    """(observed indicators, weights) of Bartlett's scores for one missing-data pattern."""
    obs = np.flatnonzero(pat & np.any(Lam != 0, axis=1))  # indicators only
    L = Lam[obs]
    try:
        import scipy.linalg
        factor = scipy.linalg.cho_factor(Theta[np.ix_(obs, obs)], lower=True)
        TinvL = scipy.linalg.cho_solve(factor, L)
        weights = np.linalg.solve(L.T @ TinvL, TinvL.T)  # (m, n_obs)
    except np.linalg.LinAlgError:
        raise ValueError(
            "Bartlett factor scores need a positive definite residual covariance "
            "matrix of the indicators and Lambda' Theta^-1 Lambda of full rank (no "
            "zero residual variances, every factor measured)"
            + (f" in group {gd.label!r}" if fit.n_groups > 1 else "")) from None
    return obs, weights.T


def scores_by_pattern(fit, group_weights: Callable) -> pd.DataFrame:
    """Linear factor scores ``E(eta) + (y_obs - E(y)_obs) W`` of the analysed rows, one frame
    (latent variables as columns, a first column ``group`` with several groups) indexed like
    the caller's DataFrame.  ``group_weights(g, moments, group_data)`` returns a function of a
    missing-data pattern (bool per observed variable) giving ``(obs, W)``: the observed
    variables used and the (len(obs), m) weights; rows with the same pattern share them."""
    lv = list(fit.variables.lv)
    frames = []
    for g, mom in enumerate(fit._moments):
        gd = fit.data.groups[g]
        weights_for = group_weights(g, mom, gd)
        mu_y = fit._implied_mean(g)
        mu_eta = latent_means(fit, g, mom)
        X = gd.X
        scores = np.empty((X.shape[0], len(lv)))
        observed = ~np.isnan(X)
        patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
        for k, pat in enumerate(patterns):
            rows = np.flatnonzero(inverse.ravel() == k)
            obs, W = weights_for(pat)
            scores[rows] = mu_eta + (X[np.ix_(rows, obs)] - mu_y[obs]) @ W
        frame = pd.DataFrame(scores, columns=lv, index=gd.row_index)
        if fit.n_groups > 1:
            frame.insert(0, "group", gd.label)
        frames.append(frame)
    return pd.concat(frames).sort_index()


def _indicator_mask(A: np.ndarray, p: int) -> np.ndarray:
    """Observed variables that are indicators (load on a latent variable)."""
    return np.any(A[:p, p:] != 0, axis=1)
