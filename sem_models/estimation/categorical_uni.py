"""Stage 1 of Muthen's (1984) three-stage estimator: univariate statistics.

* Ordinal variable without covariates: thresholds tau_k = Phi^-1(cumulative proportion of
  categories 1..k) (Olsson 1979; Muthen 1984, stage 1).
* Ordinal variable with exogenous covariates x (lavaan's ``conditional.x = TRUE``): the
  ordinal probit regression P(y = k | x) = Phi(tau_k - x'beta) - Phi(tau_{k-1} - x'beta)
  (McKelvey & Zavoina 1975; Muthen 1984, stage 1 with covariates), fitted by Newton-Raphson
  with the analytic gradient and Hessian; the log-likelihood is concave (Pratt 1981, JASA
  76:103-106), so the step-halving Newton iteration converges to the ML estimate.
* Continuous variable: mean and ML variance, or with covariates the linear regression
  (intercept, slopes, ML residual variance).

Each fit returns the casewise scores (derivatives of the casewise log-likelihood with respect
to the univariate parameters); rows with a missing value have score 0 (they do not contribute,
as in lavaan's ``missing = "pairwise"``). Codes of ordinal variables are 0..K-1, -1 = missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["UniOrdinal", "UniNumeric", "fit_uvord", "fit_uvord_nox", "fit_uvreg", "norm_pdf"]

_SQRT2PI = np.sqrt(2.0 * np.pi)


def norm_pdf(z: np.ndarray) -> np.ndarray:
    """Standard normal density; 0 at +-inf (and no warnings)."""
    z = np.asarray(z, float)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.exp(-0.5 * z * z) / _SQRT2PI
    return np.where(np.isfinite(z), out, 0.0)


def _interval_prob(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
    """Phi(z1) - Phi(z2) for z2 < z1, using upper tails when both are in the right tail."""
    up = z2 > 0
    return np.where(up, ndtr(-z2) - ndtr(-z1), ndtr(z1) - ndtr(z2))


@dataclass
class UniOrdinal:
    """Stage-1 result of one ordinal variable (``codes`` 0..K-1, -1 missing)."""

    K: int
    th: np.ndarray            # (K-1,) thresholds: P(y <= k | x) = Phi(tau_k - x'b)
    slopes: np.ndarray        # (nexo,)
    th_nox: np.ndarray        # (K-1,) marginal thresholds Phi^-1(cumprop), ignoring x
    codes: np.ndarray         # (N,) int
    z1: np.ndarray            # (N,) tau_y - x'b (upper limit; +inf top category; nan missing)
    z2: np.ndarray            # (N,) tau_{y-1} - x'b (lower limit), -inf for the bottom category
    scores: np.ndarray        # (N, K-1+nexo) casewise scores [tau, beta]
    counts: np.ndarray        # (K,) category counts
    iterations: int = 0
    converged: bool = True

    @property
    def npar(self) -> int:
        return self.scores.shape[1]


@dataclass
class UniNumeric:
    """Stage-1 result of one continuous variable."""

    mean: float               # mean, or intercept of the regression on x
    slopes: np.ndarray        # (nexo,)
    var: float                # ML (residual) variance
    mean_nox: float           # marginal mean
    y: np.ndarray             # (N,) values, nan missing
    yhat: np.ndarray          # (N,) fitted values
    scores: np.ndarray        # (N, 1+nexo+1) casewise scores [mu, beta, var]
    nobs: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def sd(self) -> float:
        return float(np.sqrt(self.var))


# ---------------------------------------------------------------------------------------
# ordinal
# ---------------------------------------------------------------------------------------
def _ord_casewise(tau: np.ndarray, beta: np.ndarray, codes: np.ndarray,
                  X: Optional[np.ndarray]):
    """z1, z2 (nan for missing) for thresholds ``tau`` and slopes ``beta``."""
    ext = np.concatenate(([-np.inf], tau, [np.inf]))
    obs = codes >= 0
    c = np.where(obs, codes, 0)
    eta = X @ beta if (X is not None and X.shape[1] > 0) else 0.0
    z1 = ext[c + 1] - eta
    z2 = ext[c] - eta
    z1 = np.where(obs, z1, np.nan)
    z2 = np.where(obs, z2, np.nan)
    return z1, z2


def _ord_scores(z1, z2, codes, K, X):
    """Casewise scores [d/dtau_1..tau_{K-1}, d/dbeta], zero for missing rows."""
    obs = codes >= 0
    p1 = norm_pdf(np.where(obs, z1, 0.0))
    p2 = norm_pdf(np.where(obs, z2, 0.0))
    p1 = np.where(obs & np.isfinite(z1), p1, 0.0)
    p2 = np.where(obs & np.isfinite(z2), p2, 0.0)
    pi = np.where(obs, _interval_prob(np.where(obs, z1, 1.0), np.where(obs, z2, 0.0)), 1.0)
    N = codes.shape[0]
    nth = K - 1
    S = np.zeros((N, nth))
    rows = np.arange(N)
    up = obs & (codes < nth)          # upper threshold tau_{c+1} (index c) is finite
    lo = obs & (codes >= 1)           # lower threshold tau_c (index c-1) is finite
    S[rows[up], codes[up]] += p1[up] / pi[up]
    S[rows[lo], codes[lo] - 1] -= p2[lo] / pi[lo]
    if X is not None and X.shape[1] > 0:
        sb = -X * ((p1 - p2) / pi)[:, None]
        sb[~obs] = 0.0
        S = np.hstack([S, sb])
    return S, pi, p1, p2


def _ord_loglik(tau, beta, codes, X):
    z1, z2 = _ord_casewise(tau, beta, codes, X)
    obs = codes >= 0
    pi = _interval_prob(z1[obs], z2[obs])
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log(pi)))


def _ord_hessian(z1, z2, codes, K, X, pi, p1, p2):
    """Analytic Hessian of the ordinal probit log-likelihood (observed rows)."""
    obs = codes >= 0
    g1 = np.where(obs & np.isfinite(z1), -np.where(np.isfinite(z1), z1, 0.0) * p1, 0.0)
    g2 = np.where(obs & np.isfinite(z2), -np.where(np.isfinite(z2), z2, 0.0) * p2, 0.0)
    nth = K - 1
    N = codes.shape[0]
    rows = np.arange(N)
    # N_k: derivative of pi wrt tau_k (casewise); G_k: derivative of N_k wrt tau_k
    Nk = np.zeros((N, nth))
    Gk = np.zeros((N, nth))
    up = obs & (codes < nth)
    lo = obs & (codes >= 1)
    Nk[rows[up], codes[up]] += p1[up]
    Nk[rows[lo], codes[lo] - 1] -= p2[lo]
    Gk[rows[up], codes[up]] += g1[up]
    Gk[rows[lo], codes[lo] - 1] -= g2[lo]
    w = np.where(obs, 1.0 / pi, 0.0)
    w2 = w * w
    H_tt = np.diag(np.sum(Gk * w[:, None], axis=0)) - (Nk * w2[:, None]).T @ Nk
    if X is None or X.shape[1] == 0:
        return H_tt
    M = -X * np.where(obs, p1 - p2, 0.0)[:, None]            # d pi / d beta
    H_bb = (X * (np.where(obs, g1 - g2, 0.0) * w)[:, None]).T @ X - (M * w2[:, None]).T @ M
    H_tb = -(Gk * w[:, None]).T @ X - (Nk * w2[:, None]).T @ M
    return np.block([[H_tt, H_tb], [H_tb.T, H_bb]])


def fit_uvord(codes: np.ndarray, K: int, X: Optional[np.ndarray] = None, *,
              tol: float = 1e-11, maxit: int = 200) -> UniOrdinal:
    """Thresholds (and probit slopes on ``X``) of one ordinal variable with codes 0..K-1.

    Without ``X``: tau_k = Phi^-1(sum_{j<=k} n_j / n). With ``X``: ML ordinal probit
    regression (Newton-Raphson with step halving, analytic Hessian).
    """
    codes = np.asarray(codes, dtype=np.int64)
    obs = codes >= 0
    counts = np.bincount(codes[obs], minlength=K).astype(float)
    n = counts.sum()
    th_nox = ndtri(np.cumsum(counts)[:-1] / n)
    nexo = 0 if X is None else X.shape[1]
    if nexo == 0:
        tau = th_nox.copy()
        beta = np.zeros(0)
        it = 0
        conv = True
    else:
        nth = K - 1
        tau = np.zeros(1) if nth == 1 else ndtri(np.arange(1, nth + 1) / (nth + 1.0))
        beta = np.zeros(nexo)
        ll = _ord_loglik(tau, beta, codes, X)
        conv = False
        for it in range(1, maxit + 1):
            z1, z2 = _ord_casewise(tau, beta, codes, X)
            S, pi, p1, p2 = _ord_scores(z1, z2, codes, K, X)
            g = S.sum(axis=0)
            H = _ord_hessian(z1, z2, codes, K, X, pi, p1, p2)
            try:
                step = np.linalg.solve(-H, g)
            except np.linalg.LinAlgError:
                step = g / max(n, 1.0)
            t = 1.0
            accepted = False
            for _ in range(60):
                tn = tau + t * step[:nth]
                bn = beta + t * step[nth:]
                if np.all(np.diff(tn) > 0):
                    lln = _ord_loglik(tn, bn, codes, X)
                    if np.isfinite(lln) and lln >= ll - 1e-12 * abs(ll):
                        accepted = True
                        break
                t *= 0.5
            if not accepted:
                conv = np.max(np.abs(g)) < 1e-6 * n
                break
            tau, beta, ll = tn, bn, lln
            if np.max(np.abs(t * step)) < tol:
                conv = True
                break
    if nexo == 0:
        # without covariates a case's limits and scores are those of its category:
        # evaluate them once per category and gather
        ext = np.concatenate(([-np.inf], tau, [np.inf]))
        cat = np.arange(K)
        S_cat, _, _, _ = _ord_scores(ext[1:], ext[:-1], cat, K, None)
        c = np.where(obs, codes, K)
        z1 = np.append(ext[1:], np.nan)[c]
        z2 = np.append(ext[:-1], np.nan)[c]
        S = np.vstack([S_cat, np.zeros((1, K - 1))])[c]
    else:
        z1, z2 = _ord_casewise(tau, beta, codes, X)
        S, _, _, _ = _ord_scores(z1, z2, codes, K, X)
    return UniOrdinal(K=K, th=tau, slopes=beta, th_nox=th_nox, codes=codes, z1=z1, z2=z2,
                      scores=S, counts=counts, iterations=it, converged=bool(conv))


def fit_uvord_nox(codes: np.ndarray, K: np.ndarray,
                  counts: Optional[np.ndarray] = None) -> list:
    """:func:`fit_uvord` without covariates for the N x m ordinal ``codes`` at once.

    tau_k = Phi^-1(cumulative proportion) (Olsson 1979); a case's limits and scores
    depend only on its category, so they are tabulated per variable and category
    (m x (kmax+1), the last entry for a missing value) and gathered for all cases in one
    indexing operation. ``counts``: m x kmax category frequencies, if known.
    Returns a list of :class:`UniOrdinal`.
    """
    codes = np.asarray(codes, dtype=np.int64)
    N, m = codes.shape
    if m == 0:
        return []
    K = np.asarray(K, dtype=np.int64)
    kmax = int(K.max())
    if counts is None:
        counts = np.bincount((codes + 1 + (kmax + 1) * np.arange(m)).ravel(),
                             minlength=m * (kmax + 1)).reshape(m, kmax + 1)[:, 1:]
    counts = np.asarray(counts, float)[:, :kmax]
    n = counts.sum(axis=1)
    cat = np.arange(kmax)
    inside = cat[None, :kmax - 1] < (K - 1)[:, None]            # real thresholds
    with np.errstate(divide="ignore", invalid="ignore"):
        th = np.where(inside, ndtri(np.cumsum(counts, axis=1)[:, :-1] / n[:, None]), np.inf)
    ext = np.hstack([np.full((m, 1), -np.inf), th, np.full((m, 1), np.inf)])   # m x (kmax+1)
    z1c = ext[:, 1:]
    z2c = ext[:, :-1]
    p1 = norm_pdf(z1c)
    p2 = norm_pdf(z2c)
    valid = cat[None, :] < K[:, None]
    pi = np.where(valid, _interval_prob(np.where(valid, z1c, 1.0), np.where(valid, z2c, 0.0)),
                  1.0)
    S_cat = np.zeros((m, kmax + 1, kmax - 1))
    up = cat[None, :] < (K - 1)[:, None]
    lo = valid & (cat[None, :] >= 1)
    rr, cc = np.nonzero(up)
    S_cat[rr, cc, cc] += p1[rr, cc] / pi[rr, cc]
    rr, cc = np.nonzero(lo)
    S_cat[rr, cc, cc - 1] -= p2[rr, cc] / pi[rr, cc]
    z1t = np.hstack([z1c, np.full((m, 1), np.nan)])
    z2t = np.hstack([z2c, np.full((m, 1), np.nan)])
    # one flat index into the (variable, category) tables, gathered along the first axis
    c = np.where(codes >= 0, codes, kmax) + (kmax + 1) * np.arange(m)[None, :]
    Z1 = z1t.ravel()[c]
    Z2 = z2t.ravel()[c]
    S = S_cat.reshape(m * (kmax + 1), kmax - 1)[c]              # N x m x (kmax-1)
    out = []
    for r in range(m):
        k = int(K[r])
        out.append(UniOrdinal(K=k, th=th[r, :k - 1].copy(), slopes=np.zeros(0),
                              th_nox=th[r, :k - 1].copy(), codes=codes[:, r], z1=Z1[:, r],
                              z2=Z2[:, r], scores=S[:, r, :k - 1], counts=counts[r, :k].copy(),
                              iterations=0, converged=True))
    return out


# ---------------------------------------------------------------------------------------
# continuous
# ---------------------------------------------------------------------------------------
def fit_uvreg(y: np.ndarray, X: Optional[np.ndarray] = None) -> UniNumeric:
    """Mean and ML variance, or the linear regression of ``y`` on ``X`` (least squares with
    the ML residual variance RSS / n), fitted on the rows where ``y`` is observed."""
    y = np.asarray(y, float)
    obs = ~np.isnan(y)
    n = int(obs.sum())
    N = y.shape[0]
    nexo = 0 if X is None else X.shape[1]
    X1 = np.ones((N, 1)) if nexo == 0 else np.hstack([np.ones((N, 1)), X])
    coef, *_ = np.linalg.lstsq(X1[obs], y[obs], rcond=None)
    yhat = X1 @ coef
    res = np.where(obs, y - yhat, 0.0)
    var = float(np.sum(res * res) / n)
    sc_beta = X1 * (res / var)[:, None]
    sc_var = np.where(obs, -1.0 / (2.0 * var) + res * res / (2.0 * var * var), 0.0)
    S = np.hstack([sc_beta, sc_var[:, None]])
    S[~obs] = 0.0
    return UniNumeric(mean=float(coef[0]), slopes=coef[1:].copy(), var=var,
                      mean_nox=float(np.mean(y[obs])), y=y, yhat=yhat, scores=S, nobs=n)
