"""Weighted least squares: one group's loss (a loss family) and the continuous-data estimators
GLS, WLS (ADF), DWLS and ULS built on it.

The discrepancy of group g is the weighted distance between a vector of sample statistics
``s`` and the same statistics implied by the model, ``sigma(theta)`` (Browne 1984, eq. 2.9;
Bollen 1989, ch. 4; Muthen 1984 for ordinal data):

    F_g = 1/2 * (N_g - 1) / N_g * (s - sigma)' W (s - sigma)

in lavaan's scaling (``lav_model_objective``: half the quadratic form, times (N_g - 1) / N_g),
so that the minimised ``fmin = sum_g (N_g / N) F_g`` gives the test statistic
``chisq = 2 N fmin = sum_g (N_g - 1) (s_g - sigma_g)' W_g (s_g - sigma_g)``.  With
``Delta = d sigma / d theta`` the gradient is ``-c Delta' W (s - sigma)``
(c = (N_g - 1) / N_g) and the expected information lavaan uses for these estimators
``Delta' W Delta``.

**The plug-in point.**  :class:`WLSGroupLoss` does not know which statistics it compares: it
takes the sample vector ``s``, the weight matrix ``W`` (or the diagonal of a diagonal one), the
asymptotic covariance ``Gamma`` of ``sqrt(N) s`` (for robust SEs and tests) and a *statistics
map* (:class:`StatisticsMap`) that turns the model-implied moments of the group into the same
statistics and gives their Jacobian.  For continuous data the map is
:class:`MomentStatistics` (means, then ``vech(Sigma)`` column-wise, lavaan's ``WLS.obs``
order); for ordinal data it is the map to thresholds and correlations of the latent responses
(a later module), with ``s``, ``W`` and ``Gamma`` from :mod:`.categorical`.  Inference
(:mod:`sem_models.inference.wls_inference`) uses only these pieces.

**Estimators on continuous data** (lavaan 0.6-14's definitions, :func:`wls_losses`):

* ``GLS``: normal-theory weights from the sample covariance S (divisor N),
  ``W = 1/2 D' (S^-1 (x) S^-1) D`` and ``S^-1`` for the means (Browne 1974; lavaan's
  ``lav_samplestats_Gamma_inverse_NT``);
* ``WLS`` (ADF; Browne 1984): ``W = Gamma^-1`` with Gamma the distribution-free asymptotic
  covariance of the sample moments, ``(1/N) sum_i (z_i - zbar)(z_i - zbar)'``,
  ``z_i = (y_i, vech((y_i - ybar)(y_i - ybar)'))`` (lavaan's ``NACOV``; Browne 1984, eq. 3.1-3.4);
* ``DWLS`` (``WLSM``, ``WLSMV``): ``W = diag(1 / diag(Gamma))``;
* ``ULS`` (``ULSM``, ``ULSMV``): ``W = I``.

With fixed exogenous covariates x (``fixed_x``) the statistics of x keep their sample values
(the model reproduces them exactly): their rows and columns of W are zero and Gamma is that
of the moments residualised on x (lavaan's fixed.x Gamma).
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from ..model.matrices import GroupMoments
from .data import DataError
from .h1 import fixed_x_mask

__all__ = [
    "WLS_LOSS_ESTIMATORS", "WLS_BASE", "StatisticsMap", "MomentStatistics", "WLSGroupLoss",
    "WLSHessianGroupLoss", "make_wls_loss", "vech_index", "moment_statistics",
    "normal_theory_weight", "adf_gamma", "weight_from_gamma", "wls_losses",
    "wls_exogenous_values",
]

#: estimators whose loss is :class:`WLSGroupLoss` (MLMV is ML with a robust test: not here)
WLS_LOSS_ESTIMATORS = ("GLS", "WLS", "DWLS", "WLSM", "WLSMV", "ULS", "ULSM", "ULSMV")
#: the weight matrix behind each estimator name (lavaan's ``lavoptions$estimator``)
WLS_BASE = {"GLS": "GLS", "WLS": "WLS", "DWLS": "DWLS", "WLSM": "DWLS", "WLSMV": "DWLS",
            "ULS": "ULS", "ULSM": "ULS", "ULSMV": "ULS"}


# ------------------------------------------------------------------------ statistics maps
@runtime_checkable
class StatisticsMap(Protocol):
    """Model-implied statistics of one group as a function of its implied moments.

    ``value(mom)`` returns the statistics vector (same order as the sample vector ``s``);
    ``jacobian(mom, d_cov, d_mean)`` their derivatives ``(n_stats, q)`` for the q parameters
    whose moment derivatives are ``d_cov`` (q x p x p) and ``d_mean`` (q x p).  A map may also
    define ``second_order(mom, g, second)``: ``sum_s g_s d2 sigma_s / dtheta dtheta'`` for a
    weight vector g over the statistics, given ``second(W, r)`` = the model's
    ``tr(W d2Sigma) - 2 r' d2mu`` (:meth:`~sem_models.model.matrices.RAMModel.second_order_terms`);
    the loss then has an analytic Hessian (Newton steps).
    """

    def value(self, mom: GroupMoments) -> np.ndarray: ...

    def jacobian(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray) -> np.ndarray: ...


def vech_index(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of ``vech`` in lavaan's order: the lower triangle with the
    diagonal, column by column ((1,1), (2,1), ..., (p,1), (2,2), (3,2), ...)."""
    cols, rows = np.triu_indices(p)
    return rows, cols


