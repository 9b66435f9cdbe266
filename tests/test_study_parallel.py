"""The study's steps in a worker process (issue 18): ``run_study(jobs=2)`` runs the invariance
steps in a forked worker while the other steps run in the calling process, with the results of
a run in one process.

Fast tests use the real pipeline with cheap stand-in steps (monkeypatched) and the worker
machinery on toy steps; the full study with ``jobs=1`` and ``jobs=2`` compared table by table
is marked slow.
"""
from __future__ import annotations

import functools
import json
import os
import pickle
import threading
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sem_models.study import parallel, pipeline

_active_threads = threading.active_count  # unpatched by the tests


@pytest.fixture(autouse=True)
def _only_new_threads(monkeypatch):
    """Earlier tests may leave threads behind (thread pools, progress bars), with which the
    study would not fork: count only the threads started during the test."""
    before = _active_threads()
    monkeypatch.setattr(parallel.threading, "active_count",
                        lambda: _active_threads() - before + 1)


# ----------------------------------------------------------------------------- helpers
class _Cached:
    """An object with a cached property whose value holds a closure (not picklable)."""

    def __init__(self, x):
        self.x = np.arange(x, dtype=float)

    @functools.cached_property
    def closure(self):
        scale = 2.0
        return lambda: self.x * scale

    @functools.cached_property
    def total(self):
        return float(self.x.sum())


def test_fit_pickler_leaves_out_unpicklable_cached_values():
    obj = _Cached(5)
    assert obj.total == 10.0 and obj.closure()[1] == 2.0  # both cached now
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps({"fit": obj})
    back = pickle.loads(parallel.dumps({"fit": obj, "other": [1, 2]}))
    new = back["fit"]
    assert "closure" not in new.__dict__            # left out ...
    assert new.__dict__["total"] == 10.0            # ... the picklable cached value kept
    np.testing.assert_array_equal(new.closure(), obj.x * 2.0)  # ... and recomputed on use
    assert back["other"] == [1, 2]
    # plain objects take the ordinary pickle path
    assert pickle.loads(parallel.dumps(pd.DataFrame({"a": [1.5]}))).equals(
        pd.DataFrame({"a": [1.5]}))


def test_resolve_jobs(monkeypatch):
    with pytest.raises(ValueError, match="jobs must be 1 or more"):
        parallel.resolve_jobs(0)
    assert parallel.resolve_jobs(1) == 1
    monkeypatch.setattr(parallel, "can_fork", lambda: True)
    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    assert parallel.resolve_jobs(2) == 2 and parallel.resolve_jobs(8) == 2
    assert parallel.resolve_jobs(None) == 2
    monkeypatch.setattr(parallel, "available_cores", lambda: 1)
    assert parallel.resolve_jobs(None) == 1
    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:  # no fork while another thread runs (it could hold a lock the worker needs)
        assert parallel.resolve_jobs(2) == 1
    finally:
        stop.set()
        other.join()
    assert parallel.resolve_jobs(2) == 2
    monkeypatch.setattr(parallel, "can_fork", lambda: False)
    assert parallel.resolve_jobs(2) == 1


def test_bad_jobs_is_a_study_error_before_any_analysis(tmp_path):
    with pytest.raises(pipeline.StudyError, match="jobs must be 1 or more"):
        pipeline.run_study(out_dir=tmp_path / "r", jobs=0)


