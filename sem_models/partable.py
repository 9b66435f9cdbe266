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

import pandas as pd

from .syntax import ModelSyntaxError, ParsedModel, Statement

__all__ = ["ModelVariables", "build_partable", "GROUP_EQUAL_KEYWORDS", "parse_partial"]

GROUP_EQUAL_KEYWORDS = (
    "loadings", "intercepts", "means", "residuals", "residual.covariances", "lv.variances",
    "lv.covariances", "regressions",
)


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
    ov_x = [v for v in ov if v in rhs_reg and v not in lhs_reg and v not in rhs_ind]
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
) -> tuple[pd.DataFrame, ModelVariables]:
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
    table = pd.DataFrame(rows)
    table.insert(0, "id", range(1, len(table) + 1))
    table["plabel"] = [f".p{i}." for i in table["id"]]
    if n_groups > 1 and group_equal:
        _apply_group_equal(table, variables, group_equal, partial)
    _fix_shared_labels(table)
    _number_free(table)
    for c in parsed.constraints:
        rows_c = dict(id=len(table) + 1, lhs=c.lhs, op=c.op, rhs=c.rhs, user=1, group=0,
                      free=0, ustart=math.nan, exo=0, label="", plabel="", start=math.nan,
                      line=c.line, col=c.col)
        table.loc[len(table)] = pd.Series(rows_c)
    table = table.reset_index(drop=True)
    table["id"] = range(1, len(table) + 1)
    return table, variables


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


def _group_equal_matches(table: pd.DataFrame, variables: ModelVariables, keyword: str) -> pd.Series:
    is_lv_lhs = table["lhs"].isin(variables.lv)
    is_lv_rhs = table["rhs"].isin(variables.lv)
    is_ov_lhs = table["lhs"].isin(variables.ov)
    is_ov_rhs = table["rhs"].isin(variables.ov)
    op = table["op"]
    same = table["lhs"] == table["rhs"]
    not_exo = table["exo"] == 0
    return {
        "loadings": op == "=~",
        "intercepts": (op == "~1") & is_ov_lhs & not_exo,
        "means": (op == "~1") & is_lv_lhs,
        "residuals": (op == "~~") & same & is_ov_lhs & not_exo,
        "residual.covariances": (op == "~~") & ~same & is_ov_lhs & is_ov_rhs & not_exo,
        "lv.variances": (op == "~~") & same & is_lv_lhs,
        "lv.covariances": (op == "~~") & ~same & is_lv_lhs & is_lv_rhs,
        "regressions": op == "~",
    }[keyword]


def _apply_group_equal(table: pd.DataFrame, variables: ModelVariables, group_equal, partial) -> None:
    """Constrain matching parameters equal across groups by giving them a common label.

    A parameter that is fixed in the first group is fixed to the same value in every group.
    """
    mask = pd.Series(False, index=table.index)
    for keyword in group_equal:
        mask |= _group_equal_matches(table, variables, keyword)
    keys = list(zip(table["lhs"], table["op"], table["rhs"]))
    mask &= pd.Series([k not in partial for k in keys], index=table.index)
    first = {}
    for idx in table.index[mask]:
        key = keys[idx]
        if table.at[idx, "group"] == 1:
            first[key] = idx
    for idx in table.index[mask]:
        key = keys[idx]
        if table.at[idx, "group"] == 1 or key not in first:
            continue
        ref = first[key]
        if table.at[ref, "free"] == 0:
            if table.at[idx, "free"] != 0 and table.at[idx, "user"] == 0:
                table.at[idx, "free"] = 0
                table.at[idx, "ustart"] = table.at[ref, "ustart"]
            continue
        if table.at[idx, "free"] == 0:
            continue
        if table.at[ref, "label"] == "":
            table.at[ref, "label"] = table.at[ref, "plabel"]
        if table.at[idx, "label"] == "":
            table.at[idx, "label"] = table.at[ref, "label"]
        elif table.at[idx, "label"] != table.at[ref, "label"]:
            # user labels differ: keep the user's labels and add an explicit equality
            pass


def _fix_shared_labels(table: pd.DataFrame) -> None:
    """Rows sharing a label with a fixed row are fixed to that row's value (as lavaan does).

    semTools' ``measEq.syntax`` relies on this: ``c(1, NA)*f + c(psi, psi)*f`` fixes the
    factor variance to 1 in every group.  The first fixed row's value is used.
    """
    labels = table["label"].to_numpy()
    free = table["free"].to_numpy()
    first_fixed: dict = {}
    for idx, (lab, fr) in enumerate(zip(labels, free)):
        if lab and fr == 0 and lab not in first_fixed:
            first_fixed[lab] = idx
    for idx, lab in enumerate(labels):
        if lab in first_fixed and free[idx] != 0:
            table.at[table.index[idx], "free"] = 0
            table.at[table.index[idx], "ustart"] = table["ustart"].iat[first_fixed[lab]]


def _number_free(table: pd.DataFrame) -> None:
    free = table["free"].astype(bool).to_numpy()
    numbers = [0] * len(table)
    k = 0
    for i, f in enumerate(free):
        if f:
            k += 1
            numbers[i] = k
    table["free"] = numbers
