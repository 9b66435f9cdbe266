"""sem_models.response_surface: the engine's RSA against lavaan (tests/reference_surface JSON),
the STUDY.md check vector, warnings, and bootstrap coverage in a small simulation."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from sem_models import surface as S
from sem_models.rsa import response_surface

REF = Path(__file__).resolve().parent / "reference_surface"
DATA = REF / "data" / "rsa_sim.csv"
SINGLE = ["full", "SRR", "RR", "SSQD", "SQD", "interaction", "additive", "null"]


def load(case):
    return json.loads((REF / "json" / f"{case}.json").read_text())


def defined(ref, suffix=""):
    return {p["lhs"][: len(p["lhs"]) - len(suffix)] if suffix else p["lhs"]: p
            for p in ref["parameters"] if p["op"] == ":=" and p["lhs"].endswith(suffix)}


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def single(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return response_surface(data, "int_fu", "t_bond", "c_bond", controls=["int_pre"],
                                estimator="ML", missing="listwise", center="midpoint",
                                midpoint=2.5, models=SINGLE)


@pytest.fixture(scope="module")
def grouped(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return response_surface(data, "int_fu", "t_bond", "c_bond", controls=["int_pre"],
                                group="format", estimator="ML", missing="listwise",
                                center=2.5, models=["full", "SQD"])


def test_exported():
    assert sm.response_surface is response_surface


def test_check_vector():
    a = S.surface_parameters([-0.23, 0.77, -0.07, 0.27, -0.10])["est"]
    np.testing.assert_allclose(a.to_numpy(), [0.54, 0.10, -1.00, -0.44, 0.03], atol=1e-12)


def _compare(table, ref_rows, names):
    t = table.set_index("parameter")
    for n in names:
        r = ref_rows[n]
        assert t.loc[n, "est"] == pytest.approx(r["est"], rel=1e-4, abs=1e-8), n
        assert t.loc[n, "se"] == pytest.approx(r["se"], rel=1e-3), n


def test_single_group_against_lavaan(single):
    ref = load("rsa_full")
    rows = defined(ref)
    _compare(single.surface, rows, S.SURFACE_NAMES)
    # stationary point and principal axes: lavaan's := with delta-method SEs
    _compare(single.stationary, rows, S.NONLINEAR_NAMES)
    assert list(single.surface.columns) == ["group", "parameter", "est", "se", "z", "pvalue",
                                            "ci_lower", "ci_upper"]
    assert single.centering == {"t_bond": 2.5, "c_bond": 2.5}


def test_stationary_point_formulas(single):
    b = single.b()
    b1, b2, b3, b4, b5 = (b[f"b{k}"] for k in range(1, 6))
    D = 4 * b3 * b5 - b4 ** 2
    x0, y0 = (b2 * b4 - 2 * b1 * b5) / D, (b1 * b4 - 2 * b2 * b3) / D
    p11 = (b5 - b3 + np.sqrt((b3 - b5) ** 2 + b4 ** 2)) / b4
    t = single.stationary.set_index("parameter")["est"]
    np.testing.assert_allclose([t["X0"], t["Y0"], t["p11"], t["p10"]],
                               [x0, y0, p11, y0 - p11 * x0], rtol=1e-10)


def test_models_against_lavaan(single):
    for m in SINGLE:
        fit = load(f"rsa_{m}")["fit"]
        row = single.models.loc[m]
        assert row["df"] == fit["df"], m
        assert row["npar"] == fit["npar"], m
        assert row["chisq"] == pytest.approx(fit["chisq"], rel=1e-4, abs=1e-6), m
        assert row["logl"] == pytest.approx(fit["logl"], rel=1e-8), m
        n = fit["ntotal"]
        k = fit["npar"]
        assert row["aicc"] == pytest.approx(fit["aic"] + 2 * k * (k + 1) / (n - k - 1), rel=1e-8)
        if m != "full":
            assert row["chisq_diff"] == pytest.approx(fit["chisq"], rel=1e-4, abs=1e-6)
    assert single.models["weight"].sum() == pytest.approx(1.0)


def test_by_group_against_lavaan(grouped):
    ref = load("rsa_full_groups")
    assert grouped.group_labels == ref["group_labels"]
    for g in grouped.group_labels:
        rows = defined(ref, suffix=f"_{g}")
        _compare(grouped.surface[grouped.surface["group"] == g], rows, S.SURFACE_NAMES)
        _compare(grouped.stationary[grouped.stationary["group"] == g], rows, S.NONLINEAR_NAMES)
    for name in list(S.SURFACE_NAMES) + ["all"]:
        w = ref["wald"][name]
        row = grouped.group_tests.loc[name]
        assert row["df"] == w["df"]
        assert row["chisq"] == pytest.approx(w["stat"], rel=1e-4, abs=1e-9), name
    sqd = load("rsa_SQD_groups")["fit"]
    assert grouped.models.loc["SQD", "chisq"] == pytest.approx(sqd["chisq"], rel=1e-4)
    assert set(grouped.discrepancy["group"]) == set(grouped.group_labels)


def test_discrepancy_and_congruence(single, data):
    d = single.discrepancy.iloc[0]
    ref = S.discrepancy_shares(data["t_bond"], data["c_bond"])
    assert d["below"] == pytest.approx(ref["below"]) and d["above"] == pytest.approx(ref["above"])
    cc = single.congruence(optimum="minimum")
    assert list(cc["parameter"]) == ["p20", "p21", "a4", "a3"]


def test_warnings(data):
    with pytest.warns(S.SurfaceWarning, match="commensurab"):
        response_surface(data, "int_fu", "t_bond", "c_bond", estimator="ML",
                         missing="listwise", center="variablewise", models=["full"])
    with pytest.warns(S.SurfaceWarning, match="0 lies outside"):
        response_surface(data, "int_fu", "t_bond", "c_bond", estimator="ML",
                         missing="listwise", center=None, models=["full"])


def test_plots(grouped):
    pytest.importorskip("matplotlib")
    fig = grouped.plot_surface("group")
    assert fig.axes
    fig = grouped.plot_contour("individual")
    assert fig.axes


def test_bootstrap_coverage():
    """Percentile intervals of a1..a5 cover the truth at about the nominal 90% rate."""
    rng = np.random.default_rng(11)
    b = np.array([0.3, -0.2, 0.15, -0.25, 0.1])
    truth = S.SURFACE_MATRIX @ b
    n_rep, hits = 25, np.zeros(5)
    for r in range(n_rep):
        n = 200
        x, y = rng.normal(size=n), rng.normal(size=n)
        z = 1 + b @ np.vstack([x, y, x * x, x * y, y * y]) + rng.normal(size=n)
        d = pd.DataFrame({"z": z, "x": x, "y": y})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = response_surface(d, "z", "x", "y", estimator="ML", missing="listwise",
                                   center=None, models=["full"], bootstrap=150, seed=r,
                                   level=0.90)
        bt = res.bootstrap.set_index("parameter").loc[list(S.SURFACE_NAMES)]
        hits += (bt["ci_lower"].to_numpy() <= truth) & (truth <= bt["ci_upper"].to_numpy())
    rate = hits.sum() / (5 * n_rep)
    assert 0.80 <= rate <= 0.98, rate
