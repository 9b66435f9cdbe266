"""The vectorised bootstrap refits (sem_models/resampling/batched.py, issue 17).

The kernel fits a chunk of bootstrap samples at once.  Its draws are compared with the
per-replicate path (``Refitter.fit``, one optimizer run per sample; itself tested against
lavaan in test_resampling.py) on the same samples: both stop at max |gradient| < 1e-8, so
they agree to the optimizer's tolerance.  Determinism: the draws must be bitwise identical
whatever the executor, the batch size, the number of replicates and the other replicates of
a chunk.
"""
from __future__ import annotations

import concurrent.futures as cf
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from sem_models.resampling import bootstrap
from sem_models.resampling import batched
from sem_models.resampling.boot import _BootTask, _Refit
from sem_models.resampling.executor import _batches, _units, replication_rng
from sem_models.resampling.units import _Sampler

ROOT = Path(__file__).resolve().parents[1]
HS = pd.read_csv(ROOT / "data" / "HolzingerSwineford1939.csv")
sys.path.insert(0, str(ROOT / "tests" / "reference"))
import make_resampling_inputs as inputs  # noqa: E402

CFA = inputs.HS_MODEL  # three factors, ab := a*b
PLAIN = inputs.HS_PLAIN
MEDIATION = """
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
textual ~ a*visual
speed   ~ b*textual + visual
ind := a*b
"""
COVARIATES = """
textual =~ x4 + x5 + x6
textual ~ x1 + x2
x9 ~ x3
"""
LINEAR_EQ = """
visual  =~ x1 + a*x2 + b*x3
textual =~ x4 + x5 + x6
a == 2*b - 0.5
"""


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


FITS = {
    "cfa": lambda: sm.sem(CFA, HS),
    "two_groups": lambda: sm.cfa(PLAIN, HS, group="school", group_equal=["loadings"]),
    "mediation": lambda: sm.sem(MEDIATION, HS),
    "covariates": lambda: sm.sem(COVARIATES, HS, meanstructure=True),
    "linear_eq": lambda: sm.sem(LINEAR_EQ, HS),
}


@pytest.fixture(scope="module")
def fits():
    return {name: _quiet(make) for name, make in FITS.items()}


def _per_replicate(monkeypatch, fit, R, **kwargs):
    """The draws of the per-replicate path (the kernel switched off)."""
    with monkeypatch.context() as m:
        m.setattr(_Refit, "chunk_size", property(lambda self: None))
        return _quiet(bootstrap, fit, R, executor="serial", progress=False, **kwargs)


