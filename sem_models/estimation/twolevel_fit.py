"""Fitting two-level level moments: the saturated (h1) and the independence (baseline)
models, a general Fisher-scoring fit of a subset of free moments (complete data) and a
Newton fit that keeps ``Sigma_B`` positive semi-definite (complete or missing data).

``Sigma_B`` is a covariance matrix; with small between-level variation the maximum of the
saturated likelihood over positive semi-definite ``Sigma_B`` is often on the boundary
(``Sigma_B`` singular), while the likelihood itself is defined (and larger) for some indefinite
``Sigma_B`` too.  The saturated and baseline models here are the maxima over positive
semi-definite ``Sigma_B`` (:func:`fit_h1`, :func:`fit_baseline`; lavaan's h1 intends the
same: EM for complete data, a Cholesky parameterisation for missing data), so their ICCs are
in [0, 1) and the baseline is nested in the saturated model.  :func:`psd_optimality` checks
the Karush-Kuhn-Tucker conditions of such a maximum.

See :mod:`sem_models.estimation.twolevel` for the model, coordinates and references;
EM for incomplete data lives in :mod:`sem_models.estimation.twolevel_missing`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .twolevel import (TwoLevelData, TwoLevelMoments, _as_moments, _require_complete,
                       _vech_idx, between_quantities, twolevel_gradient,
                       twolevel_information_expected, twolevel_loglik)

__all__ = ["TwoLevelFit", "fit_moments", "fit_moments_psd", "fit_h1", "fit_baseline",
           "saturated_free", "baseline_free", "loglik_x", "psd_optimality"]


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
    mom = lay.moments(v)
    ll, bt = _loglik_between(data, mom)
    if not np.isfinite(ll):
        raise ValueError("start moments are not positive definite")
    idx = np.where(free)[0]
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        # the per-size factorisations of the current point serve the gradient and the
        # information (computed once, with its log-likelihood)
        g = twolevel_gradient(data, mom, between=bt)[idx]
        Inf = twolevel_information_expected(data, mom, between=bt)[np.ix_(idx, idx)]
        try:
            step = np.linalg.solve(Inf, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(Inf, g, rcond=None)[0]
        alpha, accepted = 1.0, False
        while alpha > 1e-10:
            vn = v.copy()
            vn[idx] += alpha * step
            mom_n = lay.moments(vn)
            lln, bt_n = _loglik_between(data, mom_n)
            if np.isfinite(lln) and lln >= ll - 1e-12 * (1 + abs(ll)):
                accepted = True
                break
            alpha /= 2
        if not accepted:
            converged = np.max(np.abs(g)) < 1e-4 * (1 + abs(ll)) / max(data.nobs, 1)
            break
        change = np.max(np.abs(alpha * step))
        dll = lln - ll
        v, ll, mom, bt = vn, lln, mom_n, bt_n
        if change < np.sqrt(tol) and abs(dll) < tol * (1 + abs(ll)):
            converged = True
            break
    return TwoLevelFit(lay.moments(v), ll, it, converged, "fisher-scoring", free)


def _loglik_between(data: TwoLevelData, mom: TwoLevelMoments):
    """The log-likelihood at ``mom`` and the per-size quantities it used (``(-inf, None)``
    where a marginal covariance matrix is not positive definite)."""
    try:
        bt = between_quantities(data, mom)
    except np.linalg.LinAlgError:
        return -np.inf, None
    return twolevel_loglik(data, mom, between=bt), bt


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
    chi-square test, its moments are lavaan's ``h1`` / ``sampstat`` and give the ICCs.

    ``Sigma_B`` is a covariance matrix, so the saturated model is fitted over positive
    semi-definite ``Sigma_B`` (as lavaan's EM for complete data and its Cholesky-parameterised
    h1 fit for missing data do).  With small between-level variation and few clusters the
    maximum often lies on the boundary (a between variance, or a direction of ``Sigma_B``, at
    0); the unconstrained maximum would then have an indefinite ``Sigma_B`` and negative
    ICCs.  ``method``:

    * ``"auto"`` (default): complete data, Fisher scoring of the unconstrained moments
      (:func:`fit_moments`); if its ``Sigma_B`` is not positive semi-definite, EM from the
      projection of that solution, then Newton-Raphson with ``Sigma_B = L L'``
      (:func:`fit_moments_psd`).  Missing data: EM with SQUAREM, then the same Newton polish.
    * ``"em"``: always EM then the Newton polish (complete or missing data).
    * ``"scoring"``: the unconstrained maximum (complete data; ``Sigma_B`` may be indefinite).
    """
    if method == "auto":
        if data.has_missing:
            method = "em"
        else:
            fit = fit_moments(data, saturated_free(data), **kw)
            if fit.converged and _min_eig(fit.moments.sigma_b) >= 0.0:
                return fit
            start = _psd_start(data, fit.moments)
            return _em_then_newton(data, "saturated", saturated_free(data), start)
    if method == "scoring":
        return fit_moments(data, saturated_free(data), **kw)
    if method == "em":
        return _em_then_newton(data, "saturated", saturated_free(data), kw.pop("start", None),
                               **kw)
    raise ValueError(f"unknown method {method!r}")


