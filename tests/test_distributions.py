"""p-values from scipy.special match scipy.stats (which the library does not import)."""
import numpy as np
from scipy import stats

from sem_models.inference.distributions import chi2_pvalue, norm_cdf, norm_sf


def test_chi2_pvalue_follows_scipy_stats():
    x = np.array([-1e-12, 0.0, 0.5, 3.0, 40.0, np.nan, np.inf])
    for df in (1, 2, 7.5):
        np.testing.assert_allclose(chi2_pvalue(x, df), stats.chi2.sf(x, df), rtol=1e-12)
    assert chi2_pvalue(-0.1, 3) == 1.0 and isinstance(chi2_pvalue(2.0, 3), float)
    assert np.isnan(chi2_pvalue(2.0, 0)) and np.isnan(chi2_pvalue(2.0, -1))
    np.testing.assert_allclose(chi2_pvalue(3.0, np.array([1, 2, 0]))[:2],
                               stats.chi2.sf(3.0, [1, 2]), rtol=1e-12)


def test_normal_tails_follow_scipy_stats():
    z = np.array([-3.0, -0.2, 0.0, 1.96, np.inf])
    np.testing.assert_allclose(norm_cdf(z), stats.norm.cdf(z), rtol=1e-12)
    np.testing.assert_allclose(norm_sf(z), stats.norm.sf(z), rtol=1e-12)
