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
import math

import numpy as np
import pandas as pd

from ..estimation.data import labels_index
from .distributions import chi2_sf

__all__ = ["fit_measures", "rmsea_measures", "incremental_measures", "residual_measures",
           "group_residual_measures", "baseline_statistics"]

LOG_2PI = np.log(2 * np.pi)


def _sqrt(x: float) -> np.float64:
    """``np.sqrt`` of a scalar (NaN below 0) at the cost of ``math.sqrt``."""
    return np.float64(math.sqrt(x) if x >= 0 else math.nan)


def rmsea_measures(chisq: float, df: float, ntotal: int, n_groups: int, level: float = 0.90,
                   close: float = 0.05, notclose: float = 0.08, suffix: str = "",
                   c_hat: float = 1.0) -> dict:
    """RMSEA, its confidence interval and tests of close / not-close fit.

    ``c_hat`` is the scaling factor of the robust RMSEA (Brosseau-Liard, Savalei & Li 2012;
    lavaan's ``lav_fit_rmsea``): ``sqrt(G) sqrt(max(X2 / (N df) - c / N, 0))``, interval
    ``sqrt(G) sqrt(c lambda / (N df))`` and p-values with noncentrality
    ``N df rmsea0^2 / (c G)``; ``c_hat = 1`` is the ordinary RMSEA.
    """
    G = n_groups
    if not math.isfinite(df) or df <= 0:
        return {f"rmsea{suffix}": 0.0, f"rmsea_ci_lower{suffix}": 0.0,
                f"rmsea_ci_upper{suffix}": 0.0, f"rmsea_pvalue{suffix}": np.nan,
                f"rmsea_notclose_pvalue{suffix}": np.nan}
    sqrt_g = math.sqrt(G)
    ndf = ntotal * df
    # scipy.special's chi-square functions directly (as :mod:`.distributions` calls them):
    # the central CDF at the statistic is needed by both ends of the interval
    from scipy.special import chdtr, chndtr, chndtrinc
    cdf0 = chdtr(df, chisq)

    def noncentrality(prob):
        # lambda with P(X2 <= chisq; df, lambda) = prob; 0 when even lambda = 0 is below
        # (:func:`.distributions.ncx2_noncentrality`)
        return 0.0 if cdf0 < prob else float(chndtrinc(chisq, df, prob))

    def noncentral_cdf(ncp):  # :func:`.distributions.ncx2_cdf`
        return cdf0 if ncp <= 0 else chndtr(chisq, df, ncp)

    lam_lo = noncentrality((1 + level) / 2)
    lam_hi = noncentrality((1 - level) / 2)
    ncp_close = ndf * close ** 2 / (c_hat * G)
    ncp_notclose = ndf * notclose ** 2 / (c_hat * G)
    return {
        f"rmsea{suffix}": _sqrt(max(chisq / ndf - c_hat / ntotal, 0.0)) * sqrt_g,
        f"rmsea_ci_lower{suffix}": _sqrt(c_hat * lam_lo / ndf) * sqrt_g,
        f"rmsea_ci_upper{suffix}": _sqrt(c_hat * lam_hi / ndf) * sqrt_g,
        f"rmsea_ci_level{suffix}": level,
        f"rmsea_pvalue{suffix}": float(1.0 - noncentral_cdf(ncp_close)),
        f"rmsea_close_h0{suffix}": close,
        f"rmsea_notclose_pvalue{suffix}": float(noncentral_cdf(ncp_notclose)),
        f"rmsea_notclose_h0{suffix}": notclose}


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
def _residual_layout(p: int) -> tuple:
    """Flat positions of the upper triangle (diagonal included) of a p x p matrix, and the
    counts of the residuals of each kind (:data:`_RESIDUAL_KINDS`) without and with the p
    means."""
    rows, cols = np.triu_indices(p)
    k = len(rows)
    counts = np.array([k, k, k, k - p], float)[:, None]
    # a count of 0 (CRMR of one variable) has a sum of 0 and gives 0: divide by 1
    out = (rows * p + cols, np.maximum(counts, 1.0), counts + p)
    for array in out:  # shared between calls
        array.flags.writeable = False
    return out


