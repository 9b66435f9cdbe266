"""Robust inference for ML fits: sandwich standard errors, scaled test statistics, cluster-robust
versions, FIML-corrected robust fit indices and scaled chi-square difference tests.

Everything is written in the coordinates of the unrestricted ("h1") model of each group,
``m_g = (mu, vech Sigma)`` (:class:`~sem_models.fiml.H1Coordinates`), with ``Delta_g = dm_g / dz``
the Jacobian of the model-implied moments with respect to the reduced parameter vector z of
:mod:`sem_models.constraints` (so equality constraints are built in: ``Delta_z = Delta_theta T``
and inverses of information matrices in z equal lavaan's "augmented" inverses).  With
``w_g = N_g / N`` and all information matrices per case:

* **Information** ``E``: expected ``sum_g w_g Delta_g' V_g Delta_g`` (V_g the expected h1
  information at the model-implied moments), observed (the Hessian of the fitting function:
  ``sum_g w_g [Delta_g' H_g Delta_g + sum_s (dF_g/dm_s) d^2 m_s / dz dz']`` with H_g the observed
  h1 information at the implied moments; the second-order term analytic, from the second
  derivatives of the RAM moments in matrix-differential form (Magnus & Neudecker 1999; von
  Oertzen & Brick 2014; :meth:`~sem_models.matrices.RAMModel.second_order_terms` with
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
import pandas as pd

from .distributions import chi2_sf
from .fiml import FIMLGroupLoss, H1Coordinates, MissingPatterns, em_saturated

__all__ = ["ClusterWarning", "resolve_options", "RobustEvaluator", "scaled_difference_test",
           "robust_vcov", "scaled_test", "baseline_test", "fiml_corrected"]

ROBUST_SE = ("robust.sem", "robust.huber.white", "robust.cluster", "robust.cluster.sem")
SCALED_TESTS = ("satorra.bentler", "yuan.bentler.mplus")


class ClusterWarning(UserWarning):
    """Few clusters: cluster-robust standard errors and tests are unreliable."""


# ------------------------------------------------------------------------------- options
def resolve_options(estimator: str, missing: str, cluster: Optional[str], se=None, test=None,
                    information=None) -> dict:
    """lavaan's se / test / information settings for an estimator (lavaan 0.6-14 defaults).

    * ML: ``se="standard"``, ``test="standard"``, expected information (observed under FIML);
      with ``cluster``: ``se="robust.cluster"``, ``test=["standard", "yuan.bentler.mplus"]``
      and the test's information from the h1 observed information (lavaan's
      ``observed.information = c("hessian", "h1")``).
    * MLM: ``se="robust.sem"`` (``"robust.cluster.sem"`` with clusters),
      ``test="satorra.bentler"``, expected information; complete data only.
    * MLR: ``se="robust.huber.white"`` (``"robust.cluster"``), ``test="yuan.bentler.mplus"``,
      observed information.
    """
    fiml = missing == "fiml"
    if estimator == "MLM":
        d_se = "robust.cluster.sem" if cluster else "robust.sem"
        d_test, d_info = "satorra.bentler", "expected"
    elif estimator == "MLR":
        d_se = "robust.cluster" if cluster else "robust.huber.white"
        d_test, d_info = "yuan.bentler.mplus", "observed"
    else:
        d_se = "robust.cluster" if cluster else "standard"
        d_test = ["standard", "yuan.bentler.mplus"] if cluster else "standard"
        d_info = "observed" if (fiml or cluster) else "expected"
    se = d_se if se is None else se
    test = d_test if test is None else test
    information = d_info if information is None else information
    tests = [test] if isinstance(test, str) else list(test)
    known_se = ("standard", "none") + ROBUST_SE
    if se not in known_se:
        raise ValueError(f"se={se!r} is not supported; choose from {known_se}")
    for t in tests:
        if t not in ("standard", "none") + SCALED_TESTS:
            raise ValueError(f"test={t!r} is not supported; choose from "
                             f"{('standard',) + SCALED_TESTS}")
    if information not in ("expected", "observed"):
        raise ValueError("information must be 'expected' or 'observed'")
    if se.startswith("robust.cluster") and not cluster:
        raise ValueError(f"se={se!r} needs cluster=")
    if fiml and ("satorra.bentler" in tests or se in ("robust.sem", "robust.cluster.sem")):
        raise ValueError("the Satorra-Bentler test and robust.sem standard errors (estimator "
                         "'MLM') need complete data; with missing='fiml' use estimator='MLR'")
    # the test statistic's information: lavaan sets observed.information to "h1" for the
    # tests when estimator = "ML" is combined with cluster=
    test_obs = "h1" if (estimator == "ML" and cluster and information == "observed") else "hessian"
    return {"se": se, "test": test, "information": information,
            "observed_information": ("hessian", test_obs), "h1_information": "structured"}


def scaled_test_name(fit) -> Optional[str]:
    tests = fit.options.get("test", "standard")
    tests = [tests] if isinstance(tests, str) else list(tests)
    for t in tests:
        if t in SCALED_TESTS:
            return t
    return None


# --------------------------------------------------------------------------------- helpers
def _block_diag(*mats) -> np.ndarray:
    from scipy.linalg import block_diag
    return block_diag(*mats)


def _inverse_nonzero(M: np.ndarray) -> tuple[np.ndarray, int]:
    """Inverse of M on the rows/columns with a non-zero diagonal (zeros elsewhere), as
    lavaan's ``zero.idx`` handling of fixed exogenous covariates; also the size of that block."""
    keep = np.abs(np.diag(M)) > 0
    out = np.zeros_like(M)
    out[np.ix_(keep, keep)] = np.linalg.inv(M[np.ix_(keep, keep)])
    return out, int(keep.sum())


