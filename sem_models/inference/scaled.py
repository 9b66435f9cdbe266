"""Scaled test statistics (Satorra-Bentler, Yuan-Bentler), the baseline model's tests and the
FIML-corrected robust fit indices; formulas in :mod:`sem_models.inference.sandwich`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..estimation.fiml import FIMLGroupLoss, MissingPatterns, em_saturated
from .options import _test_information_kind, scaled_test_name
from .sandwich import RobustEvaluator, _block_diag, _evaluator, _h1, _inverse_nonzero, _ml_discrepancy

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
