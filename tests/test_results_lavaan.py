"""What a lavaan user expects from a fit (issue 10, item 6): R-squared, ``inspect()`` (lavaan's
``lavInspect``) and ``summary()`` laid out as lavaan's, checked against lavaan 0.6-14.

References: tests/reference/json/w2_results_{hs,hs_groups,pd}.json
(tests/reference/cases_wave2_results.R) and w2_results_extra_*.json
(tests/reference/cases_results_extra.R): HolzingerSwineford1939 one group and by school,
PoliticalDemocracy, a model with observed regressions and fixed covariates, labels with
== / > constraints and := parameters, MLR, MLR with FIML, MLR by school with equal loadings.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from lavaan_reference import fit_reference, reference_fits
from sem_models.summary import Summary, summary_text

CASES = ["w2_results_hs", "w2_results_hs_groups", "w2_results_pd", "w2_results_extra_paths",
         "w2_results_extra_defined", "w2_results_extra_mlr", "w2_results_extra_fiml_mlr",
         "w2_results_extra_groups_mlr"]
MATRIX_KEYS = ["free", "partable", "est", "se", "std"]


def _fit_case(ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the row with a missing 'grade' (paths case)
        return ref, fit_reference(ref)


@pytest.fixture(scope="module")
def case():
    return reference_fits(_fit_case)


def _frame(obj) -> pd.DataFrame:
    """lavaan's serialized matrix {rownames, colnames, matrix} as a DataFrame."""
    return pd.DataFrame(np.array(obj["matrix"], float).reshape(len(obj["rownames"]), -1),
                        index=obj["rownames"], columns=obj["colnames"])


def _per_group(ref: dict, value):
    """lavaan's per-group list (an object keyed by group label) as {label: value}."""
    labels = ref["group_labels"]
    return {lab: value[lab] for lab in labels} if labels else {None: value}


def _ours_per_group(fit, value):
    return value if fit.n_groups > 1 else {None: value}


def _close(ours: pd.DataFrame, ref: pd.DataFrame, rtol: float, what: str):
    assert list(ours.index) == list(ref.index), what
    assert list(ours.columns) == list(ref.columns), what
    scale = max(np.abs(ref.to_numpy()).max(), 1e-12)
    np.testing.assert_allclose(ours.to_numpy(float), ref.to_numpy(), rtol=rtol,
                               atol=rtol * scale, err_msg=what)


# ------------------------------------------------------------------------------ R-squared
@pytest.mark.parametrize("name", CASES)
def test_rsquare_matches_lavaan(case, name):
    ref, fit = case(name)
    r2 = fit.inspect("r2")
    if fit.n_groups > 1:
        assert isinstance(r2, pd.DataFrame) and list(r2.columns) == ref["group_labels"]
        pairs = [(r2[g].dropna(), ref["r2"][g]) for g in ref["group_labels"]]
    else:
        assert isinstance(r2, pd.Series)
        pairs = [(r2, ref["r2"])]
    for ours, theirs in pairs:
        assert list(ours.index) == theirs["names"]
        np.testing.assert_allclose(ours.to_numpy(), theirs["values"], rtol=1e-4, atol=1e-6)
    # the paths case: observed regression outcomes and the latent outcome, no exogenous ones
    if name == "w2_results_extra_paths":
        assert {"x7", "x8", "textual"} <= set(r2.index)
        assert not {"visual", "grade", "sex", "x9"} & set(r2.index)


@pytest.mark.parametrize("name", ["w2_results_hs", "w2_results_hs_groups",
                                  "w2_results_extra_defined"])
def test_estimates_rsquare_rows(case, name):
    ref, fit = case(name)
    plain = fit.estimates()
    table = fit.estimates(rsquare=True)
    assert list(table.columns) == list(plain.columns)
    pd.testing.assert_frame_equal(table.iloc[:len(plain)], plain)
    rows = table.iloc[len(plain):]
    assert (rows["op"] == "r2").all() and (rows["lhs"] == rows["rhs"]).all()
    assert rows[["se", "z", "pvalue", "ci_lower", "ci_upper"]].isna().all().all()
    expected = pd.DataFrame(ref["pe_rsquare"])
    assert list(rows["lhs"]) == list(expected["lhs"])
    if fit.n_groups > 1:
        assert list(rows["group"]) == list(expected["group"])
    np.testing.assert_allclose(rows["est"].to_numpy(float), expected["est"], rtol=1e-4)


