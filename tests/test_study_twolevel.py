"""The study's two-level sensitivity step (issue 16 item 7): sem_models/study/twolevel_step.py
run directly on the bundled alliance data (not the whole study).

Reference: tests/reference/cases_study_twolevel.R -> json/study_twolevel_{ml,mlr}.json
(lavaan 0.6-14 on data/study_twolevel_trait.csv, written by make_study_twolevel_data.py from
the bundled data).  Estimates to 1e-4, standard errors to 1e-3 relative, the model
log-likelihood to 1e-6 relative.  The saturated two-level model has its maximum on the
boundary here (Sigma_B of rank 2): lavaan's EM stops at a log-likelihood change of 1e-4
(logl_h1 -361.156) and even its Cholesky-parameterised refit with rel.tol 1e-14 stops short
(-361.123, "h1_tight"); ours reaches -361.101.  So: our saturated log-likelihood is at least
as high as both, the chi-square is 2 (logl_h1 - logl) of our own fit, and the ML ICCs (from
the saturated model) agree with the tight refit's to 1e-3 and lavaan's lavInspect("icc") to
3e-3.  The ANOVA ICCs are checked against R's anova(lm()) to 1e-10.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from measurement import reverse_score

import sem_models as sm
from sem_models.study import twolevel_step as tls
from sem_models.study.pipeline import StudyResults, _Context, alliance_design

REF = Path(__file__).parent / "reference"


def _ref(est: str) -> dict:
    return json.loads((REF / "json" / f"study_twolevel_{est.lower()}.json").read_text())


@pytest.fixture(scope="module")
def df():
    return reverse_score(sm.datasets.load("alliance"), alliance_design())


def _run(df, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = tls.twolevel_sensitivity(df, alliance_design(), "format", "group", **kw)
    return out, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def mlr(df):
    t0 = time.perf_counter()
    out, caught = _run(df, estimator="MLR")
    return out, caught, time.perf_counter() - t0


def test_data_file_is_what_the_step_uses(df):
    data, col = tls.twolevel_data(df, alliance_design(), "format", "group")
    ref = pd.read_csv(REF / "data" / "study_twolevel_trait.csv")
    assert col == "therapy_group"
    assert list(data.columns) == list(ref.columns)
    np.testing.assert_array_equal(data["therapy_group"].to_numpy(), ref["therapy_group"])
    np.testing.assert_allclose(data.iloc[:, 1:].to_numpy(float), ref.iloc[:, 1:].to_numpy(),
                               rtol=0, atol=0)


@pytest.mark.parametrize("est", ["ML", "MLR"])
def test_model_against_lavaan(df, est, mlr):
    out = mlr[0] if est == "MLR" else _run(df, estimator=est)[0]
    ref = _ref(est)
    fit = out.fit
    assert out.ok and fit.converged and ref["converged"]
    assert out.cluster == "therapy_group"
    assert fit.ntotal == ref["nobs"] == 174 and sum(fit.nclusters) == ref["nclusters"] == 33
    e = fit.estimates()
    ours = {(r.lhs, r.op, r.rhs, int(r.level)): (r.est, r.se) for r in e.itertuples()}
    for p in ref["parameters"]:
        est_, se_ = ours[(p["lhs"], p["op"], p["rhs"], int(p["level"]))]
        assert est_ == pytest.approx(p["est"], abs=1e-4), p
        assert se_ == pytest.approx(p["se"], rel=1e-3, abs=1e-6), p
    m = fit.measures()
    assert m["logl"] == pytest.approx(ref["fit"]["logl"], rel=1e-6)
    assert m["unrestricted_logl"] >= max(ref["fit"]["unrestricted_logl"],
                                         ref["h1_tight"]["logl"]) - 1e-6
    assert m["chisq"] == pytest.approx(2 * (m["unrestricted_logl"] - m["logl"]), rel=1e-10)
    assert m["df"] == ref["fit"]["df"] == 8
    assert m["srmr_within"] == pytest.approx(ref["fit"]["srmr_within"], abs=2e-3)
    # the step's tables carry these numbers
    ft = out.tables["twolevel_fit"].iloc[0]
    assert ft["n"] == 174 and ft["clusters"] == 33 and bool(ft["converged"])
    assert ft["chisq"] == pytest.approx(m["chisq"]) and ft["df"] == 8
    if est == "MLR":
        assert ft["chisq_scaled"] == pytest.approx(m["chisq_scaled"])
        assert ft["cfi_robust"] == pytest.approx(m["cfi_robust"])
    else:
        assert "chisq_scaled" not in ft.index
    tab = out.tables["twolevel_estimates"]
    row = tab[(tab["level"] == "between") & (tab["lhs"] == "child_b") & (tab["rhs"] == "child_b")]
    assert len(row) == 1
    assert row["est"].iloc[0] == pytest.approx(ours[("child_b", "~~", "child_b", 2)][0])
    assert set(tab["level"]) == {"within", "between"}


def test_icc_table(mlr):
    out, _, _ = mlr
    ref = _ref("MLR")
    icc = out.tables["twolevel_icc"]
    assert list(icc["scale"][:4]) == ["c_bond", "c_task", "t_bond", "t_task"]
    assert (icc["level"][:4] == "trait").all() and (icc["level"][4:] == "state").all()
    assert len(icc) == 12 and (icc["clusters"] == 33).all()
    trait = icc.set_index("scale").iloc[:4]
    for s, r in ref["icc_anova"].items():
        assert trait.loc[s, "icc_anova"] == pytest.approx(r["icc"], abs=1e-10)
        assert trait.loc[s, "n"] == r["n"]
        assert trait.loc[s, "icc_ml"] == pytest.approx(ref["h1_tight"]["icc"][s], abs=1e-3)
        assert trait.loc[s, "icc_ml"] == pytest.approx(ref["icc"][s], abs=3e-3)
    # the ML ICCs are those of the fitted model's saturated part; state scores have none
    np.testing.assert_allclose(trait["icc_ml"].to_numpy(), out.fit.icc()[trait.index], rtol=0,
                               atol=1e-14)
    assert icc["icc_ml"][4:].isna().all()
    deff = 1 + (icc["mean_cluster_size"] - 1) * icc["icc_ml"].fillna(icc["icc_anova"])
    np.testing.assert_allclose(icc["design_effect"], deff)
    tm = icc.set_index("scale").loc["t_end_task"]
    assert tm["n"] == 170 and tm["occasion"] == "end"


def _icc_loop(y, g):
    """ICC(1) by the textbook sums, one cluster at a time (an independent implementation)."""
    ok = ~np.isnan(y)
    groups = [y[ok & (g == k)] for k in np.unique(g[ok])]
    N = sum(len(v) for v in groups)
    J = len(groups)
    grand = np.mean(np.concatenate(groups))
    msb = sum(len(v) * (v.mean() - grand) ** 2 for v in groups) / (J - 1)
    msw = sum(((v - v.mean()) ** 2).sum() for v in groups) / (N - J)
    n0 = (N - sum(len(v) ** 2 for v in groups) / N) / (J - 1)
    return (msb - msw) / (msb + (n0 - 1) * msw), N, J


def test_icc_anova_by_hand(df, mlr):
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(12), rng.integers(2, 9, size=12))
    y = rng.normal(size=g.size) + rng.normal(size=12)[g]
    y[[0, 5]] = np.nan
    r = tls.icc_anova(y, g)
    icc, N, J = _icc_loop(y, g)
    assert r["icc"] == pytest.approx(icc, rel=1e-12)
    assert r["n"] == N and r["clusters"] == J
    # the step's state-score ICCs (end scores have missing values)
    from measurement import scale_means
    grp = df[df["format"] == "group"]
    state = scale_means(grp, alliance_design(), min_items=0.5, level="state")
    tab = mlr[0].tables["twolevel_icc"].set_index("scale")
    ids = grp["therapy_group"].to_numpy()
    for s in ("c_end_bond", "t_mid_task"):
        icc, N, J = _icc_loop(state[s].to_numpy(), ids)
        assert tab.loc[s, "icc_anova"] == pytest.approx(icc, rel=1e-10)
        assert tab.loc[s, "n"] == N and tab.loc[s, "clusters"] == J
    assert np.isnan(tls.icc_anova(np.ones(5), np.zeros(5))["icc"])       # one cluster
    assert np.isnan(tls.icc_anova(np.array([np.nan] * 3), np.arange(3))["icc"])


def test_notes_warnings_and_speed(mlr):
    out, caught, seconds = mlr
    assert any("6 of 180 children" in n for n in out.notes)
    warn = out.tables["twolevel_fit"]["warning"].iloc[0]
    assert "negative variance" in warn and "child_b" in warn      # the Heywood case is shown
    assert seconds < 6.0        # the study's budget is < 2 s; slack for a loaded machine


def test_fallback_to_school_when_no_group_ids(df):
    out, _ = _run(df.drop(columns=["therapy_group"]), estimator="ML")
    assert out.cluster == "school"
    assert any("no therapy-group ids" in n for n in out.notes)
    assert out.tables["twolevel_icc"]["clusters"].iloc[0] == df.loc[
        df["format"] == "group", "school"].nunique()
    assert "twolevel_fit" in out.tables


def test_repeated_group_labels_are_nested_in_schools(df):
    d = df.copy()
    d["therapy_group"] = d.groupby("school")["therapy_group"].transform(
        lambda s: s.astype("category").cat.codes.astype(str).where(s.notna()))
    out, _ = _run(d, estimator="ML")
    assert out.cluster == "school/therapy_group"
    assert out.tables["twolevel_icc"]["clusters"].iloc[0] == 33


def _ctx(df, estimator="MLR"):
    res = StudyResults(out_dir=None, options={})
    return _Context(res=res, raw=df, design=alliance_design(),
                    roles={"individual": "individual", "group": "group"},
                    group_column="format", cluster="school",
                    fit_opts={"estimator": estimator, "missing": "fiml"}, bootstrap=0, seed=1,
                    _df=df)


def test_step_failure_keeps_icc_tables(df, monkeypatch):
    def boom(*a, **k):
        raise np.linalg.LinAlgError("singular matrix")
    monkeypatch.setattr(sm.api, "sem", boom)
    ctx = _ctx(df)
    with pytest.raises(RuntimeError, match="could not be fitted: LinAlgError"):
        tls.step_twolevel(ctx)
    assert "twolevel_icc" in ctx.res.tables and "twolevel_fit" not in ctx.res.tables
    html = "".join(tls.report_section(ctx.res))
    assert "Intraclass correlations" in html and "could not be fitted" in html


def test_step_nonconvergence_is_a_warning(df, monkeypatch):
    real = sm.api.sem

    def capped(*a, **k):
        return real(*a, **{**k, "max_iter": 1})
    monkeypatch.setattr(sm.api, "sem", capped)
    ctx = _ctx(df, estimator="WLSMV")
    with pytest.warns(RuntimeWarning, match="did not converge"):
        out = tls.step_twolevel(ctx)
    assert not out.ok and not out.tables["twolevel_fit"]["converged"].iloc[0]
    assert any("not available for two-level" in n for n in ctx.res.text["twolevel_notes"])
    html = "".join(tls.report_section(ctx.res))
    assert "did not converge" in html and "twolevel" in ctx.res.fits


def test_report_section_only_when_the_step_ran(df):
    res = StudyResults(out_dir=None, options={})
    assert tls.report_section(res) == []
    res.steps = {"twolevel": "Two-level"}
    res.interrupted = "Outcomes"
    html = "".join(tls.report_section(res))
    assert "was not run" in html and "Intraclass" not in html
