"""The model side of ordinal (ordered categorical) indicators: latent responses, thresholds and
scale factors, as lavaan 0.6-14 parameterises them.

Every ordered variable y_j is the discretised version of a continuous latent response y*_j:
``y_j = k  <=>  tau_j,k < y*_j <= tau_j,k+1`` (Muthen 1984, Psychometrika 49:115-132).  The
structural model holds for y* exactly as for continuous indicators (RAM matrices of
:mod:`sem_models.model.matrices`); what the data identify are the thresholds and the
correlations of the y* *standardised* by the scale factors ``delta_j`` (Muthen & Asparouhov
2002, Mplus Web Note 4; lavaan's ``lav_lisrel_th`` / ``computeSigmaHat``):

    tau*_j,k  = delta_j (tau_j,k - mu_j)         mu = implied mean of y* (nu + Lambda alpha)
    Sigma*    = Delta Sigma Delta                  Delta = diag(delta), 1 for continuous y
    Pi*       = Delta Pi                           slopes on exogenous covariates x

For a continuous variable the "threshold" is minus its mean and its variance is kept; pairs
involving a continuous variable are covariances (lavaan's ``WLS.obs`` layout).

**Parameterizations.**  *delta* (the default): the scale factors are parameters (``~*~`` rows,
fixed to 1 in the first group) and the residual variances of the latent responses are not:
they are set so that ``diag(Sigma) = 1 / delta^2`` (so ``Sigma*`` has unit diagonal).  *theta*:
the residual variances are parameters (``~~`` rows, fixed to 1 in the first group) and
``delta = 1 / sqrt(diag(Sigma))``.  Both give the same fit (Muthen & Asparouhov 2002).

**Exogenous covariates** (lavaan's ``conditional.x``): the statistics are those of y* given
x: ``Sigma = Var(y* | x)``, ``mu`` the intercepts and ``Pi`` the reduced-form slopes.  In RAM
terms (x has no parents) these are the moments of the model with the variances and means of
x set to zero, and ``Pi = (F B)[y, x]`` (Joreskog & Goldberger 1975 for the MIMIC model).

**Derivatives** follow by the chain rule from the RAM Jacobian (``d Sigma``, ``d mu``), with
``d Pi / d A[i, j] = (F B)[y, i] B[j, x]`` and, under delta, the implicit derivative of the
residual variances r (``M r = 1 / delta^2 - c``, ``M_jk = (F B)[j, k]^2``):
``dr = M^-1 (d(1 / delta^2) - d diag(Sigma)|_r)``, ``d Sigma += sum_k dr_k u_k u_k'``.
(lavaan 0.6-14 sets the residual variances in one pass with every ordered residual zeroed,
which is the same when no ordered variable predicts another; when one does, lavaan's implied
variance of the outcome's latent response is not 1 / delta^2 and its standard errors differ
from these, while estimates and test statistics agree.)
Under theta ``d delta_j = -1/2 Sigma_jj^(-3/2) d Sigma_jj``.  Then
``d tau* = d delta (tau - mu) + delta (d tau - d mu)``,
``d Sigma*_ij = (d delta_i delta_j + delta_i d delta_j) Sigma_ij + delta_i delta_j d Sigma_ij``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..errors import ModelError
from .matrices import Cells, GroupMoments, RAMModel, _total_effects
from .partable import ModelVariables, ParTable

__all__ = ["OrdinalSpec", "OrdinalModel", "LatentMoments", "OrdinalCells",
           "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("delta", "theta")


@dataclass
class OrdinalSpec:
    """The ordered variables of a model: ``nthresholds`` (variable -> number of thresholds,
    categories - 1, in any order), the ``parameterization`` and whether the exogenous
    covariates are conditioned on (lavaan's ``conditional.x``).

    The parameter table (:func:`~sem_models.model.partable.build_partable`, ``ordinal=``) asks
    it for the rows lavaan 0.6-14 adds (``lav_partable_flat``): thresholds ``x | t1`` ...
    (free), residual variances of the latent responses (fixed to 1; under theta free in later
    groups when thresholds are equal across groups), scale factors ``x ~*~ x`` (fixed to 1;
    under delta free in later groups when thresholds are equal) and intercepts fixed to 0.
    """

    nthresholds: dict
    parameterization: str = "delta"
    conditional_x: bool = True

    def __post_init__(self):
        if self.parameterization not in PARAMETERIZATIONS:
            raise ModelError(f"parameterization={self.parameterization!r} is not supported; "
                             f"use 'delta' (the default) or 'theta'")

    def names_in(self, ov: Sequence[str]) -> list[str]:
        """The ordered variables in the order of ``ov``."""
        return [v for v in ov if v in self.nthresholds]

    def threshold_names(self, ov: Sequence[str]) -> list[tuple[str, str]]:
        """``(variable, "t1")`` ... for every threshold, variables in the order of ``ov``."""
        return [(v, f"t{k + 1}") for v in self.names_in(ov)
                for k in range(self.nthresholds[v])]

    def residual_free(self, g: int, group_equal: Sequence[str]) -> bool:
        """Theta: the latent-response residual variances of later groups are free once the
        thresholds are equal across groups (lavaan 0.6-14)."""
        return self.parameterization == "theta" and g > 0 and "thresholds" in group_equal

    def scale_free(self, g: int, group_equal: Sequence[str]) -> bool:
        """Delta: the scale factors of later groups are free once the thresholds are equal."""
        return self.parameterization == "delta" and g > 0 and "thresholds" in group_equal


@dataclass
class LatentMoments(GroupMoments):
    """Implied moments of one group with the latent-response statistics.

    ``cov`` / ``mean`` / ``full_cov`` / ``full_mean``: the RAM moments of all variables with the
    delta-parameterization residual variances in place; ``cond``: the same moments given the
    exogenous covariates (their variances and means set to zero; ``cond is None`` without
    covariates: then the moments themselves); ``sigma`` (py x py) and ``mu`` (py) the
    (conditional) covariance and means of the y variables, ``pi`` (py x nx) the slopes,
    ``delta`` the scale factors, ``tau`` the threshold parameters, ``th`` / ``slopes`` /
    ``cor`` the standardised statistics (``tau*``, ``Pi*``, ``Sigma*``), ``residual`` the
    residual variances of the ordered variables (delta parameterization) and ``m_res``
    the matrix M of their implicit equations.
    """

    cond: Optional[GroupMoments] = None
    sigma: Optional[np.ndarray] = None
    mu: Optional[np.ndarray] = None
    pi: Optional[np.ndarray] = None
    delta: Optional[np.ndarray] = None
    tau: Optional[np.ndarray] = None
    th: Optional[np.ndarray] = None
    slopes: Optional[np.ndarray] = None
    cor: Optional[np.ndarray] = None
    residual: Optional[np.ndarray] = None
    m_res: Optional[np.ndarray] = None
    admissible: bool = True

    @property
    def conditional(self) -> GroupMoments:
        return self if self.cond is None else self.cond


class OrdinalCells:
    """The free parameters of one group: RAM cells, then threshold rows, then scale rows."""

    def __init__(self, ram: Cells, th_rows: np.ndarray, th_pos: np.ndarray,
                 scale_rows: np.ndarray, scale_var: np.ndarray):
        self.ram = ram
        self.th_rows, self.th_pos = th_rows, th_pos
        self.scale_rows, self.scale_var = scale_rows, scale_var
        self.rows = np.concatenate([ram.rows, th_rows, scale_rows]).astype(int)
        self.q = len(self.rows)
        self.group = 0  # set by OrdinalModel.free_rows
        # RAMModel attributes read by code that only needs the counts
        self.n_a, self.n_s, self.n_m = ram.n_a, ram.n_s, ram.n_m
        self.A, self.S, self.M = ram.A, ram.S, ram.M


@dataclass
class _GroupLayout:
    th_rows: np.ndarray         # table row of every threshold entry (-1: a continuous variable)
    th_var: np.ndarray          # y index of every threshold entry
    scale_rows: np.ndarray      # per y variable: the "~*~" row (-1: none)
    resid_rows: np.ndarray      # per ordered variable: its "~~" row (-1: none)
    th_names: list = field(default_factory=list)


class OrdinalModel(RAMModel):
    """:class:`~sem_models.model.matrices.RAMModel` with thresholds and scale factors: the
    implied statistics of the latent responses (:class:`LatentMoments`) and their Jacobian.

    ``spec``: :class:`OrdinalSpec`.  The y variables are the observed variables except the
    exogenous covariates (those, last in ``ov_names``, are conditioned on when
    ``spec.conditional_x``)."""

    def __init__(self, partable: ParTable, variables: ModelVariables, n_groups: int,
                 spec: OrdinalSpec):
        super().__init__(partable, variables, n_groups)
        self.spec = spec
        self.theta = spec.parameterization == "theta"
        ov = self.ov_names
        x_names = list(variables.ov_x) if spec.conditional_x else []
        self.x_idx = np.array([ov.index(v) for v in x_names], int)
        self.y_idx = np.array([k for k, v in enumerate(ov) if v not in x_names], int)
        self.y_names = [ov[k] for k in self.y_idx]
        self.py, self.nx = len(self.y_idx), len(self.x_idx)
        self.ordered = np.array([v in spec.nthresholds for v in self.y_names], bool)
        self.ord_y = np.flatnonzero(self.ordered)          # positions among y
        self.ord_var = self.y_idx[self.ord_y]              # RAM indices
        # row of every (lhs, op, rhs, group) of the table: one pass over its rows
        where = {key: r for r, key in enumerate(zip(
            partable["lhs"].tolist(), partable["op"].tolist(), partable["rhs"].tolist(),
            partable["group"].tolist()))}
        self.layouts: list[_GroupLayout] = []
        for g in range(n_groups):
            th_rows, th_var, names = [], [], []
            for j, v in enumerate(self.y_names):
                if not self.ordered[j]:
                    th_rows.append(-1)
                    th_var.append(j)
                    names.append(f"{v}~1")
                    continue
                for k in range(spec.nthresholds[v]):
                    r = where.get((v, "|", f"t{k + 1}", g + 1))
                    if r is None:
                        raise ModelError(f"threshold {v}|t{k + 1} is missing from the "
                                         "parameter table")
                    th_rows.append(r)
                    th_var.append(j)
                    names.append(f"{v}|t{k + 1}")
            scale = np.array([where.get((v, "~*~", v, g + 1), -1) for v in self.y_names], int)
            resid = np.array([where.get((self.y_names[j], "~~", self.y_names[j], g + 1), -1)
                              for j in self.ord_y], int)
            self.layouts.append(_GroupLayout(np.array(th_rows, int), np.array(th_var, int),
                                             scale, resid, names))
        self.n_th = len(self.layouts[0].th_rows) if self.layouts else 0

    # ------------------------------------------------------------------------- moments
    def moments(self, values: np.ndarray, g: int) -> LatentMoments:
        A, S, M = self.matrices(values, g)
        B = _total_effects(A, self._path_orders[g])
        p = self.n_ov
        lay = self.layouts[g]
        y, x, k = self.y_idx, self.x_idx, self.ord_var
        if self.nx:
            S_c, M_c = S.copy(), M.copy()
            S_c[x, :] = 0.0
            S_c[:, x] = 0.0
            M_c[x] = 0.0
        else:
            S_c, M_c = S, M
        delta = np.ones(self.py)
        residual = m_res = None
        admissible = True
        if not self.theta and len(k):
            has_scale = lay.scale_rows[self.ord_y] >= 0
            delta[self.ord_y[has_scale]] = values[lay.scale_rows[self.ord_y[has_scale]]]
            S_c = S_c.copy() if S_c is S else S_c
            S_c[k, k] = 0.0
            FB_k = B[k][:, :]
            c = np.einsum("ij,jk,ik->i", FB_k, S_c, FB_k)  # diag(B S0 B') at the ordered rows
            m_res = B[np.ix_(k, k)] ** 2
            with np.errstate(divide="ignore", invalid="ignore"):
                target = 1.0 / delta[self.ord_y] ** 2 - c
            if np.allclose(m_res, np.eye(len(k))):
                residual = target
            else:
                residual = np.linalg.solve(m_res, target)
            S_c[k, k] = residual
            if S is not S_c:
                S = S.copy()
                S[k, k] = residual
        full_c = B @ S_c @ B.T
        mean_c = B @ M_c
        if self.nx:
            full, full_mean = B @ S @ B.T, B @ M
        else:
            full, full_mean = full_c, mean_c
        sigma = full_c[np.ix_(y, y)]
        mu = mean_c[y]
        pi = B[np.ix_(y, x)] if self.nx else np.zeros((self.py, 0))
        if self.theta and len(k):
            d = np.diag(sigma)[self.ord_y]
            admissible = bool(np.all(d > 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                delta[self.ord_y] = 1.0 / np.sqrt(np.where(d > 0, d, np.nan))
        tau = np.where(lay.th_rows >= 0, values[np.maximum(lay.th_rows, 0)], 0.0)
        dv = delta[lay.th_var]
        th = np.where(lay.th_rows >= 0, dv * (tau - mu[lay.th_var]), -mu[lay.th_var])
        cor = delta[:, None] * sigma * delta[None, :]
        slopes = delta[:, None] * pi
        if residual is not None and not np.all(np.isfinite(residual)):
            admissible = False
        cond = None
        if self.nx:
            cond = GroupMoments(full_c[:p, :p], mean_c[:p], B, full_c, mean_c)
        return LatentMoments(full[:p, :p], full_mean[:p], B, full, full_mean, cond=cond,
                             sigma=sigma, mu=mu, pi=pi, delta=delta, tau=tau, th=th,
                             slopes=slopes, cor=cor, residual=residual, m_res=m_res,
                             admissible=admissible)

    # ------------------------------------------------------------------------- Jacobian
    def free_rows(self, g: int, free_mask: np.ndarray) -> OrdinalCells:
        ram = super().free_rows(g, free_mask)
        lay = self.layouts[g]
        th_sel = np.flatnonzero((lay.th_rows >= 0) & free_mask[np.maximum(lay.th_rows, 0)])
        scale_sel = np.flatnonzero((lay.scale_rows >= 0)
                                   & free_mask[np.maximum(lay.scale_rows, 0)])
        if self.theta and len(scale_sel):
            raise ModelError("the scale factors (~*~) cannot be free parameters under "
                             "parameterization='theta' (there delta = 1 / sd of the latent "
                             "response); free the residual variances instead, or use "
                             "parameterization='delta'")
        cells = OrdinalCells(ram, lay.th_rows[th_sel], th_sel, lay.scale_rows[scale_sel],
                             scale_sel)
        cells.group = g
        return cells

    def jacobian(self, mom: LatentMoments, cells):
        """``(rows, d_cor, d_ext)``: derivatives of ``Sigma*`` (q x py x py) and of
        ``(tau*, vec(Pi*))`` (q x (n_th + py nx), the slopes column by column) for the
        parameters of ``cells`` (:class:`OrdinalCells`, or RAM :class:`Cells` of parameters
        not in the model, e.g. for modification indices) in ``cells.rows`` order."""
        if not isinstance(cells, OrdinalCells):
            empty = np.zeros(0, int)
            cells = OrdinalCells(cells, empty, empty, empty, empty)
        ram = cells.ram
        _, d_cov, d_mean = super().jacobian(mom.conditional, ram)
        q, qr = cells.q, ram.q
        py, nx = self.py, self.nx
        y, x = self.y_idx, self.x_idx
        lay = self._layout_of(cells)
        dS = np.zeros((q, py, py))
        dS[:qr] = d_cov[:, y][:, :, y]
        dmu = np.zeros((q, py))
        dmu[:qr] = d_mean[:, y]
        ddelta = np.zeros((q, py))
        n_th = len(lay.th_rows)
        dtau = np.zeros((q, n_th))
        n_t = len(cells.th_rows)
        if n_t:
            dtau[qr + np.arange(n_t), cells.th_pos] = 1.0
        dpi = np.zeros((q, py, nx))
        if nx and ram.n_a:
            ai, aj = ram.A[1], ram.A[2]
            # d B / d A[i, j] = B[:, i] B[j, :]
            dpi[:ram.n_a] = mom.B[np.ix_(y, ai)].T[:, :, None] * mom.B[np.ix_(aj, x)][:, None, :]
        ords = self.ord_y
        if len(ords):
            if not self.theta:
                n_s = len(cells.scale_rows)
                if n_s:
                    ddelta[qr + n_t + np.arange(n_s), cells.scale_var] = 1.0
                d_inv2 = -2.0 * ddelta[:, ords] / mom.delta[ords] ** 3
                rhs = d_inv2 - dS[:, ords, ords]
                if mom.m_res is not None and not np.allclose(mom.m_res, np.eye(len(ords))):
                    dr = np.linalg.solve(mom.m_res, rhs.T).T
                    U = mom.B[np.ix_(y, self.ord_var)]
                    dS += np.einsum("qk,ik,jk->qij", dr, U, U)
                else:
                    dS[:, ords, ords] += rhs
            else:
                d = np.diag(mom.sigma)[ords]
                ddelta[:, ords] = -0.5 * dS[:, ords, ords] / d ** 1.5
        delta = mom.delta
        tv = lay.th_var
        is_th = lay.th_rows >= 0
        dth = np.where(is_th[None, :],
                       ddelta[:, tv] * (mom.tau - mom.mu[tv])[None, :]
                       + delta[tv][None, :] * (dtau - dmu[:, tv]),
                       -dmu[:, tv])
        dslopes = ddelta[:, :, None] * mom.pi[None, :, :] + delta[None, :, None] * dpi
        dcor = ((ddelta[:, :, None] * delta[None, None, :]
                 + delta[None, :, None] * ddelta[:, None, :]) * mom.sigma[None, :, :]
                + (delta[:, None] * delta[None, :])[None, :, :] * dS)
        d_ext = np.concatenate([dth, dslopes.transpose(0, 2, 1).reshape(q, -1)], axis=1)
        return cells.rows, dcor, d_ext

    def _layout_of(self, cells: OrdinalCells) -> _GroupLayout:
        return self.layouts[getattr(cells, "group", 0)]

    def second_order_terms(self, *args, **kwargs):  # pragma: no cover - not used
        raise NotImplementedError("ordinal models have no analytic Hessian (Gauss-Newton)")

    # ------------------------------------------------------------------------- results
    def derived_values(self, values: np.ndarray) -> np.ndarray:
        """``values`` with the rows lavaan computes filled in: under delta the residual
        variances of the ordered variables' latent responses, under theta the scale
        factors (``1 / sd``), as in lavaan's ``parTable(fit)$est``."""
        out = values.copy()
        for g, lay in enumerate(self.layouts):
            mom = self.moments(values, g)
            if not self.theta and mom.residual is not None:
                ok = lay.resid_rows >= 0
                out[lay.resid_rows[ok]] = mom.residual[ok]
            elif self.theta:
                ok = lay.scale_rows[self.ord_y] >= 0
                out[lay.scale_rows[self.ord_y][ok]] = mom.delta[self.ord_y][ok]
        return out

