"""Tests of measurement/: Design, syntax builders, scoring, alpha/omega/AVE and LST coefficients.

Nothing here needs the SEM engine: builder output is compared statement by statement with the
hand-written lavaan syntax in tests/reference/json/measurement_*.json, and reliability / LST
coefficients are computed from lavaan's own estimates (a stub fit object) and compared with
semTools::compRelSEM, semTools::AVE and the R computation.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import measurement as m
from measurement import Design

REF = Path(__file__).resolve().parent / "reference"


def design4(**kw) -> Design:
    args = dict(informants=["c", "t"], occasions=["mid", "end"], dimensions=["bond", "task"],
                items=4, pattern="{informant}_{occasion}_{dimension}{item}", reverse=[2, 4])
    args.update(kw)
    return Design(**args)


# ------------------------------------------------------------------------------------------
# lavaan syntax normalizer used to compare models
# ------------------------------------------------------------------------------------------

def statements(syntax: str) -> list[tuple[str, str, str, str]]:
    """(lhs, op, modifier, rhs) per term; the first =~ term without modifier gets '1'."""
    out = []
    for raw in syntax.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        mt = re.match(r"^(\S+)\s*(=~|~~|~)\s*(.+)$", line)
        assert mt, f"unparsable line: {raw!r}"
        lhs, op, rhs = mt.groups()
        for n, term in enumerate(t.strip() for t in rhs.split("+")):
            mod, _, var = term.rpartition("*")
            if op == "=~" and n == 0 and mod == "":
                mod = "1"
            out.append((lhs, op, mod, var))
    return out


def canonical(syntax: str) -> tuple[frozenset, frozenset]:
    """Statements with labels replaced by the set of parameters sharing them."""
    st = statements(syntax)
    params = []
    by_label: dict[str, set] = {}
    for lhs, op, mod, rhs in st:
        key = (lhs, op, rhs) if op != "~~" else (min(lhs, rhs), op, max(lhs, rhs))
        if re.match(r"^[A-Za-z_.][A-Za-z0-9_.]*$", mod):
            by_label.setdefault(mod, set()).add(key)
            params.append((key, "label"))
        else:
            params.append((key, mod))
    return frozenset(params), frozenset(frozenset(v) for v in by_label.values())


def reference(name: str) -> dict:
    return json.loads((REF / "json" / f"measurement_{name}.json").read_text())


BUILDER_CASES = {
    "state": lambda d: m.state_model(d),
    "state_wording": lambda d: m.state_model(d, wording_factor=True),
    "trait": lambda d: m.trait_model(d),
    "trait_wording": lambda d: m.trait_model(d, wording_factor=["c"]),
    "state_trait": lambda d: m.state_trait_model(d),
    "state_trait_wording": lambda d: m.state_trait_model(d, wording_factor="c"),
    "state_trait_equal_loadings": lambda d: m.state_trait_model(d, equal_loadings_over_time=True),
}


@pytest.mark.parametrize("name", sorted(BUILDER_CASES))
def test_builders_equal_hand_written_lavaan_syntax(name):
    built = BUILDER_CASES[name](design4())
    assert canonical(built) == canonical(reference(name)["model"])


# ------------------------------------------------------------------------------------------
# builders: structure
# ------------------------------------------------------------------------------------------

def test_state_model_structure():
    st = statements(m.state_model(design4()))
    loads = [s for s in st if s[1] == "=~"]
    factors = sorted({s[0] for s in loads})
    assert factors == sorted(f"{i}_{o}_{d}" for i in "ct" for o in ("mid", "end")
                             for d in ("bond", "task"))
    assert len(loads) == 32
    markers = {s[0]: s[3] for s in loads if s[2] == "1"}
    assert markers == {f: f + "1" for f in factors}
    assert not [s for s in st if s[1] != "=~"]  # correlations come from cfa() defaults


def test_single_occasion_informant_model():
    d = design4().subset(informants=["c"], occasions=["mid"])
    st = statements(m.state_model(d, wording_factor=True))
    assert {s[0] for s in st if s[1] == "=~"} == {"c_mid_bond", "c_mid_task", "c_mid_wording"}
    assert ("c_mid_wording", "~~", "0", "c_mid_bond") in st
    assert ("c_mid_wording", "~~", "0", "c_mid_task") in st


def test_trait_model_structure():
    st = statements(m.trait_model(design4()))
    loads = [s for s in st if s[1] == "=~"]
    assert sorted({s[0] for s in loads}) == ["c_bond", "c_task", "t_bond", "t_task"]
    assert len(loads) == 4 * 8
    assert {s[0]: s[3] for s in loads if s[2] == "1"} == {
        "c_bond": "c_mid_bond1", "c_task": "c_mid_task1", "t_bond": "t_mid_bond1",
        "t_task": "t_mid_task1"}
    rescov = {(s[0], s[3]) for s in st if s[1] == "~~"}
    assert rescov == {(f"{i}_mid_{d}{k}", f"{i}_end_{d}{k}") for i in "ct"
                      for d in ("bond", "task") for k in range(1, 5)}
    none = statements(m.trait_model(design4(), residual_covariances=False))
    assert not [s for s in none if s[1] == "~~"]


def test_state_trait_model_structure():
    st = statements(m.state_trait_model(design4()))
    second = [s for s in st if s[1] == "=~" and s[0] in ("c_bond", "c_task", "t_bond", "t_task")]
    assert sorted((s[0], s[2], s[3]) for s in second) == sorted(
        (f"{i}_{d}", "1", f"{i}_{o}_{d}") for i in "ct" for d in ("bond", "task")
        for o in ("mid", "end"))
    cov = {(s[0], s[3]) for s in st if s[1] == "~~"}
    assert cov == {(f"{i}_{o}_bond", f"{i}_{o}_task") for i in "ct" for o in ("mid", "end")}
    assert not [s for s in statements(m.state_trait_model(design4(), state_covariances=False))
                if s[1] == "~~"]


def test_wording_factor_statements():
    st = statements(m.trait_model(design4(), wording_factor=True))
    wl = [s for s in st if s[1] == "=~" and s[0].endswith("_wording")]
    assert {s[0] for s in wl} == {"c_mid_wording", "c_end_wording"}
    assert {s[3] for s in wl if s[0] == "c_mid_wording"} == {
        "c_mid_bond2", "c_mid_bond4", "c_mid_task2", "c_mid_task4"}
    zero = {(s[0], s[3]) for s in st if s[1] == "~~" and s[2] == "0"}
    assert zero == {(w, f) for w in ("c_mid_wording", "c_end_wording")
                    for f in ("c_bond", "c_task", "t_bond", "t_task")}
    both = statements(m.state_model(design4(), wording_factor=["c", "t"]))
    assert {s[0] for s in both if s[0].endswith("_wording")} == {
        "c_mid_wording", "c_end_wording", "t_mid_wording", "t_end_wording"}


def test_equality_options_share_labels():
    text = m.state_model(design4(), equal_loadings_over_time=True,
                         equal_intercepts_over_time=True, equal_residuals_over_time=True)
    params, groups = canonical(text)
    assert frozenset({("c_mid_bond", "=~", "c_mid_bond2"), ("c_end_bond", "=~", "c_end_bond2")}) \
        in groups
    assert frozenset({("c_mid_bond1", "~", "1"), ("c_end_bond1", "~", "1")}) in groups
    assert frozenset({("c_mid_task3", "~~", "c_mid_task3"),
                      ("c_end_task3", "~~", "c_end_task3")}) in groups
    st = statements(text)
    # markers fixed to 1 at both occasions; later factor means freed
    assert ("c_end_bond", "=~", "1", "c_end_bond1") in st
    assert ("c_end_bond", "~", "", "1") in st and ("c_mid_bond", "~", "", "1") not in st
    # every label names exactly one parameter per occasion
    assert all(len(g) == 2 for g in groups)


def test_trait_model_equal_loadings_fixes_later_marker():
    st = statements(m.trait_model(design4(), equal_loadings_over_time=True))
    assert ("c_bond", "=~", "1", "c_end_bond1") in st
    assert ("c_bond", "=~", "l_c_bond_2", "c_end_bond2") in st


def test_syntax_is_readable():
    text = m.state_trait_model(design4(), wording_factor=True)
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert all(";" not in ln for ln in lines)
    assert text.endswith("\n")


def test_six_item_design_with_per_dimension_items():
    d = Design(["c"], ["mid", "end"], ["bond", "task"], items={"bond": [1, 2, 3],
                                                               "task": [1, 2, 3, 4, 5]},
               reverse={"bond": [2], "task": [2, 4]})
    st = statements(m.state_model(d))
    assert len([s for s in st if s[0] == "c_mid_bond"]) == 3
    assert len([s for s in st if s[0] == "c_mid_task"]) == 5
    assert d.reverse_columns(occasion="mid") == ["c_mid_bond2", "c_mid_task2", "c_mid_task4"]


# ------------------------------------------------------------------------------------------
# Design and bad designs
# ------------------------------------------------------------------------------------------

def test_design_columns_and_factor_names():
    d = design4()
    assert d.columns(informant="c", occasion="mid", dimension="bond") == [
        "c_mid_bond1", "c_mid_bond2", "c_mid_bond3", "c_mid_bond4"]
    assert len(d.columns()) == 32
    assert d.columns(informant="t", dimension="task")[:2] == ["t_mid_task1", "t_mid_task2"]
    assert d.factor("c", "bond", "mid") == "c_mid_bond"
    assert d.factor("t", "task") == "t_task"
    assert d.wording_factor("c", "end") == "c_end_wording"
    assert d.reverse_columns(informant="c", occasion="mid", dimension="bond") == [
        "c_mid_bond2", "c_mid_bond4"]
    with pytest.raises(ValueError, match="unknown informant 'x'"):
        d.factor("x", "bond")


def test_custom_factor_names():
    d = design4(state_name="{dimension}_{informant}{occasion}",
                trait_name="T_{informant}{dimension}")
    assert d.factor("c", "bond", "mid") == "bond_cmid"
    assert "T_cbond =~ 1*bond_cmid + 1*bond_cend" in m.state_trait_model(d)


def test_check_names_every_missing_column():
    d = design4()
    df = pd.DataFrame(np.ones((3, 32)), columns=d.columns()).drop(
        columns=["c_end_task3", "t_mid_bond1"])
    with pytest.raises(ValueError) as err:
        d.check(df)
    assert "c_end_task3" in str(err.value) and "t_mid_bond1" in str(err.value)
    assert "2 column(s)" in str(err.value)
    d.check(pd.DataFrame(np.ones((3, 32)), columns=d.columns()))  # complete: no error


def test_single_item_factor_is_rejected():
    d = design4(items={"bond": [1], "task": [1, 2, 3]}, reverse=None)
    for build in (m.state_model, m.trait_model, m.state_trait_model):
        with pytest.raises(ValueError, match=r"single indicator.*c_mid_bond1"):
            build(d)


def test_one_occasion_trait_models_are_rejected():
    d = design4(occasions=["mid"])
    with pytest.raises(ValueError, match="trait_model\\(\\) needs at least two occasions"):
        m.trait_model(d)
    with pytest.raises(ValueError, match="state_trait_model\\(\\) needs at least two occasions"):
        m.state_trait_model(d)
    m.state_model(d)  # fine


def test_bad_design_arguments():
    with pytest.raises(ValueError, match="no \\{occasion\\} field"):
        design4(pattern="{informant}_{dimension}{item}")
    with pytest.raises(ValueError, match="must contain \\{item\\}"):
        design4(pattern="{informant}_{occasion}_{dimension}")
    with pytest.raises(ValueError, match="unknown fields"):
        design4(pattern="{rater}_{occasion}_{dimension}{item}")
    with pytest.raises(ValueError, match="reverse-keyed item 7"):
        design4(reverse=[7])
    with pytest.raises(ValueError, match="no item ids for dimensions \\['task'\\]"):
        design4(items={"bond": [1, 2]})
    with pytest.raises(ValueError, match="duplicates"):
        design4(informants=["c", "c"])
    with pytest.raises(ValueError, match="same column"):
        design4(pattern="{informant}_{occasion}_{dimension}{item}", reverse=None,
                items={"bond": [1, 11], "bond1": [1, 2]}, dimensions=["bond", "bond1"])
    with pytest.raises(ValueError, match="factor names equal item columns"):
        design4(pattern="{informant}_{occasion}_{dimension}_{item}",
                state_name="{informant}_{occasion}_{dimension}_1")
    with pytest.raises(ValueError, match="wording factor needs at least two reverse-keyed"):
        m.state_model(design4(reverse=None), wording_factor=True)
    with pytest.raises(ValueError, match="not in the design"):
        m.state_model(design4(), wording_factor="parent")


# ------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------

def toy_items(n: int = 40, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = design4()
    df = pd.DataFrame(rng.integers(1, 5, size=(n, 32)).astype(float), columns=d.columns())
    df.iloc[0, 1] = np.nan
    df["id"] = np.arange(n)
    return df


def test_reverse_score_returns_new_frame_and_keeps_input():
    d = design4()
    df = toy_items()
    before = df.copy(deep=True)
    out = m.reverse_score(df, d)
    pd.testing.assert_frame_equal(df, before)
    assert out is not df
    for c in d.reverse_columns():
        expected = 5 - df[c]
        pd.testing.assert_series_equal(out[c], expected, check_names=False)
    for c in set(d.columns()) - set(d.reverse_columns()):
        pd.testing.assert_series_equal(out[c], df[c])
    assert np.isnan(out.iloc[0, 1])  # c_mid_bond2 stays missing
    out2 = m.reverse_score(df - 1, d, scale=(0, 3))
    pd.testing.assert_frame_equal(out2[d.reverse_columns()],
                                  3 - (df - 1)[d.reverse_columns()])


def test_reverse_score_rejects_out_of_range_values_and_missing_columns():
    d = design4()
    df = toy_items()
    with pytest.raises(ValueError, match="outside the scale 0..3"):
        m.reverse_score(df, d, scale=(0, 3))
    with pytest.raises(ValueError, match="c_end_task4"):
        m.reverse_score(df.drop(columns="c_end_task4"), d)


def test_scale_means():
    d = design4()
    df = toy_items()
    before = df.copy(deep=True)
    sm = m.scale_means(df, d)
    pd.testing.assert_frame_equal(df, before)
    assert list(sm.columns) == [f"{i}_{o}_{dim}" for i in "ct" for o in ("mid", "end")
                                for dim in ("bond", "task")]
    row = 3
    assert sm.loc[row, "t_end_task"] == pytest.approx(
        df.loc[row, ["t_end_task1", "t_end_task2", "t_end_task3", "t_end_task4"]].mean())
    # row 0 misses c_mid_bond2: all items required by default
    assert np.isnan(sm.loc[0, "c_mid_bond"])
    part = m.scale_means(df, d, min_items=3)
    assert part.loc[0, "c_mid_bond"] == pytest.approx(
        df.loc[0, ["c_mid_bond1", "c_mid_bond3", "c_mid_bond4"]].mean())
    assert m.scale_means(df, d, min_items=0.75).loc[0, "c_mid_bond"] == part.loc[0, "c_mid_bond"]
    assert np.isnan(m.scale_means(df, d, min_items=1.0).loc[0, "c_mid_bond"])
    rev = m.scale_means(df, d, reverse=True)
    pd.testing.assert_frame_equal(rev, m.scale_means(m.reverse_score(df, d), d))
    tr = m.scale_means(df, d, level="trait", min_items=1)
    assert list(tr.columns) == ["c_bond", "c_task", "t_bond", "t_task"]
    assert tr.loc[5, "c_task"] == pytest.approx(df.loc[5, d.columns(informant="c",
                                                                  dimension="task")].mean())
    with pytest.raises(ValueError, match="min_items"):
        m.scale_means(df, d, min_items=1.5)


# ------------------------------------------------------------------------------------------
# alpha, omega, AVE and LST coefficients (engine-free: stub fit from lavaan's estimates)
# ------------------------------------------------------------------------------------------

def test_alpha_hand_computation():
    X = pd.DataFrame({"a": [1, 2, 3, 4, 4, 2], "b": [2, 2, 3, 4, 3, 1], "c": [1, 3, 3, 4, 4, 2]},
                     dtype=float)
    k = 3
    item_var = X.var(ddof=1).sum()
    total_var = X.sum(axis=1).var(ddof=1)
    expected = k / (k - 1) * (1 - item_var / total_var)
    assert m.cronbach_alpha(X, ["a", "b", "c"]) == pytest.approx(expected, rel=1e-12)
    # missing values: complete cases
    Y = X.copy()
    Y.loc[0, "a"] = np.nan
    assert m.cronbach_alpha(Y, ["a", "b", "c"]) == pytest.approx(
        m.cronbach_alpha(X.iloc[1:], ["a", "b", "c"]))
    # by hand: item variances 22/15, 11/10, 41/30 (sum 59/15), sum-score variance 52/5
    assert m.cronbach_alpha(X, ["a", "b", "c"]) == pytest.approx(1.5 * (1 - 59 / 156))


class StubFit:
    """The two fit calls measurement/ uses, filled from a lavaan reference JSON."""

    def __init__(self, ref: dict):
        self.ref = ref

    def estimates(self) -> pd.DataFrame:
        est = pd.DataFrame(self.ref["parameters"])
        est["label"] = ""
        return est

    def implied(self) -> dict:
        ic = self.ref["implied_cov"]
        cov = pd.DataFrame(ic["values"], index=ic["names"], columns=ic["names"])
        return {None: {"cov": cov, "mean": None}}


@pytest.fixture(scope="module")
def sim_large() -> pd.DataFrame:
    raw = pd.read_csv(REF / "data" / "alliance_sim_large.csv")
    return m.reverse_score(raw, design4())


@pytest.mark.parametrize("name", ["state", "state_wording"])
def test_reliability_matches_semtools(name, sim_large):
    ref = reference(name)
    rel = m.reliability(StubFit(ref), sim_large)
    want = pd.DataFrame({"omega": ref["compRelSEM"], "alpha": ref["compRelSEM_alpha"],
                         "ave": ref["AVE"]}).astype(float)
    assert list(rel.index) == list(want.index)
    np.testing.assert_allclose(rel["omega"], want["omega"], rtol=1e-10)
    np.testing.assert_allclose(rel["alpha"], want["alpha"], rtol=1e-10)
    np.testing.assert_allclose(rel["ave"], want["ave"], rtol=1e-10)  # NaN where cross-loading
    implied = m.reliability(StubFit(ref), obs_var=False)
    np.testing.assert_allclose(implied["omega"],
                               pd.Series(ref["compRelSEM_implied"]).astype(float), rtol=1e-10)
    assert implied["alpha"].isna().all()
    with pytest.raises(ValueError, match="obs_var=True needs the data"):
        m.reliability(StubFit(ref), obs_var=True)


def test_reliability_skips_second_order_factors(sim_large):
    rel = m.reliability(StubFit(reference("state_trait")), sim_large)
    assert "c_bond" not in rel.index and "c_mid_bond" in rel.index


@pytest.mark.parametrize("name", ["state_trait", "state_trait_wording",
                                  "state_trait_equal_loadings"])
def test_state_trait_coefficients_match_r(name):
    ref = reference(name)
    got = m.state_trait_coefficients(StubFit(ref), design4()).set_index("indicator")
    want = pd.DataFrame(ref["lst_coefficients"]).set_index("indicator")
    for col in ("consistency", "occasion_specificity", "method_specificity", "reliability"):
        np.testing.assert_allclose(got.loc[want.index, col], want[col], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["reliability"],
                               got["consistency"] + got["occasion_specificity"]
                               + got["method_specificity"])
    assert set(got["trait"]) == {"c_bond", "c_task", "t_bond", "t_task"}


def test_saturated_moments_em_monotone_closed_form():
    """EM on a monotone bivariate pattern equals Anderson's (1957) closed form."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    y = 0.6 * x + rng.normal(scale=0.8, size=400)
    y[rng.random(400) < 0.3] = np.nan
    df = pd.DataFrame({"x": x, "y": y})
    mu, sig = m.saturated_moments(df, ["x", "y"], missing="ml")
    cc = df.dropna()
    b = np.cov(cc.x, cc.y, ddof=0)[0, 1] / np.var(cc.x)
    a = cc.y.mean() - b * cc.x.mean()
    resid = np.var(cc.y - a - b * cc.x)
    mx, vx = x.mean(), np.var(x)
    np.testing.assert_allclose(mu, [mx, a + b * mx], rtol=1e-7)
    np.testing.assert_allclose(sig, [[vx, b * vx], [b * vx, resid + b * b * vx]], rtol=1e-6)
    mu_l, sig_l = m.saturated_moments(df, ["x", "y"])
    np.testing.assert_allclose(mu_l, cc.mean().to_numpy())


