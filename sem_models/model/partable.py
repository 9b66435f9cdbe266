"""Parameter table: the single source of truth for a model (lavaan's ``parTable``).

Stage 2 of the pipeline.  :func:`build_partable` turns parsed syntax into one row per model
parameter and group, adding lavaan's defaults (Rosseel 2012, section 5; ``?lavOptions``):

* the first loading of every factor fixed to 1 (or, with ``std_lv=True``, factor variances
  fixed to 1 and all loadings free);
* residual variances of observed and latent variables free;
* covariances among exogenous latent variables free (unless ``orthogonal=True``), and among
  endogenous variables that predict nothing (lavaan's ``auto.cov.y``);
* observed exogenous covariates (``ov.x``): with ``fixed_x=True`` their variances, covariances
  and means are fixed to the sample values, otherwise free;
* with a mean structure, observed intercepts free and latent means fixed to zero (free in
  groups after the first once intercepts are constrained equal across groups).

Columns: ``id lhs op rhs user group free ustart exo label plabel start lower upper``.
``free`` numbers the free rows 1..n (0 = fixed); rows sharing a ``label`` (a user label or the
automatic ``group_equal`` label) are constrained equal.  Constraint and defined-parameter rows
(``==``, ``<``, ``>``, ``:=``) have ``group == 0``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from .syntax import ModelSyntaxError, ParsedModel, Statement

__all__ = ["ModelVariables", "ParTable", "build_partable", "GROUP_EQUAL_KEYWORDS",
           "parse_partial"]

GROUP_EQUAL_KEYWORDS = (
    "loadings", "intercepts", "means", "residuals", "residual.covariances", "lv.variances",
    "lv.covariances", "regressions",
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
        self._frame: Optional[pd.DataFrame] = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __len__(self) -> int:
        return len(self._columns["id"])

    def records(self, mask: np.ndarray) -> list[dict]:
        """The selected rows as dictionaries (column -> value)."""
        return [{name: col[r] for name, col in self._columns.items()}
                for r in np.flatnonzero(mask)]

    def to_frame(self, **extra: np.ndarray) -> pd.DataFrame:
        """lavaan's ``parTable`` as a DataFrame, with ``extra`` columns appended (e.g.
        ``est=...``).  Without extras the frame is cached: copy it before changing it."""
        if extra:
            return pd.DataFrame({**{name: self._columns[name].tolist() for name in self.COLUMNS},
                                 **extra})
        if self._frame is None:
            self._frame = pd.DataFrame({name: self._columns[name].tolist()
                                        for name in self.COLUMNS})
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


def model_variables(statements: Sequence[Statement]) -> ModelVariables:
    """Classify variables: latent, observed, exogenous observed (``ov.x``), exogenous latent."""
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
        for name in (st.lhs, st.rhs) if st.op != "=~" else (st.rhs,):
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
    eqs_y = []
    for st in statements:
        if st.op == "~" and st.lhs not in rhs_reg and st.lhs not in eqs_y:
            eqs_y.append(st.lhs)
    return ModelVariables(lv, ov, ov_x, lv_x, eqs_y, indicators)


def parse_partial(items: Iterable[str]) -> set[tuple[str, str, str]]:
    """``"x3~1"``, ``"visual=~x2"``, ``"x1~~x1"`` -> ``(lhs, op, rhs)`` keys."""
    keys = set()
    for item in items:
        text = item.replace(" ", "")
        for op in ("=~", "~~", "~1", "~"):
            if op == "~1" and text.endswith("~1"):
                keys.add((text[:-2], "~1", ""))
                break
            if op != "~1" and op in text:
                lhs, rhs = text.split(op, 1)
                keys.add((lhs, op, rhs))
                break
        else:
            raise ValueError(f"group_partial entry {item!r} is not of the form 'lhs op rhs' "
                             "(e.g. 'x3~1' or 'visual=~x2')")
    return keys


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
) -> tuple[ParTable, ModelVariables]:
    """Build the parameter table (one row per parameter and group) with lavaan's defaults."""
    bad = [k for k in group_equal if k not in GROUP_EQUAL_KEYWORDS]
    if bad:
        raise ValueError(f"unknown group_equal keyword(s) {bad}; choose from "
                         f"{list(GROUP_EQUAL_KEYWORDS)}")
    statements = _merge_duplicates(parsed.statements)
    variables = model_variables(statements)
    _check_statements(statements, variables)
    partial = parse_partial(group_partial)
    if any(st.op == "~1" for st in statements):
        meanstructure = True

    rows: list[dict] = []
    for g in range(n_groups):
        rows.extend(_group_rows(statements, variables, g, n_groups, std_lv=std_lv,
                                meanstructure=meanstructure, fixed_x=fixed_x,
                                orthogonal=orthogonal, group_equal=group_equal,
                                auto_cov_y=auto_cov_y))
    for k, row in enumerate(rows, start=1):
        row["plabel"] = f".p{k}."
    if n_groups > 1 and group_equal:
        _apply_group_equal(rows, variables, group_equal, partial)
    _fix_shared_labels(rows)
    _number_free(rows)
    for c in parsed.constraints:
        rows.append(dict(lhs=c.lhs, op=c.op, rhs=c.rhs, user=1, group=0, free=0,
                         ustart=math.nan, exo=0, label="", plabel="", start=math.nan,
                         line=c.line, col=c.col))
    return ParTable(rows), variables


def _merge_duplicates(statements: Sequence[Statement]) -> list[Statement]:
    """Later statements about the same parameter update earlier ones (``x1 ~~ x2`` == ``x2 ~~ x1``)."""
    seen: dict[tuple, Statement] = {}
    order: list[tuple] = []
    for st in statements:
        key = (st.lhs, st.op, st.rhs)
        if st.op == "~~" and (st.rhs, "~~", st.lhs) in seen:
            key = (st.rhs, "~~", st.lhs)
        if key in seen:
            prev = seen[key]
            seen[key] = Statement(prev.lhs, prev.op, prev.rhs, prev.modifier.merge(st.modifier),
                                  prev.line, prev.col)
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


def _group_rows(statements, variables: ModelVariables, g: int, n_groups: int, *, std_lv,
                meanstructure, fixed_x, orthogonal, group_equal, auto_cov_y) -> list[dict]:
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

    # residual variances of observed and latent variables
    for v in variables.ov:
        if v in ov_x:
            continue
        add(v, "~~", v, user=0, free=True)
    for v in variables.lv:
        if std_lv:
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
    # mean structure
    if meanstructure:
        for v in variables.ov:
            if v in ov_x:
                add(v, "~1", "", user=0, free=False, exo=1)
            else:
                add(v, "~1", "", user=0, free=True)
        lv_means_free = g > 0 and "intercepts" in group_equal and "means" not in group_equal
        for v in variables.lv:
            if lv_means_free:
                add(v, "~1", "", user=0, free=True)
            else:
                add(v, "~1", "", user=0, free=False, ustart=0.0)
    return rows


def _group_equal_keyword(row: dict, lv: set, ov: set) -> Optional[str]:
    """The group_equal keyword that covers a parameter-table row (None if none does)."""
    op, lhs, rhs = row["op"], row["lhs"], row["rhs"]
    if op == "=~":
        return "loadings"
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
