"""The fast paths of issue 18 give the numbers of the direct formulas they replace.

Each fast path (parameter-space FIML information and Hessian, the blocked h1 quadratic form,
the FIML-corrected robust index through ``Wm^-1 U Wm^-1 = Wm^-1 - D E^-1 D'``, the shared
Cholesky factors, the copy-free data path) is compared with the direct formula written out
here, to about 1e-10 relative.  No timings are asserted (benchmarks/bench_pairs.py measures
them).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
import sem_models.estimation.fiml as fiml
from lavaan_reference import ROOT, fit_reference, load_reference
from sem_models.estimation.data import DataError, column_moments, prepare_data
from sem_models.estimation.fiml import (FIMLGroupLoss, H1Coordinates, MissingPatterns,
                                        information_in_parameters, observed_moments,
                                        symmetric_rank2)
from sem_models.inference.sandwich import H1Factor, RobustEvaluator, _h1
from sem_models.inference.scaled import _baseline, fiml_corrected

RTOL = 1e-10


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(np.abs(b).max(), 1e-300)
    return np.abs(a - b).max() <= rtol * scale


def _fit(case, **extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_reference(load_reference(case), **extra)


@pytest.fixture(scope="module")
def fits():
    cache = {}

    def get(case):
        if case not in cache:
            cache[case] = _fit(case)
        return cache[case]
    return get


def _random_incomplete(n=400, p=7, rate=0.15, seed=3, mean=0.0):
    rng = np.random.default_rng(seed)
    L = rng.normal(size=(p, p))
    cov = L @ L.T + p * np.eye(p)
    X = rng.multivariate_normal(np.full(p, mean) + np.arange(p), cov, size=n)
    X[rng.random((n, p)) < rate] = np.nan
    return X[~np.isnan(X).all(axis=1)], cov


# ----------------------------------------------------------------------- direct formulas
def quadratic_direct(coords: H1Coordinates, weights, P, Q):
    """The p^4 formula: M[(c,s),(t,r)] = sum_k w_k P_k[c,s] Q_k[t,r], gathered at
    c_a c_b (P_jk Q_li + P_jl Q_ki + P_ik Q_lj + P_il Q_kj)."""
    p, K = coords.p, P.shape[0]
    M = ((P.reshape(K, p * p) * weights[:, None]).T @ Q.reshape(K, p * p)).reshape(p, p, p, p)
    i, j = coords.rows[:, None], coords.cols[:, None]
    k, l = coords.rows[None, :], coords.cols[None, :]
    out = M[j, k, l, i] + M[j, l, k, i] + M[i, k, l, j] + M[i, l, k, j]
    return out * np.outer(coords.half, coords.half)


def information_direct(pat: MissingPatterns, coords, mean, cov, kind):
    """The h1 information as before issue 18 (observed: three stacked K-term forms)."""
    A, _, d, T = pat._pieces(mean, cov)
    w = pat.counts / pat.n
    if kind == "expected":
        cc = quadratic_direct(coords, 0.5 * w, A, A)
    else:
        ATA = A @ T @ A
        cc = quadratic_direct(coords, np.concatenate([-0.5 * w, 0.5 * w, 0.5 * w]),
                              np.concatenate([A, A, ATA]), np.concatenate([A, ATA, A]))
    p = coords.p
    info = np.zeros((coords.dim, coords.dim))
    info[:p, :p] = np.einsum("k,kij->ij", w, A)
    info[p:, p:] = cc
    if kind != "expected":
        u = np.einsum("kij,kj->ki", A, d)
        i, j = coords.rows, coords.cols
        cross = (np.einsum("k,kai,ki->ai", w, A[:, :, i], u[:, j])
                 + np.einsum("k,kaj,kj->aj", w, A[:, :, j], u[:, i])) * coords.half
        info[:p, p:] = cross
        info[p:, :p] = cross.T
    return info


def pattern_statistics_direct(X):
    """Per-pattern count, mean and covariance (divisor n_k) by grouping rows explicitly."""
    obs = ~np.isnan(X)
    out = {}
    for key in {tuple(r) for r in obs}:
        rows = (obs == np.array(key)).all(axis=1)
        Xk = X[rows][:, np.array(key)]
        m = Xk.mean(axis=0)
        out[key] = (rows.sum(), m, (Xk - m).T @ (Xk - m) / rows.sum())
    return out


def k_direct(fit, deltas, version):
    """lavaan's FIML-corrected k with explicit block-diagonal matrices and inverses (the
    formula before issue 18): V6 tr(Wc Wm^-1 U Wm^-1), V3 tr(U Wm^-1 Wc Wm^-1 U Gamma)."""
    from scipy.linalg import block_diag
    h1 = _h1(fit)
    w = fit.problem.weights
    G = len(w)
    Wm = h1.unstructured_information["observed"]
    Wc = h1.complete_information
    Wmi = []
    for M in Wm:
        keep = np.abs(np.diag(M)) > 0
        inv = np.zeros_like(M)
        inv[np.ix_(keep, keep)] = np.linalg.inv(M[np.ix_(keep, keep)])
        Wmi.append(inv)
    Wc_all = block_diag(*[w[g] * Wc[g] for g in range(G)])
    Wm_all = block_diag(*[w[g] * Wm[g] for g in range(G)])
    Wmi_all = block_diag(*[Wmi[g] / w[g] for g in range(G)])
    D = np.vstack(deltas)
    Einv = np.linalg.inv(D.T @ Wm_all @ D)
    U = Wm_all - Wm_all @ D @ Einv @ D.T @ Wm_all
    if version == "V3":
        Jm = [pat.first_order(h1.coords, mean, cov, cl) for pat, (mean, cov), cl in
              zip(h1.patterns, h1.h1_moments, h1.clusters)]
        Jm = [h1.zero_x(J) for J in Jm]
        Gamma = block_diag(*[Wmi[g] @ Jm[g] @ Wmi[g] / w[g] for g in range(G)])
        return float(np.trace(U @ Wmi_all @ Wc_all @ Wmi_all @ U @ Gamma))
    return float(np.trace(Wc_all @ Wmi_all @ U @ Wmi_all))


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("K", [1, 2, 5])
def test_quadratic_equals_the_p4_formula(K):
    rng = np.random.default_rng(K)
    p = 6
    coords = H1Coordinates(p)
    P = rng.normal(size=(K, p, p))
    Q = rng.normal(size=(K, p, p))
    w = rng.uniform(0.1, 1.0, K)
    assert close(coords.quadratic(w, P, Q), quadratic_direct(coords, w, P, Q))
    S = P + P.transpose(0, 2, 1)
    assert close(coords.quadratic(w, S, S), quadratic_direct(coords, w, S, S))


def test_h1_information_equals_the_direct_formula():
    X, cov = _random_incomplete()
    pat = MissingPatterns.from_data(X)
    coords = H1Coordinates(X.shape[1])
    mean = np.nanmean(X, axis=0) + 0.2
    for kind in ("expected", "observed"):
        assert close(pat.information(coords, mean, 0.9 * cov, kind),
                     information_direct(pat, coords, mean, 0.9 * cov, kind))


def test_symmetric_rank2_factors():
    rng = np.random.default_rng(0)
    p = 7
    u, w = rng.normal(size=(2, 5, p))
    X = np.concatenate([
        u[:, :, None] * w[:, None, :] + w[:, :, None] * u[:, None, :],  # u w' + w u'
        u[:, :, None] * u[:, None, :],  # u u'
        -u[:, :, None] * u[:, None, :],
        np.zeros((1, p, p)),
        np.eye(p)[None, [0], :] * np.eye(p)[None, :, [1]] + np.eye(p)[None, [1], :]
        * np.eye(p)[None, :, [0]],  # e_1 e_0' + e_0 e_1': zero diagonal
    ])
    Z, s = symmetric_rank2(X)
    assert close(np.einsum("aip,ai,aik->apk", Z, s, Z), X, 1e-12)
    assert set(np.unique(s)) <= {-1.0, 0.0, 1.0}
    assert symmetric_rank2(X[:1] + np.eye(p)[None]) is None  # rank > 2 is refused


@pytest.mark.parametrize("schur", [False, True])
def test_parameter_space_information_equals_delta_h1_delta(monkeypatch, schur):
    """Expected and observed FIML information at off-optimum parameters, in parameter space
    (direct or Schur-complement route) against Delta' I Delta with the direct h1 formula."""
    if schur:
        monkeypatch.setattr(fiml, "SCHUR_MIN_FLOPS", 0.0)
    data = pd.read_csv(ROOT / "tests" / "reference" / "data" / "hs_mcar.csv")
    model = ("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n"
             "speed ~ visual\nx1 ~~ x4")
    fit = sm.sem(model, data, missing="ml")
    problem = fit.problem
    loss = problem.losses[0]
    values = problem.values(fit.result.z * 1.05)
    mom = problem.model.moments(values, 0)
    _, d_cov, d_mean = problem.group_jacobian(values, 0, mom)
    delta = loss.coords.delta(d_cov, d_mean)
    for kind in ("expected", "observed"):
        direct = delta.T @ information_direct(loss.patterns, loss.coords, mom.mean, mom.cov,
                                              kind) @ delta
        fast = loss.patterns.param_information(mom.mean, mom.cov, d_cov, d_mean, kind)
        assert close(fast, direct)
        routed = information_in_parameters(loss.patterns, loss.coords, mom.mean, mom.cov,
                                           d_cov, d_mean, kind, route="parameters")
        assert close(routed, direct)