def _cluster_codes(values) -> Optional[np.ndarray]:
    if values is None:
        return None
    codes, _ = pd.factorize(pd.Series(values), sort=False)
    return codes.astype(int)


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
    symmetric Sigma (:meth:`~sem_models.fiml.MissingPatterns.gradient`).

    The h1 gradient of F is ``-(g_mu, vech(G) c)`` with c = 1 on the diagonal and 2 off it
    (:meth:`~sem_models.fiml.H1Coordinates.gradient`), and for symmetric ``d2Sigma``
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
        c = self.coords
        x_idx = self.x_idx if x_idx is None else x_idx
        mask = np.zeros(c.dim, bool)
        if not x_idx:
            return mask
        x = np.zeros(c.p, bool)
        x[x_idx] = True
        if c.meanstructure:
            mask[:c.p] = x
        mask[c.offset:] = x[c.rows] & x[c.cols]
        return mask

    def zero_x_rows(self, D: np.ndarray) -> np.ndarray:
        if self.x_coords.any():
            D = D.copy()
            D[self.x_coords, :] = 0.0
        return D

    def zero_x(self, M: np.ndarray) -> np.ndarray:
        if self.x_coords.any():
            M = M.copy()
            M[self.x_coords, :] = 0.0
            M[:, self.x_coords] = 0.0
        return M

    @cached_property
    def unstructured_information(self) -> dict:
        """A1 per group at the h1 estimates: {'observed': [...], 'expected': [...]}."""
        out = {"observed": [], "expected": []}
        for pat, (mean, cov) in zip(self.patterns, self.h1_moments):
            for kind in out:
                out[kind].append(self.zero_x(pat.information(self.coords, mean, cov, kind)))
        return out

    @cached_property
    def unstructured_first_order(self) -> list:
        """B1 per group: first-order information at the h1 estimates (cluster-summed)."""
        return [self.zero_x(pat.first_order(self.coords, mean, cov, cl))
                for pat, (mean, cov), cl in zip(self.patterns, self.h1_moments, self.clusters)]

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
        derivatives of the RAM moments (:meth:`~sem_models.matrices.RAMModel.second_order_terms`)
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

    def information(self, kind: str = "expected") -> np.ndarray:
        """Per-case information in z: 'expected', 'observed' (Hessian) or 'h1'."""
        cache = self.__dict__.setdefault("_info", {})
        if kind not in cache:
            if kind == "expected":
                cache[kind] = self._weighted(self.structured_expected)
            elif kind == "h1":
                cache[kind] = self._weighted(self.structured_observed)
            elif kind == "observed":
                cache[kind] = self.information("h1") + self._second_order_term()
            else:
                raise ValueError(kind)
        return cache[kind]

    def _keep(self) -> np.ndarray:
        n = len(self.z)
        return np.ones(n, bool) if self.active is None else ~self.active

    def inverse_information(self, kind: str) -> np.ndarray:
        """Inverse of the per-case information in z (coordinates at an active bound: 0)."""
        info = self.information(kind)
        keep = self._keep()
        out = np.zeros_like(info)
        out[np.ix_(keep, keep)] = np.linalg.inv(info[np.ix_(keep, keep)])
        return out

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
        A1s = self.h1.unstructured_information[h1_kind]
        B1s = self.h1.unstructured_first_order
        B1_structured = self.structured_first_order
        h1 = h0 = 0.0
        ndat = 0
        for w, A1, B1, B0g in zip(self.weights, A1s, B1s, B1_structured):
            A1inv, k = _inverse_nonzero(A1)
            h1 += float(np.sum(B1 * A1inv.T))
            h0 += float(w * np.sum(B0g * Einv.T))
            ndat += k
        return {"trace": h1 - h0, "h1": h1, "h0": h0, "ndat": ndat}


