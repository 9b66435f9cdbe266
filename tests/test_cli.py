"""The command line (issue 10, item 7): ``--output`` of ``fit`` and ``invariance`` (CSV and
JSON, checked against lavaan's HS39 references), "no such file" for a model argument that is a
missing file, and one ``error: ...`` line with exit status 2 for every error (no traceback),
including errors that are not ValueErrors (FloatingPointError, KeyError, OverflowError).
``study --out`` cases that must fail before any analysis are here too (no study run)."""
from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

import invariance as inv
import sem_models.api
from invariance.rules import NOT_TESTED
from lavaan_reference import assert_close, load_reference
from sem_models.cli import main

HS3 = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def hs_file(tmp_path):
    f = tmp_path / "hs.lav"
    f.write_text(HS3)
    return f


# ------------------------------------------------------------------ fit --output
def test_fit_output_csv_against_lavaan(tmp_path, hs_file, capsys):
    ref = load_reference("hs_cfa")
    out = tmp_path / "fit.csv"
    assert main(["fit", str(hs_file), "HolzingerSwineford1939", "--output", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    tab = pd.read_csv(out)
    assert set(tab["section"]) == {"estimate", "fit"}
    est = tab[tab["section"] == "estimate"]
    refp = pd.DataFrame(ref["parameters"])
    assert len(est) == len(refp)
    merged = est.merge(refp, on=["lhs", "op", "rhs"], suffixes=("", "_ref"))
    assert len(merged) == len(refp)
    assert_close(merged["est"], merged["est_ref"], 1e-4, 1e-6, "estimates")
    assert_close(merged["std_all"], merged["std_all_ref"], 1e-4, 1e-6, "std_all")
    fit = tab[tab["section"] == "fit"].set_index("lhs")["est"]
    for name in ("chisq", "df", "cfi", "tli", "rmsea", "srmr"):
        assert_close([fit[name]], [ref["fit"][name]], 1e-4, 1e-8, name)


def test_fit_output_json(tmp_path, hs_file, capsys):
    ref = load_reference("hs_cfa")
    out = tmp_path / "fit.json"
    assert main(["fit", str(hs_file), "HolzingerSwineford1939", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["converged"] is True and doc["ntotal"] == 301
    assert doc["model"] == HS3
    assert_close([doc["fit_measures"]["chisq"]], [ref["fit"]["chisq"]], 1e-4, 1e-8, "chisq")
    x2 = [r for r in doc["estimates"] if r["lhs"] == "visual" and r["rhs"] == "x2"][0]
    r2 = [p for p in ref["parameters"] if p["lhs"] == "visual" and p["rhs"] == "x2"][0]
    assert_close([x2["est"], x2["se"]], [r2["est"], r2["se"]], 1e-3, 1e-6, "x2 loading")
    # the fixed loading has no z: null in JSON, not NaN
    x1 = [r for r in doc["estimates"] if r["lhs"] == "visual" and r["rhs"] == "x1"][0]
    assert x1["z"] is None
    assert "NaN" not in out.read_text()


def test_fit_output_checked_before_fitting(tmp_path, hs_file, capsys, monkeypatch):
    def never(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("fitted before checking --output")

    monkeypatch.setattr(sem_models.api, "sem", never)
    assert main(["fit", str(hs_file), "HolzingerSwineford1939", "--output",
                 str(tmp_path / "fit.xlsx")]) == 2
    assert ".csv or .json" in one_error_line(capsys.readouterr().err)
    assert main(["fit", str(hs_file), "HolzingerSwineford1939", "--output",
                 str(tmp_path / "missing" / "fit.csv")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------ invariance --output
def test_invariance_output_csv_and_json(tmp_path, hs_file, capsys):
    csv = tmp_path / "inv.csv"
    assert main(["invariance", str(hs_file), "HolzingerSwineford1939", "--group", "school",
                 "--output", str(csv)]) == 0
    capsys.readouterr()
    tab = pd.read_csv(csv).set_index("level")
    assert list(tab.index) == ["configural", "metric", "scalar", "strict"]
    expect = {"configural": 115.851, "metric": 124.044, "scalar": 164.103, "strict": 181.511}
    for level, chisq in expect.items():  # lavaan's HS39 sequence (tests/reference/README.md)
        assert round(tab.loc[level, "chisq"], 3) == chisq
    # Chen (2007) rejects scalar: strict is not tested against it
    assert tab.loc["scalar", "decision"] == "non-invariant"
    assert tab.loc["strict", "decision"] == NOT_TESTED
    js = tmp_path / "inv.json"
    assert main(["invariance", str(hs_file), "HolzingerSwineford1939", "--group", "school",
                 "--rules", "cheung_rensvold2002", "--partial", "scalar", "--output",
                 str(js)]) == 0
    out = capsys.readouterr().out
    assert "Partial scalar invariance" in out
    doc = json.loads(js.read_text())
    assert doc["rules"] == "cheung_rensvold2002" and doc["group_labels"] == ["Pasteur",
                                                                              "Grant-White"]
    rows = {r["level"]: r for r in doc["table"]}
    assert rows["scalar"]["partial_decision"] == "invariant"
    assert rows["strict"]["compared_with"] == "scalar (partial)"
    ref = load_reference("seq_hs_partial_strict_ml")  # strict on the partial scalar model
    assert_close([rows["strict"]["chisq"]], [ref["fit"]["chisq"]], 1e-4, 1e-8, "strict")
    assert [s["freed"] for s in doc["partial_steps"]["scalar"]][1:] == [
        "x3~1 [Grant-White]", "x7~1 [Grant-White]"]


# ------------------------------------------------------------------ model argument
@pytest.mark.parametrize("arg", ["models/cfa.lav", "cfa.lav", "~/no-such-dir/model.txt",
                                 "model"])
def test_missing_model_file_is_no_such_file(arg, capsys):
    assert main(["fit", arg, "HolzingerSwineford1939"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no such file" in line and "syntax error" not in line.lower()


def test_syntax_errors_stay_syntax_errors(capsys):
    assert main(["fit", "visual =~ x1 + + x2", "HolzingerSwineford1939"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no such file" not in line and "column" in line


def test_missing_data_file(capsys):
    assert main(["fit", HS3.replace("\n", ";"), "nope.csv"]) == 2
    assert "no such data file" in one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------ one line per error
@pytest.mark.parametrize("exc", [FloatingPointError("overflow encountered in exp"),
                                 KeyError("x10"), OverflowError("math range error"),
                                 ValueError("two\nlines"), RuntimeError("boom"),
                                 ZeroDivisionError("float division by zero")])
def test_errors_inside_are_one_line_exit_2(exc, hs_file, capsys, monkeypatch):
    def raises(*a, **k):
        raise exc

    monkeypatch.setattr(sem_models.api, "sem", raises)
    assert main(["fit", str(hs_file), "HolzingerSwineford1939"]) == 2
    line = one_error_line(capsys.readouterr().err)
    if not isinstance(exc, ValueError):
        assert type(exc).__name__ in line
    assert str(exc.args[0]).split("\n")[0] in line
    monkeypatch.setattr(inv, "sequence", raises)
    assert main(["invariance", str(hs_file), "HolzingerSwineford1939", "--group",
                 "school"]) == 2
    one_error_line(capsys.readouterr().err)


def test_debug_shows_the_traceback(hs_file, monkeypatch):
    def raises(*a, **k):
        raise FloatingPointError("overflow")

    monkeypatch.setattr(sem_models.api, "sem", raises)
    with pytest.raises(FloatingPointError):
        main(["--debug", "fit", str(hs_file), "HolzingerSwineford1939"])


def test_warnings_are_one_line(hs_file, capsys, monkeypatch):
    import warnings

    real = sem_models.api.sem

    def warns(*a, **k):
        warnings.warn("something to know\nover two lines", UserWarning)
        return real(*a, **k)

    monkeypatch.setattr(sem_models.api, "sem", warns)
    assert main(["fit", str(hs_file), "HolzingerSwineford1939"]) == 0
    err = capsys.readouterr().err
    assert "warning: something to know over two lines" in err and "UserWarning" not in err


def test_keyboard_interrupt_exit_130(hs_file, capsys, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(sem_models.api, "sem", interrupt)
    assert main(["fit", str(hs_file), "HolzingerSwineford1939"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


# ------------------------------------------------------------------ study --out, fast errors
def _study_error(args, capsys) -> str:
    t0 = time.perf_counter()
    assert main(["study", "--quiet", *args]) == 2
    assert time.perf_counter() - t0 < 1.0
    return one_error_line(capsys.readouterr().err)


def test_study_out_is_an_existing_file(tmp_path, capsys):
    f = tmp_path / "report.html"
    f.write_text("mine")
    assert "existing file" in _study_error(["--out", str(f)], capsys)
    assert f.read_text() == "mine"


def test_study_out_below_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert "is a file" in _study_error(["--out", str(f / "report")], capsys)


def test_study_out_not_writable(tmp_path, capsys):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root writes anywhere; /proc refuses new folders for everyone
        line = _study_error(["--out", "/proc/sem-models-report"], capsys)
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            line = _study_error(["--out", str(ro / "report")], capsys)
        finally:
            ro.chmod(0o700)
    assert "cannot create the output folder" in line or "cannot write" in line


def test_study_out_foreign_folder_is_left_alone(tmp_path, capsys):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "holiday.jpg").write_text("x")
    (d / "findings.json").write_text('{"something": "else"}')
    assert "not empty" in _study_error(["--out", str(d)], capsys)
    assert sorted(p.name for p in d.iterdir()) == ["findings.json", "holiday.jpg"]


def test_study_bad_data_fails_fast(tmp_path, capsys):
    assert "no such data file" in _study_error(["--out", str(tmp_path / "r"), "--data",
                                                str(tmp_path / "nope.csv")], capsys)
    from sem_models.datasets import load
    d = load("alliance").rename(columns={"format": "arm"})
    d["arm"] = d["arm"].map({"individual": "solo", "group": "team"})
    csv = tmp_path / "relabelled.csv"
    d.to_csv(csv, index=False)
    line = _study_error(["--out", str(tmp_path / "r2"), "--data", str(csv)], capsys)
    assert "'format' is not a column" in line
    line = _study_error(["--out", str(tmp_path / "r3"), "--data", str(csv), "--group-column",
                         "arm"], capsys)
    assert "--formats solo,team" in line or "--formats team,solo" in line
    line = _study_error(["--out", str(tmp_path / "r4"), "--data", str(csv), "--group-column",
                         "arm", "--formats", "solo,team", "--cluster", "site"], capsys)
    assert "--cluster 'site' is not a column" in line