def test_fiml_hessian_equals_finite_differences():
    """The analytic FIML Hessian (used for Newton steps) against central differences of the
    analytic gradient, off the optimum."""
    X, _ = _random_incomplete(n=300, p=6)
    names = [f"v{i}" for i in range(6)]
    fit = sm.cfa("f =~ v0 + v1 + v2\ng =~ v3 + v4 + v5", pd.DataFrame(X, columns=names),
                 missing="ml")
    problem = fit.problem
    z0 = fit.result.z * 1.1
    _, _, hess = problem.derivatives(z0, hessian=True)
    h = 1e-6
    numeric = np.empty_like(hess)
    for a in range(len(z0)):
        e = np.zeros(len(z0))
        e[a] = h
        numeric[:, a] = (problem.derivatives(z0 + e, info=False)[1]
                         - problem.derivatives(z0 - e, info=False)[1]) / (2 * h)
    assert close(hess, (numeric + numeric.T) / 2, 1e-6)
    assert isinstance(problem.losses[0], FIMLGroupLoss) and hasattr(problem.losses[0], "hessian")
    # and exactly the direct formula: Delta' H_h1 Delta (p^4 route) + the second-order term
    ev = RobustEvaluator(fit, z0)
    loss = problem.losses[0]
    mean, cov = ev.structured(0)
    direct = ev.deltas[0].T @ information_direct(loss.patterns, loss.coords, mean, cov,
                                                 "observed") @ ev.deltas[0]
    assert close(hess, direct + ev._second_order_term())