# ------------------------------------------------------------------------- public pieces
def _information_kind(fit, use: str) -> str:
    """The information behind the SEs (``use="se"``) or the test (``use="test"``): expected,
    observed (Hessian) or h1, from lavaan's ``information`` and ``observed.information``."""
    if fit.options.get("information", "expected") == "expected":
        return "expected"
    obs = fit.options.get("observed_information", ("hessian", "hessian"))
    return "h1" if obs[0 if use == "se" else 1] == "h1" else "observed"


def _test_information_kind(fit) -> str:
    return _information_kind(fit, "test")


def _se_information_kind(fit) -> str:
    return _information_kind(fit, "se")


def _evaluator(fit) -> RobustEvaluator:
    cache = fit.__dict__.setdefault("_robust_cache", {})
    if "evaluator" not in cache:
        cache["evaluator"] = RobustEvaluator(fit)
    return cache["evaluator"]


def robust_vcov(fit, names: Optional[list] = None) -> np.ndarray:
    """Covariance matrix of the free parameter-table rows for the fit's se / information."""
    ev = _evaluator(fit)
    se = fit.options.get("se", "standard")
    T = fit.problem.pmap.T
    try:
        vz = ev.vcov_z(se, _se_information_kind(fit))
    except np.linalg.LinAlgError:
        from .inference import IdentificationWarning
        warnings.warn(f"the {_se_information_kind(fit)} information matrix is singular: the "
                      "model is probably not identified; standard errors are not reported"
                      + (f" (parameters: {names[:8]})" if names else ""),
                      IdentificationWarning, stacklevel=4)
        return np.full((T.shape[0], T.shape[0]), np.nan)
    return T @ vz @ T.T


def scaled_test(fit, z: Optional[np.ndarray] = None, df: Optional[int] = None) -> dict:
    """The scaled test statistic of a fit (or, with ``z``, its scaling factor at other
    parameters, as lavaan's M10 model of the 2010 difference test)."""
    name = scaled_test_name(fit)
    if name is None:
        return {}
    ev = _evaluator(fit) if z is None else RobustEvaluator(fit, z)
    df = fit._standard_test()["df"] if df is None else df
    out = {"test": name}
    if name == "satorra.bentler":
        trace = ev.trace_satorra_bentler(_test_information_kind(fit))
    else:
        h1_kind = "expected" if fit.options.get("information") == "expected" else "observed"
        tr = ev.trace_yuan_bentler(_test_information_kind(fit), h1_kind)
        trace = tr["trace"]
        out["scaling_factor_h1"] = tr["h1"] / tr["ndat"]
        # lavaan divides by its number of free parameters before equality constraints
        out["scaling_factor_h0"] = tr["h0"] / len(ev.problem.pmap.free_rows)
    out["trace_ugamma"] = trace
    out["scaling"] = trace / df if df > 0 else np.nan
    if out["scaling"] is not None and out["scaling"] < 0:
        out["scaling"] = np.nan
    return out


