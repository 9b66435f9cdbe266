"""Parameter table: the single source of truth for a model (lavaan's ``parTable``).

Stage 2 of the pipeline.  :func:`build_partable` turns parsed syntax into one row per model
parameter and group, adding lavaan's defaults (Rosseel 2012, section 5; ``?lavOptions``):

* the first loading of every factor fixed to 1 (or, with ``std_lv=True``, factor variances
  fixed to 1 and all loadings free; in multiple groups with ``group_equal`` loadings but not
  lv.variances, the factor variances of the groups after the first are free, as lavaan's
  ``lav_partable_flat``: the equal loadings fix the scale there);
* residual variances of observed and latent variables free, except that the only indicator of
  a factor gets residual variance 0 (lavaan's ``auto.fix.single``; e.g. a phantom latent
  ``d =~ 1*textual`` re-expresses ``textual``);
* covariances among exogenous latent variables free (unless ``orthogonal=True``), and among
  endogenous variables that predict nothing (lavaan's ``auto.cov.y``);
* observed exogenous covariates (``ov.x``): with ``fixed_x=True`` their variances, covariances
  and means are fixed to the sample values, otherwise free;
* with a mean structure, observed intercepts free and latent means fixed to zero (free in
  groups after the first once intercepts are constrained equal across groups).

Columns: ``id lhs op rhs user group free ustart exo label plabel start lower upper``.
``free`` numbers the free rows 1..n (0 = fixed); rows sharing a ``label`` (a user label or the
automatic ``group_equal`` label) are constrained equal.  As in lavaan, a parameter without a
user label is also known by its name ``lhs op rhs`` (``.g2`` ... appended in later groups), so
``equal("visual=~x2")*x5`` (or the label ``visual=~x2``) ties x5's loading to x2's.
Constraint and defined-parameter rows (``==``, ``<``, ``>``, ``:=``) have ``group == 0``.

Statements that clash are errors (:class:`~sem_models.model.syntax.ModelSyntaxError` with the
line): the same parameter in two statements (lavaan: "duplicate model element"), a ``:=`` name
given twice or equal to a parameter label, an unknown label in ``:=`` or a constraint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from ..errors import ModelError
from .syntax import ModelSyntaxError, ParsedModel, Statement, compile_expression

__all__ = ["ModelVariables", "ParTable", "build_partable", "GROUP_EQUAL_KEYWORDS",
           "parse_partial"]

GROUP_EQUAL_KEYWORDS = (
    "loadings", "intercepts", "means", "residuals", "residual.covariances", "lv.variances",
    "lv.covariances", "regressions", "thresholds",
)


class ParTable:
    """The parameter table as columns: numpy arrays the estimator reads directly.

    Columns (in :attr:`COLUMNS` order) hold one entry per row; string columns are object
    arrays of Python strings.  :meth:`to_frame` gives lavaan's ``parTable`` as a pandas
    DataFrame, built once and only when results ask for it (a DataFrame costs more to build
    than a small model takes to fit).
    """

    COLUMNS = ("id", "lhs", "op", "rhs", "user", "group", "free", "ustart", "exo", "label",
               "start", "line", "col", "plabel")
    _FLOAT = ("ustart", "start")
    _TEXT = ("lhs", "op", "rhs", "label", "plabel")

    def __init__(self, rows: Sequence[dict]):
        self._columns: dict[str, np.ndarray] = {"id": np.arange(1, len(rows) + 1)}
        for name in self.COLUMNS[1:]:
            values = [row[name] for row in rows]
            dtype = float if name in self._FLOAT else object if name in self._TEXT else int
            self._columns[name] = np.array(values, dtype=dtype) if values else \
                np.zeros(0, dtype)
        # bounds of lower() / upper() modifiers: columns only when a row has one (as lavaan)
        self._extra: tuple = ()
        if any("lower" in row or "upper" in row for row in rows):
            self._extra = ("lower", "upper")
            for name, default in (("lower", -np.inf), ("upper", np.inf)):
                self._columns[name] = np.array([row.get(name, default) for row in rows], float)
        self._frame: Optional[pd.DataFrame] = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    def group_rows(self, g: int) -> np.ndarray:
        """Positions (in table order) of the rows of group ``g`` (0-based: rows with
        ``group == g + 1``), from one stable sort of the group column, cached (multi-group
        code then costs the size of the group, not of the table)."""
        cached = self.__dict__.get("_group_index")
        if cached is None:
            group = self._columns["group"]
            order = np.argsort(group, kind="stable")
            bounds = np.searchsorted(group[order], np.arange(group.max(initial=0) + 2))
            cached = self.__dict__["_group_index"] = (order, bounds)
        order, bounds = cached
        if g + 2 >= len(bounds):
            return order[:0]
        return order[bounds[g + 1]:bounds[g + 2]]

    def __len__(self) -> int:
        return len(self._columns["id"])

    def records(self, mask: np.ndarray) -> list[dict]:
        """The selected rows as dictionaries (column -> value)."""
        return [{name: col[r] for name, col in self._columns.items()}
                for r in np.flatnonzero(mask)]

    def to_frame(self, **extra: np.ndarray) -> pd.DataFrame:
        """lavaan's ``parTable`` as a DataFrame, with ``extra`` columns appended (e.g.
        ``est=...``).  Without extras the frame is cached: copy it before changing it."""
        columns = self.COLUMNS + getattr(self, "_extra", ())
        if extra:
            return pd.DataFrame({**{name: self._columns[name].tolist() for name in columns},
                                 **extra})
        if self._frame is None:
            self._frame = pd.DataFrame({name: self._columns[name].tolist()
                                        for name in columns})
        return self._frame


@dataclass
class ModelVariables:
    """Variable roles read off the statements (lavaan's ``lavNames``)."""

    lv: list[str]
    ov: list[str]
    ov_x: list[str]
    lv_x: list[str]
    eqs_y: list[str]
    indicators: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ov_nox(self) -> list[str]:
        return [v for v in self.ov if v not in self.ov_x]


def rows_of_group(table, g: int) -> np.ndarray:
    """Positions of the rows of group ``g`` (0-based) of a parameter table: cached for a
    :class:`ParTable`, by a scan of the group column for other tables (views, frames)."""
    if isinstance(table, ParTable):
        return table.group_rows(g)
    return np.flatnonzero(np.asarray(table["group"]) == g + 1)


def model_variables(statements: Sequence[Statement]) -> ModelVariables:
    """Classify variables: latent, observed, exogenous observed (``ov.x``), exogenous latent."""
    _check_statements(statements, None)
    lv: list[str] = []
    indicators: dict[str, list[str]] = {}
    for st in statements:
        if st.op == "=~":
            if st.lhs not in lv:
                lv.append(st.lhs)
            indicators.setdefault(st.lhs, [])
            if st.rhs not in indicators[st.lhs]:
                indicators[st.lhs].append(st.rhs)
    ov: list[str] = []
    for st in statements:
        names = ((st.rhs,) if st.op == "=~" else (st.lhs,) if st.op in ("|", "~*~")
                 else (st.lhs, st.rhs))  # "x1 | t1": t1 names a threshold, not a variable
        for name in names:
            if name and name not in lv and name not in ov:
                ov.append(name)
    lhs_reg = {st.lhs for st in statements if st.op in ("~",)}
    rhs_reg = {st.rhs for st in statements if st.op == "~"}
    rhs_ind = {st.rhs for st in statements if st.op == "=~"}
    # as lavaan: a covariate named in a user (co)variance or intercept statement is not a
    # fixed exogenous covariate
    mentioned = {name for st in statements if st.op in ("~~", "~1") for name in (st.lhs, st.rhs)}
    ov_x = [v for v in ov if v in rhs_reg and v not in lhs_reg and v not in rhs_ind
            and v not in mentioned]
    # lavaan puts exogenous covariates after the other observed variables
    ov = [v for v in ov if v not in ov_x] + ov_x
    lv_x = [v for v in lv if v not in lhs_reg and v not in rhs_ind]
    # endogenous variables that predict nothing and indicate no factor (lavaan's ov.y and
    # lv.y, which auto.cov.y lets covary; e.g. not dem65 in 'delta =~ 1*dem65')
    eqs_y = []
    for st in statements:
        if (st.op == "~" and st.lhs not in rhs_reg and st.lhs not in rhs_ind
                and st.lhs not in eqs_y):
            eqs_y.append(st.lhs)
    return ModelVariables(lv, ov, ov_x, lv_x, eqs_y, indicators)


def _partial_key(item) -> tuple[str, str, str]:
    """``"x3~1"``, ``"visual=~x2"``, ``"x1~~x1"`` -> ``(lhs, op, rhs)``."""
    text = item.replace(" ", "") if isinstance(item, str) else ""
    for op in ("=~", "~*~", "~~", "~1", "~", "|"):
        if op == "~1" and text.endswith("~1"):
            if text[:-2]:
                return (text[:-2], "~1", "")
            break
        if op != "~1" and op in text:
            lhs, rhs = text.split(op, 1)
            if lhs and rhs:
                return (lhs, op, rhs)
            break
    raise ModelError(f"group_partial entry {item!r} is not of the form 'lhs op rhs' "
                     "(e.g. 'x3~1' or 'visual=~x2')")


def parse_partial(items: Iterable[str]) -> set[tuple[str, str, str]]:
    """``"x3~1"``, ``"visual=~x2"``, ``"x1~~x1"`` -> ``(lhs, op, rhs)`` keys."""
    return {_partial_key(item) for item in items}


def _key_text(key: tuple) -> str:
    lhs, op, rhs = key
    return f"{lhs}~1" if op == "~1" else f"{lhs}{op}{rhs}"


def _value_for_group(values: Optional[list], g: int, n_groups: int, what: str, st: Statement):
    if values is None:
        return None
    if len(values) == 1:
        return values[0]
    if len(values) != n_groups:
        raise ModelSyntaxError(
            f"the modifier for {st.lhs} {st.op} {st.rhs} has {len(values)} {what} values but "
            f"the data have {n_groups} group(s)", st.line, st.col)
    return values[g]


def build_partable(
    parsed: ParsedModel,
    n_groups: int = 1,
    *,
    std_lv: bool = False,
    meanstructure: bool = False,
    fixed_x: bool = True,
    orthogonal: bool = False,
    group_equal: Sequence[str] = (),
    group_partial: Sequence[str] = (),
    auto_cov_y: bool = True,
    ordinal=None,
    int_ov_free: bool = True,
    int_lv_free: bool = False,
) -> tuple[ParTable, ModelVariables]:
    """Build the parameter table (one row per parameter and group) with lavaan's defaults.

    ``ordinal``: the ordered variables of the model (an
    :class:`~sem_models.model.ordinal.OrdinalSpec`): their thresholds (``|``), fixed residual
    variances, scale factors (``~*~``) and zero intercepts, as lavaan lists them.
    ``int_ov_free`` / ``int_lv_free`` (lavaan's ``int.ov.free`` / ``int.lv.free``): whether
    the intercepts of the observed (non-exogenous) variables and the latent means are free
    parameters when the model has a mean structure; ``growth()`` fixes the former to 0 and
    frees the latter."""
    try:
        return _build_partable(parsed, n_groups, std_lv=std_lv, meanstructure=meanstructure,
                               fixed_x=fixed_x, orthogonal=orthogonal, group_equal=group_equal,
                               group_partial=group_partial, auto_cov_y=auto_cov_y,
                               ordinal=ordinal, int_ov_free=int_ov_free,
                               int_lv_free=int_lv_free)
    except ModelSyntaxError as exc:
        if exc.source_line or not exc.line:
            raise
        lines = parsed.source.split("\n")
        source_line = lines[exc.line - 1] if exc.line <= len(lines) else ""
        raise ModelSyntaxError(exc.message, exc.line, exc.column, source_line) from None


def _build_partable(parsed: ParsedModel, n_groups: int, *, std_lv, meanstructure, fixed_x,
                    orthogonal, group_equal, group_partial, auto_cov_y, ordinal=None,
                    int_ov_free=True, int_lv_free=False):
    bad = [k for k in group_equal if k not in GROUP_EQUAL_KEYWORDS]
    if bad:
        raise ModelError(f"unknown group_equal keyword(s) {bad}; choose from "
                         f"{list(GROUP_EQUAL_KEYWORDS)}")
    statements = _merge_duplicates(parsed.statements)
    variables = model_variables(statements)
    _check_statements(statements, variables)
    partial_items = list(group_partial)
    partial = parse_partial(partial_items)
    if any(st.op == "~1" for st in statements):
        meanstructure = True

    single = _single_indicators(statements)
    rows: list[dict] = []
    for g in range(n_groups):
        rows.extend(_group_rows(statements, variables, g, n_groups, std_lv=std_lv,
                                meanstructure=meanstructure, fixed_x=fixed_x,
                                orthogonal=orthogonal, group_equal=group_equal,
                                auto_cov_y=auto_cov_y, single=single, ordinal=ordinal,
                                int_ov_free=int_ov_free, int_lv_free=int_lv_free))
    for k, row in enumerate(rows, start=1):
        row["plabel"] = f".p{k}."
    _resolve_parameter_names(rows)
    if partial_items:
        _check_partial(rows, variables, group_equal, partial_items, n_groups)
    if n_groups > 1 and group_equal:
        _apply_group_equal(rows, variables, group_equal, partial)
    _fix_shared_labels(rows)
    _number_free(rows)
    _check_constraints(parsed.constraints, rows)
    for c in parsed.constraints:
        rows.append(dict(lhs=c.lhs, op=c.op, rhs=c.rhs, user=1, group=0, free=0,
                         ustart=math.nan, exo=0, label="", plabel="", start=math.nan,
                         line=c.line, col=c.col))
    return ParTable(rows), variables


def _merge_duplicates(statements: Sequence[Statement]) -> list[Statement]:
    """One statement per parameter (``x1 ~~ x2`` is ``x2 ~~ x1``).

    Terms of one statement about the same parameter combine their modifiers
    (``f ~~ c(1, NA)*f + c(psi, psi)*f``, as semTools' ``measEq.syntax`` writes); the same
    parameter in two statements is an error (lavaan: "duplicate model element"), since which
    value should win is not clear (``x1 ~~ 0.5*x1`` then ``x1 ~~ 0.7*x1``)."""
    seen: dict[tuple, Statement] = {}
    order: list[tuple] = []
    for st in statements:
        key = (st.lhs, st.op, st.rhs)
        if st.op == "~~" and (st.rhs, "~~", st.lhs) in seen:
            key = (st.rhs, "~~", st.lhs)
        if key in seen:
            prev = seen[key]
            if prev.stmt != st.stmt:
                what = f"{st.lhs} ~ 1" if st.op == "~1" else f"{st.lhs} {st.op} {st.rhs}"
                raise ModelSyntaxError(
                    f"duplicate model element '{what}': it is already specified at line "
                    f"{prev.line}; give each parameter once, with all its modifiers "
                    "(e.g. 'x1 ~~ start(0.5)*a*x1')", st.line, st.col)
            seen[key] = Statement(prev.lhs, prev.op, prev.rhs, prev.modifier.merge(st.modifier),
                                  prev.line, prev.col, prev.stmt)
        else:
            seen[key] = st
            order.append(key)
    return [seen[k] for k in order]


def _check_statements(statements: Sequence[Statement], variables: ModelVariables) -> None:
    for st in statements:
        if st.op == "=~" and st.rhs == st.lhs:
            raise ModelSyntaxError(f"factor {st.lhs!r} cannot be its own indicator",
                                   st.line, st.col)
        if st.op == "~" and st.rhs == st.lhs:
            raise ModelSyntaxError(f"{st.lhs!r} cannot be regressed on itself", st.line, st.col)


def _row(lhs, op, rhs, g, *, user, free, ustart=math.nan, exo=0, label="", start=math.nan,
         line=0, col=0) -> dict:
    return dict(lhs=lhs, op=op, rhs=rhs, user=user, group=g + 1, free=int(free),
                ustart=ustart, exo=exo, label=label, start=start, line=line, col=col)


def _single_indicators(statements: Sequence[Statement]) -> set[str]:
    """Indicators that are the only indicator of their factor and indicate nothing else
    (lavaan's ``auto.fix.single``: their residual variance is fixed to 0)."""
    loadings = [(st.lhs, st.rhs) for st in statements if st.op == "=~"]
    per_factor: dict[str, int] = {}
    per_indicator: dict[str, int] = {}
    for lhs, rhs in loadings:
        per_factor[lhs] = per_factor.get(lhs, 0) + 1
        per_indicator[rhs] = per_indicator.get(rhs, 0) + 1
    return {rhs for lhs, rhs in loadings
            if per_factor[lhs] == 1 and lhs != rhs and per_indicator[rhs] == 1}


def _group_rows(statements, variables: ModelVariables, g: int, n_groups: int, *, std_lv,
                meanstructure, fixed_x, orthogonal, group_equal, auto_cov_y,
                single=frozenset(), ordinal=None, int_ov_free=True,
                int_lv_free=False) -> list[dict]:
    rows: list[dict] = []
    present: set[tuple] = set()
    markers = {lv: inds[0] for lv, inds in variables.indicators.items()}
    ov_x = set(variables.ov_x) if fixed_x else set()

    def add(lhs, op, rhs, **kw):
        key = (lhs, op, rhs)
        if key in present or (op == "~~" and (rhs, op, lhs) in present):
            return
        present.add(key)
        rows.append(_row(lhs, op, rhs, g, **kw))

    for st in statements:
        fixed = _value_for_group(st.modifier.fixed, g, n_groups, "fixed", st)
        label = _value_for_group(st.modifier.label, g, n_groups, "label", st)
        start = _value_for_group(st.modifier.start, g, n_groups, "start", st)
        free = True
        ustart = math.nan
        if fixed is not None and not math.isnan(fixed):
            free, ustart = False, float(fixed)
        elif fixed is None:
            if st.op == "=~" and not std_lv and markers.get(st.lhs) == st.rhs:
                free, ustart = False, 1.0
        rhs = st.rhs
        add(st.lhs, st.op, rhs, user=1, free=free, ustart=ustart, label=label or "",
            start=math.nan if start is None else float(start), line=st.line, col=st.col)
        if st.modifier.equal and label:
            rows[-1]["_equal"] = True
        if st.modifier.lower is not None or st.modifier.upper is not None:
            # lower() / upper() bounds (lavaan's partable columns of the same names)
            lower = _value_for_group(st.modifier.lower, g, n_groups, "lower", st)
            upper = _value_for_group(st.modifier.upper, g, n_groups, "upper", st)
            rows[-1]["lower"] = -math.inf if lower is None else float(lower)
            rows[-1]["upper"] = math.inf if upper is None else float(upper)
    if ordinal is not None:  # thresholds of the ordered variables (lavaan's "|" rows)
        for v, t in ordinal.threshold_names(variables.ov):
            add(v, "|", t, user=0, free=True)

    # residual variances of observed and latent variables; the only indicator of a factor
    # gets residual variance 0 (lavaan's auto.fix.single)
    for v in variables.ov:
        if v in ov_x:
            continue
        if v in single:
            add(v, "~~", v, user=0, free=False, ustart=0.0)
        elif ordinal is not None and v in ordinal.nthresholds:  # latent-response variance
            free = ordinal.residual_free(g, group_equal)
            add(v, "~~", v, user=0, free=free, ustart=math.nan if free else 1.0)
        else:
            add(v, "~~", v, user=0, free=True)
    # std_lv: factor variances 1, except in later groups when equal loadings fix the scale
    # (lavaan frees them there unless lv.variances are constrained equal too)
    std_lv_here = std_lv and not (g > 0 and "loadings" in group_equal
                                  and "lv.variances" not in group_equal)
    for v in variables.lv:
        if v in single:
            add(v, "~~", v, user=0, free=False, ustart=0.0)
        elif std_lv_here:
            add(v, "~~", v, user=0, free=False, ustart=1.0)
        else:
            add(v, "~~", v, user=0, free=True)
    # covariances among exogenous latent variables
    if not orthogonal:
        lvx = variables.lv_x
        for i in range(len(lvx)):
            for j in range(i + 1, len(lvx)):
                add(lvx[i], "~~", lvx[j], user=0, free=True)
    # covariances among endogenous variables that predict nothing (auto.cov.y)
    if auto_cov_y:
        ys = variables.eqs_y
        for i in range(len(ys)):
            for j in range(i + 1, len(ys)):
                if not (orthogonal and ys[i] in variables.lv and ys[j] in variables.lv):
                    add(ys[i], "~~", ys[j], user=0, free=True)
    # exogenous observed covariates
    xs = variables.ov_x
    for i in range(len(xs)):
        for j in range(i, len(xs)):
            if fixed_x:
                add(xs[i], "~~", xs[j], user=0, free=False, exo=1)
            else:
                add(xs[i], "~~", xs[j], user=0, free=True)
    if ordinal is not None:  # scale factors of the ordered variables' latent responses
        free = ordinal.scale_free(g, group_equal)
        for v in ordinal.names_in(variables.ov):
            add(v, "~*~", v, user=0, free=free, ustart=math.nan if free else 1.0)
    # mean structure
    if meanstructure:
        for v in variables.ov:
            if v in ov_x:
                add(v, "~1", "", user=0, free=False, exo=1)
            elif ordinal is not None and v in ordinal.nthresholds:
                add(v, "~1", "", user=0, free=False, ustart=0.0)
            elif not int_ov_free:  # growth(): observed intercepts fixed to 0
                add(v, "~1", "", user=0, free=False, ustart=0.0)
            else:
                add(v, "~1", "", user=0, free=True)
        # equal intercepts or thresholds identify the latent means of later groups (lavaan)
        lv_means_free = int_lv_free or (
            g > 0 and ("intercepts" in group_equal or "thresholds" in group_equal)
            and "means" not in group_equal)
        for v in variables.lv:
            if lv_means_free:
                add(v, "~1", "", user=0, free=True)
            else:
                add(v, "~1", "", user=0, free=False, ustart=0.0)
    return rows


def _parameter_name(row: dict) -> str:
    """lavaan's name of a parameter without a user label: ``lhs op rhs`` (``x1~1`` for an
    intercept), ``.g2``, ``.g3``, ... appended in later groups (``lav_partable_labels``)."""
    name = _key_text((row["lhs"], row["op"], row["rhs"]))
    return name if row["group"] <= 1 else f"{name}.g{row['group']}"


def _resolve_parameter_names(rows: list[dict]) -> None:
    """A user label that is the name ``lhs op rhs`` of a parameter without a user label
    (``equal("visual=~x2")*x5``) ties the two: the named parameter gets the label too, so the
    rows share it (lavaan: the label equals that parameter's internal name).  A label from
    ``equal()`` must name a parameter or another label, else it is a syntax error."""
    labelled = [row for row in rows if row["label"]]
    if not labelled:
        return
    by_name = {_parameter_name(row): row for row in rows if not row["label"]}
    counts: dict[str, int] = {}
    for row in labelled:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    for row in labelled:
        target = by_name.get(row["label"])
        if target is not None and not target["label"]:
            target["label"] = row["label"]
        elif target is None and row.get("_equal") and counts[row["label"]] == 1:
            raise ModelSyntaxError(
                f"equal({row['label']!r}) names no parameter of the model: write the "
                "parameter as 'lhs op rhs' (e.g. equal(\"visual=~x2\")) or use a label "
                "given to another parameter", row["line"], row["col"])


def _check_partial(rows: list[dict], variables: ModelVariables, group_equal, items: list,
                   n_groups: int) -> None:
    """Every ``group_partial`` entry must name a parameter that ``group_equal`` constrains."""
    if n_groups < 2 or not group_equal:
        raise ModelError(
            f"group_partial={items} has no effect: it releases equality constraints of "
            "group_equal across groups, which need group= (two or more groups) and "
            "group_equal; remove group_partial or add them")
    lv, ov = set(variables.lv), set(variables.ov)
    wanted = set(group_equal)
    touched = []
    for row in rows:
        key = (row["lhs"], row["op"], row["rhs"])
        if row["group"] == 1 and _group_equal_keyword(row, lv, ov) in wanted:
            touched.append(key)
    touched_set = set(touched)
    for item in items:
        key = _partial_key(item)
        alt = (key[2], key[1], key[0]) if key[1] == "~~" else key
        if key not in touched_set and alt not in touched_set:
            valid = [_key_text(k) for k in touched]
            shown = ", ".join(valid[:40]) + (", ..." if len(valid) > 40 else "")
            raise ModelError(
                f"group_partial entry {item!r} names no parameter that group_equal="
                f"{list(group_equal)} constrains across groups; valid entries: {shown}")


def _check_constraints(constraints, rows: list[dict]) -> None:
    """Names in ``:=`` and constraints: a ``:=`` name must be new (not a parameter label, not
    defined before); every label an expression reads must be a parameter label, an automatic
    ``.pN.`` label or a defined parameter (``:=``: one defined on an earlier line)."""
    if not constraints:
        return
    labels: dict[str, int] = {}
    for row in rows:
        if row["label"] and row["label"] not in labels:
            labels[row["label"]] = row["line"]
    plabels = {row["plabel"] for row in rows}
    defined = {c.lhs: c for c in constraints if c.op == ":="}
    seen: dict[str, object] = {}
    for c in constraints:
        text = f"{c.lhs} {c.op} {c.rhs}"
        if c.op == ":=":
            what = f"the definition of {c.lhs!r}"
            if c.lhs in seen:
                raise ModelSyntaxError(
                    f"{c.lhs!r} is defined twice (first at line {seen[c.lhs].line}); give each "
                    "defined parameter its own name", c.line, c.col)
            if c.lhs in labels or c.lhs in plabels:
                where = f" (line {labels[c.lhs]})" if labels.get(c.lhs) else ""
                raise ModelSyntaxError(
                    f"{c.lhs!r} is already the label of a model parameter{where}; a defined "
                    "parameter (:=) needs a new name", c.line, c.col)
            sides = [c.rhs]
        else:
            what = f"the constraint '{text}'"
            sides = [c.lhs, c.rhs]
        for side in sides:
            expression = compile_expression(side, what=what)
            for name in expression.labels:
                if name in labels or name in plabels or name in seen:
                    continue
                if c.op != ":=" and name in defined:
                    continue
                if c.op == ":=" and name == c.lhs:
                    raise ModelSyntaxError(f"{what} refers to {name!r} itself", c.line, c.col)
                if name in defined:
                    raise ModelSyntaxError(
                        f"{name!r} in {what} is defined later (line {defined[name].line}); "
                        "define it before it is used", c.line, c.col)
                known = sorted(set(labels) | set(seen))
                raise ModelSyntaxError(
                    f"unknown label {name!r} in {what}; labels in the model: {known[:40]}",
                    c.line, c.col)
        if c.op == ":=":
            seen[c.lhs] = c


def _group_equal_keyword(row: dict, lv: set, ov: set) -> Optional[str]:
    """The group_equal keyword that covers a parameter-table row (None if none does)."""
    op, lhs, rhs = row["op"], row["lhs"], row["rhs"]
    if op == "=~":
        return "loadings"
    if op == "|":
        return "thresholds"
    if op == "~":
        return "regressions"
    if op == "~1":
        if lhs in lv:
            return "means"
        return "intercepts" if row["exo"] == 0 else None
    if op == "~~":
        if lhs in lv and rhs in lv:
            return "lv.variances" if lhs == rhs else "lv.covariances"
        if lhs in ov and rhs in ov and row["exo"] == 0:
            return "residuals" if lhs == rhs else "residual.covariances"
    return None


def _apply_group_equal(rows: list[dict], variables: ModelVariables, group_equal, partial) -> None:
    """Constrain matching parameters equal across groups by giving them a common label.

    A parameter that is fixed in the first group is fixed to the same value in every group;
    a user-labelled parameter keeps its label (the user's labels decide).
    """
    lv, ov = set(variables.lv), set(variables.ov)
    wanted = set(group_equal)
    first: dict = {}
    for row in rows:
        key = (row["lhs"], row["op"], row["rhs"])
        if key in partial or _group_equal_keyword(row, lv, ov) not in wanted:
            continue
        if row["group"] == 1:
            first[key] = row
            continue
        ref = first.get(key)
        if ref is None:
            continue
        if not ref["free"]:
            if row["free"] and row["user"] == 0:
                row["free"] = 0
                row["ustart"] = ref["ustart"]
            continue
        if not row["free"] or row["label"]:
            continue
        if not ref["label"]:
            ref["label"] = ref["plabel"]
        row["label"] = ref["label"]


def _fix_shared_labels(rows: list[dict]) -> None:
    """Rows sharing a label with a fixed row are fixed to that row's value (lavaan's
    ``lavaanify`` rule; the first fixed row's value is used).

    semTools' ``measEq.syntax`` relies on this: ``c(1, NA)*f + c(psi, psi)*f`` fixes the factor
    variance to 1 in every group (tests/test_invariance.py, hs_measeq_lvvariances / _means).
    """
    fixed: dict = {}
    for row in rows:
        if row["label"] and not row["free"] and row["label"] not in fixed:
            fixed[row["label"]] = row["ustart"]
    if not fixed:
        return
    for row in rows:
        if row["free"] and row["label"] in fixed:
            row["free"] = 0
            row["ustart"] = fixed[row["label"]]


def _number_free(rows: list[dict]) -> None:
    k = 0
    for row in rows:
        if row["free"]:
            k += 1
            row["free"] = k
        else:
            row["free"] = 0