def test_rsquare_is_nan_for_a_negative_residual_variance():
    """lavaan sets R^2 > 1 (a Heywood case) to NA."""
    import sem_models as sm
    rng = np.random.default_rng(3)
    f = rng.normal(size=(200, 1))
    data = pd.DataFrame(f @ np.array([[1.0, 0.9, 0.3]]) + rng.normal(size=(200, 3)) * [0.05, 0.6, 1.0],
                        columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.cfa("f =~ a + b + c\na ~~ -0.01*a", data)
    r2 = fit.inspect("r2")
    assert np.isnan(r2["a"]) and 0 < r2["b"] < 1


# ------------------------------------------------------------------------------ inspect
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("key", MATRIX_KEYS)
def test_inspect_model_matrices(case, name, key):
    ref, fit = case(name)
    theirs = _per_group(ref, ref["lavInspect"][key])
    ours = _ours_per_group(fit, fit.inspect(key))
    assert list(ours) == list(theirs)
    rtol = {"se": 1e-3, "free": 0, "partable": 0}.get(key, 1e-4)
    for g in theirs:
        assert list(ours[g]) == list(theirs[g]), f"{key}: matrices of group {g}"
        for mat, value in theirs[g].items():
            _close(ours[g][mat], _frame(value), rtol, f"{name} {key} {g} {mat}")
        if key in ("free", "partable"):
            assert all(m.to_numpy().dtype.kind == "i" for m in ours[g].values())


@pytest.mark.parametrize("name", ["w2_results_hs", "w2_results_extra_paths",
                                  "w2_results_hs_groups"])
def test_inspect_start(case, name):
    """Start values in lavaan's layout: the same matrices and fixed cells as lavaan's, the
    values sem-models started from (loadings: the same covariance ratios as lavaan's)."""
    ref, fit = case(name)
    theirs = _per_group(ref, ref["lavInspect"]["start"])
    ours = _ours_per_group(fit, fit.inspect("start"))
    free = _ours_per_group(fit, fit.inspect("free"))
    for g in theirs:
        for mat, value in theirs[g].items():
            expected = _frame(value)
            got = ours[g][mat]
            assert got.shape == expected.shape and list(got.index) == list(expected.index)
            fixed = free[g][mat].to_numpy() == 0
            np.testing.assert_allclose(got.to_numpy()[fixed], expected.to_numpy()[fixed],
                                       atol=1e-8)
        np.testing.assert_allclose(ours[g]["lambda"].to_numpy(),
                                   _frame(theirs[g]["lambda"]).to_numpy(), rtol=1e-6)
    # the free cells hold the start vector of the optimizer
    first = ours[next(iter(ours))]
    row = fit.partable.query("lhs == 'x1' and op == '~~' and rhs == 'x1' and group == 1").index[0]
    assert first["theta"].loc["x1", "x1"] == pytest.approx(fit._start_values[row])


@pytest.mark.parametrize("name", CASES)
def test_inspect_moments_and_latent_covariances(case, name):
    ref, fit = case(name)
    lav = ref["lavInspect"]
    for key in ("implied", "sampstat"):
        theirs = _per_group(ref, lav[key])
        ours = _ours_per_group(fit, fit.inspect(key))
        for g in theirs:
            assert sorted(ours[g]) == sorted(theirs[g]), f"{key} {g}"
            _close(ours[g]["cov"], _frame(theirs[g]["cov"]), 1e-4, f"{name} {key} cov")
            if "mean" in theirs[g]:
                np.testing.assert_allclose(ours[g]["mean"].to_numpy(),
                                           theirs[g]["mean"]["values"], rtol=1e-4)
                assert list(ours[g]["mean"].index) == theirs[g]["mean"]["names"]
    for key in ("cov.lv", "cor.lv"):
        theirs = _per_group(ref, lav[key])
        ours = _ours_per_group(fit, fit.inspect(key))
        for g in theirs:
            _close(ours[g], _frame(theirs[g]), 1e-4, f"{name} {key}")


@pytest.mark.parametrize("name", CASES)
def test_inspect_scalars(case, name):
    ref, fit = case(name)
    lav = ref["lavInspect"]
    assert fit.inspect("ngroups") == lav["ngroups"]
    assert fit.inspect("group.label") == list(lav["group.label"])
    assert fit.inspect("group_label") == list(lav["group.label"])
    assert fit.inspect("converged") is True and lav["converged"] is True
    nobs = fit.inspect("nobs")
    if fit.n_groups > 1:
        assert list(nobs) == lav["nobs"] and list(nobs.index) == ref["group_labels"]
    else:
        assert nobs == lav["nobs"][0] and isinstance(nobs, int)
    iterations = fit.inspect("iterations")
    assert isinstance(iterations, int) and iterations == fit.result.iterations > 0
    assert fit.inspect("ntotal") == ref["ntotal"]
    assert fit.inspect("npar") == ref["fit"]["npar"] + _n_equalities(ref)


def _n_equalities(ref) -> int:
    """lavaan's npar counts free parameters after equality constraints."""
    return sum(1 for r in ref["partable_full"] if r["op"] == "==")


@pytest.mark.parametrize("name", CASES)
def test_inspect_information_and_vcov(case, name):
    ref, fit = case(name)
    lav = ref["lavInspect"]
    for key in ("information", "information.expected", "information.observed"):
        _close(fit.inspect(key), _frame(lav[key]), 1e-4, f"{name} {key}")
    vcov = fit.inspect("vcov")
    expected = _frame(lav["vcov"])
    assert list(vcov.index) == list(expected.index)
    scale = np.abs(np.diag(expected.to_numpy())).max()
    np.testing.assert_allclose(vcov.to_numpy(), expected.to_numpy(), rtol=2e-3,
                               atol=1e-3 * scale)


def test_inspect_keys_and_errors(case):
    ref, fit = case("w2_results_hs")
    assert fit.inspect("std.all")["lambda"].equals(fit.inspect("std")["lambda"])
    assert fit.inspect("cov_lv").equals(fit.inspect("cov.lv"))
    assert fit.inspect("COV.LV").equals(fit.inspect("cov.lv"))
    assert fit.inspect("coef").index.tolist() == fit.vcov().index.tolist()
    assert fit.inspect("fit")["chisq"] == pytest.approx(ref["fit"]["chisq"], rel=1e-6)
    with pytest.raises(ValueError, match=r"unknown inspect key 'bogus'; valid keys: .*cov\.lv"):
        fit.inspect("bogus")
    with pytest.raises(ValueError, match="a key"):
        fit.inspect(3)
    # the default key is lavaan's: the free-parameter numbers
    assert fit.inspect()["lambda"].equals(fit.inspect("free")["lambda"])


def test_inspect_dummy_latent_variables(case):
    """Observed variables in regressions become lavaan's dummy latent variables."""
    ref, fit = case("w2_results_extra_paths")
    est = fit.inspect("est")
    assert list(est) == ["lambda", "theta", "psi", "beta"]
    assert list(est["psi"].index) == ["visual", "textual", "x7", "x8", "grade", "sex", "x9"]
    assert est["lambda"].loc["x7", "x7"] == 1.0 and est["theta"].loc["x7", "x7"] == 0.0
    assert est["beta"].loc["textual", "grade"] == pytest.approx(0.293, abs=1e-3)
    assert list(fit.inspect("cov.lv").index) == ["visual", "textual"]


# ------------------------------------------------------------------------------ summary
_NUMBER = re.compile(r"-?\d+\.\d+|-?\d+")
# lines that name the engine or its optimizer, and what sem-models adds (dropped rows)
_ENGINE_LINES = ("lavaan ", "sem-models ", "  Optimization method", "  Rows not used",
                 "    (")


def _comparable(text: str, drop_equalities: bool) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if not line.startswith(_ENGINE_LINES)]
    if drop_equalities:
        lines = [line for line in lines if not line.startswith("  Number of equality")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _same_line(ours: str, theirs: str) -> bool:
    if _NUMBER.sub("#", ours) != _NUMBER.sub("#", theirs):
        return False
    for a, b in zip(_NUMBER.findall(ours), _NUMBER.findall(theirs)):
        if abs(float(a) - float(b)) > 1.01e-3 + 2e-5 * abs(float(b)):
            return False
    return True


@pytest.mark.parametrize("name", CASES)
def test_summary_matches_lavaan_layout(case, name):
    """Every line of lavaan's summary(fit, fit.measures = TRUE, standardized = TRUE,
    rsquare = TRUE) is reproduced (numbers to the printed 3 decimals, +-1 in the last digit),
    except the engine's name, its optimizer and iteration count."""
    ref, fit = case(name)
    summary = fit.summary()
    assert isinstance(summary, Summary) and isinstance(summary, str)
    # lavaan 0.6-14 omits the count of an explicit '==' next to an inequality constraint
    ours = _comparable(summary, drop_equalities=name == "w2_results_extra_defined")
    theirs = _comparable(ref["summary_text"], drop_equalities=False)
    assert len(ours) == len(theirs), "\n".join(ours)
    bad = [(a, b) for a, b in zip(ours, theirs) if not _same_line(a, b)]
    assert not bad, "\n".join(f"ours:   {a}\nlavaan: {b}" for a, b in bad[:10])
    assert summary.splitlines()[0].startswith("sem-models ") and "ended normally" in summary


def test_summary_options_and_html(case):
    ref, fit = case("w2_results_extra_defined")
    full = fit.summary()
    for section in ("Model Test User Model:", "Model Test Baseline Model:",
                    "User Model versus Baseline Model:",
                    "Loglikelihood and Information Criteria:",
                    "Root Mean Square Error of Approximation:",
                    "Standardized Root Mean Square Residual:", "Latent Variables:",
                    "Regressions:", "Covariances:", "Variances:", "R-Square:",
                    "Defined Parameters:", "Constraints:", "Std.lv  Std.all"):
        assert section in full
    short = fit.summary(standardized=False, fit_measures=False, rsquare=False)
    assert "Model Test User Model:" in short
    for section in ("Std.lv", "Model Test Baseline Model:", "RMSEA", "R-Square:"):
        assert section not in short
    assert "Defined Parameters:" in short and "Constraints:" in short
    assert repr(full) == str(full)  # the REPL shows the summary itself
    assert (full + "x").endswith("Constraints:" + full.split("Constraints:")[1] + "x")
    html = full._repr_html_()
    assert html.count("<table") >= 10
    for text in ("Latent Variables", "R-Square", "Defined Parameters", "indirect",
                 "Std.all", "Sample-size adjusted Bayesian (SABIC)", "|Slack|"):
        assert text in html
    assert "<script" not in html
    # the earlier text function still works
    text = summary_text(fit)
    assert type(text) is str and "Model Test User Model:" in text and "Std.lv" not in text


def test_summary_of_a_robust_fit_names_its_correction(case):
    ref, fit = case("w2_results_extra_mlr")
    text = fit.summary(fit_measures=False)
    assert "Standard      Scaled" in text
    assert "Yuan-Bentler correction (Mplus variant)" in text
    assert "  Standard errors                             Sandwich" in text
    import sem_models as sm
    from sem_models.datasets import load
    mlm = sm.cfa(ref["call"]["model"], load("HolzingerSwineford1939"), estimator="MLM")
    text = mlm.summary(fit_measures=False)
    assert "Satorra-Bentler correction" in text and "Robust.sem" in text


def test_summary_reports_dropped_rows(case):
    ref, fit = case("w2_results_extra_paths")
    text = fit.summary()
    assert "Used       Total" in text and "Rows not used" in text
    assert re.search(r"Number of observations\s+300\s+301", text)
