"""Two-level normal models with missing values: observed-data log-likelihood, clusterwise
scores and EM for the saturated / baseline models.

The observed-data likelihood of a cluster follows Rosseel (2021, "Evaluating the observed
log-likelihood function in two-level structural equation modeling with missing data: from
formulas to R code", Psych 3(2), 197-232; the random-effects route of McDonald 1993 and du Toit
& du Toit 2008 that it discusses), written so that a singular ``Sigma_B`` is allowed:

* the observed between-only values ``z_o`` of cluster j have the marginal ``N(mu_o, S_oo)``;
  conditional on them the remaining level-2 effects ``r`` (the between parts ``b`` of the
  "both" variables and the missing ``z``) are ``N(m_r, G)`` with ``m_r``, ``G`` the usual
  regression moments of ``Sigma_B``;
* each row i with observed level-1 variables ``O_i`` has
  ``y_iO = mu_WO + (P r)_O + w_iO``, ``w_iO ~ N(0, Sigma_W,OO)``.  With
  ``K_i = Sigma_W,OO^-1`` embedded in p1 x p1 (zeros elsewhere), ``T_j = sum_i K_i``,
  ``A_j = P' T_j P``, ``g_j = P' sum_i K_i (e_i - P m_r)`` (``e_i = y_i - mu_W``, unobserved
  entries 0) the determinant lemma and Woodbury's identity give

      -2 l_j = c + sum_i log|Sigma_W,OO| + log|I + A_j G|
               + sum_i e~_i' K_i e~_i - g_j' G (I + A_j G)^-1 g_j      (e~_i = e_i - P m_r)

  and the posterior of ``r`` is ``N(m_r + G x_j, G (I + A_j G)^-1)``, ``x_j = (I + A_j G)^-1 g_j``.

Everything per row is done per row-missingness pattern (``K`` is shared), per cluster in
stacked (J, ., .) arrays, with a loop only over the distinct patterns of the level-1 rows and
of the between-only variables.  Scores use Fisher's identity: the observed-data score is the
posterior expectation of the complete-data score (Louis 1982), which for the within part
reduces to ``dl/dmu_W = sum_i rho_i``, ``dl/dSigma_W = 1/2 sum_i (rho_i rho_i' - K_i + K_i P C_j
P' K_i)`` with ``rho_i = K_i (e_i - P rhat_j)``.  The between part is differentiated directly:
``dl_j/dm_r = x_j`` and ``dl_j/dG = (x_j x_j' - (I + A_j G)^-1 A_j) / 2`` (Woodbury), chained
through the conditional moments ``m_r``, ``G`` and the marginal of ``z_o`` (no inverse of
``Sigma_B``; Magnus & Neudecker 1999 for the matrix differentials).  EM (Dempster,
Laird & Rubin 1977; Raudenbush 1995 for the random-effects form) with SQUAREM acceleration
(Varadhan & Roland 2008) fits the saturated and the baseline moments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .twolevel import LOG_2PI, TwoLevelData, TwoLevelMoments, _grad_vech
from .twolevel_fit import TwoLevelFit, saturated_free

__all__ = ["MissingTwoLevel", "loglik_missing", "scores_missing", "gradient_missing", "estep",
           "em_moments"]


class MissingTwoLevel:
    """Pattern bookkeeping of incomplete two-level data (built once per data set)."""

    def __init__(self, data: TwoLevelData):
        Y1 = data.X[:, data.level1]
        M = ~np.isnan(Y1)
        keep = M.any(axis=1)      # rows without any observed level-1 value carry no y data
        self.rows = np.where(keep)[0]
        self.cl = data.cluster_index[keep]
        self.Y0 = np.where(M, Y1, 0.0)[keep]
        self.M = M[keep]
        pats, pidx = np.unique(self.M, axis=0, return_inverse=True)
        self.pats = pats
        self.pat = pidx.ravel()
        self.npat = len(pats)
        J = data.nclusters
        self.counts = np.bincount(self.cl * self.npat + self.pat,
                                  minlength=J * self.npat).reshape(J, self.npat).astype(float)
        self.pat_rows = [np.where(self.pat == k)[0] for k in range(self.npat)]
        self.nobs_values = self.counts @ pats.sum(axis=1)        # observed y values per cluster
        self.n_rows = float(len(self.rows))
        # between-only variables: per-cluster observed values and their patterns
        zpos = np.array([k for k, c in enumerate(data.level2) if data.kind[c] == "between"],
                        dtype=np.intp)
        self.zpos = zpos
        Z = data.z
        Zobs = ~np.isnan(Z)
        if data.pz:
            zp, zidx = np.unique(Zobs, axis=0, return_inverse=True)
        else:
            zp, zidx = np.zeros((1, 0), bool), np.zeros(J, np.intp)
        self.zpats = zp
        self.zgroups = [np.where(zidx.ravel() == g)[0] for g in range(len(zp))]
        self.Z = np.where(Zobs, Z, 0.0)
        # row order by cluster for cluster sums
        self.order = np.argsort(self.cl, kind="stable")
        cnt = np.bincount(self.cl, minlength=J)
        self.nz = cnt > 0
        self.starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])[self.nz]
        self.J = J

    def cluster_sum(self, A: np.ndarray) -> np.ndarray:
        out = np.zeros((self.J,) + A.shape[1:])
        if len(self.order):
            out[self.nz] = np.add.reduceat(A[self.order], self.starts, axis=0)
        return out


def _between_solve(A: np.ndarray, G: np.ndarray) -> tuple:
    """The between-level pieces of a cluster's likelihood in symmetric form.

    ``A`` (J, r, r) positive semi-definite (the within precision gathered on the level-2
    effects), ``G`` (r, r) the conditional between covariance, which may be singular (a
    between variance at 0) or, in a model with negative between variances, indefinite.  With
    ``S = A^1/2`` (eigen-decomposition, so a singular ``A`` is allowed) and
    ``M = I + S G S``:  ``log|I + A G| = log|M|`` (Sylvester's determinant identity),
    ``G (I + A G)^-1 = G - G S M^-1 S G`` and ``(I + A G)^-1 A = S M^-1 S`` (push-through and
    Woodbury identities; Harville 1997, ch. 18).  ``I + A G`` has the eigenvalues of ``M``
    (plus ones), so the cluster's marginal covariance is positive definite exactly when
    ``M`` is: its Cholesky factorisation is the check (``LinAlgError`` otherwise; the
    likelihood is then -inf).  No inverse of ``G`` or ``A`` is formed.

    Returns ``(G (I + A G)^-1, (I + A G)^-1 A, log|I + A G|)`` stacked over clusters.
    """
    w, U = np.linalg.eigh(A)
    S = (U * np.sqrt(np.maximum(w, 0.0))[:, None, :]) @ np.swapaxes(U, 1, 2)
    r = G.shape[-1]
    M = np.eye(r)[None] + S @ G @ S
    M = (M + np.swapaxes(M, 1, 2)) / 2
    L = np.linalg.cholesky(M)                 # LinAlgError: not positive definite
    Li = np.linalg.inv(L)
    Mi = np.swapaxes(Li, 1, 2) @ Li
    H = G @ S                                  # (J, r, r)
    GQi = G[None] - H @ Mi @ np.swapaxes(H, 1, 2)
    GQi = (GQi + np.swapaxes(GQi, 1, 2)) / 2
    SMS = S @ Mi @ S
    SMS = (SMS + np.swapaxes(SMS, 1, 2)) / 2
    ldQ = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    return GQi, SMS, ldQ


@dataclass
class _EStep:
    loglik: float
    ll_j: np.ndarray        # (J,) cluster log-likelihoods
    u_hat: np.ndarray       # (J, p2) posterior means of the level-2 vector
    C: np.ndarray           # (J, p2, p2) posterior covariances (0 at observed z)
    rho: np.ndarray         # (n_rows, p1) K_i (e_i - P u_hat_j)
    Kst: np.ndarray         # (npat, p1, p1) embedded Sigma_W,OO^-1
    g_mu_b: np.ndarray = None   # (J, p2) between scores w.r.t. mu_B
    g_sigma_b: np.ndarray = None  # (J, p2, p2) symmetric-matrix scores w.r.t. Sigma_B


def _estep(data: TwoLevelData, m: TwoLevelMoments, posterior: bool = True) -> _EStep:
    mp: MissingTwoLevel = data.missing
    p1, p2 = data.p1, data.p2
    Sw, Sb = m.sigma_w, m.sigma_b
    # per row pattern: embedded inverse and log-determinant of Sigma_W,OO
    Kst = np.zeros((mp.npat, p1, p1))
    ldet = np.zeros(mp.npat)
    for k, O in enumerate(mp.pats):
        o = np.where(O)[0]
        L = np.linalg.cholesky(Sw[np.ix_(o, o)])
        Li = np.linalg.solve(L, np.eye(len(o)))
        Kst[k][np.ix_(o, o)] = Li.T @ Li
        ldet[k] = 2.0 * np.log(np.diag(L)).sum()
    e0 = np.where(mp.M, mp.Y0 - m.mu_w, 0.0)
    Ke = np.empty_like(e0)
    for k, rows in enumerate(mp.pat_rows):
        Ke[rows] = e0[rows] @ Kst[k]
    t = mp.cluster_sum(Ke)                                   # (J, p1)
    q = mp.cluster_sum((Ke * e0).sum(axis=1))                # (J,)
    T = (mp.counts @ Kst.reshape(mp.npat, -1)).reshape(-1, p1, p1)
    ll = -0.5 * (mp.nobs_values * LOG_2PI + mp.counts @ ldet)
    J = data.nclusters
    u_hat = np.zeros((J, p2))
    C = np.zeros((J, p2, p2))
    g_mu_b = np.zeros((J, p2))
    g_sb = np.zeros((J, p2, p2))
    P = data.P
    for g, Jg in enumerate(mp.zgroups):
        if len(Jg) == 0:
            continue
        zo_mask = np.zeros(p2, bool)
        zo_mask[mp.zpos[mp.zpats[g]]] = True
        o = np.where(zo_mask)[0]
        r = np.where(~zo_mask)[0]
        zvals = mp.Z[Jg][:, mp.zpats[g]]
        if len(o):
            Loo = np.linalg.cholesky(Sb[np.ix_(o, o)])
            Wro = np.linalg.solve(Loo.T, np.linalg.solve(Loo, Sb[np.ix_(o, r)]))  # S_oo^-1 S_or
            dz = zvals - m.mu_b[o]
            m_r = m.mu_b[r] + dz @ Wro
            G = Sb[np.ix_(r, r)] - Sb[np.ix_(r, o)] @ Wro
            sol = np.linalg.solve(Loo, dz.T)
            ll[Jg] += -0.5 * (len(o) * LOG_2PI + 2.0 * np.log(np.diag(Loo)).sum()
                              + (sol ** 2).sum(axis=0))
        else:
            m_r = np.broadcast_to(m.mu_b[r], (len(Jg), len(r)))
            G = Sb[np.ix_(r, r)]
        G = (G + G.T) / 2
        Pr = P[:, r]
        a = m_r @ Pr.T                                       # (Jg, p1)
        Tg = T[Jg]
        Ta = np.einsum("jab,jb->ja", Tg, a)
        gj = (t[Jg] - Ta) @ Pr                                # (Jg, |r|)
        quad = q[Jg] - 2.0 * (a * t[Jg]).sum(axis=1) + (a * Ta).sum(axis=1)
        A = np.einsum("ar,jab,bs->jrs", Pr, Tg, Pr)
        GQi, SMS, ldQ = _between_solve(A, G)
        Gx = np.einsum("jab,jb->ja", GQi, gj)                 # G (I + A G)^-1 g
        x = gj - np.einsum("jab,jb->ja", A, Gx)               # (I + A G)^-1 g
        ll[Jg] += -0.5 * (ldQ + quad - (gj * Gx).sum(axis=1))
        if posterior:
            # between scores: dl/dm_r = x, dl/dG = (x x' - Q^-1 A) / 2, chained through
            # m_r = mu_r + W'(z_o - mu_o), G = S_rr - S_ro W (W = S_oo^-1 S_or) and the
            # marginal of z_o; no inverse of Sigma_B needed (Q^-1 A = S M^-1 S is symmetric)
            GG = 0.5 * (x[:, :, None] * x[:, None, :] - SMS)
            Gam = np.zeros((len(Jg), p2, p2))
            Gam[:, r[:, None], r[None, :]] = GG
            gmu = np.zeros((len(Jg), p2))
            gmu[:, r] = x
            if len(o):
                sz = np.linalg.solve(Loo.T, sol).T                       # S_oo^-1 dz
                Wgm = x @ Wro.T                                          # (Jg, o)
                Sooi = np.linalg.solve(Loo.T, np.linalg.solve(Loo, np.eye(len(o))))
                G_ro = 0.5 * x[:, :, None] * sz[:, None, :] - GG @ Wro.T
                G_oo = (0.5 * (sz[:, :, None] * sz[:, None, :] - Sooi) + Wro @ GG @ Wro.T
                        - 0.5 * (sz[:, :, None] * Wgm[:, None, :]
                                 + Wgm[:, :, None] * sz[:, None, :]))
                Gam[:, r[:, None], o[None, :]] = G_ro
                Gam[:, o[:, None], r[None, :]] = np.swapaxes(G_ro, 1, 2)
                Gam[:, o[:, None], o[None, :]] = G_oo
                gmu[:, o] = sz - Wgm
            g_mu_b[Jg] = gmu
            g_sb[Jg] = Gam
            uh = np.zeros((len(Jg), p2))
            uh[:, o] = zvals
            uh[:, r] = m_r + Gx
            u_hat[Jg] = uh
            Cg = GQi                                           # G (I + A G)^-1
            Cfull = np.zeros((len(Jg), p2, p2))
            Cfull[:, r[:, None], r[None, :]] = Cg
            C[Jg] = Cfull
    rho = None
    if posterior:
        Pu = u_hat @ P.T                                     # (J, p1)
        ec = np.where(mp.M, e0 - Pu[mp.cl], 0.0)
        rho = np.empty_like(ec)
        for k, rows in enumerate(mp.pat_rows):
            rho[rows] = ec[rows] @ Kst[k]
    return _EStep(float(ll.sum()), ll, u_hat, C, rho, Kst, g_mu_b, g_sb)


def loglik_missing(data: TwoLevelData, m: TwoLevelMoments) -> float:
    """Observed-data two-level log-likelihood (Rosseel 2021); ``-inf`` where not defined."""
    try:
        return _estep(data, m, posterior=False).loglik
    except np.linalg.LinAlgError:
        return -np.inf


def _within_H(data: TwoLevelData, es: _EStep, per_cluster: bool) -> np.ndarray:
    """``sum_i (rho rho' - K_i + K_i P C_j P' K_i)``, total (p1, p1) or per cluster."""
    mp = data.missing
    P = data.P
    X = np.einsum("ab,jbc,dc->jad", P, es.C, P)              # (J, p1, p1)
    if per_cluster:
        p1 = data.p1
        r, c = np.tril_indices(p1)
        rr = mp.cluster_sum(es.rho[:, r] * es.rho[:, c])
        H = np.zeros((data.nclusters, p1, p1))
        H[:, r, c] = rr
        H[:, c, r] = rr
        H -= (mp.counts @ es.Kst.reshape(mp.npat, -1)).reshape(-1, p1, p1)
        for k in range(mp.npat):
            H += mp.counts[:, k, None, None] * (es.Kst[k] @ X @ es.Kst[k])
        return H
    H = es.rho.T @ es.rho - np.tensordot(mp.counts.sum(axis=0), es.Kst, axes=1)
    for k in range(mp.npat):
        Xk = np.tensordot(mp.counts[:, k], X, axes=1)
        H += es.Kst[k] @ Xk @ es.Kst[k]
    return H


def estep(data: TwoLevelData, m: TwoLevelMoments) -> Optional[_EStep]:
    """The E-step quantities at ``m`` (log-likelihood and posterior moments), or None where
    the likelihood is not defined (a marginal covariance not positive definite): computed
    once per moments by the two-level loss for both its value and its gradient."""
    try:
        return _estep(data, m)
    except np.linalg.LinAlgError:
        return None


def gradient_missing(data: TwoLevelData, m: TwoLevelMoments,
                     es: Optional[_EStep] = None) -> np.ndarray:
    """Gradient of the observed-data log-likelihood in moment coordinates (the column sums
    of :func:`scores_missing`, without forming the clusterwise within part)."""
    es = _estep(data, m) if es is None else es
    lay = data.layout
    out = np.zeros(lay.dim)
    out[lay.mu_w] = es.rho.sum(axis=0)
    out[lay.sigma_w] = _grad_vech(0.5 * _within_H(data, es, per_cluster=False))
    out[lay.mu_b] = es.g_mu_b.sum(axis=0)
    out[lay.sigma_b] = _grad_vech(es.g_sigma_b.sum(axis=0))
    return out


def scores_missing(data: TwoLevelData, m: TwoLevelMoments,
                   es: Optional[_EStep] = None) -> np.ndarray:
    """Clusterwise scores ``(J, dim)`` of the observed-data log-likelihood in moment
    coordinates: within part by Fisher's identity, between part through the conditional
    moments ``(m_r, G)`` (module docstring); ``Sigma_B`` may be singular."""
    es = _estep(data, m) if es is None else es
    lay = data.layout
    mp = data.missing
    out = np.zeros((data.nclusters, lay.dim))
    out[:, lay.mu_w] = mp.cluster_sum(es.rho)
    out[:, lay.sigma_w] = _grad_vech(0.5 * _within_H(data, es, per_cluster=True))
    out[:, lay.mu_b] = es.g_mu_b
    out[:, lay.sigma_b] = _grad_vech(es.g_sigma_b)
    return out


def _m_step(data: TwoLevelData, m: TwoLevelMoments, es: _EStep) -> TwoLevelMoments:
    """Unconstrained M-step: within means of the within-only variables, Sigma_W, mu_B,
    Sigma_B (the within means of "both" variables are kept)."""
    mp = data.missing
    N = mp.n_rows
    Sw = m.sigma_w
    H = _within_H(data, es, per_cluster=False)
    Eww = Sw + Sw @ H @ Sw / N                               # mean E[w w']
    wbar = Sw @ es.rho.sum(axis=0) / N                       # mean E[w]
    wo = data.kind[data.level1] == "within"
    dlt = np.where(wo, wbar, 0.0)
    Sw_new = Eww - np.outer(dlt, wbar) - np.outer(wbar, dlt) + np.outer(dlt, dlt)
    mu_w = m.mu_w + dlt
    J = data.nclusters
    mu_b = es.u_hat.mean(axis=0)
    dev = es.u_hat - mu_b
    Sb_new = (dev.T @ dev + es.C.sum(axis=0)) / J
    return TwoLevelMoments(mu_w, (Sw_new + Sw_new.T) / 2, mu_b, (Sb_new + Sb_new.T) / 2)


def em_moments(data: TwoLevelData, structure: str = "saturated",
               start: Optional[TwoLevelMoments] = None, free: Optional[np.ndarray] = None,
               max_iter: int = 1000, tol: float = 1e-10, squarem: bool = True,
               polish: bool = True) -> TwoLevelFit:
    """EM for the saturated model or a model whose free moments are a subset closed under
    the unconstrained M-step (the baseline: diagonal free variances, fixed exogenous blocks;
    the M-step then keeps the non-free coordinates).  ``structure``: "saturated" or
    "baseline" (give ``free``, e.g. from :func:`twolevel.baseline_free`, and ``start``).

    SQUAREM (Varadhan & Roland 2008, scheme S3) with a monotonicity safeguard (an
    extrapolated point is kept only if Sigma_B stays positive semi-definite and the
    log-likelihood does not drop).  Converged when the log-likelihood increases by less than
    ``tol * (1 + |logL|)`` and the largest moment change is below ``sqrt(tol)`` -- which EM,
    being linear (sublinear at a maximum on the boundary), can meet well before the maximum.
    With ``polish`` (default) Newton-Raphson with ``Sigma_B`` kept positive semi-definite
    finishes
    (:func:`~sem_models.estimation.twolevel_fit.fit_moments_psd`)."""
    lay = data.layout
    if structure == "saturated":
        free = saturated_free(data) if free is None else np.asarray(free, bool)
    elif free is None:
        raise ValueError("em_moments(structure='baseline') needs the free mask")
    free = np.asarray(free, bool)
    m0 = data.start_moments() if start is None else start.copy()
    if structure == "saturated":
        m0.mu_w = np.where(data.kind[data.level1] == "within", m0.mu_w, 0.0)

    def em_map(v):
        mm = lay.moments(v)
        es = _estep(data, mm)
        new = _m_step(data, mm, es).vector()
        return np.where(free, new, v), es.loglik

    def ll_of(v):
        try:
            return _estep(data, lay.moments(v), posterior=False).loglik
        except np.linalg.LinAlgError:
            return -np.inf

    def psd(v):
        mm = lay.moments(v)
        return (np.linalg.eigvalsh(mm.sigma_b).min() >= -1e-12
                and np.linalg.eigvalsh(mm.sigma_w).min() > 0)

    v = m0.vector()
    ll = ll_of(v)
    if not np.isfinite(ll):
        raise ValueError("EM start moments are not positive definite")
    converged = False
    it = 0
    while it < max_iter:
        v1, _ = em_map(v)
        it += 1
        vn = v1
        if squarem:
            v2, _ = em_map(v1)
            it += 1
            vn = v2
            rr = v1 - v
            vv = v2 - v1 - rr
            nv = np.sqrt(vv @ vv)
            alpha = -np.sqrt(rr @ rr) / nv if nv > 0 else -1.0
            if alpha < -1.0:
                try:
                    cand, _ = em_map(v - 2 * alpha * rr + alpha ** 2 * vv)
                    it += 1
                    if psd(cand) and ll_of(cand) >= ll_of(v2):
                        vn = cand
                except np.linalg.LinAlgError:
                    pass
        lln = ll_of(vn)
        if not lln >= ll - 1e-12 * (1 + abs(ll)):      # safeguard: plain EM is monotone
            vn, lln = v1, ll_of(v1)
        change = np.max(np.abs(vn - v))
        dll = lln - ll
        v, ll = vn, lln
        if abs(dll) < tol * (1 + abs(ll)) and change < np.sqrt(tol):
            converged = True
            break
    method = "em-squarem" if squarem else "em"
    out = TwoLevelFit(lay.moments(v), ll, it, converged, method, free)
    if polish:
        from .twolevel_fit import fit_moments_psd
        pol = fit_moments_psd(data, free, out.moments, tol=tol)
        if pol.loglik >= ll - 1e-9 * (1 + abs(ll)):
            pol.iterations += it
            pol.method = method + "+" + pol.method
            out = pol
    return out
