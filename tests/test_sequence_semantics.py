"""Invariance-sequence semantics after a failed level (issue 10, item 5).

Once a level fails its rule, the next level is either fitted on top of the partial model that
passed (``partial=`` requested) or reported as "not tested: previous level failed"; it is never
judged against a rejected model.  References: tests/reference/cases_sequence_semantics.R
(lavaan: strict with ``group.partial = c("x3~1", "x7~1")`` and lavTestLRT against the partial
scalar model, ML and MLR) and the HS39 references of cases_core.R.
"""
import numpy as np
import pytest

import invariance as inv
from invariance.rules import NOT_TESTED
from lavaan_reference import assert_close, check_estimates, load_reference
from sem_models.datasets import load

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
LEVELS4 = ("configural", "metric", "scalar", "strict")


@pytest.fixture(scope="module")
def hs():
    return load("HolzingerSwineford1939")


def rel(a, b, rtol=1e-4, what=""):
    assert_close([a], [b], rtol, 1e-8, what)


def test_failed_level_without_partial_stops_the_sequence(hs):
    """Chen (2007): scalar fails (dCFI -.038, dSRMR .011); strict is not tested against it."""
    seq = inv.sequence(HS_MODEL, hs, group="school", identification="lavaan")
    t = seq.table
    assert list(t["decision"]) == ["", "invariant", "non-invariant", NOT_TESTED]
    assert "invariant" != t.loc["strict", "decision"]
    assert t.loc["strict", "compared_with"] == "scalar"
    assert np.isnan(t.loc["scalar", "partial_freed"])  # no search was asked for
    # the strict model is still fitted (lavaan's cumulative model) for its own fit
    rel(seq.fits["strict"].measures()["chisq"], load_reference("hs_strict")["fit"]["chisq"])
    assert NOT_TESTED in seq.summary()
    # a rule set under which scalar passes judges strict normally
    lenient = seq.decide({"delta_cfi": -0.05})
    assert list(lenient) == ["", "invariant", "invariant", "invariant"]
    # and every rule set that rejects scalar leaves strict untested
    for rules in ("cheung_rensvold2002", "chisq_difference"):
        assert seq.decide(rules)["strict"] == NOT_TESTED
    assert seq.with_rules("chisq_difference").table.loc["strict", "decision"] == NOT_TESTED


@pytest.mark.parametrize("estimator", ["ML", "MLR"])
def test_next_level_fitted_on_the_partial_model_that_passed(hs, estimator):
    """Cheung & Rensvold: scalar fails, freeing x3~1 and x7~1 (Grant-White) passes; strict is
    then lavaan's strict model with group.partial = c("x3~1", "x7~1") and is compared with the
    partial scalar model (lavTestLRT; Satorra-Bentler 2001 under MLR)."""
    sfx = estimator.lower()
    seq = inv.sequence(HS_MODEL, hs, group="school", identification="lavaan",
                       rules="cheung_rensvold2002", partial="scalar",
                       partial_options={"protect_marker": False}, estimator=estimator)
    t = seq.table
    assert t.loc["scalar", "decision"] == "non-invariant"
    assert t.loc["scalar", "partial_freed"] == 2
    assert t.loc["scalar", "partial_decision"] == "invariant"
    assert list(seq.partial_steps["scalar"]["freed"]) == ["", "x3~1 [Grant-White]",
                                                          "x7~1 [Grant-White]"]
    assert t.loc["strict", "compared_with"] == "scalar (partial)"
    assert t.loc["strict", "decision"] == "invariant"  # dCFI -.010 / -.009 (> -.01)
    ref_scalar = load_reference(f"seq_hs_partial_scalar_{sfx}")
    ref = load_reference(f"seq_hs_partial_strict_{sfx}")
    check_estimates(seq.partial_fits["scalar"], ref_scalar)
    strict = seq.fits["strict"]
    assert strict.measures()["df"] == ref["fit"]["df"] == 67
    rel(strict.measures()["chisq"], ref["fit"]["chisq"], what="strict on partial scalar")
    check_estimates(strict, ref)
    lrt = ref["lrt"][0]["table"][-1]
    rel(t.loc["strict", "delta_chisq"], lrt["Chisq_diff"], what="difference test")
    rel(t.loc["strict", "delta_pvalue"], lrt["Pr_Chisq"], what="difference p")
    assert t.loc["strict", "delta_df"] == lrt["Df_diff"] == 9
    assert seq.released["strict"] == seq.released["scalar"]
    if estimator == "MLR":
        assert t.loc["strict", "difference_test"] == "Satorra-Bentler 2001 scaled difference"
        # standard and scaled statistics side by side, under lavaan's names
        rel(t.loc["strict", "chisq"], ref["fit"]["chisq"])
        rel(t.loc["strict", "chisq_scaled"], ref["fit"]["chisq_scaled"])
        rel(t.loc["strict", "cfi_robust"], ref["fit"]["cfi_robust"])
    else:
        assert "chisq_scaled" not in t.columns
        assert t.loc["strict", "difference_test"].startswith("likelihood ratio")
    assert "(vs scalar (partial))" in seq.summary()


