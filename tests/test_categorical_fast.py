"""The fast paths of the ordinal sample statistics (issue 18 item 7) against the plain ones.

The statistics themselves are checked against lavaan in test_categorical_stats.py and
test_ordinal_fit.py; here each vectorised shortcut is compared with the per-variable /
per-point computation it replaces: stage-1 thresholds and scores of all variables at once,
category codes of all columns at once, the bivariate normal CDF on threshold grids, the
Newton stop without a last function evaluation, and the lazily built category counts.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sem_models.estimation.categorical import _uni_block_inverse, categorical_stats
from sem_models.estimation.categorical_bi import newton_rho, polychoric_tables
from sem_models.estimation.categorical_bvn import pbinorm, pbinorm_grid
from sem_models.estimation.categorical_data import CategoricalDataError, codes_matrix, to_codes
from sem_models.estimation.categorical_uni import fit_uvord, fit_uvord_nox


def _codes(seed=0, N=400, K=(2, 5, 3, 4), miss=0.1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N, 1))
    Y = 0.6 * z + 0.8 * rng.normal(size=(N, len(K)))
    C = np.column_stack([np.digitize(Y[:, j], np.quantile(Y[:, j], np.arange(1, k) / k))
                         for j, k in enumerate(K)])
    C[rng.random(C.shape) < miss] = -1
    return C.astype(np.int64), np.array(K)


def test_stage1_all_variables_at_once_equals_per_variable():
    codes, K = _codes()
    for a, j in zip(fit_uvord_nox(codes, K), range(len(K))):
        b = fit_uvord(codes[:, j], int(K[j]))
        assert a.K == b.K and a.converged
        for f in ("th", "th_nox", "z1", "z2", "scores", "counts"):
            x, y = getattr(a, f), getattr(b, f)
            assert x.shape == y.shape, f
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-15, equal_nan=True)
    assert fit_uvord_nox(np.zeros((5, 0), np.int64), np.zeros(0, np.int64)) == []


def test_codes_of_all_columns_at_once_equal_to_codes():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.integers(1, 5, 50), rng.choice([0.5, 2.0, 7.25], 50),
                         rng.integers(1, 5, 50), rng.integers(-2, 1, 50)]).astype(float)
    X[rng.random(X.shape) < 0.1] = np.nan
    given = [None, None, np.array([1.0, 2, 3, 4]), np.array([-2.0, -1, 0])]
    codes, lvs, counts = codes_matrix(X, given)
    for r in range(X.shape[1]):
        c, lv = to_codes(X[:, r], given[r], f"x{r}")
        np.testing.assert_array_equal(codes[:, r], c)
        np.testing.assert_array_equal(lvs[r], lv)
        np.testing.assert_array_equal(counts[r, :lv.size], np.bincount(c[c >= 0],
                                                                       minlength=lv.size))
    # a value that is not a category, or decreasing given levels: None (the caller then
    # raises the per-column error)
    bad = X.copy()
    bad[0, 2] = 2.5
    assert codes_matrix(bad, given) is None
    bad[0, 2] = 9.0
    assert codes_matrix(bad, given) is None
    assert codes_matrix(X, [None, None, np.array([3.0, 2, 1, 4]), given[3]]) is None
    with pytest.raises(CategoricalDataError, match="x2"):
        categorical_stats(np.where(np.isnan(bad), 1.0, bad), [True] * 4,
                          levels=[None, None, [1, 2, 3, 4], None], names=["a", "b", "x2", "d"])


def test_bivariate_normal_on_grids_equals_pointwise():
    rng = np.random.default_rng(2)
    P, M = 60, 9
    h = rng.normal(scale=1.3, size=(P, M))
    k = rng.normal(scale=1.3, size=(P, M))
    r = rng.uniform(-0.999, 0.999, size=P)
    r[:6] = [0.0, 0.3, -0.75, 0.925, -0.93, 0.2999]           # every integration branch
    np.testing.assert_allclose(pbinorm_grid(h, k, r), pbinorm(h, k, r[:, None]), rtol=0,
                               atol=1e-15)
    base = pbinorm(h, np.inf, 0.0) * pbinorm(np.inf, k, 0.0)
    np.testing.assert_allclose(pbinorm_grid(h, k, r, base=base), pbinorm(h, k, r[:, None]),
                               rtol=0, atol=1e-15)


def test_newton_last_step_without_evaluation():
    codes, K = _codes(3, N=800, K=(4, 4, 3, 5, 2), miss=0.0)
    th = [fit_uvord(codes[:, j], int(K[j])).th for j in range(len(K))]
    cj, ci = np.triu_indices(len(K), 1)
    fast = polychoric_tables(codes, K, th, cj, ci)
    import sem_models.estimation.categorical_bi as bi
    calls = []
    real = bi.newton_rho

    def tight(fgh, x0, lo, hi, **kw):
        def counted(x, i):
            calls.append(i.size)
            return fgh(x, i)
        return real(counted, x0, lo, hi, final_step=0.0, tol=1e-14)
    bi.newton_rho = tight
    try:
        slow = polychoric_tables(codes, K, th, cj, ci)
    finally:
        bi.newton_rho = real
    np.testing.assert_allclose(fast["rho"], slow["rho"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast["s_rho"], slow["s_rho"], rtol=1e-8, atol=1e-10)
    assert fast["converged"].all() and len(calls) >= 4
    # a 1-d concave problem: the stop is at the maximum
    x, conv, _ = newton_rho(lambda r, i: (-(r - 0.3) ** 2, -2 * (r - 0.3), -2 + 0 * r),
                            np.array([0.0, 0.9]), -0.999, 0.999)
    np.testing.assert_allclose(x, 0.3, atol=1e-15)
    assert conv.all()


def test_category_counts_are_a_read_only_mapping_of_series():
    X = np.array([[1, 2], [2, 1], [1, 1], [2, 2], [3, 1.0]])
    s = categorical_stats(X, [True, True], gamma=False)
    assert list(s.counts) == ["y1", "y2"] and len(s.counts) == 2
    assert s.counts["y1"].tolist() == [2, 2, 1]
    assert list(s.counts["y1"].index) == [1.0, 2.0, 3.0] and s.counts["y1"].name == "y1"
    assert {k: v.tolist() for k, v in s.counts.items()} == {"y1": [2, 2, 1], "y2": [3, 2]}
    with pytest.raises(KeyError):
        s.counts["nope"]
    with pytest.raises(TypeError):
        s.counts["y1"] = pd.Series([1])


def test_singular_score_block_gets_a_generalized_inverse():
    rng = np.random.default_rng(4)
    SC = rng.normal(size=(30, 4))
    SC[:, 1] = 2 * SC[:, 0]                     # variable 0's block is singular
    blocks = [np.array([0, 1]), np.array([2, 3])]
    with pytest.warns(UserWarning, match="score information of 'a' is singular"):
        inv = _uni_block_inverse(SC, blocks, ["a", "b"], None)
    A = SC.T @ SC
    np.testing.assert_allclose(inv[:2, :2], np.linalg.pinv(A[:2, :2]), rtol=1e-10)
    np.testing.assert_allclose(inv[2:, 2:] @ A[2:, 2:], np.eye(2), atol=1e-10)
    assert np.all(inv[:2, 2:] == 0)


@pytest.mark.parametrize("kind", ["plain", "pairwise", "covariates"])
def test_gamma_from_score_cross_products_equals_influence_route(kind):
    codes, K = _codes(5, N=300, K=(3, 4, 2, 4), miss=0.08 if kind == "pairwise" else 0.0)
    X = np.where(codes >= 0, codes + 1.0, np.nan)
    exo = None
    if kind == "covariates":
        rng = np.random.default_rng(6)
        exo = rng.normal(size=(len(X), 2))
    opts = dict(exo=exo, missing="pairwise" if kind == "pairwise" else "listwise")
    fast = categorical_stats(X, [True] * 4, **opts)              # ordinal: no psi_i
    slow = categorical_stats(X, [True] * 4, keep_influence=True, **opts)
    assert fast.influence is None and slow.influence is not None
    np.testing.assert_allclose(fast.gamma, slow.gamma, rtol=1e-9,
                               atol=1e-12 * np.abs(slow.gamma).max())
    np.testing.assert_allclose(slow.gamma, slow.nobs * slow.influence.T @ slow.influence,
                               rtol=1e-12, atol=1e-14)
