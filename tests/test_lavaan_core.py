"""The core engine against lavaan 0.6 reference output (tests/reference/json)."""
import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from lavaan_reference import (assert_close, check_estimates, check_measures, fit_reference,
                              load_reference, merge_estimates, reference_fits)

CORE_CASES = [
    "hs_cfa", "hs_cfa_stdlv", "hs_cfa_meanstructure", "hs_configural", "hs_metric", "hs_scalar",
    "hs_strict", "hs_partial_scalar", "hs_groupequal_all", "pd_sem", "pd_sem_stdlv",
    "pd_sem_nolabels", "pd_sem_nolabels_stdlv", "hs_covariates", "hs_covariates_fixedx_false",
    "hs_groupwise_labels", "hs_groupwise_fixed", "pd_constraints",
]


@pytest.fixture(scope="module")
def fits():
    return reference_fits(lambda ref: (fit_reference(ref), ref))


@pytest.mark.parametrize("case", [c for c in CORE_CASES if c != "pd_constraints"])
def test_estimates_and_se(fits, case):
    fit, ref = fits(case)
    assert fit.converged
    check_estimates(fit, ref)


def test_constrained_model(fits):
    """'==' and an active bound.  lavaan's constrained optimizer stops with the constraints
    violated by about 1e-7 (its 'l2 == m2' row reports 4.8e-8, 'e1' is 0.09999989), which moves
    the flat y4 ~~ y8 direction by 1.4e-4 relative; we satisfy the constraints exactly and
    compare at 5e-4."""
    fit, ref = fits("pd_constraints")
    assert fit.converged
    check_estimates(fit, ref, est_rtol=5e-4)
    env = fit.label_values()
    assert env["l2"] == pytest.approx(env["m2"], abs=1e-12)
    assert env["l3"] + env["l4"] == pytest.approx(2 * env["m3"], abs=1e-10)
    assert env["e1"] == pytest.approx(0.1, abs=1e-10)  # active bound, se 0 as in lavaan
    est = fit.estimates().set_index(["lhs", "op", "rhs"])
    assert est.loc[("x1", "~~", "x1"), "se"] == 0.0
    assert env["e2"] > 0.01


@pytest.mark.parametrize("case", CORE_CASES)
def test_fit_measures(fits, case):
    fit, ref = fits(case)
    check_measures(fit, ref)


@pytest.mark.parametrize("case", ["hs_cfa", "hs_configural", "hs_scalar", "pd_sem",
                                  "pd_sem_nolabels_stdlv", "hs_covariates",
                                  "hs_covariates_fixedx_false"])
def test_standardized_solution(fits, case):
    fit, ref = fits(case)
    merged = merge_estimates(fit.standardized(se=False), ref)
    for col in ("std_lv", "std_all", "std_nox"):
        assert_close(merged[col], merged[f"{col}_ref"], 1e-4, 1e-6, f"{case} {col}")


def test_standardized_se():
    """SEs of std.all against lavaan's standardizedSolution (stored in hs_stdall)."""
    ref = load_reference("hs_stdall")
    fit = fit_reference(ref)
    ours = fit.standardized().set_index(["lhs", "op", "rhs"])
    theirs = pd.DataFrame(ref["standardized_solution"]["std_all"]).set_index(["lhs", "op", "rhs"])
    ours = ours.loc[theirs.index]
    assert_close(ours["std_all"], theirs["est_std"], 1e-4, 1e-6, "std_all")
    assert_close(ours["se_std_all"], theirs["se"], 1e-3, 1e-5, "se of std_all")


@pytest.mark.parametrize("case", ["hs_cfa", "pd_sem"])
def test_modification_indices(fits, case):
    """The top 20 modification indices, EPCs and standardized EPCs match lavaan's."""
    fit, ref = fits(case)
    ours = fit.modindices().head(20).reset_index(drop=True)
    theirs = pd.DataFrame(ref["modindices"]).head(20)
    assert list(zip(ours.lhs, ours.op, ours.rhs)) == list(zip(theirs.lhs, theirs.op, theirs.rhs))
    for col in ("mi", "epc", "sepc_lv", "sepc_all"):
        assert_close(ours[col], theirs[col], 1e-3, 1e-6, f"{case} {col}")


