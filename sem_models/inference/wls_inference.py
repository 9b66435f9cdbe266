"""Inference for the weighted-least-squares family (GLS, WLS, DWLS, ULS and their robust
variants WLSM, WLSMV, ULSM, ULSMV) and for MLMV, as lavaan 0.6-14 computes it.

Everything is built from per-group pieces (any statistics: continuous moments or, later,
thresholds and polychoric correlations): the Jacobian ``Delta_g`` of the model statistics in
the reduced parameters z, a weight ``V_g`` and the asymptotic covariance ``Gamma_g`` of
``sqrt(N_g) s_g``, with ``w_g = N_g / N``.  For the WLS family ``V_g`` is the estimator's
weight matrix W_g (:class:`~sem_models.estimation.wls.WLSGroupLoss`); for MLMV it is the
expected h1 information at the implied moments and Gamma the ADF one
(:mod:`sem_models.inference.sandwich`).

* **Information** ``E = sum_g w_g Delta_g' V_g Delta_g`` (lavaan's expected information).
* **Standard errors**: ``se="standard"``: ``E^-1 / (N - G)``; ``se="robust.sem"``:
  ``E^-1 (sum_g w_g Delta_g' V_g Gamma_g V_g Delta_g) E^-1 / (N - G)`` (Browne 1984, eq.
  2.12; Satorra 1989; Muthen, du Toit & Spisic 1997).  lavaan divides by ``N - G`` for every
  estimator that is not ML (``lav_model_vcov``); MLMV (ML) uses N and the ML machinery.
  For ULS and DWLS "standard" SEs are lavaan's ``(Delta' W Delta)^-1 / (N - G)``, which is not a
  consistent covariance matrix unless W is the inverse of Gamma: use the robust variants.
* **Test statistic** ``T = 2 N fmin = sum_g (N_g - 1) (s_g - sigma_g)' W_g (s_g - sigma_g)``
  (Browne 1984, eq. 2.20 for WLS); for ULS lavaan gives no p-value (reference distribution
  unknown).
* **Robust tests** from ``U = V - V Delta E^-1 Delta' V`` (block diagonal V with blocks
  ``w_g V_g``, Gamma with blocks ``Gamma_g / w_g``): ``satorra.bentler`` (Satorra & Bentler
  1994): ``c = tr(U Gamma) / df``, ``T / c``; ``scaled.shifted`` (Asparouhov & Muthen 2010;
  lavaan's default for WLSMV, ULSMV, MLMV): ``a = sqrt(df / tr((U Gamma)^2))``,
  ``T3 = a T + df - a tr(U Gamma)``, reported scaling factor ``1 / a`` and shift
  ``df - a tr(U Gamma)``; ``mean.var.adjusted`` (Satterthwaite 1941; Satorra & Bentler 1994):
  ``df' = tr(U Gamma)^2 / tr((U Gamma)^2)``, ``T / (tr(U Gamma) / df')`` on df'.
* **Baseline**: the independence model fitted by the same estimator (linear in its parameters,
  so its WLS fit is one weighted least-squares solve) with the same tests.
* **Fit measures** (lavaan's ``fitMeasures``): CFI/TLI/... from the standard, scaled and
  robust statistics, with lavaan's ``c.hat = tr(U Gamma) / df`` for the robust ones
  (Brosseau-Liard, Savalei & Li 2012; Brosseau-Liard & Savalei 2014); RMSEA with ``N - G``
  for the WLS family; SRMR from the sample and implied moments.
* **Difference tests** (:func:`wls_difference_test`): Satorra (2000) scaled-shifted (lavaan's
  default for these fits), Satorra & Bentler (2001) and (2010).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd

from ..estimation.wls import WLS_BASE, WLS_LOSS_ESTIMATORS, MomentStatistics
from .distributions import chi2_sf
from .fitmeasures import incremental_from_excess, measures_series

__all__ = [
    "WLS_FAMILY", "WLS_SCALED_TESTS", "wls_options", "wls_scaled_test", "wls_vcov",
    "wls_test_statistics", "wls_baseline_statistics", "wls_fit_measures", "wls_difference_test",
]

#: estimators whose SEs, tests and fit measures come from this module
WLS_FAMILY = WLS_LOSS_ESTIMATORS + ("MLMV",)
#: the robust tests of this family (lavaan's names)
WLS_SCALED_TESTS = ("satorra.bentler", "scaled.shifted", "mean.var.adjusted")

_DEFAULTS = {  # lavaan 0.6-14 lav_options_set: (se, test)
    "GLS": ("standard", "standard"), "WLS": ("standard", "standard"),
    "DWLS": ("standard", "standard"), "ULS": ("standard", "standard"),
    "WLSM": ("robust.sem", "satorra.bentler"), "ULSM": ("robust.sem", "satorra.bentler"),
    "WLSMV": ("robust.sem", "scaled.shifted"), "ULSMV": ("robust.sem", "scaled.shifted"),
    "MLMV": ("robust.sem", "scaled.shifted"),
}


# ----------------------------------------------------------------------------- options
def wls_options(estimator: str, missing: str, cluster: Optional[str], se=None, test=None,
                information=None) -> dict:
    """lavaan's se / test / information for the WLS family and MLMV (lavaan 0.6-14 defaults).

    GLS, WLS, DWLS, ULS: ``se="standard"``, ``test="standard"``; WLSM, ULSM: ``"robust.sem"``
    and ``"satorra.bentler"``; WLSMV, ULSMV, MLMV: ``"robust.sem"`` and ``"scaled.shifted"``.
    ``se`` may be ``"standard"``, ``"robust.sem"`` (not GLS, as lavaan) or ``"none"``;
    ``test`` ``"standard"``,
    ``"none"``, ``"satorra.bentler"``, ``"scaled.shifted"`` or ``"mean.var.adjusted"`` (GLS and
    WLS: standard only, as lavaan); the information is the expected one.  Complete data only.
    """
    if missing == "fiml":
        raise ValueError(
            f"estimator={estimator!r} cannot be combined with missing='fiml': these "
            "estimators fit sample statistics of complete cases (lavaan refuses missing='ml' "
            "for them too); use missing='listwise', or estimator='ML' / 'MLR' with "
            "missing='fiml' for full-information estimation")
    if cluster is not None:
        raise ValueError(f"estimator={estimator!r} does not support cluster=; use "
                         "estimator='MLR' (or 'ML') with cluster= for cluster-robust inference")
    d_se, d_test = _DEFAULTS[estimator]
    se = d_se if se is None else se
    test = d_test if test is None else test
    information = "expected" if information is None else information
    tests = [test] if isinstance(test, str) else list(test)
    known_se = ("standard", "none") if estimator == "GLS" else ("standard", "robust.sem", "none")
    if se not in known_se:
        raise ValueError(f"se={se!r} is not supported with estimator={estimator!r}; choose "
                         f"from {known_se}")
    allowed = (("standard", "none") if estimator in ("GLS", "WLS")
               else ("standard", "none") + WLS_SCALED_TESTS)
    for t in tests:
        if t not in allowed:
            raise ValueError(f"test={t!r} is not supported with estimator={estimator!r}; "
                             f"choose from {allowed}")
    if information != "expected":
        raise ValueError(f"information={information!r}: estimator={estimator!r} uses the "
                         "expected information only")
    return {"se": se, "test": test, "information": information,
            "observed_information": ("hessian", "hessian"), "h1_information": "structured"}


def wls_scaled_test(fit) -> Optional[str]:
    """The robust test of a WLS-family / MLMV fit (None: standard only)."""
    from .options import first_test
    return first_test(fit, WLS_SCALED_TESTS)


def _is_ml(fit) -> bool:
    return fit.options.get("estimator") == "MLMV"


def _n_inference(fit) -> float:
    """lavaan's N of SEs and RMSEA: N for ML (MLMV), N - G for the least-squares estimators."""
    return float(fit.ntotal) if _is_ml(fit) else float(fit.ntotal - fit.n_groups)


