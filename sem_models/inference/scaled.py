"""Scaled test statistics (Satorra-Bentler, Yuan-Bentler), the baseline model's tests and the
FIML-corrected robust fit indices; formulas in :mod:`sem_models.inference.sandwich`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..estimation.fiml import FIMLGroupLoss, MissingPatterns, em_saturated, observed_moments
from .options import _test_information_kind, scaled_test_name
from .sandwich import RobustEvaluator, _evaluator, _h1, _ml_discrepancy

__all__ = ["baseline_chisq_fiml", "baseline_test", "fiml_corrected", "scaled_test"]



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
            mean, var = observed_moments(pat)  # from the pattern statistics, no pass over rows
            cov = np.diag(var)
            if is_x.any():
                xi = np.flatnonzero(is_x)
                if fixed_x or not self.h1.fiml:
                    cov[np.ix_(xi, xi)] = h1_cov[np.ix_(xi, xi)]
                    mean[xi] = h1_mean[xi]
                else:
                    Xx = pat.X[:, xi]  # NaN where missing
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

    def _parameter_information(self, kind: str) -> np.ndarray:
        """As :meth:`RobustEvaluator._parameter_information`; the baseline's Jacobian selects
        h1 coordinates (a mean: ``d mu = e_i``; a (co)variance: ``d Sigma = e_i e_j' + e_j
        e_i'``)."""
        c = self.h1.coords
        total = np.zeros((self.base.npar, self.base.npar))
        for g, D in enumerate(self.base.deltas):
            cols = np.flatnonzero(D.any(axis=0))
            coord = D[:, cols].argmax(axis=0)
            d_cov = np.zeros((len(cols), c.p, c.p))
            d_mean = np.zeros((len(cols), c.p))
            is_mean = coord < c.offset
            k = np.flatnonzero(is_mean)
            d_mean[k, coord[k]] = 1.0
            k = np.flatnonzero(~is_mean)
            a = coord[k] - c.offset
            d_cov[k, c.rows[a], c.cols[a]] = 1.0
            d_cov[k, c.cols[a], c.rows[a]] = 1.0
            total[np.ix_(cols, cols)] += self.weights[g] * self._group_information(
                g, d_cov, d_mean, kind)
        return total

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
    ``E = Delta' Wm Delta``; the same for the baseline model.  (Wm, Wc, Jm block-diagonal
    over groups with weights w_g = N_g / N, Wm^-1 with 1 / w_g.)

    Computed without any (dim x dim) product: with ``Wm^-1 U Wm^-1 = Wm^-1 - D E^-1 D'``
    (D = Delta with the rows of fixed covariates zeroed) and ``D E^-1 D' = Y Y'``,
    ``Y = D L^-T`` for ``E = L L'``,

    * V6: ``k = tr(Wc Wm^-1) - tr(Y' Wc Y)``;
    * V3: ``k = tr(Wc Z Jm Z)`` with ``Z = Wm^-1 - Y Y'``, i.e.
      ``tr(Wc Wm^-1 Jm Wm^-1) - 2 tr(Y' Jm Wm^-1 Wc Y) + tr((Y' Wc Y)(Y' Jm Y))``, with
      ``Jm = J J'`` from the casewise (or cluster-summed) scores when they are fewer than
      the h1 coordinates.

    The per-fit pieces (the factor of each Wm, shared with the Yuan-Bentler traces, and the
    first traces) are computed once for the model and the baseline.
    """
    if version is None:
        version = "V3" if scaled_test_name(fit) else "V6"
    h1 = _h1(fit)
    w = fit.problem.weights
    G = len(w)
    Wm = h1.unstructured_information["observed"]
    Wc = h1.complete_information
    factors = [h1.unstructured_factor("observed", g) for g in range(G)]
    if version == "V3":
        J = h1.unstructured_score_factors
        Jm = [None if J[g] is not None else h1.unstructured_first_order[g] for g in range(G)]
        WiJ = [factors[g].solve(J[g]) if J[g] is not None else None for g in range(G)]
        first = 0.0  # tr(Wc Wm^-1 Jm Wm^-1), block by block (the weights cancel)
        for g in range(G):
            if J[g] is not None:
                first += float(np.sum(WiJ[g] * (Wc[g] @ WiJ[g])))
            else:
                Wmi = factors[g].inverse
                first += float(np.sum((Wc[g] @ Wmi) * (Jm[g] @ Wmi).T))
    else:
        first = float(sum(np.sum(Wc[g] * factors[g].inverse) for g in range(G)))

    def k_value(deltas):
        D = [np.where(factors[g].keep[:, None], deltas[g], 0.0) for g in range(G)]
        E = sum(w[g] * D[g].T @ Wm[g] @ D[g] for g in range(G))
        try:
            from scipy.linalg import solve_triangular
            L = np.linalg.cholesky(E)
            Y1 = [solve_triangular(L, Dg.T, lower=True).T for Dg in D]
            Y2 = Y1
        except np.linalg.LinAlgError:  # not positive definite: D E^-1 D' = D (D E^-1)'
            Y1 = D
            Y2 = [np.linalg.solve(E, Dg.T).T for Dg in D]
        WcY = [Wc[g] @ Y1[g] for g in range(G)]
        if version == "V6":
            return first - float(sum(w[g] * np.sum(Y2[g] * WcY[g]) for g in range(G)))
        second = 0.0  # tr(Y2' Jm Wm^-1 Wc Y1), weights w_g
        YWcY = sum(w[g] * Y2[g].T @ WcY[g] for g in range(G))
        YJY = 0.0
        for g in range(G):
            if J[g] is not None:
                JY2 = J[g].T @ Y2[g]
                second += w[g] * float(np.sum(JY2 * (WiJ[g].T @ WcY[g])))
                YJY = YJY + w[g] * JY2.T @ (J[g].T @ Y1[g])
            else:
                second += w[g] * float(np.sum(Y2[g] * (Jm[g] @ factors[g].solve(WcY[g]))))
                YJY = YJY + w[g] * Y2[g].T @ Jm[g] @ Y1[g]
        return first - 2.0 * second + float(np.sum(YWcY * np.asarray(YJY).T))

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
