"""The invariance levels' statements are written together with their syntax
(``MeasurementSpec.parsed``) and fitted without parsing: they must be exactly what the parser
reads from that syntax, for every kind of row, identification, level and release."""
import math

import pytest

from invariance.levels import cumulative_keywords
from invariance.spec import MeasurementSpec
from sem_models.model.syntax import _clear_parse_caches, parse_model

HS = """visual =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed =~ x7 + x8 + x9"""

LONGITUDINAL = """bond_t1 =~ b1_t1 + b2_t1 + b3_t1
bond_t2 =~ b1_t2 + b2_t2 + b3_t2
task_t1 =~ k1_t1 + k2_t1 + k3_t1
task_t2 =~ k1_t2 + k2_t2 + k3_t2
b1_t1 ~~ k1_t1"""
CONSTRUCTS = {"bond": ["bond_t1", "bond_t2"], "task": ["task_t1", "task_t2"]}

LEVEL_CHAIN = ["configural", "metric", "scalar", "strict", "lv.variances", "lv.covariances",
               "means"]


def _cumulative(upto: int) -> tuple:
    """The equality keywords of the ``upto``-th level of :data:`LEVEL_CHAIN`."""
    return tuple(sorted(cumulative_keywords(LEVEL_CHAIN)[LEVEL_CHAIN[upto]]))


def _plain(parsed):
    """The parse as comparable tuples (NaN as a string: NaN != NaN)."""
    def values(seq):
        return None if seq is None else [
            "NaN" if isinstance(v, float) and math.isnan(v) else v for v in seq]
    statements = [(st.lhs, st.op, st.rhs, values(st.modifier.fixed), st.modifier.label,
                   values(st.modifier.start), st.modifier.equal, values(st.modifier.lower),
                   values(st.modifier.upper), st.line, st.col, st.stmt)
                  for st in parsed.statements]
    constraints = [(c.lhs, c.op, c.rhs, c.line, c.col) for c in parsed.constraints]
    return statements, constraints, parsed.source


def _assert_same_as_parser(spec, group_eq=(), long_eq=(), released=()):
    written = spec.parsed(group_eq, long_eq, released)
    _clear_parse_caches()
    read = parse_model(written.source)
    assert _plain(written) == _plain(read)
    assert written.source == spec.syntax(group_eq, long_eq, released)


@pytest.mark.parametrize("identification", ["lavaan", "std.lv", "marker"])
@pytest.mark.parametrize("n_groups", [1, 2, 3])
def test_written_statements_match_the_parser(identification, n_groups):
    spec = MeasurementSpec.from_model(HS, n_groups=n_groups, identification=identification)
    for upto in range(len(LEVEL_CHAIN)):
        _assert_same_as_parser(spec, _cumulative(upto))


@pytest.mark.parametrize("identification", ["lavaan", "std.lv", "marker"])
def test_longitudinal_and_released_rows_match_the_parser(identification):
    spec = MeasurementSpec.from_model(LONGITUDINAL, CONSTRUCTS, n_groups=2,
                                      identification=identification)
    full = _cumulative(len(LEVEL_CHAIN) - 1)
    for upto in range(len(LEVEL_CHAIN)):
        _assert_same_as_parser(spec, _cumulative(upto), full)
    released = [("b2_t1", "~1", "", 2), (("task_t1", "=~", "k2_t1", 2),
                                         ("task_t2", "=~", "k2_t2", 2))]
    _assert_same_as_parser(spec, full, full, released)


@pytest.mark.parametrize("id_cat,parameterization", [
    ("wu_estabrook2016", "delta"), ("wu_estabrook2016", "theta"), ("mplus", "delta"),
    ("millsap_tein2004", "theta"), ("lisrel", "theta")])
def test_ordinal_rows_match_the_parser(id_cat, parameterization):
    ordered = {f"x{k}": 3 for k in range(1, 10)}
    ordered["x2"] = 1  # a binary item
    identification = "marker" if id_cat == "millsap_tein2004" else "std.lv"
    spec = MeasurementSpec.from_model(HS, n_groups=2, identification=identification,
                                      ordered=ordered, parameterization=parameterization,
                                      id_cat=id_cat)
    levels = [(), ("thresholds",), ("thresholds", "loadings"),
              ("thresholds", "loadings", "intercepts")]
    if parameterization == "theta":  # residual variances are parameters under theta only
        levels.append(("thresholds", "loadings", "intercepts", "residuals"))
    for words in levels:
        _assert_same_as_parser(spec, words)


def test_fitting_a_level_needs_no_parse(monkeypatch):
    """The sequence's fits read the written statements (the parser is never called)."""
    import invariance
    from sem_models.datasets import load
    from sem_models.model import syntax

    def refuse(source):
        raise AssertionError("a level's syntax was parsed")

    _clear_parse_caches()
    parse_model(HS)  # the configural model given by the user is parsed, once
    monkeypatch.setattr(syntax, "_parse_uncached", refuse)
    seq = invariance.sequence(HS, load("HolzingerSwineford1939"), group="school",
                              identification="lavaan")
    assert list(seq.table["decision"].iloc[1:]) and seq.fits["strict"].converged