# ---------------------------------------------------------------------------- baseline
class _Baseline:
    """The independence model: free means and variances, covariances zero, the observed
    exogenous covariates' block at its sample (EM) values (free when ``fixed_x=False``).

    Under FIML its likelihood factorises over the non-exogenous variables, so each variable's
    ML mean and variance are those of its observed values (exact, no iterations); a free
    exogenous block with missing values is estimated by EM on those columns."""

    def __init__(self, fit):
        self.fit = fit
        self.h1 = _h1(fit)
        c = self.h1.coords
        ov = fit.model.ov_names
        x_all = [ov.index(v) for v in fit.variables.ov_x]
        fixed_x = fit.options.get("fixed_x", True)
        p = c.p
        is_x = np.zeros(p, bool)
        is_x[x_all] = True
        self.moments = []
        self.deltas = []
        free_cols = []
        for g, pat in enumerate(self.h1.patterns):
            h1_mean, h1_cov = self.h1.h1_moments[g]
            X = pat.X
            obs = np.zeros_like(X, dtype=bool)
            for k in range(pat.n_patterns):
                obs[pat.pattern_rows(k)] = pat.mask[k]
            n_obs = obs.sum(axis=0)
            mean = (X * obs).sum(axis=0) / n_obs
            var = (((X - mean) * obs) ** 2).sum(axis=0) / n_obs
            cov = np.diag(var)
            if is_x.any():
                xi = np.flatnonzero(is_x)
                if fixed_x or not self.h1.fiml:
                    cov[np.ix_(xi, xi)] = h1_cov[np.ix_(xi, xi)]
                    mean[xi] = h1_mean[xi]
                else:
                    Xx = np.where(obs[:, xi], X[:, xi], np.nan)
                    Xx = Xx[~np.isnan(Xx).all(axis=1)]
                    mx, Sx, _ = em_saturated(MissingPatterns.from_data(Xx), tol=1e-10,
                                             max_iter=10000)
                    cov[np.ix_(xi, xi)] = Sx
                    mean[xi] = mx
            if not c.meanstructure:
                mean = h1_mean
            self.moments.append((mean, cov))
            # free coordinates
            free = np.zeros(c.dim, bool)
            if c.meanstructure:
                free[:p] = ~is_x if fixed_x else True
            diag_free = c.diag & ~is_x[c.rows]
            x_block = is_x[c.rows] & is_x[c.cols]
            free[c.offset:] = diag_free | (x_block if not fixed_x else False)
            free_cols.append(np.flatnonzero(free))
        n_total = sum(len(f) for f in free_cols)
        start = 0
        for g, cols in enumerate(free_cols):
            D = np.zeros((c.dim, n_total))
            D[cols, start + np.arange(len(cols))] = 1.0
            start += len(cols)
            self.deltas.append(D)
        self.npar = n_total

    def loglik(self, g: int) -> float:
        mean, cov = self.moments[g]
        loss = self.fit.problem.losses[g]
        if isinstance(loss, FIMLGroupLoss):
            return loss.patterns.loglik(mean, cov)
        return self.h1.patterns[g].loglik(mean, cov)


def _baseline(fit) -> _Baseline:
    cache = fit.__dict__.setdefault("_robust_cache", {})
    if "baseline" not in cache:
        cache["baseline"] = _Baseline(fit)
    return cache["baseline"]


class _BaselineEvaluator(RobustEvaluator):
    """RobustEvaluator for the (linear) independence model."""

    def __init__(self, fit):
        self.fit = fit
        self.problem = fit.problem
        self.h1 = _h1(fit)
        self.base = _baseline(fit)
        self.z = np.zeros(self.base.npar)
        self.active = None
        self.weights = self.problem.weights
        self.N = float(sum(loss.nobs for loss in self.problem.losses))
        self.__dict__["deltas"] = self.base.deltas

    def structured(self, g):
        return self.base.moments[g]

    def _second_order_term(self) -> np.ndarray:
        return np.zeros((self.base.npar, self.base.npar))  # linear model


