"""Fit the measurement builders' models with the sem_models engine.

* The builders' syntax, fitted with ``sem_models.cfa``, reproduces lavaan's fit of the
  hand-written models (tests/reference/make_measurement_reference.R): chi-square, df, npar to
  1e-4 relative, estimates; omega/AVE as semTools; LST coefficients as computed in R.
* The generator recovers its population values (sem_models.datasets.ALLIANCE_TRUTH) when the
  generating model is fitted to a large simulated sample.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import measurement as m
import sem_models
from sem_models import datasets as ds

REF = Path(__file__).resolve().parent / "reference"

DESIGN4 = m.Design(informants=["c", "t"], occasions=["mid", "end"], dimensions=["bond", "task"],
                   items=4, pattern="{informant}_{occasion}_{dimension}{item}", reverse=[2, 4])

BUILDERS = {
    "state": lambda d: m.state_model(d),
    "state_wording": lambda d: m.state_model(d, wording_factor=True),
    "trait": lambda d: m.trait_model(d),
    "trait_wording": lambda d: m.trait_model(d, wording_factor=True),
    "state_trait": lambda d: m.state_trait_model(d),
    "state_trait_wording": lambda d: m.state_trait_model(d, wording_factor=True),
    "state_trait_equal_loadings": lambda d: m.state_trait_model(d, equal_loadings_over_time=True),
}


def reference(name: str) -> dict:
    return json.loads((REF / "json" / f"measurement_{name}.json").read_text())


@pytest.fixture(scope="module")
def sim_large() -> pd.DataFrame:
    raw = pd.read_csv(REF / "data" / "alliance_sim_large.csv")
    return m.reverse_score(raw, DESIGN4)


@pytest.fixture(scope="module")
def fits(sim_large) -> dict:
    return {name: sem_models.cfa(build(DESIGN4), sim_large) for name, build in BUILDERS.items()}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_fit_matches_lavaan(name, fits):
    ref = reference(name)
    fit = fits[name]
    assert fit.converged
    meas = fit.measures()
    assert meas["chisq"] == pytest.approx(ref["fit"]["chisq"], rel=1e-4)
    assert meas["df"] == ref["fit"]["df"]
    assert meas["npar"] == ref["fit"]["npar"]
    est = fit.estimates()
    want = pd.DataFrame(ref["parameters"])

    def key(df):
        sym = df["op"] == "~~"
        a = np.where(sym, np.minimum(df["lhs"], df["rhs"]), df["lhs"])
        b = np.where(sym, np.maximum(df["lhs"], df["rhs"]), df["rhs"])
        return pd.Series(df["est"].to_numpy(), index=pd.MultiIndex.from_arrays(
            [a, df["op"].to_numpy(), b]))

    got, exp = key(est), key(want)
    assert set(got.index) == set(exp.index)
    np.testing.assert_allclose(got.loc[exp.index].to_numpy(), exp.to_numpy(), rtol=1e-3,
                               atol=1e-4)


@pytest.mark.parametrize("name", ["state", "state_wording"])
def test_reliability_of_engine_fit_matches_semtools(name, fits, sim_large):
    ref = reference(name)
    rel = m.reliability(fits[name], sim_large)
    want = pd.DataFrame({"omega": ref["compRelSEM"], "alpha": ref["compRelSEM_alpha"],
                         "ave": ref["AVE"]}).astype(float)
    np.testing.assert_allclose(rel.loc[want.index, "omega"], want["omega"], rtol=1e-4)
    np.testing.assert_allclose(rel.loc[want.index, "alpha"], want["alpha"], rtol=1e-10)
    np.testing.assert_allclose(rel.loc[want.index, "ave"], want["ave"], rtol=1e-4)


@pytest.mark.parametrize("name", ["state_trait", "state_trait_wording"])
def test_state_trait_coefficients_of_engine_fit_match_r(name, fits):
    ref = reference(name)
    got = m.state_trait_coefficients(fits[name], DESIGN4).set_index("indicator")
    want = pd.DataFrame(ref["lst_coefficients"]).set_index("indicator")
    for col in ("consistency", "occasion_specificity", "method_specificity", "reliability"):
        np.testing.assert_allclose(got.loc[want.index, col], want[col], rtol=1e-4, atol=1e-8)


# ------------------------------------------------------------------------------------------
# recovery of the generator's population values
# ------------------------------------------------------------------------------------------

DESIGN6 = m.Design(informants=["c", "t"], occasions=["mid", "end"], dimensions=["bond", "task"],
                   items=6, pattern="{informant}_{occasion}_{dimension}{item}",
                   reverse=[2, 4, 6])
TRUTH = ds.ALLIANCE_TRUTH
MARKER = 0.80  # loading of item 1 (the marker) in bond and task: the latent unit is 0.8 y*
TRAITS = ["c_bond", "c_task", "t_bond", "t_task"]


@pytest.fixture(scope="module")
def recovery_data() -> pd.DataFrame:
    df = ds.simulate_alliance(seed=31, n=6000, missing=False, clustering=False,
                              continuous=True)
    df["individual"] = (df["format"] == "individual").astype(float)
    return df


@pytest.fixture(scope="module")
def recovery_fit(recovery_data):
    """The generating model by format: LST with wording factor, outcomes on the traits."""
    model = m.state_trait_model(DESIGN6, wording_factor=True) + "\n".join([
        "# baselines correlate with the traits",
        "ext_pre ~~ int_pre + c_bond + c_task + t_bond + t_task",
        "int_pre ~~ c_bond + c_task + t_bond + t_task",
        "ext_fu ~ c_bond + c_task + t_bond + t_task + ext_pre",
        "int_fu ~ c_bond + c_task + t_bond + t_task + int_pre",
        "ext_fu ~~ int_fu", ""])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sem_models.sem(model, recovery_data, group="format", fixed_x=False)
    assert fit.converged
    return fit


def _param(est, lhs, op, rhs, group):
    if group is not None:
        est = est[est["group"] == group]
    sel = est[(est["lhs"] == lhs) & (est["op"] == op) & (est["rhs"] == rhs)]
    if sel.empty and op == "~~":
        sel = est[(est["lhs"] == rhs) & (est["op"] == op) & (est["rhs"] == lhs)]
    assert len(sel) == 1, (lhs, op, rhs, group)
    return float(sel["est"].iloc[0]), float(sel["se"].iloc[0])


def _close(est, lhs, op, rhs, group, truth, z=4.0):
    value, se = _param(est, lhs, op, rhs, group)
    assert abs(value - truth) < z * se, f"{lhs} {op} {rhs} [{group}]: {value} vs {truth} (se {se})"


def test_recovery_measurement_part(recovery_fit):
    est = recovery_fit.estimates()
    tr, st, it = TRUTH["traits"], TRUTH["states"], TRUTH["items"]
    for g in ("group", "individual"):
        for a in TRAITS:
            _close(est, a, "~~", a, g, MARKER ** 2 * tr["variances"][a])
        for (a, b), r in tr["correlations"].items():
            cov = MARKER ** 2 * r * np.sqrt(tr["variances"][a] * tr["variances"][b])
            _close(est, a, "~~", b, g, cov)
        for i in "ct":
            for o in ("mid", "end"):
                v = st["residual_variances"][i][o]
                _close(est, f"{i}_{o}_bond", "~~", f"{i}_{o}_bond", g, MARKER ** 2 * v)
                _close(est, f"{i}_{o}_bond", "~~", f"{i}_{o}_task", g,
                       MARKER ** 2 * st["residual_correlation_bond_task"] * v)
                for dim in ("bond", "task"):
                    for k in range(2, 7):
                        lam = it["loadings"][dim][k - 1]
                        if g == "group" and (i, dim, k) == ("t", "bond", 5):
                            lam = 0.45  # the non-invariant loading
                        _close(est, f"{i}_{o}_{dim}", "=~", f"{i}_{o}_{dim}{k}", g, lam / MARKER)
                        _close(est, f"{i}_{o}_{dim}{k}", "~~", f"{i}_{o}_{dim}{k}", g,
                               it["residual_variances"][dim][k - 1])
        w = TRUTH["wording"]
        _close(est, "c_mid_wording", "~~", "c_mid_wording", g, w["loading"] ** 2)
        _close(est, "c_mid_wording", "~~", "c_end_wording", g,
               w["loading"] ** 2 * w["occasion_correlation"])
        _close(est, "c_end_wording", "=~", "c_end_task6", g, 1.0)


def test_recovery_findings_two_and_three(recovery_fit):
    est = recovery_fit.estimates()
    per_unit = TRUTH["derived"]["outcome_effects_per_unit"]
    disc = TRUTH["outcomes"]["int_fu"]["discrepancy"]
    for g in ("group", "individual"):
        for a in TRAITS:
            _close(est, "ext_fu", "~", a, g, per_unit["ext_fu"][a] / MARKER)
            b = per_unit["int_fu"][a]
            if a == "t_bond":
                b += disc[g]
            elif a == "c_bond":
                b -= disc[g]
            _close(est, "int_fu", "~", a, g, b / MARKER)
        _close(est, "ext_fu", "~", "ext_pre", g, TRUTH["outcomes"]["ext_fu"]["baseline"])
        _close(est, "int_fu", "~", "int_pre", g, TRUTH["outcomes"]["int_fu"]["baseline"])
        _close(est, "ext_pre", "~~", "t_bond", g, MARKER * -0.20 * 8.0 * np.sqrt(0.70))
    # the discrepancy effect itself: group minus individual on t_bond equals 3.0 per unit
    tg, sg = _param(est, "int_fu", "~", "t_bond", "group")
    ti, si = _param(est, "int_fu", "~", "t_bond", "individual")
    assert abs((tg - ti) * MARKER - disc["group"]) < 4 * np.hypot(sg, si) * MARKER


def test_recovery_lst_coefficients(recovery_fit):
    coef = m.state_trait_coefficients(recovery_fit, DESIGN6)
    ind = coef[coef["group"] == "individual"].set_index("indicator")
    truth = TRUTH["derived"]["lst_coefficients"]
    for col in ("consistency", "occasion_specificity", "method_specificity", "reliability"):
        want = pd.Series({k: v[col] for k, v in truth.items()})
        np.testing.assert_allclose(ind.loc[want.index, col], want, atol=0.04)


def test_recovery_finding_one_mimic(recovery_data):
    """Child-rated trait task is 0.3 SD higher in the individual format (MIMIC with a direct
    effect on the non-invariant item c_*_task3)."""
    design = DESIGN6.subset(informants=["c"])
    model = m.state_trait_model(design, wording_factor=True) + "\n".join([
        "c_bond ~ individual", "c_task ~ individual",
        "c_bond ~~ c_task",
        "c_mid_task3 ~ individual", "c_end_task3 ~ individual", ""])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sem_models.sem(model, recovery_data)
    assert fit.converged
    est = fit.estimates()
    shift = TRUTH["traits"]["means"]["individual"]["c_task"] - \
        TRUTH["traits"]["means"]["group"]["c_task"]
    _close(est, "c_task", "~", "individual", None, MARKER * shift)
    _close(est, "c_bond", "~", "individual", None, 0.0)
    _close(est, "c_mid_task3", "~", "individual", None, -0.5)
    _close(est, "c_end_task3", "~", "individual", None, -0.5)
    # as an effect size: difference / within-format SD of the trait
    b, _ = _param(est, "c_task", "~", "individual", None)
    v, _ = _param(est, "c_task", "~~", "c_task", None)
    assert b / np.sqrt(v) == pytest.approx(0.3, abs=0.08)


def test_multigroup_reliability_equals_per_group_fits(sim_large):
    """Configural two-group fit: omega per group equals the single-group fit on that group."""
    model = m.state_model(DESIGN4.subset(informants=["t"], occasions=["mid"]))
    fit = sem_models.cfa(model, sim_large, group="format")
    rel = m.reliability(fit, sim_large, group="format")
    assert rel.index.names == ["group", "factor"]
    for fmt in ("group", "individual"):
        sub = sim_large[sim_large["format"] == fmt]
        one = m.reliability(sem_models.cfa(model, sub), sub)
        np.testing.assert_allclose(rel.loc[fmt, "omega"].to_numpy(), one["omega"].to_numpy(),
                                   rtol=1e-4)
        np.testing.assert_allclose(rel.loc[fmt, "alpha"].to_numpy(), one["alpha"].to_numpy(),
                                   rtol=1e-12)
    with pytest.raises(ValueError, match="group="):
        m.reliability(fit, sim_large)


def test_fiml_fit_and_reliability_match_lavaan():
    ref = reference("state_child_fiml")
    d6 = m.Design(["c"], ["mid", "end"], ["bond", "task"], 6, reverse=[2, 4, 6])
    data = m.reverse_score(ds.load("alliance"), d6)
    fit = sem_models.cfa(m.state_model(d6), data, missing="ml")
    assert fit.measures()["chisq"] == pytest.approx(ref["fit"]["chisq"], rel=1e-4)
    assert fit.measures()["df"] == ref["fit"]["df"]
    rel = m.reliability(fit, data, missing="ml")
    want = pd.Series(ref["compRelSEM"]).astype(float)
    np.testing.assert_allclose(rel.loc[want.index, "omega"], want, rtol=1e-4)
