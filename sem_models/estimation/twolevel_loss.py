"""Two-level ML as a loss family: the model's two blocks per group and the two-level loss.

A two-level model has, per group, one RAM model per level (:mod:`sem_models.model.levels`):
level 1 gives the within moments ``(mu_W, Sigma_W)`` over the level-1 variables, level 2 the
between moments ``(mu_B, Sigma_B)`` over the level-2 variables.  The likelihood
(:mod:`sem_models.estimation.twolevel`: McDonald & Goldstein 1989 by cluster size; Rosseel
2021 with missing values) depends on both, so one group's loss sees both blocks at once.

:class:`TwoLevelModel` lets the optimizer's :class:`~.optimizer.Problem` treat the pair as one
group without change: ``moments(values, g)`` returns a :class:`LevelMoments` (both blocks'
RAM moments and the level moments in the core's coordinates), ``free_rows`` the cells of both
blocks, and ``jacobian`` returns, in the ``d_cov`` slot, the Jacobian of the moment vector
``[mu_W, vech Sigma_W, mu_B, vech Sigma_B]`` with respect to the group's free parameters
(lavaan's ``Delta``; block diagonal, the levels having no parameter in common) and ``None`` in
the ``d_mean`` slot.  :class:`TwoLevelLoss` implements
:class:`~sem_models.estimation.loss.GroupLoss` on that input:

    F_g = -(logL_g + c_g) / N_g,   c_g = (N_g p_1 + J_g p_z) log(2 pi) / 2

(lavaan's ``estimator.2L``: minus the log-likelihood without its 2 pi constant per case, so
``fmin`` equals lavaan's), gradient ``-Delta' dlogL/dm / N_g`` (chain rule through both levels)
and the expected information ``Delta' I(m) Delta / N_g`` for Fisher scoring (Lee & Jennrich
1979).  With complete data the loss is a :class:`TwoLevelHessianLoss`: it also has the
analytic observed Hessian (:mod:`.twolevel_hessian`, chained through ``Delta`` plus the RAM
second-order term, :meth:`TwoLevelModel.second_order_terms`), with which the optimizer ends
with Newton steps and the standard errors need no numerical differentiation.  With missing
values the curvature used for scoring is the expected information of complete data with the
same cluster sizes (an upper bound of the observed-data information:
the steps are conservative, the gradient exact).

Where an implied marginal covariance matrix is not positive definite (``Sigma_W``, or
``Sigma_B + Sigma_W / n`` for some cluster size n) the log-likelihood is -inf: the loss is
+inf and its derivatives NaN, never an exception, so the optimizer's line search backs off.
The quantities the value and the gradient share (per-size factorisations, or the missing-data
E-step) are computed once per moments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Optional

import numpy as np

from ..model.levels import BlockView
from ..model.matrices import GroupMoments, RAMModel
from .twolevel import (LOG_2PI, TwoLevelData, TwoLevelMoments, _vech, between_quantities,
                       twolevel_gradient, twolevel_information_expected, twolevel_loglik)

__all__ = ["LevelMoments", "TwoLevelModel", "TwoLevelLoss", "TwoLevelHessianLoss",
           "twolevel_loss", "expected_information_sizes"]


@dataclass
class LevelMoments:
    """Implied moments of one group of a two-level model: the RAM moments of the within and
    the between block (over all variables) and the level moments ``tl`` over each level's
    variables in the data's order (:class:`~.twolevel.TwoLevelMoments`)."""

    within: GroupMoments
    between: GroupMoments
    tl: TwoLevelMoments
    cache: dict = field(default_factory=dict, repr=False)  # per-size inverses (complete data)


class _LevelCells:
    """Free cells of both blocks of a group; ``rows`` the table rows (within, then between)."""

    def __init__(self, within, between, group: int):
        self.group = group
        self.within = within
        self.between = between
        self.rows = np.concatenate([within.rows, between.rows]).astype(int)
        self.q = len(self.rows)


