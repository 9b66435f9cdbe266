"""Two-level model syntax: ``level:`` blocks, the variables of each level and the two-level
parameter table (lavaan's multilevel syntax; Rosseel 2012 and lavaan's multilevel tutorial).

A two-level model is written as two blocks::

    level: 1            # or  level: within
        fw =~ y1 + y2 + y3
        fw ~ x1 + x2 + x3
    level: 2            # or  level: between
        fb =~ y1 + y2 + y3
        fb ~ w1 + w2

Each block is ordinary lavaan syntax (:mod:`sem_models.model.syntax`); constraints and defined
parameters (``==``, ``:=``) may stand in any block and see the labels of both.  The observed
variables of each level follow from the statements, as in lavaan: a variable named only at
level 1 is *within-only* (no between part), one named only at level 2 is *between-only*
(constant within clusters), one named at both levels has a within and a between part.

The parameter table has one block per group and level (lavaan's ``block``: group 1 level 1,
group 1 level 2, group 2 level 1, ...) and a ``level`` column.  lavaan's defaults for
two-level models (``lav_partable_flat`` with ``nlevels = 2``) on top of the single-level ones
of :func:`~sem_models.model.partable.build_partable`:

* the means of every level are modelled (``meanstructure``);
* level 1: the intercepts of variables at both levels are fixed to 0 (their means live at
  level 2; a free one would not be identified), the intercepts of within-only variables are
  free, latent means are fixed to 0;
* level 2: intercepts free, latent means fixed to 0 (free in later groups with
  ``group_equal`` intercepts, as in one-level models);
* ``fixed_x`` applies per level: the covariates of a level (``ov.x`` of its statements) keep
  their (co)variances and means fixed at the saturated two-level estimates (``exo = 1``).

Labels act across levels: ``fw =~ a*y2`` at level 1 and ``fb =~ a*y2`` at level 2 constrain
the loadings equal (cross-level invariance).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..errors import ModelError
from .partable import (ModelVariables, ParTable, _check_constraints, _fix_shared_labels,
                       _number_free, _partial_key, build_partable, model_variables)
from .syntax import Constraint, ModelSyntaxError, ParsedModel, parse_model

__all__ = ["LEVEL_NAMES", "TwoLevelSyntax", "LevelParTable", "TwoLevelTable", "BlockView",
           "has_levels", "parse_twolevel", "build_twolevel_partable", "union_variables"]

#: level identifiers after ``level:`` (case-insensitive) -> level number
LEVEL_NAMES = {"1": 1, "within": 1, "2": 2, "between": 2}

# ``level: 1`` at the start of a line, optionally followed by ';' and statements or a comment;
# ``level := ...`` (a defined parameter called level) is not a header
_HEADER = re.compile(r"^([ \t]*)level[ \t]*:(?!=)[ \t]*([^\s;#!]*)[ \t]*(?:;|(?=[#!])|$)",
                     re.IGNORECASE)


def has_levels(source) -> bool:
    """True when the model syntax has ``level:`` blocks (a two-level model)."""
    if not isinstance(source, str):
        return False
    return any(_HEADER.match(line) for line in source.split("\n"))


@dataclass
class TwoLevelSyntax:
    """The parsed blocks of a two-level model: ``levels[1]``, ``levels[2]`` (one
    :class:`ParsedModel` each, without constraints) and the constraints of all blocks."""

    levels: dict
    constraints: list
    source: str
    headers: dict = field(default_factory=dict)  # level -> (line, column) of its first header


def _has_content(text: str) -> bool:
    return bool(re.sub(r"[#!][^\n]*", "", text).strip())


def parse_twolevel(source: str) -> TwoLevelSyntax:
    """Split lavaan syntax with ``level:`` blocks into the statements of level 1 and level 2.

    Line and column numbers of errors refer to the whole model text.  Errors
    (:class:`ModelSyntaxError`): an unknown level (``level: 3``), a level without statements,
    only one of the two levels, model statements before the first ``level:`` line."""
    if not isinstance(source, str):
        raise TypeError(f"the model must be a string of lavaan syntax, got {type(source).__name__}")
    lines = source.split("\n")
    owner = [0] * len(lines)            # level of every line (0: before the first header)
    masked = list(lines)
    headers: dict = {}
    current = 0
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m is None:
            owner[i] = current
            continue
        label = m.group(2)
        col = len(m.group(1)) + 1
        if not label:
            raise ModelSyntaxError("expected a level after 'level:' (1 or within, 2 or between)",
                                   i + 1, col, line)
        level = LEVEL_NAMES.get(label.lower())
        if level is None:
            hint = ("three-level models are not supported; " if label.isdigit() and int(label) > 2
                    else "")
            raise ModelSyntaxError(
                f"unknown level {label!r}: {hint}a two-level model has 'level: 1' (or within) "
                "and 'level: 2' (or between)", i + 1, col, line)
        headers.setdefault(level, (i + 1, col))
        current = level
        owner[i] = level
        masked[i] = " " * m.end() + line[m.end():]   # keep the columns of what follows
    missing = [lv for lv in (1, 2) if lv not in headers]
    if missing:
        present = [lv for lv in (1, 2) if lv in headers][0]
        line, col = headers[present]
        raise ModelSyntaxError(
            f"the model has a 'level: {present}' block but no 'level: {missing[0]}' block; a "
            "two-level model needs both (write the between model under 'level: 2', the within "
            "model under 'level: 1')", line, col, lines[line - 1])

    def block_source(level: int) -> str:
        return "\n".join(text if owner[i] == level else "" for i, text in enumerate(masked))

    constraints: list[Constraint] = []
    pre = block_source(0)
    if _has_content(pre):
        parsed = parse_model(pre)
        if parsed.statements:
            st = parsed.statements[0]
            raise ModelSyntaxError(
                "model statement before the first 'level:' line: in a two-level model every "
                "statement belongs to a 'level: 1' or 'level: 2' block", st.line, st.col,
                lines[st.line - 1])
        constraints.extend(parsed.constraints)
    levels = {}
    for level in (1, 2):
        src = block_source(level)
        if not _has_content(src):
            line, col = headers[level]
            raise ModelSyntaxError(f"the 'level: {level}' block has no model statements",
                                   line, col, lines[line - 1])
        parsed = parse_model(src)
        if not parsed.statements:
            line, col = headers[level]
            raise ModelSyntaxError(
                f"the 'level: {level}' block has only constraints; it needs model statements "
                "(e.g. 'y1 ~~ y1')", line, col, lines[line - 1])
        constraints.extend(parsed.constraints)
        levels[level] = ParsedModel(parsed.statements, [], source)
    constraints.sort(key=lambda c: (c.line, c.col))
    return TwoLevelSyntax(levels, constraints, source, headers)


class LevelParTable(ParTable):
    """A parameter table with lavaan's ``block`` and ``level`` columns (two-level models).

    ``group`` is the group (1, 2, ...), ``level`` 1 (within) or 2 (between), ``block`` the
    position of the (group, level) pair: ``2 (group - 1) + level``; all three are 0 for
    constraint and defined-parameter rows."""

    COLUMNS = ParTable.COLUMNS + ("block", "level")


class BlockView:
    """The table seen per block: ``view["group"]`` is the block column.  Lets the one-level
    machinery (:class:`~sem_models.model.matrices.RAMModel`, start values, standardization)
    treat every (group, level) block as a group of its own."""

    def __init__(self, table: ParTable):
        self.table = table

    def __getitem__(self, name: str) -> np.ndarray:
        return self.table["block" if name == "group" else name]

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class TwoLevelTable:
    """What :func:`build_twolevel_partable` returns.

    ``table`` the parameter table, ``variables[level]`` the :class:`ModelVariables` of each
    level's statements (``ov`` in lavaan's order for that level), ``union`` the variables of
    both levels together (the block RAM model's variables), ``kind`` per observed variable:
    "within" (level 1 only), "between" (level 2 only) or "both"."""

    table: LevelParTable
    variables: dict
    union: ModelVariables
    kind: dict

    @property
    def within(self) -> list[str]:
        return [v for v in self.union.ov if self.kind[v] == "within"]

    @property
    def between(self) -> list[str]:
        return [v for v in self.union.ov if self.kind[v] == "between"]


def union_variables(v1: ModelVariables, v2: ModelVariables) -> ModelVariables:
    """The variables of both levels (level-1 order first)."""
    def merge(a, b):
        return list(a) + [x for x in b if x not in a]

    indicators = {k: list(v) for k, v in v1.indicators.items()}
    for k, v in v2.indicators.items():
        indicators[k] = merge(indicators.get(k, []), v)
    return ModelVariables(merge(v1.lv, v2.lv), merge(v1.ov, v2.ov), merge(v1.ov_x, v2.ov_x),
                          merge(v1.lv_x, v2.lv_x), merge(v1.eqs_y, v2.eqs_y), indicators)


def _level_of_partial(items: Sequence[str], variables: dict) -> dict:
    """``group_partial`` entries per level: an entry goes to every level whose variables
    contain its left- and right-hand side."""
    out = {1: [], 2: []}
    for item in items:
        lhs, op, rhs = _partial_key(item)
        hit = False
        for level, v in variables.items():
            names = set(v.ov) | set(v.lv)
            if lhs in names and (op == "~1" or rhs in names):
                out[level].append(item)
                hit = True
        if not hit:
            raise ModelError(f"group_partial entry {item!r} names variables that no level of "
                             "the model has")
    return out


def build_twolevel_partable(syntax: TwoLevelSyntax, n_groups: int = 1, *, std_lv: bool = False,
                            fixed_x: bool = True, orthogonal: bool = False,
                            group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
                            ) -> TwoLevelTable:
    """The parameter table of a two-level model (lavaan's defaults, see the module docstring).

    Each level is built by :func:`~sem_models.model.partable.build_partable` (with a mean
    structure) and the two are merged block by block: group 1 level 1, group 1 level 2,
    group 2 level 1, ...; free parameters and automatic labels are renumbered, shared labels
    tie parameters across levels and groups."""
    variables = {lv: model_variables(syntax.levels[lv].statements) for lv in (1, 2)}
    v1, v2 = variables[1], variables[2]
    for a, b, la, lb in ((v1, v2, 1, 2), (v2, v1, 2, 1)):
        clash = [x for x in a.lv if x in b.ov]
        if clash:
            st = next(s for s in syntax.levels[la].statements if s.lhs == clash[0])
            raise ModelSyntaxError(
                f"{clash[0]!r} is a latent variable at level {la} but an observed variable at "
                f"level {lb}; use different names", st.line, st.col,
                syntax.source.split("\n")[st.line - 1])
    ov1, ov2 = set(v1.ov), set(v2.ov)
    union = union_variables(v1, v2)
    kind = {v: ("both" if v in ov1 and v in ov2 else "within" if v in ov1 else "between")
            for v in union.ov}
    partial = _level_of_partial(group_partial, variables) if group_partial else {1: [], 2: []}
    per_level = {}
    for level in (1, 2):
        pt, _ = build_partable(syntax.levels[level], n_groups, std_lv=std_lv,
                               meanstructure=True, fixed_x=fixed_x, orthogonal=orthogonal,
                               group_equal=group_equal if n_groups > 1 else (),
                               group_partial=partial[level] if n_groups > 1 else ())
        rows = pt.records(np.ones(len(pt), bool))
        lv = set(variables[level].lv)
        for row in rows:
            row["level"] = level
            row["block"] = 2 * (row["group"] - 1) + level
            row["_old_plabel"] = row["plabel"]
            if level == 1 and row["op"] == "~1":
                if row["lhs"] in lv and row["user"] == 0:
                    row.update(free=0, ustart=0.0, label="")
                elif row["lhs"] in ov1 and kind[row["lhs"]] == "both":
                    if row["user"] and row["free"]:
                        raise ModelSyntaxError(
                            f"the level-1 intercept of {row['lhs']!r} is not identified: "
                            f"{row['lhs']!r} is a variable at both levels, whose mean is "
                            "modelled at level 2 (write 'y ~ 1' in the 'level: 2' block)",
                            row["line"], row["col"], syntax.source.split("\n")[row["line"] - 1])
                    if not row["user"]:
                        row.update(free=0, ustart=0.0, label="")
        per_level[level] = rows
    # merge block by block and renumber the automatic labels
    rows = []
    for g in range(1, n_groups + 1):
        for level in (1, 2):
            rows.extend(r for r in per_level[level] if r["group"] == g)
    relabel = {}
    for k, row in enumerate(rows, start=1):
        new = f".p{k}."
        relabel[(row["level"], row["_old_plabel"])] = new
        row["plabel"] = new
    for row in rows:
        lab = row["label"]
        if lab and (row["level"], lab) in relabel:
            row["label"] = relabel[(row["level"], lab)]
        del row["_old_plabel"]
    _fix_shared_labels(rows)
    _number_free(rows)
    try:
        _check_constraints(syntax.constraints, rows)
    except ModelSyntaxError as exc:
        if exc.source_line or not exc.line:
            raise
        lines = syntax.source.split("\n")
        raise ModelSyntaxError(exc.message, exc.line, exc.column,
                               lines[exc.line - 1] if exc.line <= len(lines) else "") from None
    for c in syntax.constraints:
        rows.append(dict(lhs=c.lhs, op=c.op, rhs=c.rhs, user=1, group=0, free=0,
                         ustart=math.nan, exo=0, label="", plabel="", start=math.nan,
                         line=c.line, col=c.col, block=0, level=0))
    return TwoLevelTable(LevelParTable(rows), variables, union, kind)


def block_of(group: int, level: int) -> int:
    """Block number (1-based) of a (group, level) pair, lavaan's order."""
    return 2 * (group - 1) + level


def level_names(table: TwoLevelTable, level: int) -> list[str]:
    """Observed variables of a level in lavaan's order (``lavNames(fit, "ov", block)``)."""
    return list(table.variables[level].ov)


def describe_kinds(table: TwoLevelTable) -> Optional[str]:
    """One line naming the within-only and between-only variables (None when all are both)."""
    w, b = table.within, table.between
    parts = []
    if w:
        parts.append("within-only: " + ", ".join(w))
    if b:
        parts.append("between-only: " + ", ".join(b))
    return "; ".join(parts) or None
