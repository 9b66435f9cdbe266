"""Ordinal sample statistics (issue 14: Muthen 1984 stages 1-3) against lavaan 0.6-14.

References: tests/reference/cases_categorical_stats.R -> tests/reference/json/cat_*.json
(lavCor and lavInspect(fit, "sampstat" / "gamma" / "wls.obs" / "wls.v") of WLSMV and WLS
fits), data in tests/reference/data/cat_*.csv.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy.special import ndtr, owens_t
from scipy.stats import multivariate_normal, norm

from sem_models.estimation.categorical import (CategoricalDataError, CategoricalStats,
                                               categorical_stats, categorical_stats_frame,
                                               collapse_categories, polychoric, wls_weight)
from sem_models.estimation.categorical_bvn import pbinorm
from sem_models.estimation.data import DataError

HERE = Path(__file__).parent
REF = HERE / "reference" / "json"
ROOT = HERE.parent

TH_TOL = 1e-6      # thresholds, correlations (absolute)
SLOPE_TOL = 1e-5
GAMMA_RTOL = 1e-4
GAMMA_ATOL = 1e-6

FIT_CASES = ["cat_hs_cut", "cat_hs_cut_groups", "cat_datcat", "cat_mixed", "cat_condx",
             "cat_condx_mixed", "cat_condx_groups", "cat_pairwise", "cat_mixed_pairwise",
             "cat_condx_pairwise", "cat_listwise_na"]
WLS_CASES = ["cat_hs_cut", "cat_hs_cut_groups", "cat_datcat", "cat_mixed", "cat_condx",
             "cat_condx_mixed", "cat_pairwise", "cat_mixed_pairwise"]
LAVCOR_CASES = ["cat_hs_cut", "cat_hs_cut_groups", "cat_datcat", "cat_mixed", "cat_pairwise",
                "cat_mixed_pairwise", "cat_listwise_na", "cat_binary"]


def load(case: str) -> dict:
    return json.loads((REF / f"{case}.json").read_text())


def mat(m: dict) -> pd.DataFrame:
    return pd.DataFrame(np.array(m["matrix"], float), index=m["rownames"], columns=m["colnames"])


def vec(v: dict) -> pd.Series:
    return pd.Series(np.array(v["values"], float), index=v["names"])


_CACHE: dict = {}


def stats_of(case: str) -> list:
    """Our statistics for a reference case, per group in lavaan's order."""
    if case not in _CACHE:
        ref = load(case)
        data = pd.read_csv(ROOT / ref["data"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = categorical_stats_frame(data, ref["variables"], ref["ordered"],
                                         exo=ref["exo"] or None, group=ref.get("group"),
                                         missing=ref["missing"])
        labels = list(st)
        if ref["group_labels"]:
            assert [str(g) for g in labels] == ref["group_labels"]
        _CACHE[case] = list(st.values())
    return _CACHE[case]


# ---------------------------------------------------------------------------------------
# lavCor: polychoric / polyserial / Pearson matrix and thresholds
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", LAVCOR_CASES)
def test_lavcor_matrix_and_thresholds(case):
    ref = load(case)
    data = pd.read_csv(ROOT / ref["data"])
    cols = ref["variables"] + ([ref["group"]] if ref.get("group") else [])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cor, th = polychoric(data[cols], ref["ordered"], group=ref.get("group"),
                             missing=ref["missing"])
    if not ref.get("group"):
        cor, th = {None: cor}, {None: th}
    assert len(cor) == len(ref["lavcor"]["groups"])
    for (g, c), t, rg in zip(cor.items(), th.values(), ref["lavcor"]["groups"]):
        rc = mat(rg["cov"])
        sd = np.sqrt(np.diag(rc.values))
        rcor = rc / np.outer(sd, sd)                     # lavCor(output = "cor")
        assert list(c.index) == list(rc.index)
        np.testing.assert_allclose(c.values, rcor.values, rtol=0, atol=TH_TOL)
        rt = vec(rg["th"])
        assert list(t.index) == list(rt.index)
        np.testing.assert_allclose(t.values, rt.values, rtol=0, atol=TH_TOL)
    if case == "cat_binary":
        msgs = [str(x.message) for x in w]
        for pair in ("b1 x b5", "b1 x b6", "b5 x b6"):
            assert any("two empty cells" in m and pair in m for m in msgs), msgs
        assert any("(nearly) 1.0" in m for m in msgs)


def test_lavcor_nobs_listwise_warns():
    ref = load("cat_listwise_na")
    data = pd.read_csv(ROOT / ref["data"])
    with pytest.warns(UserWarning, match="deleted listwise"):
        st = categorical_stats_frame(data, ref["variables"], ref["ordered"], gamma=False)
    s = st[None]
    assert s.nobs == ref["lavcor"]["nobs"][0] == 104
    assert s.norig == len(data)


# ---------------------------------------------------------------------------------------
# sample statistics, Gamma and weights of the WLSMV / WLS fits
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", FIT_CASES)
def test_sampstat(case):
    ref = load(case)
    sts = stats_of(case)
    assert [s.nobs for s in sts] == ref["fit"]["nobs"]
    for s, rg in zip(sts, ref["fit"]["groups"]):
        rs = rg["sampstat"]
        ours = s.sampstat()
        assert set(ours) == set(rs)
        for key, val in rs.items():
            mine = ours[key]
            if "matrix" in val:
                r = mat(val)
                assert list(mine.index) == list(r.index)
                tol = SLOPE_TOL if key == "res_slopes" else TH_TOL
                np.testing.assert_allclose(mine.loc[r.index, r.columns].values, r.values,
                                           rtol=0, atol=tol, err_msg=f"{case} {key}")
            else:
                r = vec(val)
                assert list(mine.index) == list(r.index), key
                np.testing.assert_allclose(mine.values, r.values, rtol=0, atol=TH_TOL,
                                           err_msg=f"{case} {key}")


@pytest.mark.parametrize("case", FIT_CASES)
def test_gamma_and_wls_obs(case):
    ref = load(case)
    for s, rg in zip(stats_of(case), ref["fit"]["groups"]):
        rG = mat(rg["gamma"])
        assert s.wls_names == list(rG.index)
        np.testing.assert_allclose(s.gamma, rG.values, rtol=GAMMA_RTOL, atol=GAMMA_ATOL,
                                   err_msg=case)
        ro = vec(rg["wls_obs"])
        assert s.wls_names == list(ro.index)
        np.testing.assert_allclose(s.wls_obs, ro.values, rtol=0, atol=TH_TOL)
        # the blocks partition the vector in lavaan's order
        b = s.blocks
        assert b["cor"].stop == len(s.wls_obs)
        assert all(n.count("|") == 1 or n.endswith("~1") for n in s.wls_names[b["th"]])
        assert all("~~" in n for n in s.wls_names[b["cor"]])
        # DWLS weights: lavInspect(fit, "wls.v") of the WLSMV fit
        rd = vec(rg["wls_v_diag"])
        np.testing.assert_allclose(np.diag(s.wls_v("DWLS")), rd.values, rtol=GAMMA_RTOL)
        assert np.allclose(s.wls_v("DWLS"), np.diag(np.diag(s.wls_v("DWLS"))))
        np.testing.assert_array_equal(s.wls_v("ULS"), np.eye(len(s.wls_obs)))


@pytest.mark.parametrize("case", WLS_CASES)
def test_wls_weight_matrix(case):
    ref = load(case)
    for s, rg in zip(stats_of(case), ref["fit_wls"]["groups"]):
        rW = mat(rg["wls_v"]).values
        W = s.wls_v("WLS")
        np.testing.assert_allclose(W, rW, rtol=GAMMA_RTOL, atol=GAMMA_RTOL * np.abs(rW).max())
        np.testing.assert_allclose(W @ s.gamma, np.eye(len(W)), atol=1e-8)


def test_wls_weight_errors():
    with pytest.raises(ValueError, match="unknown estimator"):
        wls_weight(np.eye(2), "GLS")
    with pytest.raises(ValueError, match="positive definite"):
        wls_weight(np.array([[1.0, 2.0], [2.0, 1.0]]), "WLS")


# ---------------------------------------------------------------------------------------
# 2x2 tables (lavaan's lav_bvord rules)
# ---------------------------------------------------------------------------------------
def _table_data(table) -> np.ndarray:
    rows = []
    for (a, b), n in np.ndenumerate(np.asarray(table)):
        rows += [(a, b)] * int(n)
    return np.array(rows, float)


def naive_polychoric(table, lo=-0.999, hi=0.999) -> float:
    """Per-pair reference: bounded scalar ML with scipy's bivariate normal CDF."""
    table = np.asarray(table, float)
    n = table.sum()
    ta = np.r_[-np.inf, norm.ppf(np.cumsum(table.sum(1))[:-1] / n), np.inf]
    tb = np.r_[-np.inf, norm.ppf(np.cumsum(table.sum(0))[:-1] / n), np.inf]
    big = 40.0
    ta = np.clip(ta, -big, big)
    tb = np.clip(tb, -big, big)

    def negll(r):
        cdf = multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]])
        C = np.array([[cdf.cdf([a, b]) for b in tb] for a in ta])
        pi = C[1:, 1:] - C[:-1, 1:] - C[1:, :-1] + C[:-1, :-1]
        pi = np.maximum(pi, np.sqrt(np.finfo(float).eps))
        return -np.sum(table * np.log(pi))

    res = optimize.minimize_scalar(negll, bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-10})
    return float(res.x)


