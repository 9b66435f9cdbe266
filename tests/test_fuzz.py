"""Property-based fuzzing of the parser and the whole fit pipeline (issue 11).

Properties: whatever the model text and options, (1) only the package's own exceptions escape
(``ModelSyntaxError``, ``ModelError``, ``DataError``, ``EstimationError``), and (2) nothing runs
longer than a few seconds (a SIGALRM timer fails an example that does).  Examples are derived
from a fixed seed (``derandomize=True``) so that CI runs are reproducible; set
``SEM_MODELS_FUZZ_EXAMPLES`` to run more (e.g. 2000) and ``SEM_MODELS_FUZZ_RANDOM=1`` to explore
new examples locally.  Bugs found this way go into tests/test_hardening.py as table rows.
The whole file runs in well under a minute.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sem_models as sm
from sem_models.datasets import load
from sem_models.errors import PACKAGE_ERRORS
from sem_models.model.syntax import compile_expression

HS = load("HolzingerSwineford1939")


def _data_variants() -> dict:
    """HS39 and damaged copies of it (the caller's frame is never modified)."""
    rng = np.random.default_rng(11)
    holes = HS.copy()
    mask = rng.random((len(HS), 9)) < 0.1
    for k, v in enumerate([f"x{i}" for i in range(1, 10)]):
        holes.loc[mask[:, k], v] = np.nan
    return {
        "hs": HS,
        "holes": holes,
        "rescaled": HS.assign(x1=HS.x1 * 1e6, x5=HS.x5 * 1e-3),
        "constant": HS.assign(x3=1.0),
        "text": HS.assign(x2=HS.x2.astype(str)),
        "inf": HS.assign(x4=HS.x4.where(HS.index != 7, np.inf)),
        "tiny": HS.head(6),
        "one_school": HS[HS.school == "Pasteur"].head(40),
        "collinear": HS.assign(x6=HS.x4 + HS.x5),
        "empty_rows": holes.assign(**{f"x{i}": np.nan for i in range(1, 10)}).head(5),
    }


DATA = _data_variants()
EXAMPLES = int(os.environ.get("SEM_MODELS_FUZZ_EXAMPLES", "0"))
SETTINGS = dict(deadline=None, database=None,
                derandomize=os.environ.get("SEM_MODELS_FUZZ_RANDOM", "") in ("", "0"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: seconds one example (parse, or fit + every result table) may take
TIME_LIMIT = 5.0


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (raise) when the body runs longer than ``seconds`` (SIGALRM, main thread)."""
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        yield
        return

    def alarm(signum, frame):
        raise _TooSlow(f"an example ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def only_package_errors(func) -> None:
    """Run ``func``; an exception other than the package's own fails the example."""
    with time_limit(TIME_LIMIT), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            func()
        except PACKAGE_ERRORS:
            pass


# ------------------------------------------------------------------------------ strategies
OBSERVED = [f"x{k}" for k in range(1, 10)]
LATENT = ["f1", "f2", "f3"]
NUMBERS = ["1", "0", "0.5", "-1", "2.5e-1", "1e400", "0x10", "1_000", "1j", ".5", "5.", "1e-300",
           "9", "NA", "-0", "1e5"]
LABELS = ["a", "b", "c", "d", ".p1.", "visual=~x2", "x1~~x1", "exp", "NA"]
FUNCTIONS = ["exp", "log", "sqrt", "abs", "pnorm", "foo", "c", "start", "label", "equal"]
TOKENS = (OBSERVED + LATENT + NUMBERS + LABELS + FUNCTIONS
          + ["=~", "~", "~~", ":=", "==", "<", ">", "<=", "+", "-", "*", "/", "^", "**", "(",
             ")", ",", ";", "\n", "#", "!", '"', "'", " ", "1", "~1", "|", "%", "$", "\t"])


def _expression(depth: int = 0) -> st.SearchStrategy[str]:
    atom = st.sampled_from(["a", "b", "c", ".p2.", "2", "0.5", "1e3", "9", "10", "0", "1e308"])
    if depth >= 3:
        return atom
    sub = st.deferred(lambda: _expression(depth + 1))
    return st.one_of(
        atom,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "^"]), sub).map(
            lambda t: f"{t[0]}{t[1]}{t[2]}"),
        st.tuples(st.sampled_from(["-", "+", "--", ""]), sub).map(lambda t: t[0] + t[1]),
        st.tuples(st.sampled_from(["exp", "log", "sqrt", "abs", "pnorm", ""]), sub).map(
            lambda t: f"{t[0]}({t[1]})"),
    )


modifier = st.one_of(
    st.just(""),
    st.sampled_from(["1*", "0*", "NA*", "0.5*", "-1*", "a*", "b*", "c*", "start(0.5)*",
                     "label(\"a\")*", "equal(\"f1=~x2\")*", "c(1, NA)*", "c(a, b)*", "c(a, a)*",
                     "1e400*", "2*a*", "start(1)*b*"]),
)


valid_modifier = st.one_of(
    st.just(""), st.just(""), st.just(""),
    st.sampled_from(["1*", "NA*", "0.5*", "a*", "b*", "start(0.5)*", "c(a, b)*", "c(1, NA)*",
                     "equal(\"f1=~x2\")*", "start(1)*b*"]),
)