class TwoLevelModel:
    """The blocks of a two-level parameter table as one RAM model per block, seen by the
    optimizer as one "group" per group (see the module docstring).

    ``data[g]`` is the :class:`~.twolevel.TwoLevelData` of group g (it fixes the level-1 and
    level-2 variables and their order in the moment vector)."""

    meanstructure = True

    def __init__(self, table, variables, n_groups: int, data: list):
        self.table = table
        self.variables = variables
        self.n_groups = n_groups
        self.ram = RAMModel(BlockView(table), variables, 2 * n_groups)
        self.ov_names = self.ram.ov_names
        self.var_names = self.ram.var_names
        self.n_ov = self.ram.n_ov
        self.n_var = self.ram.n_var
        index = {v: k for k, v in enumerate(self.ram.ov_names)}
        self.data = data
        self._idx = [(np.array([index[v] for v in d.level1_names], int),
                      np.array([index[v] for v in d.level2_names], int)) for d in data]
        self.layouts = [d.layout for d in data]

    def moments(self, values: np.ndarray, g: int) -> LevelMoments:
        w = self.ram.moments(values, 2 * g)
        b = self.ram.moments(values, 2 * g + 1)
        i1, i2 = self._idx[g]
        tl = TwoLevelMoments(w.mean[i1], w.cov[np.ix_(i1, i1)], b.mean[i2],
                             b.cov[np.ix_(i2, i2)])
        return LevelMoments(w, b, tl)

    def free_rows(self, g: int, free_mask: np.ndarray) -> _LevelCells:
        return _LevelCells(self.ram.free_rows(2 * g, free_mask),
                           self.ram.free_rows(2 * g + 1, free_mask), g)

    def delta(self, g: int, mom: LevelMoments, cells: _LevelCells) -> np.ndarray:
        """Jacobian of group g's moment vector (``TwoLevelLayout`` order) w.r.t. the cells."""
        i1, i2 = self._idx[g]
        lay = self.layouts[g]
        qw = cells.within.q
        out = np.zeros((lay.dim, cells.q))
        if qw:
            _, d_cov, d_mean = self.ram.jacobian(mom.within, cells.within)
            out[lay.mu_w, :qw] = d_mean[:, i1].T
            out[lay.sigma_w, :qw] = _vech(d_cov[:, i1][:, :, i1]).T
        if cells.between.q:
            _, d_cov, d_mean = self.ram.jacobian(mom.between, cells.between)
            out[lay.mu_b, qw:] = d_mean[:, i2].T
            out[lay.sigma_b, qw:] = _vech(d_cov[:, i2][:, :, i2]).T
        return out

    def second_order_terms(self, mom: LevelMoments, cells: _LevelCells, W: tuple,
                           r: tuple) -> np.ndarray:
        """Second-order term of the moments in the group's cells (block diagonal: the levels
        share no parameter): ``tr(W_l d2Sigma_l) - 2 r_l' d2mu_l`` per level with ``W = (W_W,
        W_B)``, ``r = (r_W, r_B)`` over all observed variables
        (:meth:`~sem_models.model.matrices.RAMModel.second_order_terms`)."""
        qw = cells.within.q
        out = np.zeros((cells.q, cells.q))
        if qw:
            out[:qw, :qw] = self.ram.second_order_terms(mom.within, cells.within, W[0], r[0])
        if cells.between.q:
            out[qw:, qw:] = self.ram.second_order_terms(mom.between, cells.between, W[1], r[1])
        return out

    def jacobian(self, mom: LevelMoments, cells: _LevelCells):
        """``(rows, Delta, None)``: the optimizer passes ``Delta`` on to the loss."""
        return cells.rows, self.delta(cells.group, mom, cells), None

    def matrices(self, values: np.ndarray, block: int):
        return self.ram.matrices(values, block)


def expected_information_sizes(data: TwoLevelData, m: TwoLevelMoments) -> np.ndarray:
    """Expected information of complete data with the cluster sizes of ``data`` at ``m``
    (the expected information does not depend on the data values; with missing values it is
    the information the data would carry if complete)."""
    if not data.has_missing:
        return twolevel_information_expected(data, m)
    sizes, counts = np.unique(data.cluster_size, return_counts=True)
    shim = SimpleNamespace(
        has_missing=False, p1=data.p1, p2=data.p2, pz=data.pz, layout=data.layout,
        E=data.E, F=data.F, level1_names=data.level1_names, level2_names=data.level2_names,
        nobs=data.nobs, nclusters=data.nclusters,
        size_stats=[SimpleNamespace(n=int(n), m=int(c)) for n, c in zip(sizes, counts)],
        _size_n=sizes.astype(float), _size_m=counts.astype(float), _e_idx=data._e_idx,
        _f_idx=data._f_idx)
    return twolevel_information_expected(shim, m)