#: sums of products over the last axis (``np.vecdot`` from NumPy 2, an einsum before)
_vecdot = getattr(np, "vecdot", None) or (lambda a, b: np.einsum("...i,...i->...", a, b))

_RESIDUAL_KINDS = ("rmr", "srmr_bentler", "srmr_mplus", "crmr")
_RESIDUAL_NAMES = tuple(f"{key}_nomean" for key in _RESIDUAL_KINDS) + _RESIDUAL_KINDS


def group_residual_measures(sample_covs, sample_means, implied_covs, implied_means,
                            meanstructure: bool, weights) -> dict:
    """RMR, SRMR (Bentler's and Mplus') and CRMR of several groups at once, combined over
    the groups with the given weights (N_g / N), as lavaan defines them.

    * ``rmr``: root mean square of the raw residuals of the non-duplicated (co)variances
      (and means);
    * ``srmr_bentler``: residuals divided by the sample standard deviations,
      ``(s_ij - sigma_ij) / sqrt(s_ii s_jj)`` and ``(m_i - mu_i) / sqrt(s_ii)`` (Bentler 1995);
    * ``srmr_mplus``: differences of correlations off the diagonal,
      ``(s_ii - sigma_ii) / s_ii`` on it, ``m_i / sqrt(s_ii) - mu_i / sqrt(sigma_ii)``;
    * ``crmr``: differences of correlations, diagonal excluded (means as in ``srmr_bentler``).

    The ``*_nomean`` versions leave the means out; without a mean structure the two agree.
    Arguments: the sample and implied covariances and means of the groups as arrays of
    shape (G, p, p) and (G, p) (or sequences of the groups' matrices), and the G weights.
    All groups go through one set of array operations.
    """
    S = np.asarray(sample_covs, float)
    Sig = np.asarray(implied_covs, float)
    G, p = S.shape[0], S.shape[1]
    upper, counts, counts_means = _residual_layout(p)
    var_s = S.diagonal(axis1=1, axis2=2)
    var_m = Sig.diagonal(axis1=1, axis2=2)
    sd_s, sd_m = np.sqrt(var_s), np.sqrt(var_m)
    # the four kinds of residual matrices (flattened), in the order of _RESIDUAL_KINDS
    res = np.empty((4, G, p * p))
    raw = np.subtract(S, Sig, out=res[0].reshape(G, p, p))
    outer_s = sd_s[:, :, None] * sd_s[:, None, :]
    np.divide(raw, outer_s, out=res[1].reshape(G, p, p))
    np.subtract(S / outer_s, Sig / (sd_m[:, :, None] * sd_m[:, None, :]),
                out=res[3].reshape(G, p, p))
    res[2] = res[3]
    res[2][:, ::p + 1] = (var_s - var_m) / var_s  # Mplus: relative residual variances
    res[3][:, ::p + 1] = 0.0  # CRMR: the diagonal is left out (and counted out)
    tri = res[:, :, upper]
    # sums of squares of each kind of residual per group and their counts: every RMS is a
    # ratio of them
    squares = _vecdot(tri, tri)
    values = np.empty((8, G))
    np.sqrt(squares / counts, out=values[:4])
    if meanstructure:
        m = np.asarray(sample_means, float)
        mu = np.asarray(implied_means, float)
        means = np.empty((3, G, p))
        np.subtract(m, mu, out=means[0])
        np.divide(means[0], sd_s, out=means[1])
        np.subtract(m / sd_s, mu / sd_m, out=means[2])
        mean_squares = _vecdot(means, means)
        squares[:3] += mean_squares
        squares[3] += mean_squares[1]  # CRMR: the means as in SRMR (Bentler)
        np.sqrt(squares / counts_means, out=values[4:])
    else:
        values[4:] = values[:4]
    total = (values @ np.asarray(weights, float) if G > 1 else
             values[:, 0] * float(weights[0])).tolist()
    out = dict(zip(_RESIDUAL_NAMES, total))
    out["srmr"] = out["srmr_bentler"]
    return out