def _compare(a, b, names):
    x, y = a.draws[names].to_numpy(float), b.draws[names].to_numpy(float)
    # both solutions are within the optimizer's tolerance (|gradient| < 1e-8) of the optimum
    np.testing.assert_allclose(x, y, rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(a.draws["chisq"], b.draws["chisq"], rtol=1e-9)
    assert a.draws["converged"].all() and b.draws["converged"].all()


@pytest.mark.parametrize("name", list(FITS))
def test_kernel_matches_the_per_replicate_path(fits, name, monkeypatch):
    fit = fits[name]
    refit = _Refit(fit, [g.X for g in fit.data.groups])
    assert refit.kernel is not None and refit.chunk_size >= 8  # the kernel applies
    R = 40
    fast = _quiet(bootstrap, fit, R, seed=11, executor="serial", progress=False)
    slow = _per_replicate(monkeypatch, fit, R, seed=11)
    assert list(fast.draws.columns) == list(slow.draws.columns)
    _compare(fast, slow, fast.names)
    # the kernel itself finished every replicate (none went to the per-replicate path)
    sampler = _Sampler("ordinary", refit.Xs, None, None)
    samples = [sampler(replication_rng(11, r)) for r in range(R)]
    covs, means, nobs, usable = batched.sample_moments(samples, fit.model.n_groups, fit.model.n_ov)
    res = refit.kernel.fit(covs, means, nobs, usable)
    assert res.ok.all() and (res.iterations >= 1).all()


@pytest.mark.parametrize("kind", ["bollen_stine", "parametric"])
def test_kernel_matches_for_other_kinds(fits, kind, monkeypatch):
    fit = fits["two_groups"] if kind == "parametric" else fits["cfa"]
    fast = _quiet(bootstrap, fit, 30, kind=kind, seed=5, executor="serial", progress=False)
    slow = _per_replicate(monkeypatch, fit, 30, kind=kind, seed=5)
    _compare(fast, slow, fast.names)
    if kind == "bollen_stine":
        assert fast.bollen_stine_pvalue == slow.bollen_stine_pvalue


def test_defined_quantities_from_the_kernel(fits):
    """:= rows are the expression at the drawn values (a*b), as the scalar path computes."""
    res = _quiet(bootstrap, fits["mediation"], 16, seed=3, executor="serial", progress=False)
    d = res.draws
    assert np.array_equal(d["ind"].to_numpy(), (d["textual~visual"] * d["speed~textual"])
                          .to_numpy())


def test_jackknife_through_the_kernel(fits, monkeypatch):
    fit = fits["cfa"]
    res = _quiet(bootstrap, fit, 20, seed=2, executor="serial", progress=False)
    jack = res.jackknife(executor="serial")
    with monkeypatch.context() as m:
        m.setattr(_Refit, "chunk_size", property(lambda self: None))
        res._jackknife = None
        slow = res.jackknife(executor="serial")
    assert len(jack) == fit.ntotal
    np.testing.assert_allclose(jack[res.names].to_numpy(float),
                               slow[res.names].to_numpy(float), rtol=2e-6, atol=2e-7)


# ---------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", ["cfa", "two_groups", "linear_eq", "covariates"])
def test_chunk_composition_does_not_change_a_replicate(fits, name):
    """A replicate's result is the same bits whatever else is in its chunk (every operation
    is per data set: stacked BLAS / LAPACK calls, elementwise arithmetic)."""
    fit = fits[name]
    refit = _Refit(fit, [g.X for g in fit.data.groups])
    sampler = _Sampler("ordinary", refit.Xs, None, None)
    samples = [sampler(replication_rng(7, r)) for r in range(24)]
    G = fit.model.n_groups
    p = fit.model.n_ov
    full = refit.kernel.fit(*batched.sample_moments(samples, G, p))
    for sub in ([0], [5], list(range(8)), list(range(3, 20)), [1, 7, 23]):
        part = refit.kernel.fit(*batched.sample_moments([samples[i] for i in sub], G, p))
        assert np.array_equal(part.values, full.values[sub])
        assert np.array_equal(part.fmin, full.fmin[sub])
        assert np.array_equal(part.ok, full.ok[sub])


def test_draws_identical_across_executors_and_batch_sizes(fits):
    fit = fits["two_groups"]
    R = 70
    ref = bootstrap(fit, R, seed=21, executor="serial", progress=False).draws
    runs = {
        "serial, batch 7": dict(executor="serial", batch_size=7),
        "serial, batch 100": dict(executor="serial", batch_size=100),
        "2 processes, batch 13": dict(executor=2, batch_size=13),
        "1 process": dict(executor=1),
    }
    for label, kwargs in runs.items():
        other = bootstrap(fit, R, seed=21, progress=False, **kwargs).draws
        pd.testing.assert_frame_equal(other, ref, check_exact=True, obj=label)
    with cf.ThreadPoolExecutor(2) as pool:
        threads = bootstrap(fit, R, seed=21, executor=pool, batch_size=5, progress=False)
    pd.testing.assert_frame_equal(threads.draws, ref, check_exact=True)
    # fewer replicates: the first ones of the longer run (its last chunk is cut short)
    short = bootstrap(fit, 37, seed=21, executor="serial", progress=False).draws
    pd.testing.assert_frame_equal(short, ref.iloc[:37], check_exact=True)


def test_draws_identical_on_dask(fits):
    distributed = pytest.importorskip("distributed")
    fit = fits["cfa"]
    ref = bootstrap(fit, 45, seed=4, executor="serial", progress=False).draws
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = bootstrap(fit, 45, seed=4, executor=client, batch_size=9, progress=False)
    pd.testing.assert_frame_equal(dask.draws, ref, check_exact=True)


def test_batches_are_made_of_whole_chunks():
    reps = list(range(3, 70))
    assert _units([0, 1, 2, 3, 5, 6], 4) == [[0, 1, 2, 3], [5, 6]]
    assert _units([3, 4, 5], 1) == [[3], [4], [5]]
    for size in (1, 7, 16, 50):
        batches = _batches(reps, size, 16)
        assert [r for b in batches for r in b] == reps
        for b in batches:  # whole chunks: a chunk never spans two batches
            chunks = {r // 16 for r in b}
            assert all(not ({r // 16 for r in other} & chunks)
                       for other in batches if other is not b)
    assert _batches([0, 1, 2, 4], 2) == [[0, 1], [2], [4]]  # chunk 1: as before


# ---------------------------------------------------------------------- fall-backs
def test_failed_replicates_take_the_per_replicate_path(fits):
    """A sample whose covariance matrix is singular is not fitted by the kernel; the
    per-replicate path then reports its error, as without the kernel."""
    fit = fits["cfa"]
    refit = _Refit(fit, [g.X for g in fit.data.groups])
    X = refit.Xs[0]
    good = [[X[np.random.default_rng(k).integers(0, len(X), len(X))]] for k in range(3)]
    singular = [np.repeat(X[:4], 20, axis=0)]  # 4 distinct rows: rank 3 < 9
    short = [X[:1]]
    out = refit.fit_many([good[0], singular, good[1], short, good[2]])
    assert isinstance(out[1], Exception) and "not positive definite" in str(out[1])
    assert isinstance(out[3], Exception) and "case" in str(out[3])
    for k, sample in zip((0, 2, 4), good):
        assert out[k]["converged"]
        single = refit.extract(refit.fit(sample))
        assert out[k]["chisq"] == pytest.approx(single["chisq"], rel=1e-9)


def test_kernel_does_not_apply_to_fiml_or_bounds():
    mcar = pd.read_csv(ROOT / "tests" / "reference" / "data" / "hs_mcar.csv")
    fiml = _quiet(sm.sem, PLAIN, mcar, missing="fiml")
    assert _Refit(fiml, [g.X for g in fiml.data.groups]).kernel is None
    bounded = _quiet(sm.sem, PLAIN + "\nx1 ~~ v1*x1\nv1 > 0.1", HS)
    assert _Refit(bounded, [g.X for g in bounded.data.groups]).kernel is None


def test_task_runs_chunks_and_single_replicates_alike(fits):
    fit = fits["cfa"]
    refit = _Refit(fit, [g.X for g in fit.data.groups])
    task = _BootTask(refit, _Sampler("ordinary", refit.Xs, None, None))
    rows = task.run_chunk([replication_rng(9, r) for r in range(5)], list(range(5)))
    for r, row in enumerate(rows):
        single = task(replication_rng(9, r), r)
        assert row.keys() == single.keys()
        np.testing.assert_allclose([row[k] for k in refit.names], [single[k] for k in refit.names],
                                   rtol=2e-6, atol=2e-7)


def test_replicates_the_kernel_does_not_finish_are_refitted_one_by_one(fits, monkeypatch):
    """With no iterations left in the kernel every replicate takes the per-replicate path:
    the draws are then exactly those of that path."""
    fit = fits["two_groups"]
    monkeypatch.setattr(batched, "MAX_KERNEL_ITER", 0)
    fast = _quiet(bootstrap, fit, 12, seed=8, executor="serial", progress=False)
    slow = _per_replicate(monkeypatch, fit, 12, seed=8)
    pd.testing.assert_frame_equal(fast.draws, slow.draws, check_exact=True)


def test_cluster_bootstrap_through_the_kernel(fits, monkeypatch):
    """Whole clusters: the group sizes (and weights) differ between replicates."""
    fit = fits["two_groups"]
    ids = (np.arange(fit.data.n_rows_input) // 7).astype(str)
    fast = _quiet(bootstrap, fit, 24, seed=6, cluster=ids, executor="serial", progress=False)
    slow = _per_replicate(monkeypatch, fit, 24, seed=6, cluster=ids)
    _compare(fast, slow, fast.names)