def _min_eig(S: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(S).min()) if S.size else 0.0


def _psd_start(data: TwoLevelData, m: TwoLevelMoments) -> TwoLevelMoments:
    """``m`` with ``Sigma_B`` projected onto the positive definite matrices (eigenvalues
    floored at a small fraction of the within variances, so a Cholesky factor has no exact
    zero: at an exact zero the Newton iterations could not move away from it); falls back to
    the data's start moments when ``m`` is not usable."""
    if not (np.all(np.isfinite(m.vector())) and np.isfinite(twolevel_loglik(data, m))):
        m = data.start_moments()
    m = m.copy()
    SB = (m.sigma_b + m.sigma_b.T) / 2
    w, U = np.linalg.eigh(SB)
    scale = float(np.mean(np.diag(m.sigma_w))) if data.p1 else 1.0
    floor = 1e-3 * max(scale, 1e-8)
    m.sigma_b = (U * np.maximum(w, floor)) @ U.T
    return m


def _em_then_newton(data: TwoLevelData, structure: str, free: np.ndarray,
                    start: Optional[TwoLevelMoments], max_iter: int = 60,
                    tol: float = 1e-10, **kw) -> TwoLevelFit:
    """A few EM steps with SQUAREM from ``start`` (monotone, keep ``Sigma_B`` positive
    semi-definite: a safe approach to the maximum), then :func:`fit_moments_psd` for the
    exact maximum (EM is sublinear on the boundary, Newton quadratic)."""
    from .twolevel_missing import em_moments
    em = em_moments(data, structure, start=start, free=free, max_iter=max_iter,
                    tol=tol, polish=False, **kw)
    out = fit_moments_psd(data, free, em.moments, tol=tol)
    out.iterations += em.iterations
    out.method = em.method + "+" + out.method
    return out


def _sigma_b_param(data: TwoLevelData, free: np.ndarray) -> tuple:
    """How the free ``Sigma_B`` coordinates are parameterised by :func:`fit_moments_psd`:
    ``("chol", None)`` when all of ``Sigma_B`` is free (``Sigma_B = L L'``, L lower
    triangular), ``("sqrt", k)`` when only diagonal entries ``k`` are free (``s_k = l_k^2``;
    the baseline model), ``("none", None)`` when none is."""
    lay = data.layout
    fb = free[lay.sigma_b]
    r, c = _vech_idx(data.p2)
    if fb.all() and data.p2:
        return "chol", None
    if not fb.any():
        return "none", None
    if fb[r != c].any():
        raise ValueError("fit_moments_psd: free between covariances need all of Sigma_B free")
    return "sqrt", np.flatnonzero(fb)


#: iterations of :func:`fit_moments_psd` with the expected information before the observed
#: Hessian (closed form; with missing data differences of the gradient) takes over
SCORING_ITERATIONS = 25


