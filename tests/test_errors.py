"""Bad input gets a clear error that names the problem; the caller's data are never modified."""

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from sem_models.datasets import load

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"


@pytest.fixture
def hs():
    return load("HolzingerSwineford1939")


@pytest.mark.parametrize("syntax, line, col, words", [
    ("visual =~ x1 + + x2", 1, 16, "expected a variable name"),
    ("f =~ x1 + x2\ng ~ x3 x4", 2, 5, "expected a variable name"),
    ("f =~ x1 + x2\n  =~ x3", 2, 3, "left-hand side"),
    ("f =~ x1 + x2\nf ~~ ", 2, 5, "right-hand side"),
    ("f =~ x1 + foo(1)*x2", 1, 11, "unknown modifier function"),
    ("f =~ x1 + x2 ? x3", 1, 14, "unexpected character"),
    ("f =~ x1 + (x2", 1, 12, "missing ')'"),
    ("f =~ c(a, 1)*x1 + x2", 1, 6, "mixes labels and numbers"),
])
def test_syntax_errors_name_line_and_column(syntax, line, col, words):
    with pytest.raises(sm.ModelSyntaxError) as info:
        sm.parse_model(syntax)
    err = info.value
    assert (err.line, err.column) == (line, col), str(err)
    assert words in str(err)
    assert f"line {line}, column {col}" in str(err)


def test_statement_spanning_lines_and_semicolons():
    parsed = sm.parse_model("f =~ x1 +\n  x2\n  + x3; g =~ x4 + x5 # comment\n\ng ~~ f")
    assert [(s.lhs, s.op, s.rhs) for s in parsed.statements] == [
        ("f", "=~", "x1"), ("f", "=~", "x2"), ("f", "=~", "x3"), ("g", "=~", "x4"),
        ("g", "=~", "x5"), ("g", "~~", "f")]


def test_modifiers():
    parsed = sm.parse_model("f =~ NA*x1 + start(0.5)*x2 + c(a, b)*x3 + c(1, NA)*x4 + "
                            "0.7*lab*x5 + label(\"q\")*x6\ny ~ 1")
    mods = {s.rhs: s.modifier for s in parsed.statements}
    assert np.isnan(mods["x1"].fixed[0])
    assert mods["x2"].start == [0.5]
    assert mods["x3"].label == ["a", "b"]
    assert mods["x4"].fixed[0] == 1 and np.isnan(mods["x4"].fixed[1])
    assert mods["x5"].fixed == [0.7] and mods["x5"].label == ["lab"]
    assert mods["x6"].label == ["q"]
    assert parsed.statements[-1].op == "~1"


def test_missing_variable_named_with_position(hs):
    with pytest.raises(sm.DataError, match=r"\['x10'\].*line 2, column 17"):
        sm.cfa("visual =~ x1 + x2 + x3\ntextual =~ x4 + x10 + x6", hs)


def test_non_numeric_column(hs):
    bad = hs.assign(x2=hs["x2"].astype(str).where(hs.index != 3, "missing?"))
    with pytest.raises(sm.DataError, match="column 'x2' is not numeric"):
        sm.cfa(HS_MODEL, bad)


def test_constant_column(hs):
    with pytest.raises(sm.DataError, match=r"\['x5'\] are constant"):
        sm.cfa(HS_MODEL, hs.assign(x5=3.0))


def test_group_with_too_few_cases(hs):
    small = pd.concat([hs[hs.school == "Pasteur"], hs[hs.school == "Grant-White"].head(5)])
    with pytest.raises(sm.DataError, match="only 5 complete cases in group 'Grant-White'"):
        sm.cfa(HS_MODEL, small, group="school")


def test_non_positive_definite_sample_covariance(hs):
    with pytest.raises(sm.DataError, match="not positive definite"):
        sm.cfa(HS_MODEL, hs.assign(x3=hs.x1 + hs.x2))


def test_negative_degrees_of_freedom(hs):
    with pytest.raises(sm.DataError, match="not identified"):
        sm.cfa("f =~ x1 + x2", hs)


def test_unidentified_model_warns(hs):
    # two free loadings and a free factor variance: scale not fixed
    with pytest.warns(sm.IdentificationWarning, match="not identified"):
        fit = sm.cfa("f =~ NA*x1 + x2 + x3 + x4", hs)
        fit.estimates()


def test_non_convergence_warns(hs):
    with pytest.warns(sm.ConvergenceWarning, match="did not converge"):
        fit = sm.cfa(HS_MODEL, hs, max_iter=2)
    assert not fit.converged


def test_heywood_case_warns():
    rng = np.random.default_rng(3)
    n = 60
    f = rng.normal(size=n)
    data = pd.DataFrame({"a": f + rng.normal(scale=0.05, size=n),
                         "b": 0.3 * f + rng.normal(size=n), "c": 0.3 * f + rng.normal(size=n)})
    with pytest.warns(sm.HeywoodWarning, match="Heywood case"):
        sm.cfa("f =~ b + a + c", data)


