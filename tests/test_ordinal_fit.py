"""Ordinal indicators fitted by WLSMV and relatives (issue 14) against lavaan 0.6-14.

References: tests/reference/cases_ordinal_fits.R -> tests/reference/json/ord_*.json
(parTable, parameterEstimates, standardizedSolution, fitMeasures, r2, implied moments,
lavTestLRT, modindices); data in tests/reference/data/cat_*.csv and ord_bench.csv.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from sem_models.estimation.categorical_data import CategoricalDataError
from sem_models.estimation.ordinal import OrdinalFit
from sem_models.model.constraints import numerical_jacobian

HERE = Path(__file__).parent
ROOT = HERE.parent
REF = HERE / "reference" / "json"

EST_TOL = 1e-4      # estimates, thresholds, statistics (relative, absolute below 1)
SE_TOL = 1e-3       # standard errors, scaled statistics

CASES = sorted(p.stem for p in REF.glob("ord_*.json"))
HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
DATCAT = "FU1 =~ u1 + u2 + u3 + u4\nFU2 =~ u5 + u6 + u7 + u8"
X9 = [f"x{i}" for i in range(1, 10)]
U8 = [f"u{i}" for i in range(1, 9)]


def load(case: str) -> dict:
    return json.loads((REF / f"{case}.json").read_text())


_FITS: dict = {}


def fit_of(case: str) -> OrdinalFit:
    if case not in _FITS:
        ref = load(case)
        call = ref["call"]
        data = pd.read_csv(ROOT / ref["data"])
        func = sm.cfa if call["function"] == "cfa" else sm.sem
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[case] = func(call["model"], data, **call["options"])
    return _FITS[case]


def close(ours, theirs, tol) -> np.ndarray:
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    return np.abs(ours - theirs) <= tol * np.maximum(1.0, np.abs(theirs))


def partables(case: str):
    fit, ref = fit_of(case), load(case)
    theirs = pd.DataFrame(ref["partable"])
    theirs = theirs[~theirs["op"].isin(["==", "<", ">"])].reset_index(drop=True)
    ours = fit.partable
    ours = ours[~ours["op"].isin(["==", "<", ">"])].reset_index(drop=True)
    labels = {k + 1: str(lab) for k, lab in enumerate(fit.group_labels)} \
        if fit.n_groups > 1 else {1: ""}
    ours = ours.assign(group=[labels[g] for g in ours["group"]])
    return ours, theirs


# ------------------------------------------------------------------------- lavaan cases
@pytest.mark.parametrize("case", CASES)
def test_partable_rows(case):
    """parTable(fit) row for row: the rows, which are free, fixed values, labels of the
    equality constraints across groups, user and exo flags."""
    ours, theirs = partables(case)
    assert list(zip(ours.lhs, ours.op, ours.rhs, ours.group)) == \
        list(zip(theirs.lhs, theirs.op, theirs.rhs.fillna(""), theirs.group))
    np.testing.assert_array_equal(ours.free > 0, theirs.free > 0)
    fixed = (theirs.free == 0).to_numpy()
    np.testing.assert_allclose(ours.ustart[fixed].astype(float).fillna(-99),
                               theirs.ustart[fixed].astype(float).fillna(-99))
    np.testing.assert_array_equal(ours.label, theirs.label.fillna(""))
    np.testing.assert_array_equal(ours.user, theirs.user)
    np.testing.assert_array_equal(ours.exo, theirs.exo)
    assert fit_of(case).converged


@pytest.mark.parametrize("case", CASES)
def test_estimates_and_standard_errors(case):
    """Every parTable row's est (thresholds, and the values lavaan derives: residual
    variances under delta, scale factors under theta) and se."""
    ours, theirs = partables(case)
    est_ok = close(ours.est, theirs.est, EST_TOL)
    assert est_ok.all(), theirs[~est_ok][["lhs", "op", "rhs", "group", "est"]]
    se_ok = close(ours.se, theirs.se.astype(float), SE_TOL)
    assert se_ok.all(), theirs[~se_ok][["lhs", "op", "rhs", "group", "se"]]


@pytest.mark.parametrize("case", CASES)
def test_fit_measures(case):
    """All of lavaan's fitMeasures for categorical data (standard, scaled and robust CFI /
    TLI / RMSEA, SRMR and the residual summaries, GFI, ...): NaN where lavaan gives NA."""
    m = fit_of(case).measures()
    for key, value in load(case)["fit"].items():
        assert key in m.index, key
        if value is None:
            assert not np.isfinite(m[key]), (key, m[key])
        else:
            tol = SE_TOL if ("scaled" in key or "robust" in key or "pvalue" in key) \
                else EST_TOL
            assert close(m[key], value, tol), (key, m[key], value)


@pytest.mark.parametrize("case", CASES)
def test_standardized_and_r2(case):
    fit, ref = fit_of(case), load(case)
    std = pd.DataFrame(ref["std"])
    ours = fit.standardized()
    assert list(ours.op) == list(std.op)
    assert close(ours.std_all, std.est_std, EST_TOL).all()
    assert close(ours.se_std_all, std.se, SE_TOL).all()
    params = pd.DataFrame(ref["parameters"])
    for col in ("std_lv", "std_nox"):
        assert close(ours[col], params[col], EST_TOL).all(), col
    r2 = fit.inspect("r2")
    refs = ref["r2"] if isinstance(ref["r2"], list) else list(ref["r2"].values())
    series = [r2] if fit.n_groups == 1 else [r2[c] for c in r2.columns]
    for s, rg in zip(series, refs):
        assert close(s.loc[rg["names"]], rg["values"], EST_TOL).all()


@pytest.mark.parametrize("case", CASES)
def test_implied_statistics(case):
    """lavInspect(fit, "implied"): latent-response correlations, thresholds, means (and
    res.* pieces with covariates)."""
    fit, ref = fit_of(case), load(case)
    refs = ref["implied"] if isinstance(ref["implied"], list) else list(ref["implied"].values())
    for ours, rg in zip(fit.implied().values(), refs):
        assert set(rg) <= set(ours)
        for name, v in rg.items():
            mine = ours[name]
            if "matrix" in v:
                got = mine.loc[v["rownames"], v["colnames"]].to_numpy()
                assert close(got, np.array(v["matrix"], float), EST_TOL).all(), name
            else:
                assert close(mine.loc[v["names"]], v["values"], EST_TOL).all(), name


def test_modification_indices():
    ref = pd.DataFrame(load("ord_hs")["modindices"])
    mi = fit_of("ord_hs").modindices(sort=False)
    both = ref.merge(mi, on=["lhs", "op", "rhs"], suffixes=("", "_ours"))
    assert len(both) == len(ref) == len(mi)
    for col in ("mi", "epc", "sepc_lv", "sepc_all"):
        assert close(both[f"{col}_ours"], both[col], SE_TOL).all(), col


# --------------------------------------------------------------- anchors of the issue
def test_datcat_anchor_numbers_and_satorra_2000():
    """semTools' datCat (two groups, std_lv): chisq 24.746 on 38 df, scaled-shifted 40.824;
    equal thresholds 43.170 on 60 df; plus loadings 48.148 on 66 df; lavTestLRT's Satorra
    (2000) differences 27.037 on 22 df and 4.434 on 6 df."""
    conf, th, thl = (fit_of(c) for c in ("ord_datcat", "ord_datcat_th", "ord_datcat_thload"))
    for fit, chisq, df in ((conf, 24.746, 38), (th, 43.170, 60), (thl, 48.148, 66)):
        m = fit.measures()
        assert round(m["chisq"], 3) == chisq and m["df"] == df
    assert round(conf.measures()["chisq_scaled"], 3) == 40.824
    table = sm.compare(conf, th, thl)
    lrt = pd.DataFrame(load("ord_datcat_thload")["lrt"]["rows"])
    assert (table["method"] == "satorra.2000").all()
    assert close(table["chisq_diff"].iloc[1:], lrt["Chisq_diff"].iloc[1:], SE_TOL).all()
    assert list(table["df_diff"].iloc[1:]) == [22, 6]
    assert round(table["chisq_diff"].iloc[1], 3) == 27.037
    assert close(table["pvalue"].iloc[1:], lrt["Pr_Chisq"].iloc[1:], SE_TOL).all()
    sb = sm.compare(conf, th, thl, method="satorra.bentler.2001")
    lrt_sb = pd.DataFrame(load("ord_datcat_thload")["lrt_sb2001"]["rows"])
    assert close(sb["chisq_diff"].iloc[1:], lrt_sb["Chisq_diff"].iloc[1:], SE_TOL).all()


@pytest.mark.parametrize("pair", [("ord_hs", "ord_hs_theta"), ("ord_datcat", "ord_datcat_theta"),
                                  ("ord_datcat_th", "ord_datcat_th_theta"),
                                  ("ord_mimic", "ord_mimic_theta")])
def test_delta_and_theta_give_the_same_fit(pair):
    a, b = (fit_of(c).measures() for c in pair)
    for key in ("chisq", "df", "chisq_scaled", "cfi", "rmsea", "srmr"):
        assert np.isclose(a[key], b[key], rtol=1e-5), key


def test_group_equal_thresholds_frees_scales_and_means():
    """lavaan 0.6-14: with equal thresholds the scale factors (delta) or residual variances
    (theta) and the latent means of the later groups are free; intercepts stay 0."""
    for case, free_op in (("ord_datcat_th", "~*~"), ("ord_datcat_th_theta", "~~")):
        pt = fit_of(case).partable
        g2 = pt[pt["group"] == 2]
        free = g2[g2["free"] > 0]
        ordered = free[free["lhs"].isin(U8) & (free["lhs"] == free["rhs"])]
        assert set(ordered["op"]) == {free_op} and len(ordered) == 8
        assert set(free.loc[free["op"] == "~1", "lhs"]) == {"FU1", "FU2"}
        th = pt[pt["op"] == "|"]
        assert (th.groupby(["lhs", "rhs"])["label"].nunique() == 1).all()


# -------------------------------------------------------------- model-side derivatives
@pytest.mark.parametrize("model,options", [
    (HS, dict(group="school", group_equal=["thresholds"])),
    (HS, dict(group="school", group_equal=["thresholds", "loadings"],
              parameterization="theta")),
    ("f =~ x4 + x5 + x6 + x1\nf ~ agec + z9c", dict(parameterization="theta")),
    ("f =~ x1 + x2 + x3\nx4 ~ f + x1", {}),   # an ordered variable predicting another
])
def test_statistics_jacobian_matches_numerical(model, options):
    """The analytic Jacobian of the latent-response statistics (thresholds, slopes,
    correlations) equals central differences, for free scale factors (delta), free residual
    variances (theta), covariates and ordered variables that predict ordered variables."""
    data = pd.read_csv(ROOT / "tests" / "reference" / "data" / "cat_hs_cut.csv")
    ordered = [v for v in X9 if v in model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.sem(model, data, ordered=ordered, **options)
    problem = fit.problem
    values = problem.values(fit.result.z)
    rows = problem.pmap.free_rows
    for g, loss in enumerate(problem.losses):
        mom = problem.model.moments(values, g)
        pos, d_cor, d_ext = problem.group_jacobian(values, g, mom)
        analytic = loss.statistics_map.jacobian(mom, d_cor, d_ext)

        def stats(theta, g=g, loss=loss):
            v = values.copy()
            v[rows[pos]] = theta
            return loss.statistics_map.value(problem.model.moments(v, g))

        numeric = numerical_jacobian(stats, values[rows[pos]])
        np.testing.assert_allclose(analytic, numeric, atol=1e-6)
        # under delta the latent responses of the ordered variables have variance 1 / delta^2
        np.testing.assert_allclose(np.diag(mom.cor)[problem.model.ordered], 1.0, atol=1e-12)


# ------------------------------------------------------------------ simulated recovery
def test_wlsmv_recovers_loadings_that_ml_attenuates():
    """4-point items piled up at one end, from a one-factor model with known standardized
    loadings: WLSMV recovers them, normal-theory ML on the item scores attenuates them."""
    rng = np.random.default_rng(20261414)
    n = 3000
    lam = np.array([0.85, 0.75, 0.65, 0.55, 0.8])
    eta = rng.normal(size=n)
    ystar = eta[:, None] * lam + rng.normal(size=(n, 5)) * np.sqrt(1 - lam ** 2)
    cuts = np.array([0.3, 1.0, 1.6])             # most cases in the lowest category
    data = pd.DataFrame(np.searchsorted(cuts, ystar) + 1,
                        columns=[f"i{k}" for k in range(1, 6)])
    model = "f =~ i1 + i2 + i3 + i4 + i5"
    wlsmv = sm.cfa(model, data, ordered=True, std_lv=True)
    ml = sm.cfa(model, data, std_lv=True)
    load_w = wlsmv.standardized().query("op == '=~'")["std_all"].to_numpy()
    load_ml = ml.standardized(se=False).query("op == '=~'")["std_all"].to_numpy()
    assert np.max(np.abs(load_w - lam)) < 0.05
    assert np.all(load_ml < lam - 0.05)           # attenuated by the coarse, skewed items
    th = wlsmv.estimates().query("op == '|' and lhs == 'i1'")["est"].to_numpy()
    np.testing.assert_allclose(th, cuts, atol=0.08)
    assert wlsmv.measures()["pvalue_scaled"] > 0.001


# ------------------------------------------------------------------------- the API
def test_ordered_true_categoricals_and_options():
    data = pd.read_csv(ROOT / "tests" / "reference" / "data" / "cat_datcat.csv")
    ref = fit_of("ord_datcat")
    by_true = sm.cfa(DATCAT, data, ordered=True, group="g", std_lv=True)
    assert np.isclose(by_true.measures()["chisq"], ref.measures()["chisq"])
    cats = data.copy()
    for v in U8:
        cats[v] = pd.Categorical(cats[v], categories=[1, 2, 3, 4, 5], ordered=True)
    by_dtype = sm.cfa(DATCAT, cats, group="g", std_lv=True)
    assert isinstance(by_dtype, OrdinalFit)
    assert np.isclose(by_dtype.measures()["chisq"], ref.measures()["chisq"])
    assert data.equals(pd.read_csv(ROOT / "tests" / "reference" / "data" / "cat_datcat.csv"))
    assert by_true.options["estimator"] == "WLSMV"
    assert by_true.options["parameterization"] == "delta"
    assert by_true.options["test"] == "scaled.shifted"
    # warm start from the same model's fit
    again = sm.cfa(DATCAT, data, ordered=True, group="g", std_lv=True, start=by_true)
    assert again.result.iterations <= 2
    # group order given by the caller
    swapped = sm.cfa(DATCAT, data, ordered=True, group="g", std_lv=True,
                     group_labels=["female", "male"])
    assert swapped.group_labels == ["female", "male"]
    assert np.isclose(swapped.measures()["chisq"], ref.measures()["chisq"])


def test_summary_inspect_and_polychoric():
    fit = fit_of("ord_hs")
    text = str(fit.summary())
    assert "Thresholds:" in text and "x1|t1" in text and "Scales y*:" in text
    assert "Robust Comparative Fit Index" in text
    imp = fit.implied()[None]
    assert set(imp) == {"cov", "mean", "th"}
    assert list(fit.estimates().query("op == '|'")["rhs"][:3]) == ["t1", "t2", "t3"]
    data = pd.read_csv(ROOT / "tests" / "reference" / "data" / "cat_hs_cut.csv")
    cor, th = sm.polychoric(data[X9])
    np.testing.assert_allclose(cor.to_numpy(), fit.sample_moments()[None]["cov"].to_numpy(),
                               atol=1e-10)
    assert "polychoric" in sm.__all__ and "collapse_categories" in sm.__all__
    # per-group scaled-shifted statistics: a T_g + (N_g / N) shift (lavaan's stat.group)
    text = str(fit_of("ord_datcat").summary())
    assert "16.207" in text and "24.617" in text
    assert fit_of("ord_mimic").inspect("sampstat")["res_slopes"].shape == (4, 2)


def test_cli_fit_ordered(capsys):
    from sem_models.cli import main
    path = ROOT / "tests" / "reference" / "data" / "cat_datcat.csv"
    code = main(["fit", DATCAT, str(path), "--ordered", "--group", "g", "--std-lv"])
    out = capsys.readouterr().out
    assert code == 0
    assert "WLSMV" in out and "24.746" in out and "40.824" in out and "Thresholds:" in out
    code = main(["fit", DATCAT, str(path), "--ordered", ",".join(U8), "--parameterization",
                 "theta", "--group", "g", "--std-lv", "--estimator", "WLSM"])
    assert code == 0 and "WLSM" in capsys.readouterr().out


# --------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def hs() -> pd.DataFrame:
    return pd.read_csv(ROOT / "tests" / "reference" / "data" / "cat_hs_cut.csv")


def test_fiml_and_ml_are_refused_with_reasons(hs):
    with pytest.raises(sm.ModelError, match="pairwise"):
        sm.cfa(HS, hs, ordered=X9, missing="fiml")
    with pytest.raises(sm.ModelError, match="numerical integration"):
        sm.cfa(HS, hs, ordered=X9, estimator="ML")
    with pytest.raises(sm.ModelError, match="cluster"):
        sm.cfa(HS, hs, ordered=X9, cluster="school")
    with pytest.raises(sm.ModelError, match="parameterization"):
        sm.cfa(HS, hs, ordered=X9, parameterization="gamma")
    with pytest.raises(sm.ModelError, match="ordered"):
        sm.cfa(HS, hs, parameterization="theta")
    with pytest.raises(sm.ModelError, match="meanstructure"):
        sm.cfa(HS, hs, ordered=X9, meanstructure=False)


def test_empty_category_names_item_group_category_and_collapse_is_recorded(hs):
    data = hs.copy()
    data.loc[(data["school"] == "Pasteur") & (data["x1"] == 4), "x1"] = 3
    with pytest.raises(CategoricalDataError) as info:
        sm.cfa(HS, data, ordered=X9, group="school")
    message = str(info.value)
    assert "'x1'" in message and "Pasteur" in message and "category 4" in message
    assert "collapse_categories" in message
    merged = sm.collapse_categories(data, ["x1"], "empty", group="school")
    fit = sm.cfa(HS, merged, ordered=X9, group="school")
    assert fit.options["collapsed_categories"] == {"x1": {4: 3}}
    assert (fit.partable.query("lhs == 'x1' and op == '|'")["rhs"] == ["t1", "t2"] * 2).all()
    assert hs["x1"].max() == 4  # the caller's data are untouched


def test_syntax_errors_for_ordinal_statements(hs):
    with pytest.raises(sm.ModelError, match="not an ordered variable"):
        sm.cfa(HS + "\nx1 | t1", hs, ordered=X9[1:])
    with pytest.raises(sm.ModelError, match="3 thresholds"):
        sm.cfa(HS + "\nx1 | t1 + t2 + t3 + t4", hs, ordered=X9)
    with pytest.raises(sm.ModelSyntaxError, match="t1, t2"):
        sm.cfa(HS + "\nx1 | a1", hs, ordered=X9)
    with pytest.raises(sm.ModelError, match="parameterization='theta'"):
        sm.cfa(HS + "\nx1 ~~ x1", hs, ordered=X9)
    with pytest.raises(sm.ModelError, match="theta"):
        sm.cfa(HS + "\nx1 ~*~ NA*x1", hs, ordered=X9, parameterization="theta")
    with pytest.raises(sm.ModelError, match="exogenous"):
        sm.sem("f =~ x4 + x5 + x6\nf ~ x1", hs, ordered=["x4", "x5", "x6", "x1"])
    with pytest.raises(sm.ModelError, match="not observed variables"):
        sm.cfa(HS, hs, ordered=["x1", "nope"])
    with pytest.raises(sm.DataError, match="WLS"):
        sm.cfa(HS, hs.iloc[:40], ordered=X9, estimator="WLS")


def test_heywood_warning_for_a_negative_latent_response_variance(hs):
    """Delta: a communality above 1 makes the derived residual variance negative."""
    with pytest.warns(sm.HeywoodWarning, match="x1"):
        fit = sm.cfa("f =~ 1.5*x1 + x2 + x3\nf ~~ 1*f", hs, ordered=True)
    assert fit.estimates().query("lhs == 'x1' and op == '~~'")["est"].iloc[0] < 0


def test_theta_free_residual_variances_and_user_thresholds(hs):
    """Theta: a free residual variance of a latent response is a parameter; user thresholds
    with labels, fixed values and equality across items."""
    fit = sm.cfa(HS + "\nx2 ~~ NA*x2\nx2 | a*t1 + a*t2", hs, ordered=X9,
                 parameterization="theta")
    est = fit.estimates().set_index(["lhs", "op", "rhs"])["est"]
    assert est[("x2", "|", "t1")] == est[("x2", "|", "t2")]
    assert fit.measures()["df"] == 24