@pytest.mark.parametrize("case", ["hs_fiml", "hs_fiml_covariates", "hs_fiml_groups_scalar_mlr",
                                  "hs_fiml_covariates_fixedx_false", "hs_mlr",
                                  "hs_mlm_groups_scalar", "sim_clustered"])
def test_evaluator_information_equals_h1_route(fits, case):
    """The robust evaluator's information (parameter space where cheaper) equals the old h1
    route ``sum_g w_g Delta_g' zero_x(I_g) Delta_g``, and both routes agree group by group
    (fixed covariates, groups, complete data with and without a mean structure)."""
    fit = fits(case)
    for z in (None, fit.result.z * 1.02):
        ev = RobustEvaluator(fit, z)
        h1 = ev.h1
        for kind, attr in (("expected", "structured_expected"), ("h1", "structured_observed")):
            direct = sum(w * D.T @ M @ D for w, D, M in zip(ev.weights, ev.deltas,
                                                             getattr(ev, attr)))
            assert close(ev.information(kind), direct)
        for g, pat in enumerate(h1.patterns):
            _, d_cov, d_mean = ev.problem.group_jacobian(ev.values, g, ev.moments[g])
            for kind in ("expected", "observed"):
                a = information_in_parameters(pat, h1.coords, *ev.structured(g), d_cov, d_mean,
                                              kind, h1_transform=h1.zero_x, route="h1")
                b = information_in_parameters(pat, h1.coords, *ev.structured(g), d_cov, d_mean,
                                              kind, h1_transform=h1.zero_x, route="parameters")
                assert close(b, a)


