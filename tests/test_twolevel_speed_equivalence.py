"""The fast paths of two-level ML (issue 18) give the numbers of the slow ones.

* the closed-form observed information in moment coordinates
  (:func:`sem_models.estimation.twolevel_hessian.twolevel_hessian`) equals central
  differences of the analytic gradient (:func:`twolevel_information_observed`);
* the analytic Hessian of the fitting function in the model parameters (moment Hessian
  chained through the model Jacobian plus the RAM second-order term) equals central
  differences of the gradient (:func:`~sem_models.inference.twolevel.numerical_hessian`),
  at the estimates and away from them, for lavaan's reference models (labels across levels,
  defined parameters, groups with equality constraints, covariates at both levels), and so
  do the standard errors;
* missing data keep the numerical Hessian;
* ``_trace_pairs`` equals the brute-force traces, the numeric cluster factorisation the
  object one.

The reference models are those of tests/reference/json/twolevel_*.json (lavaan 0.6-14; the
SEs themselves are compared with lavaan's in tests/test_twolevel.py).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from sem_models.estimation.data import DataError
from sem_models.estimation.twolevel import (TwoLevelData, TwoLevelMoments, _factorize_clusters,
                                            _trace_pairs, _vech_idx,
                                            twolevel_information_observed)
from sem_models.estimation.twolevel_hessian import gradient_matrices, twolevel_hessian
from sem_models.estimation.twolevel_loss import TwoLevelHessianLoss, TwoLevelLoss
from sem_models.inference.twolevel import numerical_hessian, objective_hessian

REF = Path(__file__).parent / "reference"
COLS = ["y1", "y2", "y3", "x1", "x2", "x3", "w1", "w2"]


def _json(case):
    return json.loads((REF / "json" / f"{case}.json").read_text())


def _fit(case, **kw):
    ref = _json(case)
    model = ref["call"]["model"]
    if "group: a" in model:
        model = model.split("group: b")[0].replace("group: a", "")
    opts = ref["call"]["options"]
    args = {k: opts[k] for k in ("estimator", "missing", "group") if k in opts}
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.sem(model, pd.read_csv(ref["data"]), cluster="cluster", **args)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_trace_pairs_brute_force():
    rng = np.random.default_rng(1)
    for r, c in ((3, 4), (2, 2), (1, 3)):
        A = rng.standard_normal((3, r, c))
        B = rng.standard_normal((3, c, r))
        w = rng.random(3)
        out = _trace_pairs(A, B, w)
        ri, rj = _vech_idx(r)
        ci, cj = _vech_idx(c)

        def unit(p, i, j):
            U = np.zeros((p, p))
            U[i, j] = U[j, i] = 1.0
            return U

        brute = np.array([[sum(w[s] * np.trace(A[s] @ unit(c, k, l) @ B[s] @ unit(r, i, j))
                               for s in range(3)) for k, l in zip(ci, cj)]
                          for i, j in zip(ri, rj)])
        np.testing.assert_allclose(out, brute, rtol=1e-12, atol=1e-12)


def _simulated():
    """Columns [y1, z, y2, x, y3] (z between-only, x within-only), sizes 1..6, rows
    scrambled."""
    rng = np.random.default_rng(7)
    J = 40
    n = rng.integers(1, 7, size=J)
    cl = np.repeat(np.arange(J), n)
    u = rng.standard_normal((J, 4)) @ np.diag([0.7, 0.9, 0.5, 0.6])
    w = rng.standard_normal((len(cl), 4))
    X = np.column_stack([u[cl, 0] + w[:, 0], u[cl, 1], u[cl, 2] + w[:, 1] + 0.3 * w[:, 0],
                         1.0 + w[:, 2], u[cl, 3] + w[:, 3]])
    perm = rng.permutation(len(cl))
    return TwoLevelData(X[perm], (cl[perm] * 3 + 1).astype(str),
                        names=["y1", "z", "y2", "x", "y3"], within=["x"])


@pytest.mark.parametrize("which", ["demo", "simulated", "both_only"])
def test_moment_hessian_equals_differences(which):
    if which == "simulated":
        d = _simulated()
    else:
        df = pd.read_csv(REF / "data" / "demo_twolevel.csv")
        cols = COLS if which == "demo" else ["y1", "y2", "y3"]
        d = TwoLevelData(df[cols], df["cluster"], within=["x1", "x2", "x3"]
                         if which == "demo" else None)
    m = d.start_moments()
    # away from the saturated maximum: nonzero mean residuals and gradient
    m = TwoLevelMoments(m.mu_w + 0.1, m.sigma_w * 1.1, m.mu_b - 0.05, m.sigma_b * 0.9)
    H = twolevel_hessian(d, m)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-9 * np.abs(H).max())
    assert _rel(H, twolevel_information_observed(d, m)) < 1e-7


def test_gradient_matrices_roundtrip():
    d = _simulated()
    lay = d.layout
    g = np.random.default_rng(3).standard_normal(lay.dim)
    g_mw, G_w, g_mb, G_b = gradient_matrices(lay, g)
    # d logL along a symmetric direction: tr(G dS) equals the vech inner product
    dS = np.random.default_rng(4).standard_normal((d.p1, d.p1))
    dS = dS + dS.T
    r, c = _vech_idx(d.p1)
    assert np.sum(G_w * dS) == pytest.approx(g[lay.sigma_w] @ dS[r, c], rel=1e-12)
    np.testing.assert_array_equal(g_mw, g[lay.mu_w])
    np.testing.assert_array_equal(g_mb, g[lay.mu_b])
    assert np.allclose(G_b, G_b.T)


@pytest.mark.parametrize("case", ["twolevel_demo_ml", "twolevel_cross_ml",
                                  "twolevel_groups_equal_ml", "twolevel_bothx_ml",
                                  "twolevel_between_ml"])
def test_analytic_hessian_equals_differences(case):
    fit = _fit(case)
    assert all(isinstance(loss, TwoLevelHessianLoss) for loss in fit.problem.losses)
    z = fit.result.z
    Ha = objective_hessian(fit.problem, z, central=True)
    Hn = numerical_hessian(fit.problem, z, central=True)
    assert _rel(Ha, Hn) < 1e-6
    # standard errors from either (the reduced parameters' inverse information)
    se_a = np.sqrt(np.diag(np.linalg.inv(Ha)))
    se_n = np.sqrt(np.diag(np.linalg.inv(Hn)))
    np.testing.assert_allclose(se_a, se_n, rtol=1e-6)
    # away from the estimates (the second-order term with a nonzero gradient)
    zz = z + 0.02 * np.random.default_rng(5).standard_normal(len(z)) * np.maximum(1, abs(z))
    assert _rel(objective_hessian(fit.problem, zz), numerical_hessian(fit.problem, zz,
                                                                       central=True)) < 1e-6


def test_ses_unchanged_by_the_analytic_hessian():
    fit = _fit("twolevel_demo_ml")
    se = fit.estimates()["se"].to_numpy()
    # the same fit with the numerical Hessian for the standard errors
    fit2 = _fit("twolevel_demo_ml")
    fit2.__dict__["_hessian_z"] = numerical_hessian(fit2.problem, fit2.result.z, central=True)
    se2 = fit2.estimates()["se"].to_numpy()
    ok = se2 > 0
    np.testing.assert_allclose(se[ok], se2[ok], rtol=1e-7)


def test_missing_data_keep_the_numerical_hessian():
    fit = _fit("twolevel_demo_mar_ml")
    losses = fit.problem.losses
    assert all(type(loss) is TwoLevelLoss for loss in losses)
    assert not hasattr(losses[0], "hessian")
    z = fit.result.z
    np.testing.assert_array_equal(objective_hessian(fit.problem, z, central=True),
                                  numerical_hessian(fit.problem, z, central=True))
    with pytest.raises(ValueError, match="complete data"):
        TwoLevelHessianLoss(losses[0].data, None, 8, (np.arange(6), np.arange(5)))


def test_cluster_factorisation():
    for cl in (np.array([3, 1, 3, 2]), np.array([3.5, 1.0, 3.5, 2.0]),
               np.array(["a", "b", "a", "c"], dtype=object), np.array([True, False, True, True])):
        codes, labels = _factorize_clusters(cl, 4)
        ref_codes, ref_labels = pd.factorize(pd.Series(np.asarray(cl, dtype=object)),
                                             sort=False)
        np.testing.assert_array_equal(codes, ref_codes)
        assert labels.dtype == object
        assert labels.tolist() == list(ref_labels)
        assert [type(v) for v in labels] == [type(v) for v in ref_labels]
    with pytest.raises(DataError, match="missing in 1 rows"):
        _factorize_clusters(np.array([1.0, np.nan, 2.0]), 3)
    with pytest.raises(DataError, match="2 values for 3 rows"):
        _factorize_clusters(np.array([1, 2]), 3)
    # integer and string identifiers of the same clusters: identical statistics
    df = pd.read_csv(REF / "data" / "demo_twolevel.csv")
    a = TwoLevelData(df[COLS], df["cluster"], within=["x1", "x2", "x3"])
    b = TwoLevelData(df[COLS], df["cluster"].astype(str), within=["x1", "x2", "x3"])
    np.testing.assert_array_equal(a.cluster_index, b.cluster_index)
    np.testing.assert_array_equal(a.S_PW, b.S_PW)
    assert a.cluster_labels[0] == int(b.cluster_labels[0])