def test_reliability_under_missing_data_matches_semtools():
    """FIML fit of lavaan on the bundled alliance data: the observed covariance matrix of
    compRelSEM is lavaan's EM estimate; ours (saturated_moments, missing='ml') matches it."""
    from sem_models import datasets as ds

    ref = reference("state_child_fiml")
    d6 = Design(["c"], ["mid", "end"], ["bond", "task"], 6, reverse=[2, 4, 6])
    data = m.reverse_score(ds.load("alliance"), d6)
    names = ref["sampstat_cov"]["names"]
    _, S = m.saturated_moments(data, names, missing="ml")
    np.testing.assert_allclose(S, np.array(ref["sampstat_cov"]["values"]), atol=2e-5)
    rel = m.reliability(StubFit(ref), data, missing="ml")
    want = pd.Series(ref["compRelSEM"]).astype(float)
    np.testing.assert_allclose(rel.loc[want.index, "omega"], want, rtol=1e-4)
    np.testing.assert_allclose(rel.loc[want.index, "ave"],
                               pd.Series(ref["AVE"]).astype(float), rtol=1e-4)
    # listwise deletion (complete cases only) gives a different observed covariance matrix
    lw = m.reliability(StubFit(ref), data)
    assert not np.allclose(lw["omega"], rel["omega"], rtol=1e-6)