def test_partial_search_that_does_not_pass_stops_the_sequence(hs):
    """One freed intercept is not enough under Cheung & Rensvold: strict is not tested."""
    seq = inv.sequence(HS_MODEL, hs, group="school", identification="lavaan",
                       rules="cheung_rensvold2002", partial=True,
                       partial_options={"protect_marker": False, "max_steps": 1})
    t = seq.table
    assert t.loc["scalar", "partial_freed"] == 1
    assert t.loc["scalar", "partial_decision"] == "non-invariant"
    assert t.loc["strict", "decision"] == NOT_TESTED
    assert t.loc["strict", "compared_with"] == "scalar"
    # strict is the full cumulative model (nothing carried from a search that failed)
    assert seq.fits["strict"].measures()["df"] == 69
    # metric passed: no search there
    assert "metric" not in seq.partial_steps


def test_decide_reuses_the_partial_model(hs):
    seq = inv.sequence(HS_MODEL, hs, group="school", identification="lavaan",
                       rules="cheung_rensvold2002", partial=["scalar"],
                       partial_options={"protect_marker": False})
    # chisq_difference rejects scalar (p < .001) but accepts the partial scalar model
    # (5.38 on 4 df against metric, p = .25): strict is judged against it (17.84 on 9 df,
    # p = .037: non-invariant)
    steps = seq.partial_steps["scalar"]
    assert steps["delta_pvalue"].iloc[-1] > 0.05
    chi = seq.decide("chisq_difference")
    assert chi["scalar"] == "non-invariant" and chi["strict"] == "non-invariant"
    # a rule set that rejects the partial model too leaves strict untested
    tight = seq.decide({"metric": {"delta_cfi": -0.01}, "default": {"delta_cfi": -0.001}})
    assert tight["scalar"] == "non-invariant" and tight["strict"] == NOT_TESTED


def test_longitudinal_partial_chain():
    from lavaan_reference import reference_data
    data = reference_data(load_reference("long_sim_configural"))
    model = ("B1 =~ b1_t1 + b2_t1 + b3_t1\nK1 =~ k1_t1 + k2_t1 + k3_t1\n"
             "B2 =~ b1_t2 + b2_t2 + b3_t2\nK2 =~ k1_t2 + k2_t2 + k3_t2")
    cons = {"B": ["B1", "B2"], "K": ["K1", "K2"]}
    plain = inv.longitudinal(model, data, cons, levels=LEVELS4, rules="chisq_difference")
    assert plain.table.loc["scalar", "decision"] == "non-invariant"
    assert plain.table.loc["strict", "decision"] == NOT_TESTED
    seq = inv.longitudinal(model, data, cons, levels=LEVELS4, rules="chisq_difference",
                           partial="scalar", partial_options={"max_steps": 1})
    t = seq.table
    assert seq.partial_steps["scalar"]["freed"].iloc[1] == "b3_t2~1"
    if t.loc["scalar", "partial_decision"] == "invariant":
        assert t.loc["strict", "compared_with"] == "scalar (partial)"
        assert t.loc["strict", "decision"] != NOT_TESTED
        # strict keeps b3_t2's intercept free: one df less than the cumulative strict model
        assert seq.fits["strict"].measures()["df"] == plain.fits["strict"].measures()["df"] - 1
    else:  # pragma: no cover - depends on the simulated data
        assert t.loc["strict", "decision"] == NOT_TESTED


def test_partial_argument_errors(hs):
    with pytest.raises(inv.InvarianceError, match="first level"):
        inv.sequence(HS_MODEL, hs, group="school", partial="configural")
    with pytest.raises(inv.InvarianceError, match="not in this sequence"):
        inv.sequence(HS_MODEL, hs, group="school", levels=("configural", "metric"),
                     partial="scalar")
    with pytest.raises(inv.InvarianceError, match="partial_options"):
        inv.sequence(HS_MODEL, hs, group="school", partial=True,
                     partial_options={"steps": 2})
