"""lavaan coverage (issue 13, items 1-4 and 6): ``growth()``, fits from summary statistics,
nonlinear equality and inequality constraints (also in the RSA package's rotated ridge models),
the remaining modifiers, residuals of every type with ``lavResiduals``, Bartlett factor scores
and modification indices of the least-squares estimators; and the clear errors for what stays
unsupported.

References (lavaan 0.6-14): tests/reference/json/w2_cov_*.json
(tests/reference/cases_wave2_coverage.R) and w2x_*.json (tests/reference/cases_coverage_extra.R).
Estimates to 1e-4 (relative, or absolute below 1), SEs to 1e-3, df and npar exactly.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from lavaan_reference import (ROOT, load_reference, merge_estimates, reference_data,
                              reference_fits)
from sem_models.estimation.data import DataError
from sem_models.errors import ModelError
from sem_models.model.syntax import ModelSyntaxError

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
HS_VARS = [f"x{i}" for i in range(1, 10)]


def _fit(ref: dict, **extra) -> sm.SEMFit:
    call = ref["call"]
    options = dict(call["options"])
    options.update(extra)
    func = {"cfa": sm.cfa, "sem": sm.sem, "growth": sm.growth}[call["function"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(call["model"], reference_data(ref), **options)


@pytest.fixture(scope="module")
def case():
    return reference_fits(lambda ref: (ref, _fit(ref)))


def _check_estimates(fit, ref, est_tol=1e-4, se_tol=1e-3, se=True, only=None):
    merged = merge_estimates(fit.estimates(), ref)
    if only is not None:
        merged = merged[merged["op"].isin(only)]
    est_ref = merged["est_ref"].astype(float).to_numpy()
    np.testing.assert_allclose(merged["est"], est_ref, rtol=est_tol,
                               atol=est_tol * np.maximum(1.0, np.abs(est_ref)).max())
    if se:
        se_ref = merged["se_ref"].astype(float).fillna(0.0).to_numpy()
        np.testing.assert_allclose(merged["se"], se_ref, rtol=se_tol, atol=1e-6)


def _check_fit(fit, ref, keys=("chisq", "df", "npar"), rtol=1e-4):
    m = fit.measures()
    for key in keys:
        if key in ("df", "npar"):
            assert m[key] == ref["fit"][key], key
        else:
            assert m[key] == pytest.approx(ref["fit"][key], rel=rtol, abs=1e-8), key


def _matrix(obj) -> pd.DataFrame:
    return pd.DataFrame(np.array(obj["matrix"], float), index=obj["rownames"],
                        columns=obj["colnames"])


# ============================================================================ 1. growth()
def test_growth_matches_lavaan(case):
    ref, fit = case("w2_cov_growth")
    assert ref["call"]["function"] == "growth"
    _check_fit(fit, ref, ("chisq", "df", "npar", "cfi", "rmsea", "aic"))
    _check_estimates(fit, ref)
    # lavaan's growth defaults, row by row (free numbers, user flags, fixed values)
    ours = fit.partable
    theirs = pd.DataFrame(ref["partable_full"])
    assert list(zip(ours.lhs, ours.op, ours.rhs)) == list(zip(theirs.lhs, theirs.op, theirs.rhs))
    assert ours["free"].tolist() == theirs["free"].tolist()
    assert ours["user"].tolist() == theirs["user"].tolist()
    means = ours[ours.op == "~1"].set_index("lhs")
    assert (means.loc[["t1", "t2", "t3", "t4"], "free"] == 0).all()
    assert (means.loc[["t1", "t2", "t3", "t4"], "est"] == 0).all()
    assert (means.loc[["i", "s"], "free"] > 0).all()


def test_growth_is_public_and_keeps_options():
    assert "growth" in sm.__all__ and sm.growth is sm.api.growth
    ref = load_reference("w2_cov_growth")
    data = reference_data(ref)
    fit = sm.growth("i =~ 1*t1 + 1*t2 + 1*t3 + 1*t4\ns =~ 0*t1 + 1*t2 + 2*t3 + 3*t4", data,
                    int_ov_free=True, int_lv_free=False)  # sem()'s choices: a different model
    table = fit.partable
    assert table.loc[(table.op == "~1") & (table.lhs == "t1"), "free"].iloc[0] > 0
    assert table.loc[(table.op == "~1") & (table.lhs == "i"), "free"].iloc[0] == 0


def test_growth_refuses_ordinal_and_two_level():
    data = reference_data({"data": "data/Demo.twolevel.csv"})
    with pytest.raises(ModelError, match="not supported for two-level models"):
        sm.growth("level: 1\nfw =~ y1 + y2 + y3\nlevel: 2\nfb =~ y1 + y2 + y3", data,
                  cluster="cluster")
    cut = data[["y1", "y2", "y3"]].apply(lambda c: pd.cut(c, 3, labels=False))
    with pytest.raises(ModelError, match="not supported with ordered indicators"):
        sm.growth("i =~ 1*y1 + 1*y2 + 1*y3", cut, ordered=True)


def test_growth_from_sample_moments():
    ref = load_reference("w2x_growth_moments")
    mom = ref["sample_moments"][0]
    cov = _matrix(mom["cov"])
    mean = pd.Series(mom["mean"]["values"], index=mom["mean"]["names"])
    fit = sm.growth(ref["call"]["model"], sample_cov=cov, sample_mean=mean,
                    sample_nobs=mom["nobs"])
    _check_fit(fit, ref, ("chisq", "df", "npar", "aic", "rmsea"))
    _check_estimates(fit, ref)
    raw = sm.growth(ref["call"]["model"], reference_data(ref))
    np.testing.assert_allclose(fit.values, raw.values, rtol=1e-8, atol=1e-10)


# ============================================================== 2. summary-statistics input
def test_sample_cov_equals_raw_fit_and_lavaan():
    ref = load_reference("w2_cov_hs_samplecov")
    raw_ref = load_reference("w2_cov_hs_raw")
    mom = ref["sample_moments"][0]
    S = _matrix(mom["cov"])  # divisor N - 1, as R's cov()
    fit = sm.cfa(HS_MODEL, sample_cov=S, sample_nobs=mom["nobs"])
    _check_fit(fit, ref, ("chisq", "df", "npar", "aic", "bic", "cfi", "rmsea", "srmr"))
    _check_estimates(fit, ref)
    _check_estimates(fit, raw_ref)
    hs = reference_data(raw_ref)
    raw = sm.cfa(HS_MODEL, hs)
    np.testing.assert_allclose(fit.values, raw.values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.vcov().to_numpy(), raw.vcov().to_numpy(), rtol=1e-8,
                               atol=1e-15)
    # the same from pandas' own covariance matrix; the caller's matrix is not modified
    S2 = hs[HS_VARS].cov()
    before = S2.copy()
    fit2 = sm.cfa(HS_MODEL, sample_cov=S2, sample_nobs=len(hs))
    pd.testing.assert_frame_equal(S2, before)
    assert fit2.measures()["chisq"] == pytest.approx(raw.measures()["chisq"], rel=1e-10)


@pytest.mark.parametrize("estimator", ["GLS", "ULS"])
def test_sample_cov_least_squares_estimators(estimator):
    ref = load_reference(f"w2_cov_hs_{estimator.lower()}")
    hs = reference_data(ref)
    fit = sm.cfa(HS_MODEL, sample_cov=hs[HS_VARS].cov(), sample_nobs=len(hs),
                 estimator=estimator)
    _check_fit(fit, ref, ("chisq", "df", "npar"))
    _check_estimates(fit, ref)


def test_sample_moments_two_groups_and_lrt():
    conf_ref = load_reference("w2_cov_hs_moments_configural")
    scal_ref = load_reference("w2_cov_hs_moments_scalar")
    moms = conf_ref["sample_moments"]
    covs = {m["group"]: _matrix(m["cov"]) for m in moms}
    means = {m["group"]: pd.Series(m["mean"]["values"], index=m["mean"]["names"])
             for m in moms}
    nobs = [m["nobs"] for m in moms]
    conf = sm.cfa(HS_MODEL, sample_cov=covs, sample_mean=means, sample_nobs=nobs)
    scal = sm.cfa(HS_MODEL, sample_cov=covs, sample_mean=means, sample_nobs=nobs,
                  group_equal=["loadings", "intercepts"])
    assert conf.group_labels == ["Pasteur", "Grant-White"]
    for fit, ref in ((conf, conf_ref), (scal, scal_ref)):
        _check_fit(fit, ref, ("chisq", "df", "npar", "aic", "cfi", "rmsea"))
        _check_estimates(fit, ref)
    table = sm.compare(configural=conf, scalar=scal)
    want = scal_ref["lrt"][0]["table"][1]
    assert table.loc["scalar", "chisq_diff"] == pytest.approx(want["Chisq_diff"], rel=1e-4)
    assert table.loc["scalar", "df_diff"] == want["Df_diff"]
    # a list of matrices: lavaan's labels "Group 1", "Group 2" (or group_labels=)
    as_list = sm.cfa(HS_MODEL, sample_cov=list(covs.values()),
                     sample_mean=list(means.values()), sample_nobs=nobs)
    assert as_list.group_labels == ["Group 1", "Group 2"]
    assert as_list.measures()["chisq"] == pytest.approx(conf.measures()["chisq"], rel=1e-10)
    named = sm.cfa(HS_MODEL, sample_cov=list(covs.values()), sample_mean=list(means.values()),
                   sample_nobs=nobs, group_labels=["P", "G"])
    assert named.group_labels == ["P", "G"]


@pytest.mark.parametrize("options,message", [
    ({"estimator": "MLR"}, "needs the raw data"),
    ({"estimator": "MLM"}, "needs the raw data"),
    ({"estimator": "MLMV"}, "needs the raw data"),
    ({"estimator": "WLS"}, "needs the raw data"),
    ({"estimator": "DWLS"}, "needs the raw data"),
    ({"estimator": "WLSMV"}, "needs the raw data"),
    ({"missing": "fiml"}, "missing='fiml' needs the raw data"),
    ({"cluster": "school"}, "cluster= needs the raw data"),
    ({"group": "school"}, "one covariance matrix per group"),
    ({"se": "robust.sem"}, "se='robust.sem' needs the raw data"),
    ({"test": "satorra.bentler"}, "needs the raw data"),
    ({"ordered": ["x1"]}, "ordered indicators need the raw data"),
])
def test_sample_cov_refuses_what_needs_raw_data(options, message):
    hs = reference_data(load_reference("w2_cov_hs_raw"))
    with pytest.raises(DataError, match=message):
        sm.cfa(HS_MODEL, sample_cov=hs[HS_VARS].cov(), sample_nobs=len(hs), **options)


def test_sample_cov_input_errors():
    hs = reference_data(load_reference("w2_cov_hs_raw"))
    S = hs[HS_VARS].cov()
    with pytest.raises(DataError, match="sample_nobs= is needed"):
        sm.cfa(HS_MODEL, sample_cov=S)
    with pytest.raises(DataError, match="not both"):
        sm.cfa(HS_MODEL, hs, sample_cov=S, sample_nobs=301)
    with pytest.raises(DataError, match="no data"):
        sm.cfa(HS_MODEL)
    with pytest.raises(DataError, match="go with sample_cov"):
        sm.cfa(HS_MODEL, hs, sample_nobs=301)
    with pytest.raises(DataError, match=r"\['x9'\].*not in sample_cov"):
        sm.cfa(HS_MODEL, sample_cov=S.drop(index="x9", columns="x9"), sample_nobs=301)
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        sm.cfa(HS_MODEL, sample_cov=S.to_numpy(), sample_nobs=301)
    asym = S.copy()
    asym.iloc[0, 1] += 0.5
    with pytest.raises(DataError, match="not symmetric"):
        sm.cfa(HS_MODEL, sample_cov=asym, sample_nobs=301)
    singular = S.copy()
    singular.loc["x2", :] = singular.loc["x1", :]
    singular.loc[:, "x2"] = singular.loc[:, "x1"]
    singular.loc["x2", "x2"] = singular.loc["x1", "x1"]
    with pytest.raises(DataError, match="not positive definite"):
        sm.cfa(HS_MODEL, sample_cov=singular, sample_nobs=301)
    with pytest.raises(DataError, match="whole number of cases"):
        sm.cfa(HS_MODEL, sample_cov=S, sample_nobs=1.5)
    with pytest.raises(DataError, match="one per group"):
        sm.cfa(HS_MODEL, sample_cov=[S, S], sample_nobs=[150])
    with pytest.raises(DataError, match=r"\['x3'\] are not in sample_mean"):
        sm.cfa(HS_MODEL, sample_cov=S, sample_mean=hs[HS_VARS].mean().drop("x3"),
               sample_nobs=301, meanstructure=True)
    # a mean structure without sample_mean: the means are taken as 0, as lavaan (a warning)
    with pytest.warns(UserWarning, match="sample_mean is missing"):
        fit = sm.cfa(HS_MODEL, sample_cov=S, sample_nobs=301, meanstructure=True)
    assert fit.measures()["chisq"] == pytest.approx(85.3055, rel=1e-4)
    # what needs the rows themselves says so
    fit = sm.cfa(HS_MODEL, sample_cov=S, sample_nobs=301)
    with pytest.raises(DataError, match="fitted from sample moments"):
        fit.factor_scores()
    with pytest.raises(DataError, match="two-level models need the raw data"):
        sm.sem("level: 1\nf =~ x1 + x2 + x3\nlevel: 2\nf =~ x1 + x2 + x3", sample_cov=S,
               sample_nobs=301)


# ================================================ 3. nonlinear and inequality constraints
def test_nonlinear_equality_matches_lavaan(case):
    ref, fit = case("w2_cov_nonlinear_eq")
    _check_fit(fit, ref, ("chisq", "df", "npar", "aic", "bic", "cfi", "tli", "rmsea"))
    _check_estimates(fit, ref)
    values = fit.label_values()
    assert values["a"] == pytest.approx(values["b"] * values["c"], abs=1e-10)
    # the constrained (augmented-information) covariance matrix, singular as lavaan's
    V = fit.inspect("vcov").to_numpy()
    np.testing.assert_allclose(V, np.array(ref["vcov"]["matrix"]), rtol=1e-3, atol=2e-5)
    base = _fit(load_reference("w2_cov_hs_raw"))
    table = sm.compare(base=base, nonlinear=fit)
    want = ref["lrt"][0]["table"][1]
    assert table.loc["nonlinear", "chisq_diff"] == pytest.approx(want["Chisq_diff"], rel=1e-4)
    assert table.loc["nonlinear", "df_diff"] == want["Df_diff"] == 1


def test_active_inequality_matches_lavaan(case):
    ref, fit = case("w2_cov_inequality_active")
    eq_ref, eq_fit = case("w2_cov_inequality_as_equality")
    # lavaan counts the active inequality neither in df nor in npar; its SEs treat it as ==
    _check_fit(fit, ref, ("chisq", "df", "npar", "aic", "cfi"))
    assert fit.measures()["df"] == 24 and eq_fit.measures()["df"] == 25
    _check_estimates(fit, ref)
    _check_estimates(eq_fit, eq_ref)
    values = fit.label_values()
    assert values["b"] == pytest.approx(values["c"], abs=1e-10)
    np.testing.assert_allclose(fit.values, eq_fit.values, atol=1e-8)


def test_inactive_inequality_is_the_unconstrained_fit(case):
    ref, fit = case("w2x_inequality_inactive")
    _check_fit(fit, ref)
    _check_estimates(fit, ref)


def test_nonlinear_constraints_with_mlr_and_groups(case):
    ref, fit = case("w2x_nonlinear_mlr")
    _check_fit(fit, ref, ("chisq", "df", "npar", "chisq_scaled", "chisq_scaling_factor",
                          "cfi_robust", "rmsea_robust"))
    _check_estimates(fit, ref)
    ref, fit = case("w2x_nonlinear_groups")  # a1 == b1^2; a2 - b2 > 0.2 (active)
    _check_fit(fit, ref, ("chisq", "df", "npar", "aic"))
    _check_estimates(fit, ref)
    v = fit.label_values()
    assert v["a1"] == pytest.approx(v["b1"] ** 2, abs=1e-10)
    assert v["a2"] - v["b2"] == pytest.approx(0.2, abs=1e-10)


@pytest.mark.parametrize("name", ["w2_cov_rsa_full", "w2_cov_rsa_srrr_down",
                                  "w2_cov_rsa_rr_nonlinear", "w2_cov_rsa_rr",
                                  "w2x_rsa_srrr_down"])
def test_rsa_constrained_models_match_lavaan(case, name):
    ref, fit = case(name)
    _check_fit(fit, ref, ("chisq", "df", "npar", "logl"))
    _check_estimates(fit, ref, only=("~", "~1", "~~", ":="))


@pytest.mark.parametrize("name", ["w2_cov_rsa_srrr_up", "w2x_rsa_srrr_up", "w2x_rsa_srsqd_up"])
def test_rsa_degenerate_boundary_fits(case, name):
    """b3, b5 at or next to their 1e-6 bounds, b4 ~ 0: lavaan's SEs are NA and its estimates
    leave b4^2 == 4*b3*b5 by ~1e-9 to 1e-8 (more than the products themselves), which lowers
    its chi-square by up to 1e-4 relative; ours are feasible, so not below lavaan's."""
    ref, fit = case(name)
    assert fit.measures()["df"] == ref["fit"]["df"] and fit.measures()["npar"] == \
        ref["fit"]["npar"]
    chisq = fit.measures()["chisq"]
    assert ref["fit"]["chisq"] - 1e-6 <= chisq <= ref["fit"]["chisq"] * (1 + 2e-4)
    ours = fit.label_values()
    theirs = {p["label"]: p["est"] for p in ref["parameters"] if p["label"]}
    for b in ("b1", "b2"):
        assert ours[b] == pytest.approx(theirs[b], abs=1e-4)
    for b in ("b3", "b4", "b5"):
        assert abs(ours[b]) < 1e-4
    assert ours["b4"] ** 2 == pytest.approx(4 * ours["b3"] * ours["b5"], abs=1e-11)
    assert min(ours["b3"], ours["b5"]) >= 1e-6 - 1e-12


