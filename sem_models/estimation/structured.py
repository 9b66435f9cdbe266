"""Block-arrow curvature matrices of multi-group models: solves and inverse diagonals in time
linear in the number of groups.

In a multi-group model the information (and the observed Hessian) in the reduced parameters z
is a sum over groups, and group g's term involves only the z coordinates its free rows depend
on.  Split z into the coordinates that only one group touches (*private*: that group's residual
variances, factor variances, ... ) and those touched by two or more groups (*shared*: the
``group_equal`` loadings and intercepts, labels repeated across some or all groups).  With the
coordinates ordered private (group by group) then shared, the matrix is block-arrow::

    M = [ A_1            B_1 ]
        [      ...       ... ]
        [           A_G  B_G ]
        [ B_1' ...  B_G'  C  ]

``M x = r`` is solved through the Schur complement of the private blocks,
``S = C - sum_g B_g' A_g^-1 B_g`` (Golub & Van Loan 2013, section 4.5.4 on block
elimination; the arrowhead/"bordered block-diagonal" case, Duff, Erisman & Reid 2017,
ch. 10): per group a Cholesky factor of ``A_g`` (small), then one s x s factorisation of S.
``M`` is positive definite iff every ``A_g`` and S are (Golub & Van Loan 2013, theorem
4.2.7 on Schur complements), so the same factorisation is the test Newton's method needs.  The
diagonal of ``M^-1`` (standard errors) follows from the block inverse
``(M^-1)_ss = S^-1``, ``(M^-1)_gg = A_g^-1 + X_g S^-1 X_g'`` with ``X_g = A_g^-1 B_g``.

Groups whose private/shared block sizes agree are stacked (a *bucket*) so that the per-group
work is batched numpy (``np.linalg`` on stacks of small matrices), not a Python loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = ["BlockArrow", "BlockLayout", "STRUCTURED_MIN_NZ", "block_layout"]

#: smallest number of z coordinates for which the block-arrow form replaces the dense matrix
#: (below it a dense factorisation is as fast as the bookkeeping)
STRUCTURED_MIN_NZ = 120
#: the structure is used only when the shared block is at most this fraction of z
STRUCTURED_MAX_SHARED = 0.5


@dataclass
class _Bucket:
    """Groups with the same numbers of private (p) and shared (k) coordinates."""

    groups: np.ndarray  # (n,) group numbers
    private: np.ndarray  # (n, p) z indices of each group's private coordinates
    shared: np.ndarray  # (n, k) positions in the shared block of the shared coordinates
    common: bool  # every group of the bucket touches the same shared positions

    @property
    def p(self) -> int:
        return self.private.shape[1]

    @property
    def k(self) -> int:
        return self.shared.shape[1]


class BlockLayout:
    """Where each group's z coordinates sit in the block-arrow form.

    ``local[g]`` orders group g's own coordinates (``group_cols[g]``) private first, then
    shared: a group's local curvature matrix in that order is cut into ``A_g`` (p x p),
    ``B_g`` (p x k) and its contribution to C (k x k)."""

    def __init__(self, group_cols: Sequence[np.ndarray], n_z: int, shared: np.ndarray):
        self.n_z = int(n_z)
        self.shared = np.asarray(shared, np.intp)  # z indices of the shared block
        self.n_groups = len(group_cols)
        position = np.full(self.n_z, -1, np.intp)
        position[self.shared] = np.arange(len(self.shared))
        is_shared = position >= 0
        keys: dict[tuple, list] = {}
        self.local = []  # per group: permutation of its columns (private first, then shared)
        per_group = []
        for g, cols in enumerate(group_cols):
            cols = np.asarray(cols, np.intp)
            priv = np.flatnonzero(~is_shared[cols])
            shar = np.flatnonzero(is_shared[cols])
            self.local.append(np.concatenate([priv, shar]))
            per_group.append((cols[priv], position[cols[shar]]))
            keys.setdefault((len(priv), len(shar)), []).append(g)
        self.buckets: list[_Bucket] = []
        self.slot = [None] * self.n_groups  # per group: (bucket number, row within it)
        for b, ((p, k), groups) in enumerate(keys.items()):
            private = np.array([per_group[g][0] for g in groups], np.intp).reshape(len(groups), p)
            shared_pos = np.array([per_group[g][1] for g in groups], np.intp).reshape(
                len(groups), k)
            common = bool(len(groups) == 1 or np.all(shared_pos == shared_pos[:1]))
            self.buckets.append(_Bucket(np.array(groups), private, shared_pos, common))
            for row, g in enumerate(groups):
                self.slot[g] = (b, row)
        self.p = [len(per_group[g][0]) for g in range(self.n_groups)]

    @property
    def n_shared(self) -> int:
        return len(self.shared)

    def zeros(self) -> "BlockArrow":
        """A zero matrix with this layout, to be filled group by group (:meth:`BlockArrow.set_group`)."""
        s = self.n_shared
        A = [np.zeros((len(b.groups), b.p, b.p)) for b in self.buckets]
        B = [np.zeros((len(b.groups), b.p, b.k)) for b in self.buckets]
        Cg = [np.zeros((len(b.groups), b.k, b.k)) for b in self.buckets]
        return BlockArrow(self, A, B, Cg, np.zeros((s, s)))


def block_layout(group_cols: Sequence[np.ndarray], n_z: int, *,
                 min_size: Optional[int] = None,
                 max_shared: float = STRUCTURED_MAX_SHARED) -> Optional[BlockLayout]:
    """The block-arrow layout of a multi-group problem whose group g depends on the z
    coordinates ``group_cols[g]`` (each without repeats), or None when the structure does not
    pay off (one group, fewer than ``min_size`` coordinates, or a shared block larger than
    ``max_shared`` of z: e.g. ``==`` constraints whose null-space basis couples every group).
    Coordinates no group touches go into the shared block (their zero diagonal then makes
    the factorisation fail, and the caller falls back to the dense matrix)."""
    min_size = STRUCTURED_MIN_NZ if min_size is None else min_size
    if len(group_cols) < 2 or n_z < max(min_size, 1):
        return None
    counts = np.bincount(np.concatenate([np.asarray(c, np.intp) for c in group_cols]),
                         minlength=n_z)
    shared = np.flatnonzero(counts != 1)
    if len(shared) > max_shared * n_z:
        return None
    return BlockLayout(group_cols, n_z, shared)


class BlockArrow:
    """A symmetric n_z x n_z matrix in block-arrow form (see the module docstring).

    Stored per bucket of groups: ``A[b]`` (n, p, p) private blocks, ``B[b]`` (n, p, k)
    private-shared couplings and ``Cg[b]`` (n, k, k) the groups' contributions to the shared
    block, plus ``C0`` (s x s) added to it directly."""

    def __init__(self, layout: BlockLayout, A: list, B: list, Cg: list, C0: np.ndarray):
        self.layout = layout
        self.A, self.B, self.Cg, self.C0 = A, B, Cg, C0
        self._C = None
        self._factor = None  # cached: False when not positive definite

    shape = property(lambda self: (self.layout.n_z, self.layout.n_z))

    def set_group(self, g: int, local: np.ndarray, weight: float = 1.0) -> None:
        """Enter group g's term: ``local`` is its matrix over its own z coordinates in the
        layout's local order (private first, then shared), multiplied by ``weight``."""
        b, row = self.layout.slot[g]
        p = self.layout.p[g]
        np.multiply(local[:p, :p], weight, out=self.A[b][row])
        np.multiply(local[:p, p:], weight, out=self.B[b][row])
        np.multiply(local[p:, p:], weight, out=self.Cg[b][row])
        self._C = None
        self._factor = None

    @property
    def C(self) -> np.ndarray:
        """The shared block: ``C0`` plus the groups' contributions."""
        if self._C is None:
            C = self.C0.copy()
            for bucket, Cg in zip(self.layout.buckets, self.Cg):
                if not bucket.k:
                    continue
                if bucket.common:
                    idx = bucket.shared[0]
                    C[np.ix_(idx, idx)] += Cg.sum(axis=0)
                else:
                    np.add.at(C, (bucket.shared[:, :, None], bucket.shared[:, None, :]), Cg)
            self._C = C
        return self._C

    def diagonal(self) -> np.ndarray:
        out = np.empty(self.layout.n_z)
        for bucket, A in zip(self.layout.buckets, self.A):
            out[bucket.private] = np.diagonal(A, axis1=1, axis2=2)
        out[self.layout.shared] = np.diag(self.C)
        return out

    def to_dense(self) -> np.ndarray:
        """The full matrix (for the dense fallbacks and for checks)."""
        lay = self.layout
        M = np.zeros((lay.n_z, lay.n_z))
        for bucket, A, B in zip(lay.buckets, self.A, self.B):
            pz = bucket.private
            sz = lay.shared[bucket.shared]
            M[pz[:, :, None], pz[:, None, :]] = A
            M[pz[:, :, None], sz[:, None, :]] = B
            M[sz[:, :, None], pz[:, None, :]] = np.swapaxes(B, 1, 2)
        M[np.ix_(lay.shared, lay.shared)] = self.C
        return M

    def scaled(self) -> tuple["BlockArrow", np.ndarray]:
        """``(D M D, d)`` with ``d = diag(M)^(-1/2)`` (0 where the diagonal is not positive),
        in the same layout: the correlation scaling of
        :func:`sem_models.inference.wald.scaled_information`."""
        diag = self.diagonal()
        ok = np.isfinite(diag) & (diag > 0)
        d = np.zeros_like(diag)
        d[ok] = 1.0 / np.sqrt(diag[ok])
        lay = self.layout
        A, B, Cg = [], [], []
        ds = d[lay.shared]
        for bucket, Ab, Bb, Cb in zip(lay.buckets, self.A, self.B, self.Cg):
            dp = d[bucket.private]
            dk = ds[bucket.shared]
            A.append(Ab * dp[:, :, None] * dp[:, None, :])
            B.append(Bb * dp[:, :, None] * dk[:, None, :])
            Cg.append(Cb * dk[:, :, None] * dk[:, None, :])
        out = BlockArrow(lay, A, B, Cg, self.C0 * np.outer(ds, ds))
        return out, d

    # ------------------------------------------------------------------ factorisation
    def factor(self) -> Optional["_Factor"]:
        """The block Cholesky factorisation, or None when the matrix is not (numerically)
        positive definite.  Cached."""
        if self._factor is None:
            self._factor = _Factor.build(self) or False
        return self._factor or None

    def positive_definite(self) -> bool:
        return self.factor() is not None

    def solve(self, rhs: np.ndarray) -> Optional[np.ndarray]:
        """``M^-1 rhs`` (a vector), or None when M is not positive definite."""
        factor = self.factor()
        return None if factor is None else factor.solve(rhs)

    def inverse_diagonal(self) -> Optional[np.ndarray]:
        """``diag(M^-1)``, or None when M is not positive definite."""
        factor = self.factor()
        return None if factor is None else factor.inverse_diagonal()


