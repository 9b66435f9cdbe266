"""Model matrices: the parameter table mapped onto RAM matrices, implied moments and Jacobians.

Stage 3 of the pipeline.  Every group's model is written in the reticular action model (RAM;
McArdle & McDonald 1984) over all variables ``v = (observed..., latent...)``:

    A   directed paths, ``A[i, j]`` the effect of variable j on variable i (loadings, regressions)
    S   (residual) variances and covariances
    M   intercepts / means
    B   = (I - A)^-1
    implied_cov  = F B S B' F'      (F selects the observed variables: the first p rows)
    implied_mean = F B M

The derivatives of the implied moments with respect to one parameter (von Oertzen & Brick 2014,
"Efficient Hessian computation using sparse matrix derivatives in RAM notation"):

    d cov / d A[i,j] = u v' + v u',  u = (F B)[:, i],  v = (F B S B')[:, j]
    d cov / d S[i,j] = u w' + w u',  w = (F B)[:, j]   (u u' on the diagonal)
    d mean / d A[i,j] = u * (B M)[j],   d mean / d M[i] = u
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from .partable import ModelVariables, ParTable

__all__ = ["RAMModel", "GroupMoments"]


@dataclass
class GroupMoments:
    """Model-implied moments of one group, with the pieces needed for derivatives."""

    cov: np.ndarray  # p x p
    mean: np.ndarray  # p
    B: np.ndarray  # v x v, (I - A)^-1
    full_cov: np.ndarray  # v x v, B S B'
    full_mean: np.ndarray  # v
    _inverse: Optional[tuple] = None

    def inverse(self) -> Optional[tuple[np.ndarray, float]]:
        """(inverse, log-determinant) of the implied covariance, cached; None if not PD."""
        if self._inverse is None:
            try:
                chol = np.linalg.cholesky(self.cov)
            except np.linalg.LinAlgError:
                self._inverse = (None,)
            else:
                self._inverse = (np.linalg.inv(self.cov), 2.0 * np.log(np.diag(chol)).sum())
        return None if self._inverse[0] is None else self._inverse


class RAMModel:
    """The parameter table of a model laid out as per-group RAM matrices."""

    def __init__(self, partable: ParTable, variables: ModelVariables, n_groups: int):
        self.partable = partable
        self.variables = variables
        self.n_groups = n_groups
        self.ov_names = list(variables.ov)
        self.var_names = self.ov_names + list(variables.lv)
        self.n_ov = len(self.ov_names)
        self.n_var = len(self.var_names)
        index = {name: k for k, name in enumerate(self.var_names)}
        group = np.asarray(partable["group"])
        op = np.asarray(partable["op"].tolist(), dtype=object)
        lhs = np.array([index.get(v, -1) for v in partable["lhs"].tolist()])
        rhs = np.array([index.get(v, -1) for v in partable["rhs"].tolist()])
        self.meanstructure = bool(np.any((op == "~1") & (group > 0)))
        self._cells = []
        for g in range(n_groups):
            in_group = group == g + 1
            load = np.flatnonzero(in_group & (op == "=~"))
            reg = np.flatnonzero(in_group & (op == "~"))
            cov = np.flatnonzero(in_group & (op == "~~"))
            mean = np.flatnonzero(in_group & (op == "~1"))
            self._cells.append({
                # loadings: A[indicator, factor]; regressions: A[outcome, predictor]
                "A": (np.concatenate([load, reg]), np.concatenate([rhs[load], lhs[reg]]),
                      np.concatenate([lhs[load], rhs[reg]])),
                "S": (cov, lhs[cov], rhs[cov]),
                "M": (mean, lhs[mean], np.zeros(len(mean), int)),
            })

    # ------------------------------------------------------------------------------------
    def matrices(self, values: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A, S, M of group ``g`` filled from the parameter values (indexed like the table)."""
        v = self.n_var
        A = np.zeros((v, v))
        S = np.zeros((v, v))
        M = np.zeros(v)
        rows, i, j = self._cells[g]["A"]
        A[i, j] = values[rows]
        rows, i, j = self._cells[g]["S"]
        S[i, j] = values[rows]
        S[j, i] = values[rows]
        rows, i, _ = self._cells[g]["M"]
        M[i] = values[rows]
        return A, S, M

    def moments(self, values: np.ndarray, g: int) -> GroupMoments:
        A, S, M = self.matrices(values, g)
        B = np.linalg.inv(np.eye(self.n_var) - A)
        full_cov = B @ S @ B.T
        full_mean = B @ M
        p = self.n_ov
        return GroupMoments(full_cov[:p, :p], full_mean[:p], B, full_cov, full_mean)

    def free_rows(self, g: int, free_mask: np.ndarray) -> dict[str, tuple]:
        """The cells of group ``g`` whose table rows are selected by ``free_mask``."""
        out = {}
        for kind, (rows, i, j) in self._cells[g].items():
            keep = free_mask[rows]
            out[kind] = (rows[keep], i[keep], j[keep])
        return out

    def jacobian(self, mom: GroupMoments, cells: dict[str, tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Derivatives of the implied moments of one group with respect to the given cells.

        Returns ``(rows, d_cov, d_mean)``: the table rows, ``d_cov`` of shape (q, p, p) and
        ``d_mean`` of shape (q, p), in the order of ``rows``.
        """
        p = self.n_ov
        FB = mom.B[:p, :]
        blocks_cov, blocks_mean, rows_all = [], [], []
        rows, i, j = cells["A"]
        if len(rows):
            u = FB[:, i]  # p x q
            w = mom.full_cov[:p, j]
            d = u.T[:, :, None] * w.T[:, None, :]
            blocks_cov.append(d + d.transpose(0, 2, 1))
            blocks_mean.append((u * mom.full_mean[j]).T)
            rows_all.append(rows)
        rows, i, j = cells["S"]
        if len(rows):
            u = FB[:, i]
            w = FB[:, j]
            d = u.T[:, :, None] * w.T[:, None, :]
            off = (i != j).astype(float)[:, None, None]
            blocks_cov.append(d + off * d.transpose(0, 2, 1))
            blocks_mean.append(np.zeros((len(rows), p)))
            rows_all.append(rows)
        rows, i, _ = cells["M"]
        if len(rows):
            blocks_cov.append(np.zeros((len(rows), p, p)))
            blocks_mean.append(FB[:, i].T)
            rows_all.append(rows)
        if not rows_all:
            return np.zeros(0, int), np.zeros((0, p, p)), np.zeros((0, p))
        return (np.concatenate(rows_all), np.concatenate(blocks_cov),
                np.concatenate(blocks_mean))

    def second_order_terms(self, mom: GroupMoments, cells: dict[str, tuple], W: np.ndarray,
                           r: np.ndarray) -> np.ndarray:
        """``tr(W d2cov/dk dl) - 2 r' d2mean/dk dl`` for all pairs of the given cells.

        Only directed paths have second derivatives (the moments are linear in S and M).  With
        ``G = B'F' W F B`` and ``H = (B S B') F' W F B``, for A[i,j] and A[m,n]:
        ``tr(W Sigma_kl) = 2 (B[n,i] H[j,m] + B[j,m] H[n,i] + C[j,n] G[m,i])`` (C = B S B');
        for A[i,j] and S[m,n]: ``2 (B[j,m] G[n,i] + B[j,n] G[m,i])`` (once on the diagonal);
        for the means ``mu_kl = FB[:,m] B[n,i] mu[j] + FB[:,i] B[j,m] mu[n]`` (A, A) and
        ``FB[:,i] B[j,m]`` (A[i,j], M[m]).  Rows and columns in :meth:`jacobian`'s order.
        """
        p = self.n_ov
        B, C, mu = mom.B, mom.full_cov, mom.full_mean
        FB = B[:p, :]
        G = FB.T @ W @ FB
        H = C[:, :p] @ W @ FB
        rho = FB.T @ r
        _, ai, aj = cells["A"]
        _, si, sj = cells["S"]
        _, mi, _ = cells["M"]
        na, ns, nm = len(ai), len(si), len(mi)
        q = na + ns + nm
        out = np.zeros((q, q))
        if na == 0:
            return out
        i, j = ai[:, None], aj[:, None]
        m, n = ai[None, :], aj[None, :]
        out[:na, :na] = 2 * (B[n, i] * H[j, m] + B[j, m] * H[n, i] + C[j, n] * G[m, i]) \
            - 2 * (rho[m] * B[n, i] * mu[j] + rho[i] * B[j, m] * mu[n])
        if ns:
            m, n = si[None, :], sj[None, :]
            off = (si != sj)[None, :]
            block = 2 * (B[j, m] * G[n, i] + off * B[j, n] * G[m, i])
            out[:na, na:na + ns] = block
            out[na:na + ns, :na] = block.T
        if nm:
            m = mi[None, :]
            block = -2 * rho[i] * B[j, m]
            out[:na, na + ns:] = block
            out[na + ns:, :na] = block.T
        return (out + out.T) / 2