def residual_measures(sample_cov, sample_mean, implied_cov, implied_mean,
                      meanstructure: bool) -> dict:
    """RMR, SRMR (Bentler's and Mplus') and CRMR of one group, as lavaan defines them
    (:func:`group_residual_measures` with one group)."""
    return group_residual_measures(np.asarray(sample_cov, float)[None],
                                   np.asarray(sample_mean, float)[None],
                                   np.asarray(implied_cov, float)[None],
                                   np.asarray(implied_mean, float)[None],
                                   meanstructure, (1.0,))


def fit_residual_measures(fit) -> dict:
    """RMR/SRMR/CRMR of a fit: per group from the sample (EM under FIML) and implied
    moments, combined over groups weighted by N_g / N (``SEMFit._residual_measures``)."""
    sample = fit.sample_moments_arrays
    G = len(sample)
    moments = fit._moments
    if G == 1:
        covs, means = sample[0][0][None], sample[0][1][None]
        implied_covs, implied_means = moments[0].cov[None], fit._implied_mean(0)[None]
    else:
        covs = np.array([cov for cov, _ in sample])
        means = np.array([mean for _, mean in sample])
        implied_covs = np.array([mom.cov for mom in moments])
        implied_means = np.array([fit._implied_mean(g) for g in range(G)])
    return group_residual_measures(covs, means, implied_covs, implied_means,
                                   fit.model.meanstructure, fit.problem.weights)


def _ml_baseline_chisq(fit) -> float:
    """The complete-data ML statistic of the independence model, ``sum_g N_g F_g`` (NaN when
    a variance is not positive or the covariate block is singular, which the data checks
    rule out).

    The baseline covariance is ``D = diag(s_ii)``, with the observed exogenous covariates'
    block at its sample values; as ``tr(S D^-1) = p`` for this D, the discrepancy
    ``F = log|D| + tr(S D^-1) - log|S| - p`` is ``log|D| - log|S|``, and ``log|D|`` is the sum
    of the log variances of the other variables plus the covariate block's log-determinant
    (Bollen 1989, ch. 4, for F; no inverse or p x p product is needed)."""
    ov = fit.model.ov_names
    x_idx = [ov.index(v) for v in fit.variables.ov_x]
    chisq = 0.0
    for loss in fit.problem.losses:
        cov = loss.cov
        variances = cov.diagonal()
        logdet = 0.0
        if x_idx:
            other = np.ones(len(variances), bool)
            other[x_idx] = False
            variances = variances[other]
            sign, logdet = np.linalg.slogdet(cov[np.ix_(x_idx, x_idx)])
            if sign <= 0:
                return math.nan
        try:
            logdet += sum(map(math.log, variances.tolist()))
        except ValueError:  # a variance <= 0
            return math.nan
        chisq += loss.nobs * (logdet - loss.logdet_sample)
    return float(chisq)


@functools.lru_cache(maxsize=None)
def _wls_family() -> frozenset:
    """The estimators of :mod:`.wls_inference` (imported on first use: it imports this
    module)."""
    from .wls_inference import WLS_FAMILY
    return frozenset(WLS_FAMILY)