def test_rsa_srsqd_down_is_feasible_where_lavaan_is_not(case):
    """lavaan's SRSQD 'down' solution (chisq 21.64) violates its constraints by ~5e-7 with
    b5 ~ -1e-6, i.e. by their own size (2 b1 b5 = -1.0e-6 against b2 b4 = -1.8e-6); ours
    satisfies them to rounding and is therefore not better than lavaan's."""
    ref, fit = case("w2x_rsa_srsqd_down")
    theirs = {p["label"]: p["est"] for p in ref["parameters"] if p["label"]}
    assert abs(2 * theirs["b1"] * theirs["b5"] - theirs["b2"] * theirs["b4"]) > 5e-7
    v = fit.label_values()
    assert 2 * v["b1"] * v["b5"] == pytest.approx(v["b2"] * v["b4"], abs=1e-12)
    assert v["b4"] ** 2 == pytest.approx(4 * v["b3"] * v["b5"], abs=1e-12)
    assert v["b3"] <= -1e-6 + 1e-12 and v["b5"] <= -1e-6 + 1e-12
    assert fit.measures()["chisq"] >= ref["fit"]["chisq"]
    assert fit.measures()["df"] == ref["fit"]["df"] == 2


def test_response_surface_fits_rotated_ridge_models():
    ref_full = load_reference("w2_cov_rsa_full")
    lrt = load_reference("w2_cov_rsa_lrt")
    data = pd.read_csv(ROOT / ref_full["data"])[["z", "x", "y"]]
    rs = sm.response_surface(data, "z", "x", "y", models=["full", "SRRR", "RR"],
                             estimator="ML", missing="listwise", center=None)
    assert rs.directions == {"SRRR": lrt["srrr_direction"]} == {"SRRR": "down"}
    down = load_reference("w2_cov_rsa_srrr_down")
    assert rs.models.loc["SRRR", "chisq"] == pytest.approx(down["fit"]["chisq"], rel=1e-4)
    assert rs.models.loc["SRRR", "df"] == 1 and rs.models.loc["SRRR", "npar"] == 6
    table = {row["model"]: row for row in lrt["lrt_full_srrr_rr"][0]["table"]}
    assert rs.models.loc["SRRR", "chisq_diff"] == pytest.approx(table["SRRR"]["Chisq_diff"],
                                                                rel=1e-4)
    assert rs.models.loc["RR", "chisq"] == pytest.approx(table["RR"]["Chisq"], rel=1e-6)
    v = rs.fits["SRRR"].label_values()
    assert v["b4"] ** 2 == pytest.approx(4 * v["b3"] * v["b5"], abs=1e-12)
    # the model set: SRRR and SRSQD are RSA models with one / two nonlinear constraints
    from sem_models.discrepancy.models import RSA_MODELS, is_nested, polynomial_syntax
    assert RSA_MODELS["SRRR"].n_constraints == 1 and RSA_MODELS["SRSQD"].n_constraints == 2
    assert is_nested("RR", "SRRR") and is_nested("SRRR", "full")
    assert not is_nested("full", "SRRR") and not is_nested("interaction", "SRRR")
    assert is_nested("SSQD", "SRSQD") and not is_nested("SRRR", "SRSQD")
    up = polynomial_syntax("z", "x", "y", model="SRRR", direction="up")
    assert "start(0.01)*b3*x2" in up and "b3 > 0.000001" in up and "b4^2 == 4*b3*b5" in up
    with pytest.raises(ValueError, match="'up' or 'down'"):
        polynomial_syntax("z", "x", "y", model="SRRR", direction="left")


