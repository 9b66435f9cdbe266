"""End to end: ``sem-models study`` (the installed console script, as README command 1 runs
it) writes the report into a temporary folder and shows the planted findings
(data/README.md) with honest verdicts; the other subcommands run.  The study runs once per
session (module fixture)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sem_models.cli import main
from sem_models.study import findings as fnd
from sem_models.study.pipeline import prepare_out_dir

FIGURES = ["path_diagram.svg", "response_surface.png", "response_contour.svg",
           "invariance_changes.svg", "trait_means.svg"]


class _Study:
    """The study's outputs as written by ``sem-models study`` (tables/*.csv, findings.json)."""

    def __init__(self, out: Path):
        self.out = out
        self.tables = {p.stem: pd.read_csv(p) for p in (out / "tables").glob("*.csv")}
        data = json.loads((out / "findings.json").read_text())
        self.doc = data
        self.findings, self.timings = data["findings"], data["timings"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``sem-models study --out <tmp>/report`` once, from the installed console script (or
    ``python -m sem_models.cli`` when the script is not on PATH)."""
    cwd = tmp_path_factory.mktemp("study")
    out = cwd / "report"
    exe = shutil.which("sem-models")
    cmd = [exe] if exe else [sys.executable, "-m", "sem_models.cli"]
    proc = subprocess.run(cmd + ["study", "--out", str(out), "--bootstrap", "100"],
                          capture_output=True, text=True, timeout=600, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _Study(out), out, proc.stdout


def test_report_files(study):
    res, out, text = study
    assert (out / "index.html").is_file()
    for f in FIGURES:
        assert (out / f).stat().st_size > 5000, f
    html = (out / "index.html").read_text()
    for f in FIGURES:
        assert f"src='{f}'" in html or f'src="{f}"' in html
    assert re.search(r"\[1/\d+\] Scoring", text)
    assert "Findings" in text and "Report:" in text
    assert res.timings["total"] < 120
    assert res.doc["complete"] is True and res.doc["failed_steps"] == []
    # the 3-D surfaces are a PNG at >= 150 dpi, the other figures SVG
    from PIL import Image
    with Image.open(out / "response_surface.png") as im:
        dpi = im.info.get("dpi", (0, 0))[0]
    assert dpi >= 150
    assert set(res.doc["files"]) == {str(p.relative_to(out)) for p in out.rglob("*")
                                     if p.is_file()}


def test_planted_findings(study):
    res, out, _ = study
    # finding 1: child task trait mean higher in the individual format, significant
    td = res.tables["trait_means"].set_index("factor")
    r = td.loc["c_task"]
    assert r["ref_group"] == "group" and r["difference"] == "individual - group"
    # the items as ordinal (primary, issue 15): d about .31, p about .06; as continuous (the
    # sensitivity check): significant
    assert r["mean_diff"] > 0 and 0.2 < r["d"] < 0.45 and r["pvalue"] < 0.1
    tc = res.tables["trait_means_continuous"].set_index("factor")
    assert tc.loc["c_task", "mean_diff"] > 0 and tc.loc["c_task", "pvalue"] < 0.05
    assert td.loc["c_bond", "pvalue"] > 0.05
    # partial invariance frees the planted intercept of c_*_task3
    part = res.tables["partial_invariance"]
    assert part["freed"].astype(str).str.contains("c_(?:mid|end)_task3~1").any()
    # format invariance: strict is compared with the partial scalar model that passed
    fi = res.tables["format_invariance"].set_index(["informant", "level"])
    if fi.loc[("child", "scalar"), "decision"] == "non-invariant":
        assert fi.loc[("child", "scalar"), "partial_decision"] == "invariant"
        assert fi.loc[("child", "strict"), "compared_with"] == "scalar (partial)"
    assert "chisq_scaled" in fi.columns and "chisq" in fi.columns
    # finding 2: therapist bond and task -> ext_fu negative
    pp = res.tables["outcome_paths"].set_index(["lhs", "rhs"])
    assert pp.loc[("ext_fu", "t_bond"), "est"] < 0
    assert pp.loc[("ext_fu", "t_task"), "est"] < 0
    assert pp.loc[("ext_fu", "t_bond"), "pvalue"] < 0.05
    assert pp.loc[("int_fu", "t_task"), "est"] < 0
    # finding 3: bond discrepancy raises int_fu in the group format only (LCM and RSA)
    lp = res.tables["lcm_paths"].set_index(["rhs", "group"])
    assert lp.loc[("D", "group"), "est"] > 0 > lp.loc[("D", "individual"), "est"]
    mod = res.tables["lcm_moderation"].set_index("path")
    assert mod.loc["D", "pvalue"] < 0.05
    surf = res.tables["rsa_surface"].set_index(["group", "parameter"])
    assert surf.loc[("group", "a3"), "est"] > surf.loc[("individual", "a3"), "est"]
    # verdicts are computed from the tests, and honest
    for f in res.findings:
        assert f["verdict"] == fnd.verdict(f["tests"])
    verdicts = {f["finding"].split(" (")[0][:30]: f["verdict"] for f in res.findings}
    f1 = res.findings[0]  # finding 1: the verdict of the ordinal test, the continuous check
    assert f1["verdict"] == ("supported" if f1["tests"][0]["p"] < 0.05 else "not supported")
    assert "ordinal" in f1["tests"][0]["name"] and "Sensitivity check" in f1["context"]
    assert list(verdicts.values())[0] == f1["verdict"]
    lcm = [f for f in res.findings if "latent congruence" in f["finding"]][0]
    assert lcm["verdict"] == "supported"
    rsa = [f for f in res.findings if f["finding"].startswith("Response surface")][0]
    a3 = [t for t in rsa["tests"] if t["name"] == "a3 (group format)"][0]
    assert a3["p"] > 0.05 and not a3["met"] and rsa["verdict"] == "partly supported"
    html = (out / "index.html").read_text()
    assert html.count("Verdict rule.") == 1
    assert "&#10003; shown" not in html
    assert "cluster-robust SEs by school" in html


def test_report_quality(study):
    res, out, _ = study
    html = (out / "index.html").read_text()
    # robust estimator: chisq and chisq_scaled side by side; the difference test named
    assert "chisq_<wbr>scaled" in html and "Satorra-Bentler 2001 scaled difference" in html
    # p values as <.001 / .014, never in scientific notation; 3 decimals
    assert "&lt;.001" in html and not re.search(r"\d\.\d+e-\d", html)
    assert not re.search(r"<td class='num'>-?\d+\.\d{4,}</td>", html)
    # one sign convention, stated
    assert "individual minus group" in html
    # poor fit flagged in the text next to the results (the child configural model)
    assert "Poor fit" in html and "cfi_robust" in html
    assert "not tested: previous level failed" in html  # the semantics are explained


def test_rerun_into_the_same_folder_is_fresh(study, tmp_path):
    """The study's folder is recognised as ours: its files are removed before a rerun (on a
    copy; the user's own files stay)."""
    _, out, _ = study
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    (copy / "mine.txt").write_text("keep")
    assert prepare_out_dir(copy) == copy
    assert sorted(p.name for p in copy.rglob("*")) == ["mine.txt"]


def test_cli_fit_invariance_rsa(tmp_path, capsys):
    model = "visual =~ x1 + x2 + x3; textual =~ x4 + x5 + x6"
    f = tmp_path / "hs.lav"
    f.write_text(model.replace("; ", "\n"))
    assert main(["fit", str(f), "HolzingerSwineford1939"]) == 0
    assert "visual" in capsys.readouterr().out
    assert main(["fit", model, "HolzingerSwineford1939", "--group", "school"]) == 0
    capsys.readouterr()
    assert main(["invariance", str(f), "HolzingerSwineford1939", "--group", "school",
                 "--levels", "configural,metric,scalar"]) == 0
    assert "scalar" in capsys.readouterr().out
    rsa_csv = Path(__file__).resolve().parent / "reference_surface" / "data" / "rsa_sim.csv"
    assert main(["rsa", str(rsa_csv), "--outcome", "int_fu", "--x", "t_bond", "--y", "c_bond",
                 "--group", "format", "--estimator", "ML", "--missing", "listwise",
                 "--center", "2.5"]) == 0
    out = capsys.readouterr().out
    assert "a1" in out and "Group differences" in out
    assert main(["fit", model, str(tmp_path / "nope.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: no such data file")
