"""Normal-theory maximum likelihood for complete data: one group's loss (a loss family).

For complete data, group g contributes (Joreskog 1969; Bollen 1989, ch. 4; lavaan's
``lav_objective_mlw``)

    F_g = log|Sigma| + tr(S Sigma^-1) - log|S| - p + (m - mu)' Sigma^-1 (m - mu)

and the function minimised is ``f = sum_g (N_g / N) F_g / 2`` (lavaan's ``fmin``), so that
the likelihood-ratio statistic is ``chisq = 2 N f``.  With ``W = Sigma^-1 - Sigma^-1
(S + d d') Sigma^-1`` and ``d = m - mu`` the gradient of ``F_g / 2`` is
``tr(W dSigma) / 2 - d' Sigma^-1 dmu`` and the expected (Fisher) information per case is
``tr(Sigma^-1 dSigma_k Sigma^-1 dSigma_l) / 2 + dmu_k' Sigma^-1 dmu_l``.
"""
from __future__ import annotations


import numpy as np

from ..model.matrices import GroupMoments

__all__ = ["MLGroupLoss"]


class MLGroupLoss:
    """Complete-data normal-theory ML discrepancy of one group (``F_g / 2``)."""

    def __init__(self, cov: np.ndarray, mean: np.ndarray, nobs: int, meanstructure: bool):
        self.cov = cov
        self.mean = mean
        self.nobs = nobs
        self.meanstructure = meanstructure
        self.p = cov.shape[0]
        self.logdet_sample = np.linalg.slogdet(cov)[1]

    def value(self, mom: GroupMoments) -> float:
        res = mom.inverse()
        if res is None:
            return np.inf
        inv, logdet = res
        F = logdet + np.vdot(self.cov, inv) - self.logdet_sample - self.p
        if self.meanstructure:
            d = self.mean - mom.mean
            F += d @ inv @ d
        return 0.5 * F

    def _weights(self, mom: GroupMoments) -> tuple:
        """``(P, W, r)`` at these moments: ``P = Sigma^-1``, ``W = P - P (S + d d') P`` and
        ``r = P d`` (None without a mean structure), computed once per point for the
        gradient and the Hessian."""
        found = mom.cache.get(self)  # keyed by the loss itself (kept alive: no reused ids)
        if found is None:
            inv, _ = mom.inverse()
            if self.meanstructure:
                d = self.mean - mom.mean
                r = inv @ d
                W = inv - inv @ self.cov @ inv - np.outer(r, r)
            else:
                r = None
                W = inv - inv @ self.cov @ inv
            found = mom.cache[self] = (inv, W, r)
        return found

    def derivatives(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                    info: bool = True):
        """Gradient of ``F_g / 2`` and expected information per case, for the given columns."""
        inv, W, r = self._weights(mom)
        q = d_cov.shape[0]
        flat = d_cov.reshape(q, -1)
        grad = 0.5 * flat @ W.ravel()
        if self.meanstructure:
            grad -= d_mean @ r
        if not info:
            return grad, None
        # expected information: 0.5 tr(inv dS_k inv dS_l) + dmu_k' inv dmu_l
        left = np.matmul(inv, d_cov)  # q x p x p
        # tr(L_k L_l) = sum_ij L_k[i, j] L_l[j, i]: one matrix product
        information = 0.5 * (left.reshape(q, -1) @ left.transpose(0, 2, 1).reshape(q, -1).T)
        if self.meanstructure:
            information += d_mean @ inv @ d_mean.T
        return grad, information

    def hessian(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                second: callable) -> np.ndarray:
        """Observed Hessian of ``F_g / 2`` for the given columns.

        With P = Sigma^-1, T = S + d d', r = P d and W = P - P T P (Magnus & Neudecker 1999 for
        the matrix differentials):
        ``H_kl = -tr(P S_k P S_l) + 2 tr(P S_k P T P S_l) + 2 r' S_k P mu_l + 2 r' S_l P mu_k
        + 2 mu_k' P mu_l + tr(W S_kl) - 2 r' mu_kl``, halved; ``second(W, r)`` supplies the
        last two terms (:meth:`RAMModel.second_order_terms`).  As P T P = P - W, the first two
        terms are ``tr(P S_k (P - 2 W) S_l)``: one batched product per parameter.
        """
        inv, W, r = self._weights(mom)
        q = d_cov.shape[0]
        # tr(X_k S_l) with X_k = P S_k (P - 2W) and S_l symmetric: a sum of elementwise products
        first = (inv @ d_cov @ (inv - 2 * W)).reshape(q, -1) @ d_cov.reshape(q, -1).T
        if self.meanstructure:
            a = d_cov @ r  # S_k r, (q, p)
            cross = a @ inv @ d_mean.T
            first += 2 * (cross + cross.T) + 2 * (d_mean @ inv @ d_mean.T)
        H = first + second(W, r)
        return 0.5 * (H + H.T) / 2