@pytest.mark.parametrize("case,version", [("hs_fiml", "V6"), ("hs_fiml_mlr", "V3"),
                                          ("hs_fiml_groups_scalar_mlr", "V3"),
                                          ("hs_fiml_covariates", "V6"),
                                          ("hs_fiml_covariates_mlr", "V3"),
                                          ("sim_clustered", "V3"), ("sim_clustered", "V6")])
def test_fiml_corrected_k_equals_the_direct_formula(fits, case, version):
    """k of the FIML-corrected robust indices (model and baseline) through the identity
    ``Wm^-1 U Wm^-1 = Wm^-1 - D E^-1 D'`` and shared factors, against the explicit formula;
    V3 with casewise scores (r = n < dim or n >= dim) and cluster sums (r = C)."""
    fit = fits(case)
    out = fiml_corrected(fit, version)
    ev = RobustEvaluator(fit)
    k_model = k_direct(fit, ev.deltas, version)
    k_null = k_direct(fit, _baseline(fit).deltas, version)
    assert out["c_hat3"] == pytest.approx(k_model / out["df3"], rel=RTOL)
    assert out["c_hat3_null"] == pytest.approx(k_null / out["df3_null"], rel=RTOL)


def test_fiml_corrected_k_with_fewer_cases_than_moments():
    """r = n < dim: B1 = J J' from the casewise scores (the low-rank branch)."""
    data = pd.read_csv(ROOT / "tests" / "reference" / "data" / "hs_mcar.csv").iloc[:50]
    model = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.cfa(model, data, missing="ml", estimator="MLR")
    h1 = _h1(fit)
    assert h1.unstructured_score_factors[0] is not None  # n = 50 < dim = 54
    out = fiml_corrected(fit, "V3")
    assert out["c_hat3"] == pytest.approx(
        k_direct(fit, RobustEvaluator(fit).deltas, "V3") / out["df3"], rel=RTOL)
    assert out["c_hat3_null"] == pytest.approx(
        k_direct(fit, _baseline(fit).deltas, "V3") / out["df3_null"], rel=RTOL)
    _check_yuan_bentler(fit)


@pytest.mark.parametrize("case", ["hs_fiml_mlr", "sim_clustered", "hs_mlr",
                                  "hs_fiml_groups_scalar_mlr"])
def test_yuan_bentler_traces_equal_the_direct_formula(fits, case):
    _check_yuan_bentler(fits(case))


def _check_yuan_bentler(fit):
    ev = RobustEvaluator(fit)
    h1 = ev.h1
    got = ev.trace_yuan_bentler("observed", "observed")
    A1 = h1.unstructured_information["observed"]
    B1 = [h1.zero_x(pat.first_order(h1.coords, mean, cov, cl)) for pat, (mean, cov), cl in
          zip(h1.patterns, h1.h1_moments, h1.clusters)]
    Einv = np.linalg.inv(ev.information("observed"))
    trace_h1 = ndat = 0
    for A, B in zip(A1, B1):
        keep = np.abs(np.diag(A)) > 0
        trace_h1 += np.trace(np.linalg.solve(A[np.ix_(keep, keep)], B[np.ix_(keep, keep)]))
        ndat += keep.sum()
    h0 = sum(w * np.sum(B0 * Einv) for w, B0 in zip(ev.weights, ev.structured_first_order))
    assert got["h1"] == pytest.approx(trace_h1, rel=RTOL)
    assert got["h0"] == pytest.approx(h0, rel=RTOL)
    assert got["ndat"] == ndat
    assert close(ev.inverse_information("observed"), Einv)


