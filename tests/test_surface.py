"""Tests of the response surface math (sem_models.discrepancy) and figures (discrepancy.plots)."""

from __future__ import annotations

import re
import sys
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

from sem_models import surface as rs
from sem_models.surface import (
    B_NAMES,
    NONLINEAR_NAMES,
    RSA_MODELS,
    SurfaceWarning,
    aicc,
    aicc_table,
    bootstrap_surface,
    center,
    coefficient_labels,
    congruence_check,
    discrepancy_shares,
    is_nested,
    nonlinear_jacobian,
    nonlinear_quantities,
    polynomial_ols,
    polynomial_syntax,
    polynomial_terms,
    principal_axes,
    rsa_models,
    stationary_point,
    surface_group_tests,
    surface_parameters,
    surface_quantities,
    surface_table,
    term_names,
)

CHECK_B = np.array([-0.23, 0.77, -0.07, 0.27, -0.10])


def random_pd(k: int, seed: int, scale: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(k, k))
    return scale * (A @ A.T + k * np.eye(k))


def numerical_jacobian(f, b: np.ndarray, h: float = 1e-6) -> np.ndarray:
    cols = []
    for j in range(b.size):
        e = np.zeros_like(b)
        e[j] = h
        cols.append((f(b + e) - f(b - e)) / (2 * h))
    return np.column_stack(cols)


# ----------------------------------------------------------------------------- a1..a5


def test_check_vector_from_study():
    tab = surface_parameters(CHECK_B)
    expected = {"a1": 0.54, "a2": 0.10, "a3": -1.00, "a4": -0.44, "a5": 0.03}
    for name, value in expected.items():
        assert tab.loc[name, "est"] == pytest.approx(value, abs=1e-12)
    assert list(tab.columns) == ["est", "se", "z", "pvalue", "ci_lower", "ci_upper"]
    assert tab["se"].isna().all()


def test_surface_parameter_se_matches_direct_cvc():
    V = random_pd(5, seed=3)
    C = np.array(
        [
            [1, 1, 0, 0, 0],
            [0, 0, 1, 1, 1],
            [1, -1, 0, 0, 0],
            [0, 0, 1, -1, 1],
            [0, 0, 1, 0, -1],
        ],
        dtype=float,
    )
    direct = C @ V @ C.T
    tab = surface_parameters(CHECK_B, V, level=0.90)
    np.testing.assert_allclose(tab["se"].to_numpy(), np.sqrt(np.diag(direct)), rtol=1e-12)
    # elementwise c'Vc for each row as a second, independent check
    for i, name in enumerate(rs.SURFACE_NAMES):
        c = C[i]
        assert tab.loc[name, "se"] == pytest.approx(np.sqrt(c @ V @ c), rel=1e-12)
    z90 = 1.6448536269514722
    np.testing.assert_allclose(tab["ci_upper"] - tab["est"], z90 * tab["se"], rtol=1e-10)
    np.testing.assert_allclose(tab["z"], tab["est"] / tab["se"], rtol=1e-12)
    from scipy import stats

    np.testing.assert_allclose(tab["pvalue"], 2 * stats.norm.sf(np.abs(tab["z"])), rtol=1e-12)


def test_labelled_inputs_pick_named_entries():
    names = ["b0", "c1"] + list(B_NAMES)
    V = random_pd(7, seed=5)
    full_b = pd.Series(np.r_[1.0, 2.0, CHECK_B], index=names)
    full_V = pd.DataFrame(V, index=names, columns=names)
    tab = surface_parameters(full_b, full_V)
    ref = surface_parameters(CHECK_B, V[2:, 2:])
    pd.testing.assert_frame_equal(tab, ref)
    # group-specific labels
    g_names = [f"{n}_g2" for n in B_NAMES]
    b2 = pd.Series(CHECK_B, index=g_names)
    V2 = pd.DataFrame(V[2:, 2:], index=g_names, columns=g_names)
    pd.testing.assert_frame_equal(surface_parameters(b2, V2, names=g_names), ref)
    with pytest.raises(KeyError):
        surface_parameters(pd.Series(CHECK_B, index=list("abcde")), V[2:, 2:])
    with pytest.raises(ValueError):
        surface_parameters(CHECK_B[:4])