def test_canonical_order():
    res = pipeline.StudyResults(out_dir=None, options={})
    res.steps = {"a": "Step A", "b": "Step B", "c": "Step C"}
    t = pd.DataFrame({"x": [1]})
    res.tables = {"c1": t, "a1": t, "b1": t, "a2": t}
    res.timings = {"Step C": 1.0, "Step A": 2.0, "Step B": 3.0}
    res.notes = [{"step": "Step B", "warning": "w1"}, {"step": "Step A", "warning": "w2"},
                 {"step": "Step B", "warning": "w3"}]
    res.failed = {"Figures: x": "e", "Step C": "e2", "Step A": "e1"}
    res.files = ["tables/a1.csv", "tables/a2.csv", "findings.json", "tables/c1.csv",
                 "path_diagram.svg", "tables/b1.csv"]
    owned = {"a": {"tables": ["a1", "a2"]}, "b": {"tables": ["b1"]}, "c": {"tables": ["c1"]}}
    parallel.canonical_order(res, ["a", "b", "c"], owned)
    assert list(res.tables) == ["a1", "a2", "b1", "c1"]
    assert list(res.timings) == ["Step A", "Step B", "Step C"]
    assert [n["warning"] for n in res.notes] == ["w2", "w1", "w3"]
    assert list(res.failed) == ["Step A", "Step C", "Figures: x"]
    assert res.files == ["tables/a1.csv", "tables/a2.csv", "findings.json", "tables/b1.csv",
                         "tables/c1.csv", "path_diagram.svg"]


# ----------------------------------------------------------------------------- worker
def _toy_ctx():
    return SimpleNamespace(res=pipeline.StudyResults(out_dir=None, options={}))


def _make_step(r):
    return pipeline._Step(r, lambda line: None, 0, lambda: None)


def test_background_steps_send_tables_notes_and_failures():
    def ok(ctx):
        warnings.warn("a note from the worker", UserWarning)
        ctx.res.tables["t1"] = pd.DataFrame({"pid": [os.getpid()]})
        ctx.res.fits["f1"] = _Cached(3)
        ctx.res.fits["f1"].closure  # noqa: B018 - cache a closure: must still arrive
        ctx.res.text["x"] = "text"

    def bad(ctx):
        ctx.res.tables["partial"] = pd.DataFrame({"a": [1]})
        raise RuntimeError("planted failure in the worker")

    bg = parallel.BackgroundSteps(_toy_ctx(), [("ok", "OK step", ok), ("bad", "Bad step", bad)],
                                  _make_step)
    msgs = bg.collect(block=True)
    assert [m["key"] for m in msgs] == ["ok", "bad"] and bg.pending == []
    first, second = msgs
    assert first["failed"] is None and first["timing"] > 0
    assert int(first["tables"]["t1"]["pid"].iloc[0]) != os.getpid()  # ran in another process
    assert first["fits"]["f1"].total == 3.0 and first["text"] == {"x": "text"}
    assert first["notes"] == [{"step": "OK step", "warning": "UserWarning: a note from the "
                                                             "worker"}]
    assert second["failed"] == "RuntimeError: planted failure in the worker"
    assert list(second["tables"]) == ["partial"]
    assert not bg.proc.is_alive()


def test_worker_that_dies_is_a_failed_step():
    def die(ctx):
        os._exit(3)

    bg = parallel.BackgroundSteps(_toy_ctx(), [("die", "Dying step", die),
                                               ("next", "Next step", lambda ctx: None)],
                                  _make_step)
    msgs = bg.collect(block=True)
    assert [m["key"] for m in msgs] == ["die", "next"]
    assert all("ended unexpectedly (exit code 3)" in m["failed"] for m in msgs)


# ----------------------------------------------------------------------------- pipeline
def _stand_ins(monkeypatch, fail=None, interrupt=None):
    """Cheap steps in place of the study's: each adds a table named after it (and a note);
    ``fail`` / ``interrupt``: the step key that raises RuntimeError / KeyboardInterrupt."""
    def make(key):
        def fn(ctx):
            if key == interrupt:
                raise KeyboardInterrupt
            warnings.warn(f"note of {key}", UserWarning)
            ctx.res.tables[f"{key}_table"] = pd.DataFrame({"step": [key], "pid": [os.getpid()]})
            if key == fail:
                raise RuntimeError(f"planted failure of {key}")
        return fn
    names = {"reliability": "_step_reliability", "longitudinal": "_step_longitudinal",
             "format": "_step_format_invariance", "outcomes": "_step_outcomes",
             "items": "_step_item_outcomes", "rsa": "_step_rsa", "lcm": "_step_lcm",
             "twolevel": "_step_twolevel"}
    for key, attr in names.items():
        monkeypatch.setattr(pipeline, attr, make(key))