def test_2x2_one_empty_cell_adds_half_keeping_margins():
    table = np.array([[20, 0], [8, 12]])
    X = _table_data(table)
    s = categorical_stats(X, [True, True], gamma=False)
    # 0.5 added to the empty cell and the diagonal, taken from the off-diagonal cells
    expect = naive_polychoric(np.array([[19.5, 0.5], [8.5, 11.5]]))
    assert abs(s.cor[0, 1] - expect) < 1e-5
    assert abs(s.cor[0, 1] - naive_polychoric(table)) > 1e-3   # the correction matters
    assert s.zero_cell_pairs == [("y1", "y2")]


def test_2x2_closed_forms_and_two_empty_cells():
    # ad = bc -> 0
    s = categorical_stats(_table_data([[10, 10], [10, 10]]), [True, True], gamma=False)
    assert s.cor[0, 1] == 0.0
    # both margins 50/50 -> -cos(2 pi n11 / n)
    s = categorical_stats(_table_data([[14, 6], [6, 14]]), [True, True], gamma=False)
    assert s.cor[0, 1] == pytest.approx(-np.cos(2 * np.pi * 14 / 40), abs=1e-15)
    # two empty cells -> +1 / -1 with a warning naming the variables
    X = _table_data([[20, 0], [0, 13]])
    with pytest.warns(UserWarning, match="two empty cells .* y1 x y2"):
        s = categorical_stats(X, [True, True], gamma=False)
    assert s.cor[0, 1] == 1.0
    with pytest.warns(UserWarning, match="two empty cells"):
        s = categorical_stats(_table_data([[0, 20], [13, 0]]), [True, True], gamma=False)
    assert s.cor[0, 1] == -1.0


