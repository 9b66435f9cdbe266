"""Coordinates of the unrestricted (h1) model of one group, ``m = (mu, vech Sigma)``, and the
rank-two factors of symmetric moment derivatives used to form information matrices in
parameter space (Magnus & Neudecker 1999 for vech / duplication algebra)."""
from __future__ import annotations
from typing import Optional
import numpy as np

__all__ = ["H1Coordinates", "symmetric_rank2", "fixed_x_mask", "zero_coordinates"]


# ------------------------------------------------------------------------------ coordinates
class H1Coordinates:
    """Index bookkeeping for the h1 coordinates ``(mu, vech Sigma)`` of ``p`` variables."""

    def __init__(self, p: int, meanstructure: bool = True):
        self.p = p
        self.meanstructure = meanstructure
        self.rows, self.cols = np.tril_indices(p)  # vech: rows >= cols
        self.n_vech = len(self.rows)
        self.offset = p if meanstructure else 0
        self.dim = self.offset + self.n_vech
        self.diag = self.rows == self.cols
        # 1/2 on diagonal vech elements, 1 off the diagonal
        self.half = np.where(self.diag, 0.5, 1.0)

    def vech(self, M: np.ndarray) -> np.ndarray:
        return M[..., self.rows, self.cols]

    def unvech(self, v: np.ndarray) -> np.ndarray:
        M = np.zeros((self.p, self.p))
        M[self.rows, self.cols] = v
        M[self.cols, self.rows] = v
        return M

    def moments(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        parts = [mean] if self.meanstructure else []
        return np.concatenate(parts + [self.vech(cov)])

    def delta(self, d_cov: np.ndarray, d_mean: np.ndarray) -> np.ndarray:
        """Jacobian of the h1 coordinates w.r.t. q parameters: ``(dim, q)`` (lavaan's Delta)."""
        cov_part = d_cov[:, self.rows, self.cols]
        if self.meanstructure:
            return np.concatenate([d_mean, cov_part], axis=1).T
        return cov_part.T

    def gradient(self, g_mu: np.ndarray, G: np.ndarray) -> np.ndarray:
        """h1-coordinate gradient from the gradient w.r.t. mu and the unrestricted-matrix
        gradient ``G`` (symmetric) w.r.t. Sigma: vech element (i, j) gets ``G_ij + G_ji``."""
        g_cov = self.vech(G) * np.where(self.diag, 1.0, 2.0)
        if self.meanstructure:
            return np.concatenate([g_mu, g_cov])
        return g_cov

    def quadratic(self, weights: np.ndarray, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
        """``sum_k w_k`` of the bilinear form ``tr(P_k X Q_k Y)`` on vech perturbations.

        For vech elements a = (i, j) and b = (k, l) the form is
        ``c_a c_b (P_jk Q_li + P_jl Q_ki + P_ik Q_lj + P_il Q_kj)`` (c = 1/2 on the diagonal).
        Row a is ``N_a + N_a'`` at (k, l) with ``N_a = sum_k w_k (P_k[j, :]' Q_k[:, i]' +
        P_k[i, :]' Q_k[:, j]')``: one small batched product per vech row (K inner terms), so
        the p^4 array of all products is never formed.  Rows are built in blocks of bounded
        memory.
        """
        p = self.p
        n = self.n_vech
        Pt = P.transpose(1, 0, 2)  # [row of P, k, column of P]
        Qt = (Q * weights[:, None, None]).transpose(2, 0, 1)  # [column of Q, k, row of Q]
        kl = self.rows * p + self.cols
        lk = self.cols * p + self.rows
        out = np.empty((n, n))
        step = max(1, int(4_000_000 // max(p * p, 1)))
        for start in range(0, n, step):
            i = self.rows[start:start + step]
            j = self.cols[start:start + step]
            N = np.matmul(Pt[j].transpose(0, 2, 1), Qt[i])
            N += np.matmul(Pt[i].transpose(0, 2, 1), Qt[j])
            N = N.reshape(len(i), p * p)
            out[start:start + step] = N[:, kl] + N[:, lk]
        out *= self.half[:, None]
        out *= self.half[None, :]
        return out


def fixed_x_mask(coords, x_idx, dim: Optional[int] = None) -> np.ndarray:
    """The h1 coordinates of the fixed exogenous covariates ``x_idx`` (their means and the
    x-x block of vech Sigma), for any coordinate layout with ``p``, ``meanstructure``,
    ``offset``, vech index arrays ``rows`` / ``cols`` and ``dim`` (or the length ``dim``)."""
    mask = np.zeros(coords.dim if dim is None else dim, bool)
    if len(x_idx) == 0:
        return mask
    x = np.zeros(coords.p, bool)
    x[list(x_idx)] = True
    if coords.meanstructure:
        mask[:coords.p] = x
    mask[coords.offset:] = x[coords.rows] & x[coords.cols]
    return mask


def zero_coordinates(M: np.ndarray, mask: np.ndarray, columns: bool = True) -> np.ndarray:
    """``M`` with the rows (and, with ``columns``, the columns) in ``mask`` set to 0; a copy
    when any is, ``M`` itself otherwise (lavaan zeroes the fixed-x part of h1 matrices)."""
    if mask.any():
        M = M.copy()
        M[mask, :] = 0.0
        if columns:
            M[:, mask] = 0.0
    return M


# ------------------------------------------------------------------- parameter-space factors
#: Bunch & Parlett's (1971) pivot threshold for symmetric indefinite elimination
_BP_ALPHA = (1.0 + np.sqrt(17.0)) / 8.0


def symmetric_rank2(X: np.ndarray, rtol: float = 1e-9) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Factor symmetric matrices of rank at most 2: ``X[a] = sum_i s[a, i] z[a, i] z[a, i]'``.

    The derivative of an implied covariance matrix with respect to one RAM parameter is
    ``u w' + w u'`` (von Oertzen & Brick 2014), rank <= 2, so every h1 quadratic form
    ``tr(P X_a Q X_b)`` reduces to products of the vectors z (see
    :meth:`MissingPatterns.param_information`).  The factors come from two steps of
    symmetric elimination with complete pivoting (Bunch & Parlett 1971: a 1 x 1 pivot on the
    largest diagonal element when it is at least ``alpha`` times the largest element, else a
    2 x 2 pivot on the largest off-diagonal element), which is exact for rank <= 2.

    Returns ``(Z, s)`` with Z of shape (q, 2, p) and signs s (q, 2) in {-1, 0, 1}, or None when
    some ``X[a]`` has rank above 2 (checked with two probe vectors, relative tolerance
    ``rtol``): the caller then uses the h1 coordinates.
    """
    q, p = X.shape[0], X.shape[1]
    Z = np.zeros((q, 2, p))
    s = np.zeros((q, 2))
    if q == 0 or p == 0:
        return Z, s
    flat = np.abs(X.reshape(q, p * p))
    pos = flat.argmax(axis=1)
    aq = np.arange(q)
    big = flat[aq, pos]
    ar = np.arange(p)
    diag = X[:, ar, ar]
    di = np.abs(diag).argmax(axis=1)
    dbig = np.abs(diag[aq, di])
    nonzero = big > 0
    one = nonzero & (dbig >= _BP_ALPHA * big)
    two = nonzero & ~one
    if one.any():
        # 1 x 1 pivot r: X = c1 c1' / d1 + (rank <= 1 rest); the rest's largest element is on
        # its diagonal diag(X) - c1^2 / d1, its column r2 is X[:, r2] - c1 c1[r2] / d1
        idx = np.flatnonzero(one)
        m = np.arange(len(idx))
        r = di[idx]
        d1 = X[idx, r, r]
        c1 = X[idx, :, r]
        rest_diag = diag[idx] - c1 * c1 / d1[:, None]
        r2 = np.abs(rest_diag).argmax(axis=1)
        d2 = rest_diag[m, r2]
        c2 = X[idx, :, r2] - c1 * (c1[m, r2] / d1)[:, None]
        keep = np.abs(d2) > 1e-14 * big[idx]
        Z[idx, 0] = c1 / np.sqrt(np.abs(d1))[:, None]
        s[idx, 0] = np.sign(d1)
        Z[idx, 1] = np.where(keep[:, None], c2 / np.sqrt(np.where(keep, np.abs(d2), 1.0))[:, None],
                             0.0)
        s[idx, 1] = np.where(keep, np.sign(d2), 0.0)
    if two.any():
        idx = np.flatnonzero(two)
        r, c = np.divmod(pos[idx], p)
        E = np.empty((len(idx), 2, 2))
        E[:, 0, 0] = X[idx, r, r]
        E[:, 1, 1] = X[idx, c, c]
        E[:, 0, 1] = E[:, 1, 0] = X[idx, r, c]
        mu, V = np.linalg.eigh(E)  # |det E| >= (1 - alpha^2) X_rc^2 > 0
        C = np.stack([X[idx, :, r], X[idx, :, c]], axis=2)  # X = C E^-1 C'
        Z[idx] = (C @ V / np.sqrt(np.abs(mu))[:, None, :]).transpose(0, 2, 1)
        s[idx] = np.sign(mu)
    # probe: X v must equal sum_i s_i z_i (z_i' v) for a fixed generic vector v
    v = np.cos(np.arange(1, p + 1, dtype=float) * 0.7) + 1.5
    rebuilt = np.einsum("aip,ai->ap", Z, s * (Z @ v))
    err = np.abs(X @ v - rebuilt).max(axis=1)
    if np.any(err > rtol * (big * np.abs(v).sum() + 1e-300)):
        return None
    return Z, s