def baseline_chisq_fiml(fit) -> float:
    base = _baseline(fit)
    total = 0.0
    for g, loss in enumerate(fit.problem.losses):
        total += 2.0 * (loss.saturated_loglik - base.loglik(g))
    return float(total)


def baseline_test(fit, df: int) -> dict:
    """Scaled statistic pieces of the baseline model (same test as the fit)."""
    name = scaled_test_name(fit)
    if name is None:
        return {}
    ev = _BaselineEvaluator(fit)
    if name == "satorra.bentler":
        trace = ev.trace_satorra_bentler(_test_information_kind(fit))
    else:
        h1_kind = "expected" if fit.options.get("information") == "expected" else "observed"
        trace = ev.trace_yuan_bentler(_test_information_kind(fit), h1_kind)["trace"]
    c = trace / df if df > 0 else np.nan
    return {"scaling": c, "trace_ugamma": trace}


# --------------------------------------------------------------------- FIML-corrected
def fiml_corrected(fit, version: Optional[str] = None) -> dict:
    """lavaan's FIML-corrected robust RMSEA / CFI pieces (Zhang & Savalei 2023).

    ``XX3`` is the complete-data ML statistic of the FIML estimates against the EM moments,
    ``c.hat3 = k / df`` with ``k = tr(Wc Wm^-1 U Wm^-1)`` (V6, standard test) or
    ``k = tr(U Wm^-1 Wc Wm^-1 U Gamma)``, ``Gamma = Wm^-1 Jm Wm^-1`` (V3, scaled test), where
    Wm / Jm are the observed / first-order h1 information under missing data, Wc the
    complete-data information at the EM moments, ``U = Wm - Wm Delta E^-1 Delta' Wm`` and
    ``E = Delta' Wm Delta``; the same for the baseline model.
    """
    if version is None:
        version = "V3" if scaled_test_name(fit) else "V6"
    h1 = _h1(fit)
    w = fit.problem.weights
    G = len(w)
    Wm = h1.unstructured_information["observed"]
    Wc = h1.complete_information
    Wmi = [_inverse_nonzero(M)[0] for M in Wm]  # fixed covariates: zero rows stay zero
    Wc_all = _block_diag(*[w[g] * Wc[g] for g in range(G)])
    Wm_all = _block_diag(*[w[g] * Wm[g] for g in range(G)])
    Wmi_all = _block_diag(*[Wmi[g] / w[g] for g in range(G)])
    if version == "V3":
        Jm = h1.unstructured_first_order
        Gamma_all = _block_diag(*[Wmi[g] @ Jm[g] @ Wmi[g] / w[g] for g in range(G)])

    def k_value(deltas):
        D = np.vstack(deltas)
        E = D.T @ Wm_all @ D
        Einv = np.linalg.inv(E)
        U = Wm_all - Wm_all @ D @ Einv @ D.T @ Wm_all
        if version == "V3":
            return float(np.trace(U @ Wmi_all @ Wc_all @ Wmi_all @ U @ Gamma_all))
        return float(np.trace(Wc_all @ Wmi_all @ U @ Wmi_all))

    ev = _evaluator(fit)
    stats = fit._standard_test()
    df = stats["df"]
    XX3 = 0.0
    for g, loss in enumerate(fit.problem.losses):
        mean_t, cov_t = h1.h1_moments[g]
        mean, cov = ev.structured(g)
        XX3 += loss.nobs * _ml_discrepancy(cov_t, mean_t, cov, mean, True)
    c3 = k_value(ev.deltas) / df if df > 0 else np.nan
    base = _baseline(fit)
    XX3_null = 0.0
    for g, loss in enumerate(fit.problem.losses):
        mean_t, cov_t = h1.h1_moments[g]
        mean, cov = base.moments[g]
        XX3_null += loss.nobs * _ml_discrepancy(cov_t, mean_t, cov, mean, True)
    df_null = fit._baseline_df()
    c3_null = k_value(base.deltas) / df_null
    return {"XX3": XX3, "df3": df, "c_hat3": c3, "XX3_scaled": XX3 / c3,
            "XX3_null": XX3_null, "df3_null": df_null, "c_hat3_null": c3_null}


