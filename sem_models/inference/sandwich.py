"""Robust inference for ML fits: sandwich standard errors, scaled test statistics, cluster-robust
versions, FIML-corrected robust fit indices and scaled chi-square difference tests.

Everything is written in the coordinates of the unrestricted ("h1") model of each group,
``m_g = (mu, vech Sigma)`` (:class:`~sem_models.estimation.fiml.H1Coordinates`), with ``Delta_g = dm_g / dz``
the Jacobian of the model-implied moments with respect to the reduced parameter vector z of
:mod:`sem_models.model.constraints` (so equality constraints are built in: ``Delta_z = Delta_theta T``
and inverses of information matrices in z equal lavaan's "augmented" inverses).  With
``w_g = N_g / N`` and all information matrices per case:

* **Information** ``E``: expected ``sum_g w_g Delta_g' V_g Delta_g`` (V_g the expected h1
  information at the model-implied moments), observed (the Hessian of the fitting function:
  ``sum_g w_g [Delta_g' H_g Delta_g + sum_s (dF_g/dm_s) d^2 m_s / dz dz']`` with H_g the observed
  h1 information at the implied moments; the second-order term analytic, from the second
  derivatives of the RAM moments in matrix-differential form (Magnus & Neudecker 1999; von
  Oertzen & Brick 2014; :meth:`~sem_models.model.matrices.RAMModel.second_order_terms` with
  ``W = dF_g/dSigma`` and ``r = -(dF_g/dmu) / 2``, then ``T' (.) T``), or "h1" (the first
  term only).
* **Sandwich** (Huber 1967; White 1982): ``vcov = E^-1 B0 E^-1 / N`` with the first-order
  information ``B0 = sum_g w_g Delta_g' B1_g Delta_g``, ``B1_g = (1/N_g) sum_i s_i s_i'`` from the
  casewise scores at the implied moments (``se = "robust.huber.white"``, lavaan's MLR).
  With clusters the scores are first summed within clusters and ``B1`` is multiplied by
  ``C / (C - 1)`` (``se = "robust.cluster"``; Liang & Zeger 1986, Williams 2000, as lavaan's
  single-level ``cluster=``).
* **robust.sem** (Satorra & Bentler 1994; lavaan's MLM): ``vcov = E^-1 (sum_g w_g Delta_g' V_g
  Gamma_g V_g Delta_g) E^-1 / N`` with E expected and ``Gamma_g`` the asymptotic covariance of
  the sample moments (Browne 1984; distribution-free, divisor N_g).
* **Satorra-Bentler** scaled statistic (Satorra & Bentler 1994): ``c = tr(U Gamma) / df``,
  ``U = V - V Delta E^-1 Delta' V`` (per group ``tr(V_g Gamma_g) - w_g tr(V_g Delta_g E^-1
  Delta_g' V_g Gamma_g)``), ``T_scaled = T / c``.
* **Yuan-Bentler** (Mplus variant; Yuan & Bentler 2000, Asparouhov & Muthen 2010, lavaan's
  ``yuan.bentler.mplus``): ``c = sum_g [tr(B1_g A1_g^-1) - w_g tr(Delta_g' B1s_g Delta_g E^-1)]
  / df`` with A1_g and B1_g the information and first-order information of the unrestricted
  model at its own estimates (sample or EM moments) and B1s_g the first-order information at the
  implied moments.  ``scaling_factor_h1`` and ``scaling_factor_h0`` are the two traces divided
  by the number of moments and of parameters.
* **Robust CFI / TLI / RMSEA** (Brosseau-Liard, Savalei & Li 2012; Brosseau-Liard & Savalei
  2014): ``rmsea_robust = sqrt(G) sqrt(max(T / (N df) - c / N, 0))``,
  ``cfi_robust = 1 - max(T - c df, 0) / max(T - c df, Tb - cb dfb, 0)``; under FIML (Zhang &
  Savalei 2023, lavaan's ``lav_fit_fiml_corrected``) T is replaced by the complete-data
  statistic of the model against the EM moments and c by the FIML-corrected factor
  (version "V6" for the standard test, "V3" with a scaled test).
* **Scaled difference tests** (:func:`scaled_difference_test`): Satorra & Bentler (2001),
  Satorra & Bentler (2010) and Satorra (2000), as lavaan's ``lavTestLRT``.
"""
from __future__ import annotations