def fit_moments_psd(data: TwoLevelData, free: np.ndarray, start: TwoLevelMoments,
                    max_iter: int = 200, tol: float = 1e-10) -> TwoLevelFit:
    """Maximise the two-level log-likelihood over the free moment coordinates with
    ``Sigma_B`` kept positive semi-definite (complete or missing data).

    ``Sigma_B`` is parameterised by its Cholesky factor, ``Sigma_B = L L'`` (Pinheiro & Bates
    1996, "Unconstrained parametrizations for variance-covariance matrices", Statistics and
    Computing 6, 289-296; lavaan fits its missing-data h1 this way), or, when only its
    diagonal is free (the baseline model), by ``s_k = l_k^2``; the other free coordinates
    stay as they are.  Newton-Raphson with the chain rule
    ``H_theta = J' H_m J + 2 (G_B (x) I)`` (``H_m`` the Hessian in moment coordinates:
    minus the expected information of complete data with these cluster sizes for the first
    :data:`SCORING_ITERATIONS` iterations -- Fisher scoring, cheap -- then the observed
    Hessian -- in closed form for complete data, else central differences of the analytic
    gradient --, also when scoring stalls; ``G_B = dlogL/dSigma_B``; the second term
    is the curvature of ``L -> L L'``, which makes a boundary maximum, a column of ``L`` at
    0, a regular maximum in ``L`` with curvature ``2 G_B`` -- Newton converges quadratically
    there, where EM is sublinear), eigenvalues reflected to keep ascent directions, step
    halving.  Converged when the Newton decrement ``g' H^-1 g`` (about twice the distance to
    the maximum in log-likelihood) is below ``0.01 tol (1 + |logL|)``."""
    from .twolevel import _unvech, twolevel_gradient
    lay = data.layout
    free = np.asarray(free, bool)
    mode, diag_k = _sigma_b_param(data, free)
    sb = np.arange(lay.sigma_b.start, lay.sigma_b.stop)
    other = np.flatnonzero(free & ~np.isin(np.arange(lay.dim), sb))
    r2, c2 = _vech_idx(data.p2)
    v0 = _as_moments(data, start).vector()

    def to_theta(v):
        parts = [v[other]]
        if mode == "chol":
            SB = _unvech(v[sb], data.p2)
            w, U = np.linalg.eigh(SB)
            if w.min() <= 0:
                floor = 1e-6 * max(1.0, float(np.abs(w).max()))
                SB = (U * np.maximum(w, floor)) @ U.T
            parts.append(np.linalg.cholesky(SB)[r2, c2])
        elif mode == "sqrt":
            parts.append(np.sqrt(np.maximum(v[sb[diag_k]], 1e-8)))
        return np.concatenate(parts)

    def to_v(theta):
        v = v0.copy()
        v[other] = theta[:len(other)]
        t = theta[len(other):]
        if mode == "chol":
            L = np.zeros((data.p2, data.p2))
            L[r2, c2] = t
            v[sb] = (L @ L.T)[r2, c2]
        elif mode == "sqrt":
            v[sb[diag_k]] = t ** 2
        return v, t

    nb = len(other)
    idx = np.flatnonzero(free)

    def jac(t):
        """d v[idx] / d theta (rows over idx order) and the second-order term of Sigma_B."""
        Jm = np.zeros((lay.dim, len(other) + len(t)))
        Jm[other, np.arange(nb)] = 1.0
        if mode == "chol":
            L = np.zeros((data.p2, data.p2))
            L[r2, c2] = t
            # d Sigma_ij / d L_ab = [i = a] L_jb + [j = a] L_ib
            a, b = r2, c2
            Jb = ((r2[:, None] == a[None]) * L[c2][:, b]
                  + (c2[:, None] == a[None]) * L[r2][:, b])
            Jm[np.ix_(sb, nb + np.arange(len(t)))] = Jb
        elif mode == "sqrt":
            Jm[sb[diag_k], nb + np.arange(len(t))] = 2.0 * t
        return Jm

    def second(t, gv):
        """Curvature of the Sigma_B map contracted with the moment gradient ``gv``."""
        q = len(t)
        out = np.zeros((q, q))
        if mode == "chol":
            G = _unvech(gv[sb], data.p2)
            G[~np.eye(data.p2, dtype=bool)] /= 2.0          # vech gradient -> dlogL/dSigma
            a, b = r2, c2
            out = 2.0 * G[a[:, None], a[None, :]] * (b[:, None] == b[None, :])
        elif mode == "sqrt":
            out = np.diag(2.0 * gv[sb[diag_k]])
        return out

    def hess_moments(v):
        """Hessian of logL over the free moment coordinates: in closed form for complete
        data (:func:`~.twolevel_hessian.twolevel_hessian`), else central differences of the
        analytic gradient."""
        if not data.has_missing:
            from .twolevel_hessian import twolevel_hessian
            return -twolevel_hessian(data, lay.moments(v))[np.ix_(idx, idx)]
        H = np.zeros((lay.dim, lay.dim))
        for k in idx:
            h = 1e-6 * max(1.0, abs(v[k]))
            vp, vm = v.copy(), v.copy()
            vp[k] += h
            vm[k] -= h
            H[:, k] = (twolevel_gradient(data, lay.moments(vp))
                       - twolevel_gradient(data, lay.moments(vm))) / (2 * h)
        H = H[np.ix_(idx, idx)]
        return (H + H.T) / 2

    theta = to_theta(v0)
    v, t = to_v(theta)
    ll = twolevel_loglik(data, lay.moments(v))
    if not np.isfinite(ll):
        raise ValueError("start moments are not positive definite")
    from .twolevel_loss import expected_information_sizes
    converged = False
    observed = False        # the expected information first (cheap), see the docstring
    it = 0
    for it in range(1, max_iter + 1):
        gv = twolevel_gradient(data, lay.moments(v))
        Jm = jac(t)[idx]
        g = Jm.T @ gv[idx]
        if it > SCORING_ITERATIONS:
            observed = True
        Hm = None
        if observed:
            try:
                Hm = hess_moments(v)
            except np.linalg.LinAlgError:   # a difference step left the domain
                Hm = None
        if Hm is None:
            Hm = -expected_information_sizes(data, lay.moments(v))[np.ix_(idx, idx)]
        Ht = Jm.T @ Hm @ Jm
        Ht[nb:, nb:] += second(t, gv)
        w, U = np.linalg.eigh(-(Ht + Ht.T) / 2)
        wa = np.maximum(np.abs(w), 1e-10 * max(1.0, float(np.abs(w).max())))
        step = U @ ((U.T @ g) / wa)
        decrement = float(g @ step)
        if decrement < 1e-2 * tol * (1.0 + abs(ll)):
            converged = True
            break
        alpha = 1.0
        while alpha > 1e-12:
            tn = theta + alpha * step
            vn, tt = to_v(tn)
            lln = twolevel_loglik(data, lay.moments(vn))
            if np.isfinite(lln) and lln >= ll - 1e-13 * (1 + abs(ll)):
                break
            alpha /= 2
        else:
            if not observed:        # scoring cannot improve: switch to the exact Hessian
                observed = True
                continue
            converged = decrement < 1e-6 * (1.0 + abs(ll))
            break
        theta, v, t, ll = tn, vn, tt, lln
    return TwoLevelFit(lay.moments(v), ll, it, converged, "newton-psd", free)