class MomentStatistics:
    """The continuous-data statistics map: ``(mu, vech(Sigma))`` (means only with a mean
    structure), lavaan's ``WLS.obs`` order.  Linear in the moments, so its second-order term is
    the model's own."""

    def __init__(self, p: int, meanstructure: bool):
        self.p = p
        self.meanstructure = bool(meanstructure)
        self.rows, self.cols = vech_index(p)
        self.offset = p if self.meanstructure else 0
        self.n_stats = self.offset + len(self.rows)
        self.diag = self.rows == self.cols

    def from_moments(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        parts = [np.asarray(mean, float)] if self.meanstructure else []
        return np.concatenate(parts + [np.asarray(cov, float)[self.rows, self.cols]])

    def value(self, mom: GroupMoments) -> np.ndarray:
        return self.from_moments(mom.mean, mom.cov)

    def jacobian(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray) -> np.ndarray:
        cov_part = d_cov[:, self.rows, self.cols]
        if self.meanstructure:
            return np.concatenate([d_mean, cov_part], axis=1).T
        return cov_part.T

    def second_order(self, mom: GroupMoments, g: np.ndarray,
                     second: Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]
                     ) -> np.ndarray:
        """``sum_s g_s d2 sigma_s``: ``tr(G d2Sigma) - 2 r' d2mu`` with G symmetric
        (``G_ii = g_ii``, ``G_ij = G_ji = g_ij / 2``) and ``r = -g_mu / 2``."""
        gv = g[self.offset:]
        G = np.zeros((self.p, self.p))
        half = np.where(self.diag, gv, 0.5 * gv)
        G[self.rows, self.cols] = half
        G[self.cols, self.rows] = half
        r = -0.5 * g[:self.offset] if self.meanstructure else None
        return second(G, r)

    def coordinates(self, x_idx: Sequence[int]) -> np.ndarray:
        """Mask of the statistics that belong to fixed exogenous covariates only."""
        return fixed_x_mask(self, x_idx, self.n_stats)


