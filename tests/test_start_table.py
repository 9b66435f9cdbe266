"""start= as a parameter table (lavaan's ``start = parTable(fit)``): rows matched by name,
and the invariance sequence's warm starts from the level before."""
import warnings

import numpy as np
import pandas as pd
import pytest

import invariance
import sem_models as sm
from sem_models.datasets import load
from sem_models.errors import ModelError

HS = load("HolzingerSwineford1939")
MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
LEVELS = [[], ["loadings"], ["loadings", "intercepts"], ["loadings", "intercepts", "residuals"]]


def test_start_from_the_parameter_table_of_a_nested_model():
    """Each level started from the estimates of the level before: the same solution, in
    fewer iterations than from the default start values."""
    previous, saved = None, 0
    for ge in LEVELS:
        cold = sm.cfa(MODEL, HS, group="school", group_equal=ge)
        if previous is not None:
            warm = sm.cfa(MODEL, HS, group="school", group_equal=ge, start=previous.partable)
            assert warm.converged
            np.testing.assert_allclose(warm.values, cold.values, atol=1e-7)
            # the fit itself (another model's table: matched by name the same way)
            by_fit = sm.cfa(MODEL, HS, group="school", group_equal=ge, start=previous)
            assert by_fit.result.iterations == warm.result.iterations
            np.testing.assert_array_equal(by_fit.values, warm.values)
            assert warm.measures()["chisq"] == pytest.approx(cold.measures()["chisq"], rel=1e-9)
            saved += cold.result.iterations - warm.result.iterations
        previous = cold
    assert saved > 0


def test_start_table_rows_are_matched_by_name(monkeypatch):
    """Rows the table gives start there (covariances in either order); rows it lacks keep
    their default start values."""
    import sem_models.api as api

    fit = sm.cfa(MODEL, HS)
    table = fit.partable[["lhs", "op", "rhs", "est"]].copy()
    cov = (table["op"] == "~~") & (table["lhs"] != table["rhs"])
    table.loc[cov, ["lhs", "rhs"]] = table.loc[cov, ["rhs", "lhs"]].to_numpy()  # swapped
    table.loc[table["rhs"] == "x9", "est"] = np.nan  # no start for these rows
    table = table.iloc[::-1]  # any order
    starts = []
    original = api.optimize

    def spy(problem, z0, **kw):
        starts.append(problem.values(z0))
        return original(problem, z0, **kw)

    monkeypatch.setattr(api, "optimize", spy)
    sm.cfa(MODEL, HS, start=table)
    sm.cfa(MODEL, HS)
    warm, default = starts
    pt = fit._table
    x9 = pt["rhs"] == "x9"
    free = pt["free"] > 0
    np.testing.assert_allclose(warm[free & ~x9], fit.values[free & ~x9])
    np.testing.assert_allclose(warm[free & x9], default[free & x9])
    assert not np.allclose(warm[free & x9], fit.values[free & x9])


def test_start_table_errors():
    with pytest.raises(ModelError, match="lhs, op, rhs and est"):
        sm.cfa(MODEL, HS, start=pd.DataFrame({"lhs": ["visual"], "value": [1.0]}))
    with pytest.raises(ModelError, match="parameter table"):
        sm.cfa(MODEL, HS, start=np.ones(3))


def test_sequence_warm_starts_give_the_cold_fits():
    """The sequence starts each level from the level before; its fits equal fits of the
    same syntax from the default start values."""
    seq = invariance.sequence(MODEL, HS, group="school", identification="lavaan")
    for level, fit in seq.fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cold = sm.sem(seq.syntax[level], HS, group="school", meanstructure=True)
        np.testing.assert_allclose(fit.values, cold.values, atol=1e-7)
        assert fit.measures()["chisq"] == pytest.approx(cold.measures()["chisq"], rel=1e-9)