@st.composite
def models(draw, hostile: bool = True) -> str:
    """A model from lavaan's grammar with random parts: often invalid (``hostile``), else
    mostly fittable (factors of observed variables and earlier factors)."""
    lines = []
    n_factors = draw(st.integers(1, 3))
    mod = modifier if hostile else valid_modifier
    for k in range(n_factors):
        pool = OBSERVED + (LATENT if hostile else LATENT[:k])
        inds = draw(st.lists(st.sampled_from(pool), min_size=1 if hostile else 2,
                             max_size=4, unique=True))
        terms = [draw(mod) + v for v in inds]
        lines.append(f"{LATENT[k]} =~ " + " + ".join(terms))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["~", "~~", "~1", ":=", "==", "<", ">"]))
        lhs = draw(st.sampled_from(LATENT[:n_factors] + OBSERVED))
        rhs = draw(st.sampled_from(LATENT[:n_factors] + OBSERVED))
        if kind == "~1":
            lines.append(f"{lhs} ~ {draw(mod)}1")
        elif kind == ":=":
            lines.append(f"{draw(st.sampled_from(['d', 'e', 'a']))} := {draw(_expression())}")
        elif kind in ("==", "<", ">"):
            lines.append(f"{draw(_expression())} {kind} {draw(_expression())}")
        else:
            lines.append(f"{lhs} {kind} {draw(mod)}{rhs}")
    return "\n".join(lines)


options = st.fixed_dictionaries({}, optional={
    "std_lv": st.sampled_from([True, False, "yes"]),
    "group": st.sampled_from(["school", None, "nope", 3]),
    "group_equal": st.sampled_from([["loadings"], ["loadings", "intercepts"], ["lv.variances"],
                                    ["loadings", "lv.variances"], ["loading"], "residuals"]),
    "group_partial": st.sampled_from([["f1=~x2"], ["x1~1"], ["f9=~x1"], ["bad"], []]),
    "level": st.sampled_from([0.9, 1.5, 0.0, float("nan"), "0.95"]),
    "max_iter": st.sampled_from([0, 3, 200, -1, 2.5]),
    "estimator": st.sampled_from(["ML", "MLR", "MLM", "mlr", "BAYES"]),
    "missing": st.sampled_from(["listwise", "fiml", "pairwise"]),
    "meanstructure": st.sampled_from([True, False, "default", "maybe"]),
    "orthogonal": st.sampled_from([True, False]),
})


valid_options = st.fixed_dictionaries({}, optional={
    "std_lv": st.booleans(),
    "group": st.just("school"),
    "group_equal": st.sampled_from([["loadings"], ["loadings", "intercepts"],
                                    ["loadings", "lv.variances"], ["residuals"]]),
    "estimator": st.sampled_from(["ML", "MLR", "MLM"]),
    "orthogonal": st.booleans(),
    "max_iter": st.sampled_from([5, 500]),
})


# ------------------------------------------------------------------------------ properties
@settings(max_examples=EXAMPLES or 300, **SETTINGS)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_parser_raises_only_syntax_errors(text):
    """Token soup: parse_model returns a model or raises ModelSyntaxError, quickly."""
    def parse():
        try:
            sm.parse_model(text)
        except sm.ModelSyntaxError as exc:
            assert exc.line >= 1 and exc.column >= 1
            raise
    only_package_errors(parse)


@settings(max_examples=EXAMPLES or 200, **SETTINGS)
@given(st.text(alphabet="ab.p0123456789eE+-*/^()x_j ,", max_size=60))
def test_expressions_compile_or_fail_cleanly(text):
    """Any expression text compiles (and then evaluates to a float without an exception) or
    raises ModelSyntaxError; constants must be finite."""
    def run():
        expr = compile_expression(text)
        env = {name: 1.5 for name in expr.labels}
        value = expr.evaluate(env)
        assert np.ndim(value) == 0
        if not expr.labels:
            assert np.isfinite(value)
    only_package_errors(run)


@settings(max_examples=EXAMPLES or 60, **SETTINGS)
@given(models(), options, st.sampled_from(sorted(DATA)))
def test_fit_pipeline_raises_only_package_errors(model, opts, data_name):
    """Random models, options and (damaged) data: fit and every result table, or a package
    error; the caller's data are left as they were."""
    data = DATA[data_name]
    before = data.copy()

    def run():
        fit = sm.cfa(model, data, **opts)
        fit.estimates()
        fit.measures()
        fit.standardized()
    only_package_errors(run)
    assert data.equals(before)


@settings(max_examples=EXAMPLES or 60, **SETTINGS)
@given(models(hostile=False), valid_options, st.sampled_from(["hs", "holes", "rescaled"]),
       st.booleans())
def test_fit_pipeline_on_fittable_models(model, opts, data_name, fiml):
    """Mostly fittable models with valid options (groups, equality constraints, MLR / MLM,
    FIML): the fit and its tables, or a package error, quickly."""
    if fiml:
        opts = {**opts, "missing": "fiml"}

    def run():
        fit = sm.cfa(model, DATA[data_name], **opts)
        fit.estimates()
        fit.measures()
        fit.standardized()
        fit.modindices()
    only_package_errors(run)


@pytest.mark.parametrize("depth", [10, 63, 64, 500, 5000])
def test_deep_nesting_is_bounded(depth):
    """Deeply nested expressions: a syntax error (or a value), never a RecursionError."""
    for text in ("(" * depth + "a" + ")" * depth, "-" * depth + "a", "2^" * depth + "1",
                 "exp(" * depth + "a" + ")" * depth):
        only_package_errors(lambda: compile_expression(text).evaluate({"a": 0.5}))
        only_package_errors(lambda: sm.cfa(f"visual =~ x1 + a*x2 + x3\nd := {text}", HS))
