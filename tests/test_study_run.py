"""A study run that never loses work (issue 10, items 2 and 3).

One run of the study (module fixture) on a renamed and relabelled copy of the bundled data
(format column ``arm`` with labels ``solo`` / ``team``, cluster column ``site``), into a folder
that holds an earlier report, with one step made to fail: the report is still written, says
"step X failed: ...", the other steps ran, no stale file of the earlier report is left, and
the findings carry tests with computed verdicts.  Ctrl-C is tested on a run interrupted in its
second step; the verdict rule on hand-made tests (no run).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from sem_models.datasets import load
from sem_models.study import findings as fnd
from sem_models.study import pipeline

FAIL_MESSAGE = "planted failure of the latent congruence step"


@pytest.fixture(scope="module")
def relabelled(tmp_path_factory) -> Path:
    d = load("alliance").rename(columns={"format": "arm", "school": "site"})
    d["arm"] = d["arm"].map({"individual": "solo", "group": "team"})
    csv = tmp_path_factory.mktemp("data") / "alliance_relabelled.csv"
    d.to_csv(csv, index=False)
    return csv


@pytest.fixture(scope="module")
def run(relabelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "report"
    out.mkdir()
    # an earlier report of ours: its files (manifest) must go, other files stay
    (out / "tables").mkdir()
    (out / "tables" / "old_table.csv").write_text("a\n1\n")
    (out / "stale_figure.svg").write_text("<svg/>")
    (out / "index.html").write_text("<html>old</html>")
    (out / "my_notes.txt").write_text("keep me")
    (out / "findings.json").write_text(json.dumps({
        "generator": pipeline.GENERATOR, "findings": [],
        "files": ["tables/old_table.csv", "stale_figure.svg", "index.html", "findings.json",
                  "../outside.txt"]}))
    outside = out.parent / "outside.txt"
    outside.write_text("not ours to delete")

    def boom(ctx):
        raise RuntimeError(FAIL_MESSAGE)

    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline, "_step_lcm", boom)
    lines = []
    try:
        res = pipeline.run_study(relabelled, out, lines.append, cluster="site",
                                 group_column="arm", formats=("solo", "team"), bootstrap=20,
                                 item_level_outcomes=False)
    finally:
        mp.undo()
    return res, out, lines


def test_earlier_report_replaced_without_stale_files(run):
    res, out, _ = run
    assert not (out / "stale_figure.svg").exists()
    assert not (out / "tables" / "old_table.csv").exists()
    assert (out / "my_notes.txt").read_text() == "keep me"  # not a file of our report
    assert (out.parent / "outside.txt").exists()  # never outside the folder
    assert "old" not in (out / "index.html").read_text()[:200]
    doc = json.loads((out / "findings.json").read_text())
    assert doc["generator"] == pipeline.GENERATOR and doc["complete"] is True
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written - {"my_notes.txt"} == set(doc["files"])


def test_failed_step_is_reported_and_the_others_ran(run):
    res, out, lines = run
    title = res.steps["lcm"]
    assert res.failed == {title: f"RuntimeError: {FAIL_MESSAGE}"}
    html = (out / "index.html").read_text()
    assert f"step {title} failed: RuntimeError: {FAIL_MESSAGE}" in html
    doc = json.loads((out / "findings.json").read_text())
    assert doc["failed_steps"] == [{"step": title, "message": f"RuntimeError: {FAIL_MESSAGE}"}]
    assert any("step failed" in ln for ln in lines)
    # the steps after the failing one ran, and every other step's tables were written
    for name in ("reliability", "measurement", "longitudinal", "format_invariance",
                 "trait_means", "outcome_paths", "outcome_paths_format", "rsa_surface",
                 "rsa_group_tests"):
        assert (out / "tables" / f"{name}.csv").is_file(), name
    assert not (out / "tables" / "lcm_paths.csv").exists()
    assert {"response_surface", "trait_means", "invariance_changes"} <= set(res.figures)
    for f in res.figures.values():
        assert (out / f).stat().st_size > 5000
    # the LCM finding is not tested, the others have verdicts from their tests
    by_text = {f["finding"][:40]: f for f in doc["findings"]}
    lcm = [f for f in doc["findings"] if "latent congruence" in f["finding"]][0]
    assert lcm["verdict"] == "not tested" and lcm["tests"] == []
    assert "lcm_paths" in lcm["reason"] and "failed" in lcm["reason"]
    for f in by_text.values():
        if f is not lcm:
            assert f["tests"] and f["verdict"] == fnd.verdict(f["tests"])


def test_other_labels_and_cluster_column(run):
    res, out, _ = run
    assert res.options["formats"] == {"individual": "solo", "group": "team"}
    assert res.options["cluster"] == "site" and res.options["group_column"] == "arm"
    tm = pd.read_csv(out / "tables" / "trait_means.csv").set_index("factor")
    # one sign convention: individual (solo) minus group (team)
    assert set(tm["group"]) == {"solo"} and set(tm["ref_group"]) == {"team"}
    assert (tm["difference"] == "individual - group").all()
    assert tm.loc["c_task", "mean_diff"] > 0 and tm.loc["c_task", "pvalue"] < 0.1  # ordinal
    tc = pd.read_csv(out / "tables" / "trait_means_continuous.csv").set_index("factor")
    assert tc.loc["c_task", "mean_diff"] > 0 and tc.loc["c_task", "pvalue"] < 0.05
    paths = pd.read_csv(out / "tables" / "outcome_paths_format.csv")
    assert set(paths["group"]) == {"solo", "team"}
    gt = pd.read_csv(out / "tables" / "rsa_group_tests.csv").set_index("parameter")
    surf = pd.read_csv(out / "tables" / "rsa_surface.csv").set_index(["group", "parameter"])
    assert gt.loc["a3", "diff"] == pytest.approx(surf.loc[("solo", "a3"), "est"]
                                                 - surf.loc[("team", "a3"), "est"], rel=1e-9)
    html = (out / "index.html").read_text()
    assert "individual minus group" in html and "cluster-robust SEs by site" in html
    assert "individual = <code>solo</code>" in html


def test_findings_have_tests_and_computed_verdicts(run):
    res, out, _ = run
    html = (out / "index.html").read_text()
    assert html.count("Verdict rule.") == 1
    for f in res.findings:
        for t in f["tests"]:
            assert set(t) >= {"name", "statistic", "p", "expect"}
            assert t["expect"] in ("significant", "not significant")
            assert t["met"] == fnd.expectation_met(t)
        assert f["verdict"] == fnd.verdict(f["tests"])
    rsa = [f for f in res.findings if f["finding"].startswith("Response surface")][0]
    a3 = [t for t in rsa["tests"] if t["name"] == "a3 (team format)"][0]  # the group format
    assert a3["expect"] == "significant" and a3["p"] > 0.05 and not a3["met"]
    assert rsa["verdict"] != "supported"


def test_verdict_rule():
    sig = fnd.make_test("a3 group", 0.187, "significant", estimate=3.63, direction="positive")
    assert not sig["met"]
    assert fnd.verdict([sig]) == "not supported"
    ok = fnd.make_test("difference", 0.047, "significant")
    null = fnd.make_test("a3 individual", 0.132, "not significant")
    assert fnd.verdict([sig, ok, null]) == "partly supported"
    assert fnd.verdict([ok, null]) == "supported"
    assert fnd.verdict([]) == "not tested"
    wrong_sign = fnd.make_test("d", 0.001, "significant", estimate=-0.4, direction="positive")
    assert not wrong_sign["met"] and fnd.verdict([wrong_sign]) == "not supported"
    assert not fnd.make_test("x", 0.03, "not significant")["met"]
    assert fnd.make_test("x", 0.05, "not significant")["met"]  # p >= .05
    assert not fnd.make_test("x", float("nan"), "significant")["met"]
    with pytest.raises(ValueError):
        fnd.make_test("x", 0.1, "shown")
    assert fnd.format_p(0.0004) == "<.001" and fnd.format_p(0.0141) == ".014"


def test_no_verdict_typed_by_hand():
    """Verdicts come from :func:`findings.verdict` only: no literal verdict in the study code."""
    root = Path(pipeline.__file__).parent
    pattern = re.compile(r"""["'](?:verdict|shown)["']\s*:\s*(?:["']|True|False)""")
    for f in ("pipeline.py", "report.py", "outcomes.py"):
        src = (root / f).read_text()
        assert not pattern.search(src), f
        assert not re.search(r"""["']partly supported["']|["']not supported["']""", src), f


def test_keyboard_interrupt_keeps_what_was_finished(tmp_path, capsys, monkeypatch):
    from sem_models.cli import main

    def interrupt(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_step_longitudinal", interrupt)
    out = tmp_path / "report"
    assert main(["study", "--out", str(out), "--bootstrap", "0", "--no-item-level"]) == 130
    cap = capsys.readouterr()
    assert "interrupted" in cap.err and "Traceback" not in cap.err
    assert (out / "tables" / "reliability.csv").is_file()  # step 1 was finished
    doc = json.loads((out / "findings.json").read_text())
    assert doc["complete"] is False and doc["interrupted"].startswith("Longitudinal")
    html = (out / "index.html").read_text()
    assert "The run was interrupted" in html
    # the folder now holds our (partial) report: a rerun may replace it
    assert pipeline.prepare_out_dir(out) == out
    assert not (out / "tables" / "reliability.csv").exists()
