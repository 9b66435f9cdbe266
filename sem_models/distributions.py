"""Distribution functions used for p-values and intervals, imported lazily.

scipy is imported on first use so that ``import sem_models`` stays fast.
"""
from __future__ import annotations

import numpy as np

__all__ = ["chi2_sf", "chi2_cdf", "norm_sf", "norm_ppf", "ncx2_cdf", "ncx2_sf"]


def chi2_sf(x, df):
    """Upper tail of the chi-square distribution."""
    from scipy.special import chdtrc
    return chdtrc(df, x)


def chi2_cdf(x, df):
    from scipy.special import chdtr
    return chdtr(df, x)


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
    from scipy.stats import ncx2
    return ncx2.cdf(x, df, nc)


def ncx2_sf(x, df, nc):
    return 1.0 - ncx2_cdf(x, df, nc)