def baseline_statistics(fit) -> dict:
    """The independence model's test (``SEMFit._baseline_statistics``): free variances (and
    means), the observed exogenous covariates keeping their sample covariances (as lavaan,
    whether or not ``fixed_x``); ``chisq``, ``df``, ``pvalue`` and, with a scaled test, the
    scaled statistic and its scaling factor (the same test as the fit's).  Cached on the fit."""
    cached = fit.__dict__.get("_baseline")
    if cached is not None:
        return dict(cached)
    if fit.options.get("estimator") in _wls_family():  # the same estimator's baseline
        from .wls_inference import wls_baseline_statistics
        return wls_baseline_statistics(fit)
    if fit.options.get("missing") == "fiml":
        # the independence model fitted by FIML (:class:`sem_models.inference.scaled._Baseline`)
        from .scaled import baseline_chisq_fiml
        chisq = baseline_chisq_fiml(fit)
    else:
        chisq = _ml_baseline_chisq(fit)
    df = fit._baseline_df()
    out = {"chisq": chisq, "df": df, "pvalue": float(chi2_sf(chisq, df))}
    from .options import scaled_test_name
    if scaled_test_name(fit) is not None:
        from .scaled import baseline_test
        c = baseline_test(fit, df)["scaling"]
        out.update({"chisq_scaled": chisq / c, "chisq_scaling_factor": c,
                    "pvalue_scaled": float(chi2_sf(chisq / c, df))})
    fit.__dict__["_baseline"] = out
    return dict(out)


def fit_measures(fit) -> pd.Series:
    """All fit measures of a fitted model as a pandas Series (lavaan's names, ``.`` -> ``_``)."""
    stats = fit._test_statistics()
    out: dict = {"npar": stats["npar"], "fmin": stats["fmin"], "chisq": stats["chisq"],
                 "df": stats["df"], "pvalue": stats["pvalue"]}
    scaled = "chisq_scaled" in stats
    if scaled:
        for key in ("chisq_scaled", "df_scaled", "pvalue_scaled", "chisq_scaling_factor"):
            out[key] = stats[key]
    # robust CFI/TLI/RMSEA: with a scaled test, and under FIML (lavaan's FIML-corrected ones)
    robust = scaled or fit.options.get("missing") == "fiml"
    base = fit._baseline_statistics()
    out["baseline_chisq"] = base["chisq"]
    out["baseline_df"] = base["df"]
    out["baseline_pvalue"] = base["pvalue"]
    out.update(incremental_measures(stats["chisq"], stats["df"], base["chisq"], base["df"]))
    if scaled:
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
    logl = ll["logl"]
    out["logl"] = logl
    out["unrestricted_logl"] = ll["unrestricted_logl"]
    out["aic"] = -2 * logl + 2 * npar
    out["bic"] = -2 * logl + npar * math.log(n)
    out["ntotal"] = n
    out["bic2"] = -2 * logl + npar * math.log((n + 2) / 24)
    for key in ("scaling_factor_h1", "scaling_factor_h0"):
        if key in stats:
            out[key] = stats[key]
    G = len(fit.data.groups)
    out.update(rmsea_measures(stats["chisq"], stats["df"], n, G))
    c = None
    if scaled:
        # lavaan: the scaled RMSEA from the standard statistic on tr(U Gamma) degrees of freedom
        c = stats["chisq_scaling_factor"]
        df2 = stats.get("trace_ugamma", np.nan)
        df2 = df2 if np.isfinite(df2) and df2 != 0 else np.nan
        scaled_rmsea = rmsea_measures(stats["chisq"], df2, n, G, suffix="_scaled")
        out.update({k: scaled_rmsea.get(k, np.nan) for k in (
            "rmsea_scaled", "rmsea_ci_lower_scaled", "rmsea_ci_upper_scaled",
            "rmsea_pvalue_scaled", "rmsea_notclose_pvalue_scaled")})
    if robust:
        out.update(fit._robust_rmsea(c))
    out.update(fit._residual_measures())
    return measures_series(out)


def measures_series(values: dict) -> pd.Series:
    """Fit measures as a float Series on the shared index of their names
    (:func:`~sem_models.estimation.data.labels_index`)."""
    try:
        array = np.fromiter(values.values(), float, len(values))
    except TypeError:  # a None among them: NaN
        array = np.array([np.nan if v is None else v for v in values.values()], float)
    return pd.Series(array, index=labels_index(tuple(values)), copy=False)