def fit_baseline(data: TwoLevelData, exo_within: Sequence = (), exo_between: Sequence = (),
                 h1: Optional[TwoLevelMoments] = None, method: str = "auto", **kw
                 ) -> TwoLevelFit:
    """lavaan's two-level independence model (``lav_object_independence``): diagonal
    Sigma_W and Sigma_B with free means, except that with fixed.x the covariance block and
    means of the exogenous variables (``exo_within`` / ``exo_between``, by name) stay at their
    h1 values (``h1``, fitted here if not given).  The between variances are kept
    non-negative (the baseline is then nested in the saturated model of :func:`fit_h1`, so
    the baseline chi-square is not negative)."""
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
        if data.has_missing:
            method = "em"
        else:
            fit = fit_moments(data, free, start=start, **kw)
            if fit.converged and np.all(np.diag(fit.moments.sigma_b) >= 0.0):
                return fit
            # a between variance below 0: the maximum with Sigma_B >= 0 (EM, then Newton)
            return _em_then_newton(data, "baseline", free, _diag_floor(data, start))
    if method == "scoring":
        return fit_moments(data, free, start=start, **kw)
    if method == "em":
        from .twolevel_missing import em_moments
        return em_moments(data, "baseline", start=_diag_floor(data, start), free=free, **kw)
    raise ValueError(f"unknown method {method!r}")