def test_constrained_parameter_has_zero_se_and_nan_z():
    # rising ridge: b1 = b2, b3 = b5, b4 = -2 b3 -> a2 = 0 and a3 = 0 exactly
    N = np.array([[1, 1, 0, 0, 0], [0, 0, 1, -2, 1]], dtype=float).T  # null space basis
    V = N @ np.array([[0.02, 0.005], [0.005, 0.01]]) @ N.T
    b = N @ np.array([0.3, -0.2])
    tab = surface_parameters(b, V)
    for name in ("a2", "a3", "a5"):
        assert tab.loc[name, "se"] == 0.0
        assert np.isnan(tab.loc[name, "z"]) and np.isnan(tab.loc[name, "pvalue"])
    assert tab.loc["a1", "se"] > 0 and tab.loc["a4", "se"] > 0


# ----------------------------------------------------------------------------- nonlinear


def formulas(b: np.ndarray) -> np.ndarray:
    """STUDY.md formulas, written out independently of the module."""
    b1, b2, b3, b4, b5 = b
    D = 4 * b3 * b5 - b4**2
    X0 = (b2 * b4 - 2 * b1 * b5) / D
    Y0 = (b1 * b4 - 2 * b2 * b3) / D
    root = np.sqrt((b3 - b5) ** 2 + b4**2)
    p11 = (b5 - b3 + root) / b4
    p21 = (b5 - b3 - root) / b4
    return np.array([X0, Y0, Y0 - p11 * X0, p11, Y0 - p21 * X0, p21])