import warnings
from functools import cached_property
from typing import Optional

import numpy as np

from ..estimation.fiml import (FIMLGroupLoss, H1Coordinates, MissingPatterns,
                               information_in_parameters)
from ..estimation.h1 import fixed_x_mask, zero_coordinates
from .options import _cluster_codes, _se_information_kind

__all__ = ["RobustEvaluator", "robust_vcov"]



def _block_diag(*mats) -> np.ndarray:
    from scipy.linalg import block_diag
    return block_diag(*mats)


def _inverse_nonzero(M: np.ndarray) -> tuple[np.ndarray, int]:
    """Inverse of M on the rows/columns with a non-zero diagonal (zeros elsewhere), as
    lavaan's ``zero.idx`` handling of fixed exogenous covariates; also the size of that block.
    From a Cholesky factorisation when M is positive definite (:class:`H1Factor`)."""
    factor = H1Factor(M)
    return factor.inverse, factor.size


class H1Factor:
    """One factorisation of a symmetric (h1 or parameter) information matrix M, restricted to
    the rows/columns with a non-zero diagonal (lavaan's ``zero.idx``: fixed exogenous
    covariates), shared by every robust piece that needs ``M^-1``: Cholesky ``M = L L'``
    when M is positive definite, else LU.  ``solve(B)`` gives ``M^+ B`` (zero rows where M
    was dropped), ``trace_gram(J)`` gives ``tr(M^+ J J') = ||L^-1 J||_F^2`` and ``inverse``
    the explicit ``M^+`` (from the factor, LAPACK ``potri``), only where a full trace
    ``tr(W M^-1)`` needs it."""

    def __init__(self, M: np.ndarray, drop_zero: bool = True):
        from scipy.linalg import cho_factor, lu_factor
        self.shape = M.shape
        keep = np.abs(np.diag(M)) > 0 if drop_zero else np.ones(M.shape[0], bool)
        self.keep = keep
        self.all = bool(keep.all())
        self.size = int(keep.sum())
        sub = M if self.all else M[np.ix_(keep, keep)]
        try:
            self._chol = cho_factor(sub, lower=True, check_finite=False)
            self._lu = None
        except np.linalg.LinAlgError:
            self._chol = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an exactly singular matrix is raised below
                self._lu = lu_factor(sub, check_finite=False)
            if not np.all(np.isfinite(self._lu[0])) or np.any(np.diag(self._lu[0]) == 0):
                raise np.linalg.LinAlgError("singular information matrix")

    @property
    def positive_definite(self) -> bool:
        return self._chol is not None

    def _solve_sub(self, B: np.ndarray) -> np.ndarray:
        from scipy.linalg import cho_solve, lu_solve
        if self._chol is not None:
            return cho_solve(self._chol, B, check_finite=False)
        return lu_solve(self._lu, B, check_finite=False)

    def solve(self, B: np.ndarray) -> np.ndarray:
        """``M^+ B`` (rows of dropped coordinates are zero)."""
        if self.all:
            return self._solve_sub(B)
        out = np.zeros((self.shape[0],) + B.shape[1:])
        out[self.keep] = self._solve_sub(B[self.keep])
        return out

    def trace_gram(self, J: np.ndarray) -> float:
        """``tr(M^+ J J')`` for a (dim, r) matrix J."""
        Jk = J if self.all else J[self.keep]
        if self._chol is not None:
            from scipy.linalg import solve_triangular
            c, lower = self._chol
            X = solve_triangular(c, Jk, lower=lower, trans=0 if lower else 1,
                                 check_finite=False)
            return float(np.sum(X * X))
        return float(np.sum(Jk * self._solve_sub(Jk)))

    @cached_property
    def inverse(self) -> np.ndarray:
        if self._chol is not None:
            from scipy.linalg.lapack import dpotri
            c, lower = self._chol
            inv, info = dpotri(c, lower=lower)
            if info != 0:
                raise np.linalg.LinAlgError("potri failed")
            inv = np.tril(inv) if lower else np.triu(inv)
            inv = inv + inv.T - np.diag(np.diag(inv))
        else:
            inv = self._solve_sub(np.eye(self.size))
        if self.all:
            return inv
        out = np.zeros(self.shape)
        out[np.ix_(self.keep, self.keep)] = inv
        return out


