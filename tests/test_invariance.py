"""The invariance package against lavaan / semTools references (tests/reference/json).

References: cases_invariance.R (hs_measeq_*, hs_score_tests, long_sim_*, hs_mlr_sequence_*,
hs_fiml_sequence_*), cases_core.R (hs_configural ... hs_strict, hs_partial_scalar) and
cases_invariance_extra.R (marker identification, lv.covariances, group x time, partial
longitudinal scalar, cumulative score tests, effect sizes as lavaan ':=', dMACS by numerical
integration).  Tolerances: 1e-4 relative on estimates and test statistics, 1e-3 on SEs.
"""
import math

import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.stats

import invariance as inv
import sem_models as sm
from invariance.sequence import fit_level
from invariance.spec import MeasurementSpec
from lavaan_reference import assert_close, check_estimates, load_reference, reference_data

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
LONG_MODEL = ("B1 =~ b1_t1 + b2_t1 + b3_t1\nK1 =~ k1_t1 + k2_t1 + k3_t1\n"
              "B2 =~ b1_t2 + b2_t2 + b3_t2\nK2 =~ k1_t2 + k2_t2 + k3_t2")
LONG_CONSTRUCTS = {"B": ["B1", "B2"], "K": ["K1", "K2"]}
LEVELS4 = ("configural", "metric", "scalar", "strict")


def rel(a, b, rtol=1e-4, atol=1e-8, what=""):
    assert_close([a], [b], rtol, atol, what)


@pytest.fixture(scope="module")
def hs():
    return reference_data(load_reference("hs_configural"))


@pytest.fixture(scope="module")
def hs_lavaan(hs):
    """The HS39 sequence by school in lavaan's own parameterisation (cfa(group.equal=))."""
    return inv.sequence(HS_MODEL, hs, group="school", identification="lavaan")


@pytest.fixture(scope="module")
def hs_stdlv(hs):
    """The semTools measEq.syntax sequence (std.lv identification) up to latent means."""
    return inv.sequence(HS_MODEL, hs, group="school",
                        levels=LEVELS4 + ("lv.variances", "means"))


@pytest.fixture(scope="module")
def long_seq():
    data = reference_data(load_reference("long_sim_configural"))
    return inv.longitudinal(LONG_MODEL, data, LONG_CONSTRUCTS,
                            levels=LEVELS4 + ("lv.variances",))


def check_lrt(seq, lrt_table):
    """Our delta columns against lavTestLRT's rows (consecutive models)."""
    for row in lrt_table[1:]:
        level = {"lvvariances": "lv.variances"}.get(row["model"], row["model"])
        ours = seq.table.loc[level]
        rel(ours["delta_chisq"], row["Chisq_diff"], what=f"{level} chisq diff")
        assert ours["delta_df"] == row["Df_diff"]
        rel(ours["delta_pvalue"], row["Pr_Chisq"], what=f"{level} p diff")