@pytest.mark.parametrize(
    "b",
    [
        CHECK_B,
        np.array([0.1, -0.2, -0.3, 0.5, -0.4]),
        np.array([0.4, 0.1, 0.25, -0.45, 0.2]),  # convex
        np.array([0.2, 0.3, -0.1, 0.6, 0.3]),  # saddle
    ],
)
def test_stationary_point_and_axes_match_formulas(b):
    got = nonlinear_quantities(b).to_numpy()
    np.testing.assert_allclose(got, formulas(b), rtol=1e-12)
    # the stationary point solves the first-order conditions
    X0, Y0 = got[0], got[1]
    assert b[0] + 2 * b[2] * X0 + b[3] * Y0 == pytest.approx(0, abs=1e-12)
    assert b[1] + b[3] * X0 + 2 * b[4] * Y0 == pytest.approx(0, abs=1e-12)
    # the axes are orthogonal eigenvector directions; the first has the larger eigenvalue
    M = np.array([[b[2], b[3] / 2], [b[3] / 2, b[4]]])
    lam, vec = np.linalg.eigh(M)
    v1 = vec[:, 1]
    assert got[3] == pytest.approx(v1[1] / v1[0], rel=1e-10)
    assert got[3] * got[5] == pytest.approx(-1.0, rel=1e-10)
    # both axes pass through the stationary point
    assert got[2] + got[3] * X0 == pytest.approx(Y0)
    assert got[4] + got[5] * X0 == pytest.approx(Y0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delta_method_gradients_match_numerical_differentiation(seed):
    rng = np.random.default_rng(seed)
    b = CHECK_B + rng.normal(scale=0.05, size=5)
    J = nonlinear_jacobian(b).to_numpy()
    Jn = numerical_jacobian(formulas, b)
    np.testing.assert_allclose(J, Jn, rtol=1e-6, atol=1e-8)
    V = random_pd(5, seed=seed + 10)
    tab = pd.concat([stationary_point(b, V), principal_axes(b, V)]).loc[list(NONLINEAR_NAMES)]
    np.testing.assert_allclose(tab["se"], np.sqrt(np.diag(Jn @ V @ Jn.T)), rtol=1e-5)
    full = surface_table(b, V)
    assert list(full.index) == list(rs.SURFACE_NAMES) + list(NONLINEAR_NAMES)
    pd.testing.assert_frame_equal(full.loc[list(NONLINEAR_NAMES)], tab)


def test_d_zero_gives_nan_stationary_point_with_warning():
    b = np.array([0.3, 0.3, -0.2, 0.4, -0.2])  # rising ridge: D = 4*0.04 - 0.16 = 0
    V = random_pd(5, seed=1)
    with pytest.warns(SurfaceWarning, match="no unique stationary point"):
        sp = stationary_point(b, V)
    assert sp["est"].isna().all() and sp["se"].isna().all()
    with pytest.warns(SurfaceWarning, match="D = 4"):
        ax = principal_axes(b, V)
    assert np.isnan(ax.loc["p10", "est"]) and np.isnan(ax.loc["p20", "est"])
    assert ax.loc["p11", "est"] == pytest.approx(1.0)  # concave ridge along X = Y
    assert ax.loc["p21", "est"] == pytest.approx(-1.0)
    assert np.isfinite(ax.loc["p11", "se"])


def test_b4_zero_axes_parallel_to_coordinate_axes():
    # b3 > b5: the first axis (larger eigenvalue b3) is horizontal
    b = np.array([0.2, -0.1, -0.1, 0.0, -0.3])
    V = random_pd(5, seed=2)
    with pytest.warns(SurfaceWarning, match="parallel to the X and Y axes"):
        ax = principal_axes(b, V)
    assert ax.loc["p11", "est"] == 0.0
    X0, Y0 = formulas_sp(b)
    assert ax.loc["p10", "est"] == pytest.approx(Y0)
    assert ax[["est", "se"]].loc[["p20", "p21"]].isna().all().all()
    # SE of the horizontal slope: limit of the general gradient as b4 -> 0
    # (central difference across b4 = 0 of the general formulas, which are smooth there)
    h = 1e-4
    e4 = np.array([0, 0, 0, h, 0])
    d_num = (formulas(b + e4) - formulas(b - e4)) / (2 * h)
    J0 = nonlinear_jacobian(b).to_numpy()
    assert J0[3, 3] == pytest.approx(d_num[3], abs=1e-6)  # slope p11
    assert J0[2, 3] == pytest.approx(d_num[2], abs=1e-6)  # intercept p10
    np.testing.assert_allclose(J0[3, [0, 1, 2, 4]], 0.0)
    # b3 < b5: the second axis is the horizontal one
    with pytest.warns(SurfaceWarning, match="first axis is vertical"):
        q = nonlinear_quantities(np.array([0.2, -0.1, -0.3, 0.0, -0.1]))
    assert np.isnan(q["p11"]) and q["p21"] == 0.0
    # b4 = 0 and b3 = b5: no axes; all-zero curvature: nothing defined
    with pytest.warns(SurfaceWarning, match="rotationally symmetric"):
        q = nonlinear_quantities(np.array([0.2, -0.1, -0.3, 0.0, -0.3]))
    assert q[["p10", "p11", "p20", "p21"]].isna().all()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        q = nonlinear_quantities(np.array([0.2, -0.1, 0.0, 0.0, 0.0]))
    assert q.isna().all() and len(rec) == 2


def formulas_sp(b):
    b1, b2, b3, b4, b5 = b
    D = 4 * b3 * b5 - b4**2
    return (b2 * b4 - 2 * b1 * b5) / D, (b1 * b4 - 2 * b2 * b3) / D


def test_sign_flip_of_outcome_swaps_principal_axes():
    b = np.array([0.1, -0.2, -0.3, 0.5, -0.4])
    q, qm = nonlinear_quantities(b), nonlinear_quantities(-b)
    assert qm["p11"] == pytest.approx(q["p21"]) and qm["p21"] == pytest.approx(q["p11"])
    assert qm["X0"] == pytest.approx(q["X0"])


def test_surface_quantities_for_bootstrap():
    s = surface_quantities(CHECK_B)
    assert list(s.index) == list(rs.SURFACE_NAMES) + list(NONLINEAR_NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s0 = surface_quantities(np.array([0.3, 0.3, 0, 0, 0]))
    assert s0[list(NONLINEAR_NAMES)].isna().all()


def test_congruence_check():
    # concave ridge on the LOC: Z = -(X - Y)^2 with small noise-free SEs
    b = np.array([0.0, 0.0, -0.5, 1.0 - 1e-3, -0.5])
    V = np.eye(5) * 1e-4
    tab = surface_table(b, V)
    chk = congruence_check(tab, optimum="maximum")
    assert list(chk["parameter"]) == ["p10", "p11", "a4", "a3"]
    assert chk.attrs["all_met"]
    # outcome = problems: minimum on the LOC -> uses the second axis and a4 > 0
    chk_min = congruence_check(surface_table(-b, V), optimum="minimum")
    assert list(chk_min["parameter"])[:2] == ["p20", "p21"]
    assert chk_min.attrs["all_met"]
    assert not congruence_check(surface_table(-b, V), optimum="maximum").attrs["all_met"]
    strict = congruence_check(tab, strict=True)
    assert {"a1", "a2"} <= set(strict["parameter"])


# ----------------------------------------------------------------------------- data prep


def test_discrepancy_shares_hand_made():
    x = np.array([1.0, 2.0, 3.0, 4.0, 1.0, 4.0, 2.0, 3.0, np.nan, 2.0])
    y = np.array([1.0, 2.0, 3.0, 4.0, 4.0, 1.0, 3.0, 2.0, 3.0, np.nan])
    # complete cases: first 8; pooled values: 1,2,3,4 each four times
    pooled = np.array([1, 2, 3, 4] * 4, dtype=float)
    sd = pooled.std(ddof=1)  # 1.1547
    d = (y[:8] - x[:8]) / sd  # 0,0,0,0, 2.6, -2.6, 0.87, -0.87
    assert np.sum(d < -0.5) == 2 and np.sum(d > 0.5) == 2
    s = discrepancy_shares(x, y)
    assert list(s.index) == ["below", "within", "above"]
    assert s["below"] == pytest.approx(2 / 8)
    assert s["within"] == pytest.approx(4 / 8)
    assert s["above"] == pytest.approx(2 / 8)
    assert s.attrs["n"] == 8 and s.attrs["mean"] == pytest.approx(2.5)
    assert s.attrs["sd"] == pytest.approx(sd)
    # a threshold of 1 SD moves the +-0.87 cases into "within"
    s1 = discrepancy_shares(x, y, threshold=1.0)
    assert s1["within"] == pytest.approx(6 / 8)
    # uses the common SD, not each variable's own: shifting both by a constant changes nothing
    s2 = discrepancy_shares(x + 10, y + 10)
    pd.testing.assert_series_equal(s, s2)


def make_data(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 5, size=n).astype(float)
    y = np.clip(x + rng.integers(-1, 2, size=n), 1, 4).astype(float)
    z = 50 + rng.normal(scale=10, size=n)
    return pd.DataFrame({"t_bond": x, "c_bond": y, "intern": z})


def test_center_does_not_modify_input_and_centers_commonly():
    df = make_data()
    before = df.copy(deep=True)
    out = center(df, "t_bond", "c_bond", how="pooled")
    pd.testing.assert_frame_equal(df, before)
    assert out is not df
    pooled_mean = np.concatenate([df["t_bond"], df["c_bond"]]).mean()
    np.testing.assert_allclose(out["t_bond"], df["t_bond"] - pooled_mean)
    np.testing.assert_allclose(out["c_bond"], df["c_bond"] - pooled_mean)
    assert out.attrs["centering"] == {"t_bond": pooled_mean, "c_bond": pooled_mean}
    mid = center(df, "t_bond", "c_bond", how="midpoint", midpoint=2.5)
    np.testing.assert_allclose(mid["t_bond"], df["t_bond"] - 2.5)
    mid2 = center(df, "t_bond", "c_bond", how="midpoint", midpoint=(1, 4))
    pd.testing.assert_frame_equal(mid, mid2)
    num = center(df, "t_bond", "c_bond", how=3.0)
    np.testing.assert_allclose(num["c_bond"], df["c_bond"] - 3.0)
    with pytest.warns(SurfaceWarning):  # 1..4 scale uncentered: 0 outside the range
        none = center(df, "t_bond", "c_bond", how=None)
    pd.testing.assert_frame_equal(none, df)
    assert none is not df
    with pytest.raises(ValueError, match="midpoint"):
        center(df, "t_bond", "c_bond", how="midpoint")
    pd.testing.assert_frame_equal(df, before)


def test_center_warnings():
    df = make_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        center(df, "t_bond", "c_bond", how="pooled")
        center(df, "t_bond", "c_bond", how="midpoint", midpoint=2.5)
    with pytest.warns(SurfaceWarning, match="outside the observed range"):
        center(df, "t_bond", "c_bond", how=None)  # 1..4 scale: 0 not in range
    with pytest.warns(SurfaceWarning, match="outside the observed range"):
        center(df, "t_bond", "c_bond", how=10)
    with pytest.warns(SurfaceWarning, match="commensurability"):
        center(df, "t_bond", "c_bond", how="variablewise")
    with pytest.warns(SurfaceWarning, match="commensurability"):
        center(df, "t_bond", "c_bond", how=(2.0, 3.0))


def test_polynomial_terms():
    df = make_data(20)
    before = df.copy()
    out = polynomial_terms(df, "t_bond", "c_bond")
    pd.testing.assert_frame_equal(df, before)
    assert term_names("t_bond", "c_bond") == ("t_bond2", "t_bond_c_bond", "c_bond2")
    np.testing.assert_allclose(out["t_bond2"], df["t_bond"] ** 2)
    np.testing.assert_allclose(out["t_bond_c_bond"], df["t_bond"] * df["c_bond"])
    np.testing.assert_allclose(out["c_bond2"], df["c_bond"] ** 2)
    for name in term_names("t_bond", "c_bond"):
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]*", name)
    with pytest.raises(ValueError, match="already exist"):
        polynomial_terms(out, "t_bond", "c_bond")
    polynomial_terms(out, "t_bond", "c_bond", overwrite=True)
    with pytest.raises(ValueError):
        term_names("t bond", "c_bond")
    with pytest.raises(ValueError, match="clash"):
        term_names("a", "a2")


# ----------------------------------------------------------------------------- syntax


def statements(syntax: str) -> set[str]:
    return {re.sub(r"\s+", " ", s.strip()) for s in syntax.strip().splitlines() if s.strip()}


A_DEFS = {
    "a1 := b1 + b2",
    "a2 := b3 + b4 + b5",
    "a3 := b1 - b2",
    "a4 := b3 - b4 + b5",
    "a5 := b3 - b5",
}
REG = "z ~ b1*x + b2*y + b3*x2 + b4*x_y + b5*y2"


@pytest.mark.parametrize(
    "model, constraints",
    [
        ("full", set()),
        ("additive", {"b3 == 0", "b4 == 0", "b5 == 0"}),
        ("interaction", {"b3 == 0", "b5 == 0"}),
        ("IA", {"b3 == 0", "b5 == 0"}),
        ("SQD", {"b1 == 0", "b2 == 0", "b3 == b5", "b4 == -2*b3"}),
        ("SSQD", {"b1 == -b2", "b3 == b5", "b4 == -2*b3"}),
        ("RR", {"b1 == b2", "b3 == b5", "b4 == -2*b3"}),
        ("SRR", {"b3 == b5", "b4 == -2*b3"}),
        ("null", {f"b{i} == 0" for i in range(1, 6)}),
    ],
)
def test_model_syntax_statement_sets(model, constraints):
    assert statements(polynomial_syntax("z", "x", "y", model=model)) == {REG} | constraints | A_DEFS


def test_syntax_with_controls_and_stationary():
    s = statements(polynomial_syntax("ext_fu", "t_task", "c_task", controls=["ext_pre", "age"],
                                     stationary=True))
    assert ("ext_fu ~ b1*t_task + b2*c_task + b3*t_task2 + b4*t_task_c_task + b5*c_task2"
            " + ext_pre + age") in s
    assert "X0 := (b2*b4 - 2*b1*b5) / (4*b3*b5 - b4^2)" in s
    assert "p10 := Y0 - p11*X0" in s and "p20 := Y0 - p21*X0" in s
    with pytest.raises(ValueError, match="undefined"):
        polynomial_syntax("z", "x", "y", model="SQD", stationary=True)
    with pytest.raises(ValueError):
        polynomial_syntax("z", "x", "y", model="cubic")
    with pytest.raises(ValueError):
        polynomial_syntax("x2", "x", "y")


def test_multigroup_syntax():
    s = statements(
        polynomial_syntax("z", "x", "y", model="SQD", group_labels=["group", "individual"])
    )
    assert ("z ~ c(b1_group, b1_individual)*x + c(b2_group, b2_individual)*y"
            " + c(b3_group, b3_individual)*x2 + c(b4_group, b4_individual)*x_y"
            " + c(b5_group, b5_individual)*y2") in s
    for g in ("group", "individual"):
        assert {f"b1_{g} == 0", f"b2_{g} == 0", f"b3_{g} == b5_{g}", f"b4_{g} == -2*b3_{g}"} <= s
        assert {f"a1_{g} := b1_{g} + b2_{g}", f"a4_{g} := b3_{g} - b4_{g} + b5_{g}",
                f"a5_{g} := b3_{g} - b5_{g}"} <= s
    assert len(s) == 1 + 2 * 4 + 2 * 5
    s2 = polynomial_syntax("z", "x", "y", group_labels=2)
    assert "c(b1_g1, b1_g2)*x" in s2 and "a2_g2 := b3_g2 + b4_g2 + b5_g2" in s2
    labs = coefficient_labels(["a b", "a-b"])  # sanitized labels collide -> g1, g2
    assert labs["a b"]["b"][0] == "b1_g1" and labs["a-b"]["a"][4] == "a5_g2"
    assert coefficient_labels()[None]["b"] == B_NAMES


def test_rsa_models_and_constraint_matrices():
    mods = rsa_models()
    assert set(mods) == set(rs.DEFAULT_MODELS)
    assert {"full", "additive", "interaction", "SQD", "RR"} <= set(mods)
    assert set(rsa_models(models="all")) == set(RSA_MODELS)
    # the constraint strings and the matrices describe the same sets
    rng = np.random.default_rng(0)
    for name, spec in RSA_MODELS.items():
        if spec.matrix.size == 0:
            continue
        _, sv, vt = np.linalg.svd(spec.matrix)
        null = vt[int(np.sum(sv > 1e-10)):].T
        b = null @ rng.normal(size=null.shape[1]) if null.size else np.zeros(5)
        env = dict(zip(B_NAMES, b))
        for c in spec.constraints:
            lhs, rhs = c.split("==")
            assert eval(lhs, {}, env) == pytest.approx(eval(rhs, {}, env), abs=1e-12), (name, c)
        assert spec.n_constraints == len(spec.constraints)
    # nesting
    assert is_nested("SQD", "SSQD") and is_nested("SQD", "RR") and is_nested("RR", "SRR")
    assert is_nested("SRR", "full") and is_nested("null", "additive")
    assert is_nested("additive", "interaction")
    assert not is_nested("SRR", "RR") and not is_nested("full", "SQD")
    assert not is_nested("interaction", "SRR")


# ----------------------------------------------------------------------------- AICc, groups


def test_aicc():
    assert aicc(-100.0, 3, 50) == pytest.approx(200 + 6 + 2 * 3 * 4 / 46)
    out = aicc(np.array([-100.0, -99.0]), np.array([3, 5]), 50)
    assert out.shape == (2,)
    with pytest.warns(SurfaceWarning):
        assert np.isnan(aicc(-10.0, 9, 10))
    tab = aicc_table({"full": (-99.0, 7), "SQD": (-100.0, 3), "null": (-120.0, 2)}, n=60)
    assert tab.index[0] == "SQD"
    assert tab["weight"].sum() == pytest.approx(1.0)
    assert tab["delta_aicc"].iloc[0] == 0.0


def test_surface_group_tests():
    rng = np.random.default_rng(4)
    b_g1 = CHECK_B
    b_g2 = CHECK_B + np.array([0.1, 0.0, 0.05, -0.1, 0.0])
    V = random_pd(10, seed=7)
    labs = coefficient_labels(["group", "individual"])
    names = list(labs["group"]["b"]) + list(labs["individual"]["b"])
    b = pd.Series(np.r_[b_g1, b_g2], index=names)
    Vd = pd.DataFrame(V, index=names, columns=names)
    tab = surface_group_tests(b, Vd, ["group", "individual"])
    C = rs.SURFACE_MATRIX
    L = np.hstack([-C, C])
    diff = L @ b.to_numpy()
    cov = L @ V @ L.T
    np.testing.assert_allclose(tab.loc[list(rs.SURFACE_NAMES), "diff"], diff, rtol=1e-12)
    np.testing.assert_allclose(tab.loc[list(rs.SURFACE_NAMES), "chisq"],
                               diff**2 / np.diag(cov), rtol=1e-10)
    assert tab.loc["all", "df"] == 5
    assert tab.loc["all", "chisq"] == pytest.approx(diff @ np.linalg.solve(cov, diff))
    # stacked arrays give the same
    tab2 = surface_group_tests(np.r_[b_g1, b_g2], V, 2)
    np.testing.assert_allclose(tab2["chisq"], tab["chisq"])
    three = surface_group_tests(rng.normal(size=15), random_pd(15, 1), 3)
    assert (three.loc[list(rs.SURFACE_NAMES), "df"] == 2).all()
    assert "diff" not in three.columns


# ----------------------------------------------------------------------------- OLS, bootstrap


def simulate_poly(n: int, b: np.ndarray, seed: int, sigma: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.4 * x + rng.normal(scale=0.9, size=n)
    z = 1.0 + b[0] * x + b[1] * y + b[2] * x**2 + b[3] * x * y + b[4] * y**2
    return pd.DataFrame({"x": x, "y": y, "z": z + rng.normal(scale=sigma, size=n)})


def test_polynomial_ols_recovers_coefficients():
    df = simulate_poly(4000, CHECK_B, seed=2, sigma=0.5)
    coef, vcov = polynomial_ols(df, "z", "x", "y")
    assert list(coef.index) == ["b0", *B_NAMES]
    np.testing.assert_allclose(coef[list(B_NAMES)], CHECK_B, atol=0.05)
    _, vml = polynomial_ols(df, "z", "x", "y", ml=True)
    np.testing.assert_allclose(vml.to_numpy(), vcov.to_numpy() * (4000 - 6) / 4000)


def test_bootstrap_percentile_coverage_of_mean():
    """Percentile intervals of a mean cover the truth at about the nominal rate."""
    rng = np.random.default_rng(12345)
    n_sim, n, mu = 400, 30, 1.0
    hits = 0
    for i in range(n_sim):
        sample = rng.normal(mu, 2.0, size=n)
        res = bootstrap_surface(sample, lambda a: a.mean(axis=1), n_boot=999, level=0.90,
                                seed=i, vectorized=True)
        lo, hi = res.table.loc["stat0", ["ci_lower", "ci_upper"]]
        hits += lo <= mu <= hi
    coverage = hits / n_sim
    # nominal .90; percentile intervals undercover slightly at n = 30 (~.88)
    assert 0.84 <= coverage <= 0.95, coverage


def test_bootstrap_bca_coverage_of_mean_skewed():
    rng = np.random.default_rng(7)
    n_sim, n, mu = 200, 40, 1.0
    hits = 0
    for i in range(n_sim):
        sample = rng.exponential(mu, size=n)
        res = bootstrap_surface(sample, lambda a: a.mean(axis=1), n_boot=999, level=0.90,
                                method="bca", seed=i, vectorized=True)
        lo, hi = res.table.iloc[0][["ci_lower", "ci_upper"]]
        hits += lo <= mu <= hi
    assert 0.80 <= hits / n_sim <= 0.97


def test_bootstrap_generic_statistic_seed_strata_cluster():
    df = simulate_poly(150, CHECK_B, seed=3)
    df["school"] = np.repeat(np.arange(15), 10)
    df["format"] = np.where(df["school"] < 7, "group", "individual")

    def stat(d):
        coef, _ = polynomial_ols(d, "z", "x", "y")
        return surface_quantities(coef)

    r1 = bootstrap_surface(df, stat, n_boot=200, seed=1)
    r2 = bootstrap_surface(df, stat, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(r1.table, r2.table)
    assert list(r1.table.index[:5]) == list(rs.SURFACE_NAMES)
    assert r1.replicates.shape == (200, 11)
    # bootstrap SE of a1 is close to the analytic OLS SE
    coef, vcov = polynomial_ols(df, "z", "x", "y")
    se = surface_parameters(coef, vcov).loc["a1", "se"]
    assert 0.7 < r1.table.loc["a1", "boot_se"] / se < 1.4
    assert (r1.table["ci_lower"] <= r1.table["ci_upper"]).loc[list(rs.SURFACE_NAMES)].all()

    # strata keep the group sizes; clusters are resampled whole
    def sizes(d):
        counts = d.groupby("school").size()
        return pd.Series({"n_group": float((d["format"] == "group").sum()),
                          "whole": float(np.all(counts % 10 == 0))})

    rc = bootstrap_surface(df, sizes, n_boot=50, seed=2, strata="format", cluster="school")
    assert (rc.replicates["n_group"] == 70).all()
    assert (rc.replicates["whole"] == 1).all()

    # failures are counted and warned about
    calls = {"n": 0}

    def flaky(d):
        calls["n"] += 1
        if calls["n"] % 10 == 0:
            raise np.linalg.LinAlgError("did not converge")
        return float(d["z"].mean())

    with pytest.warns(SurfaceWarning, match="failed"):
        rf = bootstrap_surface(df, flaky, n_boot=100, seed=3)
    assert rf.n_failed == 10 and rf.table.loc["stat0", "n_valid"] == 90

    rb = bootstrap_surface(df, lambda d: d["z"].mean(), n_boot=300, seed=4, method="bca",
                           cluster="school")
    assert rb.jackknife.shape == (15, 1)
    assert rb.table.loc["stat0", "ci_lower"] < df["z"].mean() < rb.table.loc["stat0", "ci_upper"]


# ----------------------------------------------------------------------------- plots


def test_plots_return_figures():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    from matplotlib.figure import Figure

    from sem_models.discrepancy.plots import plot_contour, plot_surface, surface_grid

    fig = plot_surface(CHECK_B, (-1.5, 1.5), (-1.5, 1.5), principal_axis=True, title="t")
    assert isinstance(fig, Figure)
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert "line of congruence (X = Y)" in labels and "line of incongruence (X = -Y)" in labels
    # the congruence line is drawn on the surface: its z values are the surface's
    ln = fig.axes[0].get_lines()[0]
    xs, ys, zs = ln.get_data_3d()
    b1, b2, b3, b4, b5 = CHECK_B
    np.testing.assert_allclose(xs, ys)
    np.testing.assert_allclose(zs, b1 * xs + b2 * ys + b3 * xs**2 + b4 * xs * ys + b5 * ys**2)

    fig2 = plot_contour(CHECK_B, (-4, 2), (-2, 2))
    assert isinstance(fig2, Figure)
    labels2 = [ln.get_label() for ln in fig2.axes[0].get_lines()]
    assert "stationary point" in labels2 and "first principal axis" in labels2
    # rising ridge (no stationary point, axes without intercept) still plots, without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", SurfaceWarning)
        plot_contour(pd.Series(dict(zip(B_NAMES, [0.3, 0.3, -0.2, 0.4, -0.2]), b0=1.0)))
        plot_surface([0.0, 0.0, 0.0, 0.0, 0.0])
    # drawing into an existing axes
    f = Figure()
    ax = f.add_subplot(projection="3d")
    assert plot_surface(CHECK_B, ax=ax) is f
    with pytest.raises(TypeError):
        plot_surface(CHECK_B, ax=Figure().add_subplot())
    X, Y, Z = surface_grid({"b0": 2.0, **dict(zip(B_NAMES, CHECK_B))}, n_grid=5)
    assert Z[2, 2] == pytest.approx(2.0)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_importing_surface_does_not_import_matplotlib():
    code = ("import sys, sem_models.surface, sem_models.discrepancy.plots; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