def _ml_discrepancy(S, m, Sigma, mu, meanstructure) -> float:
    """Complete-data ML discrepancy ``F`` (not halved) of (S, m) against (Sigma, mu)."""
    inv = np.linalg.inv(Sigma)
    F = (np.linalg.slogdet(Sigma)[1] + np.sum(S * inv) - np.linalg.slogdet(S)[1] - len(S))
    if meanstructure:
        d = m - mu
        F += d @ inv @ d
    return float(F)


def _complete_h1_information(coords: H1Coordinates, cov: np.ndarray) -> np.ndarray:
    """Complete-data (expected = observed at the saturated estimates) h1 information."""
    A = np.linalg.inv(cov)[None]
    cc = coords.quadratic(np.array([0.5]), A, A)
    if not coords.meanstructure:
        return cc
    p = coords.p
    out = np.zeros((coords.dim, coords.dim))
    out[:p, :p] = A[0]
    out[p:, p:] = cc
    return out


def _orthogonal_complement(H: np.ndarray) -> np.ndarray:
    """Columns spanning the orthogonal complement of the column space of H."""
    from scipy.linalg import null_space
    return null_space(H.T, rcond=1e-10)


def _second_order_weights(g_mu: np.ndarray, G: np.ndarray,
                          meanstructure: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(W, r)`` with ``tr(W d2Sigma) - 2 r' d2mu = sum_s (dF/dm_s) d2m_s`` for
    ``F = -logL / n``, from the gradient ``(g_mu, G)`` of ``logL / n`` w.r.t. mu and the
    symmetric Sigma (:meth:`~sem_models.estimation.fiml.MissingPatterns.gradient`).

    The h1 gradient of F is ``-(g_mu, vech(G) c)`` with c = 1 on the diagonal and 2 off it
    (:meth:`~sem_models.estimation.fiml.H1Coordinates.gradient`), and for symmetric ``d2Sigma``
    ``sum_{i>=j} c_ij G_ij d2Sigma_ij = tr(G d2Sigma)``: so ``W = -G`` and ``r = g_mu / 2``.
    Without a mean structure the mean is not an h1 coordinate and ``r`` is None."""
    return -G, (0.5 * g_mu if meanstructure else None)


# ------------------------------------------------------------------------------- h1 cache
class _H1Data:
    """Per-fit quantities of the unrestricted model (do not depend on the parameters)."""

    def __init__(self, fit):
        self.fit = fit
        p = fit.model.n_ov
        self.meanstructure = bool(fit.model.meanstructure)
        self.coords = H1Coordinates(p, self.meanstructure)
        self.fiml = fit.options.get("missing") == "fiml"
        self.patterns = []
        self.h1_moments = []
        self.clusters = []
        for g, loss in enumerate(fit.problem.losses):
            gd = fit.data.groups[g]
            if isinstance(loss, FIMLGroupLoss):
                pat = loss.patterns
                mean, cov = loss.mean, loss.cov
            else:
                pat = MissingPatterns.from_data(gd.X)
                mean, cov = pat.means[0].copy(), pat.covs[0].copy()
            self.patterns.append(pat)
            self.h1_moments.append((mean, cov))
            # cluster codes follow the rows of the group's data (as the pattern row indices)
            codes = _cluster_codes(gd.cluster) if fit.options.get("cluster") else None
            self.clusters.append(codes)
        ov = fit.model.ov_names
        fixed_x = fit.options.get("fixed_x", True)
        x_names = list(fit.variables.ov_x) if fixed_x else []
        self.x_idx = [ov.index(v) for v in x_names]
        self.x_coords = self._x_coordinates()

    def _x_coordinates(self, x_idx=None) -> np.ndarray:
        """h1 coordinates belonging to fixed exogenous covariates (means and x-x block)."""
        return fixed_x_mask(self.coords, self.x_idx if x_idx is None else x_idx)

    def zero_x_rows(self, D: np.ndarray) -> np.ndarray:
        return zero_coordinates(D, self.x_coords, columns=False)

    def zero_x(self, M: np.ndarray) -> np.ndarray:
        return zero_coordinates(M, self.x_coords)

    @cached_property
    def unstructured_information(self) -> "_ByKind":
        """A1 per group at the h1 estimates, ``[kind][g]`` for kind 'observed' / 'expected';
        each kind is computed on first use only (the expected one is often not needed)."""
        def build(kind):
            return [self.zero_x(pat.information(self.coords, mean, cov, kind))
                    for pat, (mean, cov) in zip(self.patterns, self.h1_moments)]
        return _ByKind(build)

    def unstructured_factor(self, kind: str, g: int) -> "H1Factor":
        """The factorisation of A1 (group g, 'observed' or 'expected'), computed once per fit
        and shared by the Yuan-Bentler traces and the FIML-corrected indices."""
        cache = self.__dict__.setdefault("_factors", {})
        if (kind, g) not in cache:
            cache[(kind, g)] = H1Factor(self.unstructured_information[kind][g])
        return cache[(kind, g)]

    @cached_property
    def unstructured_score_factors(self) -> list:
        """Per group ``J`` (dim, r) with ``B1 = J J'`` (casewise scores, or cluster sums, at
        the h1 estimates) when r (cases or clusters) is below the number of h1 coordinates,
        else None (B1 is then used as a dense matrix)."""
        out = []
        for pat, (mean, cov), cl in zip(self.patterns, self.h1_moments, self.clusters):
            J = pat.score_factor(self.coords, mean, cov, cl, max_rank=self.coords.dim - 1)
            if J is not None and self.x_coords.any():
                J[self.x_coords] = 0.0
            out.append(J)
        return out

    @cached_property
    def unstructured_first_order(self) -> list:
        """B1 per group: first-order information at the h1 estimates (cluster-summed)."""
        out = []
        for g, (pat, (mean, cov), cl) in enumerate(zip(self.patterns, self.h1_moments,
                                                       self.clusters)):
            J = self.unstructured_score_factors[g]
            out.append(J @ J.T if J is not None else
                       self.zero_x(pat.first_order(self.coords, mean, cov, cl)))
        return out

    @cached_property
    def gamma(self) -> list:
        """Distribution-free asymptotic covariance of the sample moments per group (complete
        data; Browne 1984): ``(1/N) sum_i (z_i - zbar)(z_i - zbar)'`` with
        ``z_i = (y_i, vech((y_i - ybar)(y_i - ybar)'))``; with fixed covariates x the same
        statistics of the OLS-fitted values ``yhat_i = E[y | x_i]`` are subtracted
        (residualised moments, lavaan's fixed.x Gamma); with clusters the centred ``z_i``
        are first summed within clusters and Gamma is multiplied by ``C / (C - 1)``
        (lavaan's ``lav_samplestats_Gamma``)."""
        if self.fiml:
            raise ValueError("Gamma (the asymptotic covariance of the sample moments) needs "
                             "complete data; not available with missing='fiml'")
        out = []
        c = self.coords
        for g, gd in enumerate(self.fit.data.groups):
            X = gd.X
            Yc = X - X.mean(axis=0)
            Z = Yc[:, c.rows] * Yc[:, c.cols]
            if c.meanstructure:
                Z = np.concatenate([X, Z], axis=1)
            if self.x_idx:
                # fixed covariates: subtract the same statistics of the values fitted by the
                # regression of the other variables on the covariates
                nonx = np.setdiff1d(np.arange(c.p), self.x_idx)
                design = np.column_stack([np.ones(len(X)), X[:, self.x_idx]])
                beta = np.linalg.lstsq(design, X[:, nonx], rcond=None)[0]
                fitted = X.copy()
                fitted[:, nonx] = design @ beta
                Fc = fitted - fitted.mean(axis=0)
                ZF = Fc[:, c.rows] * Fc[:, c.cols]
                if c.meanstructure:
                    ZF = np.concatenate([fitted, ZF], axis=1)
                Z = Z - ZF
            Zc = Z - Z.mean(axis=0)
            cl = self.clusters[g]
            factor = 1.0
            if cl is not None:
                sums = np.zeros((cl.max() + 1, Zc.shape[1]))
                np.add.at(sums, cl, Zc)
                Zc = sums
                factor = len(sums) / (len(sums) - 1)
            out.append(self.zero_x(factor * Zc.T @ Zc / X.shape[0]))
        return out

    @cached_property
    def complete_information(self) -> list:
        """Complete-data h1 information at the h1 (EM) moments (lavaan's Wc).  lavaan computes
        it from a model refitted to the EM moments with lavaan()'s defaults, where the observed
        exogenous covariates count as fixed (``x.idx``) even when the fit had
        ``fixed_x=False``: their coordinates are zero here in either case."""
        ov = self.fit.model.ov_names
        mask = self._x_coordinates([ov.index(v) for v in self.fit.variables.ov_x])
        out = []
        for _, cov in self.h1_moments:
            M = _complete_h1_information(self.coords, cov)
            M[mask, :] = 0.0
            M[:, mask] = 0.0
            out.append(M)
        return out


class _ByKind(dict):
    """``{kind: value}`` computed on first access of each kind."""

    def __init__(self, build):
        super().__init__()
        self._build = build

    def __missing__(self, kind):
        value = self[kind] = self._build(kind)
        return value


def _h1(fit) -> _H1Data:
    cache = fit.__dict__.setdefault("_robust_cache", {})
    if "h1" not in cache:
        cache["h1"] = _H1Data(fit)
    return cache["h1"]


# -------------------------------------------------------------------------- evaluation
class RobustEvaluator:
    """Information matrices, sandwich and scaling factors of a fit at parameters z."""

    def __init__(self, fit, z: Optional[np.ndarray] = None):
        self.fit = fit
        self.problem = fit.problem
        self.h1 = _h1(fit)
        self.z = fit.result.z if z is None else np.asarray(z, float)
        self.T = self.problem.pmap.T
        self.active = None
        if z is None and fit.result.active is not None and fit.result.active.any():
            self.active = fit.result.active
        self.values = self.problem.values(self.z)
        self.moments = self.problem.moments(self.values)
        self.weights = self.problem.weights
        self.N = float(sum(loss.nobs for loss in self.problem.losses))

    # -------------------------------------------------------------------------- pieces
    def _deltas_at(self, values: np.ndarray) -> list:
        n_free = len(self.problem.pmap.free_rows)
        out = []
        for g in range(self.problem.model.n_groups):
            mom = self.problem.model.moments(values, g)
            pos, d_cov, d_mean = self.problem.group_jacobian(values, g, mom)
            delta = self.h1.coords.delta(d_cov, d_mean)
            full = np.zeros((self.h1.coords.dim, n_free))
            full[:, pos] = delta
            out.append(full @ self.T)
        return out

    @cached_property
    def deltas(self) -> list:
        """Delta_g = d m_g / dz per group, ``(dim, n_z)``."""
        return self._deltas_at(self.values)

    def structured(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Model-implied (mean, cov) of group g (sample mean without a mean structure)."""
        mom = self.moments[g]
        mean = mom.mean if self.h1.meanstructure else self.h1.patterns[g].means[0]
        return mean, mom.cov

    @cached_property
    def structured_observed(self) -> list:
        return [self.h1.zero_x(pat.information(self.h1.coords, *self.structured(g), "observed"))
                for g, pat in enumerate(self.h1.patterns)]

    @cached_property
    def structured_expected(self) -> list:
        return [self.h1.zero_x(pat.information(self.h1.coords, *self.structured(g), "expected"))
                for g, pat in enumerate(self.h1.patterns)]

    @cached_property
    def structured_first_order(self) -> list:
        """``Delta_g' B1_g Delta_g`` per group, B1 the first-order information at the implied
        moments (scores projected on Delta before their outer products)."""
        out = []
        for g, pat in enumerate(self.h1.patterns):
            D = self.h1.zero_x_rows(self.deltas[g])
            out.append(pat.first_order(self.h1.coords, *self.structured(g),
                                       self.h1.clusters[g], project=D))
        return out

    def _weighted(self, mats: list) -> np.ndarray:
        return sum(w * D.T @ M @ D for w, D, M in zip(self.weights, self.deltas, mats))

    def _second_order_term(self) -> np.ndarray:
        """``sum_g w_g sum_s (dF_g / dm_s) d^2 m_s / dz dz'`` from the analytic second
        derivatives of the RAM moments (:meth:`~sem_models.model.matrices.RAMModel.second_order_terms`)
        with ``F_g = -logL_g / N_g`` and ``(W, r)`` from :func:`_second_order_weights`; the
        free-row matrix is mapped to z by ``T' (.) T`` (theta is affine in z).  The whole h1
        gradient is used, fixed-x coordinates included (their moments do not depend on the
        free parameters); coordinates at an active bound are dropped later, on inversion."""
        problem = self.problem
        free_rows = problem.pmap.free_rows
        free_mask = np.zeros(len(self.values), bool)
        free_mask[free_rows] = True
        total = np.zeros((len(free_rows), len(free_rows)))
        for g, pat in enumerate(self.h1.patterns):
            W, r = _second_order_weights(*pat.gradient(*self.structured(g)),
                                         self.h1.meanstructure)
            cells = problem.model.free_rows(g, free_mask)
            pos = problem.free_position[cells.rows]
            total[np.ix_(pos, pos)] += self.weights[g] * problem.model.second_order_terms(
                self.moments[g], cells, W, r)
        return self.T.T @ total @ self.T

    def _parameter_information(self, kind: str) -> np.ndarray:
        """``sum_g w_g Delta_g' I_g Delta_g`` for the h1 information I ('expected' or
        'observed') at the implied moments, computed per group in parameter space
        (:func:`~sem_models.estimation.fiml.information_in_parameters`; the same numbers as
        the h1 matrices ``structured_expected`` / ``structured_observed``), then mapped to z."""
        problem = self.problem
        n_free = len(problem.pmap.free_rows)
        total = np.zeros((n_free, n_free))
        for g in range(len(self.h1.patterns)):
            pos, d_cov, d_mean = problem.group_jacobian(self.values, g, self.moments[g])
            total[np.ix_(pos, pos)] += self.weights[g] * self._group_information(
                g, d_cov, d_mean, kind)
        return self.T.T @ total @ self.T

    def _group_information(self, g: int, d_cov: np.ndarray, d_mean: np.ndarray,
                           kind: str) -> np.ndarray:
        """``Delta_g' I_g Delta_g`` of group g for moment derivatives (d_cov, d_mean)."""
        x_idx = np.asarray(self.h1.x_idx, int)
        # fixed covariates: their h1 coordinates are zeroed (lavaan's zero.idx); in parameter
        # space that is exact when no parameter moves their moments
        allow = not len(x_idx) or not (
            np.any(d_cov[:, x_idx[:, None], x_idx[None, :]])
            or (self.h1.meanstructure and np.any(d_mean[:, x_idx])))
        return information_in_parameters(self.h1.patterns[g], self.h1.coords,
                                         *self.structured(g), d_cov, d_mean, kind,
                                         h1_transform=self.h1.zero_x,
                                         allow_parameter_space=allow)

    def information(self, kind: str = "expected") -> np.ndarray:
        """Per-case information in z: 'expected', 'observed' (Hessian) or 'h1'."""
        cache = self.__dict__.setdefault("_info", {})
        if kind not in cache:
            if kind == "expected":
                cache[kind] = self._parameter_information("expected")
            elif kind == "h1":
                cache[kind] = self._parameter_information("observed")
            elif kind == "observed":
                cache[kind] = self.information("h1") + self._second_order_term()
            else:
                raise ValueError(kind)
        return cache[kind]

    def _keep(self) -> np.ndarray:
        n = len(self.z)
        return np.ones(n, bool) if self.active is None else ~self.active

    def information_factor(self, kind: str) -> "H1Factor":
        """One factorisation (Cholesky; LU if not positive definite) of the information in z
        without the coordinates at an active bound, shared by every piece that needs its
        inverse."""
        cache = self.__dict__.setdefault("_info_factor", {})
        if kind not in cache:
            keep = self._keep()
            info = self.information(kind)
            cache[kind] = H1Factor(info if keep.all() else info[np.ix_(keep, keep)],
                                   drop_zero=False)
        return cache[kind]

    def inverse_information(self, kind: str) -> np.ndarray:
        """Inverse of the per-case information in z (coordinates at an active bound: 0)."""
        cache = self.__dict__.setdefault("_info_inverse", {})
        if kind not in cache:
            keep = self._keep()
            inv = self.information_factor(kind).inverse
            if keep.all():
                cache[kind] = inv
            else:
                out = np.zeros((len(keep), len(keep)))
                out[np.ix_(keep, keep)] = inv
                cache[kind] = out
        return cache[kind]

    def first_order(self) -> np.ndarray:
        """B0: first-order information per case at the implied moments (cluster-summed)."""
        return sum(w * B for w, B in zip(self.weights, self.structured_first_order))

    # ---------------------------------------------------------------------- vcov (z)
    def vcov_z(self, se: str, information: str) -> np.ndarray:
        """Covariance matrix of z for the given se type."""
        if se == "none":
            return np.full((len(self.z), len(self.z)), np.nan)
        if se == "standard":
            return self.inverse_information(information) / self.N
        if se in ("robust.huber.white", "robust.cluster"):
            Einv = self.inverse_information(information)
            return Einv @ self.first_order() @ Einv / self.N
        if se in ("robust.sem", "robust.cluster.sem"):
            Einv = self.inverse_information(information)
            V = self.structured_expected
            meat = sum(w * D.T @ Vg @ G @ Vg @ D for w, D, Vg, G in
                       zip(self.weights, self.deltas, V, self.h1.gamma))
            return Einv @ meat @ Einv / self.N
        raise ValueError(f"se={se!r} is not supported")

    # ------------------------------------------------------------------- scaled tests
    def trace_satorra_bentler(self, information: str = "expected") -> float:
        Einv = self.inverse_information(information)
        V = self.structured_expected
        total = 0.0
        for w, D, Vg, G in zip(self.weights, self.deltas, V, self.h1.gamma):
            VG = Vg @ G
            VD = Vg @ D
            total += np.trace(VG) - w * np.sum((VD @ Einv @ VD.T) * G.T)
        return float(total)

    def trace_yuan_bentler(self, information_kind: str, h1_kind: str) -> dict:
        """Traces of lavaan's ``yuan.bentler.mplus``: h1 part, h0 part, moments count."""
        Einv = self.inverse_information(information_kind)
        B1_structured = self.structured_first_order
        h1 = h0 = 0.0
        ndat = 0
        for g, (w, B0g) in enumerate(zip(self.weights, B1_structured)):
            # tr(A1^-1 B1) from the shared factor of A1; B1 = J J' when it has low rank
            factor = self.h1.unstructured_factor(h1_kind, g)
            J = self.h1.unstructured_score_factors[g]
            if J is not None:
                h1 += factor.trace_gram(J)
            else:
                h1 += float(np.sum(self.h1.unstructured_first_order[g] * factor.inverse))
            h0 += float(w * np.sum(B0g * Einv.T))
            ndat += factor.size
        return {"trace": h1 - h0, "h1": h1, "h0": h0, "ndat": ndat}


# ------------------------------------------------------------------------- public pieces

def _evaluator(fit) -> RobustEvaluator:
    cache = fit.__dict__.setdefault("_robust_cache", {})
    if "evaluator" not in cache:
        cache["evaluator"] = RobustEvaluator(fit)
    return cache["evaluator"]


#: scale-free condition ratio of an observed information below which identification is
#: decided on the expected information (:func:`robust_vcov`)
RIDGE_SUSPICION = 1e-6


def robust_vcov(fit, names: Optional[list] = None) -> np.ndarray:
    """Covariance matrix of the free parameter-table rows for the fit's se / information."""
    ev = _evaluator(fit)
    se = fit.options.get("se", "standard")
    T = fit.problem.pmap.T
    if se != "none":  # scale-free identification check (issue 11), as for standard SEs
        from .wald import identification_check, scaled_condition_ratio
        keep = ev._keep()
        kind = _se_information_kind(fit)
        info = ev.information(kind)[np.ix_(keep, keep)]
        ratio = scaled_condition_ratio(info)
        # identification is the model's: on a ridge of an unidentified model the expected
        # information is singular at every point, the observed one only to the size of the
        # gradient where the search stopped; a nearly singular observed information is
        # therefore judged by the expected one
        if kind != "expected" and ratio < RIDGE_SUSPICION and not identification_check(
                ev.information("expected")[np.ix_(keep, keep)], T[:, keep],
                names or [""] * T.shape[0]):
            return np.full((T.shape[0], T.shape[0]), np.nan)
        if not identification_check(info, T[:, keep], names or [""] * T.shape[0],
                                    ratio=ratio):
            return np.full((T.shape[0], T.shape[0]), np.nan)
    try:
        vz = ev.vcov_z(se, _se_information_kind(fit))
    except np.linalg.LinAlgError:
        from .wald import IdentificationWarning
        warnings.warn(f"the {_se_information_kind(fit)} information matrix is singular: the "
                      "model is probably not identified; standard errors are not reported"
                      + (f" (parameters: {names[:8]})" if names else ""),
                      IdentificationWarning, stacklevel=4)
        return np.full((T.shape[0], T.shape[0]), np.nan)
    return T @ vz @ T.T
