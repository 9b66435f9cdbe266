"""Analytic observed information of the complete-data two-level normal likelihood.

The negative Hessian of :func:`~.twolevel.twolevel_loglik` in moment coordinates
``[mu_W, vech Sigma_W, mu_B, vech Sigma_B]`` (:class:`~.twolevel.TwoLevelLayout`), and the
pieces that chain it to model parameters.

With the cluster-size-grouped likelihood of McDonald & Goldstein (1989) (the form lavaan
evaluates; Yuan & Bentler 2007 and du Toit & du Toit 2008 for its derivatives)

    -2 logL = (N - J) [log|Sigma_W| + tr(Sigma_W^-1 S_PW)]
              + sum_n m_n [log|V_n| + tr(V_n^-1 (C_n + e_n e_n'))] + const,
    V_n = E Sigma_B E' + F Sigma_W F' / n,   e_n = dbar_n - (E mu_B + F mu_W),

the second differential of ``g(V, mu) = log|V| + tr(V^-1 (C + e e'))`` is, with ``P = V^-1``,
``T = C + e e'``, ``r = P e`` and ``R = 2 P T P - P`` (Magnus & Neudecker 1999, ch. 9; the
one-level normal case of Lee & Jennrich 1979)

    d2 g = tr(P dV1 R dV2) + 2 r' dV1 P dmu2 + 2 r' dV2 P dmu1 + 2 dmu1' P dmu2

(``dmu`` the change of the mean ``E[d]``), and that of the within part likewise with
``R_W = 2 P_W S_PW P_W - P_W``.  ``V_n`` and ``E[d]`` are linear in the level moments, so the
information in moment coordinates is the sum over cluster sizes of these forms composed with
the linear maps (no second-order term).  A model's observed information is then
``Delta' I(m) Delta`` plus the second-order term of the moments in the parameters
(``tr(G d2Sigma) + g' d2mu`` with the moment gradient ``g``, ``G``; only directed paths have
one, :meth:`sem_models.model.matrices.RAMModel.second_order_terms`).

lavaan 0.6-14 differentiates the analytic gradient numerically for this Hessian
(``lav_model_hessian``); the closed form here agrees with central differences to their
truncation error (about 1e-10 relative) and costs one pass over the cluster sizes.

References: McDonald, R. P., & Goldstein, H. (1989), Brit. J. Math. Stat. Psych. 42, 215-232;
Yuan, K.-H., & Bentler, P. M. (2007), Multilevel covariance structure analysis by fitting
multiple single-level models, Sociological Methodology 37, 53-82; du Toit, S. H. C., &
du Toit, M. (2008), Multilevel structural equation modeling, in de Leeuw & Meijer (eds.),
Handbook of Multilevel Analysis, 435-478; Magnus, J. R., & Neudecker, H. (1999), Matrix
Differential Calculus, Wiley.
"""
from __future__ import annotations

import numpy as np

from .twolevel import (TwoLevelData, _as_moments, _between, _mean_positions, _trace_pairs,
                       _vech_idx)

__all__ = ["twolevel_hessian", "gradient_matrices"]


def twolevel_hessian(data: TwoLevelData, moments, between=None) -> np.ndarray:
    """Observed information (negative Hessian of the total log-likelihood, not divided by
    N) in moment coordinates, complete data, in closed form (module docstring).  ``between``:
    the per-size quantities of :func:`~.twolevel.between_quantities` at ``moments``."""
    if data.has_missing:
        raise ValueError("the data have missing values: use twolevel_information_observed")
    m = _as_moments(data, moments)
    bt = _between(data, m) if between is None else between
    lay = data.layout
    W, B = lay.sigma_w, lay.sigma_b
    ei, fi = data._e_idx, data._f_idx                                # E, F as positions in d
    P = np.asarray(bt.Vinv)                                          # (S, q, q)
    mm = data._size_m
    nn = data._size_n
    e = data._size_dbar - bt.mean_d                                  # (S, q)
    C = data._size_cov                                               # (S, q, q)
    r = np.einsum("sab,sb->sa", P, e)                                # P e
    R = 2.0 * (P @ C @ P + r[:, :, None] * r[:, None, :]) - P        # 2 P T P - P
    info = np.zeros((lay.dim, lay.dim))
    # means: K' (sum_n m_n P_n) K, K = [F, E] at the mu_w, mu_b coordinates
    means, sel = _mean_positions(data)
    info[np.ix_(means, means)] = np.einsum("s,sij->ij", mm, P)[np.ix_(sel, sel)]
    # covariances: (m_n / 2) tr(P dV R dV), dV = E dSigma_B E' + F dSigma_W F' / n
    c = 0.5 * mm

    def block(X, a, b):
        return X[:, a[:, None], b[None, :]]

    info[B, B] += _trace_pairs(block(P, ei, ei), block(R, ei, ei), c)
    info[W, W] += _trace_pairs(block(P, fi, fi), block(R, fi, fi), c / nn ** 2)
    cross = _trace_pairs(block(P, ei, fi), block(R, fi, ei), c / nn)  # rows Sigma_B, cols W
    info[B, W] += cross
    info[W, B] += cross.T
    Pw = bt.Sw_inv
    Rw = 2.0 * Pw @ data.S_PW @ Pw - Pw
    info[W, W] += _trace_pairs(Pw[None], Rw[None], np.array([0.5 * (data.nobs - data.nclusters)]))
    # covariance x mean: m_n r' dV P dmu (dmu the mean columns of K)
    for rows, li, w in ((B, ei, mm), (W, fi, mm / nn)):
        a = r[:, li] * w[:, None]                                    # (S, p): w_n L' r_n
        Y = np.einsum("si,sjk->ijk", a, block(P, li, sel))          # (p, p, p1 + p2)
        i, j = _vech_idx(len(li))
        part = (Y[i, j] + Y[j, i]) * np.where(i == j, 0.5, 1.0)[:, None]
        info[rows, means] += part
        info[means, rows] += part.T
    return info


def gradient_matrices(layout, g: np.ndarray):
    """The moment gradient ``g`` (vech coordinates, :func:`~.twolevel.twolevel_gradient`)
    as ``(g_mu_w, G_W, g_mu_b, G_B)`` with ``G`` the symmetric matrices for which
    ``dlogL = tr(G dSigma) + g_mu' dmu`` (off-diagonal vech entries are ``2 G_ij``)."""
    out = []
    for mu, sig, p in ((layout.mu_w, layout.sigma_w, layout.p1),
                       (layout.mu_b, layout.sigma_b, layout.p2)):
        i, j = _vech_idx(p)
        G = np.zeros((p, p))
        v = g[sig] * np.where(i == j, 1.0, 0.5)
        G[i, j] = v
        G[j, i] = v
        out += [g[mu], G]
    return tuple(out)