# ------------------------------------------------------------------------------ pieces
class WLSPieces:
    """Per-group ``Delta_g`` (in z), ``V_g``, ``Gamma_g`` and ``w_g`` of a fit at parameters z,
    and the information, its inverse and the ``U Gamma`` traces built from them."""

    def __init__(self, deltas: list, V: list, gamma: list, weights: np.ndarray,
                 active: Optional[np.ndarray] = None):
        self.deltas = deltas
        self.V = V
        self.gamma = gamma
        self.weights = np.asarray(weights, float)
        self.active = active

    @classmethod
    def from_fit(cls, fit, z: Optional[np.ndarray] = None) -> "WLSPieces":
        own = z is None
        if _is_ml(fit):
            from .sandwich import RobustEvaluator, _evaluator, _h1
            ev = _evaluator(fit) if own else RobustEvaluator(fit, z)
            return cls(ev.deltas, ev.structured_expected, _h1(fit).gamma, fit.problem.weights,
                       ev.active)
        z = fit.result.z if own else np.asarray(z, float)
        active = fit.result.active if own and fit.result.active is not None \
            and fit.result.active.any() else None
        return cls(wls_deltas(fit.problem, z), [loss.weight_matrix for loss in fit.problem.losses],
                   [loss.gamma for loss in fit.problem.losses], fit.problem.weights, active)

    def _keep(self) -> np.ndarray:
        n = self.deltas[0].shape[1]
        return np.ones(n, bool) if self.active is None else ~self.active

    def information(self) -> np.ndarray:
        """``E = sum_g w_g Delta_g' V_g Delta_g`` (computed once)."""
        if getattr(self, "_information", None) is None:
            self._information = sum(w * D.T @ V @ D
                                    for w, D, V in zip(self.weights, self.deltas, self.V))
        return self._information

    def inverse_information(self) -> np.ndarray:
        if getattr(self, "_inverse", None) is None:
            info = self.information()
            keep = self._keep()
            out = np.zeros_like(info)
            out[np.ix_(keep, keep)] = np.linalg.inv(info[np.ix_(keep, keep)])
            self._inverse = out
        return self._inverse

    def _need_gamma(self) -> None:
        if any(G is None for G in self.gamma):
            raise ValueError("robust standard errors and tests need the asymptotic covariance "
                             "matrix Gamma of the sample statistics, which this fit does not "
                             "have (e.g. estimator='GLS'): use se='standard', test='standard'")

    def vcov_z(self, se: str, n: float) -> np.ndarray:
        q = self.deltas[0].shape[1]
        if se == "none":
            return np.full((q, q), np.nan)
        Einv = self.inverse_information()
        if se == "standard":
            return Einv / n
        if se == "robust.sem":
            self._need_gamma()
            meat = sum(w * (V @ D).T @ G @ (V @ D)
                       for w, D, V, G in zip(self.weights, self.deltas, self.V, self.gamma))
            return Einv @ meat @ Einv / n
        raise ValueError(f"se={se!r} is not supported")

    def ugamma(self, Einv: Optional[np.ndarray] = None) -> tuple[float, float]:
        """``tr(U Gamma)`` and ``tr((U Gamma)^2)`` with ``U = V - V Delta E^-1 Delta' V``
        (lavaan's ``lav_test_satorra_bentler_trace_original``)."""
        self._need_gamma()
        Einv = self.inverse_information() if Einv is None else Einv
        # group by group, never the stacked matrices: with A_g = V_g Gamma_g,
        # C_g = Delta_g' A_g, F_g = w_g V_g Delta_g, M = sum C_g F_g, N = sum C_g A_g F_g:
        # U Gamma = blockdiag(A_g) - F E^-1 C, so tr(U Gamma) = sum tr(A_g) - tr(E^-1 M) and
        # tr((U Gamma)^2) = sum tr(A_g^2) - 2 tr(E^-1 N) + tr((E^-1 M)^2)
        trace = trace2 = 0.0
        q = Einv.shape[0]
        M = np.zeros((q, q))
        N = np.zeros((q, q))
        for wg, D, V, G in zip(self.weights, self.deltas, self.V, self.gamma):
            A = V @ G
            C = D.T @ A
            F = wg * (V @ D)
            M += C @ F
            N += (C @ A) @ F
            trace += float(np.trace(A))
            trace2 += float(np.sum(A * A.T))
        EM = Einv @ M
        trace -= float(np.trace(EM))
        trace2 += float(np.sum(EM * EM.T)) - 2.0 * float(np.sum(Einv * N.T))
        return trace, trace2