def test_wald_groupwise_labels(fits):
    fit, ref = fits("hs_groupwise_labels")
    res = fit.wald(ref["wald"]["constraints"])
    assert res["df"] == ref["wald"]["df"]
    assert_close([res["stat"]], [ref["wald"]["stat"]], 1e-3, 1e-8, "Wald statistic")
    assert_close([res["pvalue"]], [ref["wald"]["p_value"]], 1e-3, 1e-8, "Wald p-value")


def test_wald_defined_parameters(fits):
    fit, ref = fits("pd_sem")
    if "wald" in ref:
        res = fit.wald(ref["wald"]["constraints"])
        assert res["df"] == ref["wald"]["df"]
        assert_close([res["stat"]], [ref["wald"]["stat"]], 1e-3, 1e-8, "Wald statistic")


def test_compare_matches_lavTestLRT(fits):
    names = ["configural", "metric", "scalar", "strict"]
    models = {n: fits(f"hs_{n}")[0] for n in names}
    # order of the arguments does not matter: sorted by df as lavTestLRT
    table = sm.compare(strict=models["strict"], configural=models["configural"],
                       scalar=models["scalar"], metric=models["metric"])
    ref = pd.DataFrame(fits("hs_strict")[1]["lrt"][0]["table"]).set_index("model")
    assert list(table.index) == names
    for ours, theirs in (("df", "Df"), ("aic", "AIC"), ("bic", "BIC"), ("chisq", "Chisq"),
                         ("chisq_diff", "Chisq_diff"), ("df_diff", "Df_diff"),
                         ("rmsea", "RMSEA"), ("pvalue", "Pr_Chisq")):
        assert_close(table[ours], ref.loc[names, theirs].astype(float), 1e-4, 1e-10, ours)


def _matrix(block):
    return pd.DataFrame(block["matrix"], index=block["rownames"], columns=block["colnames"])


def test_implied_residuals_scores_vcov(fits):
    fit, ref = fits("hs_cfa")
    implied = fit.implied()[None]["cov"]
    theirs = _matrix(ref["implied"][0]["cov"])
    assert_close(implied.loc[theirs.index, theirs.columns], theirs, 1e-4, 1e-7, "implied cov")
    raw = ref["residuals"]["raw"]
    raw = raw[0] if isinstance(raw, list) else raw
    raw_cov = _matrix(raw["cov"]) if "cov" in raw else _matrix(raw)
    ours = fit.residuals()[None]["cov"]
    assert_close(ours.loc[raw_cov.index, raw_cov.columns], raw_cov, 1e-3, 1e-6, "residuals")
    scores = ref["fscores"][0]
    ours = fit.factor_scores()[scores["colnames"]].to_numpy()[:10]
    assert_close(ours, np.array(scores["matrix"]), 1e-4, 1e-6, "factor scores")
    vc = ref["vcov"]
    theirs = np.array(vc["matrix"])
    assert_close(fit.vcov().to_numpy(), theirs, 1e-3, 1e-8, "vcov")
    assert list(fit.vcov().index) == vc["names"]


def test_defined_parameter_rows_in_multigroup_estimates():
    """``:=`` rows belong to no group: lavaan gives them group 0, our table leaves the group
    empty; their estimate is the expression of the labelled estimates."""
    hs = sm.datasets.load("HolzingerSwineford1939")
    model = ("visual =~ x1 + c(a1, a2)*x2 + x3\ntextual =~ x4 + x5 + x6\n"
             "diff := a1 - a2")
    est = sm.cfa(model, hs, group="school").estimates()
    row = est[est["op"] == ":="].iloc[0]
    assert pd.isna(row["group"])
    a = est.set_index("label").loc[["a1", "a2"], "est"]
    assert row["est"] == pytest.approx(a["a1"] - a["a2"], abs=1e-12)
    assert set(est.loc[est["op"] != ":=", "group"]) == {"Pasteur", "Grant-White"}