def _diag_floor(data: TwoLevelData, m: TwoLevelMoments) -> TwoLevelMoments:
    """``m`` with the between variances floored at a small positive value (EM and the
    square-root parameterisation of :func:`fit_moments_psd` need a positive start)."""
    m = m.copy()
    d = np.diag(m.sigma_b).copy()
    scale = float(np.mean(np.diag(m.sigma_w))) if data.p1 else 1.0
    floor = 1e-3 * max(scale, 1e-8)
    idx = np.flatnonzero(d < floor)
    m.sigma_b[idx, idx] = floor
    return m


def loglik_x(data: TwoLevelData, exo: Sequence[str]) -> float:
    """Saturated two-level log-likelihood of the exogenous (fixed.x) variables alone.

    lavaan (``YLp[[2]]$loglik.x``) reports, with ``fixed.x = TRUE``, the log-likelihood of a
    two-level model (and of its h1 and baseline models) as the joint log-likelihood of all
    variables minus this quantity, i.e. conditional on the covariates."""
    if len(exo) == 0:
        return 0.0
    return fit_h1(data.subset(list(exo))).loglik


def psd_optimality(data: TwoLevelData, moments, free: Optional[np.ndarray] = None) -> dict:
    """First-order (Karush-Kuhn-Tucker) conditions of a maximum over positive semi-definite
    ``Sigma_B`` at ``moments`` (default ``free``: the saturated model): ``grad`` the largest
    |gradient| over the free coordinates other than ``Sigma_B``; with ``G = dlogL/dSigma_B``
    (symmetric), ``complementarity`` the largest |entry| of ``G Sigma_B`` and ``dual`` the
    largest eigenvalue of ``G`` (both about 0 at a maximum: ``G`` negative semi-definite and
    zero on the range of ``Sigma_B``; Vandenberghe & Boyd 1996, "Semidefinite programming",
    SIAM Review 38, 49-95).  When only diagonal entries of ``Sigma_B`` are free (the
    baseline), ``complementarity`` is ``max |g_kk s_kk|`` and ``dual`` ``max g_kk``."""
    from .twolevel import _unvech, twolevel_gradient
    m = _as_moments(data, moments)
    lay = data.layout
    free = saturated_free(data) if free is None else np.asarray(free, bool)
    g = twolevel_gradient(data, m)
    sbmask = np.zeros(lay.dim, bool)
    sbmask[lay.sigma_b] = True
    other = free & ~sbmask
    out = {"grad": float(np.max(np.abs(g[other]))) if other.any() else 0.0}
    mode, k = _sigma_b_param(data, free)
    gb = g[lay.sigma_b]
    if mode == "chol":
        G = _unvech(gb, data.p2)
        G[~np.eye(data.p2, dtype=bool)] /= 2.0
        out["complementarity"] = float(np.max(np.abs(G @ m.sigma_b)))
        out["dual"] = float(np.linalg.eigvalsh(G).max())
    elif mode == "sqrt":
        s_k = m.sigma_b.diagonal()[_vech_idx(data.p2)[0][k]]
        out["complementarity"] = float(np.max(np.abs(gb[k] * s_k)))
        out["dual"] = float(np.max(gb[k]))
    else:
        out["complementarity"] = out["dual"] = 0.0
    return out