# ---------------------------------------------------------------------------- clusters
def check_clusters(data, cluster: str, npar: int) -> None:
    """Errors for a single cluster; a :class:`ClusterWarning` for few clusters."""
    for gd in data.groups:
        codes = _cluster_codes(gd.cluster)
        n_cl = int(codes.max()) + 1
        where = "" if data.group_var is None else f" in group {gd.label!r}"
        if n_cl < 2:
            raise ValueError(f"the cluster column {cluster!r} has a single cluster{where}: "
                             "cluster-robust standard errors need at least two clusters")
        if n_cl < 30 or n_cl < npar:
            warnings.warn(
                f"only {n_cl} clusters{where} in {cluster!r} for {npar} free parameters: "
                "cluster-robust standard errors and test statistics are unreliable with fewer "
                "than about 30 clusters, and with fewer clusters than free parameters the "
                "robust covariance matrix of the estimates is rank deficient",
                ClusterWarning, stacklevel=4)


# --------------------------------------------------------------------- difference test
def _values_for(fit_target, fit_source) -> np.ndarray:
    """The source fit's estimates written into the target fit's parameter table."""
    pt_t, pt_s = fit_target._partable, fit_source._partable
    key = lambda pt: list(zip(pt["lhs"], pt["op"], pt["rhs"], pt["group"]))
    source = dict(zip(key(pt_s), fit_source.values))
    values = fit_target.values.copy()
    missing = []
    for i, k in enumerate(key(pt_t)):
        if k in source:
            values[i] = source[k]
        elif pt_t["free"].iat[i] > 0:
            missing.append(k)
    if missing:
        raise ValueError(f"the models are not nested in the same parameter table: "
                         f"{missing[:3]} of the less restricted model are not in the other")
    return values


def scaled_difference_test(fit0, fit1, method: str = "satorra.bentler.2001",
                           scaled_shifted: bool = True) -> dict:
    """Scaled chi-square difference test of nested robust fits (lavaan's ``lavTestLRT``).

    ``fit0`` is the more restricted model (the order is fixed by the degrees of freedom).
    Methods (T = standard statistics, r = df, c = scaling factors, m = r0 - r1):

    * ``"satorra.bentler.2001"`` (Satorra & Bentler 2001): ``cd = (r0 c0 - r1 c1) / m``,
      ``T_d = (T0 - T1) / cd``;
    * ``"satorra.bentler.2010"`` (Satorra & Bentler 2010): c1 replaced by the scaling factor
      of the less restricted model evaluated at the restricted model's estimates (M10);
    * ``"satorra.2000"`` (Satorra 2000): ``cd = tr(U Gamma) / m`` with ``U`` from the
      restrictions ``A`` (delta method: the orthogonal complement of ``Delta1^+ Delta0``),
      ``P^-1 A' (A P^-1 A')^- A P^-1`` in place of the model's projection; complete data.
      By default (``scaled_shifted=True``, as lavTestLRT) the scaled-and-shifted version
      ``a (T0 - T1) + b`` (then ``scaling`` is NaN and ``a``, ``b`` are returned);
      ``scaled_shifted=False`` gives ``(T0 - T1) / cd`` with ``cd = tr(U Gamma) / m``.

    Returns ``{"chisq_diff", "df_diff", "pvalue", "scaling", "method"}``.
    """
    method = {"default": "satorra.bentler.2001"}.get(method, method)
    s0, s1 = fit0._standard_test(), fit1._standard_test()
    if s0["df"] < s1["df"]:
        fit0, fit1, s0, s1 = fit1, fit0, s1, s0
    if scaled_test_name(fit0) is None or scaled_test_name(fit1) is None:
        raise ValueError("scaled difference tests need fits with a scaled test statistic "
                         "(estimator 'MLM' or 'MLR')")
    T0, r0, T1, r1 = s0["chisq"], s0["df"], s1["chisq"], s1["df"]
    m = r0 - r1
    if m == 0:
        return {"chisq_diff": T0 - T1, "df_diff": 0, "pvalue": np.nan, "scaling": np.nan,
                "method": method}
    c0 = fit0._test_statistics().get("chisq_scaling_factor", np.nan)
    c1 = fit1._test_statistics().get("chisq_scaling_factor", np.nan) if r1 > 0 else 1.0
    if method == "satorra.bentler.2001":
        cd = (r0 * c0 - r1 * c1) / m
    elif method == "satorra.bentler.2010":
        if r0 == 0:
            c0 = 1.0
        values = _values_for(fit1, fit0)
        pmap = fit1.problem.pmap
        z10 = pmap.z_from_free(values[pmap.free_rows])
        c10 = scaled_test(fit1, z=z10, df=r1)["scaling"] if r1 > 0 else 1.0
        cd = (r0 * c0 - r1 * c10) / m
    elif method == "satorra.2000":
        res = _satorra_2000(fit0, fit1, m, scaled_shifted)
        if scaled_shifted:
            T = res["a"] * (T0 - T1) + res["b"]
            return {"chisq_diff": float(T), "df_diff": int(m),
                    "pvalue": float(chi2_sf(T, m)), "scaling": np.nan,
                    "method": method, "a": float(res["a"]), "b": float(res["b"])}
        cd = res["cd"]
    else:
        raise ValueError(f"method={method!r}: choose 'satorra.bentler.2001', "
                         "'satorra.bentler.2010' or 'satorra.2000'")
    if not np.isfinite(cd) or cd < 0:
        warnings.warn("the scaling factor of the difference test is negative; the scaled "
                      "difference is not available (try method='satorra.bentler.2010')",
                      UserWarning, stacklevel=2)
        cd = np.nan
    T = (T0 - T1) / cd
    return {"chisq_diff": float(T), "df_diff": int(m),
            "pvalue": float(chi2_sf(T, m)) if np.isfinite(T) else np.nan,
            "scaling": float(cd), "method": method}


