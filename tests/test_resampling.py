"""Resampling: the execution layer, the refit path, the bootstrap (fitted models, se="bootstrap",
any statistic), data simulation (groups, ordinal items, two levels), power and power curves,
and the study's school bootstrap and power analysis (issue 17).

References: tests/reference/json/resampling.json (tests/reference/cases_resampling.R, lavaan
0.6-14 / semTools 0.5-6) with inputs from tests/reference/make_resampling_inputs.py; the
analytic power of the likelihood-ratio test (semTools::SSpower) for the Monte Carlo power and
the power curve; independent computations written out in the tests (BCa, maximum likelihood
of the curve, ANOVA estimators).  Permutation tests: tests/test_permutation.py.
"""
from __future__ import annotations

import concurrent.futures as cf
import io
import json
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sem_models as sm
from sem_models.resampling import (BootstrapResult, CheckpointError, analytic_power,
                                   bca_interval, bootstrap, population_moments, power,
                                   replication_rng, run_replications, simulate_data)
from sem_models.resampling.boot import (_Refit, _Sampler, _check_resamplable, _cluster_units,
                                        _refit_options, acceleration, bollen_stine_transform)
from sem_models.resampling.simulate import _intermediate_correlation, fleishman_coefficients

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "tests" / "reference" / "json" / "resampling.json").read_text())
DATA = ROOT / "tests" / "reference" / "data"
sys.path.insert(0, str(ROOT / "tests" / "reference"))
import make_resampling_inputs as inputs  # noqa: E402

HS = pd.read_csv(ROOT / "data" / "HolzingerSwineford1939.csv")
HS_MODEL = inputs.HS_MODEL
HS_PLAIN = inputs.HS_PLAIN


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def hs_fit():
    return sm.sem(HS_MODEL, HS)


# ================================================================== the execution layer
def toy_task(rng, r):
    """Module level, so that worker processes can unpickle it."""
    x = rng.standard_normal(20)
    if r in (7, 31):
        raise RuntimeError(f"replication {r} fails")
    return {"mean": float(x.mean()), "positive": bool(x.mean() > 0),
            "tag": "odd" if r % 2 else "even", "k": int(rng.integers(0, 10))}


def pid_task(rng, r):
    return {"pid": os.getpid(), "u": float(rng.random())}


def test_replication_seeds_follow_seedsequence_spawn():
    children = np.random.SeedSequence(99).spawn(5)
    for r in range(5):
        ours = replication_rng(99, r).random(3)
        assert np.array_equal(ours, np.random.default_rng(children[r]).random(3))


@pytest.fixture(scope="module")
def toy_serial():
    return run_replications(toy_task, 60, seed=5, executor="serial", progress=False)


def test_failures_are_recorded_not_fatal(toy_serial):
    out = toy_serial
    assert list(out.index) == list(range(60))
    assert out.attrs["n_failed"] == 2 and out.attrs["seed"] == 5
    assert out.loc[7, "error"] == "RuntimeError: replication 7 fails"
    assert np.isnan(out.loc[7, "mean"]) and out["error"].isna().sum() == 58
    assert out.loc[8, "positive"] in (True, False)


@pytest.mark.parametrize("executor,batch_size", [(1, None), (2, 7), ("threads", 13),
                                                 ("serial", 4)])
def test_results_do_not_depend_on_backend_or_batches(toy_serial, executor, batch_size):
    if executor == "threads":
        with cf.ThreadPoolExecutor(3) as pool:
            out = run_replications(toy_task, 60, seed=5, executor=pool,
                                   batch_size=batch_size, progress=False)
    else:
        out = run_replications(toy_task, 60, seed=5, executor=executor,
                               batch_size=batch_size, progress=False)
    pd.testing.assert_frame_equal(out, toy_serial, check_exact=True)