# -------------------------------------------------------------------------------- the loss
class WLSGroupLoss:
    """``F_g = 1/2 c (s - sigma)' W (s - sigma)`` of one group (c = (N_g - 1) / N_g).

    Parameters: ``statistics`` (s), ``weight`` (W: a matrix, or a vector = the diagonal of a
    diagonal W), ``statistics_map`` (:class:`StatisticsMap`), ``nobs``; keywords ``cov`` and
    ``mean`` (the sample moments the results report: SRMR, residuals), ``meanstructure``,
    ``gamma`` (asymptotic covariance of ``sqrt(N) s``: robust SEs and tests; None if not
    available), ``estimator`` (the name behind W: "GLS", "WLS", "DWLS", "ULS"), ``factor``
    (c; default (N_g - 1) / N_g as lavaan).
    """

    def __init__(self, statistics: np.ndarray, weight: np.ndarray, statistics_map: StatisticsMap,
                 nobs: int, *, cov: np.ndarray, mean: np.ndarray, meanstructure: bool,
                 gamma: Optional[np.ndarray] = None, estimator: str = "WLS",
                 factor: Optional[float] = None):
        self.statistics = np.asarray(statistics, float)
        weight = np.asarray(weight, float)
        n = len(self.statistics)
        if weight.shape not in ((n,), (n, n)):
            raise ValueError(f"the weight matrix has shape {weight.shape} but there are {n} "
                             "statistics")
        self.weight = weight
        self.diagonal = weight.ndim == 1
        self.statistics_map = statistics_map
        self.nobs = int(nobs)
        self.cov = np.asarray(cov, float)
        self.mean = np.asarray(mean, float)
        self.p = self.cov.shape[0]
        self.meanstructure = bool(meanstructure)
        self.gamma = None if gamma is None else np.asarray(gamma, float)
        self.estimator = estimator
        self.factor = (self.nobs - 1) / self.nobs if factor is None else float(factor)

    @property
    def weight_matrix(self) -> np.ndarray:
        """W as a full matrix."""
        return np.diag(self.weight) if self.diagonal else self.weight

    def _apply(self, v: np.ndarray) -> np.ndarray:
        """``W v`` for a vector or the columns of a matrix."""
        if self.diagonal:
            return self.weight[:, None] * v if v.ndim == 2 else self.weight * v
        return self.weight @ v

    def residual(self, mom: GroupMoments) -> np.ndarray:
        """``s - sigma(theta)``."""
        return self.statistics - self.statistics_map.value(mom)

    def value(self, mom: GroupMoments) -> float:
        r = self.residual(mom)
        F = 0.5 * self.factor * float(r @ self._apply(r))
        return F if np.isfinite(F) else np.inf

    def derivatives(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                    info: bool = True):
        """Gradient ``-c Delta' W r`` and the expected information ``Delta' W Delta`` (lavaan's
        information of these estimators: without c, so that score tests match lavaan's; the
        Fisher-scoring step is then c times the Gauss-Newton step, and Newton steps with
        :meth:`WLSHessianGroupLoss.hessian` finish the search)."""
        r = self.residual(mom)
        delta = self.statistics_map.jacobian(mom, d_cov, d_mean)
        grad = -self.factor * (delta.T @ self._apply(r))
        if not info:
            return grad, None
        return grad, delta.T @ self._apply(delta)


class WLSHessianGroupLoss(WLSGroupLoss):
    """:class:`WLSGroupLoss` whose statistics map has second-order terms: analytic Hessian."""

    def hessian(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                second: Callable) -> np.ndarray:
        """``c [Delta' W Delta - sum_s (W r)_s d2 sigma_s]``."""
        r = self.residual(mom)
        delta = self.statistics_map.jacobian(mom, d_cov, d_mean)
        g = -self._apply(r)  # d F / d sigma (without c)
        H = delta.T @ self._apply(delta) + self.statistics_map.second_order(mom, g, second)
        H = self.factor * H
        return 0.5 * (H + H.T)


def make_wls_loss(statistics, weight, statistics_map, nobs, **kwargs) -> WLSGroupLoss:
    """A :class:`WLSHessianGroupLoss` when the map has ``second_order`` (Newton steps), else a
    :class:`WLSGroupLoss` (the optimizer then uses BFGS near the solution)."""
    cls = WLSHessianGroupLoss if hasattr(statistics_map, "second_order") else WLSGroupLoss
    return cls(statistics, weight, statistics_map, nobs, **kwargs)


# ------------------------------------------------------------ continuous-data statistics
def moment_statistics(mean: np.ndarray, cov: np.ndarray, meanstructure: bool) -> np.ndarray:
    """``(mean, vech(cov))`` in lavaan's order (means only with a mean structure)."""
    return MomentStatistics(len(mean), meanstructure).from_moments(mean, cov)


