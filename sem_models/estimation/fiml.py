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

__all__ = ["MissingPatterns", "FIMLGroupLoss", "em_saturated", "H1Coordinates"]

LOG_2PI = np.log(2 * np.pi)


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
        ``c_a c_b (P_jk Q_li + P_jl Q_ki + P_ik Q_lj + P_il Q_kj)`` (c = 1/2 on the diagonal),
        summed over the stacked (K, p, p) matrices P, Q with one matrix product.
        """
        p = self.p
        K = P.shape[0]
        # M[(c, s), (t, r)] = sum_k w_k P_k[c, s] Q_k[t, r]
        M = (P.reshape(K, p * p) * weights[:, None]).T @ Q.reshape(K, p * p)
        M = M.reshape(p, p, p, p)  # [c, s, t, r]
        i, j = self.rows[:, None], self.cols[:, None]
        k, l = self.rows[None, :], self.cols[None, :]
        out = M[j, k, l, i] + M[j, l, k, i] + M[i, k, l, j] + M[i, l, k, j]
        return out * np.outer(self.half, self.half)


# ------------------------------------------------------------------------------- patterns
@dataclass
class MissingPatterns:
    """Missing-data patterns of one group and their sufficient statistics.

    ``mask`` (K, p) observed indicators; ``counts`` (K,); ``means`` (K, p) and ``covs``
    (K, p, p) the pattern means and cross-products (divisor n_k) with zeros for the missing
    variables; ``order`` the rows sorted by pattern and ``bounds`` the slices of ``order``.
    """

    X: np.ndarray
    mask: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    order: np.ndarray
    bounds: np.ndarray

    @classmethod
    def from_data(cls, X: np.ndarray) -> "MissingPatterns":
        X = np.asarray(X, float)
        n, p = X.shape
        observed = ~np.isnan(X)
        if observed.all():
            mask = np.ones((1, p), bool)
            inverse = np.zeros(n, int)
            counts = np.array([n])
        else:
            # patterns as integers (bit codes) for a fast unique; fall back to rows for p > 62
            if p <= 62:
                codes = observed @ (1 << np.arange(p, dtype=np.int64))
                uniq, first, inverse, counts = np.unique(codes, return_index=True,
                                                         return_inverse=True, return_counts=True)
                mask = observed[first]
            else:
                mask, inverse, counts = np.unique(observed, axis=0, return_inverse=True,
                                                  return_counts=True)
            inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        K = len(counts)
        means = np.zeros((K, p))
        covs = np.zeros((K, p, p))
        Xf = np.where(observed, X, 0.0)
        for k in range(K):
            rows = order[bounds[k]:bounds[k + 1]]
            Xk = Xf[rows]
            m = Xk.mean(axis=0)
            Xc = (Xk - m) * mask[k]
            means[k] = m * mask[k]
            covs[k] = Xc.T @ Xc / len(rows)
        return cls(Xf, mask, counts.astype(float), means, covs, order, bounds)

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
            ATA = A @ T @ A
            P = np.concatenate([A, A, ATA])
            Q = np.concatenate([A, ATA, A])
            cc = coords.quadratic(np.concatenate([-0.5 * w, 0.5 * w, 0.5 * w]), P, Q)
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
                R = (self.X[rows] - mean) * self.mask[k]
                U = R @ A[k]
                s_cov = (U[:, i] * U[:, j] - A[k][i, j]) * np.where(coords.diag, 0.5, 1.0)
                if coords.meanstructure:
                    yield rows, np.concatenate([U, s_cov], axis=1)
                else:
                    yield rows, s_cov

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


# ------------------------------------------------------------------------------------ EM
def em_saturated(patterns: MissingPatterns, tol: float = 1e-5, max_iter: int = 500):
    """EM estimates of the unrestricted mean and covariance (lavaan's start and stopping rule).

    E-step per pattern with ``B_k = Sigma A_k`` (A_k the embedded ``Sigma_oo^-1``):
    ``E[y | y_o] = mu + B_k (y - mu)_o`` and ``Cov[y | y_o] = Sigma - Sigma A_k Sigma``, so the
    expected cross-products of a pattern are ``B_k S_k B_k' + e_k e_k' + Cov`` with
    ``e_k = mu + B_k (ybar_k - mu)``.  Returns ``(mean, cov, iterations)``.
    """
    X = patterns.X
    mask_rows = np.zeros_like(X, dtype=bool)
    for k in range(patterns.n_patterns):
        mask_rows[patterns.pattern_rows(k)] = patterns.mask[k]
    n_obs = mask_rows.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = X.sum(axis=0) / n_obs
        var = (((X - mu) * mask_rows) ** 2).sum(axis=0) / n_obs
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
        self.nobs = self.patterns.n
        self.p = self.patterns.p
        self.coords = H1Coordinates(self.p, meanstructure=True)
        self.saturated_loglik = self.patterns.loglik(self.mean, self.cov)
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
        """Gradient of ``value`` and the expected information per case."""
        g_mu, G = self.patterns.gradient(mom.mean, mom.cov)
        q = d_cov.shape[0]
        grad = -(d_cov.reshape(q, -1) @ G.ravel() + d_mean @ g_mu)
        if not info:
            return grad, None
        delta = self.coords.delta(d_cov, d_mean)
        E1 = self.patterns.information(self.coords, mom.mean, mom.cov, kind="expected")
        return grad, delta.T @ E1 @ delta

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
