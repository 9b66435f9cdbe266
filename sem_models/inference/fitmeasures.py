"""Fit measures, named as lavaan's ``fitMeasures()`` with ``.`` replaced by ``_``.

Formulas (lavaan's definitions; Bentler 1990 for CFI, Tucker & Lewis 1973 for TLI,
Steiger & Lind 1980 / Browne & Cudeck 1993 for RMSEA and its interval, Steiger 1998 for the
multiple-group RMSEA factor sqrt(G), Bentler 1995 for SRMR):

* ``chisq = 2 N fmin``; baseline: the independence model (free variances and means; observed
  exogenous covariates keep their sample covariances when ``fixed_x``)
* ``cfi = 1 - max(X2 - df, 0) / max(X2 - df, X2b - dfb, 0)``
* ``tli = (X2b/dfb - X2/df) / (X2b/dfb - 1)``
* ``rmsea = sqrt(G) sqrt(max(X2/df - 1, 0) / N)``; interval from the noncentral chi-square
* ``srmr``: per group the root mean square of the standardized residuals of the (co)variances
  (and of the means, with a mean structure), weighted over groups by N_g / N
* ``logl``, ``aic = -2 logl + 2 npar``, ``bic = -2 logl + npar log N``,
  ``bic2`` with ``N* = (N + 2) / 24`` (Sclove 1987)
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..estimation.data import labels_index
from .distributions import ncx2_cdf, ncx2_noncentrality, ncx2_sf

__all__ = ["fit_measures", "rmsea_measures", "incremental_measures", "residual_measures"]

LOG_2PI = np.log(2 * np.pi)


def rmsea_measures(chisq: float, df: float, ntotal: int, n_groups: int, level: float = 0.90,
                   close: float = 0.05, notclose: float = 0.08, suffix: str = "",
                   c_hat: float = 1.0) -> dict:
    """RMSEA, its confidence interval and tests of close / not-close fit.

    ``c_hat`` is the scaling factor of the robust RMSEA (Brosseau-Liard, Savalei & Li 2012;
    lavaan's ``lav_fit_rmsea``): ``sqrt(G) sqrt(max(X2 / (N df) - c / N, 0))``, interval
    ``sqrt(G) sqrt(c lambda / (N df))`` and p-values with noncentrality
    ``N df rmsea0^2 / (c G)``; ``c_hat = 1`` is the ordinary RMSEA.
    """
    out = {}
    G = n_groups
    if not np.isfinite(df) or df <= 0:
        return {f"rmsea{suffix}": 0.0, f"rmsea_ci_lower{suffix}": 0.0,
                f"rmsea_ci_upper{suffix}": 0.0, f"rmsea_pvalue{suffix}": np.nan,
                f"rmsea_notclose_pvalue{suffix}": np.nan}
    out[f"rmsea{suffix}"] = np.sqrt(max(chisq / (ntotal * df) - c_hat / ntotal, 0.0)) * np.sqrt(G)

    def ncp_for(prob):
        # the noncentrality lambda with P(X2 <= chisq; df, lambda) = prob
        return ncx2_noncentrality(chisq, df, prob)

    lam_lo = ncp_for((1 + level) / 2)
    lam_hi = ncp_for((1 - level) / 2)
    out[f"rmsea_ci_lower{suffix}"] = np.sqrt(c_hat * lam_lo / (ntotal * df)) * np.sqrt(G)
    out[f"rmsea_ci_upper{suffix}"] = np.sqrt(c_hat * lam_hi / (ntotal * df)) * np.sqrt(G)
    out[f"rmsea_ci_level{suffix}"] = level
    ncp_close = ntotal * df * close ** 2 / (c_hat * G)
    out[f"rmsea_pvalue{suffix}"] = float(ncx2_sf(chisq, df, ncp_close))
    out[f"rmsea_close_h0{suffix}"] = close
    ncp_notclose = ntotal * df * notclose ** 2 / (c_hat * G)
    out[f"rmsea_notclose_pvalue{suffix}"] = float(ncx2_cdf(chisq, df, ncp_notclose))
    out[f"rmsea_notclose_h0{suffix}"] = notclose
    return out


def incremental_measures(chisq: float, df: float, base_chisq: float, base_df: float,
                         suffix: str = "") -> dict:
    """CFI, TLI (= NNFI), RFI, NFI, PNFI, IFI and RNI against the baseline model."""
    out = {}
    t1, t0 = chisq - df, base_chisq - base_df
    denom = max(t1, t0, 0.0)
    out[f"cfi{suffix}"] = 1.0 - max(t1, 0.0) / denom if denom > 0 else 1.0
    if df > 0 and base_df > 0:
        tli = (base_chisq / base_df - chisq / df) / (base_chisq / base_df - 1.0)
    else:
        tli = 1.0
    out[f"tli{suffix}"] = tli
    out[f"nnfi{suffix}"] = tli
    # lavaan leaves RFI and NFI undefined when the model has more df than the baseline
    # a baseline without degrees of freedom (e.g. one observed variable) leaves NFI, PNFI and
    # IFI undefined (lavaan: NA)
    with np.errstate(divide="ignore", invalid="ignore"):
        nfi = 1 - np.float64(chisq) / base_chisq if base_df > 0 else np.nan
        valid = df <= base_df
        out[f"rfi{suffix}"] = ((1 - (chisq / df) / (base_chisq / base_df)) if df > 0 else 1.0) \
            if valid else np.nan
        out[f"nfi{suffix}"] = nfi if valid else np.nan
        out[f"pnfi{suffix}"] = (df / base_df) * nfi if base_df > 0 else np.nan
        out[f"ifi{suffix}"] = (np.float64(base_chisq) - chisq) / (base_chisq - df) \
            if base_df > 0 else np.nan
    out[f"rni{suffix}"] = (1.0 - t1 / t0 if t0 != 0 else 1.0) if base_df > 0 else np.nan
    return out


def robust_incremental_measures(chisq: float, df: float, c: float, base_chisq: float,
                                base_df: float, c_base: float) -> dict:
    """Robust CFI / TLI / RNI (Brosseau-Liard & Savalei 2014; lavaan's ``lav_fit_cfi`` with
    ``c.hat``): ``T - c df`` replaces ``T - df`` for the model and the baseline, T the
    standard statistics and c the scaling factors (FIML-corrected ones under FIML)."""
    if not all(np.isfinite([chisq, df, c, base_chisq, base_df, c_base])):
        return {k: np.nan for k in ("cfi_robust", "tli_robust", "nnfi_robust", "rni_robust")}
    if not (df > 0 and c != 1 and c_base != 1):
        c = c_base = 1.0
    return incremental_from_excess(chisq - c * df, base_chisq - c_base * base_df, df, base_df)


def incremental_from_excess(t1: float, t0: float, df: float, base_df: float) -> dict:
    """CFI, TLI (NNFI) and RNI from the model's and the baseline's excess statistics
    ``t1 = T - c df`` and ``t0 = T_b - c_b df_b`` (Bentler 1990; the robust versions with the
    scaling factors c of Brosseau-Liard & Savalei 2014)."""
    num, den = max(t1, 0.0), max(t1, t0, 0.0)
    cfi = 1.0 if (np.isclose(num, 0.0) and np.isclose(den, 0.0)) else 1.0 - num / den
    tl1, tl2 = t1 * base_df, t0 * df
    tli = 1.0 - tl1 / tl2 if df > 0 and abs(tl2) > 0 else 1.0
    rni = 1.0 - t1 / t0 if not np.isclose(t0, 0.0) else np.nan
    return {"cfi_robust": cfi, "tli_robust": tli, "nnfi_robust": tli, "rni_robust": rni}


@functools.lru_cache(maxsize=16)
def _upper_triangle(p: int) -> tuple:
    """Indices of the upper triangle of a p x p matrix, with and without the diagonal."""
    return np.triu_indices(p), np.triu_indices(p, 1)


def residual_measures(sample_cov, sample_mean, implied_cov, implied_mean,
                      meanstructure: bool) -> dict:
    """RMR, SRMR (Bentler's and Mplus') and CRMR of one group, as lavaan defines them.

    * ``rmr``: root mean square of the raw residuals of the non-duplicated (co)variances
      (and means);
    * ``srmr_bentler``: residuals divided by the sample standard deviations,
      ``(s_ij - sigma_ij) / sqrt(s_ii s_jj)`` and ``(m_i - mu_i) / sqrt(s_ii)`` (Bentler 1995);
    * ``srmr_mplus``: differences of correlations off the diagonal,
      ``(s_ii - sigma_ii) / s_ii`` on it, ``m_i / sqrt(s_ii) - mu_i / sqrt(sigma_ii)``;
    * ``crmr``: differences of correlations, diagonal excluded (means as in ``srmr_bentler``).
    """
    p = len(sample_mean)
    var_s, var_m = sample_cov.diagonal(), implied_cov.diagonal()
    sd_s, sd_m = np.sqrt(var_s), np.sqrt(var_m)
    raw = sample_cov - implied_cov
    bentler = raw / np.outer(sd_s, sd_s)
    corr = sample_cov / np.outer(sd_s, sd_s) - implied_cov / np.outer(sd_m, sd_m)
    mplus = corr.copy()
    np.fill_diagonal(mplus, (var_s - var_m) / var_s)
    upper, strict = _upper_triangle(p)
    # sums of squares of each set of residuals and their counts: every RMS is a ratio of them
    squares = {name: (float(x @ x), x.size) for name, x in (
        ("raw", raw[upper]), ("bentler", bentler[upper]), ("mplus", mplus[upper]),
        ("corr", corr[strict]))}
    mean_raw = sample_mean - implied_mean
    mean_bentler = mean_raw / sd_s
    mean_mplus = sample_mean / sd_s - implied_mean / sd_m
    means = {"raw": mean_raw, "bentler": mean_bentler, "mplus": mean_mplus, "corr": mean_bentler}

    def rms(name: str, with_means: bool) -> float:
        total, count = squares[name]
        if with_means:
            total, count = total + float(means[name] @ means[name]), count + p
        return float(np.sqrt(total / count)) if count else 0.0

    kinds = (("rmr", "raw"), ("srmr_bentler", "bentler"), ("srmr_mplus", "mplus"),
             ("crmr", "corr"))
    out = {f"{key}_nomean": rms(name, False) for key, name in kinds}
    out.update({key: rms(name, True) if meanstructure else out[f"{key}_nomean"]
                for key, name in kinds})
    out["srmr"] = out["srmr_bentler"]
    return out


def fit_measures(fit) -> pd.Series:
    """All fit measures of a fitted model as a pandas Series (lavaan's names, ``.`` -> ``_``)."""
    stats = fit._test_statistics()
    out: dict = {"npar": stats["npar"], "fmin": stats["fmin"], "chisq": stats["chisq"],
                 "df": stats["df"], "pvalue": stats["pvalue"]}
    for key in ("chisq_scaled", "df_scaled", "pvalue_scaled", "chisq_scaling_factor"):
        if key in stats:
            out[key] = stats[key]
    # robust CFI/TLI/RMSEA: with a scaled test, and under FIML (lavaan's FIML-corrected ones)
    robust = "chisq_scaled" in stats or fit.options.get("missing") == "fiml"
    base = fit._baseline_statistics()
    out.update({"baseline_chisq": base["chisq"], "baseline_df": base["df"],
                "baseline_pvalue": base["pvalue"]})
    out.update(incremental_measures(stats["chisq"], stats["df"], base["chisq"], base["df"]))
    if "chisq_scaled" in stats:
        out.update({"baseline_chisq_scaled": base["chisq_scaled"],
                    "baseline_df_scaled": base["df"],
                    "baseline_pvalue_scaled": base["pvalue_scaled"],
                    "baseline_chisq_scaling_factor": base["chisq_scaling_factor"]})
        out.update(incremental_measures(stats["chisq_scaled"], stats["df"],
                                        base["chisq_scaled"], base["df"], suffix="_scaled"))
    if robust:
        out.update(fit._robust_incremental())
    ll = fit._loglik()
    n = fit.data.ntotal
    npar = stats["npar"]
    out["logl"] = ll["logl"]
    out["unrestricted_logl"] = ll["unrestricted_logl"]
    out["aic"] = -2 * ll["logl"] + 2 * npar
    out["bic"] = -2 * ll["logl"] + npar * np.log(n)
    out["ntotal"] = n
    out["bic2"] = -2 * ll["logl"] + npar * np.log((n + 2) / 24)
    for key in ("scaling_factor_h1", "scaling_factor_h0"):
        if key in stats:
            out[key] = stats[key]
    G = len(fit.data.groups)
    out.update(rmsea_measures(stats["chisq"], stats["df"], n, G))
    c = None
    if "chisq_scaled" in stats:
        # lavaan: the scaled RMSEA from the standard statistic on tr(U Gamma) degrees of freedom
        c = stats["chisq_scaling_factor"]
        df2 = stats.get("trace_ugamma", np.nan)
        df2 = df2 if np.isfinite(df2) and df2 != 0 else np.nan
        scaled = rmsea_measures(stats["chisq"], df2, n, G, suffix="_scaled")
        out.update({k: scaled.get(k, np.nan) for k in (
            "rmsea_scaled", "rmsea_ci_lower_scaled", "rmsea_ci_upper_scaled",
            "rmsea_pvalue_scaled", "rmsea_notclose_pvalue_scaled")})
    if robust:
        out.update(fit._robust_rmsea(c))
    out.update(fit._residual_measures())
    return measures_series(out)


def measures_series(values: dict) -> pd.Series:
    """Fit measures as a float Series on the shared index of their names
    (:func:`~sem_models.estimation.data.labels_index`)."""
    return pd.Series(np.array([np.nan if v is None else v for v in values.values()], float),
                     index=labels_index(tuple(values)))