def normal_theory_weight(cov: np.ndarray, meanstructure: bool,
                         x_idx: Sequence[int] = ()) -> np.ndarray:
    """GLS weights: ``1/2 D' (S^-1 (x) S^-1) D`` for ``vech(S)`` and ``S^-1`` for the means
    (Browne 1974), i.e. the inverse of the normal-theory Gamma; rows and columns of fixed
    exogenous covariates zero (lavaan's ``lav_samplestats_Gamma_inverse_NT``).

    Elementwise, for vech elements a = (i, j) and b = (k, l):
    ``W_ab = m_a m_b (A_ik A_jl + A_il A_jk) / 4`` with ``A = S^-1`` and m = 1 on the diagonal,
    2 off it."""
    p = cov.shape[0]
    try:
        A = np.linalg.inv(cov)
    except np.linalg.LinAlgError:
        raise DataError("the sample covariance matrix is singular: GLS weights need its "
                        "inverse (check for linearly dependent or constant variables)") from None
    rows, cols = vech_index(p)
    m = np.where(rows == cols, 1.0, 2.0)
    i, j = rows[:, None], cols[:, None]
    k, l = rows[None, :], cols[None, :]
    W = np.outer(m, m) * (A[i, k] * A[j, l] + A[i, l] * A[j, k]) / 4.0
    if meanstructure:
        W = _block_diag(A, W)
    mask = MomentStatistics(p, meanstructure).coordinates(x_idx)
    if mask.any():  # the x means and the x-x block of vech(S)
        W[mask, :] = 0.0
        W[:, mask] = 0.0
    return W


def adf_gamma(X: np.ndarray, meanstructure: bool, x_idx: Sequence[int] = ()) -> np.ndarray:
    """Distribution-free asymptotic covariance of ``sqrt(N) (mean, vech(S))`` (Browne 1984,
    eq. 3.1-3.4; lavaan's ``NACOV``, divisor N): ``(1/N) sum_i (z_i - zbar)(z_i - zbar)'`` with
    ``z_i = (y_i, vech((y_i - ybar)(y_i - ybar)'))``.  With fixed covariates x the same
    statistics of the values fitted by the OLS regression of the other variables on x are
    subtracted from z_i (residualised moments, lavaan's fixed.x Gamma), which makes the rows
    of the x-only statistics zero."""
    X = np.asarray(X, float)
    n, p = X.shape
    rows, cols = vech_index(p)
    Yc = X - X.mean(axis=0)
    Z = Yc[:, rows] * Yc[:, cols]
    if meanstructure:
        Z = np.concatenate([X, Z], axis=1)
    x_idx = list(x_idx)
    if x_idx:
        nonx = np.setdiff1d(np.arange(p), x_idx)
        design = np.column_stack([np.ones(n), X[:, x_idx]])
        beta = np.linalg.lstsq(design, X[:, nonx], rcond=None)[0]
        fitted = X.copy()
        fitted[:, nonx] = design @ beta
        Fc = fitted - fitted.mean(axis=0)
        ZF = Fc[:, rows] * Fc[:, cols]
        if meanstructure:
            ZF = np.concatenate([fitted, ZF], axis=1)
        Z = Z - ZF
    Zc = Z - Z.mean(axis=0)
    gamma = Zc.T @ Zc / n
    mask = MomentStatistics(p, meanstructure).coordinates(x_idx)
    gamma[mask, :] = 0.0
    gamma[:, mask] = 0.0
    return gamma


def _symmetric_inverse_nonzero(M: np.ndarray) -> np.ndarray:
    """Inverse on the rows / columns that are not identically zero (zeros elsewhere), as
    lavaan's ``lav_matrix_symmetric_inverse``."""
    keep = ~(np.all(M == 0, axis=0) & np.all(M == 0, axis=1))
    out = np.zeros_like(M)
    sub = M[np.ix_(keep, keep)]
    vals, vecs = np.linalg.eigh(sub)
    if vals.min() <= 1e-12 * max(1.0, abs(vals.max())):
        raise np.linalg.LinAlgError("not positive definite")
    out[np.ix_(keep, keep)] = (vecs / vals) @ vecs.T
    return out


def weight_from_gamma(gamma: np.ndarray, estimator: str, where: str = "") -> np.ndarray:
    """The weight matrix of an estimator from Gamma: ``Gamma^-1`` (WLS), the vector
    ``1 / diag(Gamma)`` (DWLS; zero where the diagonal is zero) or a vector of ones (ULS)."""
    if estimator == "WLS":
        try:
            return _symmetric_inverse_nonzero(gamma)
        except np.linalg.LinAlgError:
            raise DataError(
                f"the asymptotic covariance matrix Gamma of the sample statistics{where} is "
                "not positive definite, so estimator='WLS' (ADF) cannot weight by its "
                f"inverse: it needs clearly more cases than the {gamma.shape[0]} sample "
                "statistics and no linearly dependent variables; use estimator='DWLS', "
                "'ULS' or 'MLM' instead") from None
    d = np.diag(gamma).copy()
    if estimator == "DWLS":
        out = np.zeros_like(d)
        nz = d != 0
        out[nz] = 1.0 / d[nz]
        return out
    if estimator == "ULS":
        return np.ones(gamma.shape[0])
    raise ValueError(f"no weight from Gamma for estimator {estimator!r}")