def test_h1_factor():
    rng = np.random.default_rng(1)
    L = rng.normal(size=(6, 6))
    M = L @ L.T + np.eye(6)
    M[2, :] = M[:, 2] = 0.0  # a fixed covariate's coordinate
    keep = np.arange(6) != 2
    inv = np.zeros_like(M)
    inv[np.ix_(keep, keep)] = np.linalg.inv(M[np.ix_(keep, keep)])
    F = H1Factor(M)
    assert F.positive_definite and F.size == 5
    assert close(F.inverse, inv)
    J = rng.normal(size=(6, 3))
    assert F.trace_gram(J) == pytest.approx(np.trace(inv @ J @ J.T), rel=RTOL)
    assert close(F.solve(J), inv @ J)
    S = np.diag([1.0, -2.0, 3.0])  # indefinite: LU
    G = H1Factor(S, drop_zero=False)
    assert not G.positive_definite and close(G.inverse, np.linalg.inv(S))
    with pytest.raises(np.linalg.LinAlgError):
        H1Factor(np.array([[1.0, 1.0], [1.0, 1.0]]), drop_zero=False)


@pytest.mark.parametrize("chunk_rows", [None, 7])
def test_pattern_statistics_equal_the_direct_grouping(chunk_rows):
    X, _ = _random_incomplete(n=300, p=6, mean=1e5)  # large means: no loss of precision
    pat = MissingPatterns.from_data(X, chunk_rows=chunk_rows)
    direct = pattern_statistics_direct(X)
    assert pat.n_patterns == len(direct) and pat.n == len(X)
    for k in range(pat.n_patterns):
        key = tuple(pat.mask[k])
        n_k, m, S = direct[key]
        obs = pat.mask[k]
        assert pat.counts[k] == n_k
        assert close(pat.means[k][obs], m, 1e-13)
        assert close(pat.covs[k][np.ix_(obs, obs)], S, 1e-9)
        rows = pat.pattern_rows(k)
        assert (~np.isnan(X[rows]) == obs).all() and np.all(np.diff(rows) > 0)
    mean, var = observed_moments(pat)
    assert close(mean, np.nanmean(X, axis=0), 1e-13)
    assert close(var, np.nanvar(X, axis=0), 1e-9)


def test_pattern_grouping_with_many_variables():
    """p > 62: patterns from packed bits instead of integer codes."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 70))
    X[rng.random(X.shape) < 0.01] = np.nan
    pat = MissingPatterns.from_data(X, chunk_rows=33)
    direct = pattern_statistics_direct(X)
    assert pat.n_patterns == len(direct)
    for k in range(pat.n_patterns):
        n_k, m, S = direct[tuple(pat.mask[k])]
        assert pat.counts[k] == n_k and close(pat.means[k][pat.mask[k]], m, 1e-13)


def test_pattern_inverses_by_lapack_equal_the_batched_inverse():
    """Many variables: per-pattern Cholesky inverses (potrf/potri) = the batched general
    inverse of the padded matrices; None when a pattern's block is not positive definite."""
    X, cov = _random_incomplete(n=500, p=9, rate=0.2)
    pat = MissingPatterns.from_data(X)
    A, logdet = pat._inverses_by_pattern(cov)
    mm = pat.mask[:, :, None] & pat.mask[:, None, :]
    padded = np.where(mm, cov, 0.0)
    padded[:, np.arange(9), np.arange(9)] += ~pat.mask
    assert close(A, np.linalg.inv(padded) * mm, 1e-12)
    assert close(logdet, np.linalg.slogdet(padded)[1], 1e-12)
    bad = cov.copy()
    bad[0, 1] = bad[1, 0] = 10 * np.sqrt(cov[0, 0] * cov[1, 1])
    assert pat._inverses_by_pattern(bad) is None and pat._inverses(bad) is None


