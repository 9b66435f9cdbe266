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

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..linalg import identity, spd_inverse
from .partable import ModelVariables, ParTable, rows_of_group

__all__ = ["RAMModel", "GroupMoments", "Cells"]


@dataclass
class GroupMoments:
    """Model-implied moments of one group, with the pieces needed for derivatives."""

    cov: np.ndarray  # p x p
    mean: np.ndarray  # p
    B: np.ndarray  # v x v, (I - A)^-1
    full_cov: np.ndarray  # v x v, B S B'
    full_mean: np.ndarray  # v
    _inverse: Optional[tuple] = None
    #: what a loss derives from these moments, kept for its other derivatives at the same
    #: point (keyed by the loss; e.g. the ML weight matrix, used by gradient and Hessian)
    cache: dict = field(default_factory=dict)

    def inverse(self) -> Optional[tuple[np.ndarray, float]]:
        """(inverse, log-determinant) of the implied covariance, cached; None if not PD."""
        if self._inverse is None:
            self._inverse = spd_inverse(self.cov) or (None,)
        return None if self._inverse[0] is None else self._inverse


def _path_order(n_var: int, to: np.ndarray, source: np.ndarray) -> int | None:
    """Length of the longest chain of directed paths (A is nilpotent: ``A^(k+1) = 0``), or None
    when the paths form a loop (a non-recursive model)."""
    pattern = np.zeros((n_var, n_var), bool)
    pattern[to, source] = True
    power, order = pattern, 0
    while power.any():
        order += 1
        if order > n_var:
            return None
        power = (power.astype(np.int64) @ pattern.astype(np.int64)) > 0
    return order