# ------------------------------------------------------------------ multi-group sequence
def test_hs_sequence_matches_lavaan(hs_lavaan):
    expect = {"configural": (115.85, 48), "metric": (124.04, 54), "scalar": (164.10, 60),
              "strict": (181.51, 69)}
    for level, case in zip(LEVELS4, ["hs_configural", "hs_metric", "hs_scalar", "hs_strict"]):
        ref = load_reference(case)
        fit = hs_lavaan.fits[level]
        row = hs_lavaan.table.loc[level]
        assert fit.converged
        assert round(row["chisq"], 2) == expect[level][0] and row["df"] == expect[level][1]
        for name in ("chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "aic", "bic"):
            rel(row[name], ref["fit"][name], what=f"{case} {name}")
        check_estimates(fit, ref)
    check_lrt(hs_lavaan, load_reference("hs_strict")["lrt"][0]["table"])
    table = hs_lavaan.table
    assert list(table.index) == list(LEVELS4)
    for col in ("delta_chisq", "delta_df", "delta_pvalue", "delta_cfi", "delta_rmsea",
                "delta_srmr", "decision"):
        assert col in table.columns
    assert table.loc["scalar", "delta_cfi"] == pytest.approx(
        table.loc["scalar", "cfi"] - table.loc["metric", "cfi"])


def test_decision_rule_sets(hs_lavaan):
    """Chen (2007), Cheung & Rensvold (2002), the chi-square test, and user rules."""
    # after a rejected level, later levels are not tested against it (issue 10)
    nt = "not tested: previous level failed"
    chen = hs_lavaan.table["decision"]
    assert list(chen) == ["", "invariant", "non-invariant", nt]
    # scalar: dCFI -.038, dRMSEA .0145 (< .015) but dSRMR .0108 >= .010 -> non-invariant
    cr = hs_lavaan.decide("cheung_rensvold2002")
    assert list(cr) == ["", "invariant", "non-invariant", nt]
    chi = hs_lavaan.decide("chisq_difference")
    assert list(chi) == ["", "invariant", "non-invariant", nt]
    strict = hs_lavaan.decide({"delta_cfi": -0.005})
    assert strict["strict"] == nt and strict["metric"] == "invariant"
    by_level = hs_lavaan.decide({"metric": {"delta_cfi": -0.001}, "default": {"delta_cfi": -0.05}})
    assert list(by_level) == ["", "non-invariant", nt, nt]
    both = hs_lavaan.decide({"delta_cfi": -0.01, "delta_rmsea": 0.015, "combine": "all"})
    assert both["scalar"] == "invariant"  # dRMSEA .0145 misses .015
    assert both["strict"] == "invariant"  # strict dCFI -.0095, judged as scalar passed
    calls = []

    def mine(level, changes):
        calls.append(level)
        return changes["delta_pvalue"] > 0.01

    assert list(hs_lavaan.decide(mine)) == ["", "invariant", "non-invariant", nt]
    assert calls == ["metric", "scalar"]
    other = hs_lavaan.with_rules("cheung_rensvold2002")
    assert other.rules.name == "cheung_rensvold2002" and other.fits is hs_lavaan.fits
    text = hs_lavaan.summary()
    for word in ("configural", "metric", "scalar", "strict", "non-invariant", "chen2007",
                 "Pasteur"):
        assert word in text


def test_measeq_sequence_std_lv(hs_stdlv):
    """Default identification = semTools' measEq.syntax (ID.fac = 'std.lv'), six levels."""
    names = {"configural": "configural", "metric": "metric", "scalar": "scalar",
             "strict": "strict", "lv.variances": "lvvariances", "means": "means"}
    for level, suffix in names.items():
        ref = load_reference(f"hs_measeq_{suffix}")
        fit = hs_stdlv.fits[level]
        rel(fit.measures()["chisq"], ref["fit"]["chisq"], what=level)
        assert fit.measures()["df"] == ref["fit"]["df"]
        check_estimates(fit, ref)
    check_lrt(hs_stdlv, load_reference("hs_measeq_means")["lrt"][0]["table"])


@pytest.mark.parametrize("case", ["hs_measeq_metric", "hs_measeq_lvvariances", "hs_measeq_means",
                                  "long_sim_scalar"])
def test_engine_fits_measeq_syntax(case):
    """semTools' own syntax (same parameter twice: c(NA, NA)*x1 + c(l, l)*x1; a label shared
    with a fixed parameter fixes it) through the engine's parser and parameter table."""
    ref = load_reference(case)
    fit = sm.sem(ref["measeq"]["syntax"], reference_data(ref),
                 group=ref["call"]["options"].get("group"), meanstructure=True)
    assert fit.measures()["df"] == ref["fit"]["df"]
    rel(fit.measures()["chisq"], ref["fit"]["chisq"])
    check_estimates(fit, ref)


def test_marker_identification_and_lv_covariances(hs):
    seq = inv.sequence(HS_MODEL, hs, group="school", identification="marker",
                       levels=("configural", "scalar"))
    for level, case in (("configural", "hs_measeq_marker_configural"),
                        ("scalar", "hs_measeq_marker_scalar")):
        ref = load_reference(case)
        rel(seq.fits[level].measures()["chisq"], ref["fit"]["chisq"])
        check_estimates(seq.fits[level], ref)
    ref = load_reference("hs_measeq_lvcovariances")
    spec = MeasurementSpec.from_model(HS_MODEL, n_groups=2)
    _, fit = fit_level(spec, hs, group="school", group_labels=["Pasteur", "Grant-White"],
                       group_eq={"loadings", "intercepts", "residuals", "lv.variances",
                                 "lv.covariances"})
    assert fit.measures()["df"] == ref["fit"]["df"]
    check_estimates(fit, ref)


# ------------------------------------------------------------------ score tests
def _key(param):
    return (param["lhs"], param["op"], param["rhs"], param["group"])


def test_score_tests_match_lavTestScore(hs_lavaan):
    ref = load_reference("hs_score_tests")
    fit = hs_lavaan.fits["scalar"]
    st = inv.score_tests(fit, epc=True)
    assert list(st.columns[:7]) == ["lhs", "op", "rhs", "group", "X2", "df", "pvalue"]
    assert st["X2"].is_monotonic_decreasing
    assert (st.loc[0, "lhs"], st.loc[0, "op"]) == ("x3", "~1")
    assert (st.loc[1, "lhs"], st.loc[1, "op"]) == ("x7", "~1")
    assert len(st) == len(ref["score_tests"]["uni"]) == 15
    ours = {(r.lhs, r.op, r.rhs, r.group): r for r in st.itertuples()}
    for u in ref["score_tests"]["uni"]:
        row = ours[_key(u["rhs_param"])]
        rel(row.X2, u["X2"], what=f"score test {u['lhs']} == {u['rhs']}")
        rel(row.pvalue, u["p_value"], what="score p")
    # on the engine's group_equal fit the parameter table (and plabels) are lavaan's
    direct = inv.score_tests(sm.cfa(HS_MODEL, reference_data(ref), group="school",
                                    group_equal=["loadings", "intercepts"]))
    assert set(direct["constraint"]) == {f"{u['lhs']} == {u['rhs']}"
                                         for u in ref["score_tests"]["uni"]}
    assert np.allclose(direct["X2"], st["X2"], rtol=1e-6)
    total = st.attrs["total"]
    rel(total["X2"], ref["score_tests"]["total"]["X2"])
    assert total["df"] == ref["score_tests"]["total"]["df"]
    assert inv.score_test_total(fit)["X2"] == pytest.approx(total["X2"])
    epc = inv.expected_parameter_changes(fit)
    epc_ours = {(r.lhs, r.op, r.rhs, r.group): r.epc for r in epc.itertuples()}
    for e in ref["score_tests_epc"]["epc"]:
        if e["free"]:
            rel(epc_ours[(e["lhs"], e["op"], e["rhs"], e["group"])], e["epc"], rtol=1e-3,
                atol=1e-6, what="epc")
    cum_ref = load_reference("hs_score_cumulative")["score_cumulative"]
    cum = inv.score_tests(fit, cumulative=True).sort_values("df_cumulative")
    assert len(cum) == len(cum_ref)
    for (_, row), c in zip(cum.iterrows(), cum_ref):
        assert row["df_cumulative"] == c["df"]
        rel(row["X2_cumulative"], c["X2"], what="cumulative score test")


def test_score_tests_identification_invariant(hs_stdlv):
    """Releasing x3~1 is the same model under any identification: same score test."""
    st = inv.score_tests(hs_stdlv.fits["scalar"])
    ref = load_reference("hs_score_tests")["score_tests"]["uni"]
    x3 = next(u for u in ref if u["rhs_param"]["lhs"] == "x3" and u["rhs_param"]["op"] == "~1")
    assert (st.loc[0, "lhs"], st.loc[0, "op"], st.loc[0, "group"]) == ("x3", "~1", "Grant-White")
    rel(st.loc[0, "X2"], x3["X2"])
    assert len(st) == 18  # under std.lv the first loadings are constrained too
    with pytest.raises(ValueError, match="no equality constraints"):
        inv.score_tests(hs_stdlv.fits["configural"])


# ------------------------------------------------------------------ partial invariance
def test_partial_scalar_reproduces_lavaan(hs):
    ref = load_reference("hs_partial_scalar")
    seq = inv.sequence(HS_MODEL, hs, group="school", levels=("configural", "metric", "scalar"),
                       rules="cheung_rensvold2002")
    steps = seq.partial("scalar")
    assert list(steps["freed"]) == ["", "x3~1 [Grant-White]", "x7~1 [Grant-White]"]
    assert steps["decision"].iloc[-1] == "invariant"
    assert steps["decision"].iloc[0] == "non-invariant"
    assert "passes" in steps.attrs["stop_reason"]
    final = seq.partial_fits["scalar"]
    rel(final.measures()["chisq"], ref["fit"]["chisq"])
    assert final.measures()["df"] == ref["fit"]["df"] == steps["df"].iloc[-1]
    rel(steps["score_X2"].iloc[1], 19.1925003423259)
    assert seq.released["scalar"] == [(("x3", "~1", "", 2),), (("x7", "~1", "", 2),)]
    assert "x7~1 [Grant-White]" in seq.summary()
    # lavaan's parameterisation: same path with the marker's intercept allowed, same estimates
    lav = inv.sequence(HS_MODEL, hs, group="school", levels=("configural", "metric", "scalar"),
                       rules="cheung_rensvold2002", identification="lavaan")
    lav.partial("scalar", protect_marker=False)
    assert lav.released["scalar"] == seq.released["scalar"]
    check_estimates(lav.partial_fits["scalar"], ref)
    # x7 is the marker of 'speed' under marker identification: never freed
    protected = lav.partial("scalar")
    assert "x7~1 [Grant-White]" not in list(protected["freed"])
    assert protected["freed"].iloc[2] == "x8~1 [Grant-White]"


def test_partial_keeps_two_invariant_indicators(hs):
    seq = inv.sequence(HS_MODEL, hs, group="school", levels=("configural", "metric", "scalar"),
                       rules="chisq_difference")
    steps = seq.partial("scalar", alpha=0.5)
    freed = [key for group in seq.released["scalar"] for key in group]
    spec = seq.spec
    per_factor = {}
    for lhs, op, rhs, g in freed:
        f, _ = spec.item_factor(lhs, op, rhs)
        per_factor[f] = per_factor.get(f, 0) + 1
    assert all(len(spec.indicators[f]) - n >= 2 for f, n in per_factor.items())
    assert per_factor  # something was freed
    assert len(steps) == len(freed) + 1
    limited = seq.partial("scalar", max_steps=1)
    assert len(limited) == 2 and "max_steps" in limited.attrs["stop_reason"]
    with pytest.raises(inv.InvarianceError, match="first level"):
        seq.partial("configural")


# ------------------------------------------------------------------ longitudinal
def test_longitudinal_matches_measeq(long_seq):
    for level, suffix in zip(LEVELS4 + ("lv.variances",),
                             ["configural", "metric", "scalar", "strict", "lvvariances"]):
        ref = load_reference(f"long_sim_{suffix}")
        fit = long_seq.fits[level]
        assert fit.measures()["df"] == ref["fit"]["df"]
        rel(fit.measures()["chisq"], ref["fit"]["chisq"], what=level)
        check_estimates(fit, ref)
    check_lrt(long_seq, load_reference("long_sim_strict")["lrt"][0]["table"])
    syntax = long_seq.syntax["scalar"]
    assert "b1_t1 ~~ NA*b1_t2" in syntax  # same-item residual covariance over time
    assert "B2 ~ NA*1" in syntax and "B1 ~ 0*1" in syntax  # later means free once intercepts
    assert "B2 ~~ NA*B2" in long_seq.syntax["metric"]  # later variances free once loadings


def test_longitudinal_partial_and_effects(long_seq):
    ref = load_reference("long_sim_partial_scalar")
    steps = long_seq.partial("scalar", rules="chisq_difference", max_steps=1)
    assert steps["freed"].iloc[1] == "b3_t2~1"
    fit = long_seq.partial_fits["scalar"]
    rel(fit.measures()["chisq"], ref["fit"]["chisq"])
    check_estimates(fit, ref)
    diffs = long_seq.latent_differences("scalar")
    assert list(diffs["factor"]) == ["B2", "K2"] and list(diffs["ref_factor"]) == ["B1", "K1"]
    est = fit.estimates().set_index(["lhs", "op"])
    assert diffs.loc[0, "mean_diff"] == pytest.approx(est.loc[("B2", "~1"), "est"])
    assert diffs.loc[0, "mean_diff_se"] == pytest.approx(est.loc[("B2", "~1"), "se"], rel=1e-6)
    assert diffs.loc[0, "n_invariant"] == 2
    dm = long_seq.dmacs("scalar")
    assert list(dm["item"]) == ["b3_t2"] and dm.loc[0, "ref_item"] == "b3_t1"


def test_group_by_time():
    data = reference_data(load_reference("long_group_configural"))
    both = inv.longitudinal(LONG_MODEL, data, LONG_CONSTRUCTS, group="grp",
                            levels=("configural", "scalar", "strict"))
    for level, case in (("configural", "long_group_configural"),
                        ("strict", "long_group_strict")):
        ref = load_reference(case)
        assert both.fits[level].measures()["df"] == ref["fit"]["df"]
        check_estimates(both.fits[level], ref)
    across = inv.sequence(LONG_MODEL, data, group="grp", constructs=LONG_CONSTRUCTS,
                          long_equal="scalar", levels=("configural", "metric", "scalar"))
    for level, case in (("configural", "long_group_longscalar"),
                        ("metric", "long_group_longscalar_gmetric"),
                        ("scalar", "long_group_longscalar_gscalar")):
        ref = load_reference(case)
        assert across.fits[level].measures()["df"] == ref["fit"]["df"]
        rel(across.fits[level].measures()["chisq"], ref["fit"]["chisq"])
        check_estimates(across.fits[level], ref)
    # k2 was shifted in group b: the cross-group search frees its intercept in group b at both
    # occasions together (the occasions stay equal, as long_equal="scalar" says)
    steps = across.partial("scalar", rules="chisq_difference")
    assert steps["freed"].iloc[1] == "k2_t1~1, k2_t2~1 [b]" and steps["n_freed"].iloc[1] == 2
    assert steps["decision"].iloc[-1] == "invariant" and len(steps) == 2
    syntax = across.spec.syntax(*across.keywords("scalar"), across.released["scalar"])
    assert "k2_t1 ~ c(NA, NA)*1 + c(nu.K.2, nu.K.2.r1)*1" in syntax
    assert "k2_t2 ~ c(NA, NA)*1 + c(nu.K.2, nu.K.2.r1)*1" in syntax
    # the joint release is one df: its score test is the LM test of that model
    fit = across.fits["scalar"]
    freed_fit = across.partial_fits["scalar"]
    assert fit.measures()["df"] - freed_fit.measures()["df"] == 1
    lr = fit.measures()["chisq"] - freed_fit.measures()["chisq"]
    assert steps["score_X2"].iloc[1] == pytest.approx(lr, rel=0.15)  # LM ~ LR
    # both dimensions varying: one group x occasion cell at a time
    both_steps = both.partial("scalar", rules="chisq_difference", max_steps=1)
    assert both_steps["n_freed"].iloc[1] == 1


# ------------------------------------------------------------------ robust / FIML
@pytest.mark.parametrize("variant,options", [("mlr", {"estimator": "MLR"}),
                                             ("fiml", {"missing": "ml"})])
def test_robust_and_fiml_sequences(variant, options):
    data = reference_data(load_reference(f"hs_{variant}_sequence_configural"))
    seq = inv.sequence(HS_MODEL, data, group="school", identification="lavaan", **options)
    for level in LEVELS4:
        ref = load_reference(f"hs_{variant}_sequence_{level}")
        fit = seq.fits[level]
        row = seq.table.loc[level]
        if variant == "mlr":
            rel(row["chisq_scaled"], ref["fit"]["chisq_scaled"], what=f"{level} scaled chisq")
            rel(row["chisq"], ref["fit"]["chisq"])
            rel(row["cfi_robust"], ref["fit"]["cfi_robust"], what=f"{level} robust cfi")
            rel(row["rmsea_robust"], ref["fit"]["rmsea_robust"], what=f"{level} robust rmsea")
        else:
            rel(row["chisq"], ref["fit"]["chisq"])
            rel(row["cfi"], ref["fit"]["cfi"])
        check_estimates(fit, ref)
        if "lrt" in ref:  # scaled (Satorra-Bentler 2001) difference for MLR
            last = ref["lrt"][0]["table"][-1]
            rel(row["delta_chisq"], last["Chisq_diff"], what=f"{level} difference test")
            rel(row["delta_pvalue"], last["Pr_Chisq"], what=f"{level} difference p")
            assert row["delta_df"] == last["Df_diff"]
    if variant == "mlr":
        assert "scaled" in seq.summary()
    # lavTestScore on the scalar model (lavaan: expected information, standard statistic)
    ref = load_reference(f"hs_score_tests_{variant}")["score_tests"]
    if variant == "mlr":
        with pytest.warns(UserWarning, match="not robust"):
            st = inv.score_tests(seq.fits["scalar"])
    else:
        st = inv.score_tests(seq.fits["scalar"])
    ours = {(r.lhs, r.op, r.rhs, r.group): r.X2 for r in st.itertuples()}
    for u in ref["uni"]:
        rel(ours[_key(u["rhs_param"])], u["X2"], atol=1e-6, what=f"{variant} score test")
    rel(st.attrs["total"]["X2"], ref["total"]["X2"])
    steps = seq.partial("scalar", max_steps=1, rules="chisq_difference")
    assert steps["freed"].iloc[1] == "x3~1 [Grant-White]"  # x7 is speed's marker here


# ------------------------------------------------------------------ effect sizes
def test_latent_differences_match_lavaan_defined_parameters(hs):
    ref = load_reference("hs_effects_partial")
    defined = {p["lhs"]: p for p in ref["parameters"] if p["op"] == ":="}
    fit = sm.cfa(HS_MODEL, hs, group="school", group_equal=["loadings", "intercepts"],
                 group_partial=["x3~1", "x7~1"])
    seq = inv.sequence(HS_MODEL, hs, group="school", levels=("configural", "metric", "scalar"),
                       rules="cheung_rensvold2002")
    seq.partial("scalar")
    for table, same_scale in ((inv.latent_differences(fit), True),
                              (seq.latent_differences(), False)):
        for _, row in table.iterrows():
            f = row["factor"]
            assert row["group"] == "Grant-White" and row["ref_group"] == "Pasteur"
            for col, name in (("d", "d_"), ("var_ratio", "ratio_")) + (
                    (("mean_diff", "diff_"),) if same_scale else ()):
                rel(row[col], defined[name + f]["est"], what=f"{col} {f}")
                rel(row[col + "_se"], defined[name + f]["se"], rtol=1e-3, what=f"{col} se {f}")
    with pytest.raises(inv.InvarianceError, match="scalar"):
        seq.latent_differences("metric")


def test_dmacs_against_hand_computation(hs):
    ref = load_reference("hs_dmacs")
    fit = sm.cfa(HS_MODEL, hs, group="school", group_equal=["loadings", "intercepts"],
                 group_partial=["visual=~x3", "x3~1", "x7~1"])
    table = inv.dmacs(fit)
    assert list(table["item"]) == ["x3", "x7"]
    assert not table.loc[0, "loading_invariant"] and table.loc[1, "loading_invariant"]
    for (_, row), r in zip(table.iterrows(), ref["dmacs"]):
        for col in ("lambda_ref", "lambda_focal", "nu_ref", "nu_focal", "mean_focal",
                    "var_focal", "sd_pooled", "dmacs", "dmacs_signed"):
            rel(row[col], r[col], what=f"dMACS {r['item']} {col}")
    # the closed form equals the integral for any parameters
    mu, var, dnu, dlam = 0.3, 0.7, 0.4, -0.25
    integral = scipy.integrate.quad(
        lambda x: (dnu + dlam * x) ** 2 * scipy.stats.norm.pdf(x, mu, math.sqrt(var)),
        -np.inf, np.inf, epsabs=1e-13)[0]
    closed = dnu ** 2 + 2 * dnu * dlam * mu + dlam ** 2 * (var + mu ** 2)
    assert integral == pytest.approx(closed, rel=1e-8)
    everything = inv.dmacs(fit, all_items=True)
    assert len(everything) == 9
    assert (everything.loc[everything["item"] == "x1", "dmacs"] == 0).all()


# ------------------------------------------------------------------ errors
def test_error_group_with_too_few_cases(hs):
    small = pd.concat([hs[hs["school"] == "Pasteur"], hs[hs["school"] == "Grant-White"].head(6)])
    with pytest.raises(inv.InvarianceError, match="Grant-White.*only 6"):
        inv.sequence(HS_MODEL, small, group="school")


def test_error_different_indicators_across_groups_or_occasions(hs):
    gone = hs.copy()
    gone.loc[gone["school"] == "Grant-White", "x3"] = np.nan
    with pytest.raises(inv.InvarianceError, match=r"'x3'.*Grant-White.*visual"):
        inv.sequence(HS_MODEL, gone, group="school", missing="ml")
    long = reference_data(load_reference("long_sim_configural"))
    short = LONG_MODEL.replace("B2 =~ b1_t2 + b2_t2 + b3_t2", "B2 =~ b1_t2 + b2_t2")
    with pytest.raises(inv.InvarianceError, match="different numbers of indicators"):
        inv.longitudinal(short, long, LONG_CONSTRUCTS)
    with pytest.raises(inv.InvarianceError, match="not a factor"):
        inv.longitudinal(LONG_MODEL, long, {"B": ["B1", "B3"]})


def test_error_levels_out_of_order_and_unknown_rules(hs):
    with pytest.raises(inv.InvarianceError, match="out of order.*'metric'.*'scalar'"):
        inv.sequence(HS_MODEL, hs, group="school", levels=("configural", "scalar", "metric"))
    with pytest.raises(inv.InvarianceError, match="unknown invariance level"):
        inv.sequence(HS_MODEL, hs, group="school", levels=("configural", "partial"))
    with pytest.raises(ValueError, match="unknown rule set 'chen2008'.*cheung_rensvold2002"):
        inv.sequence(HS_MODEL, hs, group="school", rules="chen2008")
    with pytest.raises(ValueError, match="unknown fit-change index"):
        inv.get_rule_set({"delta_gfi": -0.01})
    with pytest.raises(inv.InvarianceError, match="CFA"):
        inv.sequence(HS_MODEL + "\nspeed ~ visual", hs, group="school")
    with pytest.raises(inv.InvarianceError, match="set by the invariance levels"):
        inv.sequence(HS_MODEL, hs, group="school", group_equal=["loadings"])
    with pytest.raises(inv.InvarianceError, match="identification"):
        inv.sequence(HS_MODEL, hs, group="school", identification="effects")


def test_model_syntax():
    text = inv.model_syntax(HS_MODEL, "scalar", n_groups=2)
    assert "x1 ~ c(NA, NA)*1 + c(nu.visual.1, nu.visual.1)*1" in text
    assert "visual ~~ c(1, NA)*visual" in text
    lav = inv.model_syntax(HS_MODEL, "metric", n_groups=2, identification="lavaan")
    assert "visual =~ c(1, 1)*x1" in lav and "visual ~ c(0, 0)*1" in lav