def test_general_table_zero_cells_get_no_correction():
    table = np.array([[12, 5, 0], [6, 14, 3], [0, 4, 11]])
    s = categorical_stats(_table_data(table), [True, True], gamma=False)
    assert abs(s.cor[0, 1] - naive_polychoric(table)) < 1e-6
    assert s.zero_cell_pairs == [("y1", "y2")]


# ---------------------------------------------------------------------------------------
# vectorised vs naive per-pair computations
# ---------------------------------------------------------------------------------------
def test_vectorised_polychoric_equals_naive_per_pair():
    ref = load("cat_datcat")
    data = pd.read_csv(ROOT / ref["data"])
    d = data[data["g"] == data["g"].iloc[0]]
    items = ["u1", "u2", "u5", "u8"]
    s = categorical_stats_frame(d, items, gamma=False)[None]
    for i in range(len(items)):
        for j in range(i):
            table = pd.crosstab(d[items[i]], d[items[j]]).values
            assert abs(s.cor[i, j] - naive_polychoric(table)) < 1e-6


def _pbinorm_owen(h, k, r):
    """Independent bivariate normal CDF via Owen's T (Owen 1956, eq. 3.1)."""
    s = np.sqrt(1 - r * r)
    with np.errstate(divide="ignore", invalid="ignore"):
        ah = np.where(h != 0, (k - r * h) / (h * s), np.inf)
        ak = np.where(k != 0, (h - r * k) / (k * s), np.inf)
    beta = np.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
    return 0.5 * (ndtr(h) + ndtr(k)) - owens_t(h, ah) - owens_t(k, ak) - beta