def _total_effects(A: np.ndarray, order: int | None) -> np.ndarray:
    """``B = (I - A)^-1``; for a recursive model the finite sum ``I + A + ... + A^order``
    (Horner's scheme), which costs a few small products instead of an inverse."""
    eye = identity(A.shape[0])
    if order is None:
        return np.linalg.inv(eye - A)
    B = A + eye
    for _ in range(order - 1):
        B = A @ B
        B += eye
    return B


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
        group = partable["group"]
        op = partable["op"]
        lhs = np.array([index.get(v, -1) for v in partable["lhs"].tolist()])
        rhs = np.array([index.get(v, -1) for v in partable["rhs"].tolist()])
        self.meanstructure = bool(np.any((op == "~1") & (group > 0)))
        self._cells = []
        self._path_orders = []
        for g in range(n_groups):
            rows = rows_of_group(partable, g)
            op_g = op[rows]
            load, reg, cov, mean = (rows[op_g == kind] for kind in ("=~", "~", "~~", "~1"))
            self._cells.append({
                # loadings: A[indicator, factor]; regressions: A[outcome, predictor]
                "A": (np.concatenate([load, reg]), np.concatenate([rhs[load], lhs[reg]]),
                      np.concatenate([lhs[load], rhs[reg]])),
                "S": (cov, lhs[cov], rhs[cov]),
                "M": (mean, lhs[mean], np.zeros(len(mean), int)),
            })
            self._path_orders.append(_path_order(self.n_var, *self._cells[-1]["A"][1:]))
        self._fills = [self._fill_positions(cells) for cells in self._cells]

    def _fill_positions(self, cells: dict) -> tuple[np.ndarray, np.ndarray]:
        """(table rows, positions) that fill one group's A, S (both triangles) and M, laid
        out one after the other in a flat buffer (:meth:`matrices`)."""
        v = self.n_var
        (a_rows, a_i, a_j), (s_rows, s_i, s_j), (m_rows, m_i, _) = (
            cells[k] for k in ("A", "S", "M"))
        rows = np.concatenate([a_rows, s_rows, s_rows, m_rows]).astype(np.intp)
        positions = np.concatenate([a_i * v + a_j, v * v + s_i * v + s_j,
                                    v * v + s_j * v + s_i, 2 * v * v + m_i]).astype(np.intp)
        return rows, positions

    # ------------------------------------------------------------------------------------
    def matrices(self, values: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A, S, M of group ``g`` filled from the parameter values (indexed like the table)."""
        v = self.n_var
        buffer = np.zeros(2 * v * v + v)
        rows, positions = self._fills[g]
        buffer[positions] = values[rows]
        return (buffer[:v * v].reshape(v, v), buffer[v * v:2 * v * v].reshape(v, v),
                buffer[2 * v * v:])

    def moments(self, values: np.ndarray, g: int) -> GroupMoments:
        A, S, M = self.matrices(values, g)
        B = _total_effects(A, self._path_orders[g])
        full_cov = B @ S @ B.T
        full_mean = B @ M
        p = self.n_ov
        return GroupMoments(full_cov[:p, :p], full_mean[:p], B, full_cov, full_mean)

    def free_rows(self, g: int, free_mask: np.ndarray) -> "Cells":
        """The cells of group ``g`` whose table rows are selected by ``free_mask``."""
        return Cells(*((rows[free_mask[rows]], i[free_mask[rows]], j[free_mask[rows]])
                       for rows, i, j in (self._cells[g][k] for k in "ASM")))

    def jacobian(self, mom: GroupMoments, cells: "Cells") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Derivatives of the implied moments of one group with respect to the given cells.

        Returns ``(rows, d_cov, d_mean)``: the table rows, ``d_cov`` of shape (q, p, p) and
        ``d_mean`` of shape (q, p), in the order of ``rows`` (A cells, S cells, M cells).
        """
        p = self.n_ov
        FB = mom.B[:p, :]
        na, nas = cells.n_a, cells.n_a + cells.n_s
        d_cov = np.empty((cells.q, p, p))
        d_cov[nas:] = 0.0  # the means' cells
        d_mean = np.zeros((cells.q, p))
        if nas:
            # A[i, j]: u = FB[:, i], w = (F B S B')[:, j]; S[i, j]: u = FB[:, i], w = FB[:, j];
            # d cov = u w' + w u' (u w' alone on the diagonal of S), written in place
            u = FB[:, cells.u_index]
            w = np.concatenate([mom.full_cov[:p, cells.A[2]], FB[:, cells.S[2]]], axis=1)
            head = d_cov[:nas]
            np.multiply(u.T[:, :, None], w.T[:, None, :], out=head)
            head += w.T[:, :, None] * (cells.mirror[:, None] * u.T)[:, None, :]
            if na:
                d_mean[:na] = (u[:, :na] * mom.full_mean[cells.A[2]]).T
        if cells.n_m:
            d_mean[nas:] = FB[:, cells.M[1]].T
        return cells.rows, d_cov, d_mean

    def second_order_terms(self, mom: GroupMoments, cells: "Cells", W: np.ndarray,
                           r: Optional[np.ndarray]) -> np.ndarray:
        """``tr(W d2cov/dk dl) - 2 r' d2mean/dk dl`` for all pairs of the given cells.

        Only directed paths have second derivatives (the moments are linear in S and M).  With
        ``G = B'F' W F B`` and ``H = (B S B') F' W F B``, for A[i,j] and A[m,n]:
        ``tr(W Sigma_kl) = 2 (B[n,i] H[j,m] + B[j,m] H[n,i] + C[j,n] G[m,i])`` (C = B S B');
        for A[i,j] and S[m,n]: ``2 (B[j,m] G[n,i] + B[j,n] G[m,i])`` (once on the diagonal);
        for the means ``mu_kl = FB[:,m] B[n,i] mu[j] + FB[:,i] B[j,m] mu[n]`` (A, A) and
        ``FB[:,i] B[j,m]`` (A[i,j], M[m]).  ``r`` is None without a mean structure.  Rows and
        columns in :meth:`jacobian`'s order.
        """
        p = self.n_ov
        B, C, mu = mom.B, mom.full_cov, mom.full_mean
        FB = B[:p, :]
        na, ns = cells.n_a, cells.n_s
        out = np.zeros((cells.q, cells.q))
        if na == 0:
            return out
        G = FB.T @ W @ FB
        H = C[:, :p] @ W @ FB
        ai, aj = cells.A[1:]
        grid = cells.grids(B.shape[0])  # flat indices of the cell pairs into v x v matrices
        # (k, l) entries: B[j_k, i_l], i.e. the transpose of B[n, i]
        B_ji = B.take(grid["ji"])
        cross = B_ji.T * H.take(grid["ji"])
        block = cross + cross.T + C.take(grid["jj"]) * G.take(grid["ii"])
        rho = None if r is None else FB.T @ r
        if rho is not None:
            mean_part = mu[aj][:, None] * B_ji.T * rho[ai][None, :]
            block -= mean_part + mean_part.T
        out[:na, :na] = 2 * block
        if ns:
            off = cells.mirror[na:]
            block = 2 * (B.take(grid["j_si"]) * G.take(grid["i_sj"])
                         + off * B.take(grid["j_sj"]) * G.take(grid["i_si"]))
            out[:na, na:na + ns] = block
            out[na:na + ns, :na] = block.T
        if cells.n_m and rho is not None:
            block = -2 * rho[ai][:, None] * B.take(grid["j_m"])
            out[:na, na + ns:] = block
            out[na + ns:, :na] = block.T
        return out


class Cells:
    """Matrix cells of a set of parameters of one group: ``A``, ``S`` and ``M`` as
    ``(table rows, i, j)``, with the index arrays the derivatives need, computed once."""

    def __init__(self, A: tuple, S: tuple, M: tuple):
        self.A, self.S, self.M = A, S, M
        self.n_a, self.n_s, self.n_m = len(A[0]), len(S[0]), len(M[0])
        self.q = self.n_a + self.n_s + self.n_m
        self.rows = np.concatenate([A[0], S[0], M[0]]).astype(int)
        self.u_index = np.concatenate([A[1], S[1]]).astype(int)
        # d cov = u w' + w u' except on the diagonal of S (u u')
        self.mirror = np.concatenate([np.ones(self.n_a), (S[1] != S[2]).astype(float)])

    def __getitem__(self, kind: str) -> tuple:
        return getattr(self, kind)

    def grids(self, v: int) -> dict:
        """Flat indices into ``v x v`` matrices of the pairs of cells the second-order terms
        read (``"ji"``: ``[j_k, i_l]`` over the directed paths, ...), computed once."""
        cached = self.__dict__.get("_grids")
        if cached is None or cached[0] != v:
            (ai, aj), (si, sj), mi = self.A[1:], self.S[1:], self.M[1]

            def flat(rows, cols):
                return rows[:, None] * v + cols[None, :]
            grid = {"ji": flat(aj, ai), "jj": flat(aj, aj), "ii": flat(ai, ai),
                    "j_si": flat(aj, si), "i_sj": flat(ai, sj), "j_sj": flat(aj, sj),
                    "i_si": flat(ai, si), "j_m": flat(aj, mi)}
            cached = self.__dict__["_grids"] = (v, grid)
        return cached[1]