def test_constraint_gradients_are_analytic():
    """Forward-mode derivatives of constraint expressions against central differences."""
    from sem_models.model.nonlinear import (LINEAR, NONLINEAR, CONSTANT, ConstraintFunction,
                                            expression_degree)
    row = {"lhs": "exp(a)*log(b) + sqrt(c)/a - pnorm(b - c)^2", "op": ">",
           "rhs": "d + tanh(a*c) + abs(c - 3) + 10^a", "line": 1, "col": 1}
    label_to_x = {"a": 0, "b": 1, "c": 2}
    f = ConstraintFunction(row, {"d": "a*b + e"}, label_to_x, {"e": 0.3})
    x = np.array([0.4, 1.7, 2.2])
    value, grad = f.evaluate(x)
    assert list(f.involved) == [0, 1, 2]
    for k in range(3):
        h = 1e-6
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        assert grad[k] == pytest.approx((f.value(xp) - f.value(xm)) / (2 * h), rel=1e-7)
    assert f.hessian(x).shape == (3, 3)
    free, fixed = {"a", "b"}, {"e"}
    assert expression_degree("2*a - b/4 + e^2", free, fixed, {}) == LINEAR
    assert expression_degree("a*b", free, fixed, {}) == NONLINEAR
    assert expression_degree("a^1 + 3", free, fixed, {}) == LINEAR
    assert expression_degree("e*2", free, fixed, {}) == CONSTANT
    assert expression_degree("d", free, fixed, {"d": "a*a"}) == NONLINEAR
    assert expression_degree("a/e", free, fixed, {}) == LINEAR


