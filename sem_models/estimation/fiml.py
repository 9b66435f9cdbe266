"""Full-information maximum likelihood (FIML) for incomplete multivariate normal data.

With data missing at random, the log-likelihood of group g is the sum over cases of the
normal log-density of each case's observed variables (Anderson 1957; Arbuckle 1996;
Finkbeiner 1979).  Cases that share a missing-data pattern ``o`` share ``Sigma_oo`` and
``mu_o``, so everything is computed once per pattern from the pattern's sufficient
statistics -- its count ``n_k``, mean ``ybar_k`` and cross-product matrix ``S_k`` (divisor
``n_k``) -- as in lavaan's ``lav_mvnorm_missing_loglik_samplestats``:

    logL = - sum_k n_k / 2 [ p_k log(2 pi) + log|Sigma_k| + tr(Sigma_k^-1 (S_k + d_k d_k')) ],
    d_k = ybar_k - mu_k.

All patterns are handled at once in stacked ``(K, p, p)`` arrays: pattern k's covariance is
*padded* to full size (missing rows/columns zero, unit diagonal), so one batched Cholesky gives
``log|Sigma_k|`` and a batched inverse gives ``Sigma_k^-1`` embedded with zeros.  No loop runs
over rows and no per-row ``p x p`` array is built; the only loops over rows are chunked
(casewise scores for robust standard errors).

Coordinates of the unrestricted ("h1") model are ``(mu, vech Sigma)`` with ``vech`` the lower
triangle (``numpy.tril_indices``).  For one pattern with ``A = Sigma_k^-1``, ``T = S_k + d d'``
the per-case derivatives are (Magnus & Neudecker 1999, ch. 9; Savalei 2010 for the observed
information under missing data):

* gradient: ``dlogL/dmu = n A d``, ``dlogL/dSigma = n/2 (A T A - A)``
* observed information (negative Hessian) for symmetric perturbations X, Y of Sigma:
  ``n/2 [ -tr(A X A Y) + tr(A X A Y A T) + tr(A Y A X A T) ]``, mean block ``n A``,
  cross block ``n A X A d``; the expected information drops the T and d terms
  (``n/2 tr(A X A Y)`` and ``n A``).
* casewise scores: ``A r`` and ``(A r r' A - A) / 2`` with ``r = y_o - mu_o``.

The information matrices the optimizer and inference need are ``Delta' I Delta`` (Delta the
Jacobian of the h1 coordinates).  They are computed in parameter space
(:meth:`MissingPatterns.param_information`): each derivative ``dSigma/dtheta_a`` of a RAM model
has rank <= 2 (von Oertzen & Brick 2014), so ``tr(P X_a Q X_b)`` is a sum of products of
bilinear forms of a few vectors, ``O(K q^2 p)`` work instead of the ``O(K p^4 + dim^2 q)`` of
the h1 route (still used where it is cheaper: few variables, many patterns).  The loss also
has the analytic observed Hessian, so the optimizer finishes with Newton steps.

Large data: the rows are grouped by pattern once (bit codes and one sort, no copy of the
data), and each pattern's statistics are accumulated over blocks of its rows with BLAS
cross-products (:meth:`MissingPatterns.from_data`); ``X`` keeps its NaN (no zero-filled copy).

The saturated model (unrestricted mean and covariance) is estimated by the EM algorithm
(Dempster, Laird & Rubin 1977; Little & Rubin 2002, ch. 11) from the pattern statistics, with
lavaan's start values and stopping rule (``lav_mvnorm_missing_h1_estimate_moments``: maximum
absolute change of ``(mu, vech Sigma)`` below 1e-5, at most 500 iterations) so that the
saturated log-likelihood, the chi-square and the EM moments used by the fit measures are
lavaan's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from ..model.matrices import GroupMoments
from .h1 import H1Coordinates, symmetric_rank2

__all__ = ["MissingPatterns", "FIMLGroupLoss", "em_saturated", "H1Coordinates",
           "information_in_parameters", "observed_moments", "symmetric_rank2"]

LOG_2PI = np.log(2 * np.pi)
#: flops of the direct per-pattern products above which the expected information uses the
#: Schur-complement route (:meth:`MissingPatterns._expected_products`)
SCHUR_MIN_FLOPS = 5e7
#: variables from which the per-pattern inverses are computed pattern by pattern with LAPACK
#: (Cholesky) instead of one batched general inverse of the padded matrices
LAPACK_LOOP_MIN_P = 64


# ------------------------------------------------------------------------------- patterns
def _group_patterns(X: np.ndarray, chunk_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Missing-data patterns of the rows of X: ``(mask, order, counts)`` with ``mask`` (K, p)
    the observed indicators of each pattern, ``order`` the row indices sorted by pattern (rows
    of a pattern in their original order) and ``counts`` the rows per pattern.  Patterns are
    coded per block of rows (bit codes for p <= 62, packed bits otherwise) and sorted once."""
    n, p = X.shape
    if p <= 62:
        bits = np.left_shift(np.int64(1), np.arange(p, dtype=np.int64))
        codes = np.empty(n, np.int64)
        for start in range(0, n, chunk_rows):
            codes[start:start + chunk_rows] = np.isnan(X[start:start + chunk_rows]) @ bits
        if n and not codes.any():
            return np.ones((1, p), bool), np.arange(n), np.array([n])
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        first = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        mask = (sorted_codes[first][:, None] & bits[None, :]) == 0
    else:
        width = (p + 7) // 8
        packed = np.empty((n, width), np.uint8)
        for start in range(0, n, chunk_rows):
            packed[start:start + chunk_rows] = np.packbits(
                np.isnan(X[start:start + chunk_rows]), axis=1)
        keys = np.ascontiguousarray(packed).view(np.dtype((np.void, width))).ravel()
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        mask = ~np.unpackbits(packed[order[first]], axis=1, count=p).astype(bool)
    counts = np.diff(np.r_[first, n])
    return mask, order, counts