class _Factor:
    """Block Cholesky factorisation of a positive-definite :class:`BlockArrow`: per bucket
    ``L_g`` (Cholesky factor of ``A_g``), ``W_g = L_g^-1 B_g`` and ``X_g = A_g^-1 B_g``; the
    Cholesky factor of ``S = C - sum_g W_g' W_g``."""

    def __init__(self, matrix, Linv, W, X, S_chol):
        self.matrix, self.Linv, self.W, self.X, self.S_chol = matrix, Linv, W, X, S_chol

    @classmethod
    def build(cls, matrix: BlockArrow) -> Optional["_Factor"]:
        lay = matrix.layout
        S = matrix.C.copy()
        Linv, W, X = [], [], []
        for bucket, A, B in zip(lay.buckets, matrix.A, matrix.B):
            if not bucket.p:
                Linv.append(np.zeros((len(bucket.groups), 0, 0)))
                W.append(B)
                X.append(B)
                continue
            try:
                L = np.linalg.cholesky(A)
            except np.linalg.LinAlgError:
                return None
            # the inverse of a small triangular factor (p x p per group), batched
            Li = np.linalg.inv(L)
            Wb = Li @ B
            Xb = np.swapaxes(Li, 1, 2) @ Wb
            if not (np.all(np.isfinite(Li)) and np.all(np.isfinite(Wb))):
                return None
            Linv.append(Li)
            W.append(Wb)
            X.append(Xb)
            if bucket.k:
                WtW = np.swapaxes(Wb, 1, 2) @ Wb
                if bucket.common:
                    idx = bucket.shared[0]
                    S[np.ix_(idx, idx)] -= WtW.sum(axis=0)
                else:
                    np.subtract.at(S, (bucket.shared[:, :, None], bucket.shared[:, None, :]),
                                   WtW)
        if S.size:
            try:
                S_chol = np.linalg.cholesky(S)
            except np.linalg.LinAlgError:
                return None
            if not np.all(np.isfinite(S_chol)):
                return None
        else:
            S_chol = S
        return cls(matrix, Linv, W, X, S_chol)

    def _shared_solve(self, rhs: np.ndarray) -> np.ndarray:
        if not rhs.shape[0]:
            return rhs.copy()
        import scipy.linalg

        y = scipy.linalg.solve_triangular(self.S_chol, rhs, lower=True, check_finite=False)
        return scipy.linalg.solve_triangular(self.S_chol, y, lower=True, trans="T",
                                             check_finite=False)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        lay = self.matrix.layout
        rhs = np.asarray(rhs, float)
        out = np.empty(lay.n_z)
        t = rhs[lay.shared].copy()
        ys = []
        for bucket, Li, B in zip(lay.buckets, self.Linv, self.matrix.B):
            if not bucket.p:
                ys.append(None)
                continue
            u = np.einsum("nij,nj->ni", Li, rhs[bucket.private])
            y = np.einsum("nji,nj->ni", Li, u)  # A_g^-1 r_g
            ys.append(y)
            if bucket.k:
                contrib = np.einsum("npk,np->nk", B, y)
                if bucket.common:
                    t[bucket.shared[0]] -= contrib.sum(axis=0)
                else:
                    np.subtract.at(t, bucket.shared, contrib)
        x_s = self._shared_solve(t)
        out[lay.shared] = x_s
        for bucket, X, y in zip(lay.buckets, self.X, ys):
            if y is None:
                continue
            out[bucket.private] = y - np.einsum("npk,nk->np", X, x_s[bucket.shared]) \
                if bucket.k else y
        return out

    def inverse_diagonal(self) -> np.ndarray:
        lay = self.matrix.layout
        s = lay.n_shared
        S_inv = self._shared_solve(np.eye(s)) if s else np.zeros((0, 0))
        out = np.empty(lay.n_z)
        out[lay.shared] = np.diag(S_inv)
        for bucket, Li, X in zip(lay.buckets, self.Linv, self.X):
            if not bucket.p:
                continue
            diag = np.einsum("nji,nji->ni", Li, Li)  # diag(A_g^-1) = column sums of Li^2
            if bucket.k:
                if bucket.common:
                    idx = bucket.shared[0]
                    XS = X @ S_inv[np.ix_(idx, idx)]
                else:
                    XS = np.einsum("npk,nkl->npl", X,
                                   S_inv[bucket.shared[:, :, None], bucket.shared[:, None, :]])
                diag = diag + np.einsum("npk,npk->np", XS, X)
            out[bucket.private] = diag
        return out
