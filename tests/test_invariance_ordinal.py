"""Ordinal measurement invariance (issue 15) against semTools 0.5-6 / lavaan 0.6-14.

References: tests/reference/cases_invariance_ordinal.R -> tests/reference/json/inv_ord_*.json
(measEq.syntax with each ID.cat on datCat, HS39 cut into categories by school and as a
longitudinal layout, binary items; every step's fit, lavTestLRT differences and parameter
estimates; lavTestScore and modindices of an ordinal scalar model).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.stats

import invariance as inv
from invariance.rules import INVARIANT, NON_INVARIANT
from invariance.score import release_tests, score_tests
from sem_models.estimation.categorical_data import CategoricalDataError

HERE = Path(__file__).parent
ROOT = HERE.parent
REF = HERE / "reference" / "json"
CASES = sorted(p.stem for p in REF.glob("inv_ord_*.json"))
ID_CAT = {"Wu.Estabrook.2016": "wu_estabrook2016", "Mplus": "mplus",
          "Millsap.Tein.2004": "millsap_tein2004", "LISREL": "lisrel"}
EST_TOL = 1e-4
SE_TOL = 1e-3
DATCAT = "FU1 =~ u1 + u2 + u3 + u4\nFU2 =~ u5 + u6 + u7 + u8"
HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"


def load(case: str) -> dict:
    return json.loads((REF / f"{case}.json").read_text())


def data_of(ref: dict) -> pd.DataFrame:
    return pd.read_csv(ROOT / ref["data"])


_SEQ: dict = {}


def sequence_of(case: str) -> inv.InvarianceSequence:
    if case not in _SEQ:
        ref = load(case)
        kw = dict(levels=ref["levels"], ordered=list(ref["ordered"]),
                  parameterization=ref["parameterization"], id_cat=ID_CAT[ref["id_cat"]],
                  rules="chisq_difference")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if ref["long_fac_names"]:
                _SEQ[case] = inv.longitudinal(ref["model"], data_of(ref), ref["long_fac_names"],
                                              group=ref.get("group"), **kw)
            else:
                _SEQ[case] = inv.sequence(ref["model"], data_of(ref), group=ref["group"], **kw)
    return _SEQ[case]


def close(ours, theirs, tol) -> bool:
    if theirs is None:
        return not np.isfinite(ours)
    return abs(float(ours) - float(theirs)) <= tol * max(1.0, abs(float(theirs)))


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize("case", CASES)
def test_steps_match_measeq(case):
    """Every step: npar, chisq, df, scaled-shifted chisq, scaled CFI / TLI / RMSEA, SRMR,
    lavaan's robust (catML) indices (NA once thresholds are constrained: NaN here too) and the
    robust indices of the (D)WLS statistic (lavaan's formulas, computed in the R script)."""
    seq, ref = sequence_of(case), load(case)
    assert list(seq.table.index) == [s["level"] for s in ref["steps"]]
    for st in ref["steps"]:
        row = seq.table.loc[st["level"]]
        assert row["converged"]
        assert int(row["npar"]) == st["npar"] and int(row["df"]) == st["fit"]["df"]
        for key, tol in (("chisq", EST_TOL), ("srmr", EST_TOL), ("cfi", EST_TOL),
                         ("rmsea", EST_TOL), ("chisq_scaled", SE_TOL), ("cfi_scaled", SE_TOL),
                         ("tli_scaled", SE_TOL), ("rmsea_scaled", SE_TOL),
                         ("cfi_robust", SE_TOL), ("tli_robust", SE_TOL),
                         ("rmsea_robust", SE_TOL)):
            assert close(row[key], st["fit"][key], tol), (st["level"], key, row[key],
                                                          st["fit"][key])
        for key in ("cfi", "tli", "rmsea"):
            assert close(row[f"{key}_robust_wls"], st["robust_wls"][key], SE_TOL), \
                (st["level"], key)
        # the robust indices of the (D)WLS statistic exist at every step
        assert np.isfinite(row["cfi_robust_wls"]) and np.isfinite(row["rmsea_robust_wls"])


@pytest.mark.parametrize("case", CASES)
def test_differences_match_lavtestlrt(case):
    """Satorra (2000) scaled-shifted differences between consecutive steps (lavTestLRT's
    default for WLSMV)."""
    seq, ref = sequence_of(case), load(case)
    for st in ref["steps"][1:]:
        row = seq.table.loc[st["level"]]
        lrt = st["lrt"]
        assert row["delta_df"] == lrt["df_diff"]
        assert abs(row["delta_chisq"] - lrt["chisq_diff"]) <= SE_TOL * max(
            1.0, abs(lrt["chisq_diff"])), (st["level"], row["delta_chisq"], lrt)
        if lrt["chisq_diff"] < 0:
            # a negative difference (the more restricted model fits better: the Mplus
            # convention's metric model keeps the later occasion's residual variances at 1,
            # the scalar model frees them): lavaan prints p = 1, here the p is undefined
            assert lrt["pvalue"] == 1 and not np.isfinite(row["delta_pvalue"])
        elif lrt["pvalue"] is not None:
            assert close(row["delta_pvalue"], lrt["pvalue"], SE_TOL)
        assert row["difference_test"] == "Satorra 2000 scaled difference"


@pytest.mark.parametrize("case", CASES)
def test_parameterization_matches_measeq(case):
    """Each step's model is semTools' model: the same free / fixed rows with the same fixed
    values (thresholds, intercepts, scales or residual variances, latent means and
    variances) and the same estimates."""
    seq, ref = sequence_of(case), load(case)
    for st in ref["steps"]:
        fit = seq.fits[st["level"]]
        pt = fit.partable
        labels = fit.group_labels if fit.n_groups > 1 else [""]
        where = {}
        for k, (lhs, op, rhs, g) in enumerate(zip(pt["lhs"], pt["op"], pt["rhs"], pt["group"])):
            if g >= 1:
                where[(lhs, op, rhs, str(labels[g - 1]))] = k
        values = fit.values
        for p in st["partable"]:
            key = (p["lhs"], p["op"], p["rhs"] or "", p["group"])
            k = where.get(key, where.get((p["rhs"], p["op"], p["lhs"], p["group"])))
            assert k is not None, key
            # lavaan lists the delta residual variances / theta scales as fixed rows too
            assert bool(pt["free"].iat[k] > 0) == bool(p["free"]), (st["level"], key)
            assert close(values[k], p["est"], EST_TOL), (st["level"], key, values[k], p["est"])


def test_wu_estabrook_anchor():
    """measEq.syntax(ID.cat = "Wu", theta, thresholds equal) on datCat: chisq 32.525 on 54
    df, scaled-shifted 55.521 (the anchor of the research notes)."""
    row = sequence_of("inv_ord_datcat_wu_theta").table.loc["thresholds"]
    assert round(row["chisq"], 3) == 32.525 and row["df"] == 54
    assert round(row["chisq_scaled"], 3) == 55.521
    assert row["delta_df"] == 16  # 8 items x (4 thresholds - intercept - scale)


def test_score_tests_match_lavtestscore():
    """lavTestScore on the Wu (delta) scalar model of datCat: univariate tests of every
    equality constraint (thresholds, loadings) and the total test; the modification indices
    of the intercepts fixed to 0 (release_tests with the intercept freed)."""
    ref = load("inv_ord_datcat_wu_delta")
    fit = sequence_of("inv_ord_datcat_wu_delta").fits["scalar"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = score_tests(fit)
    assert abs(st.attrs["total"]["X2"] - ref["score"]["total"]["X2"]) < 1e-4
    assert st.attrs["total"]["df"] == ref["score"]["total"]["df"] == len(ref["score"]["uni"])
    for u in ref["score"]["uni"]:
        b = u["rhs_param"]
        sel = st[(st["lhs"] == b["lhs"]) & (st["op"] == b["op"]) & (st["rhs"] == b["rhs"])
                 & (st["group"] == b["group"])]
        assert len(sel) == 1
        assert abs(sel["X2"].iloc[0] - u["X2"]) < 1e-4 * max(1, u["X2"])
    pt = fit.partable
    rows = []
    for mi in ref["modindices_intercepts"]:
        g = fit.group_labels.index(mi["group"]) + 1
        rows.append(int(pt.index[(pt["lhs"] == mi["lhs"]) & (pt["op"] == "~1")
                                 & (pt["group"] == g)][0]))
    t = release_tests(fit, [[r] for r in rows], free=[[r] for r in rows])
    np.testing.assert_allclose(t["X2"], [m["mi"] for m in ref["modindices_intercepts"]],
                               rtol=1e-4, atol=1e-6)
    assert (t["df"] == 1).all()


# ----------------------------------------------------------------------------- simulation
def _simulate(seed=7, n=500, bad_item=2, bad=(-1.0, 1.2, 1.6)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def one(mean, shifted):
        eta = rng.normal(mean, 1.0, n)
        lam = np.array([0.8, 0.7, 0.75, 0.65, 0.7, 0.8])
        ys = eta[:, None] * lam + rng.normal(0, 1, (n, 6)) * np.sqrt(1 - lam ** 2)
        th = np.tile([-1.0, 0.0, 1.0], (6, 1))
        if shifted:
            th[bad_item] = bad
        return pd.DataFrame({f"y{j + 1}": (ys[:, j][:, None] > th[j]).sum(1) + 1
                             for j in range(6)})

    return pd.concat([one(0.0, False).assign(g="A"), one(0.3, True).assign(g="B")],
                     ignore_index=True)


SIM_MODEL = "F =~ y1 + y2 + y3 + y4 + y5 + y6"
_SIM: dict = {}


def sim_sequence() -> inv.InvarianceSequence:
    if "seq" not in _SIM:
        _SIM["seq"] = inv.sequence(SIM_MODEL, _simulate(), group="g", ordered=True,
                                   rules="chisq_difference", partial=True)
    return _SIM["seq"]


def test_simulated_threshold_noninvariance_is_found():
    """One item with non-invariant thresholds in group B: the thresholds step fails, the
    partial search frees that item's thresholds (and only those) in B, the partial model
    passes and the later steps are tested on top of it."""
    seq = sim_sequence()
    t = seq.table
    assert t.loc["thresholds", "decision"] == NON_INVARIANT
    assert t.loc["thresholds", "partial_decision"] == INVARIANT
    steps = seq.partial_steps["thresholds"]
    assert len(steps) == 2
    assert steps["freed"].iloc[1] == "y3|t1, t2, t3 [B]"
    assert steps["score_df"].iloc[1] == 1  # 3 thresholds - intercept - scale (Wu & Estabrook)
    assert steps["score_pvalue"].iloc[1] < 1e-6
    assert t.loc["metric", "compared_with"] == "thresholds (partial)"
    assert t.loc["metric", "decision"] == INVARIANT and t.loc["scalar", "decision"] == INVARIANT
    # the freed item is configural in B: intercept 0 and scale 1 there (identification)
    ident = seq.identification
    assert ident.loc["metric", "released"] == "y3|t1, t2, t3 [B]"
    est = seq.fits["scalar"].estimates()
    sel = est[(est["lhs"] == "y3") & (est["group"] == "B")]
    assert sel[sel["op"] == "~1"]["est"].iloc[0] == 0.0
    assert sel[sel["op"] == "~*~"]["est"].iloc[0] == 1.0


def test_partial_latent_mean_difference_with_se():
    """Latent mean difference in the partial scalar model: five invariant items (the freed
    one is not counted), the estimate and SE are those of the group-B mean (group A's is 0)."""
    seq = sim_sequence()
    ld = seq.latent_differences("scalar")
    r = ld.iloc[0]
    assert r["n_invariant"] == 5
    fit = seq.final_fit("scalar")
    est = fit.estimates()
    alpha = est[(est["lhs"] == "F") & (est["op"] == "~1") & (est["group"] == "B")].iloc[0]
    assert abs(r["mean_diff"] - alpha["est"]) < 1e-10
    assert abs(r["mean_diff_se"] - alpha["se"]) < 1e-6
    assert 0.1 < r["mean_diff"] < 0.5  # simulated 0.3


def test_ordinal_dmacs_matches_numerical_integration():
    """dMACS of the non-invariant item from the graded probit expected score, evaluated here
    independently: E[X | xi] = 1 + sum_k P(y* > tau_k | xi), integrated with scipy.quad over
    the focal group's N(alpha, psi); pooled SD from the observed scores."""
    seq = sim_sequence()
    dm = seq.dmacs("scalar")
    assert list(dm["item"]) == ["y3"]
    r = dm.iloc[0]
    assert r["ordinal"] and not r["thresholds_invariant"]
    fit = seq.final_fit("scalar")
    est = fit.estimates()

    def par(lhs, op, rhs, g):
        sel = est[(est["lhs"] == lhs) & (est["op"] == op) & (est["rhs"] == rhs)
                  & (est["group"] == g)]
        return float(sel["est"].iloc[0])

    pars = {g: (par("F", "=~", "y3", g), par("y3", "~1", "", g), par("y3", "~~", "y3", g),
                [par("y3", "|", f"t{k}", g) for k in (1, 2, 3)]) for g in ("A", "B")}

    def escore(xi, g):
        lam, nu, theta, taus = pars[g]
        return 1.0 + sum(scipy.stats.norm.cdf((nu + lam * xi - t) / math.sqrt(theta))
                         for t in taus)

    mu, psi = par("F", "~1", "", "B"), par("F", "~~", "F", "B")
    dens = scipy.stats.norm(mu, math.sqrt(psi)).pdf
    sq, _ = scipy.integrate.quad(lambda x: (escore(x, "A") - escore(x, "B")) ** 2 * dens(x),
                                 -np.inf, np.inf)
    lin, _ = scipy.integrate.quad(lambda x: (escore(x, "A") - escore(x, "B")) * dens(x),
                                  -np.inf, np.inf)
    data = seq.data
    a = data.loc[data["g"] == "A", "y3"].to_numpy(float)
    b = data.loc[data["g"] == "B", "y3"].to_numpy(float)
    sd = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                   / (len(a) + len(b) - 2))
    assert abs(r["sd_pooled"] - sd) < 1e-12
    assert abs(r["dmacs"] - math.sqrt(sq) / sd) < 1e-7
    assert abs(r["dmacs_signed"] - lin / sd) < 1e-7
    assert r["dmacs_signed"] > 0  # higher thresholds in B: lower expected scores there (A - B)
    # the items with equal thresholds, loading and intercept differ only by the residual
    # variance of their latent response (no strict invariance: the scales are free in B)
    full = seq.dmacs("scalar", all_items=True)
    others = full[full["item"] != "y3"]
    assert len(others) == 5 and (others["dmacs"] < 0.05).all()
    assert (others["thresholds_invariant"] & others["loading_invariant"]).all()


def test_candidates_respect_identification():
    """The partial search never frees what cannot be tested: the thresholds of a 3-category
    item under Wu & Estabrook (they trade against its intercept and scale: 0 df) are no
    candidate; those of 4-category items are (1 df); Millsap & Tein's identification
    thresholds and LISREL's thresholds never are."""
    seq = sequence_of("inv_ord_hs_wu_delta")
    fit = seq.fits["thresholds"]
    cands = seq._candidates(fit, frozenset({"thresholds"}), [], True, "thresholds")
    items = {c[1][0][0]: c[2] for c in cands}
    assert set(items) == {"x1", "x3", "x5", "x8"}  # the 4-category items
    assert set(items.values()) == {1}
    mill = sequence_of("inv_ord_datcat_millsap_theta")
    cands = mill._candidates(mill.fits["scalar"], frozenset({"thresholds", "intercepts"}), [],
                             True, "scalar")
    freed = {(k[0], k[2]) for c in cands for k in c[1]}
    assert not any(t == "t1" for _, t in freed)               # id_thr[0] of every item
    assert ("u1", "t2") not in freed and ("u2", "t2") in freed  # id_thr[1] of the markers
    lis = sequence_of("inv_ord_datcat_lisrel_theta")
    cands = lis._candidates(lis.fits["scalar"], frozenset({"thresholds", "intercepts"}), [],
                            True, "scalar")
    assert not any(k[1] == "|" for c in cands for k in c[1])


# ----------------------------------------------------------------------------- identification
def test_identification_table():
    """seq.identification says what each level constrained and what it freed / fixed for
    identification (Wu & Estabrook: equal thresholds free the later group's intercepts and
    scales; equal intercepts fix them back and free the latent means)."""
    ident = sequence_of("inv_ord_datcat_wu_delta").identification
    assert list(ident.index) == ["configural", "thresholds", "metric", "scalar"]
    assert ident.loc["thresholds", "constrained"] == "thresholds"
    assert "intercepts: u1, ..., u8 (8) [female]" in ident.loc["thresholds", "freed"]
    assert "scale factors: u1, ..., u8 (8) [female]" in ident.loc["thresholds", "freed"]
    assert ident.loc["metric", "freed"] == "latent variances: FU1, FU2 [female]"
    assert ident.loc["scalar", "freed"] == "latent means: FU1, FU2 [female]"
    assert ident.loc["scalar", "fixed"] == "intercepts = 0: u1, ..., u8 (8) [female]"
    assert list(ident["npar"]) == [82, 66, 60, 54]
    det = sequence_of("inv_ord_datcat_wu_delta").identification_detail()
    th = det[det["level"] == "thresholds"]
    assert set(th["change"]) == {"freed"} and set(th["group"]) == {"female"}
    assert set(th["op"]) == {"~1", "~*~"}
    lis = sequence_of("inv_ord_datcat_lisrel_theta").identification
    assert lis.loc["configural", "constrained"] == "thresholds"
    assert "thresholds = 0: u1|t1" in lis.loc["configural", "fixed"]
    mp = sequence_of("inv_ord_datcat_mplus_theta").identification
    # Mplus: equal loadings and thresholds imply equal intercepts
    assert mp.loc["scalar", "constrained"] == "intercepts, thresholds"


def test_summary_and_table_layout():
    seq = sequence_of("inv_ord_datcat_wu_delta")
    text = seq.summary()
    assert "id_cat wu_estabrook2016" in text and "WLSMV" in text
    assert "_robust_wls" in text
    assert seq.table.attrs["fit_index"] == "robust_wls"
    for col in ("chisq_scaled", "cfi_scaled", "cfi_robust", "cfi_robust_wls", "srmr"):
        assert col in seq.table.columns


def test_fit_index_choice():
    """Decisions on lavaan's catML robust indices are undetermined once thresholds are
    constrained (NaN); on the scaled indices they are made."""
    d = pd.read_csv(ROOT / "tests/reference/data/cat_datcat.csv")
    rob = inv.sequence(DATCAT, d, group="g", ordered=True, fit_index="robust",
                       levels=["configural", "thresholds"])
    assert not np.isfinite(rob.table.loc["thresholds", "delta_cfi"])
    assert rob.table.loc["thresholds", "decision"] == "undetermined"
    sc = inv.sequence(DATCAT, d, group="g", ordered=True, fit_index="scaled",
                      levels=["configural", "thresholds"])
    row = sc.table.loc["thresholds"]
    assert abs(row["delta_cfi"] - (row["cfi_scaled"] - sc.table.loc["configural",
                                                                     "cfi_scaled"])) < 1e-12
    with pytest.raises(inv.InvarianceError, match="fit_index"):
        inv.sequence(DATCAT, d, group="g", ordered=True, fit_index="best")


# ----------------------------------------------------------------------------- categories
def test_empty_category_stops_before_fitting_and_collapse_fixes_it():
    d = pd.read_csv(ROOT / "tests/reference/data/cat_datcat.csv")
    bad = d.copy()
    bad.loc[(bad["g"] == "female") & (bad["u3"] == 1), "u3"] = 2
    freq = inv.category_frequencies(bad, ["u3"], group="g")
    assert freq["empty"].sum() == 1
    r = freq[freq["empty"]].iloc[0]
    assert (r["item"], r["group"], r["category"]) == ("u3", "female", 1.0)
    with pytest.raises(CategoricalDataError, match=r"u3 category 1 in group 'female'"):
        inv.sequence(DATCAT, bad, group="g", ordered=True)
    seq = inv.sequence(DATCAT, bad, group="g", ordered=True, collapse="empty",
                       levels=["configural", "thresholds"])
    assert seq.collapsed == {"u3": {1.0: 2.0}}
    assert seq.spec.ordered["u3"] == 3 and seq.spec.ordered["u1"] == 4
    assert not seq.categories["empty"].any()
    assert seq.fits["configural"].options["collapsed_categories"] == {"u3": {1.0: 2.0}}
    assert "categories collapsed: u3: 1->2" in seq.summary()
    assert "u3" not in bad.attrs.get("collapsed_categories", {})  # the input is untouched
    assert (bad["u3"] == 1).sum() > 0


def test_collapse_is_the_same_at_every_occasion():
    """An item whose categories differ between occasions cannot have equal thresholds; the
    collapse merges the same categories of the item at both occasions (and in all groups)."""
    hs = pd.read_csv(ROOT / "tests/reference/data/cat_hs_cut.csv")
    model = "T1 =~ x1 + x2 + x4\nT2 =~ x3 + x6 + x9"
    odd = hs.copy()
    odd["x3"] = odd["x3"].clip(upper=3)  # x3: 3 categories, x1 (same item at T1): 4
    with pytest.raises(CategoricalDataError, match="x3 category 4"):
        inv.longitudinal(model, odd, {"T": ["T1", "T2"]}, ordered=True)
    seq = inv.longitudinal(model, odd, {"T": ["T1", "T2"]}, ordered=True, collapse="empty",
                           levels=["configural", "thresholds"])
    assert seq.collapsed == {"x1": {4.0: 3.0}}
    assert seq.spec.ordered["x1"] == seq.spec.ordered["x3"] == 2
    out = inv.collapse_categories(hs, ["x1", "x3"], 30, group="school",
                                  chains=[["x1", "x3"]])
    m = out.attrs["collapsed_categories"]
    assert m.get("x1") == m.get("x3")  # one mapping for the chain
    assert out["x1"].nunique() == out["x3"].nunique()


# ----------------------------------------------------------------------------- errors
def test_errors_are_clear():
    d = pd.read_csv(ROOT / "tests/reference/data/cat_datcat.csv")
    with pytest.raises(inv.InvarianceError, match="parameterization='theta'"):
        inv.sequence(DATCAT, d, group="g", ordered=True,
                     levels=["configural", "thresholds", "metric", "scalar", "strict"])
    with pytest.raises(inv.InvarianceError, match="needs parameterization='theta'"):
        inv.sequence(DATCAT, d, group="g", ordered=True, id_cat="lisrel")
    with pytest.raises(inv.InvarianceError, match="no 'thresholds' level"):
        inv.sequence(DATCAT, d, group="g", ordered=True, id_cat="lisrel",
                     parameterization="theta", levels=["configural", "thresholds"])
    with pytest.raises(inv.InvarianceError, match="needs ordered indicators"):
        inv.sequence(DATCAT, d, group="g", levels=["configural", "thresholds"])
    with pytest.raises(inv.InvarianceError, match="identification='std.lv'"):
        inv.sequence(DATCAT, d, group="g", ordered=True, identification="marker")
    with pytest.raises(inv.InvarianceError, match="unknown id_cat"):
        inv.sequence(DATCAT, d, group="g", ordered=True, id_cat="wu2015")
    with pytest.raises(inv.InvarianceError, match="give ordered="):
        inv.sequence(DATCAT, d, group="g", collapse="empty")
    with pytest.raises(inv.InvarianceError, match="cannot be passed"):
        inv.sequence(DATCAT, d, group="g", ordered=True, std_lv=True)
    with pytest.warns(UserWarning, match="thresholds before the loadings"):
        inv.sequence(DATCAT, d, group="g", ordered=True, levels=["configural", "metric"])


def test_model_syntax_ordinal():
    syn = inv.model_syntax(DATCAT, "thresholds", n_groups=2,
                           ordered={f"u{i}": 4 for i in range(1, 9)})
    assert "u1 | c(NA, NA)*t1 + c(tau1.FU1.1, tau1.FU1.1)*t1" in syn
    assert "u1 ~ c(0, NA)*1 + c(nu.FU1.1.g1, nu.FU1.1.g2)*1" in syn
    assert "u1 ~*~ c(1, NA)*u1" in syn


def test_binary_items_follow_wu_estabrook():
    """Binary items: the equal threshold only frees the item's intercept in the other group,
    so the thresholds step adds no degree of freedom (the same fit as configural, as lavaan),
    and no threshold or intercept of a binary item is a partial-invariance candidate."""
    seq = sequence_of("inv_ord_binary_wu_delta")
    t = seq.table
    assert t.loc["thresholds", "df"] == t.loc["configural", "df"]
    assert abs(t.loc["thresholds", "chisq"] - t.loc["configural", "chisq"]) < 1e-6
    assert t.loc["thresholds", "delta_df"] == 0
    assert t.loc["thresholds", "decision"] == "undetermined"  # no difference test on 0 df
    assert seq._candidates(seq.fits["thresholds"], frozenset({"thresholds"}), [], True,
                           "thresholds") == []
    ident = seq.identification
    assert ident.loc["thresholds", "freed"] == \
        "intercepts: b1, ..., b6 (6) [Grant-White]"  # no scale freed: one threshold only
