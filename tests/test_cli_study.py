"""End to end: ``sem-models study`` writes the report and shows the planted findings
(data/README.md); the other subcommands run. The study runs once per session (module fixture)
through ``main([...])`` and once through the installed console script."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from sem_models.cli import main

FIGURES = ["path_diagram.png", "response_surface.png", "response_contour.png",
           "invariance_changes.png", "trait_means.png"]


class _Study:
    """The study's outputs as written by ``sem-models study`` (tables/*.csv, findings.json)."""

    def __init__(self, out: Path):
        self.out = out
        self.tables = {p.stem: pd.read_csv(p) for p in (out / "tables").glob("*.csv")}
        data = json.loads((out / "findings.json").read_text())
        self.findings, self.timings = data["findings"], data["timings"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``main(["study", ...])`` once; the report's CSV tables and findings.json are checked."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp("study") / "report"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["study", "--out", str(out), "--bootstrap", "100"])
    assert status == 0
    return _Study(out), out, buf.getvalue()


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


def test_planted_findings(study):
    res, out, _ = study
    # finding 1: child task trait mean higher in the individual format, significant
    td = res.tables["trait_means"].set_index("factor")
    r = td.loc["c_task"]
    ind_minus_group = r["mean_diff"] * (1 if r["ref_group"] == "group" else -1)
    assert ind_minus_group > 0 and r["pvalue"] < 0.05
    assert td.loc["c_bond", "pvalue"] > 0.05
    # partial invariance frees the planted intercept of c_*_task3
    part = res.tables["partial_invariance"]
    assert part["freed"].astype(str).str.contains("c_(?:mid|end)_task3~1").any()
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
    assert all(f["shown"] for f in res.findings)
    html = (out / "index.html").read_text()
    assert html.count("&#10003; shown") == len(res.findings)
    assert "20 clusters" in html


def test_cli_study_console_script(tmp_path):
    exe = shutil.which("sem-models")
    if exe is None:
        pytest.skip("console script not installed")
    out = tmp_path / "rep"
    proc = subprocess.run([exe, "study", "--out", str(out), "--bootstrap", "20",
                           "--no-item-level"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"\[1/\d+\] Scoring", proc.stdout)
    assert (out / "index.html").is_file() and (out / "response_surface.png").is_file()


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
    with pytest.raises(SystemExit):
        main(["fit", model, str(tmp_path / "nope.csv")])