def test_dask_threads_cluster_gives_identical_results(toy_serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        out = run_replications(toy_task, 60, seed=5, executor=client, batch_size=9,
                               progress=False)
    pd.testing.assert_frame_equal(out, toy_serial, check_exact=True)


@pytest.mark.slow
def test_dask_process_cluster_gives_identical_results(toy_serial, hs_fit):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        out = run_replications(toy_task, 60, seed=5, executor=client, progress=False)
        boot = bootstrap(hs_fit, 30, seed=3, executor=client, progress=False)
    pd.testing.assert_frame_equal(out, toy_serial, check_exact=True)
    serial = bootstrap(hs_fit, 30, seed=3, executor="serial", progress=False)
    pd.testing.assert_frame_equal(boot.draws, serial.draws, check_exact=True)


def test_small_runs_stay_in_process():
    out = run_replications(pid_task, 20, seed=1, progress=False)
    assert set(out["pid"]) == {os.getpid()}


def test_checkpoint_resume_is_identical(tmp_path, toy_serial):
    folder = tmp_path / "ck"
    first = run_replications(toy_task, 25, seed=5, checkpoint=folder, batch_size=10,
                             progress=False)
    files = sorted(p.name for p in folder.glob("reps_*.parquet"))
    assert files == ["reps_000000000-000000009.parquet", "reps_000000010-000000019.parquet",
                     "reps_000000020-000000024.parquet"]
    pd.testing.assert_frame_equal(first, toy_serial.iloc[:25], check_exact=True)
    (folder / files[1]).unlink()  # a batch lost (e.g. the run was killed while writing)
    resumed = run_replications(toy_task, 60, seed=5, checkpoint=folder, batch_size=16,
                               executor=2, progress=False)
    pd.testing.assert_frame_equal(resumed, toy_serial, check_exact=True)
    # everything done: nothing is run again (a task that would fail everywhere)
    again = run_replications(pid_task, 60, seed=5, checkpoint=folder, progress=False)
    pd.testing.assert_frame_equal(again, toy_serial, check_exact=True)


def test_checkpoint_refuses_another_seed_or_task(tmp_path):
    folder = tmp_path / "ck"
    run_replications(toy_task, 5, seed=1, checkpoint=folder, fingerprint="A", progress=False)
    with pytest.raises(CheckpointError, match="seed"):
        run_replications(toy_task, 5, seed=2, checkpoint=folder, progress=False)
    with pytest.raises(CheckpointError, match="another task"):
        run_replications(toy_task, 5, seed=1, checkpoint=folder, fingerprint="B",
                         progress=False)
    with pytest.raises(ValueError, match="needs a seed"):
        run_replications(toy_task, 5, seed=None, checkpoint=tmp_path / "x", progress=False)


def test_executor_arguments_are_checked():
    with pytest.raises(TypeError, match="executor must be"):
        run_replications(toy_task, 3, seed=1, executor="cluster", progress=False)
    with pytest.raises(ValueError, match="non-negative"):
        run_replications(toy_task, -1, seed=1)
    with pytest.raises(ValueError, match="batch_size"):
        run_replications(toy_task, 3, seed=1, batch_size=0)
    with pytest.raises(ValueError, match="seed must be"):
        run_replications(toy_task, 3, seed=-4)
    out = run_replications(toy_task, 3, seed=None, progress=False)  # a fresh root seed
    assert isinstance(out.attrs["seed"], int)


def sleepy_task(rng, r):
    import time
    time.sleep(0.01)
    return {"u": float(rng.random())}


class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal(monkeypatch):
    fake = _FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    run_replications(sleepy_task, 80, seed=1, executor="serial", desc="demo")
    assert "demo" in fake.getvalue() and "80/80" in fake.getvalue()
    quiet = _FakeTTY()
    monkeypatch.setattr(sys, "stderr", quiet)
    run_replications(sleepy_task, 80, seed=1, executor="serial", progress=False)
    assert quiet.getvalue() == ""


def test_unpicklable_tasks_run_in_process():
    offset = 3.0
    out = run_replications(lambda rng, r: {"v": rng.random() + offset, "pid": os.getpid()},
                           30, seed=2, progress=False)
    assert set(out["pid"]) == {os.getpid()} and (out["v"] > 3).all()
    with pytest.raises(TypeError, match="cannot be pickled"):
        run_replications(lambda rng, r: {"v": 1.0}, 4, seed=2, executor=2, progress=False)


def test_no_progress_output_off_a_terminal(capsys):
    run_replications(toy_task, 10, seed=1, executor="serial", progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ================================================================== bootstrap vs lavaan
@pytest.mark.parametrize("case", ["hs_ord", "hs_mg", "hs_fiml"])
def test_bootstrap_samples_and_refits_match_lavaan(case):
    """Our seeded samples (regenerated here) refitted by us and by lavaan on the same rows."""
    stored = pd.read_csv(DATA / "resampling_boot_idx.csv")
    stored = stored[stored["case"] == case].reset_index(drop=True)
    fresh = inputs.case_indices(case)
    assert np.array_equal(fresh["row"].to_numpy(), stored["row"].to_numpy()), \
        "numpy's bootstrap stream changed: rerun make_resampling_inputs.py and the R script"
    fit, data, R, seed = inputs.case_fit(case)
    refit = _Refit(fit, [g.X for g in fit.data.groups])
    ref = REF["refits"][case]
    pt = fit.estimates()
    assert list(pt["lhs"]) == ref["lhs"] and list(pt["op"]) == ref["op"]
    free = np.flatnonzero(fit.partable["free"].to_numpy() > 0)
    for rep in ref["reps"]:
        rows = stored.loc[stored["rep"] == rep["rep"], "row"].to_numpy() - 1
        sample = data.iloc[rows]
        Xs = [sample[sample[fit.options["group"]] == lab][refit.ov].to_numpy(float)
              for lab in fit.group_labels] if fit.options["group"] else \
            [sample[refit.ov].to_numpy(float)]
        row = refit.extract(refit.fit(Xs))
        est = np.array(rep["est"], float)
        ours = np.array([row[name] for name in refit.names[:len(free)]])
        np.testing.assert_allclose(ours, est[free], rtol=1e-4, atol=1e-5)
        if case == "hs_ord":
            np.testing.assert_allclose(row["ab"], est[-1], rtol=1e-4)
        np.testing.assert_allclose(row["chisq"], rep["chisq"], rtol=1e-4)
        assert row["converged"] == rep["converged"]


@pytest.mark.parametrize("case,opts,idx_case", [
    ("single", {}, "hs_ord"),
    ("groups", {"group": "school", "group_equal": ["loadings"]}, "hs_mg")])
def test_bollen_stine_data_match_lavaan(case, opts, idx_case):
    """Our Bollen-Stine transformed data are lavaan's, and our chi-squares on samples of them
    (the stored rows) are lavaan's."""
    fit = sm.sem(HS_PLAIN, HS, **opts)
    ref = REF["bollen_stine"][case]
    np.testing.assert_allclose(fit.measures()["chisq"], ref["observed_chisq"], rtol=1e-6)
    implied = fit.implied()
    shift = 1.0 if fit.model.meanstructure else 0.0  # lavaan centres without mean structure
    Zs = [bollen_stine_transform(g.X, implied[k]["cov"].to_numpy(),
                                 shift * implied[k]["mean"].to_numpy())
          for g, k in zip(fit.data.groups, implied)]
    for Z, k, theirs in zip(Zs, implied, ref["data"]):
        # Sigma-hat agrees with lavaan to its convergence tolerance (about 1e-6)
        np.testing.assert_allclose(Z, np.reshape(theirs, Z.shape, order="F"), rtol=1e-4,
                                   atol=1e-5)
        # the transform reproduces the fitted moments exactly
        np.testing.assert_allclose(np.cov(Z.T, bias=True), implied[k]["cov"], atol=1e-10)
        np.testing.assert_allclose(Z.mean(axis=0), shift * implied[k]["mean"], atol=1e-10)
    stored = pd.read_csv(DATA / "resampling_boot_idx.csv")
    stored = stored[stored["case"] == idx_case]
    refit = _Refit(fit, Zs)
    for rep, chisq in enumerate(ref["chisq"]):
        rows = stored.loc[stored["rep"] == rep, "row"].to_numpy() - 1
        parts = []
        for g, Z in zip(fit.data.groups, Zs):
            position = {int(row): i for i, row in enumerate(g.row_index)}
            parts.append(Z[[position[row] for row in rows if row in position]])
        assert refit.extract(refit.fit(parts))["chisq"] == pytest.approx(chisq, rel=1e-5)


def test_bootstrap_intervals_match_lavaan(hs_fit):
    """perc / basic / norm / bca.simple computed by lavaan from our stored draws."""
    draws = pd.read_csv(DATA / "resampling_boot_draws.csv")
    res = BootstrapResult.from_draws(hs_fit, draws)
    for ours, theirs in [("percentile", "perc"), ("basic", "basic"), ("normal", "norm"),
                         ("bca_simple", "bca.simple")]:
        table = res.estimates(ours, level=0.9)
        ref = REF["intervals"][theirs]
        np.testing.assert_allclose(table["est"], ref["est"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(table["se"], ref["se"], rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(table["ci_lower"], ref["ci_lower"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(table["ci_upper"], ref["ci_upper"], rtol=1e-4, atol=1e-5)
        assert table.attrs["n_valid"] == 200


def test_bootstrap_is_reproducible_across_backends(hs_fit):
    """The stored draws (made serially) come back from the seed with 2 processes and from a
    dask thread cluster."""
    stored = pd.read_csv(DATA / "resampling_boot_draws.csv")
    two = bootstrap(hs_fit, 200, seed=2024, executor=2, progress=False)
    # equal up to the optimizer's convergence tolerance (the engine may change)
    np.testing.assert_allclose(two.draws[two.names].to_numpy(), stored.to_numpy(),
                               rtol=1e-5, atol=1e-6)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = bootstrap(hs_fit, 40, seed=2024, executor=client, batch_size=7,
                         progress=False)
    pd.testing.assert_frame_equal(dask.draws, two.draws.iloc[:40], check_exact=True)
    assert two.estimates().shape == hs_fit.estimates().shape


# ================================================================== bootstrap: behaviour
def _percentile_of_score(draws, value):
    return (np.count_nonzero(draws < value) + np.count_nonzero(draws <= value)) / (2 * len(draws))


def test_bca_matches_an_independent_computation():
    """BCa for the mean of a skewed sample: z0, a and the adjusted levels written out here
    (Efron & Tibshirani 1993, eqs. 14.9-14.15), quantiles by linear interpolation."""
    data = np.random.default_rng(3).gamma(2.0, size=40)
    theta = data.mean()
    rng = np.random.default_rng(4)
    draws = data[rng.integers(0, 40, (4000, 40))].mean(axis=1)
    jack = (data.sum() - data) / 39
    dev = jack.mean() - jack
    a = (dev ** 3).sum() / (6 * ((dev ** 2).sum()) ** 1.5)
    assert acceleration(jack) == pytest.approx(a, rel=1e-12)
    z0 = stats.norm.ppf(_percentile_of_score(draws, theta))
    for level in (0.9, 0.95):
        z = stats.norm.ppf([(1 - level) / 2, (1 + level) / 2])
        probs = stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
        expected = np.percentile(draws, 100 * probs)
        got = bca_interval(draws, theta, jack, level, interpolation="linear")
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    # scipy's BCa on its own resamples agrees within Monte Carlo error (an endpoint's MC SD
    # is about 0.04 SD of the draws with B = 4000, a difference of two about 0.06)
    ref = stats.bootstrap((data,), np.mean, method="BCa", n_resamples=4000,
                          random_state=np.random.default_rng(5)).confidence_interval
    got = bca_interval(draws, theta, jack, 0.95, interpolation="linear")
    sd = draws.std()
    assert abs(got[0] - ref.low) < 0.25 * sd and abs(got[1] - ref.high) < 0.25 * sd
    # normal-scale interpolation (Davison & Hinkley 1997, eq. 5.8) at an exact rank
    sorted_draws = np.sort(draws[:399])
    lo, hi = bca_interval(sorted_draws, np.median(sorted_draws), None, 0.95)
    assert lo == pytest.approx(sorted_draws[9]) and hi == pytest.approx(sorted_draws[389])


def test_bootstrap_se_close_to_ml_se_on_normal_data():
    pop = ("f =~ 0.8*y1 + 0.7*y2 + 0.6*y3 + 0.7*y4\n"
           "y1 ~~ 0.36*y1\ny2 ~~ 0.51*y2\ny3 ~~ 0.64*y3\ny4 ~~ 0.51*y4")
    data = simulate_data(pop, 500, seed=8)
    fit = sm.sem("f =~ y1 + y2 + y3 + y4", data)
    res = bootstrap(fit, 400, seed=9, progress=False)
    table = res.estimates()
    ml = fit.estimates()
    free = ml["se"].to_numpy() > 0
    ratio = table["se"].to_numpy()[free] / ml["se"].to_numpy()[free]
    # Monte Carlo SD of a bootstrap SE with B = 400 is about 1 / sqrt(2 * 399) = 3.5 %;
    # bootstrap and ML SEs also differ by O(N^-1/2) in a sample
    assert np.all(np.abs(ratio - 1) < 0.2), ratio
    assert abs(ratio.mean() - 1) < 0.07
    # the bootstrap covariance of the estimates is close to the ML one as well
    vc = res.vcov().to_numpy()
    assert np.allclose(np.sqrt(np.diag(vc)), table["se"].to_numpy()[free], rtol=1e-10)


def test_parametric_bootstrap_reproduces_expected_information_ses(hs_fit):
    """Samples from N(mu, Sigma) of the fitted model: bootstrap SEs estimate the ML SEs even
    though HS39 itself is not normal."""
    res = bootstrap(hs_fit, 300, kind="parametric", seed=10, progress=False)
    table = res.estimates("normal")
    ml = hs_fit.estimates()
    free = (ml["se"].to_numpy() > 0) & (ml["op"].to_numpy() != ":=")
    ratio = table["se"].to_numpy()[free] / ml["se"].to_numpy()[free]
    assert np.all(np.abs(ratio - 1) < 0.25) and abs(ratio.mean() - 1) < 0.06, ratio
    assert res.n_valid >= 295


def test_bollen_stine_pvalue(hs_fit):
    res = bootstrap(hs_fit, 60, kind="bollen_stine", seed=1, progress=False)
    chisq = res.draws["chisq"].to_numpy()
    observed = hs_fit.measures()["chisq"]
    assert res.bollen_stine_pvalue == np.mean(chisq[res.valid] >= observed) == 0.0
    # under the null the bootstrap statistics centre near the degrees of freedom
    assert 15 < np.median(chisq) < 40
    with pytest.raises(ValueError, match="bollen_stine"):
        bootstrap(hs_fit, 2, seed=1, progress=False).bollen_stine_pvalue


def test_bca_intervals_on_a_model(hs_fit):
    res = bootstrap(hs_fit, 100, seed=12, progress=False)
    table = res.estimates("bca")
    jack = res.jackknife()
    assert len(jack) == hs_fit.ntotal and jack["error"].isna().all()
    free = hs_fit.estimates()["se"].to_numpy() > 0
    lo, hi = table["ci_lower"].to_numpy()[free], table["ci_upper"].to_numpy()[free]
    assert np.all(lo < table["est"].to_numpy()[free]) and np.all(hi > table["est"].to_numpy()[free])
    with pytest.raises(ValueError, match="ci must be"):
        res.estimates("studentized")


def test_cluster_bootstrap_resamples_whole_clusters_within_groups():
    data = pd.read_csv(DATA / "sim_clustered.csv").dropna(subset=["y1", "y2", "y3"])
    data = data.assign(arm=np.where(data["school"] % 2 == 0, "a", "b"))
    # few clusters per group (the case for a cluster bootstrap): the fit warns about them
    fit = _quiet(sm.sem, "f =~ y1 + y2 + y3", data, group="arm", cluster="school")
    ids = [np.asarray(g.cluster) for g in fit.data.groups]
    sampler = _Sampler("ordinary", [g.X for g in fit.data.groups], ids, None)
    for r in range(5):
        for g, idx in enumerate(sampler.indices(replication_rng(1, r))):
            drawn = pd.Series(ids[g][idx]).value_counts()
            sizes = pd.Series(ids[g]).value_counts()
            assert np.all(drawn % sizes[drawn.index] == 0)  # whole clusters only
            assert (drawn // sizes[drawn.index]).sum() == len(sizes)  # as many as the group has
    res = bootstrap(fit, 30, seed=2, progress=False)
    assert res.n_valid == 30
    n_clusters = sum(len(np.unique(c)) for c in ids)
    table = res.estimates("bca")
    assert len(res.jackknife()) == n_clusters
    assert np.isfinite(table["ci_lower"]).all()
    # rows instead of clusters, and a cluster variable given by column name
    rows = bootstrap(fit, 5, seed=2, cluster=False, progress=False)
    assert not rows.draws.equals(res.draws.iloc[:5])
    by_name = bootstrap(fit, 5, seed=2, cluster="school", progress=False)
    pd.testing.assert_frame_equal(by_name.draws, res.draws.iloc[:5], check_exact=True)
    order, starts, counts = _cluster_units(np.array([3, 1, 3, 2, 1, 3]))
    assert counts.tolist() == [2, 1, 3] and order[starts[2]:].tolist() == [0, 2, 5]


def test_bootstrap_failures_are_kept_and_skipped(hs_fit, monkeypatch):
    original = _Refit.fit

    def flaky(self, Xs):
        if Xs[0][0, 0] > 6.5:
            raise np.linalg.LinAlgError("simulated failure")
        return original(self, Xs)

    monkeypatch.setattr(_Refit, "fit", flaky)
    with pytest.warns(RuntimeWarning, match="failed or did not converge"):
        res = bootstrap(hs_fit, 40, seed=4, executor="serial", progress=False)
    failed = res.draws["error"].notna()
    assert 0 < failed.sum() < 40 and res.n_valid == 40 - failed.sum()
    assert res.draws.loc[failed, "error"].str.startswith("LinAlgError").all()
    assert np.isfinite(res.estimates()["se"]).all()


def test_robust_estimators_refit_as_ml(hs_fit):
    """MLR's estimates are ML's: its bootstrap draws are the ML fit's (SE options ignored)."""
    mlr = sm.sem(HS_MODEL, HS, estimator="MLR")
    a = bootstrap(mlr, 8, seed=6, progress=False)
    b = bootstrap(hs_fit, 8, seed=6, progress=False)
    pd.testing.assert_frame_equal(a.draws, b.draws, check_exact=True)
    assert _refit_options(mlr)["estimator"] == "ML" and "se" not in _refit_options(mlr)


def test_bootstrap_errors(hs_fit):
    with pytest.raises(ValueError, match="kind must be"):
        bootstrap(hs_fit, 10, kind="yuan", seed=1)
    with pytest.raises(ValueError, match="R must be"):
        bootstrap(hs_fit, 0, seed=1)
    mcar = pd.read_csv(DATA / "hs_mcar.csv")
    fiml = sm.sem(HS_PLAIN, mcar, missing="fiml")
    with pytest.raises(ValueError, match="complete data"):
        bootstrap(fiml, 10, kind="bollen_stine", seed=1)
    with pytest.raises(ValueError, match="data="):
        bootstrap(hs_fit, 10, seed=1, cluster="school")
    with pytest.raises(sm.DataError, match="nope"):
        bootstrap(hs_fit, 10, seed=1, cluster="nope", data=HS)
    with pytest.raises(ValueError, match="parametric"):
        bootstrap(hs_fit, 10, kind="parametric", seed=1, cluster="school", data=HS)
    with pytest.raises(ValueError, match="rows"):
        bootstrap(hs_fit, 10, seed=1, cluster=np.arange(5))
    fake = types.SimpleNamespace(model_syntax="level: 1\nf =~ y1 + y2\nlevel: 2\nf =~ y1 + y2",
                                 data=hs_fit.data)
    with pytest.raises(ValueError, match="multilevel"):
        _check_resamplable(fake)


def test_bootstrap_with_fiml_and_checkpoint(tmp_path):
    mcar = pd.read_csv(DATA / "hs_mcar.csv")
    fit = sm.sem(HS_PLAIN, mcar, missing="fiml")
    first = bootstrap(fit, 6, seed=3, checkpoint=tmp_path, progress=False)
    again = bootstrap(fit, 10, seed=3, checkpoint=tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.draws.iloc[:6], first.draws, check_exact=True)
    assert again.n_valid == 10
    other = sm.sem(HS_PLAIN, HS)
    with pytest.raises(CheckpointError, match="another task"):
        bootstrap(other, 10, seed=3, checkpoint=tmp_path, progress=False)


# ================================================================== simulation
@pytest.mark.parametrize("case", ["sem", "defaults", "means", "groups"])
def test_population_moments_match_lavaan_simulatedata(case):
    ref = REF["population"][case]
    n = ref["n"] if isinstance(ref["n"], list) else [ref["n"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = population_moments(ref["model"], n_groups=len(n))
    assert any("unspecified" in str(w.message) for w in caught) == bool(ref["warnings"])
    groups = ref["groups"] if isinstance(ref["groups"], list) else list(ref["groups"].values())
    for mine, theirs in zip(ours, groups):
        names = theirs["names"]
        np.testing.assert_allclose(mine["cov"].loc[names, names].to_numpy(),
                                   np.array(theirs["cov"]), rtol=1e-12, atol=1e-14)
        if theirs["mean"] is not None:
            np.testing.assert_allclose(mine["mean"][names].to_numpy(), theirs["mean"],
                                       atol=1e-14)


def test_simulate_data_empirical_groups_and_seed():
    model = REF["population"]["groups"]["model"]
    data = simulate_data(model, [50, 80], seed=3, empirical=True)
    assert list(data.columns) == ["x1", "x2", "x3", "group"]
    assert data["group"].value_counts().to_dict() == {1: 50, 2: 80}
    pop = population_moments(model, n_groups=2)
    for g, mom in enumerate(pop, start=1):
        X = data.loc[data["group"] == g, ["x1", "x2", "x3"]].to_numpy()
        np.testing.assert_allclose(np.cov(X.T, bias=True), mom["cov"], atol=1e-12)
        np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    a = simulate_data(model, [50, 80], seed=3)
    pd.testing.assert_frame_equal(a, simulate_data(model, [50, 80], seed=3))
    assert not a.equals(simulate_data(model, [50, 80], seed=4))
    with pytest.raises(ValueError, match="positive definite"):
        simulate_data("f =~ 2*x1 + x2\nx1 ~~ -5*x1", 10, seed=1)
    with pytest.raises(ValueError, match="sample sizes"):
        simulate_data(model, 0)


def _hermite_moments(coefs):
    """Mean, variance, skewness and excess kurtosis of a + bZ + cZ^2 + dZ^3 (quadrature)."""
    z, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    y = coefs[0] + coefs[1] * z + coefs[2] * z ** 2 + coefs[3] * z ** 3
    m = w @ y
    v = w @ (y - m) ** 2
    return m, v, w @ (y - m) ** 3 / v ** 1.5, w @ (y - m) ** 4 / v ** 2 - 3


def test_vale_maurelli_pieces_and_samples():
    for skew, kurt in [(1.0, 1.5), (1.0, 3.0), (-0.5, 0.0), (2.0, 7.0)]:
        coefs = fleishman_coefficients(skew, kurt)
        m, v, s, k = _hermite_moments(coefs)
        assert (m, v, s, k) == pytest.approx((0, 1, skew, kurt), abs=1e-8)
    c1, c2 = fleishman_coefficients(1.0, 1.5), fleishman_coefficients(2.0, 7.0)
    rho = _intermediate_correlation(0.5, c1, c2)
    z, w = np.polynomial.hermite_e.hermegauss(60)  # E[Y1 Y2] by 2-d quadrature
    w = w / w.sum()
    z1, z2 = np.meshgrid(z, z)
    x1, x2 = z1, rho * z1 + np.sqrt(1 - rho ** 2) * z2
    y1 = c1[0] + c1[1] * x1 + c1[2] * x1 ** 2 + c1[3] * x1 ** 3
    y2 = c2[0] + c2[1] * x2 + c2[2] * x2 ** 2 + c2[3] * x2 ** 3
    assert np.sum(np.outer(w, w) * y1 * y2) == pytest.approx(0.5, abs=1e-8)
    model = "f =~ 0.7*x1 + 0.7*x2 + 0.7*x3"
    data = simulate_data(model, 200_000, seed=2, skewness=1.0, kurtosis=[1.5, 1.5, 3.0])
    # sampling SDs at N = 200,000: skewness about 0.02, kurtosis about 0.1 (0.2 at 3.0)
    np.testing.assert_allclose(stats.skew(data), 1.0, atol=0.08)
    assert np.all(np.abs(stats.kurtosis(data) - [1.5, 1.5, 3.0]) < [0.3, 0.3, 0.6])
    np.testing.assert_allclose(data.cov(), population_moments(model)[0]["cov"], atol=0.02)
    with pytest.raises(ValueError, match="Fleishman"):
        fleishman_coefficients(3.0, 0.0)


# ================================================================== power
def test_analytic_power_matches_semtools_sspower():
    ref = REF["sspower"]
    ours = analytic_power(ref["population"], ref["analysis"], [c["n"] for c in ref["cases"]],
                          ref["parameter"], alpha=ref["alpha"])
    np.testing.assert_allclose(ours["ncp"], [c["ncp"] for c in ref["cases"]], rtol=1e-6)
    np.testing.assert_allclose(ours["power"], [c["power"] for c in ref["cases"]], rtol=1e-6)
    assert ours["df"].tolist() == [1, 1, 1]


@pytest.fixture(scope="module")
def lrt_power():
    ref = REF["sspower"]
    # std_lv: the analysis model has the population's parametrisation (true values compare)
    return power(ref["population"], ref["analysis"], [100, 200, 400], reps=150,
                 parameters=[ref["parameter"]], test="lrt", seed=17, progress=False,
                 return_replications=True, std_lv=True)


def test_monte_carlo_lrt_power_reproduces_satorra_saris(lrt_power):
    """Monte Carlo rejection rates of the LR test at three sample sizes against the analytic
    power (Satorra & Saris 1985): a joint chi-square test of the three binomial counts."""
    summary, _ = lrt_power
    ref = REF["sspower"]
    path = summary[summary["parameter"] == "f2~f1"]
    expected = np.array([c["power"] for c in ref["cases"]])
    observed = path["power"].to_numpy()
    var = expected * (1 - expected) / path["converged"].to_numpy()
    stat = np.sum((observed - expected) ** 2 / var)
    assert stats.chi2.sf(stat, 3) > 0.001, (observed, expected)
    assert np.all(np.abs(observed - expected) < 4 * np.sqrt(var))


@pytest.mark.slow
def test_monte_carlo_lrt_power_reproduces_satorra_saris_precisely():
    ref = REF["sspower"]
    summary = power(ref["population"], ref["analysis"], [100, 200, 400], reps=1000,
                    parameters=[ref["parameter"]], test="lrt", seed=18, progress=False)
    expected = np.array([c["power"] for c in ref["cases"]])
    sd = np.sqrt(expected * (1 - expected) / 1000)
    assert np.all(np.abs(summary["power"].to_numpy() - expected) < 3.5 * sd)


def test_power_summary_columns(lrt_power):
    summary, reps = lrt_power
    assert len(reps) == 450 and reps["error"].isna().all()
    assert summary["n"].tolist() == [100, 200, 400]
    assert summary["true"].tolist() == [0.25] * 3
    assert np.all(summary["power_all"] <= summary["power"] + 1e-12)
    assert np.all(summary["convergence_rate"] == summary["converged"] / 150)
    # coverage of 95% Wald intervals and SE accuracy within Monte Carlo error
    assert np.all(np.abs(summary["coverage"] - 0.95) < 4 * np.sqrt(0.95 * 0.05 / 150))
    assert np.all(np.abs(summary["se_ratio"] - 1) < 0.25)
    assert np.all(np.abs(summary["bias"]) < 3 * summary["sd_est"] / np.sqrt(150) + 0.01)
    per_rep = reps[reps.index // 150 == 0]["f2~f1|p_lrt"]
    assert summary.loc[0, "power"] == pytest.approx(np.mean(per_rep < 0.05))


def test_power_wald_groups_and_defined_parameters():
    pop = ("f =~ 0.7*y1 + 0.7*y2 + 0.7*y3\ny ~ c(0.4, 0.1)*f\n"
           "y1 ~~ 0.51*y1\ny2 ~~ 0.51*y2\ny3 ~~ 0.51*y3\ny ~~ 0.8*y")
    model = "f =~ y1 + y2 + y3\ny ~ c(b1, b2)*f\ndiff := b1 - b2"
    summary, reps = power(pop, model, [[150, 150]], reps=40, parameters=["y~f", "diff"],
                          seed=2, progress=False, std_lv=True, return_replications=True)
    assert summary["parameter"].tolist() == ["y~f", "y~f.g2", "diff"]
    # a replication's numbers are those of fit.estimates() on its data
    from sem_models.resampling.simulate import _Generator, _Population
    population = _Population(pop, 2)
    gen = _Generator(population.moments, population.ov)
    data = gen.frame(gen.draw(replication_rng(2, 5), [150, 150]), "group")
    table = sm.sem(model, data, group="group", std_lv=True).estimates()
    rows = table[(table["op"] == "~") | (table["op"] == ":=")]
    for col, key in (("est", "est"), ("se", "se"), ("pvalue", "p_wald")):
        mine = [reps.loc[5, f"{name}|{key}"] for name in ("y~f", "y~f.g2", "diff")]
        np.testing.assert_allclose(mine, rows[col], rtol=1e-6)
    assert summary["true"].tolist() == pytest.approx([0.4, 0.1, np.nan], nan_ok=True)
    assert summary.loc[0, "power"] > summary.loc[1, "power"]
    with pytest.raises(ValueError, match="not in the analysis model"):
        power(pop, model, [[50, 50]], reps=2, parameters=["y ~ y1"], seed=1)
    with pytest.raises(ValueError, match="nonlinear"):
        power(pop, model, [[50, 50]], reps=2, parameters=["diff"], test="lrt", seed=1)
    with pytest.raises(ValueError, match="test must be"):
        power(pop, model, [[50, 50]], reps=2, test="score", seed=1)
    with pytest.raises(ValueError, match="fixed"):
        power(pop, "f =~ y1 + y2 + y3\ny ~ 0*f", [[50, 50]], reps=2, parameters=["y~f"])


# ================================================================== the refit path
def _boot_sample(fit, seed=1):
    from sem_models.resampling.units import Units
    idx = Units([g.X.shape[0] for g in fit.data.groups]).draw(np.random.default_rng(seed))
    return [g.X[i] for g, i in zip(fit.data.groups, idx)]


REFIT_CASES = {
    "ml": (HS_MODEL, HS, {}),
    "groups_equal": (HS_PLAIN, HS, {"group": "school", "group_equal": ["loadings"]}),
    "fixed_x": ("visual =~ x1 + x2 + x3\nvisual ~ ageyr + grade", HS.dropna(subset=["grade"]),
                {}),
    "bounds_labels": ("visual =~ x1 + a*x2 + a*x3\nx1 ~~ lower(0.2)*x1", HS, {}),
    "fiml_mlr": (HS_PLAIN, pd.read_csv(DATA / "hs_mcar.csv"),
                 {"missing": "fiml", "estimator": "MLR"}),
}


@pytest.mark.parametrize("case", list(REFIT_CASES))
def test_refitter_equals_sem_with_the_same_start(case):
    """The fast refit (parameter table, matrices and constraint map reused) is the fit sem()
    gives for the same data and start=, for ML, groups with equal loadings, fixed
    covariates (their moments recomputed), labels and bounds, FIML."""
    from sem_models.resampling.refit import Refitter
    syntax, data, opts = REFIT_CASES[case]
    fit = _quiet(sm.sem, syntax, data, **opts)
    refitter = Refitter(fit)
    assert refitter.fast
    Xs = _boot_sample(fit)
    ours = refitter.fit(Xs)
    theirs = _quiet(sm.sem, syntax, refitter.frame(Xs), start=fit,
                    **dict(_refit_options(fit), group=opts.get("group")))
    np.testing.assert_allclose(ours.values, theirs.values, rtol=1e-9, atol=1e-10)
    assert ours.measures()["chisq"] == pytest.approx(theirs.measures()["chisq"], rel=1e-9)
    assert ours.converged and ours.nobs == [len(X) for X in Xs]
    # with the fit's inference options: its robust SEs and tests
    robust = Refitter(fit, inference=True).fit(Xs)
    same = _quiet(sm.sem, syntax, refitter.frame(Xs), start=fit, **opts)
    np.testing.assert_allclose(robust.estimates()["se"], same.estimates()["se"], rtol=1e-7,
                               atol=1e-10)


def test_refitter_falls_back_to_sem_and_keeps_cluster_ses():
    from sem_models.resampling.refit import Refitter
    # least squares and inequality constraints: refitted by sem() (same result as sem())
    for syntax, opts in [(HS_PLAIN, {"estimator": "ULS"}),
                         ("visual =~ x1 + a*x2 + b*x3\na > b", {})]:
        fit = _quiet(sm.sem, syntax, HS, **opts)
        refitter = Refitter(fit)
        assert not refitter.fast
        Xs = _boot_sample(fit, 3)
        np.testing.assert_allclose(refitter.fit(Xs).values,
                                   _quiet(sm.sem, syntax, refitter.frame(Xs), **opts).values,
                                   rtol=1e-6, atol=1e-8)
    # cluster-robust SEs in refits: the cluster ids come with the arrays
    data = pd.read_csv(DATA / "sim_clustered.csv").dropna(subset=["y1", "y2", "y3"])
    fit = _quiet(sm.sem, "f =~ y1 + y2 + y3", data, estimator="MLR", cluster="school")
    refitter = Refitter(fit, inference=True)
    ids = [data["school"].to_numpy()]
    X = [fit.data.groups[0].X]
    np.testing.assert_allclose(refitter.fit(X, clusters=ids).estimates()["se"],
                               fit.estimates()["se"], rtol=1e-7)
    with pytest.raises(ValueError, match="cluster ids"):
        refitter.fit(X)
    with pytest.raises(ValueError, match="group"):
        refitter.fit(X + X, clusters=ids + ids)


# ================================================================== se="bootstrap", fit methods
def test_se_bootstrap_as_lavaan(hs_fit):
    """se="bootstrap": SEs are the SDs of the draws of bootstrap(fit, bootstrap, seed=iseed)
    and the intervals percentile intervals (lavaan's parameterEstimates default
    boot.ci.type = "perc")."""
    fit = sm.sem(HS_MODEL, HS, se="bootstrap", bootstrap=60, iseed=7)
    res = bootstrap(hs_fit, 60, seed=7, executor="serial", progress=False)
    expected = res.estimates("percentile")
    table = fit.estimates()
    for col in ("est", "se", "z", "pvalue", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(table[col], expected[col], rtol=1e-6, atol=1e-9,
                                   err_msg=col)
    assert table.loc[table["op"] == ":=", "se"].iloc[0] == pytest.approx(
        np.std(res.draws["ab"], ddof=1), rel=1e-6)
    names = hs_fit.vcov().index
    np.testing.assert_allclose(fit.vcov().loc[names, names],
                               res.vcov(defined=False).to_numpy(), rtol=1e-6, atol=1e-12)
    lav = fit.estimates(boot_ci_type="bca.simple")  # lavaan's names work too
    np.testing.assert_allclose(lav["ci_lower"], res.estimates("bca_simple")["ci_lower"],
                               rtol=1e-6)
    # the estimates, fit and standardized solution are the ML fit's
    np.testing.assert_allclose(fit.measures()["chisq"], hs_fit.measures()["chisq"])
    assert "bootstrap" in fit.summary()
    for bad in ({"bootstrap": 1}, {"bootstrap": 2.5}, {"iseed": -1}):
        with pytest.raises(sm.ModelError, match="bootstrap|iseed"):
            sm.sem(HS_MODEL, HS, se="bootstrap", **bad)
    with pytest.raises(ValueError, match="se=\"bootstrap\""):
        hs_fit.bootstrap_result


def test_fit_bootstrap_and_simulate_methods(hs_fit):
    a = hs_fit.bootstrap(10, seed=3, progress=False, executor="serial")
    b = bootstrap(hs_fit, 10, seed=3, progress=False, executor="serial")
    pd.testing.assert_frame_equal(a.draws, b.draws)
    mg = sm.sem(HS_PLAIN, HS, group="school")
    data = mg.simulate(seed=4)
    assert data["school"].value_counts().to_dict() == dict(zip(mg.group_labels, mg.nobs))
    assert list(data.columns) == [*mg.data.ov_names, "school"]
    pd.testing.assert_frame_equal(data, mg.simulate(seed=4))
    exact = mg.simulate([50, 70], seed=1, empirical=True)
    implied = mg.implied()
    for label in mg.group_labels:
        X = exact.loc[exact["school"] == label, mg.data.ov_names].to_numpy()
        np.testing.assert_allclose(np.cov(X.T, bias=True), implied[label]["cov"], atol=1e-10)
        np.testing.assert_allclose(X.mean(axis=0), implied[label]["mean"], atol=1e-10)
    assert mg.simulate(101, seed=1)["school"].value_counts().sum() == 101
    with pytest.raises(ValueError, match="sample sizes|groups"):
        mg.simulate([10, 10, 10])


def test_simulate_from_ordinal_fit_recovers_its_thresholds_and_correlations():
    """fit.simulate() of an ordinal fit cuts the implied latent responses at the fitted
    thresholds into the fitted data's categories: a large sample's thresholds and
    polychoric correlations are the fit's implied ones."""
    cut = HS[["x1", "x2", "x3", "x4"]].apply(lambda x: pd.qcut(x, 3, labels=False) + 2)
    ordinal = _quiet(sm.cfa, "f =~ x1 + x2 + x3 + x4", cut, ordered=True)
    data = ordinal.simulate(100_000, seed=3)
    assert list(data.columns) == ["x1", "x2", "x3", "x4"]
    assert all(data[c].dtype == np.int64 and set(data[c]) == {2, 3, 4} for c in data)
    pd.testing.assert_frame_equal(data.iloc[:100], ordinal.simulate(100_000, seed=3).iloc[:100])
    from sem_models.estimation.categorical import categorical_stats_frame
    sample = categorical_stats_frame(data, ["x1", "x2", "x3", "x4"], gamma=False)
    sample = next(iter(sample.values()))
    implied = ordinal.implied()[None]
    np.testing.assert_allclose(sample.th, implied["th"].to_numpy(), atol=0.02)
    np.testing.assert_allclose(sample.cov, implied["cov"].to_numpy(), atol=0.02)
    with pytest.raises(ValueError, match="empirical"):
        ordinal.simulate(10, empirical=True)


def test_simulate_from_twolevel_fit():
    """fit.simulate() of a two-level fit: by default the fit's cluster sizes; y = within +
    between parts with the implied moments (pooled within covariance and the covariance of
    cluster means recover them in a large sample)."""
    data = pd.read_csv(DATA / "demo_twolevel.csv")
    model = ("level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n"
             "level: 2\n fb =~ y1 + y2 + y3\n fb ~ w1 + w2")
    fit = _quiet(sm.sem, model, data, cluster="cluster")
    same = fit.simulate(seed=1)
    assert len(same) == len(data) and same["cluster"].nunique() == data["cluster"].nunique()
    assert sorted(same.groupby("cluster").size()) == sorted(data.groupby("cluster").size())
    big = fit.simulate(200_000, seed=2)
    implied = fit.implied()
    y = ["y1", "y2", "y3"]
    within = big[y] - big.groupby("cluster")[y].transform("mean")
    size = big.groupby("cluster").size()
    assert size.iloc[:-1].nunique() == 1  # clusters of the fit's mean size
    k = size.iloc[0]
    np.testing.assert_allclose(np.cov(within.T) * k / (k - 1),
                               implied["within"]["cov"].loc[y, y], rtol=0.03)
    w = big.groupby("cluster")[["w1", "w2"]].first()
    np.testing.assert_allclose(np.cov(w.T), implied["between"]["cov"].loc[["w1", "w2"],
                                                                         ["w1", "w2"]],
                               atol=0.03)
    with pytest.raises(ValueError, match="n must be"):
        fit.simulate([10, 10])


def test_top_level_exports():
    import sem_models.resampling as rs
    assert sm.bootstrap is bootstrap and sm.power is power and sm.simulate_data is simulate_data
    assert sm.analytic_power is analytic_power and sm.power_curve is rs.power_curve
    assert {"bootstrap", "power", "simulate_data", "analytic_power", "power_curve"} \
        <= set(sm.__all__)


# ================================================================== simulation: ordinal, levels
def test_simulate_ordinal_items_from_thresholds():
    """Thresholds cut standardized latent responses (lavaan's simulateData: with loadings 0.8
    and unit factor variance, P(y1 = 1) = Phi(1) for y1 | 1*t1, not Phi(1 / sqrt(1.64)))."""
    model = ("f =~ 0.8*y1 + 0.8*y2 + 0.8*y3 + 0.8*y4\ny1 | 1*t1\ny2 | -0.5*t1 + 0.5*t2\n"
             "y3 | 0*t1\n")
    data = simulate_data(model, 40_000, seed=5)
    assert data["y1"].dtype == np.int64 and data["y4"].dtype == float
    sd = 0.5 / np.sqrt(40_000)  # binomial SD of a proportion, at most
    assert np.mean(data["y1"] == 1) == pytest.approx(stats.norm.cdf(1), abs=4 * sd)
    p2 = data["y2"].value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(p2, np.diff(stats.norm.cdf([-np.inf, -0.5, 0.5, np.inf])),
                               atol=4 * sd)
    assert set(data["y3"]) == {1, 2} and data["y4"].var() == pytest.approx(1.64, rel=0.03)
    # the ordinal fit recovers the standardized loadings
    fit = _quiet(sm.cfa, "f =~ y1 + y2 + y3 + y4", data.iloc[:5000],
                 ordered=["y1", "y2", "y3"], std_lv=True)
    std = fit.standardized()
    loadings = std.loc[std["op"] == "=~", "std_all"].to_numpy()
    # y4 is continuous with residual variance 1: standardized loading 0.8 / sqrt(1.64)
    np.testing.assert_allclose(loadings, [0.8, 0.8, 0.8, 0.8 / np.sqrt(1.64)], atol=0.05)
    with pytest.raises(ValueError, match="explained variance"):
        simulate_data("f =~ 1.2*y1 + 0.5*y2 + 0.5*y3\ny1 | 0*t1", 10, seed=1)
    with pytest.raises(ValueError, match="not an observed variable"):
        simulate_data("f =~ 0.5*y1 + 0.5*y2 + 0.5*y3\nf | 0*t1", 10, seed=1)
    # groups: per-group thresholds
    two = simulate_data("f =~ 0.7*y1 + 0.7*y2 + 0.7*y3\ny1 | c(-1, 1)*t1", [3000, 3000],
                        seed=2)
    share = two.groupby("group")["y1"].apply(lambda s: np.mean(s == 1))
    np.testing.assert_allclose(share, stats.norm.cdf([-1, 1]), atol=0.03)


TWO_LEVEL_POP = """
level: 1
  fw =~ 1*y1 + 0.8*y2 + 0.6*y3
  fw ~ 0.5*x1
  y1 ~ 0.3*1
level: 2
  fb =~ 1*y1 + 0.8*y2 + 0.6*y3
  fb ~ 0.4*w1
  fb ~~ 0.3*fb
  y1 ~~ 0.1*y1
  y2 ~~ 0.1*y2
  y3 ~~ 0.1*y3
  y2 ~ 2*1
"""


def test_simulate_two_level_data():
    """y_ij = within part + between part: the pooled within-cluster covariance estimates
    Sigma_W, the covariance of the cluster means Sigma_B + Sigma_W / m; w1 (level 2 only) is
    constant within clusters, x1 (level 1 only) has no between part."""
    sizes = [20] * 400
    data = simulate_data(TWO_LEVEL_POP, None, seed=11, cluster_sizes=sizes)
    assert list(data.columns) == ["y1", "y2", "y3", "x1", "w1", "cluster"]
    assert len(data) == 8000 and data["cluster"].nunique() == 400
    assert (data.groupby("cluster")["w1"].nunique() == 1).all()
    from sem_models.model.levels import parse_twolevel
    from sem_models.resampling.simulate import _Population
    syntax = parse_twolevel(TWO_LEVEL_POP)
    within = _Population(syntax.levels[1], meanstructure=True)
    between = _Population(syntax.levels[2], meanstructure=True)
    ys = ["y1", "y2", "y3", "x1"]
    centred = data[ys] - data.groupby("cluster")[ys].transform("mean")
    sw = centred.T @ centred / (len(data) - 400)
    iw = [within.ov.index(v) for v in ys]
    np.testing.assert_allclose(sw, within.moments[0][1][np.ix_(iw, iw)], atol=0.06)
    means = data.groupby("cluster")[["y1", "y2", "y3"]].mean()
    ib = [between.ov.index(v) for v in ["y1", "y2", "y3"]]
    expected = between.moments[0][1][np.ix_(ib, ib)] + within.moments[0][1][
        np.ix_(iw[:3], iw[:3])] / 20
    np.testing.assert_allclose(np.cov(means.T), expected, atol=0.1)
    np.testing.assert_allclose(data[["y1", "y2"]].mean(), [0.3, 2.0], atol=0.1)
    # a two-level fit recovers the population values
    fit = _quiet(sm.sem, "level: 1\nfw =~ y1 + y2 + y3\nfw ~ x1\nlevel: 2\nfb =~ y1 + y2 + y3\n"
                 "fb ~ w1", data, cluster="cluster")
    est = fit.estimates()
    got = est[est["op"].isin(["=~", "~"]) & (est["se"] > 0)]["est"].to_numpy()
    np.testing.assert_allclose(got, [0.8, 0.6, 0.5, 0.8, 0.6, 0.4], atol=0.08)
    # one size for every cluster with the total n; errors
    even = simulate_data(TWO_LEVEL_POP, 95, seed=1, cluster_sizes=10)
    assert even.groupby("cluster").size().tolist() == [10] * 9 + [5]
    with pytest.raises(ValueError, match="cluster_sizes"):
        simulate_data(TWO_LEVEL_POP, 100, seed=1)
    with pytest.raises(ValueError, match="sum"):
        simulate_data(TWO_LEVEL_POP, 100, seed=1, cluster_sizes=[10, 10])
    with pytest.raises(ValueError, match="two-level"):
        simulate_data("f =~ 0.5*y1 + 0.5*y2 + 0.5*y3", 10, cluster_sizes=[5, 5])


# ================================================================== power curve
def test_binary_curve_fit_is_maximum_likelihood():
    from scipy.optimize import minimize

    from sem_models.resampling.curve import fit_binary_curve
    rng = np.random.default_rng(3)
    x = rng.uniform(5, 25, 400)
    y = (rng.random(400) < stats.norm.cdf(-2 + 0.15 * x)).astype(float)
    for link, cdf in (("probit", stats.norm.cdf), ("logit", lambda e: 1 / (1 + np.exp(-e)))):
        beta, cov = fit_binary_curve(x, y, link)

        def nll(b):
            p = np.clip(cdf(b[0] + b[1] * x), 1e-12, 1 - 1e-12)
            return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))

        ref = minimize(nll, [0.0, 0.0], method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
        np.testing.assert_allclose(beta, ref.x, rtol=1e-4, atol=1e-5)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert np.isnan(fit_binary_curve(x, np.ones(400))[0]).all()


@pytest.fixture(scope="module")
def lrt_curve():
    ref = REF["sspower"]
    return sm.power_curve(ref["population"], ref["analysis"], (60, 600), reps=300,
                          parameters=ref["parameter"], test="lrt", seed=23, progress=False,
                          std_lv=True)


def test_power_curve_reproduces_satorra_saris(lrt_curve):
    """One run with n drawn per replication: the fitted probit curve on sqrt(n) at n = 100,
    200, 400 against the analytic power of the LR test, within the curve's own 99.9% band."""
    ref = REF["sspower"]
    curve = lrt_curve
    expected = np.array([c["power"] for c in ref["cases"]])
    got = curve.power([100, 200, 400])
    coef = curve.coef.iloc[0]
    x = np.sqrt([100, 200, 400])
    se_eta = np.sqrt(coef["var_intercept"] + 2 * x * coef["cov"] + x ** 2 * coef["var_slope"])
    se_p = stats.norm.pdf(stats.norm.ppf(got)) * se_eta
    assert np.all(np.abs(got - expected) < 3.3 * se_p), (got, expected, se_p)
    assert coef["used"] == 300 and coef["slope"] > 0
    n80 = curve.n_for(0.8)
    assert 150 < n80 < 320 and curve.power(n80) == pytest.approx(0.8)
    reps = curve.replications
    assert reps["n"].between(60, 600).all() and reps["n"].nunique() > 100
    table = curve.table
    assert (table["ci_lower"] <= table["power"]).all() and (table["power"] <= table["ci_upper"]).all()
    assert table["power"].is_monotonic_increasing
    assert np.isnan(curve.n_for(0.999999))  # beyond the simulated range: not extrapolated


def test_power_curve_options_and_backends():
    pop = "f =~ 0.7*y1 + 0.7*y2 + 0.7*y3\ny ~ 0.25*f"
    model = "f =~ y1 + y2 + y3\ny ~ f"
    a = sm.power_curve(pop, model, (40, 300), reps=30, parameters="y~f", seed=4,
                       progress=False, executor="serial", link="logit", scale="log")
    b = sm.power_curve(pop, model, (40, 300), reps=30, parameters="y~f", seed=4,
                       progress=False, executor=2, link="logit", scale="log")
    pd.testing.assert_frame_equal(a.replications, b.replications)
    assert a.link == "logit" and a.scale == "log"
    groups = sm.power_curve("f =~ 0.7*y1 + 0.7*y2 + 0.7*y3\ny ~ c(0.3, 0.1)*f", model,
                            (60, 200), reps=12, parameters="y~f", seed=1, progress=False,
                            group_shares=[1, 3], executor="serial")
    assert list(groups.coef.index) == ["y~f", "y~f.g2"]
    with pytest.raises(ValueError, match="several parameters"):
        groups.power(100)
    with pytest.raises(ValueError, match="n_range"):
        sm.power_curve(pop, model, (300, 40), reps=20)
    with pytest.raises(ValueError, match="link"):
        sm.power_curve(pop, model, (40, 300), reps=20, link="cloglog")
    with pytest.raises(ValueError, match="group_shares"):
        sm.power_curve(pop, model, (40, 300), reps=20, group_shares=[1, 1])


# ================================================================== bootstrap of a statistic
def column_means(data):
    """Module level: picklable for worker processes."""
    return data.mean(axis=0)


def test_statistic_bootstrap_backends_strata_clusters_bca():
    from sem_models.resampling import bootstrap_statistic
    rng = np.random.default_rng(8)
    arr = rng.gamma(2.0, size=(60, 2))
    strata = np.repeat([0, 1], 30)
    clusters = np.repeat(np.arange(12), 5)
    serial = bootstrap_statistic(arr, column_means, 40, seed=3, strata=strata,
                                 cluster=clusters, executor="serial", progress=False)
    procs = bootstrap_statistic(arr, column_means, 40, seed=3, strata=strata,
                                cluster=clusters, executor=2, progress=False)
    pd.testing.assert_frame_equal(serial.draws, procs.draws, check_exact=True)
    # replicate r: whole clusters drawn within strata from replication r's stream
    from sem_models.resampling.units import Units
    rows = [np.flatnonzero(strata == s) for s in (0, 1)]
    units = Units([30, 30], [clusters[r] for r in rows])
    idx = np.concatenate([r[p] for r, p in zip(rows, units.draw(replication_rng(3, 5)))])
    np.testing.assert_allclose(serial.values()[5], arr[idx].mean(axis=0), rtol=1e-12)
    # BCa: the shared interval code on the jackknife of clusters
    jack = serial.jackknife()
    assert jack.shape == (12, 2)
    np.testing.assert_allclose(jack[0], arr[5:].mean(axis=0), rtol=1e-12)
    table = serial.table("bca", 0.9)
    lo, hi = bca_interval(serial.values()[:, 0], arr[:, 0].mean(), jack[:, 0], 0.9)
    assert (table.iloc[0]["ci_lower"], table.iloc[0]["ci_upper"]) == pytest.approx((lo, hi))
    with pytest.raises(ValueError, match="nested"):
        bootstrap_statistic(arr, column_means, 5, seed=1, strata=strata,
                            cluster=np.arange(60) % 7)


def test_rsa_bootstrap_resamples_clusters():
    """response_surface(bootstrap_cluster=) resamples whole clusters within groups: the
    replicates differ from the row bootstrap, and the jackknife has one value per cluster."""
    from sem_models.discrepancy.rsa import response_surface
    rng = np.random.default_rng(2)
    n = 240
    d = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n),
                      "school": np.repeat(np.arange(24), 10),
                      "arm": np.repeat(["a", "b"], 120)})
    d["z"] = 0.3 * d["x"] - 0.2 * d["y"] + 0.2 * d["x"] * d["y"] + rng.normal(size=n) \
        + np.repeat(rng.normal(0, 0.7, 24), 10)
    kwargs = dict(estimator="ML", missing="listwise", center=None, models=["full"],
                  bootstrap=40, seed=3, group="arm")
    rows = _quiet(response_surface, d, "z", "x", "y", **kwargs)
    schools = _quiet(response_surface, d, "z", "x", "y", bootstrap_cluster="school", **kwargs)
    a = rows.bootstrap.set_index(["group", "parameter"])
    b = schools.bootstrap.set_index(["group", "parameter"])
    np.testing.assert_allclose(a["est"], b["est"])
    assert not np.allclose(a["boot_se"], b["boot_se"])
    assert (b["n_valid"] == 40).all()


# ================================================================== the study
@pytest.fixture(scope="module")
def study_power_data():
    from measurement import reverse_score, scale_means

    from sem_models.study.pipeline import _load, alliance_design
    raw, _ = _load(None)
    design = alliance_design()
    df = reverse_score(raw, design)
    tm = scale_means(df, design, min_items=0.5, level="trait")
    d = pd.concat([df[["format", "school", "int_pre", "int_fu"]], tm], axis=1)
    d["M"] = (d["t_bond"] + d["c_bond"]) / 2
    d["D"] = d["t_bond"] - d["c_bond"]
    return d


def test_anova_covariance_estimators():
    """Between / within covariance by the one-way ANOVA estimators, against the textbook
    univariate formulas written out with loops (unbalanced clusters)."""
    from sem_models.study.resampling_step import anova_covariances
    rng = np.random.default_rng(4)
    sizes = rng.integers(5, 15, 30)
    ids = np.repeat(np.arange(30), sizes)
    b = rng.multivariate_normal([0, 0], [[0.5, 0.2], [0.2, 0.3]], 30)
    Z = b[ids] + rng.normal(size=(len(ids), 2))
    between, within = anova_covariances(Z, ids)
    for k in range(2):
        z = Z[:, k]
        groups = [z[ids == j] for j in range(30)]
        N, J = len(z), 30
        ssw = sum(((g - g.mean()) ** 2).sum() for g in groups)
        ssb = sum(len(g) * (g.mean() - z.mean()) ** 2 for g in groups)
        n0 = (N - sum(len(g) ** 2 for g in groups) / N) / (J - 1)
        assert within[k, k] == pytest.approx(ssw / (N - J), rel=1e-12)
        assert between[k, k] == pytest.approx(max((ssb / (J - 1) - ssw / (N - J)) / n0, 0),
                                              rel=1e-10)
    assert np.all(np.linalg.eigvalsh(between) >= -1e-12)
    # no between-cluster variance: the estimate is clipped at 0
    flat, _ = anova_covariances(rng.normal(size=(200, 1)), np.repeat(np.arange(20), 10))
    assert flat[0, 0] >= 0


def test_school_power(study_power_data):
    from sem_models.study.resampling_step import school_power
    labels = ["group", "individual"]
    a = school_power(study_power_data, "format", labels, "school", (4, 12), reps=16, seed=3,
                     executor="serial")
    b = school_power(study_power_data, "format", labels, "school", (4, 12), reps=16, seed=3,
                     executor=2)
    pd.testing.assert_frame_equal(a, b)
    assert a["schools_per_format"].tolist() == [4, 12]
    assert (a["n"] == 2 * a["schools_per_format"] * a["students_per_school"]).all()
    assert a["power"].between(0, 1).all() and (a["converged"] == 16).all()
    assert a["type1_error"].between(0, 1).all()
    # the population difference of the D paths is the data's estimate
    fit = _quiet(sm.sem, "int_fu ~ c(bM1, bM2)*M + c(bD1, bD2)*D + int_pre",
                 study_power_data.dropna(subset=["int_fu", "M", "D", "int_pre"]),
                 group="format", group_labels=labels)
    values = fit.label_values()
    assert a["difference"].iloc[0] == pytest.approx(values["bD2"] - values["bD1"], rel=1e-6)
    assert a["power"].iloc[1] >= a["power"].iloc[0]


def test_study_resampling_options():
    from sem_models.cli import build_parser
    from sem_models.study.pipeline import StudyError, run_study
    ns = build_parser().parse_args(["study", "--power", "--power-reps", "50",
                                    "--lcm-bootstrap", "7"])
    assert ns.power and ns.power_reps == 50 and ns.lcm_bootstrap == 7
    assert not build_parser().parse_args(["study"]).power
    for bad in ({"lcm_bootstrap": -1}, {"power": True, "power_reps": 0},
                {"power": True, "power_schools": [1, 5]},
                {"power": True, "cluster": None}):
        with pytest.raises(StudyError):
            run_study(out_dir=None, report=False, **bad)


@pytest.mark.slow
def test_lcm_school_bootstrap():
    from measurement import reverse_score

    from sem_models.discrepancy.congruence import congruence_items, fit_congruence
    from sem_models.study.pipeline import _load, alliance_design
    from sem_models.study.resampling_step import lcm_bootstrap_table
    raw, _ = _load(None)
    design = alliance_design()
    df = reverse_score(raw, design)
    t_items, c_items, pairs = congruence_items(design, "bond", raters=("t", "c"))
    lcm = _quiet(fit_congruence, df, t_items, c_items, "int_fu", ["int_pre"],
                 dimension="bond", group="format", group_labels=["group", "individual"],
                 residual_pairs=pairs, estimator="MLR", missing="fiml")
    table = lcm_bootstrap_table(lcm, df, "school", 4, seed=1, executor="serial")
    assert table["parameter"].tolist()[-1] == "int_fu ~ D (difference)"
    paths = lcm.paths().set_index(["group", "rhs"])["est"]
    assert table["est"].iloc[-1] == pytest.approx(paths[("individual", "D")]
                                                  - paths[("group", "D")])
    assert (table["n_valid"] == 4).all() and (table["ci_lower"] <= table["ci_upper"]).all()


# ================================================================== bootstrap: what it must show
def test_bootstrap_ses_follow_mlr_on_skewed_data():
    """On non-normal data (Vale-Maurelli, excess kurtosis 7) the bootstrap SEs of the
    variances estimate the robust (MLR) SEs, which exceed the normal-theory ML SEs."""
    pop = ("f =~ 0.8*y1 + 0.7*y2 + 0.6*y3 + 0.7*y4\n"
           "y1 ~~ 0.36*y1\ny2 ~~ 0.51*y2\ny3 ~~ 0.64*y3\ny4 ~~ 0.51*y4")
    data = simulate_data(pop, 600, seed=21, skewness=2.0, kurtosis=7.0)
    ml = sm.sem("f =~ y1 + y2 + y3 + y4", data)
    mlr = sm.sem("f =~ y1 + y2 + y3 + y4", data, estimator="MLR")
    table = bootstrap(ml, 300, seed=22, progress=False).estimates()
    free = ml.estimates()["se"].to_numpy() > 0
    boot_se = table["se"].to_numpy()[free]
    robust = mlr.estimates()["se"].to_numpy()[free]
    normal = ml.estimates()["se"].to_numpy()[free]
    variances = (table["op"].to_numpy()[free] == "~~")
    # bootstrap / MLR near 1 (Monte Carlo SD of a bootstrap SE ~ 4% here, more with kurtosis)
    assert np.all(np.abs(boot_se / robust - 1) < 0.3), boot_se / robust
    assert abs(np.mean(boot_se / robust) - 1) < 0.1
    # the normal-theory SEs of the variances are far too small; the bootstrap sees that
    assert np.all(boot_se[variances] > 1.2 * normal[variances])


def test_bollen_stine_pvalues_are_uniform_under_a_true_model():
    """A small simulation: data from the analysed model, Bollen-Stine p-values of 16 samples
    are uniform (Kolmogorov-Smirnov) and centred near 1/2."""
    pop = ("f =~ 0.8*y1 + 0.7*y2 + 0.6*y3 + 0.7*y4 + 0.6*y5\n"
           "y1 ~~ 0.36*y1\ny2 ~~ 0.51*y2\ny3 ~~ 0.64*y3\ny4 ~~ 0.51*y4\ny5 ~~ 0.64*y5")
    pvalues = []
    for k in range(16):
        data = simulate_data(pop, 150, seed=100 + k)
        fit = sm.sem("f =~ y1 + y2 + y3 + y4 + y5", data)
        pvalues.append(bootstrap(fit, 39, kind="bollen_stine", seed=k, executor="serial",
                                 progress=False).bollen_stine_pvalue)
    pvalues = np.array(pvalues)
    assert stats.kstest(pvalues, "uniform").pvalue > 0.01, pvalues
    assert 0.25 < pvalues.mean() < 0.75