def test_constraint_errors_and_unsupported_combinations():
    hs = reference_data(load_reference("w2_cov_hs_raw"))
    with pytest.raises(ModelSyntaxError, match="unknown label"):
        sm.cfa(HS_MODEL.replace("x1 + x2", "x1 + a*x2") + "\na == zz^2", hs)
    with pytest.raises(ModelSyntaxError, match="involves no free parameter"):
        sm.cfa(HS_MODEL.replace("x1 + x2", "x1 + a*x2") + "\n2 == 1 + 1", hs)
    with pytest.raises(ModelError, match="contradict"):
        sm.cfa(HS_MODEL.replace("x1 + x2", "x1 + a*x2") + "\na > 2\na < 1", hs)
    from sem_models.errors import EstimationError
    with pytest.raises(EstimationError, match=r"no parameter values .*\['a\^2\+b\^2 == -1'\]"):
        sm.cfa(HS_MODEL.replace("x1 + x2 + x3", "x1 + a*x2 + b*x3") + "\na^2 + b^2 == -1", hs)
    with pytest.raises(EstimationError, match=r"'a > b', 'b > a\+1'"):
        sm.cfa(HS_MODEL.replace("x1 + x2 + x3", "x1 + a*x2 + b*x3") + "\na > b\nb > a + 1", hs)
    # nonlinear constraints are for the continuous single-level engine; elsewhere a clear error
    cut = hs[["x1", "x2", "x3", "x4"]].apply(lambda c: pd.cut(c, 3, labels=False))
    with pytest.raises(ModelSyntaxError, match="nonlinear or an inequality"):
        sm.cfa("f =~ x1 + a*x2 + b*x3 + x4\na == b^2", cut, ordered=True)
    two = reference_data({"data": "data/Demo.twolevel.csv"})
    with pytest.raises(ModelSyntaxError, match="nonlinear or an inequality"):
        sm.sem("level: 1\nfw =~ y1 + a*y2 + b*y3\nlevel: 2\nfb =~ y1 + y2 + y3\na == b^2",
               two, cluster="cluster")