@dataclass
class MissingPatterns:
    """Missing-data patterns of one group and their sufficient statistics.

    ``X`` the group's data as given (NaN for missing values; not copied); ``mask`` (K, p)
    observed indicators; ``counts`` (K,); ``means`` (K, p) and ``covs`` (K, p, p) the pattern
    means and cross-products (divisor n_k) with zeros for the missing variables; ``order`` the
    rows sorted by pattern and ``bounds`` the slices of ``order``.
    """

    X: np.ndarray
    mask: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    order: np.ndarray
    bounds: np.ndarray

    @classmethod
    def from_data(cls, X: np.ndarray, chunk_rows: Optional[int] = None) -> "MissingPatterns":
        """Group the rows by missing-data pattern once and compute each pattern's count, mean
        and cross-product matrix.

        Large-N path without copies of the data: the pattern of each row is coded in blocks
        of rows (one bit per variable), one sort groups the rows, and each pattern's
        statistics are accumulated over blocks of its rows with BLAS cross-products
        ``X_b' X_b`` of the observed columns (shifted by a provisional mean, so that the
        subtraction of the mean does not lose precision).  Working memory beyond ``X`` is a
        few vectors of length n and one block of rows.
        """
        X = np.asarray(X, dtype=float)
        n, p = X.shape
        if chunk_rows is None:
            chunk_rows = max(256, (1 << 17) // max(p, 1))
        mask, order, counts = _group_patterns(X, chunk_rows)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        K = len(counts)
        means = np.zeros((K, p))
        covs = np.zeros((K, p, p))
        for k in range(K):
            obs = np.flatnonzero(mask[k])
            if len(obs) == 0:
                continue
            rows = order[bounds[k]:bounds[k + 1]]
            contiguous = len(rows) == n  # one pattern: read X in place, block by block
            shift = None
            total = np.zeros(len(obs))
            cross = np.zeros((len(obs), len(obs)))
            for start in range(0, len(rows), chunk_rows):
                if contiguous:
                    block = X[start:start + chunk_rows]
                    if len(obs) < p:
                        block = block[:, obs]
                else:
                    sel = rows[start:start + chunk_rows]
                    block = X[np.ix_(sel, obs)] if len(obs) < p else X[sel]
                if shift is None:
                    shift = block.mean(axis=0)
                if contiguous:
                    block = block - shift
                else:
                    block -= shift  # a gathered copy already
                total += block.sum(axis=0)
                cross += block.T @ block
            nk = float(len(rows))
            dev = total / nk
            means[k, obs] = shift + dev
            covs[k][np.ix_(obs, obs)] = cross / nk - np.outer(dev, dev)
        return cls(X, mask, counts.astype(float), means, covs, order, bounds)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def p(self) -> int:
        return self.mask.shape[1]

    @property
    def n_patterns(self) -> int:
        return len(self.counts)

    @property
    def n_observed(self) -> np.ndarray:
        return self.mask.sum(axis=1)

    def pattern_rows(self, k: int) -> np.ndarray:
        return self.order[self.bounds[k]:self.bounds[k + 1]]

    # -------------------------------------------------------------------------- kernels
    def inverses(self, cov: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """Per pattern ``Sigma_oo^-1`` embedded in (K, p, p) and ``log|Sigma_oo|``; None if
        some ``Sigma_oo`` is not positive definite.  The last result is cached (the optimizer
        asks for the value, gradient and information at the same point)."""
        cached = self.__dict__.get("_last_inverse")
        if cached is not None and np.array_equal(cached[0], cov):
            return cached[1]
        result = self._inverses(cov)
        self.__dict__["_last_inverse"] = (np.array(cov, copy=True), result)
        return result

    def _inverses(self, cov: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
        if self.p >= LAPACK_LOOP_MIN_P:
            return self._inverses_by_pattern(cov)
        mm = self.mask[:, :, None] & self.mask[:, None, :]
        padded = np.where(mm, cov, 0.0)
        idx = np.arange(self.p)
        padded[:, idx, idx] += ~self.mask
        try:
            chol = np.linalg.cholesky(padded)
        except np.linalg.LinAlgError:
            return None
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        inv = np.linalg.inv(padded)
        inv *= mm
        return inv, logdet

    def _inverses_by_pattern(self, cov: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """As :meth:`_inverses`, one pattern at a time with LAPACK's Cholesky factor and
        inverse from it (``potrf`` + ``potri``: p^3 flops, half of a general inverse) on the
        observed block only: faster than the batched general inverse of padded matrices when
        there are many variables."""
        from scipy.linalg.lapack import dpotrf, dpotri
        K, p = self.n_patterns, self.p
        inv = np.zeros((K, p, p))
        logdet = np.empty(K)
        for k in range(K):
            o = np.flatnonzero(self.mask[k])
            full = len(o) == p
            c, info = dpotrf(cov if full else cov[np.ix_(o, o)], lower=1, clean=1)
            if info != 0:
                return None
            logdet[k] = 2.0 * np.log(np.diagonal(c)).sum()
            a, info = dpotri(c, lower=1)
            if info != 0:
                return None
            a = np.tril(a)
            a += np.tril(a, -1).T
            if full:
                inv[k] = a
            else:
                inv[k][np.ix_(o, o)] = a
        return inv, logdet

    def _pieces(self, mean, cov):
        res = self.inverses(cov)
        if res is None:
            return None
        A, logdet = res
        d = (self.means - mean) * self.mask
        T = self.covs + d[:, :, None] * d[:, None, :]
        return A, logdet, d, T

    def loglik(self, mean: np.ndarray, cov: np.ndarray) -> float:
        """FIML log-likelihood (``-inf`` if an observed block is not positive definite)."""
        pieces = self._pieces(mean, cov)
        if pieces is None:
            return -np.inf
        A, logdet, d, T = pieces
        trace = np.einsum("kij,kji->k", A, T)
        return float(-0.5 * self.counts @ (self.n_observed * LOG_2PI + logdet + trace))

    def gradient(self, mean: np.ndarray, cov: np.ndarray):
        """Gradient of ``logL / n`` w.r.t. mu and the (unrestricted, symmetric) Sigma."""
        A, logdet, d, T = self._pieces(mean, cov)
        w = self.counts / self.n
        Ad = np.einsum("kij,kj->ki", A, d)
        g_mu = w @ Ad
        ATA = A @ T @ A
        G = 0.5 * np.einsum("k,kij->ij", w, ATA - A)
        return g_mu, G

    def information(self, coords: H1Coordinates, mean: np.ndarray, cov: np.ndarray,
                    kind: str = "observed") -> np.ndarray:
        """Per-case h1 information ``(dim, dim)`` at (mean, cov): 'observed' (negative
        Hessian of ``logL / n``) or 'expected'."""
        A, logdet, d, T = self._pieces(mean, cov)
        w = self.counts / self.n
        if kind == "expected":
            cc = coords.quadratic(0.5 * w, A, A)
        else:
            # -tr(A X A Y) + tr(ATA X A Y) + tr(A X ATA Y) = f(X, Y) + f(Y, X) with
            # f(X, Y) = tr(B X A Y), B = ATA - A / 2: one K-term form and its transpose
            B = A @ T @ A - 0.5 * A
            cc = coords.quadratic(0.5 * w, B, A)
            cc = cc + cc.T
        if not coords.meanstructure:
            return cc
        p = self.p
        info = np.zeros((coords.dim, coords.dim))
        info[:p, :p] = np.einsum("k,kij->ij", w, A)
        info[p:, p:] = cc
        if kind != "expected":
            u = np.einsum("kij,kj->ki", A, d)
            i, j = coords.rows, coords.cols
            # n A_ai u_j + n A_aj u_i (halved on the diagonal)
            cross = (np.einsum("k,kai,ki->ai", w, A[:, :, i], u[:, j])
                     + np.einsum("k,kaj,kj->aj", w, A[:, :, j], u[:, i])) * coords.half
            info[:p, p:] = cross
            info[p:, :p] = cross.T
        return info

    def param_information(self, mean: np.ndarray, cov: np.ndarray, d_cov: np.ndarray,
                          d_mean: np.ndarray, kind: str = "expected",
                          meanstructure: bool = True) -> Optional[np.ndarray]:
        """Per-case h1 information mapped to q parameters, ``Delta' I Delta``, computed in
        parameter space (no ``(dim, dim)`` h1 matrix, no p^4 work).

        ``d_cov`` (q, p, p) and ``d_mean`` (q, p) are the derivatives of the implied moments.
        Each ``d_cov[a] = sum_i s_ai z_ai z_ai'`` (:func:`symmetric_rank2`), so for symmetric
        P, Q ``tr(P X_a Q X_b) = sum_ij s_ai s_bj (z_ai' Q z_bj)(z_bj' P z_ai)``: with
        ``G^P = Z P Z'`` ((2q, 2q), Z the stacked z) every form is an elementwise product
        ``G^P o G^Q`` summed over 2 x 2 blocks.  Per pattern (weights w_k = n_k / n, A_k the
        embedded ``Sigma_oo^-1``, T_k = S_k + d_k d_k'; Savalei 2010 for the observed
        information under missing data):

        * expected: ``1/2 sum_k w_k tr(A_k X_a A_k X_b) + dmu_a' Abar dmu_b``,
          ``Abar = sum_k w_k A_k``;
        * observed (negative Hessian of logL / n without the second-order term of the
          model): ``1/2 sum_k w_k tr(A_k X_a (2 A_k T_k A_k - A_k) X_b)``, the same mean block
          and the cross terms ``sum_k w_k dmu_b' A_k X_a A_k d_k`` (and transposed).

        For the expected information with many variables, ``G^{A_k}`` comes from
        ``G^{Sigma^-1}`` by the Schur complement ``A_k = P - P_m (P_mm)^-1 P_m'``
        (P = Sigma^-1, m the missing variables), which costs ``(2q)^2 |m|`` per pattern.
        Returns None when some ``d_cov[a]`` has rank above 2 (the caller then uses h1
        coordinates).
        """
        fac = symmetric_rank2(d_cov)
        if fac is None:
            return None
        res = self._pieces(mean, cov)
        if res is None:
            return None
        A, _, d, T = res
        q = d_cov.shape[0]
        # the non-zero factors only (a variance's derivative has rank 1, a mean's is zero),
        # first factors of all parameters, then second factors; owner[x] = parameter of z_x
        Z, sgn = fac
        keep1 = np.flatnonzero(sgn[:, 0])
        keep2 = np.flatnonzero(sgn[:, 1])
        owner = np.concatenate([keep1, keep2])
        Zf = np.concatenate([Z[keep1, 0], Z[keep2, 1]])
        sf = np.concatenate([sgn[keep1, 0], sgn[keep2, 1]])
        nz = len(owner)
        n1 = len(keep1)
        w = self.counts / self.n
        K = self.n_patterns
        step = max(1, int(4_000_000 // max(nz * nz, 1)))
        if kind == "expected":
            acc = self._expected_products(cov, Zf, A, w)
        elif kind == "observed":
            acc = np.zeros((nz, nz))
            for start in range(0, K, step):
                ks = slice(start, start + step)
                ZA = np.matmul(Zf, A[ks])
                GA = ZA @ Zf.T
                GT = ZA @ T[ks] @ ZA.transpose(0, 2, 1)
                GT *= 2.0
                GT -= GA
                GT *= GA
                acc += np.tensordot(w[ks], GT, axes=1)
        else:
            raise ValueError(f"kind must be 'expected' or 'observed', not {kind!r}")
        # info[a, b] = 1/2 sum of s_x s_y acc[x, y] over the factors x of a and y of b
        acc *= sf[:, None]
        acc *= sf[None, :]
        info = np.zeros((q, q))
        for rx, ix in ((slice(0, n1), keep1), (slice(n1, nz), keep2)):
            for ry, iy in ((slice(0, n1), keep1), (slice(n1, nz), keep2)):
                info[np.ix_(ix, iy)] += acc[rx, ry]
        info *= 0.5
        moved = np.flatnonzero(np.any(d_mean, axis=1)) if meanstructure and d_mean.size \
            else np.zeros(0, int)
        if len(moved):  # parameters that move the means (intercepts, paths from covariates)
            dm = d_mean[moved]
            Abar = np.tensordot(w, A, axes=1)
            info[np.ix_(moved, moved)] += dm @ Abar @ dm.T
            if kind == "observed":
                cross = np.zeros((len(moved), nz))
                for start in range(0, K, step):
                    ks = slice(start, start + step)
                    ZA = np.matmul(Zf, A[ks])  # (c, nz, p)
                    F = np.matmul(dm, ZA.transpose(0, 2, 1))  # dmu A_k Z'
                    g = np.einsum("kxp,kp->kx", ZA, d[ks])  # Z A_k d_k
                    cross += np.einsum("k,kbx,kx->bx", w[ks], F, g)
                cross *= sf[None, :]
                C = np.zeros((len(moved), q))  # C[b, a]: mean part of b, covariance part of a
                np.add.at(C.T, owner, cross.T)
                info[moved, :] += C
                info[:, moved] += C.T
        return (info + info.T) / 2

    def _expected_products(self, cov: np.ndarray, Zf: np.ndarray, A: np.ndarray,
                           w: np.ndarray) -> np.ndarray:
        """``sum_k w_k G_k o G_k`` with ``G_k = Z A_k Z'``: batched when small, else one
        pattern at a time from ``G^P = Z Sigma^-1 Z'`` by the Schur complement."""
        q2, p = Zf.shape
        K = self.n_patterns
        missing = p - self.n_observed
        direct_cost = K * (2.0 * q2 * p * p + 2.0 * q2 * q2 * p)
        if direct_cost < SCHUR_MIN_FLOPS or not missing.any():
            acc = np.zeros((q2, q2))
            step = max(1, int(4_000_000 // max(q2 * q2, 1)))
            for start in range(0, K, step):
                ks = slice(start, start + step)
                G = np.matmul(Zf, A[ks]) @ Zf.T
                G *= G
                acc += np.tensordot(w[ks], G, axes=1)
            return acc
        from scipy.linalg import cho_factor, cho_solve, solve_triangular
        try:
            P = cho_solve(cho_factor(cov, lower=True), np.eye(p))
        except np.linalg.LinAlgError:
            P = None
        if P is not None:
            ZP = Zf @ P
            GP = ZP @ Zf.T
        acc = np.zeros((q2, q2))
        G = np.empty((q2, q2))
        for k in range(K):
            miss = np.flatnonzero(~self.mask[k])
            done = False
            if P is not None and len(miss) < p - len(miss):
                try:
                    Lm = np.linalg.cholesky(P[np.ix_(miss, miss)]) if len(miss) else None
                except np.linalg.LinAlgError:
                    Lm = None
                if len(miss) == 0:
                    np.multiply(GP, GP, out=G)
                    done = True
                elif Lm is not None:
                    H = solve_triangular(Lm, ZP[:, miss].T, lower=True)  # H'H = ZP_m P_mm^-1 ZP_m'
                    np.subtract(GP, H.T @ H, out=G)
                    G *= G
                    done = True
            if not done:
                np.matmul(Zf @ A[k], Zf.T, out=G)
                G *= G
            acc += w[k] * G
        return acc

    def score_chunks(self, coords: H1Coordinates, mean: np.ndarray, cov: np.ndarray,
                     chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Casewise scores of ``logL`` w.r.t. the h1 coordinates, in chunks of rows of one
        pattern: yields ``(rows, scores)`` with scores ``(len(rows), dim)``."""
        A, _, _, _ = self._pieces(mean, cov)
        i, j = coords.rows, coords.cols
        for k in range(self.n_patterns):
            rows_k = self.pattern_rows(k)
            for start in range(0, len(rows_k), chunk):
                rows = rows_k[start:start + chunk]
                R = np.where(self.mask[k], self.X[rows] - mean, 0.0)
                U = R @ A[k]
                s_cov = (U[:, i] * U[:, j] - A[k][i, j]) * np.where(coords.diag, 0.5, 1.0)
                if coords.meanstructure:
                    yield rows, np.concatenate([U, s_cov], axis=1)
                else:
                    yield rows, s_cov

    def score_factor(self, coords: H1Coordinates, mean: np.ndarray, cov: np.ndarray,
                     cluster: Optional[np.ndarray] = None,
                     max_rank: Optional[int] = None) -> Optional[np.ndarray]:
        """``J`` of shape (dim, r) with ``first_order(coords, mean, cov, cluster) = J J'``:
        the casewise scores divided by sqrt(n) (r = n), or with ``cluster`` the cluster sums
        of the scores times ``sqrt(C / ((C - 1) n))`` (r = C).  None when r > ``max_rank``
        (then the dense first-order matrix is the cheaper form)."""
        n = self.n
        n_cl = int(cluster.max()) + 1 if cluster is not None else n
        if max_rank is not None and n_cl > max_rank:
            return None
        S = np.zeros((n_cl, coords.dim))
        for rows, sc in self.score_chunks(coords, mean, cov):
            if cluster is None:
                S[rows] = sc
            else:
                np.add.at(S, cluster[rows], sc)
        factor = 1.0 / n if cluster is None else n_cl / (n_cl - 1) / n
        return S.T * np.sqrt(factor)

    def first_order(self, coords: H1Coordinates, mean: np.ndarray, cov: np.ndarray,
                    cluster: Optional[np.ndarray] = None,
                    project: Optional[np.ndarray] = None) -> np.ndarray:
        """First-order (outer product of scores) information per case, ``(dim, dim)``, or
        ``project' B1 project`` when a ``(dim, q)`` projection is given (the scores are then
        projected chunk by chunk, which is much cheaper for q << dim).

        With ``cluster`` (one integer code per row) the scores are first summed within
        clusters and multiplied by ``sqrt(C / (C - 1))`` (lavaan's small-sample factor of
        ``lav_mvnorm_missing_information_firstorder``; Williams 2000)."""
        dim = coords.dim if project is None else project.shape[1]
        chunks = self.score_chunks(coords, mean, cov)
        if project is not None:
            chunks = ((rows, sc @ project) for rows, sc in chunks)
        if cluster is None:
            out = np.zeros((dim, dim))
            for _, sc in chunks:
                out += sc.T @ sc
            return out / self.n
        n_cl = int(cluster.max()) + 1
        sums = np.zeros((n_cl, dim))
        for rows, sc in chunks:
            np.add.at(sums, cluster[rows], sc)
        factor = n_cl / (n_cl - 1)
        return factor * (sums.T @ sums) / self.n


def information_in_parameters(patterns: MissingPatterns, coords: H1Coordinates, mean: np.ndarray,
                              cov: np.ndarray, d_cov: np.ndarray, d_mean: np.ndarray,
                              kind: str = "expected", h1_transform=None,
                              allow_parameter_space: bool = True,
                              route: Optional[str] = None) -> np.ndarray:
    """``Delta' I Delta`` for the h1 information I ('expected' or 'observed') of the patterns
    at (mean, cov), Delta the Jacobian of the h1 coordinates given by ``d_cov``, ``d_mean``.

    In parameter space (:meth:`MissingPatterns.param_information`) unless a derivative matrix
    has rank above 2 or the h1 route is cheaper (few variables and many patterns: the p^4 h1
    work is then below the (2q)^2 p parameter-space work); the h1 route applies
    ``h1_transform`` (e.g. zeroing fixed-covariate coordinates) to I.  ``route`` forces
    'parameters' or 'h1' (both give the same numbers; for tests and benchmarks)."""
    q, p, K = d_cov.shape[0], patterns.p, patterns.n_patterns
    dim = coords.dim
    param_cost = 2.0 * K * (2 * q) ** 2 * p + 10.0 * q * p * p
    h1_cost = 2.0 * K * p ** 4 + 2.0 * dim * dim * q
    use_parameters = param_cost <= h1_cost if route is None else route == "parameters"
    if allow_parameter_space and use_parameters:
        out = patterns.param_information(mean, cov, d_cov, d_mean, kind, coords.meanstructure)
        if out is not None:
            return out
    delta = coords.delta(d_cov, d_mean)
    info = patterns.information(coords, mean, cov, kind)
    if h1_transform is not None:
        info = h1_transform(info)
    return delta.T @ info @ delta


# ------------------------------------------------------------------------------------ EM
def observed_moments(patterns: MissingPatterns) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (divisor: the number of observed values) of each variable over its
    observed values, from the pattern statistics (no pass over the rows): with n_k, m_k and
    S_k the pattern counts, means and cross-products, ``mean_j = sum_k n_k m_kj / n_j`` and
    ``var_j = sum_k n_k (S_k,jj + (m_kj - mean_j)^2) / n_j`` over the patterns observing j.
    NaN for a variable that is never observed."""
    n_k = patterns.counts[:, None] * patterns.mask
    n_obs = n_k.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (n_k * patterns.means).sum(axis=0) / n_obs
        dev = np.where(patterns.mask, patterns.means - mean, 0.0)
        var = (n_k * (np.diagonal(patterns.covs, axis1=1, axis2=2) + dev ** 2)).sum(axis=0) / n_obs
    return mean, var


def em_saturated(patterns: MissingPatterns, tol: float = 1e-5, max_iter: int = 500):
    """EM estimates of the unrestricted mean and covariance (lavaan's start and stopping rule).

    E-step per pattern with ``B_k = Sigma A_k`` (A_k the embedded ``Sigma_oo^-1``):
    ``E[y | y_o] = mu + B_k (y - mu)_o`` and ``Cov[y | y_o] = Sigma - Sigma A_k Sigma``, so the
    expected cross-products of a pattern are ``B_k S_k B_k' + e_k e_k' + Cov`` with
    ``e_k = mu + B_k (ybar_k - mu)``.  Returns ``(mean, cov, iterations)``.
    """
    mu, var = observed_moments(patterns)
    var = np.where(np.isfinite(var) & (var > 0), var, 1.0)
    sigma = np.diag(var)
    w = patterns.counts / patterns.n
    it = 0
    for it in range(1, max_iter + 1):
        res = patterns.inverses(sigma)
        if res is None:
            raise np.linalg.LinAlgError("EM: a pattern's covariance is not positive definite")
        A = res[0]
        B = sigma @ A  # (K, p, p)
        r = (patterns.means - mu) * patterns.mask
        e = mu + np.einsum("kij,kj->ki", B, r)
        cond = sigma - B @ sigma
        second = B @ patterns.covs @ B.transpose(0, 2, 1) + e[:, :, None] * e[:, None, :] + cond
        mu_new = w @ e
        sigma_new = np.einsum("k,kij->ij", w, second) - np.outer(mu_new, mu_new)
        sigma_new = (sigma_new + sigma_new.T) / 2
        if np.linalg.eigvalsh(sigma_new).min() < 1e-6:
            sigma_new[np.diag_indices_from(sigma_new)] += np.diag(sigma_new).max() * 1e-8
        il = np.tril_indices(len(mu))
        delta = max(np.abs(mu_new - mu).max(), np.abs(sigma_new[il] - sigma[il]).max())
        mu, sigma = mu_new, sigma_new
        if delta < tol:
            break
    return mu, sigma, it


# ------------------------------------------------------------------------------ group loss
class FIMLGroupLoss:
    """FIML discrepancy of one group, with the interface of :class:`~.estimator.MLGroupLoss`.

    ``value(mom) = (logL_saturated - logL(mom)) / n`` so that ``2 n value`` is the group's
    likelihood-ratio statistic against the EM saturated model (lavaan's FIML ``fmin``).
    ``derivatives`` returns its gradient and the expected information per case.
    """

    meanstructure = True

    def __init__(self, X: np.ndarray, em_tol: float = 1e-5, em_max_iter: int = 500):
        from .threads import blas_single_thread
        with blas_single_thread():  # tall-thin products: threads only contend
            self.patterns = MissingPatterns.from_data(X)
            self.mean, self.cov, self.em_iterations = em_saturated(self.patterns, em_tol,
                                                                    em_max_iter)
            self.saturated_loglik = self.patterns.loglik(self.mean, self.cov)
        self.nobs = self.patterns.n
        self.p = self.patterns.p
        self.coords = H1Coordinates(self.p, meanstructure=True)
        self.complete = self.patterns.n_patterns == 1 and bool(self.patterns.mask.all())

    def saturated_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """EM estimates ``(cov, mean)`` of the unrestricted model."""
        return self.cov, self.mean

    def loglik(self, mom: GroupMoments) -> float:
        return self.patterns.loglik(mom.mean, mom.cov)

    def value(self, mom: GroupMoments) -> float:
        ll = self.patterns.loglik(mom.mean, mom.cov)
        if not np.isfinite(ll):
            return np.inf
        return (self.saturated_loglik - ll) / self.nobs

    def derivatives(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                    info: bool = True):
        """Gradient of ``value`` and the expected information per case (in parameter space,
        :meth:`MissingPatterns.param_information`)."""
        g_mu, G = self.patterns.gradient(mom.mean, mom.cov)
        q = d_cov.shape[0]
        grad = -(d_cov.reshape(q, -1) @ G.ravel() + d_mean @ g_mu)
        if not info:
            return grad, None
        return grad, self.parameter_information(mom, d_cov, d_mean, "expected")

    def parameter_information(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                              kind: str = "expected") -> np.ndarray:
        """``Delta' I Delta`` for the h1 information I ('expected' or 'observed') at the
        implied moments (:func:`information_in_parameters`)."""
        return information_in_parameters(self.patterns, self.coords, mom.mean, mom.cov, d_cov,
                                         d_mean, kind)

    def hessian(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                second) -> np.ndarray:
        """Observed Hessian of ``value`` (so the optimizer finishes with Newton steps): the
        observed h1 information mapped to the parameters plus the model's second-order term
        ``second(W, r)`` with ``W = -G`` and ``r = g_mu / 2`` for the gradient (g_mu, G) of
        ``logL / n`` (Savalei 2010; Magnus & Neudecker 1999)."""
        H = self.parameter_information(mom, d_cov, d_mean, "observed")
        g_mu, G = self.patterns.gradient(mom.mean, mom.cov)
        H = H + second(-G, 0.5 * g_mu)
        return (H + H.T) / 2

    def h1_information(self, mean, cov, kind="observed") -> np.ndarray:
        return self.patterns.information(self.coords, mean, cov, kind)


# ------------------------------------------------------------------------------- data
def prepare_data_fixed_x(data, variables, *, group=None, cluster=None, where=None,
                         group_labels=None):
    """FIML data with fixed exogenous covariates: rows with a missing covariate are dropped
    (with a warning), as lavaan 0.6 does for ``missing = "ml"`` with ``fixed.x = TRUE`` (the
    covariates are conditioned on, so their values must be known).  The rest as
    :func:`sem_models.estimation.data.prepare_data`; dropped rows are counted in ``n_dropped``."""
    import warnings

    from .data import prepare_data

    x_names = list(variables.ov_x)
    present = [v for v in x_names if v in data.columns]
    missing_x = data[present].isna().any(axis=1).to_numpy() if present else \
        np.zeros(len(data), bool)
    keep = ~missing_x
    sub = data.loc[keep] if missing_x.any() else data
    obs = prepare_data(sub, variables.ov, group=group, missing="fiml", cluster=cluster,
                       where=where, group_labels=group_labels)
    if missing_x.any():
        n_x = int(missing_x.sum())
        warnings.warn(
            f"{n_x} of {len(data)} rows were not used: missing values in the exogenous "
            f"covariate(s) {present} with fixed_x=True (as lavaan); use fixed_x=False to model "
            "the covariates and keep these rows under FIML", UserWarning, stacklevel=4)
        positions = np.flatnonzero(keep)
        for gd in obs.groups:
            gd.row_index = positions[gd.row_index]
        obs.n_dropped += n_x
        reason = f"{n_x} with missing exogenous covariates {present} (fixed_x=True)"
        obs.drop_reason = "; ".join(r for r in (obs.drop_reason, reason) if r)
        obs.n_rows_input = len(data)
    return obs