def _run(tmp_path, name, jobs, **kw):
    lines = []
    res = pipeline.run_study(out_dir=tmp_path / name, progress=lines.append, jobs=jobs,
                             bootstrap=0, **kw)
    return res, lines


def test_two_processes_give_the_one_process_results(tmp_path, monkeypatch):
    _stand_ins(monkeypatch, fail="format")
    one, lines1 = _run(tmp_path, "one", 1)
    two, lines2 = _run(tmp_path, "two", 2)
    pid = os.getpid()
    assert (two.tables["longitudinal_table"]["pid"] != pid).all()   # in the worker
    assert (two.tables["format_table"]["pid"] != pid).all()
    assert (two.tables["outcomes_table"]["pid"] == pid).all()        # here
    assert list(one.tables) == list(two.tables)
    for k in one.tables:
        pd.testing.assert_frame_equal(one.tables[k].drop(columns="pid"),
                                      two.tables[k].drop(columns="pid"))
    assert one.notes == two.notes and one.failed == two.failed
    assert one.failed == {one.steps["format"]: "RuntimeError: planted failure of format"}
    assert list(one.timings) == list(two.timings)
    assert one.files == two.files and one.findings == two.findings
    for res in (one, two):
        doc = json.loads((res.out_dir / "findings.json").read_text())
        assert doc["files"] == res.files and doc["complete"]
        assert {p.name for p in (res.out_dir / "tables").glob("*.csv")} == \
            {f"{k}.csv" for k in res.tables}
    # every step's progress lines, numbered by the step's place in the sequence
    assert sorted(lines1) == sorted(ln.replace(" (worker process)", "") for ln in lines2)
    assert "[3/11] Invariance across format (trait models) with partial invariance, ordinal " \
           "and continuous ..." in lines2


def test_interrupt_in_the_worker_keeps_what_was_finished(tmp_path, monkeypatch):
    _stand_ins(monkeypatch, interrupt="format")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "r", 2)
    out = tmp_path / "r"
    doc = json.loads((out / "findings.json").read_text())
    assert doc["complete"] is False and doc["interrupted"].startswith("Invariance across")
    assert (out / "tables" / "longitudinal_table.csv").is_file()   # the worker's finished step
    assert (out / "tables" / "reliability_table.csv").is_file()
    assert "The run was interrupted" in (out / "index.html").read_text()


@pytest.mark.slow
def test_full_study_same_results_in_one_and_two_processes(tmp_path):
    """The real study (no item-level model, 50 bootstrap replicates) with ``jobs=1`` and
    ``jobs=2``: the same tables (exactly), findings, notes, files and fitted objects."""
    kw = dict(bootstrap=50, item_level_outcomes=False)
    one = pipeline.run_study(out_dir=tmp_path / "one", jobs=1, **kw)
    two = pipeline.run_study(out_dir=tmp_path / "two", jobs=2, **kw)
    assert not one.failed and not two.failed
    assert list(one.tables) == list(two.tables) and list(one.fits) == list(two.fits)
    for k in one.tables:
        pd.testing.assert_frame_equal(one.tables[k], two.tables[k], check_exact=True)
    assert one.findings == two.findings and one.notes == two.notes
    assert one.files == two.files and list(one.timings) == list(two.timings)
    assert one.figures == two.figures
    for key in ("format_c", "format_continuous_t", "longitudinal_continuous_c"):
        for level, fit in one.fits[key].fits.items():
            other = two.fits[key].fits[level]
            assert fit.measures().equals(other.measures()), (key, level)
            pd.testing.assert_frame_equal(fit.estimates(), other.estimates(), check_exact=True)