def test_pbinorm_accuracy():
    rng = np.random.default_rng(7)
    h = rng.normal(scale=1.5, size=4000)
    k = rng.normal(scale=1.5, size=4000)
    r = rng.uniform(-0.999, 0.999, size=4000)
    r[:200] = rng.choice([0.0, 0.3, -0.3, 0.75, 0.925, -0.925], size=200)
    np.testing.assert_allclose(pbinorm(h, k, r), _pbinorm_owen(h, k, r), rtol=0, atol=1e-12)
    # infinite limits and degenerate correlations
    assert pbinorm(np.inf, 0.3, 0.5) == pytest.approx(ndtr(0.3), abs=1e-16)
    assert pbinorm(0.3, np.inf, -0.5) == pytest.approx(ndtr(0.3), abs=1e-16)
    assert pbinorm(-np.inf, 0.3, 0.5) == 0.0
    assert pbinorm(0.2, -0.4, 1.0) == pytest.approx(ndtr(-0.4))
    assert pbinorm(0.2, 0.4, 0.0) == pytest.approx(ndtr(0.2) * ndtr(0.4), abs=1e-15)
    assert pbinorm(0.0, 0.0, 0.5) == pytest.approx(
        multivariate_normal(cov=[[1, 0.5], [0.5, 1]]).cdf([0, 0]), abs=1e-7)


def test_vectorised_with_covariates_equals_naive_per_pair():
    """conditional.x polychoric of one pair by a scalar optimiser with Owen's T rectangles."""
    ref = load("cat_condx")
    data = pd.read_csv(ROOT / ref["data"])
    s = stats_of("cat_condx")[0]
    x = data[["agec", "z9c"]].to_numpy()
    names = s.names
    a, b = 0, 3                                        # x4 and x1

    def limits(v):
        th = s.th[s.th_var == v]
        ext = np.r_[-40.0, th, 40.0]
        c = data[names[v]].to_numpy() - 1
        eta = x @ s.slopes[v]
        return ext[c + 1] - eta, ext[c] - eta

    z1a, z2a = limits(a)
    z1b, z2b = limits(b)

    def negll(r):
        P = (_pbinorm_owen(z1a, z1b, r) - _pbinorm_owen(z2a, z1b, r)
             - _pbinorm_owen(z1a, z2b, r) + _pbinorm_owen(z2a, z2b, r))
        return -np.sum(np.log(P))

    rho = optimize.minimize_scalar(negll, bounds=(-0.99, 0.99), method="bounded",
                                   options={"xatol": 1e-10}).x
    assert abs(s.cor[b, a] - rho) < 1e-6


def test_speed_sanity(record_property):
    """16 items x 4 categories x N = 1000 (timing reported, not asserted)."""
    rng = np.random.default_rng(11)
    N, p = 1000, 16
    f = rng.normal(size=N)
    Y = 0.7 * f[:, None] + np.sqrt(1 - 0.49) * rng.normal(size=(N, p))
    X = np.digitize(Y, [-1.0, 0.0, 1.0]).astype(float)
    categorical_stats(X, [True] * p)                   # warm up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        s = categorical_stats(X, [True] * p)
        times.append(time.perf_counter() - t0)
    record_property("categorical_stats_seconds_median", float(np.median(times)))
    assert s.gamma.shape == (48 + 120, 48 + 120)
    assert np.all(np.isfinite(s.gamma))
    off = s.cor[np.tril_indices(p, -1)]
    assert abs(off.mean() - 0.49) < 0.05


# ---------------------------------------------------------------------------------------
# category values, empty categories, collapsing
# ---------------------------------------------------------------------------------------
def test_category_values_and_ordered_categorical_give_same_results():
    ref = load("cat_hs_cut")
    data = pd.read_csv(ROOT / ref["data"])[["x1", "x2", "x3"]]
    base = categorical_stats_frame(data)[None]
    d2 = data.copy()
    d2["x1"] = d2["x1"].map({1: -2.0, 2: 0.5, 3: 7.0, 4: 10.0})
    d2["x2"] = pd.Categorical(d2["x2"].map({1: "low", 2: "mid", 3: "high"}),
                              categories=["low", "mid", "high"], ordered=True)
    other = categorical_stats_frame(d2)[None]
    np.testing.assert_allclose(other.cor, base.cor, atol=1e-14)
    np.testing.assert_allclose(other.th, base.th, atol=1e-14)
    np.testing.assert_allclose(other.gamma, base.gamma, atol=1e-12)
    assert other.levels[1] == ["low", "mid", "high"]
    assert other.levels[0] == [-2.0, 0.5, 7.0, 10.0]
    assert list(other.counts["x2"].index) == ["low", "mid", "high"]