def test_bound_on_a_constrained_parameter_becomes_a_general_inequality():
    """'a > c' on a parameter in a linear '==' (once refused): a general inequality now."""
    hs = reference_data(load_reference("w2_cov_hs_raw"))
    model = HS_MODEL.replace("x1 + x2 + x3", "x1 + a*x2 + b*x3") + "\na == b\na > 0.7"
    fit = sm.cfa(model, hs)
    v = fit.label_values()
    assert v["a"] == pytest.approx(0.7, abs=1e-9) and v["b"] == pytest.approx(0.7, abs=1e-9)
    assert fit.measures()["df"] == 25  # the == counts, the active inequality does not


# ================================================================== 4. modifiers
def test_lower_upper_bounds_match_lavaan(case):
    ref, fit = case("w2x_bounds")  # both bounds active; lavaan keeps their SEs
    _check_fit(fit, ref, ("chisq", "df", "npar", "aic"))
    _check_estimates(fit, ref)
    table = fit.partable
    row = table[(table.lhs == "x1") & (table.op == "~~") & (table.rhs == "x1")].iloc[0]
    assert row["lower"] == 0.6 and row["upper"] == np.inf and row["est"] == pytest.approx(0.6)
    assert row["se"] > 0.1


def test_bounds_with_equality_constraints_are_ignored_as_in_lavaan():
    ref = load_reference("w2x_bounds_eq")
    assert any("bounds have no effect" in w for w in ref["warnings"])
    with pytest.warns(UserWarning, match=r"bounds on \['x1 ~~ x1'\] are not used"):
        fit = sm.cfa(ref["call"]["model"], reference_data(ref))
    _check_fit(fit, ref)
    _check_estimates(fit, ref)