def wls_deltas(problem, z: np.ndarray) -> list:
    """``Delta_g = d sigma_g / dz`` per group for losses with a statistics map."""
    values = problem.values(z)
    n_free = len(problem.pmap.free_rows)
    out = []
    for g, loss in enumerate(problem.losses):
        mom = problem.model.moments(values, g)
        pos, d_cov, d_mean = problem.group_jacobian(values, g, mom)
        delta = loss.statistics_map.jacobian(mom, d_cov, d_mean)
        full = np.zeros((delta.shape[0], n_free))
        full[:, pos] = delta
        out.append(full @ problem.pmap.T)
    return out


def _pieces(fit) -> WLSPieces:
    cache = fit.__dict__.setdefault("_wls_cache", {})
    if "pieces" not in cache:
        cache["pieces"] = WLSPieces.from_fit(fit)
    return cache["pieces"]


# -------------------------------------------------------------------------------- vcov
def wls_vcov(fit, names: Optional[list] = None) -> np.ndarray:
    """Covariance matrix of the free parameter-table rows (``se`` option; see the module)."""
    if _is_ml(fit):
        from .sandwich import robust_vcov
        return robust_vcov(fit, names)
    T = fit.problem.pmap.T
    try:
        vz = _pieces(fit).vcov_z(fit.options.get("se", "standard"), _n_inference(fit))
    except np.linalg.LinAlgError:
        from .wald import IdentificationWarning
        warnings.warn("the information matrix is singular: the model is probably not "
                      "identified; standard errors are not reported"
                      + (f" (parameters: {names[:8]})" if names else ""),
                      IdentificationWarning, stacklevel=4)
        return np.full((T.shape[0], T.shape[0]), np.nan)
    return T @ vz @ T.T