def test_empty_category_error_names_item_group_and_category():
    d = pd.DataFrame({"a": [1, 2, 3, 1, 2, 3, 1, 2, 2, 1],
                      "b": [1, 2, 2, 1, 2, 1, 2, 2, 1, 1],
                      "grp": ["g1"] * 5 + ["g2"] * 5})
    d.loc[d.grp == "g2", "a"] = [1, 2, 1, 2, 2]          # category 3 empty in g2
    with pytest.raises(CategoricalDataError) as ei:
        categorical_stats_frame(d, ["a", "b"], group="grp")
    msg = str(ei.value)
    assert "'a'" in msg and "'g2'" in msg and "category 3" in msg
    assert isinstance(ei.value, DataError) and isinstance(ei.value, ValueError)
    # unobserved category of an ordered Categorical, no groups
    c = pd.DataFrame({"a": pd.Categorical(["lo", "hi", "lo", "hi"],
                                          categories=["lo", "mid", "hi"], ordered=True),
                      "b": [1, 2, 1, 2]})
    with pytest.raises(CategoricalDataError, match="category mid of ordinal variable 'a'"):
        polychoric(c)
    # the low-level function with fixed levels
    with pytest.raises(CategoricalDataError, match="category 4 .*'y1' is empty in group 7"):
        categorical_stats(np.array([[1, 1], [2, 2], [3, 1], [1, 2.0]]), [True, True],
                          levels=[[1, 2, 3, 4], None], group=7)


def test_collapse_categories_new_frame_and_record():
    d = pd.DataFrame({"a": [1, 2, 3, 1, 2, 3, 1, 2, 2, 1],
                      "b": [1, 2, 2, 1, 2, 1, 2, 2, 1, 1],
                      "grp": ["g1"] * 5 + ["g2"] * 5})
    d.loc[d.grp == "g2", "a"] = [1, 2, 1, 2, 2]
    d.attrs["source"] = "test"
    before = d.copy(deep=True)
    out = collapse_categories(d, ["a", "b"], "empty", group="grp")
    pd.testing.assert_frame_equal(d, before)               # input untouched
    assert d.attrs == {"source": "test"}
    assert out is not d
    assert out.attrs["collapsed_categories"] == {"a": {3: 2}}
    assert out.attrs["source"] == "test"
    assert sorted(out["a"].unique()) == [1, 2]
    st = categorical_stats_frame(out, ["a", "b"], group="grp", gamma=False)
    assert list(st) == ["g1", "g2"]
    # explicit mapping, composed with the earlier record
    out2 = collapse_categories(out, "b", {"b": {1: 2}})
    assert out2.attrs["collapsed_categories"] == {"a": {3: 2}, "b": {1: 2}}
    assert "b" not in out.attrs["collapsed_categories"]


def test_collapse_categories_rules_and_validation():
    d = pd.DataFrame({"a": [1] * 2 + [2] * 30 + [3] * 30 + [4] * 1,
                      "c": pd.Categorical(["x"] * 40 + ["z"] * 23,
                                          categories=["x", "y", "z"], ordered=True)})
    out = collapse_categories(d, ["a"], 5)                 # fewer than 5 cases
    assert out.attrs["collapsed_categories"] == {"a": {1: 2, 4: 3}}
    assert out["a"].dtype == d["a"].dtype
    outc = collapse_categories(d, "c", "empty")
    assert list(outc["c"].cat.categories) == ["x", "z"]
    assert outc["c"].cat.ordered
    assert (outc["c"].astype(str) == d["c"].astype(str)).all()
    with pytest.raises(CategoricalDataError, match="non-adjacent"):
        collapse_categories(d, "a", {1: 3})
    with pytest.raises(CategoricalDataError, match="not categories"):
        collapse_categories(d, "a", {9: 1})
    with pytest.raises(CategoricalDataError, match="order"):
        collapse_categories(d, "a", {1: 2.5})
    with pytest.raises(CategoricalDataError, match="unknown rule"):
        collapse_categories(d, "a", "sparse")
    pd.testing.assert_frame_equal(d, d.copy())


