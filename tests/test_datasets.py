"""Tests of sem_models.datasets: bundled CSVs and the alliance-study generator."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from sem_models import datasets as ds

ITEMS = ds.alliance_item_columns()
POSITIVE = [c for c in ITEMS if c[-1] in "135"]
NEGATIVE = [c for c in ITEMS if c[-1] in "246"]


# ------------------------------------------------------------------------------------------
# load()
# ------------------------------------------------------------------------------------------

def test_load_bundled_datasets():
    hs = ds.load("HolzingerSwineford1939")
    assert hs.shape == (301, 15)
    assert list(hs.columns) == ["id", "sex", "ageyr", "agemo", "school", "grade"] + [
        f"x{k}" for k in range(1, 10)]
    assert pd.api.types.is_string_dtype(hs["school"])
    assert set(hs["school"]) == {"Pasteur", "Grant-White"}
    assert hs["grade"].isna().sum() == 1
    pdm = ds.load("PoliticalDemocracy")
    assert pdm.shape == (75, 11)
    assert list(pdm.columns) == [f"y{k}" for k in range(1, 9)] + ["x1", "x2", "x3"]
    al = ds.load("alliance")
    assert al.shape == (360, 59)
    two = ds.load("Demo.twolevel")
    assert two.shape == (2500, 12) and two["cluster"].nunique() == 200
    growth = ds.load("Demo.growth")
    assert growth.shape == (400, 10)
    assert list(growth.columns[:4]) == ["t1", "t2", "t3", "t4"]


def test_load_returns_a_fresh_frame():
    a = ds.load("HolzingerSwineford1939")
    a.loc[0, "x1"] = -999.0
    a["new"] = 1
    b = ds.load("HolzingerSwineford1939")
    assert b.loc[0, "x1"] != -999.0 and "new" not in b.columns


def test_load_unknown_name_lists_available():
    with pytest.raises(ValueError) as err:
        ds.load("holzinger")
    msg = str(err.value)
    for name in ("HolzingerSwineford1939", "PoliticalDemocracy", "alliance"):
        assert name in msg
    assert ds.available() == ["HolzingerSwineford1939", "PoliticalDemocracy", "alliance",
                             "Demo.twolevel", "Demo.growth"]


def test_bundled_alliance_is_the_documented_call():
    pd.testing.assert_frame_equal(ds.load("alliance"), ds.simulate_alliance(seed=20240126))
    assert ds.ALLIANCE_SEED == 20240126


# ------------------------------------------------------------------------------------------
# simulate_alliance(): design
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return ds.simulate_alliance(seed=11)


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    """20000 children, complete, unclustered, 4-point items."""
    return ds.simulate_alliance(seed=5, n=20000, missing=False, clustering=False)


@pytest.fixture(scope="module")
def large_missing() -> pd.DataFrame:
    return ds.simulate_alliance(seed=7, n=20000, clustering=False)


def test_reproducible_from_seed():
    a = ds.simulate_alliance(seed=123)
    b = ds.simulate_alliance(seed=123)
    pd.testing.assert_frame_equal(a, b)
    c = ds.simulate_alliance(seed=124)
    assert not a[ITEMS].equals(c[ITEMS])


def test_shape_and_columns(study):
    assert study.shape == (360, 9 + 48 + 2)
    assert list(study.columns[:9]) == ["child_id", "school", "format", "therapy_group",
                                       "therapist", "age", "sex", "ext_pre", "int_pre"]
    assert list(study.columns[9:57]) == ITEMS
    assert ITEMS[:7] == ["c_mid_bond1", "c_mid_bond2", "c_mid_bond3", "c_mid_bond4",
                         "c_mid_bond5", "c_mid_bond6", "c_mid_task1"]
    assert list(study.columns[57:]) == ["ext_fu", "int_fu"]
    assert study["child_id"].tolist() == list(range(1, 361))
    assert len(ds.simulate_alliance(seed=1, n=1000)) == 1000
    assert len(ds.simulate_alliance(seed=1, n_schools=10, children_per_school=12)) == 120


def test_schools_formats_groups_therapists(study):
    per_school = study.groupby("school")
    assert study["school"].nunique() == 20
    assert (per_school.size() == 18).all()
    assert (per_school["format"].nunique() == 1).all()
    assert per_school["format"].first().value_counts().to_dict() == {"group": 10,
                                                                     "individual": 10}
    grp = study[study["format"] == "group"]
    ind = study[study["format"] == "individual"]
    assert ind["therapy_group"].isna().all() and grp["therapy_group"].notna().all()
    sizes = grp.groupby("therapy_group").size()
    assert sizes.between(4, 7).all()
    # nesting: a therapy group lies in one school and has one therapist; therapists in one school
    assert (grp.groupby("therapy_group")["school"].nunique() == 1).all()
    assert (grp.groupby("therapy_group")["therapist"].nunique() == 1).all()
    assert (study.groupby("therapist")["school"].nunique() == 1).all()
    assert (ind.groupby("school")["therapist"].nunique().between(2, 3)).all()
    # randomization differs between seeds
    other = ds.simulate_alliance(seed=12)
    assert not study.groupby("school")["format"].first().equals(
        other.groupby("school")["format"].first())


def test_value_ranges(study):
    vals = study[ITEMS].stack().dropna()
    assert set(vals.unique()) <= {1.0, 2.0, 3.0, 4.0}
    assert set(study["age"]) <= {9, 10, 11}
    assert set(study["sex"]) == {"boy", "girl"}
    for col in ("ext_pre", "int_pre", "ext_fu", "int_fu"):
        x = study[col].dropna()
        assert (x == np.round(x)).all() and x.between(20, 110).all()
    assert 60 <= study["ext_pre"].mean() <= 68  # aggressive sample
    assert study["ext_fu"].mean() < study["ext_pre"].mean()


def test_reverse_keyed_items_and_skew(large):
    # raw negatively worded items run against the positively worded ones
    r = large[["c_mid_bond1", "c_mid_bond2", "t_end_task5", "t_end_task6"]].corr()
    assert r.loc["c_mid_bond1", "c_mid_bond2"] < -0.2
    assert r.loc["t_end_task5", "t_end_task6"] < -0.2
    keyed = large[ITEMS].copy()
    keyed[NEGATIVE] = 5 - keyed[NEGATIVE]
    assert (keyed.mean() > 2.9).all()  # skewed to the top after reversing
    assert (keyed.mode().iloc[0] == 4).all()
    assert (large[NEGATIVE].mode().iloc[0] == 1).all()
    skew = keyed.skew()
    assert (skew < 0).all()


def test_child_therapist_gap_and_agreement(large):
    keyed = large[ITEMS].copy()
    keyed[NEGATIVE] = 5 - keyed[NEGATIVE]
    for occ in ("mid", "end"):
        for dim in ("bond", "task"):
            c = keyed[[f"c_{occ}_{dim}{k}" for k in range(1, 7)]].mean(axis=1)
            t = keyed[[f"t_{occ}_{dim}{k}" for k in range(1, 7)]].mean(axis=1)
            d = (c.mean() - t.mean()) / np.sqrt((c.var() + t.var()) / 2)
            assert 0.25 < d < 0.45, (occ, dim, d)
            assert 0.05 < np.corrcoef(c, t)[0, 1] < 0.25  # modest observed agreement


def _latent_r(df: pd.DataFrame, dim: str) -> float:
    """Trait correlation child-therapist from cross-occasion covariances (items 1 and 3)."""
    def comp(i, o):
        return df[[f"{i}_{o}_{dim}1", f"{i}_{o}_{dim}3"]].mean(axis=1)

    def cov(a, b):
        return np.cov(a, b)[0, 1]

    cross = (cov(comp("c", "mid"), comp("t", "end")) + cov(comp("c", "end"), comp("t", "mid"))) / 2
    return cross / np.sqrt(cov(comp("c", "mid"), comp("c", "end"))
                           * cov(comp("t", "mid"), comp("t", "end")))


def test_informant_trait_correlation_about_point_three(large):
    cont = ds.simulate_alliance(seed=5, n=20000, missing=False, clustering=False,
                                continuous=True)
    for dim in ("bond", "task"):
        assert _latent_r(cont, dim) == pytest.approx(0.30, abs=0.03)
        assert _latent_r(large, dim) == pytest.approx(0.30, abs=0.05)  # 4-point items


def test_state_and_trait_variance(large):
    """Same-occasion correlations exceed cross-occasion ones (occasion-specific variance)."""
    keyed = large[ITEMS].copy()
    keyed[NEGATIVE] = 5 - keyed[NEGATIVE]
    mid1 = keyed[["c_mid_bond1", "c_mid_bond3"]].mean(axis=1)
    mid2 = keyed[["c_mid_bond5"]].mean(axis=1)
    end1 = keyed[["c_end_bond1", "c_end_bond3"]].mean(axis=1)
    assert np.corrcoef(mid1, mid2)[0, 1] > np.corrcoef(mid2, end1)[0, 1] + 0.05
    assert np.corrcoef(mid2, end1)[0, 1] > 0.2  # and a stable trait


def test_wording_factor_on_child_negative_items():
    cont = ds.simulate_alliance(seed=8, n=20000, missing=False, clustering=False,
                                continuous=True)
    r = cont[ITEMS].corr()

    def excess(i):  # negative bond-task pair minus a positive pair
        return r.loc[f"{i}_mid_bond2", f"{i}_mid_task4"] - r.loc[f"{i}_mid_bond3",
                                                                f"{i}_mid_task5"]
    # population: child +0.085, therapist -0.046 (the wording factor adds 0.45^2 for children)
    assert excess("c") - excess("t") > 0.08


def test_non_invariant_items_and_finding_one():
    cont = ds.simulate_alliance(seed=9, n=40000, missing=False, clustering=False,
                                continuous=True)
    g = cont["format"] == "group"
    truth = ds.ALLIANCE_TRUTH
    shift = truth["traits"]["means"]["individual"]["c_task"] - \
        truth["traits"]["means"]["group"]["c_task"]
    assert shift == pytest.approx(0.3 * np.sqrt(0.6))
    diff = cont.loc[~g].mean(numeric_only=True) - cont.loc[g].mean(numeric_only=True)
    # marker item of child task: lambda * latent difference
    assert diff["c_mid_task1"] == pytest.approx(0.80 * shift, abs=0.03)
    # item 3: lambda * shift - 0.5 (intercept higher in the group format)
    assert diff["c_mid_task3"] == pytest.approx(0.75 * shift - 0.5, abs=0.03)
    assert abs(diff["c_mid_bond1"]) < 0.03 and abs(diff["t_mid_task1"]) < 0.03
    # therapist bond 5: weaker loading in the group format
    r_g = cont.loc[g, ["t_mid_bond1", "t_mid_bond5"]].corr().iloc[0, 1]
    r_i = cont.loc[~g, ["t_mid_bond1", "t_mid_bond5"]].corr().iloc[0, 1]
    assert r_i - r_g > 0.1  # population: 0.59 vs 0.46


def test_outcome_effects_in_large_continuous_sample():
    """OLS on the true-ish trait composites has the planted signs."""
    cont = ds.simulate_alliance(seed=10, n=40000, missing=False, clustering=False,
                                continuous=True)
    X = pd.DataFrame({f"{i}_{d}": cont[[f"{i}_{o}_{d}{k}" for o in ("mid", "end")
                                         for k in (1, 3, 5)]].mean(axis=1)
                      for i in "ct" for d in ("bond", "task")})
    ind = cont["format"] == "individual"
    for y, pre, neg in (("ext_fu", "ext_pre", ["t_bond", "t_task"]),
                        ("int_fu", "int_pre", ["c_task", "t_task", "t_bond"])):
        A = np.column_stack([np.ones(ind.sum()), cont.loc[ind, pre], X.loc[ind]])
        beta = np.linalg.lstsq(A, cont.loc[ind, y], rcond=None)[0]
        coef = dict(zip(["1", pre] + list(X.columns), beta))
        for k in neg:
            assert coef[k] < -0.5, (y, k, coef)
    # finding 3: in the group format child bond lowers and therapist bond raises int_fu
    g = ~ind
    A = np.column_stack([np.ones(g.sum()), cont.loc[g, "int_pre"], X.loc[g]])
    coef = dict(zip(["1", "int_pre"] + list(X.columns),
                    np.linalg.lstsq(A, cont.loc[g, "int_fu"], rcond=None)[0]))
    assert coef["c_bond"] < -1.0 and coef["t_bond"] > 0.5


# ------------------------------------------------------------------------------------------
# missingness and clustering
# ------------------------------------------------------------------------------------------

def test_missingness_proportions(large_missing):
    df = large_missing
    c_end = df[[c for c in ITEMS if c.startswith("c_end_")]].isna().all(axis=1)
    t_end = df[[c for c in ITEMS if c.startswith("t_end_")]].isna().all(axis=1)
    fu = df["ext_fu"].isna()
    assert c_end.mean() == pytest.approx(0.18, abs=0.015)
    assert t_end.mean() == pytest.approx(0.10, abs=0.015)
    assert fu.mean() == pytest.approx(0.15, abs=0.015)
    assert c_end.mean() > t_end.mean()  # more missing for children
    assert (df["ext_fu"].isna() == df["int_fu"].isna()).all()
    # blocks: apart from the 1% sporadic item missingness, child end items go missing together
    child_end = df[[c for c in ITEMS if c.startswith("c_end_")]]
    partial = child_end.isna().sum(axis=1).between(1, 11)
    assert child_end.loc[partial].isna().sum(axis=1).max() <= 3
    # sporadic item missingness at mid about 1%; baseline complete
    assert df[[c for c in ITEMS if "_mid_" in c]].isna().mean().mean() == pytest.approx(
        0.01, abs=0.003)
    assert df[["ext_pre", "int_pre", "school", "format", "therapist"]].notna().all().all()


def test_missingness_is_mar_given_baseline(large_missing):
    df = large_missing
    high = df["ext_pre"] > df["ext_pre"].median()
    for col in ("c_end_bond1", "t_end_bond1", "ext_fu"):
        assert df.loc[high, col].isna().mean() > df.loc[~high, col].isna().mean() + 0.03


def test_missing_false_gives_complete_data(large):
    assert large.drop(columns="therapy_group").notna().all().all()


def _icc(df: pd.DataFrame, col: str, cluster: str = "school") -> float:
    """One-way ANOVA intra-class correlation."""
    x = df[[cluster, col]].dropna()
    g = x.groupby(cluster)[col]
    k = g.size().mean()
    msb = (g.size() * (g.mean() - x[col].mean()) ** 2).sum() / (g.ngroups - 1)
    msw = ((x[col] - g.transform("mean")) ** 2).sum() / (len(x) - g.ngroups)
    return (msb - msw) / (msb + (k - 1) * msw)


def test_clustering_present_and_switchable():
    kw = dict(seed=21, n_schools=60, children_per_school=30, missing=False)
    clustered = ds.simulate_alliance(clustering=True, **kw)
    flat = ds.simulate_alliance(clustering=False, **kw)
    for col in ("ext_pre", "int_pre", "ext_fu"):
        assert _icc(clustered, col) > 0.04, col
        assert abs(_icc(flat, col)) < 0.03, col
    # marginal variance unchanged by clustering=False
    assert clustered["ext_pre"].std() == pytest.approx(8.0, rel=0.08)
    assert flat["ext_pre"].std() == pytest.approx(8.0, rel=0.08)


# ------------------------------------------------------------------------------------------
# truth
# ------------------------------------------------------------------------------------------

def test_truth_is_returned_and_consistent(study):
    df, truth = ds.simulate_alliance(seed=11, return_truth=True)
    pd.testing.assert_frame_equal(df, study)
    assert truth["traits"] == ds.ALLIANCE_TRUTH["traits"]
    assert truth is not ds.ALLIANCE_TRUTH
    assert study.attrs["simulate_alliance"]["seed"] == 11
    der = truth["derived"]
    for v in der["lst_coefficients"].values():
        assert v["reliability"] == pytest.approx(
            v["consistency"] + v["occasion_specificity"] + v["method_specificity"])
    assert der["finding1_latent_mean_difference"] == pytest.approx(0.3)
    assert der["lst_coefficients"]["c_mid_bond1"]["consistency"] == pytest.approx(
        0.8 ** 2 * 0.6 / 1.0)
    lcm = der["int_fu_bond_congruence_per_unit"]
    assert lcm["group"]["D"] - lcm["individual"]["D"] == pytest.approx(3.0)
    # the discrepancy is centred at its population mean
    means = ds.ALLIANCE_TRUTH["traits"]["means"]
    for fmt in ("group", "individual"):
        assert means[fmt]["t_bond"] - means[fmt]["c_bond"] == pytest.approx(
            ds.ALLIANCE_TRUTH["outcomes"]["int_fu"]["discrepancy"]["centre"])
    assert ds.ALLIANCE_TRUTH["derived"]["sd_bond_discrepancy"] == pytest.approx(0.9545, abs=1e-4)


def test_truth_can_be_modified():
    truth = copy.deepcopy(ds.ALLIANCE_TRUTH)
    truth["design"]["reverse_keyed"] = []
    truth["missingness"]["item"]["rate"] = 0.0
    df, used = ds.simulate_alliance(seed=3, truth=truth, return_truth=True)
    keyed = df[ITEMS]
    assert (keyed.mean() > 2.9).all()  # nothing reversed any more
    assert used["design"]["reverse_keyed"] == []
    assert df.attrs["simulate_alliance"]["truth"] == "custom"
    assert ds.ALLIANCE_TRUTH["design"]["reverse_keyed"] == [2, 4, 6]  # default untouched


def test_too_few_children_for_therapy_groups():
    with pytest.raises(ValueError, match="therapy groups of 4-7"):
        ds.simulate_alliance(seed=1, n_schools=4, children_per_school=3)