def test_group_modifiers_match_lavaan(case):
    """start(c()), label(c("a", NA)), equal(c()), c(NA, b), c(as.numeric(NA), 1),
    as.numeric(NA) and lower(c()) in two groups."""
    ref, fit = case("w2x_group_modifiers")
    _check_fit(fit, ref, ("chisq", "df", "npar", "aic"))
    _check_estimates(fit, ref)
    ours = fit.partable
    theirs = pd.DataFrame(ref["partable_full"])
    user = theirs[theirs.user == 1]
    mine = ours[ours.user == 1]
    assert mine["free"].tolist() == user["free"].tolist()
    assert (mine["free"] > 0).tolist() == (user["free"] > 0).tolist()
    starts = mine.set_index(["rhs", "group"])["start"]
    assert starts[("x2", 1)] == 0.5 and starts[("x2", 2)] == 0.6


def test_modifier_syntax():
    from sem_models.model.syntax import parse_model
    st = {s.rhs: s.modifier for s in parse_model(
        'f =~ x1 + start(c(0.5, NA))*x2 + label(c("a", NA))*x3 + c(NA, b)*x4 + '
        'as.numeric(NA)*x5 + c(as.numeric(NA), 1)*x6 + lower(0)*upper(c(1, NA))*x7 + '
        'equal(c("f=~x2", "f=~x2.g2"))*x8').statements}
    assert st["x2"].start[0] == 0.5 and np.isnan(st["x2"].start[1])
    assert st["x3"].label == ["a", ""]
    assert st["x4"].label == ["b"]  # lavaan drops NA among bare labels
    assert np.isnan(st["x5"].fixed[0])
    assert np.isnan(st["x6"].fixed[0]) and st["x6"].fixed[1] == 1.0
    assert st["x7"].lower == [0.0] and st["x7"].upper == [1.0, np.inf]
    assert st["x8"].label == ["f=~x2", "f=~x2.g2"] and st["x8"].equal
    for bad, message in [("f =~ x1 + start(a)*x2", "start\\(\\) needs numbers"),
                         ("f =~ x1 + lower(a)*x2", "lower\\(\\) needs numbers"),
                         ("f =~ x1 + label(1)*x2", "need names"),
                         ("f =~ x1 + as.numeric(a)*x2", "needs a number or NA"),
                         ("f =~ x1 + upper()*x2", "empty argument list")]:
        with pytest.raises(ModelSyntaxError, match=message):
            parse_model(bad)
    hs = reference_data(load_reference("w2_cov_hs_raw"))
    with pytest.raises(ModelSyntaxError, match="3 start values but the data have 2"):
        sm.cfa("f =~ x1 + start(c(1, 2, 3))*x2 + x3", hs, group="school")