def _block_diag(*mats) -> np.ndarray:
    n = sum(m.shape[0] for m in mats)
    out = np.zeros((n, n))
    k = 0
    for m in mats:
        out[k:k + m.shape[0], k:k + m.shape[0]] = m
        k += m.shape[0]
    return out


def wls_losses(estimator: str, obs, model, variables, fixed_x: bool = True) -> list:
    """The per-group :class:`WLSGroupLoss` of a continuous-data fit (lavaan 0.6-14).

    ``estimator`` is one of :data:`WLS_LOSS_ESTIMATORS`; ``obs`` the observed data
    (:class:`~sem_models.estimation.data.ObservedData`, complete cases), ``model`` the
    :class:`~sem_models.model.matrices.RAMModel`.  Gamma (:func:`adf_gamma`) is computed for
    every estimator but GLS (it feeds the weights of WLS / DWLS and the robust SEs and tests).
    As lavaan (``sample.cov.rescale = FALSE`` for estimators other than ML), the sample
    covariance matrix in ``s`` and in the GLS weights has divisor N - 1; Gamma has divisor N.
    """
    base = WLS_BASE[estimator]
    p = model.n_ov
    ov = list(model.ov_names)
    x_idx = [ov.index(v) for v in variables.ov_x] if fixed_x else []
    smap = MomentStatistics(p, model.meanstructure)
    losses = []
    multi = len(obs.groups) > 1
    for gd in obs.groups:
        where = f" in group {gd.label!r}" if multi else ""
        if gd.nobs < 2:
            raise DataError(f"estimator={estimator!r} needs at least two cases{where}")
        # lavaan's sample.cov.rescale = FALSE for these estimators: S with divisor N - 1
        cov = gd.cov * (gd.nobs / (gd.nobs - 1))
        s = smap.from_moments(gd.mean, cov)
        gamma = None
        if base == "GLS":
            W = normal_theory_weight(cov, model.meanstructure, x_idx)
        else:
            if base == "WLS" and gd.nobs < smap.n_stats:
                raise DataError(
                    f"estimator='WLS' (ADF) needs more cases than sample statistics{where}: "
                    f"{gd.nobs} cases for {smap.n_stats} statistics (means and covariances); "
                    "use estimator='DWLS', 'ULS' or 'MLM' instead")
            if base == "ULS" and not getattr(gd, "has_raw", True):
                W = np.ones(smap.n_stats)  # sample moments only: no Gamma (standard SEs)
            else:
                gamma = adf_gamma(gd.X, model.meanstructure, x_idx)
                W = weight_from_gamma(gamma, base, where)
        losses.append(make_wls_loss(s, W, smap, gd.nobs, cov=cov, mean=gd.mean,
                                    meanstructure=model.meanstructure, gamma=gamma,
                                    estimator=base))
    return losses


def wls_exogenous_values(values: np.ndarray, partable, variables, losses: list) -> np.ndarray:
    """``values`` with the fixed exogenous rows (``exo == 1``: the variances, covariances and
    means of fixed covariates) set from the losses' sample moments (covariance with divisor
    N - 1, as lavaan for these estimators) instead of the ML ones."""
    exo = np.flatnonzero(np.asarray(partable["exo"]) == 1)
    if not len(exo):
        return values
    values = values.copy()
    ov = {v: k for k, v in enumerate(variables.ov)}
    lhs, op, rhs, group = partable["lhs"], partable["op"], partable["rhs"], partable["group"]
    for r in exo:
        loss = losses[int(group[r]) - 1]
        if op[r] == "~1":
            values[r] = loss.mean[ov[lhs[r]]]
        elif op[r] == "~~":
            values[r] = loss.cov[ov[lhs[r]], ov[rhs[r]]]
    return values
