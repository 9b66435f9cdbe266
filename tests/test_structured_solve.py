"""Block-arrow curvature matrices of multi-group models (issue 18, item 3).

The structured solve (:mod:`sem_models.estimation.structured`) must equal the dense solve:
random block-arrow matrices (partial sharing, groups without private or without shared
coordinates), the information and Hessian of real multi-group fits, and whole fits (estimates,
standard errors, iterations) with the structure forced on against the dense path; models where
the structure does not apply fall back to the dense path.  Real fits are also checked against
lavaan's numbers (tests/reference/json) with the structured path forced on.
"""
import copy
import warnings

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
import sem_models.estimation.structured as structured
from sem_models.estimation.optimizer import Problem, _solve
from sem_models.estimation.structured import BlockArrow, block_layout
from sem_models.inference.wald import constrained_inverse, constrained_variances

from lavaan_reference import check_estimates, fit_reference, load_reference

MODEL = "f =~ y1 + y2 + y3 + y4 + y5 + y6"


def _simulate(n_groups: int, n: int = 150, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lam = np.array([1.0, 0.8, 0.7, 0.75, 0.8, 0.7])
    frames = []
    for g in range(n_groups):
        eta = rng.normal(0.2 * (g % 4), np.sqrt(0.8 + 0.1 * (g % 3)), n)
        y = np.linspace(0, 1, 6) + np.outer(eta, lam) + rng.normal(size=(n, 6)) * 0.65
        frame = pd.DataFrame(y, columns=[f"y{j}" for j in range(1, 7)])
        frame["g"] = f"g{g}"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def force_structured(monkeypatch):
    monkeypatch.setattr(structured, "STRUCTURED_MIN_NZ", 0)


def _fit(monkeypatch, threshold: int, model: str, data: pd.DataFrame, **options):
    monkeypatch.setattr(structured, "STRUCTURED_MIN_NZ", threshold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.cfa(model, data, group="g", **options)


# ------------------------------------------------------------------ random matrices
def _random_arrow(rng, private_sizes, shared_sets, n_shared, spd=True):
    """A random block-arrow matrix: group g has ``private_sizes[g]`` private coordinates and
    touches the shared coordinates ``shared_sets[g]``; returned in structured and dense form."""
    cols, start = [], n_shared
    for p, sh in zip(private_sizes, shared_sets):
        c = np.concatenate([np.arange(start, start + p), np.asarray(sh, int)])
        rng.shuffle(c)
        cols.append(c)
        start += p
    n_z = start
    layout = block_layout(cols, n_z, min_size=0, max_shared=1.0)
    assert layout is not None
    M = layout.zeros()
    dense = np.zeros((n_z, n_z))
    for g, c in enumerate(cols):
        X = rng.normal(size=(len(c) + 4, len(c)))
        local = X.T @ X if spd else X.T @ X - 3.0 * len(c) * np.eye(len(c))
        w = rng.uniform(0.2, 1.0)
        dense[np.ix_(c, c)] += w * local
        order = layout.local[g]
        M.set_group(g, local[np.ix_(order, order)], w)
    return M, dense


ARROWS = {
    "full sharing": ([5, 6, 5, 7], [range(4)] * 4),
    "partial sharing": ([4, 3, 5, 4, 2], [[0, 1, 2], [0, 1], [2, 3, 4], [3, 4], [0, 4]]),
    "no private": ([3, 0, 4], [[0, 1], [0, 1, 2], [1, 2]]),
    "no shared": ([3, 4, 2], [[], [], []]),
    "mixed": ([3, 3, 0, 5, 3], [[0, 1], [], [0, 1, 2], [1, 2], [0, 1]]),
}


@pytest.mark.parametrize("case", sorted(ARROWS))
def test_random_block_arrow_matches_dense(case):
    rng = np.random.default_rng(11)
    sizes, sets = ARROWS[case]
    n_shared = max([max(s) + 1 for s in sets if len(s)] + [0])
    M, dense = _random_arrow(rng, sizes, sets, n_shared)
    np.testing.assert_allclose(M.to_dense(), dense, rtol=0, atol=1e-12)
    np.testing.assert_allclose(M.diagonal(), np.diag(dense), rtol=1e-14)
    rhs = rng.normal(size=len(dense))
    np.testing.assert_allclose(M.solve(rhs), np.linalg.solve(dense, rhs), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_solve(M, rhs), np.linalg.solve(dense, rhs), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(M.inverse_diagonal(), np.diag(np.linalg.inv(dense)), rtol=1e-9)
    scaled, d = M.scaled()
    np.testing.assert_allclose(d, 1 / np.sqrt(np.diag(dense)), rtol=1e-14)
    np.testing.assert_allclose(scaled.to_dense(), dense * np.outer(d, d), atol=1e-13)
    assert M.positive_definite()


def test_indefinite_block_arrow_falls_back_to_dense():
    """Not positive definite: no factorisation (as Cholesky of the dense matrix), and the
    optimizer's step comes from the dense LU solve."""
    rng = np.random.default_rng(5)
    M, dense = _random_arrow(rng, [4, 5, 3], [[0, 1], [1, 2], [0, 2]], 3, spd=False)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(dense)
    assert not M.positive_definite()
    rhs = rng.normal(size=len(dense))
    assert M.solve(rhs) is None and M.inverse_diagonal() is None
    np.testing.assert_allclose(_solve(M, rhs), np.linalg.solve(dense, rhs), rtol=1e-9)


def test_shared_block_not_positive_definite():
    """Private blocks fine but the Schur complement is not: not positive definite."""
    rng = np.random.default_rng(2)
    M, dense = _random_arrow(rng, [3, 3], [[0, 1], [0, 1]], 2)
    M.C0[:] = -50.0 * np.eye(2)  # a large negative addition to the shared block
    M._C = None
    M._factor = None
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(M.to_dense())
    assert not M.positive_definite()


def test_layout_not_used_when_it_does_not_pay():
    cols = [np.arange(0, 5), np.arange(5, 10)]
    assert block_layout(cols[:1], 5, min_size=0) is None  # one group
    assert block_layout(cols, 10, min_size=100) is None  # small problem
    everything = [np.arange(10), np.arange(10)]
    assert block_layout(everything, 10, min_size=0) is None  # everything shared
    layout = block_layout(cols, 10, min_size=0)
    assert layout.n_shared == 0 and [len(b.groups) for b in layout.buckets] == [2]


def test_constrained_variances_refuses_doubtful_cases():
    """None (the caller then takes the dense path with its warnings) for a dense matrix, a
    map that does not select, a singular matrix and one the eigenvalue bounds do not settle."""
    rng = np.random.default_rng(9)
    M, dense = _random_arrow(rng, [4, 4, 4], [[0, 1], [0, 1], [0, 1]], 2)
    n = len(dense)
    T = np.eye(n)
    var = constrained_variances(M, T, 100.0)
    np.testing.assert_allclose(var, np.diag(constrained_inverse(dense, T, 100.0,
                                                                [str(k) for k in range(n)])),
                               rtol=1e-9)
    assert constrained_variances(dense, T, 100.0) is None
    assert constrained_variances(M, 0.5 * T, 100.0) is None
    b, row = M.layout.slot[1]
    M.A[b][row][0, :] = 0.0
    M.A[b][row][:, 0] = 0.0  # a coordinate without information
    M._factor = None
    assert constrained_variances(M, T, 100.0) is None
    M2, dense2 = _random_arrow(rng, [3, 3], [[0], [0]], 1)
    b, row = M2.layout.slot[0]
    A = M2.A[b][row]
    A[:] = np.array([[1.0, 1 - 1e-9, 0], [1 - 1e-9, 1.0, 0], [0, 0, 1.0]])  # nearly singular
    M2._factor = None
    assert constrained_variances(M2, np.eye(7), 100.0) is None


# ------------------------------------------------------------------ real fits
def _assert_same_fit(a, b, se_rtol=1e-8):
    ea, eb = a.estimates(), b.estimates()
    np.testing.assert_allclose(ea["est"], eb["est"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ea["se"], eb["se"], rtol=se_rtol, atol=1e-12)
    assert a.result.iterations == b.result.iterations
    assert a.result.fmin == pytest.approx(b.result.fmin, rel=1e-12, abs=1e-15)


PARTIAL = """
f =~ y1 + c(a2, a2, a2, b2, b2)*y2 + c(a3, a3, b3, b3, b3)*y3 + y4 + y5 + y6
"""

WITHIN = "f =~ y1 + c(l2, l2, l2, l2, l2)*y2 + l3*y3 + l3*y4 + y5 + y6"


@pytest.mark.parametrize("model, options", [
    (MODEL, dict(group_equal=["loadings", "intercepts"])),
    (MODEL, dict()),  # configural: block diagonal (no shared coordinates)
    (MODEL, dict(group_equal=["loadings", "intercepts"], group_partial=["f=~y3", "y4~1"])),
    (PARTIAL, dict(group_equal=["intercepts"])),  # labels shared by some groups only
    (WITHIN, dict(group_equal=["intercepts"])),  # a label repeated within each group
])
def test_structured_fit_equals_dense_fit(monkeypatch, model, options):
    data = _simulate(5)
    dense = _fit(monkeypatch, 10**9, model, data, **options)
    fast = _fit(monkeypatch, 0, model, data, **options)
    assert dense.problem.block_layout() is None
    assert fast.problem.block_layout() is not None
    _assert_same_fit(fast, dense)
    # the full covariance matrix is still there (lazily, dense), with the same diagonal
    vcov = fast.vcov().to_numpy()
    np.testing.assert_allclose(vcov, dense.vcov().to_numpy(), rtol=1e-8, atol=1e-14)
    se = fast.estimates()["se"].to_numpy()[(fast._table["free"] > 0)[
        ~np.isin(fast._table["op"], ["==", "<", ">"])]]
    se_free = fast._est_se[1][fast.problem.pmap.free_rows]
    np.testing.assert_allclose(np.sqrt(np.diag(vcov)), se_free, rtol=1e-9)
    assert len(se) == len(se_free)


@pytest.mark.parametrize("model, options", [
    (MODEL, dict(group_equal=["loadings", "intercepts"])),
    (PARTIAL, dict(group_equal=["intercepts"])),
    (WITHIN, dict(group_equal=["intercepts"])),
    (MODEL, dict()),
])
def test_structured_curvature_equals_dense(monkeypatch, model, options):
    """Information and observed Hessian at the solution and away from it."""
    fit = _fit(monkeypatch, 0, model, _simulate(5), **options)
    problem = fit.problem
    for z in (fit.result.z, fit.result.z + 0.01):
        for kind in (dict(info=True), dict(hessian=True)):
            f0, g0, dense = problem.derivatives(z, **kind)
            f1, g1, arrow = problem.derivatives(z, structured=True, **kind)
            assert isinstance(arrow, BlockArrow)
            assert f0 == f1
            np.testing.assert_array_equal(g0, g1)
            np.testing.assert_allclose(arrow.to_dense(), dense, rtol=1e-12, atol=1e-14)


def test_non_unit_map_rows(monkeypatch):
    """Rows of T that are not single unit entries (the general per-group product
    ``t_g' C t_g``): a reparameterisation z0 -> z0 / 2 of a shared coordinate."""
    fit = _fit(monkeypatch, 0, MODEL, _simulate(4), group_equal=["loadings", "intercepts"])
    pmap = copy.copy(fit.problem.pmap)
    for key in ("_selection", "_is_identity"):
        pmap.__dict__.pop(key, None)
    pmap.T = pmap.T.copy()
    layout = fit.problem.block_layout()
    pmap.T[:, layout.shared[0]] *= 2.0
    problem = Problem(fit.problem.model, fit.problem.losses, pmap, fit.problem.base_values)
    assert pmap.selection is None and problem.block_layout() is not None
    assert any(kind == "dense" for _, _, kind, _ in problem._group_maps())
    z = fit.result.z.copy()
    z[layout.shared[0]] /= 2.0
    for kind in (dict(info=True), dict(hessian=True)):
        _, g0, dense = problem.derivatives(z, **kind)
        _, g1, arrow = problem.derivatives(z, structured=True, **kind)
        np.testing.assert_allclose(arrow.to_dense(), dense, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(problem.derivatives(z)[0], fit.result.fmin, rtol=1e-12)


@pytest.mark.parametrize("constraints", ["a == b", "a == b\n c2 == 2*d + 0.1"])
def test_equality_constraints(monkeypatch, constraints):
    """Linear '==' across groups: T = P K with K a null-space basis, rows that are not unit
    entries (the per-group product ``t_g' C t_g``), coupling the groups involved."""
    model = "f =~ y1 + c(a, b, c2, d)*y2 + y3 + y4 + y5 + y6\n" + constraints
    data = _simulate(4)
    forced = _fit(monkeypatch, 0, model, data, group_equal=["intercepts"])
    assert forced.problem.block_layout() is not None
    assert any(kind == "dense" for _, _, kind, _ in forced.problem._group_maps())
    dense = _fit(monkeypatch, 10**9, model, data, group_equal=["intercepts"])
    _assert_same_fit(forced, dense)
    env = forced.label_values()
    assert env["a"] == pytest.approx(env["b"], abs=1e-10)


def test_mostly_shared_falls_back_to_dense(monkeypatch):
    """Strict invariance in two groups: most coordinates shared, no block structure worth
    using; the dense path gives the fit."""
    data = _simulate(2)
    options = dict(group_equal=["loadings", "intercepts", "residuals"])
    forced = _fit(monkeypatch, 0, MODEL, data, **options)
    assert forced.problem.block_layout() is None
    dense = _fit(monkeypatch, 10**9, MODEL, data, **options)
    _assert_same_fit(forced, dense)


def test_single_group_never_structured(monkeypatch):
    monkeypatch.setattr(structured, "STRUCTURED_MIN_NZ", 0)
    data = _simulate(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.cfa(MODEL, data)
    assert fit.problem.block_layout() is None


@pytest.mark.parametrize("case", ["hs_scalar", "hs_partial_scalar", "hs_groupwise_labels",
                                  "h11_group_partial", "hs_configural", "hs_metric",
                                  "hs_fiml_groups_scalar", "hs_mlr_groups_scalar"])
def test_structured_path_against_lavaan(force_structured, case):
    ref = load_reference(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_reference(ref)
    assert fit.problem.block_layout() is not None
    assert fit.converged
    check_estimates(fit, ref)


def test_many_groups_scale(monkeypatch):
    """G = 40 groups with the default threshold: the structured path is taken and agrees with
    the dense one."""
    data = _simulate(40, n=60)
    fast = _fit(monkeypatch, structured.STRUCTURED_MIN_NZ, MODEL, data,
                group_equal=["loadings", "intercepts"])
    assert fast.problem.block_layout() is not None
    dense = _fit(monkeypatch, 10**9, MODEL, data, group_equal=["loadings", "intercepts"])
    _assert_same_fit(fast, dense)