# ============================================================ 6. residuals, factor scores
RESIDUAL_TYPES = ["raw", "cor", "cor_bollen", "cor_bentler", "normalized", "standardized"]


def _residual_cases(ref):
    return ref["residuals_all"]


@pytest.mark.parametrize("name", ["w2_cov_postfit", "w2_cov_postfit_groups", "w2x_resid_gls",
                                  "w2x_resid_mlr", "w2x_resid_mimic"])
def test_residual_types_match_lavaan(case, name):
    ref, fit = case(name)
    res_all = ref["residuals_all"]
    for kind in RESIDUAL_TYPES:
        ours = fit.residuals(kind.replace("_", "."))
        for item in res_all[kind]:
            key = item["group"] or None
            theirs = _matrix(item["cov"])
            mine = ours[key]["cov"].loc[theirs.index, theirs.columns]
            # z statistics inherit lavaan's optimizer tolerance (raw residuals ~1e-6)
            atol = 2e-3 if kind in ("normalized", "standardized") else 2e-5
            np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-3,
                                       atol=atol, err_msg=f"{name} {kind} {key}")
            if "mean" in item:
                np.testing.assert_allclose(ours[key]["mean"].to_numpy(),
                                           np.array(item["mean"]["values"], float), atol=atol)


@pytest.mark.parametrize("name,kind", [("w2_cov_postfit", "lavResiduals"),
                                       ("w2_cov_postfit", "lavResiduals_raw"),
                                       ("w2_cov_postfit_groups", "lavResiduals"),
                                       ("w2_cov_postfit_groups", "lavResiduals_raw"),
                                       ("w2x_resid_gls", "lavResiduals"),
                                       ("w2x_resid_mlr", "lavResiduals"),
                                       ("w2x_resid_mimic", "lavResiduals")])