# ---------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------
def test_front_ends_do_not_modify_input_and_return_labelled_objects():
    ref = load("cat_hs_cut_groups")
    data = pd.read_csv(ROOT / ref["data"])
    before = data.copy(deep=True)
    cor, th = polychoric(data[["x1", "x2", "x3", "school"]], group="school")
    pd.testing.assert_frame_equal(data, before)
    assert list(cor) == ["Pasteur", "Grant-White"]
    assert list(cor["Pasteur"].columns) == ["x1", "x2", "x3"]
    assert th["Pasteur"].index[0] == "x1|t1"
    s = stats_of("cat_condx")[0]
    assert isinstance(s, CategoricalStats)
    assert s.slopes_frame().shape == (4, 2)
    assert s.gamma_frame().index[0] == "x4|t1"
    assert s.wls_names[s.blocks["slopes"]][0] == "x4~agec"


def test_bad_input_errors():
    df = pd.DataFrame({"a": [1, 2, 1, 2], "s": ["u", "v", "u", "v"]})
    with pytest.raises(CategoricalDataError, match="'s' is not numeric"):
        polychoric(df)
    df2 = pd.DataFrame({"a": [1, 2, 1, 2], "c": pd.Categorical(["u", "v", "u", "v"])})
    with pytest.raises(CategoricalDataError, match="unordered categorical"):
        polychoric(df2)
    with pytest.raises(CategoricalDataError, match="fewer than two observed categories"):
        polychoric(pd.DataFrame({"a": [1, 1, 1, 1], "b": [1, 2, 1, 2]}))
    with pytest.raises(CategoricalDataError, match="missing='ml' is not available"):
        categorical_stats(np.array([[1, 2], [2, 1], [1, 1.0]]), [True, True], missing="ml")
    with pytest.raises(CategoricalDataError, match="continuous variable 'y2' has zero"):
        categorical_stats(np.array([[1, 2], [2, 2], [1, 2.0]]), [True, False])
    with pytest.raises(CategoricalDataError, match="group column 'g' has missing"):
        polychoric(pd.DataFrame({"a": [1, 2, 1, 2], "g": ["x", None, "x", "y"]}), group="g")
    with pytest.raises(CategoricalDataError, match="value 5 that is not one of"):
        categorical_stats(np.array([[1, 2], [2, 1], [5, 1.0]]), [True, True],
                          levels=[[1, 2], None])


def test_pairwise_and_covariate_missing_rows():
    ref = load("cat_pairwise")
    data = pd.read_csv(ROOT / ref["data"])
    d = data[["x1", "x2", "x3"]].copy()
    d.loc[0, ["x1", "x2", "x3"]] = np.nan
    with pytest.warns(UserWarning, match="all variables missing"):
        s = categorical_stats_frame(d, missing="pairwise", gamma=False)[None]
    assert s.nobs == len(d) - 1
    X = data[["x1", "x2"]].to_numpy(float)
    X = X[~np.isnan(X).any(axis=1)]
    e = np.linspace(-1, 1, len(X))
    e[3] = np.nan
    with pytest.warns(UserWarning, match="missing values in the covariates"):
        s = categorical_stats(X, [True, True], exo=e, gamma=False)
    assert s.nobs == len(X) - 1


def test_influence_reproduces_gamma_and_row_index():
    ref = load("cat_mixed_pairwise")
    data = pd.read_csv(ROOT / ref["data"])
    d = data[["x1", "x2", "y7", "school"]].copy()
    d.loc[[3, 200], ["x1", "x2", "y7"]] = np.nan          # two empty rows
    with pytest.warns(UserWarning, match="all variables missing"):
        st = categorical_stats_frame(d, ["x1", "x2", "y7"], ["x1", "x2"], group="school",
                                     missing="pairwise", keep_influence=True)
    for label, s in st.items():
        rows = np.flatnonzero((d["school"] == label).to_numpy())
        assert 3 not in s.row_index and 200 not in s.row_index
        assert set(s.row_index) <= set(rows) and s.nobs == len(s.row_index)
        assert s.influence.shape == (s.nobs, len(s.wls_obs))
        np.testing.assert_allclose(s.nobs * s.influence.T @ s.influence, s.gamma, atol=1e-12)
        np.testing.assert_allclose(s.influence.sum(axis=0), 0.0, atol=1e-8)
