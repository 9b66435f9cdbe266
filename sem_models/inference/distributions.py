"""Distribution functions used for p-values and intervals, imported lazily.

scipy is imported on first use so that ``import sem_models`` stays fast.
"""
from __future__ import annotations

import numpy as np

__all__ = ["chi2_sf", "chi2_pvalue", "chi2_cdf", "norm_cdf", "norm_sf", "norm_ppf",
           "ncx2_cdf", "ncx2_sf", "ncx2_noncentrality"]


def chi2_sf(x, df):
    """Upper tail of the chi-square distribution."""
    from scipy.special import chdtrc
    return chdtrc(df, x)


def chi2_pvalue(stat, df):
    """p-value of a chi-square statistic as scipy.stats' ``chi2.sf`` gives it: 1 at
    statistics <= 0 (a negative value from rounding), NaN for df <= 0; scalars give floats."""
    stat, df = np.asarray(stat, float), np.asarray(df, float)
    out = np.where(df > 0, chi2_sf(np.maximum(stat, 0.0), np.where(df > 0, df, 1.0)), np.nan)
    return out if out.ndim else float(out)


def chi2_cdf(x, df):
    from scipy.special import chdtr
    return chdtr(df, x)


def norm_cdf(x):
    from scipy.special import ndtr
    return ndtr(np.asarray(x, float))


def norm_sf(x):
    from scipy.special import ndtr
    return ndtr(-np.asarray(x, float))


def norm_ppf(p):
    from scipy.special import ndtri
    return ndtri(p)


def ncx2_cdf(x, df, nc):
    """Noncentral chi-square CDF (the central one when the noncentrality is 0)."""
    if nc <= 0:
        return chi2_cdf(x, df)
    from scipy.special import chndtr
    return chndtr(x, df, nc)


def ncx2_sf(x, df, nc):
    return 1.0 - ncx2_cdf(x, df, nc)


def ncx2_noncentrality(x, df, prob):
    """The noncentrality ``nc`` with ``P(X <= x; df, nc) = prob`` (0 when even nc = 0 is below)."""
    if chi2_cdf(x, df) < prob:
        return 0.0
    from scipy.special import chndtrinc
    return float(chndtrinc(x, df, prob))