# ------------------------------------------------------------------------------- tests
def _scaled(T: float, df: int, trace: float, trace2: float, test: str) -> dict:
    """The robust statistic from T and the traces (lavaan's ``lav_test_satorra_bentler``)."""
    out = {"trace_ugamma": trace, "trace_ugamma2": trace2, "scaled_test": test}
    if df <= 0:
        out.update({"chisq_scaled": T, "df_scaled": df, "pvalue_scaled": np.nan,
                    "chisq_scaling_factor": np.nan})
        return out
    if test == "satorra.bentler":
        c = trace / df
        c = c if c >= 0 else np.nan
        stat, dfs = T / c, df
    elif test == "scaled.shifted":
        a = np.sqrt(df / trace2)
        c = 1.0 / a
        shift = df - a * trace
        stat, dfs = T * a + shift, df
        out["chisq_shift_parameter"] = shift
    else:  # mean.var.adjusted
        dfs = trace ** 2 / trace2
        c = trace / dfs
        stat = T / c
    out.update({"chisq_scaled": stat, "df_scaled": dfs,
                "pvalue_scaled": float(chi2_sf(stat, dfs)) if np.isfinite(stat) else np.nan,
                "chisq_scaling_factor": c})
    return out


def wls_test_statistics(fit) -> dict:
    """The standard test (``chisq = 2 N fmin``; no p-value for ULS, as lavaan) and the robust
    one of the ``test`` option."""
    out = fit._standard_test()
    out["chisq"] = max(out["chisq"], 0.0)
    if WLS_BASE.get(fit.options.get("estimator")) == "ULS":
        out["pvalue"] = np.nan
    test = wls_scaled_test(fit)
    if test is not None:
        out.update(_scaled(out["chisq"], out["df"], *_traces(_pieces(fit)), test))
    return out