def test_em_and_scores_with_missing_values_kept_as_nan():
    """The patterns keep the data as given (NaN, no zero-filled copy): EM, the casewise
    scores and the loss agree with a zero-filled computation."""
    X, cov = _random_incomplete()
    loss = FIMLGroupLoss(X)
    assert np.shares_memory(loss.patterns.X, X) and np.isnan(loss.patterns.X).any()
    coords = loss.coords
    mean, S = loss.mean, loss.cov
    filled = np.where(np.isnan(X), 0.0, X)
    total = np.zeros(coords.dim)
    for rows, sc in loss.patterns.score_chunks(coords, mean, S):
        total += sc.sum(axis=0)
        assert np.isfinite(sc).all()
    grad = coords.gradient(*loss.patterns.gradient(mean, S))
    assert np.abs(total / loss.nobs - grad).max() < 1e-12
    assert np.abs(grad).max() < 1e-4  # EM maximum
    assert np.isfinite(filled).all()


def test_data_path_equals_column_stack_and_leaves_the_frame_alone():
    rng = np.random.default_rng(2)
    n = 5000
    df = pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.integers(0, 5, n),
        "c": pd.array(rng.integers(0, 3, n), dtype="Int64"),
        "d": rng.normal(size=n).astype(np.float32),
        "e": rng.random(n) < 0.5,
        "g": rng.choice(["x", "y"], n),
    })
    df.loc[rng.random(n) < 0.1, "a"] = np.nan
    df.loc[rng.random(n) < 0.1, "c"] = pd.NA
    before = df.copy()
    cols = ["a", "b", "c", "d", "e"]
    obs = prepare_data(df, cols, missing="fiml")
    direct = np.column_stack([df[c].to_numpy(dtype=float, na_value=np.nan) for c in cols])
    X = obs.groups[0].X
    assert X.flags["C_CONTIGUOUS"] and np.array_equal(X, direct, equal_nan=True)
    pd.testing.assert_frame_equal(df, before)
    count, mean, var = column_moments(X)
    assert close(mean, np.nanmean(direct, axis=0), 1e-13)
    assert close(var, np.nanvar(direct, axis=0), 1e-12)
    assert np.array_equal(count, (~np.isnan(direct)).sum(axis=0))
    cached = obs.groups[0].__dict__["column_moments"]
    assert close(cached[1], mean, 1e-13) and close(cached[2], var, 1e-12)
    by_group = prepare_data(df, cols, missing="fiml", group="g")
    for gd in by_group.groups:
        part = direct[(df["g"] == gd.label).to_numpy()]
        assert np.array_equal(gd.X, part, equal_nan=True)
        assert gd.complete == (not np.isnan(part).any())
    listwise = prepare_data(df.dropna(subset=["a"]).drop(columns="c"), ["a", "b"])
    assert listwise.groups[0].complete
    assert close(listwise.groups[0].cov, np.cov(df.dropna(subset=["a"])[["a", "b"]].to_numpy(
        dtype=float).T, bias=True), 1e-12)
    bad = df[cols].astype(float)
    bad.loc[3, "d"] = np.inf
    with pytest.raises(DataError, match="'d' contains infinite"):
        prepare_data(bad, cols, missing="fiml")
    with pytest.warns(UserWarning, match="listwise"):
        lw = prepare_data(df, cols)
    assert not np.isnan(lw.groups[0].X).any()
    assert lw.n_dropped == int(np.isnan(direct).any(axis=1).sum())


def test_large_data_copy_without_huge_page_hint_restores_numpy_setting(monkeypatch):
    """The data's large copy is allocated with numpy's huge-page hint off, and the process-wide
    setting is restored afterwards (also when it was off)."""
    from sem_models.estimation import data as D

    toggle = np._core.multiarray._set_madvise_hugepage
    original = toggle(True)
    calls = []
    monkeypatch.setattr(np._core.multiarray, "_set_madvise_hugepage",
                        lambda flag: calls.append(flag) or toggle(flag))
    monkeypatch.setattr(D, "NO_HUGE_PAGE_BYTES", 1024)
    for before in (True, False):
        toggle(before)
        X = D._large_empty((100, 3))
        assert X.shape == (100, 3) and X.dtype == float
        assert toggle(before) == before  # restored
    assert calls[0] is False and calls[1] is True and calls[2] is False and calls[3] is False
    calls.clear()
    D._large_empty((10, 3))  # below the threshold: numpy's setting untouched
    assert calls == []
    toggle(original)
