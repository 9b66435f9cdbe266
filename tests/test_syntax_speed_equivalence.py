"""The fast parser paths of issue 18 give what the plain parser gives.

* the regex tokenizer (no named groups; kinds read from the token text): kinds, texts, lines
  and columns, and the "unexpected character" errors, for inputs that exercise every token
  kind (the expected values were produced by the character-class tokenizer it replaced);
* the parse cache of :func:`parse_model`: every call returns an independent copy equal to a
  fresh parse (mutating one result changes no later result), syntax errors are raised on
  every call, a modifier shared by the statements of ``f1 + f2 =~ ...`` stays shared;
* the term-modifier memo: a term seen before yields an equal modifier that is not aliased
  with another statement's, and errors keep their positions after the term was memoised;
* the invariance sequence's standard chi-square difference (without ``compare()``'s table)
  equals :func:`sem_models.compare`, and the table keeps its columns and dtypes.
No timings here: the speed goals live in benchmarks/bench_core.py.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import invariance as inv
import sem_models as sm
from invariance.fit_changes import _changes, _measures, _standard_difference
from sem_models.datasets import load
from sem_models.model import syntax as S
from sem_models.model.syntax import ModelSyntaxError, parse_model

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"

TOKEN_CASES = [
    ("f =~ .5*x1 + .p1.*x2 ! c\n  # note\nx1 | t1 + t2",
     [("name", "f", 1, 1), ("op", "=~", 1, 3), ("number", ".5", 1, 6), ("star", "*", 1, 8),
      ("name", "x1", 1, 9), ("plus", "+", 1, 12), ("name", ".p1.", 1, 14),
      ("star", "*", 1, 18), ("name", "x2", 1, 19), ("newline", "\n", 1, 25),
      ("newline", "\n", 2, 9), ("name", "x1", 3, 1), ("op", "|", 3, 4), ("name", "t1", 3, 6),
      ("plus", "+", 3, 9), ("name", "t2", 3, 11)]),
    ("y ~~ \u0663*y\r\n\tz ~*~ z",  # an Arabic-Indic digit is a digit (\d), \r and \t are space
     [("name", "y", 1, 1), ("op", "~~", 1, 3), ("number", "\u0663", 1, 6), ("star", "*", 1, 7),
      ("name", "y", 1, 8), ("newline", "\n", 1, 10), ("name", "z", 2, 2),
      ("op", "~*~", 2, 4), ("name", "z", 2, 8)]),
    ('a := "q" <= 2e-3;b>=1 == x^2/3',
     [("name", "a", 1, 1), ("op", ":=", 1, 3), ("string", '"q"', 1, 6), ("op", "<=", 1, 10),
      ("number", "2e-3", 1, 13), ("semicolon", ";", 1, 17), ("name", "b", 1, 18),
      ("op", ">=", 1, 19), ("number", "1", 1, 21), ("op", "==", 1, 23), ("name", "x", 1, 26),
      ("caret", "^", 1, 27), ("number", "2", 1, 28), ("slash", "/", 1, 29),
      ("number", "3", 1, 30)]),
    ("g ~ -1*x + c(1, NA)*z", [
        ("name", "g", 1, 1), ("op", "~", 1, 3), ("minus", "-", 1, 5), ("number", "1", 1, 6),
        ("star", "*", 1, 7), ("name", "x", 1, 8), ("plus", "+", 1, 10), ("name", "c", 1, 12),
        ("lparen", "(", 1, 13), ("number", "1", 1, 14), ("comma", ",", 1, 15),
        ("name", "NA", 1, 17), ("rparen", ")", 1, 19), ("star", "*", 1, 20),
        ("name", "z", 1, 21)]),
]


@pytest.mark.parametrize("source,expected", TOKEN_CASES)
def test_tokens_kinds_and_positions(source, expected):
    toks = S._tokenize(source)
    assert [(t.kind, t.text, t.line, t.col) for t in toks] == expected
    assert all(source[t.pos:t.pos + len(t.text)] == t.text for t in toks)


ERROR_CASES = [
    ("f =~ x1 + \u00b2*x2", 1, 11, "unexpected character '\u00b2'"),  # superscript: not \d
    ("f =~ x1\n  + 'abc*x2", 2, 5, "unexpected character \"'\""),  # unterminated string
    ("f =~ x1 @ x2", 1, 9, "unexpected character '@'"),
    ("f =~ \u00e9", 1, 6, "unexpected character '\u00e9'"),
    ("f = x1", 1, 3, "unexpected character '='"),
    ("\u00a0f =~ x1", 1, 1, "unexpected character '\\xa0'"),
    ("f =~ x1\x0b", 1, 8, "unexpected character '\\x0b'"),
    ("f =~ x1 +\n\n", 1, 10, "expected a variable name after '+'"),
    ("f =~ c(1,,2)*x1", 1, 10, "empty element in the list"),
    ("f =~ x1 + (x2", 1, 12, "missing ')'"),
    ("x1 ~ x2 ~ x3", 1, 9, "unexpected second operator '~' in one statement (start a new "
                           "line or use ';')"),
    ("f =~ x1\nf =~ start(a)*x2", 2, 6, "start() needs numbers, found 'a'"),
    ("f =~ x1 ; ; g =~ x2\n  x3 ~~ x3 ~~ x4", 2, 12, "unexpected second operator '~~' in "
                                                   "one statement (start a new line or use ';')"),
]


@pytest.mark.parametrize("source,line,column,message", ERROR_CASES)
def test_errors_keep_their_positions_on_every_call(source, line, column, message):
    for _ in range(2):  # errors are never cached
        with pytest.raises(ModelSyntaxError) as info:
            parse_model(source)
        assert (info.value.line, info.value.column, info.value.message) == \
            (line, column, message)


def test_continuation_rules_split_statements_as_before():
    # expected values: the parser before issue 18
    src = ("f =~ x1 +\n\n  x2\n  + x3 # more\ng =~ c(1,\n NA)*x4\n + x5; h =~ x6\n"
           "h\n =~ x7\nx1 ~~ x2")
    parsed = parse_model(src)
    got = [(s.lhs, s.op, s.rhs, s.line, s.col, s.stmt) for s in parsed.statements]
    assert got == [("f", "=~", "x1", 1, 6, 0), ("f", "=~", "x2", 3, 3, 0),
                   ("f", "=~", "x3", 4, 5, 0), ("g", "=~", "x4", 6, 6, 1),
                   ("g", "=~", "x5", 7, 4, 1), ("h", "=~", "x6", 7, 13, 2),
                   ("h", "=~", "x7", 9, 5, 3), ("x1", "~~", "x2", 10, 7, 4)]
    assert parsed.statements[3].modifier.fixed[0] == 1.0
    assert math.isnan(parsed.statements[3].modifier.fixed[1])


def _snapshot(parsed):
    return repr(parsed.statements), repr(parsed.constraints), parsed.source


def test_cached_parse_is_an_independent_copy():
    src = ("f1 + f2 =~ c(1, NA)*x1 + c(a, b)*x2 + start(0.5)*lower(0)*x3\n"
           "x1 ~~ label(c('v', NA))*x1\nd := a*b\na == b + 0")
    fresh = S._parse_uncached(src)
    first = parse_model(src)
    assert _snapshot(first) == _snapshot(fresh)
    # change everything a caller could change
    first.statements[0].modifier.fixed[0] = 99.0
    first.statements[2].modifier.label[0] = "zzz"
    first.statements[0].lhs = "changed"
    first.statements.append(first.statements[0])
    first.constraints[0].rhs = "changed"
    first.constraints.clear()
    second = parse_model(src)
    assert _snapshot(second) == _snapshot(fresh)
    assert second is not first and second.statements[0] is not first.statements[0]
    # a modifier shared by the statements of 'f1 + f2 =~ ...' stays shared, as in a fresh parse
    assert second.statements[0].modifier is second.statements[1].modifier
    assert fresh.statements[0].modifier is fresh.statements[1].modifier
    third = parse_model(src)
    assert third.statements[0].modifier is not second.statements[0].modifier
    assert third.statements[0].modifier.fixed is not second.statements[0].modifier.fixed


def test_memoised_terms_are_not_aliased():
    # the same term text in two statements (and in a later parse): equal, separate modifiers
    parsed = parse_model("x1 ~ c(NA, 0)*1\nx2 ~ c(NA, 0)*1\nx3 ~ c(NA, 0)*1 + lab*1")
    a, b = parsed.statements[0].modifier, parsed.statements[1].modifier
    assert a == b and a is not b and a.fixed is not b.fixed
    a.fixed[1] = 5.0
    assert b.fixed[1] == 0.0
    again = parse_model("y1 ~ c(NA, 0)*1")
    assert again.statements[0].modifier.fixed[1] == 0.0
    # an erroneous term after its valid twin was memoised: the error and its position stay
    parse_model("f =~ c(1, NA)*x1")
    with pytest.raises(ModelSyntaxError) as info:
        parse_model("f =~ x0 +\n c(1, NA)*x1 + c(1, NA)*(x2")
    assert (info.value.line, info.value.column, info.value.message) == (2, 26, "missing ')'")


def test_parse_cache_is_bounded():
    for k in range(S.PARSE_CACHE_SIZE + 10):
        parse_model(f"f =~ x1 + x2 + v{k}")
    assert len(S._PARSED) <= S.PARSE_CACHE_SIZE
    assert len(S._TERM_MODIFIERS) <= S._TERM_CACHE_SIZE


def test_generated_invariance_syntax_parses_as_fresh():
    hs = load("HolzingerSwineford1939")
    seq = inv.sequence(HS_MODEL, hs, group="school", identification="lavaan")
    for level, src in seq.syntax.items():
        assert _snapshot(parse_model(src)) == _snapshot(S._parse_uncached(src)), level


# ------------------------------------------------------------------ the sequence's own shortcuts
@pytest.fixture(scope="module")
def hs_seq():
    return inv.sequence(HS_MODEL, load("HolzingerSwineford1939"), group="school",
                        identification="lavaan")


def test_standard_difference_equals_compare(hs_seq):
    fits = [hs_seq.fits[lv] for lv in hs_seq.levels]
    for prev, cur in zip(fits, fits[1:]):
        for a, b in ((prev, cur), (cur, prev)):  # also the wrong order: compare() sorts by df
            ma, mb = _measures(a), _measures(b)
            fast = _standard_difference(a, b, ma, mb)
            row = sm.compare(a, b).iloc[-1]
            assert fast["delta_chisq"] == float(row["chisq_diff"])
            assert fast["delta_df"] == float(row["df_diff"])
            assert fast["delta_pvalue"] == float(row["pvalue"])
            assert row["method"] == "standard"
            assert fast["difference_test"] == "likelihood ratio (chi-square difference)"
    # robust fits go through compare() (Satorra-Bentler): no shortcut
    hs = load("HolzingerSwineford1939")
    r0 = sm.cfa(HS_MODEL, hs, group="school", estimator="MLR")
    r1 = sm.cfa(HS_MODEL, hs, group="school", estimator="MLR", group_equal=["loadings"])
    assert _standard_difference(r0, r1, _measures(r0), _measures(r1)) is None
    ch = _changes(r0, r1, _measures(r0), _measures(r1))
    assert ch["difference_test"] == "Satorra-Bentler 2001 scaled difference"
    assert ch["delta_chisq"] == float(sm.compare(r0, r1).iloc[-1]["chisq_diff"])


def test_table_columns_and_dtypes(hs_seq):
    t = hs_seq.table
    assert list(t.index) == ["configural", "metric", "scalar", "strict"]
    assert t.index.name == "level"
    assert list(t.columns) == [
        "npar", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "aic", "bic",
        "delta_chisq", "delta_df", "delta_pvalue", "difference_test", "delta_cfi",
        "delta_tli", "delta_rmsea", "delta_srmr", "compared_with", "decision",
        "partial_freed", "partial_decision", "converged"]
    numeric = ["npar", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "aic", "bic",
               "delta_chisq", "delta_df", "delta_pvalue", "delta_cfi", "delta_tli",
               "delta_rmsea", "delta_srmr", "partial_freed"]
    assert all(t[c].dtype == np.float64 for c in numeric)
    assert t["converged"].dtype == bool
    assert all(pd.api.types.is_string_dtype(t[c]) for c in ("compared_with", "decision"))
    assert np.isnan(t.loc["configural", "delta_chisq"])
    assert t.loc["metric", "compared_with"] == "configural"
    assert t.attrs["fit_index"] == "robust"


def test_text_indicator_columns_still_checked_by_value():
    """Indicators stored as text go through pd.to_numeric (the numeric fast path is only for
    numeric columns): a text column with no number in one group is still named."""
    hs = load("HolzingerSwineford1939")
    data = hs.assign(x2=hs["x2"].astype(str))
    data.loc[data["school"] == "Pasteur", "x2"] = "missing"
    with pytest.raises(inv.InvarianceError, match=r"\['x2'\] have no observed value in group "
                                                   r"'Pasteur'"):
        inv.sequence(HS_MODEL, data, group="school")


def test_fitting_reads_the_kept_parse_without_changing_it():
    """The fitting pipeline reads the kept parse itself (``parse_model(copy=False)``): a fit
    must leave it as a fresh parse has it."""
    import sem_models as sm
    from sem_models.datasets import load

    src = ("visual =~ x1 + c(l2, l2)*x2 + start(0.5)*x3\ntextual =~ x4 + x5 + x6\n"
           "speed =~ x7 + x8 + x9\nx1 ~~ c(NA, 0.3)*x1 + c(r1, r2)*x1\nvisual ~~ textual")
    S._clear_parse_caches()
    fresh = S._parse_uncached(src)
    kept = parse_model(src, copy=False)
    assert parse_model(src, copy=False) is kept
    sm.cfa(src, load("HolzingerSwineford1939"), group="school",
           group_equal=["loadings", "intercepts"]).estimates()
    assert _snapshot(kept) == _snapshot(fresh)
    assert _snapshot(parse_model(src)) == _snapshot(fresh)