def _traces(pieces: "WLSPieces") -> tuple[float, float]:
    """``tr(U Gamma)``, ``tr((U Gamma)^2)``; NaN (with a warning) for a singular information."""
    try:
        return pieces.ugamma()
    except np.linalg.LinAlgError:
        from .wald import IdentificationWarning
        warnings.warn("the information matrix is singular (the model is probably not "
                      "identified): the robust test statistic is not available",
                      IdentificationWarning, stacklevel=5)
        return np.nan, np.nan


# ---------------------------------------------------------------------------- baseline
def _baseline_design(fit, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independence model of group g in statistics coordinates: ``(free, constant, n)``, the
    statistics it leaves free (mask), the values of the others and their number.  Continuous
    data: free variances (and means) of the non-exogenous variables; the exogenous covariates'
    block (and means) at their sample values with ``fixed_x``, free otherwise (as lavaan's
    ``lav_partable_indep_or_unrestricted``).  A statistics map may define
    ``baseline_design() -> (free, constant, n)`` for other statistics (ordinal data)."""
    loss = fit.problem.losses[g]
    own = getattr(loss.statistics_map, "baseline_design", None)
    if own is not None:  # a statistics map with its own independence model (ordinal data)
        return own()
    p = fit.model.n_ov
    smap = MomentStatistics(p, fit.model.meanstructure)
    ov = list(fit.model.ov_names)
    is_x = np.zeros(p, bool)
    is_x[[ov.index(v) for v in fit.variables.ov_x]] = True
    fixed_x = fit.options.get("fixed_x", True)
    free = np.zeros(smap.n_stats, bool)
    if smap.meanstructure:
        free[:p] = ~is_x if fixed_x else True
    diag = smap.rows == smap.cols
    x_block = is_x[smap.rows] & is_x[smap.cols]
    free[smap.offset:] = (diag & ~is_x[smap.rows]) | (x_block & (not fixed_x))
    const = np.zeros(smap.n_stats)
    if fixed_x:
        sample = smap.from_moments(loss.mean, loss.cov)
        fixed = smap.coordinates(np.flatnonzero(is_x))
        const[fixed] = sample[fixed]
    return free, const, smap.n_stats


def _baseline_wls(fit) -> dict:
    """Independence model fitted by the fit's WLS-type estimator: per group
    ``theta = (D' W D)^-1 D' W (s - c)`` (D selects the free statistics), its statistic
    ``sum_g (N_g - 1) r_g' W_g r_g`` and the pieces of its robust tests."""
    chisq = 0.0
    deltas = []
    blocks = []
    for g, loss in enumerate(fit.problem.losses):
        free, const, n = _baseline_design(fit, g)
        D = np.zeros((n, int(free.sum())))
        D[np.flatnonzero(free), np.arange(D.shape[1])] = 1.0
        W = loss.weight_matrix
        target = loss.statistics - const
        DW = D.T @ W
        theta = np.linalg.lstsq(DW @ D, DW @ target, rcond=None)[0]
        r = target - D @ theta
        chisq += max((loss.nobs - 1) * float(r @ W @ r), 0.0)
        blocks.append(D)
    total = sum(D.shape[1] for D in blocks)
    start = 0
    for D in blocks:
        full = np.zeros((D.shape[0], total))
        full[:, start:start + D.shape[1]] = D
        start += D.shape[1]
        deltas.append(full)
    pieces = WLSPieces(deltas, [loss.weight_matrix for loss in fit.problem.losses],
                       [loss.gamma for loss in fit.problem.losses], fit.problem.weights)
    return {"chisq": chisq, "pieces": pieces}


def _baseline_ml(fit) -> dict:
    """Independence model by ML (MLMV): complete-data ML statistic and robust pieces."""
    from .sandwich import _ml_discrepancy
    from .scaled import _BaselineEvaluator, _baseline
    base = _baseline(fit)
    chisq = 0.0
    for g, loss in enumerate(fit.problem.losses):
        mean_b, cov_b = base.moments[g]
        chisq += loss.nobs * _ml_discrepancy(loss.cov, loss.mean, cov_b, mean_b,
                                             fit.model.meanstructure)
    ev = _BaselineEvaluator(fit)
    pieces = WLSPieces(ev.deltas, ev.structured_expected, base.h1.gamma, fit.problem.weights)
    return {"chisq": chisq, "pieces": pieces}


def wls_baseline_statistics(fit) -> dict:
    """The baseline (independence) model's statistics by the fit's estimator and test."""
    cache = fit.__dict__.setdefault("_wls_cache", {})
    if "baseline" in cache:
        return dict(cache["baseline"])
    base = _baseline_ml(fit) if _is_ml(fit) else _baseline_wls(fit)
    df = fit._baseline_df()
    chisq = base["chisq"]
    uls = WLS_BASE.get(fit.options.get("estimator")) == "ULS"
    out = {"chisq": chisq, "df": df,
           "pvalue": np.nan if uls else float(chi2_sf(chisq, df))}
    test = wls_scaled_test(fit)
    if test is not None:
        out.update(_scaled(chisq, df, *_traces(base["pieces"]), test))
    cache["baseline"] = out
    return dict(out)


# ------------------------------------------------------------------------ fit measures
def wls_fit_measures(fit) -> pd.Series:
    """Fit measures of a WLS-family / MLMV fit with lavaan's ``fitMeasures`` names (``.`` ->
    ``_``); ``chisq_shift_parameter`` is lavaan's ``shift.parameter`` of the scaled-shifted
    test (``lavInspect(fit, "test")``)."""
    from .fitmeasures import incremental_measures, rmsea_measures
    stats = fit._test_statistics()
    base = fit._baseline_statistics()
    test = wls_scaled_test(fit)
    N = _n_inference(fit)
    G = fit.n_groups
    X2, df = stats["chisq"], stats["df"]
    out: dict = {"npar": stats["npar"], "fmin": stats["fmin"], "chisq": X2, "df": df,
                 "pvalue": stats["pvalue"]}
    if test is not None:
        for key in ("chisq_scaled", "df_scaled", "pvalue_scaled", "chisq_scaling_factor",
                    "chisq_shift_parameter"):
            if key in stats:
                out[key] = stats[key]
    out.update({"baseline_chisq": base["chisq"], "baseline_df": base["df"],
                "baseline_pvalue": base["pvalue"]})
    if test is not None:
        out.update({"baseline_chisq_scaled": base["chisq_scaled"],
                    "baseline_df_scaled": base["df_scaled"],
                    "baseline_pvalue_scaled": base["pvalue_scaled"],
                    "baseline_chisq_scaling_factor": base["chisq_scaling_factor"]})
    out.update(incremental_measures(X2, df, base["chisq"], base["df"]))
    robust = test in ("satorra.bentler", "scaled.shifted")
    if test is not None:
        out.update(incremental_measures(stats["chisq_scaled"], stats["df_scaled"],
                                        base["chisq_scaled"], base["df_scaled"],
                                        suffix="_scaled"))
    # lavaan's c.hat of the robust measures: tr(U Gamma) / df for both robust tests
    c_hat = _c_hat(stats, df) if robust else np.nan
    if robust:
        c_null = _c_hat(base, base["df"])
        out.update(_robust_incremental(X2, df, c_hat, base["chisq"], base["df"], c_null,
                                       fallback=test == "satorra.bentler"))
    if _is_ml(fit):
        ll = fit._loglik()
        npar = stats["npar"]
        n = fit.ntotal
        out.update({"logl": ll["logl"], "unrestricted_logl": ll["unrestricted_logl"],
                    "aic": -2 * ll["logl"] + 2 * npar,
                    "bic": -2 * ll["logl"] + npar * np.log(n),
                    "bic2": -2 * ll["logl"] + npar * np.log((n + 2) / 24)})
    out["ntotal"] = fit.ntotal
    out.update(rmsea_measures(X2, df, N, G))
    for key, value in (("rmsea_ci_level", 0.90), ("rmsea_close_h0", 0.05),
                       ("rmsea_notclose_h0", 0.08)):
        out.setdefault(key, value)
    if test is not None:
        if test == "scaled.shifted":
            XX2, df2 = stats["chisq_scaled"], df
        else:
            XX2, df2 = X2, stats.get("trace_ugamma", np.nan)
            df2 = df2 if np.isfinite(df2) and df2 != 0 else np.nan
        scaled = rmsea_measures(XX2, df2, N, G, suffix="_scaled")
        out.update({k: scaled.get(k, np.nan) for k in (
            "rmsea_scaled", "rmsea_ci_lower_scaled", "rmsea_ci_upper_scaled",
            "rmsea_pvalue_scaled", "rmsea_notclose_pvalue_scaled")})
    if robust:
        point = rmsea_measures(X2, df, N, G, c_hat=c_hat)
        interval = rmsea_measures(stats["chisq_scaled"], df, N, G,
                                  c_hat=stats["chisq_scaling_factor"])
        out.update({"rmsea_robust": point["rmsea"],
                    "rmsea_ci_lower_robust": interval["rmsea_ci_lower"],
                    "rmsea_ci_upper_robust": interval["rmsea_ci_upper"],
                    "rmsea_pvalue_robust": interval["rmsea_pvalue"],
                    "rmsea_notclose_pvalue_robust": interval["rmsea_notclose_pvalue"]})
    out.update(fit._residual_measures())
    return measures_series(out)


def _c_hat(stats: dict, df: float) -> float:
    """lavaan's ``c.hat`` (``lav_fit_cfi_lavobject``) by lavaan's arithmetic:
    ``scaling.factor`` for the Satorra-Bentler test, ``scaling.factor * (df - shift) / df``
    (= ``tr(U Gamma) / df``) for the scaled-shifted one."""
    if not df > 0:
        return np.nan
    if "chisq_shift_parameter" in stats:
        return stats["chisq_scaling_factor"] * (df - stats["chisq_shift_parameter"]) / df
    return stats["chisq_scaling_factor"]


def _robust_incremental(X2: float, df: float, c: float, X2_null: float, df_null: float,
                        c_null: float, fallback: bool = True) -> dict:
    """Robust CFI / TLI / RNI (Brosseau-Liard & Savalei 2014; lavaan's ``lav_fit_cfi``,
    ``lav_fit_tli``, ``lav_fit_rni`` with ``c.hat``): ``T - c df`` in place of ``T - df`` for
    the model and the baseline.  lavaan uses the standard formulas instead when a ``c`` equals
    1 exactly.  For continuous DWLS the baseline's ``c = tr(U Gamma) / df`` is 1 in exact
    arithmetic: with the Satorra-Bentler test (WLSM) lavaan's c is exactly 1 and it falls back
    (``fallback=True``: here when ``|c - 1| < 1e-12``); with the scaled-shifted test (WLSMV)
    lavaan computes c as ``scaling.factor * (df - shift) / df``, which differs from 1 by a
    rounding error, so lavaan almost always takes the robust formulas, and so does this
    function (``fallback=False``); rarely lavaan's rounding gives exactly 1 and it reports the
    standard values instead."""
    if df <= 0:  # no scaling: the standard formulas (lavaan)
        c = c_null = 1.0
    if not all(np.isfinite([X2, df, c, X2_null, df_null, c_null])):
        return {k: np.nan for k in ("cfi_robust", "tli_robust", "nnfi_robust", "rni_robust")}
    one = fallback and (abs(c - 1) < 1e-12 or abs(c_null - 1) < 1e-12)
    if df > 0 and not one:
        t1, t0 = X2 - c * df, X2_null - c_null * df_null
    else:
        t1, t0 = X2 - df, X2_null - df_null
    return incremental_from_excess(t1, t0, df, df_null)


# ---------------------------------------------------------------------- difference tests
def wls_difference_test(fit0, fit1, method: str = "default") -> dict:
    """Scaled difference test of nested WLS-family / MLMV fits (lavaan's ``lavTestLRT``).

    ``method="default"``: Satorra (2000) with the delta-method restriction matrix, scaled and
    shifted (``T_d = a (T0 - T1) + b``, Asparouhov & Muthen 2010) for the scaled-shifted and
    mean-and-variance adjusted tests, ``(T0 - T1) / (tr(U Gamma) / m)`` for the
    Satorra-Bentler one; ``"satorra.bentler.2001"``: ``cd = (r0 c0 - r1 c1) / m`` with the fits'
    scaling factors (``1 / a`` for scaled-shifted fits); ``"satorra.bentler.2010"``: c1 from
    the less restricted model at the restricted model's estimates.  Fits without a robust test
    give the plain difference of the statistics.
    """
    from .difference import _values_for, satorra_2000_traces
    s0, s1 = fit0._test_statistics(), fit1._test_statistics()
    if s0["df"] < s1["df"]:
        fit0, fit1, s0, s1 = fit1, fit0, s1, s0
    T0, r0, T1, r1 = s0["chisq"], s0["df"], s1["chisq"], s1["df"]
    m = r0 - r1
    test = wls_scaled_test(fit1)
    if (test is None) != (wls_scaled_test(fit0) is None):
        raise ValueError("some models (but not all) have scaled test statistics")
    if test is None:
        method = "standard"
    elif method == "default":
        method = "satorra.bentler.2001" if test == "satorra.bentler" else "satorra.2000"
    out = {"method": method, "df_diff": int(m)}
    if m == 0 or method == "standard":
        diff = T0 - T1
        out.update(chisq_diff=float(diff),
                   pvalue=float(chi2_sf(diff, m)) if m > 0 else np.nan, scaling=np.nan)
        return out
    if method == "satorra.2000":
        p1 = WLSPieces.from_fit(fit1)
        p0 = WLSPieces.from_fit(fit0)
        res = satorra_2000_traces(p1.deltas, p0.deltas, p1.V, p1.information(), p1.gamma,
                                  p1.weights, m, scaled_shifted=test != "satorra.bentler")
        if "a" in res:
            T = res["a"] * (T0 - T1) + res["b"]
            out.update(chisq_diff=float(T), pvalue=float(chi2_sf(T, m)), scaling=np.nan,
                       a=float(res["a"]), b=float(res["b"]))
            return out
        cd = res["cd"]
    elif method in ("satorra.bentler.2001", "satorra.bentler.2010"):
        c0 = s0.get("chisq_scaling_factor", np.nan) if r0 > 0 else 1.0
        c1 = s1.get("chisq_scaling_factor", np.nan) if r1 > 0 else 1.0
        if method == "satorra.bentler.2010" and r1 > 0:
            values = _values_for(fit1, fit0)
            pmap = fit1.problem.pmap
            z10 = pmap.z_from_free(values[pmap.free_rows])
            trace, trace2 = WLSPieces.from_fit(fit1, z10).ugamma()
            c1 = _scaled(T1, r1, trace, trace2, test)["chisq_scaling_factor"]
        cd = (r0 * c0 - r1 * c1) / m
    else:
        raise ValueError(f"method={method!r}: choose 'satorra.2000', 'satorra.bentler.2001' "
                         "or 'satorra.bentler.2010'")
    if not np.isfinite(cd) or cd < 0:
        warnings.warn("the scaling factor of the difference test is negative; the scaled "
                      "difference is not available", UserWarning, stacklevel=3)
        cd = np.nan
    T = (T0 - T1) / cd
    out.update(chisq_diff=float(T), pvalue=float(chi2_sf(T, m)) if np.isfinite(T) else np.nan,
               scaling=float(cd))
    return out