def test_listwise_deletion_is_reported(hs):
    holes = hs.copy()
    holes.loc[[0, 5, 9], "x4"] = np.nan
    with pytest.warns(UserWarning, match="3 of 301 rows were not used"):
        fit = sm.cfa(HS_MODEL, holes)
    assert fit.n_dropped == 3 and fit.ntotal == 298
    assert "Rows not used" in fit.summary()


def test_caller_dataframe_not_modified(hs):
    before = hs.copy(deep=True)
    sm.cfa(HS_MODEL, hs, group="school", group_equal=["loadings"])
    sm.sem("visual =~ x1 + x2 + x3\nvisual ~ ageyr + sex", hs)
    pd.testing.assert_frame_equal(hs, before)


def test_unknown_options(hs):
    with pytest.raises(ValueError, match="group_equal"):
        sm.cfa(HS_MODEL, hs, group="school", group_equal=["loading"])
    with pytest.raises(ValueError, match="estimator"):
        sm.cfa(HS_MODEL, hs, estimator="BAYES")
    with pytest.raises(sm.DataError, match="group column 'schol'"):
        sm.cfa(HS_MODEL, hs, group="schol")


def test_wald_unknown_label(hs):
    fit = sm.cfa("visual =~ x1 + a*x2 + x3", hs)
    with pytest.raises(ValueError, match="unknown label 'zz'"):
        fit.wald("a == zz")


def test_feedback_loop_warns():
    rng = np.random.default_rng(1)
    data = pd.DataFrame(rng.normal(size=(200, 4)), columns=["y1", "y2", "x1", "x2"])
    with pytest.warns(UserWarning, match="non-recursive"):
        sm.sem("y1 ~ y2 + x1\ny2 ~ y1 + x2", data)


def test_model_graph(hs):
    fit = sm.sem("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\ntextual ~ visual + ageyr", hs)
    g = fit.graph
    assert g.nodes["visual"]["latent"] and g.nodes["visual"]["exogenous"]
    assert not g.nodes["textual"]["exogenous"] and g.nodes["ageyr"]["observed"]
    assert g.edges["visual", "x2"]["op"] == "=~" and g.edges["ageyr", "textual"]["op"] == "~"
    cfa_graph = sm.cfa(HS_MODEL, hs).graph  # built on demand for pure CFAs
    assert cfa_graph.number_of_edges() == 9


def test_analytic_hessian_matches_differences_of_gradient(hs):
    """The Newton steps use the analytic observed Hessian; check it against the gradient."""
    from sem_models.estimation.optimizer import observed_hessian
    fits = [sm.cfa(HS_MODEL, hs, group="school", group_equal=["loadings", "intercepts"]),
            sm.sem("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nvisual ~ ageyr + sex\n"
                   "textual ~ ageyr + visual", hs.dropna())]
    for fit in fits:
        problem = fit.problem
        z = fit.result.z + np.random.default_rng(0).normal(scale=0.01, size=len(fit.result.z))
        hess = observed_hessian(problem, z)
        numeric = np.zeros_like(hess)
        for k in range(len(z)):
            e = np.zeros(len(z))
            e[k] = 1e-6
            numeric[:, k] = (problem.derivatives(z + e, info=False)[1]
                             - problem.derivatives(z - e, info=False)[1]) / 2e-6
        assert np.abs(hess - (numeric + numeric.T) / 2).max() < 1e-6 * np.abs(hess).max()


def test_stalled_scoring_falls_back_to_quasi_newton(hs):
    """From a poor start (latent means at 0 under marker-intercept identification) Fisher
    scoring drifts along a ridge towards absurd loadings; the optimizer must notice, hand over to
    L-BFGS-B and still reach lavaan's optimum (measEq.syntax, ID.fac = "marker": 115.851)."""
    import invariance
    from lavaan_reference import load_reference
    from sem_models.estimation.optimizer import STALL_ITERATIONS, Problem, optimize

    fit = invariance.sequence(HS_MODEL, hs, group="school", identification="marker",
                              levels=("configural",)).fits["configural"]
    problem, table = fit.problem, fit._table
    start = problem.base_values.copy()
    latent_means = (table["op"] == "~1") & np.isin(table["lhs"], fit.variables.lv) \
        & (table["free"] > 0)
    start[latent_means] = 0.0
    for g, loss in enumerate(problem.losses):  # observed intercepts match the sample means
        implied = problem.model.moments(start, g).mean
        for r in np.flatnonzero((table["op"] == "~1") & (table["free"] > 0)
                                & (table["group"] == g + 1) & ~latent_means):
            k = fit.model.ov_names.index(table["lhs"][r])
            start[r] += loss.mean[k] - implied[k]
    z0 = problem.pmap.z_from_free(start[problem.pmap.free_rows])
    result = optimize(Problem(problem.model, problem.losses, problem.pmap, start), z0)
    assert result.converged and result.iterations > STALL_ITERATIONS
    chisq = 2 * fit.ntotal * result.fmin
    assert chisq == pytest.approx(load_reference("hs_measeq_marker_configural")["fit"]["chisq"],
                                  rel=1e-6)
