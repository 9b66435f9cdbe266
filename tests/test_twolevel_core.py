"""Numerical core of two-level ML (issue 16): sufficient statistics, log-likelihood, gradient,
expected information, clusterwise scores, saturated / baseline fits, FIML.

References: tests/reference/json/twolevel_demo_{ml,mlr,mar_ml}.json from
tests/reference/cases_twolevel.R (lavaan 0.6-14, Demo.twolevel, model
``level 1: fw =~ y1+y2+y3; fw ~ x1+x2+x3  level 2: fb =~ y1+y2+y3; fb ~ w1+w2``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from sem_models.estimation.data import DataError
from sem_models.estimation.twolevel import (TwoLevelData, TwoLevelMoments, twolevel_gradient, twolevel_information_expected, twolevel_loglik, twolevel_scores)
from sem_models.estimation.twolevel_fit import (baseline_free, fit_baseline, fit_h1, fit_moments, loglik_x, saturated_free)
from sem_models.estimation.twolevel_fit import psd_optimality
from sem_models.estimation.twolevel_missing import em_moments, loglik_missing, scores_missing

REF = Path(__file__).parent / "reference"
COLS = ["y1", "y2", "y3", "x1", "x2", "x3", "w1", "w2"]
EXO_W, EXO_B = ["x1", "x2", "x3"], ["w1", "w2"]


def _json(case):
    return json.loads((REF / "json" / f"{case}.json").read_text())


def _moments(ref, key="implied"):
    lv = {x["level"]: x for x in ref[key]}
    w, b = lv["within"], lv["cluster"]
    return TwoLevelMoments(np.array(w["mean"]["values"]), np.array(w["cov"]["matrix"]),
                           np.array(b["mean"]["values"]), np.array(b["cov"]["matrix"]))


@pytest.fixture(scope="module")
def demo():
    df = pd.read_csv(REF / "data" / "demo_twolevel.csv")
    return df, TwoLevelData(df[COLS], df["cluster"], within=EXO_W)


@pytest.fixture(scope="module")
def mar():
    df = pd.read_csv(REF / "data" / "demo_twolevel_mar.csv")
    return df, TwoLevelData(df[COLS], df["cluster"], within=EXO_W)


@pytest.fixture(scope="module")
def ref_ml():
    return _json("twolevel_demo_ml")


@pytest.fixture(scope="module")
def ref_mar():
    return _json("twolevel_demo_mar_ml")


@pytest.fixture(scope="module")
def lx(demo):
    return loglik_x(demo[1], EXO_W + EXO_B)


def _delta(ref, data):
    """lavaan's Delta (rows: per level mean, then column-wise lower triangle) in our
    coordinates (tril vech)."""
    lay = data.layout
    rows = []
    for mu, sg, p in [(lay.mu_w, lay.sigma_w, data.p1), (lay.mu_b, lay.sigma_b, data.p2)]:
        rows += list(range(mu.start, mu.stop))
        r, c = np.tril_indices(p)
        pos = {(a, b): k for k, (a, b) in enumerate(zip(r, c))}
        rows += [sg.start + pos[(i, j)] for j in range(p) for i in range(j, p)]
    D = np.array(ref["delta"]["matrix"], dtype=float)
    out = np.zeros((lay.dim, D.shape[1]))
    out[rows] = D
    return out


def _fd_gradient(data, m, h=1e-5):
    lay = data.layout
    v = m.vector()
    g = np.zeros_like(v)
    for k in range(len(v)):
        s = h * max(1.0, abs(v[k]))
        vp, vm = v.copy(), v.copy()
        vp[k] += s
        vm[k] -= s
        g[k] = (twolevel_loglik(data, lay.moments(vp))
                - twolevel_loglik(data, lay.moments(vm))) / (2 * s)
    return g


# ------------------------------------------------------------------------- data / classes
def test_classification(demo):
    df, d = demo
    assert list(d.kind) == ["both"] * 3 + ["within"] * 3 + ["between"] * 2
    assert d.level1_names == ["y1", "y2", "y3", "x1", "x2", "x3"]
    assert d.level2_names == ["y1", "y2", "y3", "w1", "w2"]
    # without declarations w1, w2 are detected as between-only (zero within variance)
    auto = TwoLevelData(df[COLS], df["cluster"])
    assert list(auto.kind) == ["both"] * 6 + ["between"] * 2
    assert auto.summary().set_index("variable").loc["w1", "kind"] == "between"


def test_classification_errors(demo):
    df, _ = demo
    with pytest.raises(DataError, match="y1"):
        TwoLevelData(df[COLS], df["cluster"], between=["y1"])
    with pytest.raises(DataError, match="w1"):
        TwoLevelData(df[COLS], df["cluster"], within=["w1"])
    cl = df["cluster"].astype(float).copy()
    cl.iloc[3] = np.nan
    with pytest.raises(DataError, match="cluster"):
        TwoLevelData(df[COLS], cl)
    with pytest.raises(DataError, match="nope"):
        TwoLevelData(df[COLS], df["cluster"], within=["nope"])
    before = df.copy()
    TwoLevelData(df[COLS], df["cluster"])
    pd.testing.assert_frame_equal(df, before)


def test_sample_statistics_match_lavaan(demo, ref_ml):
    _, d = demo
    y = ref_ml["ylp"]
    assert d.nclusters == y["nclusters"] == 200 and d.nobs == y["nobs"] == 2500
    assert [s.n for s in d.size_stats] == y["cluster_sizes"]
    assert [s.m for s in d.size_stats] == y["cluster_size_ns"]
    S = np.array(y["S_PW"])[:6, :6]
    np.testing.assert_allclose(d.S_PW, S, rtol=1e-12, atol=1e-14)
    for st, md, cd in zip(d.size_stats, y["mean_d"], y["cov_d"]):
        # lavaan's order: between-only first, then the level-1 variables (ours too)
        np.testing.assert_allclose(st.dbar, md, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(st.cov, np.array(cd), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------- complete data
def test_loglik_at_lavaan_implied(demo, ref_ml, lx):
    _, d = demo
    # lavaan (fixed.x) reports logl minus the saturated loglik of the covariates
    assert lx == pytest.approx(ref_ml["ylp"]["loglik_x"], rel=1e-10)
    ll = twolevel_loglik(d, _moments(ref_ml))
    assert ll - lx == pytest.approx(ref_ml["fit"]["logl"], rel=1e-9)
    assert ref_ml["fit"]["logl"] == pytest.approx(-12076.566, abs=1e-3)
    # the moment vector form gives the same
    assert twolevel_loglik(d, _moments(ref_ml).vector()) == ll


def test_h1_and_chisq(demo, ref_ml, lx):
    _, d = demo
    h1 = fit_h1(d)
    assert h1.converged
    lav_h1 = ref_ml["fit"]["unrestricted_logl"]
    # lavaan's h1 EM stops at |change| < 1e-4: ours is the (slightly higher) maximum
    assert h1.loglik - lx == pytest.approx(lav_h1, rel=1e-8)
    assert h1.loglik - lx >= lav_h1 - 1e-6
    g = twolevel_gradient(d, h1.moments)[saturated_free(d)]
    assert np.max(np.abs(g)) < 1e-3
    chisq = 2 * (h1.loglik - twolevel_loglik(d, _moments(ref_ml)))
    assert chisq == pytest.approx(ref_ml["fit"]["chisq"], rel=1e-4)
    assert ref_ml["fit"]["chisq"] == pytest.approx(8.092, abs=1e-3)
    lh = _moments(ref_ml, "h1")
    np.testing.assert_allclose(h1.moments.sigma_w, lh.sigma_w, atol=5e-4)
    np.testing.assert_allclose(h1.moments.sigma_b, lh.sigma_b, atol=5e-4)
    # mean of a "both" variable = within + between mean
    tot_ours = h1.moments.mu_b[:3] + h1.moments.mu_w[:3]
    np.testing.assert_allclose(tot_ours, lh.mu_b[:3] + lh.mu_w[:3], atol=5e-4)
    # EM reaches the same maximum as Fisher scoring
    em = em_moments(d)
    assert em.converged and em.loglik == pytest.approx(h1.loglik, rel=1e-10)


def test_baseline(demo, ref_ml, lx):
    _, d = demo
    h1 = fit_h1(d)
    base = fit_baseline(d, exo_within=EXO_W, exo_between=EXO_B, h1=h1.moments)
    assert base.converged
    assert base.loglik - lx == pytest.approx(ref_ml["baseline"]["logl"], rel=1e-8)
    bchisq = 2 * (h1.loglik - base.loglik)
    assert bchisq == pytest.approx(ref_ml["fit"]["baseline_chisq"], rel=1e-6)
    assert base.npar() == ref_ml["baseline"]["npar"]
    bm = _moments(ref_ml["baseline"], "implied")
    np.testing.assert_allclose(np.diag(base.moments.sigma_w)[:3], np.diag(bm.sigma_w)[:3],
                               atol=1e-4)
    np.testing.assert_allclose(np.diag(base.moments.sigma_b)[:3], np.diag(bm.sigma_b)[:3],
                               atol=1e-4)
    assert np.all(base.moments.sigma_w[:3, :3][~np.eye(3, dtype=bool)] == 0)
    # EM on the same free pattern agrees
    em = em_moments(d, "baseline", start=base.moments, free=baseline_free(d, EXO_W, EXO_B))
    assert em.loglik == pytest.approx(base.loglik, rel=1e-10)


def test_gradient_finite_differences(demo, ref_ml):
    _, d = demo
    m = _moments(ref_ml)
    g = twolevel_gradient(d, m)
    np.testing.assert_allclose(g, _fd_gradient(d, m), rtol=1e-5, atol=1e-4)
    # lavaan's estimates are a stationary point along its model directions
    Delta = _delta(ref_ml, d)
    assert np.max(np.abs(Delta.T @ g)) < 0.05 < np.max(np.abs(g))


def test_expected_information_matches_lavaan(demo, ref_ml):
    _, d = demo
    m = _moments(ref_ml)
    Delta = _delta(ref_ml, d)
    info = Delta.T @ twolevel_information_expected(d, m) @ Delta / d.nclusters
    lav = np.array(ref_ml["information_expected"]["matrix"])
    np.testing.assert_allclose(info, lav, rtol=1e-9, atol=1e-12)


def test_scores(demo, ref_ml):
    _, d = demo
    m = _moments(ref_ml)
    S = twolevel_scores(d, m)
    assert S.shape == (200, d.layout.dim)
    np.testing.assert_allclose(S.sum(axis=0), twolevel_gradient(d, m), rtol=1e-10, atol=1e-8)
    # the FIML route (Fisher's identity) gives the same clusterwise scores on complete data
    np.testing.assert_allclose(scores_missing(d, m), S, rtol=1e-9, atol=1e-9)
    assert loglik_missing(d, m) == pytest.approx(twolevel_loglik(d, m), rel=1e-12)
    # lavaan's first-order information (cluster outer products, per cluster)
    Delta = _delta(ref_ml, d)
    lav = np.array(ref_ml["information_first_order"]["matrix"])
    Sl = twolevel_scores(d, m, lavaan_compat=True) @ Delta
    np.testing.assert_allclose(Sl.T @ Sl / d.nclusters, lav, rtol=1e-9, atol=1e-12)
    Se = S @ Delta
    assert not np.allclose(Se.T @ Se / d.nclusters, lav, rtol=1e-6)


def test_shuffled_rows_identical(demo, ref_ml):
    df, d = demo
    rng = np.random.default_rng(16)
    sh = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    d2 = TwoLevelData(sh[COLS], sh["cluster"].astype(str), within=EXO_W)
    m = _moments(ref_ml)
    assert twolevel_loglik(d2, m) == pytest.approx(twolevel_loglik(d, m), rel=1e-13)
    np.testing.assert_allclose(d2.S_PW, d.S_PW, rtol=1e-12)
    for a, b in zip(d.size_stats, d2.size_stats):
        np.testing.assert_allclose(a.cov, b.cov, rtol=1e-10, atol=1e-14)
    assert fit_h1(d2).loglik == pytest.approx(fit_h1(d).loglik, rel=1e-12)
    # scores: same clusters, in each data set's cluster order
    S1 = pd.DataFrame(twolevel_scores(d, m), index=d.cluster_labels.astype(int))
    S2 = pd.DataFrame(twolevel_scores(d2, m), index=d2.cluster_labels.astype(int))
    np.testing.assert_allclose(S2.loc[S1.index].to_numpy(), S1.to_numpy(), atol=1e-10)


def test_fit_moments_errors(demo):
    _, d = demo
    with pytest.raises(ValueError):
        fit_moments(d, np.ones(3, bool))
    with pytest.raises(ValueError, match="level-1"):
        twolevel_loglik(d, TwoLevelMoments(np.zeros(2), np.eye(2), np.zeros(5), np.eye(5)))
    bad = fit_h1(d).moments.copy()
    bad.sigma_w[0, 0] = -1.0
    assert twolevel_loglik(d, bad) == -np.inf


# ------------------------------------------------------------------------- missing data
def test_mar_loglik_h1_baseline(mar, ref_mar, lx):
    _, d = mar
    assert d.has_missing
    m = _moments(ref_mar)
    assert twolevel_loglik(d, m) - lx == pytest.approx(ref_mar["fit"]["logl"], rel=1e-10)
    h1 = fit_h1(d)
    assert h1.converged
    lav_h1 = ref_mar["fit"]["unrestricted_logl"]
    # lavaan's EM stops early (0.0024 below the maximum): ours is the maximum
    assert h1.loglik - lx == pytest.approx(lav_h1, rel=1e-6)
    assert h1.loglik - lx > lav_h1
    assert np.max(np.abs(twolevel_gradient(d, h1.moments)[saturated_free(d)])) < 1e-3
    # baseline with the exogenous blocks at lavaan's h1 values reproduces lavaan
    base = fit_baseline(d, EXO_W, EXO_B, h1=_moments(ref_mar, "h1"))
    assert base.converged
    assert base.loglik - lx == pytest.approx(ref_mar["baseline"]["logl"], rel=1e-9)


def test_mar_gradient_and_shuffle(mar, ref_mar):
    df, d = mar
    m = _moments(ref_mar)
    g = twolevel_gradient(d, m)
    np.testing.assert_allclose(g, _fd_gradient(d, m), rtol=1e-5, atol=1e-4)
    assert np.max(np.abs(_delta(ref_mar, d).T @ g)) < 0.05
    sh = df.iloc[np.random.default_rng(3).permutation(len(df))]
    d2 = TwoLevelData(sh[COLS], sh["cluster"], within=EXO_W)
    assert twolevel_loglik(d2, m) == pytest.approx(twolevel_loglik(d, m), rel=1e-13)


# ------------------------------------------------------------------------- simulations
TRUE_SW = np.array([[1.0, 0.4, 0.3, 0.2],
                    [0.4, 1.2, 0.35, 0.1],
                    [0.3, 0.35, 0.9, 0.15],
                    [0.2, 0.1, 0.15, 1.1]])     # level 1: y1, y2, x, y3
TRUE_SB = np.array([[0.5, 0.2, 0.25, 0.15],
                    [0.2, 0.8, 0.2, 0.1],
                    [0.25, 0.2, 0.6, 0.2],
                    [0.15, 0.1, 0.2, 0.4]])     # level 2: y1, z, y2, y3
TRUE_MW = np.array([0.0, 0.0, 0.5, 0.0])
TRUE_MB = np.array([1.0, -0.5, 2.0, 0.3])


def _simulate(J, rng, sizes=(2, 10)):
    """Columns [y1, z, y2, x, y3]: z between-only, x within-only (column order scrambled on
    purpose)."""
    n = rng.integers(sizes[0], sizes[1] + 1, size=J)
    cl = np.repeat(np.arange(J), n)
    u = rng.multivariate_normal(TRUE_MB, TRUE_SB, size=J)      # y1, z, y2, y3 between
    w = rng.multivariate_normal(np.zeros(4), TRUE_SW, size=len(cl))
    y1 = u[cl, 0] + w[:, 0]
    y2 = u[cl, 2] + w[:, 1]
    x = TRUE_MW[2] + w[:, 2]
    y3 = u[cl, 3] + w[:, 3]
    z = u[cl, 1]
    X = np.column_stack([y1, z, y2, x, y3])
    perm = rng.permutation(len(cl))
    return X[perm], (cl[perm] * 7 + 3).astype(str)


def _dense_loglik(d: TwoLevelData, m: TwoLevelMoments) -> float:
    """Brute force: per cluster, the joint normal density of all observed values."""
    p1l, p2l = list(d.level1), list(d.level2)
    ll = 0.0
    for j in range(d.nclusters):
        rows = np.where(d.cluster_index == j)[0]
        vals, means, keys = [], [], []
        for i in rows:
            for a, c in enumerate(p1l):
                if not np.isnan(d.X[i, c]):
                    vals.append(d.X[i, c])
                    b = p2l.index(c) if c in p2l else None
                    means.append(m.mu_w[a] + (m.mu_b[b] if b is not None else 0.0))
                    keys.append(("w", i, a, b))
        zobs = [k for k, c in enumerate(p2l) if d.kind[c] == "between"
                and not np.isnan(d.X[rows, c]).all()]
        for k in zobs:
            c = p2l[k]
            vals.append(np.nanmean(d.X[rows, c]))
            means.append(m.mu_b[k])
            keys.append(("z", None, None, k))
        n = len(vals)
        V = np.zeros((n, n))
        for s, ks in enumerate(keys):
            for t, kt in enumerate(keys):
                v = 0.0
                if ks[0] == "w" and kt[0] == "w" and ks[1] == kt[1]:
                    v += m.sigma_w[ks[2], kt[2]]
                if ks[3] is not None and kt[3] is not None:
                    v += m.sigma_b[ks[3], kt[3]]
                V[s, t] = v
        if n:
            ll += multivariate_normal(np.array(means), V).logpdf(np.array(vals))
    return ll


def _sim_moments():
    return TwoLevelMoments(TRUE_MW + np.array([0.1, -0.1, 0, 0.05]), TRUE_SW, TRUE_MB, TRUE_SB)


def test_simulated_dense_check_complete():
    rng = np.random.default_rng(11)
    X, cl = _simulate(25, rng, sizes=(1, 5))
    d = TwoLevelData(X, cl, names=["y1", "z", "y2", "x", "y3"], within=["x"])
    assert list(d.kind) == ["both", "between", "both", "within", "both"]
    m = _sim_moments()
    assert twolevel_loglik(d, m) == pytest.approx(_dense_loglik(d, m), rel=1e-11)


def test_simulated_dense_check_missing():
    rng = np.random.default_rng(12)
    X, cl = _simulate(30, rng, sizes=(1, 5))
    X = X.copy()
    holes = rng.random(X.shape) < 0.15
    holes[:, 1] = False
    X[holes] = np.nan
    X[5, [0, 2, 3, 4]] = np.nan                          # a row with no level-1 value
    # z missing for whole clusters
    zmiss = np.isin(cl, np.unique(cl)[:4])
    X[zmiss, 1] = np.nan
    d = TwoLevelData(X, cl, names=["y1", "z", "y2", "x", "y3"], within=["x"], between=["z"])
    m = _sim_moments()
    assert twolevel_loglik(d, m) == pytest.approx(_dense_loglik(d, m), rel=1e-11)
    g = twolevel_gradient(d, m)
    np.testing.assert_allclose(g, _fd_gradient(d, m), rtol=1e-5, atol=1e-5)
    S = twolevel_scores(d, m)
    np.testing.assert_allclose(S.sum(axis=0), g, rtol=1e-12, atol=1e-12)
    # saturated EM: a maximum over positive semi-definite Sigma_B, here on the boundary
    # (Sigma_B of rank 3): zero gradient off Sigma_B, the KKT conditions on it
    h1 = fit_h1(d)
    assert h1.converged
    assert np.linalg.eigvalsh(h1.moments.sigma_b).min() > -1e-12
    kkt = psd_optimality(d, h1.moments)
    assert kkt["grad"] < 1e-3 and kkt["complementarity"] < 1e-3 and kkt["dual"] < 1e-3
    assert h1.loglik >= twolevel_loglik(d, m)
    # the unconstrained maximum (indefinite Sigma_B) is higher: the constraint is active
    free = saturated_free(d)
    assert np.max(np.abs(twolevel_gradient(d, h1.moments)[free])) > 1.0


def test_simulated_recovery():
    rng = np.random.default_rng(2026)
    X, cl = _simulate(500, rng)
    d = TwoLevelData(X, cl, names=["y1", "z", "y2", "x", "y3"], within=["x"])
    assert d.level1_names == ["y1", "y2", "x", "y3"] and d.level2_names == ["y1", "z", "y2", "y3"]
    h1 = fit_h1(d)
    assert h1.converged
    truth = TwoLevelMoments(TRUE_MW, TRUE_SW, TRUE_MB, TRUE_SB).vector()
    free = saturated_free(d)
    info = twolevel_information_expected(d, h1.moments)[np.ix_(free, free)]
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    zval = (h1.moments.vector()[free] - truth[free]) / se
    assert np.max(np.abs(zval)) < 4.5
    assert 0.4 < np.mean(zval ** 2) < 2.0              # SEs of the right size
    # with 10% MCAR holes in the level-1 variables EM still recovers the moments
    Xm = X.copy()
    holes = rng.random(X.shape) < 0.1
    holes[:, 1] = False
    Xm[holes] = np.nan
    dm = TwoLevelData(Xm, cl, names=["y1", "z", "y2", "x", "y3"], within=["x"])
    hm = fit_h1(dm)
    assert hm.converged
    zm = (hm.moments.vector()[free] - truth[free]) / (se * 1.2)
    assert np.max(np.abs(zm)) < 4.5


def test_singular_sigma_b_allowed():
    """Rosseel (2021): the observed-data likelihood and its gradient need no inverse of
    Sigma_B (here of rank 2: y3's between part a combination of y1 and z)."""
    rng = np.random.default_rng(13)
    X, cl = _simulate(20, rng, sizes=(1, 4))
    X = X.copy()
    holes = rng.random(X.shape) < 0.2
    holes[:, 1] = False
    X[holes] = np.nan
    X[np.isin(cl, np.unique(cl)[:3]), 1] = np.nan
    d = TwoLevelData(X, cl, names=["y1", "z", "y2", "x", "y3"], within=["x"], between=["z"])
    L = np.array([[0.7, 0.0], [0.3, 0.8], [0.5, 0.1], [0.4, -0.2]])
    m = TwoLevelMoments(TRUE_MW, TRUE_SW, TRUE_MB, L @ L.T)
    assert np.linalg.matrix_rank(m.sigma_b) == 2
    assert twolevel_loglik(d, m) == pytest.approx(_dense_loglik(d, m), rel=1e-11)
    np.testing.assert_allclose(twolevel_gradient(d, m), _fd_gradient(d, m), rtol=1e-5,
                               atol=1e-5)