def test_lav_residuals_summary_matches_lavaan(case, name, kind):
    ref, fit = case(name)
    ours = fit.lav_residuals("raw" if kind.endswith("raw") else "cor.bentler")
    for item in ref["residuals_all"][kind]:
        key = item["group"] or None
        mine = ours[key]
        theirs = _matrix(item["cov.z"])
        np.testing.assert_allclose(mine["cov_z"].loc[theirs.index, theirs.columns].to_numpy(),
                                   theirs.to_numpy(), rtol=1e-3, atol=2e-3)
        summary = pd.DataFrame(np.array(item["summary"]["matrix"], dtype=float),
                               index=item["summary"]["rownames"],
                               columns=item["summary"]["colnames"])
        got = mine["summary"].loc[summary.index, summary.columns]
        np.testing.assert_allclose(got.to_numpy(), summary.to_numpy(), rtol=2e-3, atol=1e-7,
                                   equal_nan=True, err_msg=f"{name} {kind} {key}")


def test_residual_errors():
    ref, fit = load_reference("w2x_resid_uls"), None
    assert "error" in ref["residuals_all"]["standardized"]  # lavaan refuses them too
    fit = _fit(ref)
    np.testing.assert_allclose(
        fit.residuals("cor.bentler")[None]["cov"].to_numpy(),
        _matrix(ref["residuals_all"]["cor_bentler"][0]["cov"]).to_numpy(), atol=1e-6)
    for kind in ("normalized", "standardized"):
        with pytest.raises(ValueError, match="not available for estimator='ULS'"):
            fit.residuals(kind)
    with pytest.raises(ValueError, match="not available for estimator='ULS'"):
        fit.lav_residuals()
    hs = reference_data(load_reference("w2_cov_hs_raw"))
    base = sm.cfa(HS_MODEL, hs)
    with pytest.raises(ValueError, match="unknown residual type 'pearson'"):
        base.residuals("pearson")
    with pytest.raises(ValueError, match="summarises residuals"):
        base.lav_residuals("normalized")
    missing = hs.copy()
    missing.loc[::7, "x4"] = np.nan
    fiml = sm.cfa(HS_MODEL, missing, missing="fiml")
    assert np.isfinite(fiml.residuals("cor.bentler")[None]["cov"].to_numpy()).all()
    with pytest.raises(ValueError, match="missing='fiml'"):
        fiml.residuals("standardized")


@pytest.mark.parametrize("name", ["w2_cov_postfit", "w2_cov_postfit_groups", "w2x_resid_mimic"])
def test_factor_scores_match_lavaan(case, name):
    ref, fit = case(name)
    for method in ("regression", "Bartlett"):
        scores = fit.factor_scores(method)
        for item in ref["fscores_methods"][method]:
            part = scores if not item["group"] else scores[scores["group"] == item["group"]]
            assert len(part) == item["nrow"]
            values = part[item["colnames"]].to_numpy()
            np.testing.assert_allclose(values[:20], np.array(item["head"]), atol=5e-5)
            np.testing.assert_allclose(values.mean(axis=0), np.array(item["colmeans"]),
                                       atol=1e-5)


def test_bartlett_scores_errors():
    hs = reference_data(load_reference("w2_cov_hs_raw"))
    fit = sm.sem("f =~ x1 + x2 + x3\nx4 ~ x5", hs)
    with pytest.raises(ValueError, match="no regressions among observed variables"):
        fit.factor_scores("bartlett")
    with pytest.raises(ValueError, match="'regression' or 'bartlett'"):
        fit.factor_scores("anderson")


@pytest.mark.parametrize("estimator", ["GLS", "WLS", "ULS", "MLMV"])
def test_modindices_of_least_squares_estimators(estimator):
    ref = load_reference(f"w2_cov_hs_{estimator.lower()}")
    fit = _fit(ref)
    mi = fit.modindices()
    theirs = pd.DataFrame(ref["modindices_all"])
    merged = mi.merge(theirs, on=["lhs", "op", "rhs"], suffixes=("", "_ref"))
    assert len(merged) == len(theirs) == len(mi)
    np.testing.assert_allclose(merged["mi"], merged["mi_ref"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(merged["epc"], merged["epc_ref"], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(merged["sepc_all"], merged["sepc_all_ref"], rtol=1e-3,
                               atol=1e-5)