class TwoLevelLoss:
    """One group's two-level ML discrepancy ``F_g = -(logL_g + c_g) / N_g`` (module
    docstring); implements :class:`~sem_models.estimation.loss.GroupLoss` with ``d_cov``
    carrying the moment Jacobian ``Delta`` of :class:`TwoLevelModel`."""

    meanstructure = True

    def __init__(self, data: TwoLevelData, h1: Optional[TwoLevelMoments] = None):
        self.data = data
        self.nobs = int(data.nobs)
        if data.has_missing:
            miss = data.missing
            n_values = float(np.sum(miss.nobs_values))
            n_z = float(np.sum(~np.isnan(data.z))) if data.pz else 0.0
        else:
            n_values = float(data.nobs * data.p1)
            n_z = float(data.nclusters * data.pz)
        self.log2pi_const = 0.5 * LOG_2PI * (n_values + n_z)
        self.h1 = h1
        self.cov = None if h1 is None else h1.sigma_w
        self.mean = None if h1 is None else h1.mu_w

    def _between(self, mom: LevelMoments):
        """What the likelihood and its gradient share at ``mom``, computed once per moments:
        the per-size inverses (complete data) or the E-step (missing data); None when a
        marginal covariance matrix is not positive definite there (the loss is then +inf,
        so a line search backs off)."""
        if "bt" not in mom.cache:
            if self.data.has_missing:
                from .twolevel_missing import estep
                mom.cache["bt"] = estep(self.data, mom.tl)
            else:
                try:
                    mom.cache["bt"] = between_quantities(self.data, mom.tl)
                except np.linalg.LinAlgError:
                    mom.cache["bt"] = None
        return mom.cache["bt"]

    def loglik(self, mom: LevelMoments) -> float:
        bt = self._between(mom)
        if bt is None:
            return -np.inf
        if self.data.has_missing:
            return float(bt.loglik)
        return twolevel_loglik(self.data, mom.tl, between=bt)

    def value(self, mom: LevelMoments) -> float:
        ll = self.loglik(mom)
        if not np.isfinite(ll):
            return np.inf
        return -(ll + self.log2pi_const) / self.nobs

    def derivatives(self, mom: LevelMoments, delta: np.ndarray, d_mean=None, info: bool = True):
        bt = self._between(mom)
        if bt is None:   # outside the domain: no gradient (the optimizer sees value inf)
            q = delta.shape[1]
            return np.full(q, np.nan), (np.full((q, q), np.nan) if info else None)
        if self.data.has_missing:
            from .twolevel_missing import gradient_missing
            g = gradient_missing(self.data, mom.tl, bt)
        else:
            g = twolevel_gradient(self.data, mom.tl, between=bt)
        mom.cache["g"] = g      # the moment gradient, for hessian() at the same moments
        grad = -(delta.T @ g) / self.nobs
        if not info:
            return grad, None
        if self.data.has_missing:
            inf = expected_information_sizes(self.data, mom.tl)
        else:
            inf = twolevel_information_expected(self.data, mom.tl, between=bt)
        return grad, delta.T @ inf @ delta / self.nobs


class TwoLevelHessianLoss(TwoLevelLoss):
    """:class:`TwoLevelLoss` of complete data, with the analytic observed Hessian
    (:mod:`.twolevel_hessian`): the optimizer finishes with Newton steps and the observed
    information of the standard errors needs no numerical differentiation.  ``n_ov`` and
    ``embed`` (the level-1 / level-2 variables' positions among the model's observed
    variables) place the moment gradient for the model's second-order term."""

    def __init__(self, data: TwoLevelData, h1: Optional[TwoLevelMoments], n_ov: int,
                 embed: tuple):
        if data.has_missing:
            raise ValueError("the analytic two-level Hessian needs complete data")
        super().__init__(data, h1)
        self.n_ov = int(n_ov)
        self.embed = embed

    def hessian(self, mom: LevelMoments, delta: np.ndarray, d_mean, second) -> np.ndarray:
        """Observed Hessian of ``F_g = -(logL + c) / N``: ``(Delta' I(m) Delta + S) / N`` with
        ``I(m)`` the observed information in moment coordinates
        (:func:`~.twolevel_hessian.twolevel_hessian`) and ``S`` the model's second-order term
        for ``W = dF/dSigma = -G / N``, ``r = -(dF/dmu) / 2 = g_mu / (2 N)`` per level."""
        from .twolevel_hessian import gradient_matrices, twolevel_hessian
        bt = self._between(mom)
        q = delta.shape[1]
        if bt is None:
            return np.full((q, q), np.nan)
        info = twolevel_hessian(self.data, mom.tl, between=bt)
        g = mom.cache.get("g")
        if g is None:
            g = twolevel_gradient(self.data, mom.tl, between=bt)
        g_mw, G_w, g_mb, G_b = gradient_matrices(self.data.layout, g)
        N = float(self.nobs)
        Ws, rs = [], []
        for idx, G, gm in zip(self.embed, (G_w, G_b), (g_mw, g_mb)):
            Wf = np.zeros((self.n_ov, self.n_ov))
            Wf[np.ix_(idx, idx)] = -G / N
            rf = np.zeros(self.n_ov)
            rf[idx] = gm / (2.0 * N)
            Ws.append(Wf)
            rs.append(rf)
        H = delta.T @ info @ delta / N + second(tuple(Ws), tuple(rs))
        return (H + H.T) / 2


def twolevel_loss(data: TwoLevelData, h1: Optional[TwoLevelMoments], model: TwoLevelModel,
                  g: int) -> TwoLevelLoss:
    """Group g's loss: with the analytic Hessian for complete data, else (missing values)
    the loss whose observed Hessian is found numerically."""
    if data.has_missing:
        return TwoLevelLoss(data, h1)
    return TwoLevelHessianLoss(data, h1, model.n_ov, model._idx[g])