def _satorra_2000(fit0, fit1, m: int, scaled_shifted: bool = True) -> dict:
    """Satorra (2000) with the delta-method restriction matrix, as lavaan's
    ``lav_test_diff_Satorra2000(H1 = TRUE)``: ``U = V Delta1 P^-1 A' (A P^-1 A')^- A P^-1
    Delta1' V`` (V the expected h1 information, P the fit's information, Gamma the
    distribution-free one), ``tr(U Gamma)`` weighted by ``N_g / N``.  ``scaled_shifted``
    (lavTestLRT's default) gives ``a = sqrt(m / tr((U Gamma)^2))``, ``b = m - a tr(U Gamma)``
    and ``T_d = a (T0 - T1) + b`` (Asparouhov & Muthen 2010); otherwise ``cd = tr(U Gamma) / m``.
    """
    h1 = _h1(fit1)
    gamma = h1.gamma
    ev1 = _evaluator(fit1)
    ev0 = _evaluator(fit0)
    V = ev1.structured_expected
    P = ev1.information(_se_information_kind(fit1))
    Pinv = np.linalg.inv(P)
    D1 = np.vstack(ev1.deltas)
    D0 = np.vstack(ev0.deltas)
    H = np.linalg.pinv(D1) @ D0
    A = _orthogonal_complement(H).T
    APA = A @ Pinv @ A.T
    PAAPAAP = Pinv @ A.T @ np.linalg.pinv(APA) @ A @ Pinv
    w = fit1.problem.weights
    trace = 0.0
    for wg, D, Vg, Gg in zip(w, ev1.deltas, V, gamma):
        trace += wg * np.trace(Vg @ Gg @ Vg @ D @ PAAPAAP @ D.T)
    if not scaled_shifted:
        return {"cd": trace / m}
    V_all = _block_diag(*V)
    G_all = _block_diag(*[wg * Gg for wg, Gg in zip(w, gamma)])
    U = V_all @ D1 @ PAAPAAP @ D1.T @ V_all
    UG = U @ G_all
    trace2 = float(np.sum(UG * UG.T))
    a = np.sqrt(m / trace2)
    return {"a": a, "b": m - a * trace, "trace": trace, "trace2": trace2}
