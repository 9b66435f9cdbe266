"""From a configural CFA to the lavaan syntax of every invariance level.

The configural model is read once (factors, their indicators, constructs measured at several
occasions or by several informants).  For a level, the model is written out parameter by
parameter in the style of semTools' ``measEq.syntax`` (Jorgensen et al.): every parameter gets a
fixed-or-free modifier and a label per group, ``x1 ~ c(NA, NA)*1 + c(nu.x, nu.x)*1``; equality
across groups or occasions is a shared label (Meredith 1993, Psychometrika 58(4), 525-543, for
the hierarchy configural -> metric (weak) -> scalar (strong) -> strict).

Parameters are matched

* across groups: the same parameter in every group;
* across occasions / informants: the k-th indicator of each factor of a construct (by position),
  its intercept and residual variance; the construct's latent variances and means; the
  covariance of two constructs at the same occasion.

Identification (``identification=``, semTools' ``ID.fac``):

* ``"std.lv"`` (fixed factor; semTools' default): loadings free, the latent variance fixed to 1
  and the latent mean to 0 in the reference cell (first group, first occasion); a variance is
  freed in every other cell tied to the reference by equal loadings, a mean in every cell tied
  by equal intercepts.
* ``"marker"`` (semTools' marker / ``"auto.fix.first"`` / ``"UL"``): the first indicator's loading
  fixed to 1 and its intercept to 0 everywhere; latent variances and means free.
* ``"lavaan"`` (lavaan's ``cfa(group.equal = ...)``): first loading fixed to 1 everywhere;
  latent variances free; latent means 0 in the reference cell and free in cells tied to it by
  equal intercepts.

A released constraint (partial invariance) gives one parameter of one group its own label;
a release group (e.g. one group's intercept at every occasion) shares one new label.

**Ordinal indicators** (``ordered=``; semTools' ``measEq.syntax`` with ``ID.cat``): every
ordered item gets its thresholds (``u1 | c(NA, NA)*t1 + c(tau1.F.1, tau1.F.1)*t1``), its
intercept and, under the *delta* parameterization, its scale factor (``u1 ~*~ c(1, NA)*u1``) or,
under *theta*, its residual variance, with the values the identification convention
``id_cat`` prescribes, cell by cell, from which thresholds, intercepts and residual variances
are held equal to the reference cell (first group; first occasion):

* ``"wu_estabrook2016"`` (Wu & Estabrook 2016, Psychometrika 81(4), 1014-1045, Propositions
  4-7; the default): in the reference cell intercepts 0 and scales (delta) or residual
  variances (theta) 1; in another cell the intercept is freed once one threshold is equal
  (unless the intercepts are equal) and the scale / residual variance once two thresholds
  are equal, or one threshold and the intercept (unless the residual variances are equal).
  A binary item thus has no testable threshold or intercept constraint, and a 3-category item
  no testable threshold constraint (its two thresholds trade against intercept and scale).
* ``"mplus"`` (Muthen & Asparouhov's convention): intercepts always 0; the scale / residual
  variance is freed in a cell once one threshold is equal; equal loadings and thresholds imply
  equal intercepts.
* ``"millsap_tein2004"`` (Millsap & Tein 2004, Multivariate Behavioral Research 39(3),
  479-515): theta parameterization and marker identification; threshold ``id_thr[0]`` of
  every item and ``id_thr[1]`` of each marker item are equal in every model; the latent mean
  of the reference cell is 0; residual variances as under ``"mplus"``.
* ``"lisrel"`` (Joreskog's convention): theta parameterization; thresholds equal in every
  model with the first fixed to 0 and the second to 1; intercepts and residual variances free
  (a binary item's residual variance 1).

For ordinal items the intercepts level includes the thresholds (scalar invariance of an
ordinal item is equality of its thresholds *and* intercept); residual variances of ordinal
items can only be tested under theta.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from sem_models.model.syntax import Modifier, ParsedModel, Statement, parse_model

from .levels import (ID_CATS, IDENTIFICATIONS, LEVEL_KEYWORDS, LEVELS, InvarianceError,
                     cumulative_keywords, normalize_id_cat, normalize_level, normalize_levels)

__all__ = ["InvarianceError", "LEVELS", "LEVEL_KEYWORDS", "normalize_level", "normalize_levels",
           "IDENTIFICATIONS", "ID_CATS", "normalize_id_cat", "MeasurementSpec", "ParamRow",
           "RowKey", "cumulative_keywords"]


# (lhs, op, rhs, group index 1-based)
RowKey = tuple


def normalize_released(released) -> list[tuple]:
    """Release groups: a key ``(lhs, op, rhs, group)`` alone or a tuple of keys."""
    out = []
    for item in released or ():
        if len(item) and isinstance(item[0], str):
            out.append((tuple(item),))
        else:
            out.append(tuple(tuple(k) for k in item))
    return out


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name))


def _num(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    return f"{float(value):.17g}"


def _parsed_num(value: float) -> float:
    """What the parser reads from :func:`_num`'s text: ``NA`` is ``math.nan``; 17
    significant digits give back the same float."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return float(value)


@dataclass
class ParamRow:
    """One parameter, written for every group: fixed value (``nan`` = free) and label."""

    lhs: str
    op: str  # "=~", "~1", "~~"
    rhs: str
    kind: str  # loadings, intercepts, residuals, residual.covariances, lv.variances, ...
    fixed: list
    labels: list

    def syntax(self, n_groups: int) -> str:
        return self.written(n_groups, 1, 0)[0]

    def written(self, n_groups: int, line: int, stmt: int) -> tuple[str, list[Statement]]:
        """The row's line of syntax, ``lhs op fixed*rhs + labels*rhs`` (``c(...)`` vectors for
        several groups; no label term when the row has no labels), and the statements
        :func:`~sem_models.model.syntax.parse_model` reads from it as line ``line`` and
        statement ``stmt`` of a model: one per term, each with its own modifier and the
        column of its variable."""
        op = "~" if self.op == "~1" else self.op
        rhs = "1" if self.op == "~1" else self.rhs
        if n_groups == 1:
            fixed, labels = _num(self.fixed[0]), self.labels[0]
        else:
            fixed = "c(" + ", ".join(_num(v) for v in self.fixed) + ")"
            labels = "c(" + ", ".join(self.labels) + ")"
        values = [_parsed_num(v) for v in self.fixed[:n_groups]]
        head = f"{self.lhs} {op} {fixed}*"
        st_rhs = "" if self.op == "~1" else self.rhs
        statements = [Statement(self.lhs, self.op, st_rhs, Modifier(fixed=values), line,
                                len(head) + 1, stmt)]
        if not any(self.labels):  # scale factors: no labels (never held equal)
            return head + rhs, statements
        head = f"{head}{rhs} + {labels}*"
        statements.append(Statement(self.lhs, self.op, st_rhs,
                                    Modifier(label=list(self.labels[:n_groups])), line,
                                    len(head) + 1, stmt))
        return head + rhs, statements

    def is_free(self, g: int) -> bool:
        """Free in group ``g`` (0-based)."""
        v = self.fixed[g]
        return v is None or (isinstance(v, float) and math.isnan(v))


_SECTIONS = [
    ("loadings", "LOADINGS"), ("thresholds", "THRESHOLDS"), ("intercepts", "INTERCEPTS"),
    ("scales", "SCALING FACTORS"), ("residuals", "UNIQUE-FACTOR VARIANCES"),
    ("residual.covariances", "UNIQUE-FACTOR COVARIANCES"), ("means", "LATENT MEANS"),
    ("lv.variances", "COMMON-FACTOR VARIANCES"), ("lv.covariances", "COMMON-FACTOR COVARIANCES"),
]


@dataclass
class MeasurementSpec:
    """A configural CFA read for invariance testing.

    ``constructs`` maps a construct to its factors at the successive occasions (or informants);
    factors not named in a construct are constructs of their own.  ``n_groups`` is the number of
    groups the syntax is written for.
    """

    factors: list[str]
    indicators: dict[str, list[str]]
    constructs: dict[str, list[str]]
    n_groups: int = 1
    identification: str = "std.lv"
    residual_covariances: list[tuple[str, str]] = field(default_factory=list)
    lv_cov_fixed: dict = field(default_factory=dict)  # frozenset({f1, f2}) -> value
    auto_residual_covariances: bool = True
    user_constructs: bool = False
    ordered: dict = field(default_factory=dict)  # ordered indicator -> number of thresholds
    parameterization: str = "delta"
    id_cat: str = "wu_estabrook2016"
    id_thr: tuple = (1, 2)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, model: str, constructs: Optional[Mapping[str, Sequence[str]]] = None,
                   n_groups: int = 1, identification: str = "std.lv",
                   auto_residual_covariances: bool = True,
                   ordered: Optional[Mapping[str, int]] = None,
                   parameterization: str = "delta", id_cat: str = "wu_estabrook2016",
                   id_thr: Sequence[int] = (1, 2)) -> "MeasurementSpec":
        """Read a configural CFA (``=~`` statements; ``~~`` between indicators or between
        factors) and the constructs.

        ``ordered``: ordered indicator -> number of thresholds (categories - 1);
        ``parameterization`` (``"delta"`` / ``"theta"``), ``id_cat`` and ``id_thr`` (the two
        thresholds Millsap & Tein hold equal) as semTools' ``measEq.syntax``.
        """
        ident = IDENTIFICATIONS.get(str(identification).lower())
        if ident is None:
            raise InvarianceError(f"unknown identification {identification!r}; use one of "
                                  f"{sorted(set(IDENTIFICATIONS.values()))} (aliases: "
                                  f"{sorted(IDENTIFICATIONS)})")
        ordered = {str(k): int(v) for k, v in (ordered or {}).items()}
        id_cat = normalize_id_cat(id_cat)
        parameterization = str(parameterization).lower()
        if parameterization not in ("delta", "theta"):
            raise InvarianceError(f"parameterization={parameterization!r}; use 'delta' or "
                                  "'theta'")
        if ordered:
            if id_cat in ("millsap_tein2004", "lisrel") and parameterization != "theta":
                raise InvarianceError(
                    f"id_cat={id_cat!r} needs parameterization='theta' (its identification "
                    "constraints fix or free residual variances of the latent responses), as "
                    "in semTools' measEq.syntax")
            if id_cat == "millsap_tein2004":
                if ident == "lavaan":
                    raise InvarianceError("id_cat='millsap_tein2004' uses marker "
                                          "identification; identification='lavaan' cannot be "
                                          "combined with it")
                ident = "marker"  # Millsap & Tein: reference indicators (semTools: ID.fac="UL")
            elif ident != "std.lv":
                raise InvarianceError(
                    f"with ordered indicators and id_cat={id_cat!r} use identification="
                    "'std.lv': the intercepts of the latent responses are fixed to 0 to set "
                    "their scale, so a marker intercept cannot identify the latent mean "
                    "(semTools' measEq.syntax warns that the model is then under-identified)")
            id_thr = tuple(int(k) for k in id_thr)
            if len(id_thr) != 2 or id_thr[0] == id_thr[1] or min(id_thr) < 1:
                raise InvarianceError(f"id_thr must be two different threshold numbers "
                                      f"(1-based), got {id_thr}")
            bad = [v for v, k in ordered.items() if k < 1]
            if bad:
                raise InvarianceError(f"ordered indicator(s) {bad} have fewer than two "
                                      "categories")
        parsed = parse_model(model)
        if parsed.constraints:
            c = parsed.constraints[0]
            raise InvarianceError(
                f"the configural model may not contain constraints or defined parameters "
                f"('{c.lhs} {c.op} {c.rhs}', line {c.line}); the invariance levels add the "
                "constraints")
        factors: list[str] = []
        indicators: dict[str, list[str]] = {}
        for st in parsed.statements:
            if st.op == "=~":
                if st.lhs not in indicators:
                    factors.append(st.lhs)
                    indicators[st.lhs] = []
                if st.rhs not in indicators[st.lhs]:
                    indicators[st.lhs].append(st.rhs)
        if not factors:
            raise InvarianceError("the configural model defines no factor (no '=~' statement)")
        fset = set(factors)
        res_cov: list[tuple[str, str]] = []
        lv_fixed: dict = {}
        for st in parsed.statements:
            mod = st.modifier
            where = f"(line {st.line}: {st.lhs} {st.op} {st.rhs or '1'})"
            if st.op == "=~":
                if st.rhs in fset:
                    raise InvarianceError(f"higher-order factors are not supported {where}")
                if mod.fixed is not None or mod.label is not None or mod.start is not None:
                    raise InvarianceError(
                        f"write the configural model without modifiers on loadings {where}; the "
                        "identification is chosen with identification= ('std.lv', 'marker' or "
                        "'lavaan') and the equality constraints by the levels")
                continue
            if st.op == "~~":
                if st.lhs == st.rhs:
                    raise InvarianceError(f"variances are set by the invariance levels; remove "
                                          f"{where}")
                both_lv = st.lhs in fset and st.rhs in fset
                both_ov = st.lhs not in fset and st.rhs not in fset
                if not (both_lv or both_ov):
                    raise InvarianceError(f"a covariance between a factor and an indicator is "
                                          f"not supported {where}")
                if mod.label is not None or mod.start is not None:
                    raise InvarianceError(f"labels and start values are not supported in the "
                                          f"configural model {where}")
                if both_lv:
                    if mod.fixed is not None:
                        vals = set(mod.fixed)
                        if len(vals) != 1 or any(isinstance(v, float) and math.isnan(v)
                                                 for v in vals):
                            raise InvarianceError(f"a factor covariance may only be fixed to one "
                                                  f"value for all groups {where}")
                        lv_fixed[frozenset((st.lhs, st.rhs))] = float(mod.fixed[0])
                else:
                    if mod.fixed is not None:
                        raise InvarianceError(f"fixed residual covariances are not supported "
                                              f"{where}")
                    pair = (st.lhs, st.rhs)
                    if pair not in res_cov and pair[::-1] not in res_cov:
                        res_cov.append(pair)
                continue
            raise InvarianceError(
                f"the configural model must be a CFA ('=~' and '~~' statements); "
                f"'{st.op if st.op != '~1' else '~ 1'}' is not supported {where}")
        all_ind = {v for inds in indicators.values() for v in inds}
        unknown = [v for pair in res_cov for v in pair if v not in all_ind]
        if unknown:
            raise InvarianceError(f"residual covariance(s) name variable(s) {unknown} that "
                                  "indicate no factor")

        spec_constructs: dict[str, list[str]] = {}
        user = constructs is not None and len(constructs) > 0
        seen: dict[str, str] = {}
        for cname, flist in (constructs or {}).items():
            if isinstance(flist, str):
                flist = [flist]
            flist = list(flist)
            for f in flist:
                if f not in fset:
                    raise InvarianceError(f"construct {cname!r} names {f!r}, which is not a factor "
                                          f"of the model; factors are {factors}")
                if f in seen:
                    raise InvarianceError(f"factor {f!r} is listed in constructs {seen[f]!r} and "
                                          f"{cname!r}; a factor belongs to one construct")
                seen[f] = cname
            if len(set(flist)) != len(flist):
                raise InvarianceError(f"construct {cname!r} lists a factor twice: {flist}")
            counts = {f: len(indicators[f]) for f in flist}
            if len(set(counts.values())) > 1:
                raise InvarianceError(
                    f"construct {cname!r}: its factors have different numbers of indicators "
                    f"{counts}; the k-th indicators are matched across occasions/informants, so "
                    "every factor of a construct needs the same number of indicators")
            inds = [v for f in flist for v in indicators[f]]
            if len(set(inds)) != len(inds):
                raise InvarianceError(f"construct {cname!r}: the same observed variable indicates "
                                      "more than one of its factors; each occasion/informant "
                                      "needs its own variables")
            key = _clean(cname)
            if key in spec_constructs:
                raise InvarianceError(f"construct names {cname!r} clash after cleaning ({key!r})")
            spec_constructs[key] = flist
        for f in factors:
            if f not in seen:
                key = _clean(f)
                while key in spec_constructs:
                    key += "_"
                spec_constructs[key] = [f]
        unknown_ord = [v for v in ordered if v not in all_ind]
        if unknown_ord:
            raise InvarianceError(f"ordered variable(s) {unknown_ord} indicate no factor of the "
                                  "model")
        spec = cls(factors, indicators, spec_constructs, n_groups, ident, res_cov, lv_fixed,
                   auto_residual_covariances, user, ordered, parameterization, id_cat,
                   tuple(id_thr))
        spec._check_chains()
        return spec

    def _check_chains(self) -> None:
        """The k-th items of a construct's factors: all ordered with the same number of
        thresholds, or all continuous (semTools' measEq.syntax checks the same)."""
        for c, fl in self.constructs.items():
            if len(fl) < 2:
                continue
            for k in range(len(self.indicators[fl[0]])):
                chain = [self.indicators[f][k] for f in fl]
                kinds = {v in self.ordered for v in chain}
                if len(kinds) > 1:
                    raise InvarianceError(
                        f"construct {c!r}: item {k + 1} is ordered at some occasions and "
                        f"continuous at others ({chain}); declare it ordered everywhere")
                nth = {v: self.ordered[v] for v in chain if v in self.ordered}
                if len(set(nth.values())) > 1:
                    raise InvarianceError(
                        f"construct {c!r}: the ordered items {chain} have different numbers of "
                        f"categories at the occasions ({ {v: n + 1 for v, n in nth.items()} }); "
                        "their thresholds cannot be held equal. Collapse categories the same "
                        "way at every occasion (invariance.collapse_categories(data, items, "
                        "chains=[[item at occasion 1, item at occasion 2, ...]]) or "
                        "collapse='empty' in the sequence)")

    # ------------------------------------------------------------------ structure
    @property
    def factor_cell(self) -> dict[str, tuple[str, int]]:
        """factor -> (construct, occasion 1-based)."""
        return {f: (c, t + 1) for c, fl in self.constructs.items() for t, f in enumerate(fl)}

    @property
    def observed(self) -> list[str]:
        out: list[str] = []
        for f in self.factors:
            for v in self.indicators[f]:
                if v not in out:
                    out.append(v)
        return out

    @property
    def primary(self) -> dict[str, tuple[str, int]]:
        """observed variable -> (its first factor, position 1-based in that factor)."""
        out: dict[str, tuple[str, int]] = {}
        for f in self.factors:
            for k, v in enumerate(self.indicators[f]):
                out.setdefault(v, (f, k + 1))
        return out

    def n_occasions(self, construct: str) -> int:
        return len(self.constructs[construct])

    @property
    def longitudinal(self) -> bool:
        return any(len(fl) > 1 for fl in self.constructs.values())

    def auto_pairs(self) -> list[tuple[str, str, str, int, int, int]]:
        """Same-indicator residual covariances across occasions: (ov_t, ov_s, construct, k, t, s)."""
        if not self.auto_residual_covariances:
            return []
        out = []
        for c, fl in self.constructs.items():
            for t in range(len(fl)):
                for s in range(t + 1, len(fl)):
                    for k, (a, b) in enumerate(zip(self.indicators[fl[t]], self.indicators[fl[s]])):
                        out.append((a, b, c, k + 1, t + 1, s + 1))
        return out

    # ------------------------------------------------------------------ writing
    def _components(self, construct: str, group_tied: bool, long_tied: bool) -> dict:
        """cell (g, t) -> first cell of its component (cells tied by equal parameters)."""
        T = self.n_occasions(construct)
        G = self.n_groups
        parent = {(g, t): (g, t) for g in range(1, G + 1) for t in range(1, T + 1)}

        def find(x):
            while parent[x] != x:
                x = parent[x]
            return x

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra != rb:
                lo, hi = min(ra, rb), max(ra, rb)
                parent[hi] = lo

        for g in range(1, G + 1):
            for t in range(1, T + 1):
                if group_tied and g > 1:
                    union((g, t), (1, t))
                if long_tied and t > 1:
                    union((g, t), (g, 1))
        return {cell: find(cell) for cell in parent}

    def rows(self, group_eq: Iterable[str] = (), long_eq: Iterable[str] = (),
             released: Iterable[RowKey] = ()) -> list[ParamRow]:
        """Every parameter with its per-group fixed value and label.

        ``group_eq`` / ``long_eq``: equality keywords across groups / occasions (``loadings``,
        ``intercepts``, ``residuals``, ``residual.covariances``, ``lv.variances``,
        ``lv.covariances``, ``means``).  ``released``: ``(lhs, op, rhs, group)`` keys (group
        1-based) whose parameter gets a label of its own, or tuples of such keys that get one
        new label together (e.g. a group's intercept at every occasion).
        """
        geq = self.effective_keywords(group_eq) if self.n_groups > 1 else set()
        leq = self.effective_keywords(long_eq)
        G = self.n_groups
        cell_of = self.factor_cell
        primary = self.primary
        ident = self.identification
        ordered = self.ordered
        theta = self.parameterization == "theta"
        if ordered and not theta and "residuals" in (geq | leq):
            raise InvarianceError(
                "residual variances of ordinal indicators cannot be tested for invariance under "
                "parameterization='delta' (they are not parameters there); use "
                "parameterization='theta' for the residuals (strict) level")
        rows: list[ParamRow] = []

        def label(base: str, kind: str, t: Optional[int], g: int, multi_occ: bool,
                  long_ok: bool = True, force: bool = False) -> str:
            lab = base
            if multi_occ and t is not None and not ((kind in leq or force) and long_ok):
                lab += f".t{t}"
            if G > 1 and not (kind in geq or force):
                lab += f".g{g}"
            return lab

        def add(lhs, op, rhs, kind, fixed_fn, label_fn):
            fixed = [fixed_fn(g) for g in range(1, G + 1)]
            labels = [label_fn(g) for g in range(1, G + 1)]
            rows.append(ParamRow(lhs, op, rhs, kind, fixed, labels))

        NA = math.nan
        # loadings
        for f in self.factors:
            c, t = cell_of[f]
            multi = self.n_occasions(c) > 1
            for k, v in enumerate(self.indicators[f]):
                marker = k == 0 and ident in ("marker", "lavaan")
                add(f, "=~", v, "loadings", lambda g, m=marker: 1.0 if m else NA,
                    lambda g, c=c, k=k, t=t, m=multi: label(f"lambda.{c}.{k + 1}", "loadings", t,
                                                            g, m))
        # thresholds of the ordered items (Millsap & Tein: id_thr held equal everywhere)
        markers = {self.indicators[f][0] for f in self.factors}
        for v in self.observed:
            if v not in ordered:
                continue
            f, k = primary[v]
            c, t = cell_of[f]
            multi = self.n_occasions(c) > 1
            for j in range(1, ordered[v] + 1):
                forced = self.forced_threshold(v, j, markers)
                add(v, "|", f"t{j}", "thresholds", lambda g: NA,
                    lambda g, c=c, k=k, t=t, m=multi, j=j, fo=forced:
                    label(f"tau{j}.{c}.{k}", "thresholds", t, g, m, force=fo))
        # intercepts (item identity: first factor and position); ordered items: set below
        for v in self.observed:
            f, k = primary[v]
            c, t = cell_of[f]
            multi = self.n_occasions(c) > 1
            fix0 = (ident == "marker" and k == 1) or v in ordered
            add(v, "~1", "", "intercepts", lambda g, z=fix0: 0.0 if z else NA,
                lambda g, c=c, k=k, t=t, m=multi: label(f"nu.{c}.{k}", "intercepts", t, g, m))
        # scale factors of the ordered items (delta parameterization): set below
        if not theta:
            for v in self.observed:
                if v in ordered:
                    rows.append(ParamRow(v, "~*~", v, "scales", [1.0] * G, [""] * G))
        # residual variances (ordered items: only under theta; values set below)
        for v in self.observed:
            if v in ordered and not theta:
                continue
            f, k = primary[v]
            c, t = cell_of[f]
            multi = self.n_occasions(c) > 1
            add(v, "~~", v, "residuals", lambda g, o=v in ordered: 1.0 if o else NA,
                lambda g, c=c, k=k, t=t, m=multi: label(f"theta.{c}.{k}", "residuals", t, g, m))
        # residual covariances: over time (auto) and the user's
        done = set()
        for a, b, c, k, t, s in self.auto_pairs():
            if frozenset((a, b)) in done:  # an item of two constructs (e.g. a wording factor)
                continue
            done.add(frozenset((a, b)))
            add(a, "~~", b, "residual.covariances", lambda g: NA,
                lambda g, c=c, k=k, t=t, s=s: label(f"theta.{c}.{k}.t{t}_{s}",
                                                    "residual.covariances", None, g, False))
        for a, b in self.residual_covariances:
            if frozenset((a, b)) in done:
                continue
            done.add(frozenset((a, b)))
            add(a, "~~", b, "residual.covariances", lambda g: NA,
                lambda g, a=a, b=b: label(f"theta.{_clean(a)}.{_clean(b)}",
                                          "residual.covariances", None, g, False))
        # latent means and variances
        for kind, prefix, tie_kind, fixed_value in (("means", "alpha", "intercepts", 0.0),
                                                    ("lv.variances", "psi", "loadings", 1.0)):
            for c, fl in self.constructs.items():
                comp = self._components(c, tie_kind in geq, tie_kind in leq)
                multi = len(fl) > 1
                for t, f in enumerate(fl, start=1):
                    def fixed_fn(g, t=t, comp=comp, kind=kind, fv=fixed_value):
                        first = comp[(g, t)] == (g, t)
                        if ident == "std.lv":
                            return fv if first else NA
                        if ident == "lavaan" and kind == "means":
                            return fv if first else NA
                        if (ordered and self.id_cat == "millsap_tein2004" and kind == "means"
                                and g == 1 and t == 1):
                            return fv  # Millsap & Tein: the reference cell's mean is 0
                        return NA
                    if kind == "means":
                        add(f, "~1", "", kind, fixed_fn,
                            lambda g, c=c, t=t, m=multi: label(f"alpha.{c}", "means", t, g, m))
                    else:
                        add(f, "~~", f, kind, fixed_fn,
                            lambda g, c=c, t=t, m=multi: label(f"psi.{c}", "lv.variances", t, g, m))
        # latent covariances
        for i, f1 in enumerate(self.factors):
            for f2 in self.factors[i + 1:]:
                (c1, t1), (c2, t2) = cell_of[f1], cell_of[f2]
                fixed_value = self.lv_cov_fixed.get(frozenset((f1, f2)))
                same_occ = (t1 == t2 and c1 != c2 and self.n_occasions(c1) > 1
                            and self.n_occasions(c2) > 1)
                if same_occ:
                    a, b = sorted((c1, c2), key=list(self.constructs).index)
                    base = f"psi.{a}.{b}"
                else:
                    base = f"psi.{_clean(f1)}.{_clean(f2)}"
                add(f1, "~~", f2, "lv.covariances",
                    lambda g, v=fixed_value: NA if v is None else v,
                    lambda g, base=base, t=t1, s=same_occ: label(base, "lv.covariances", t, g, s))
        # released constraints: a label of their own (shared within a release group)
        groups = normalize_released(released)
        if groups:
            index = {(r.lhs, r.op, r.rhs): r for r in rows}
            for n, group in enumerate(groups, start=1):
                for lhs, op, rhs, g in group:
                    row = index.get((lhs, op, rhs))
                    if row is None and op == "~~":
                        row = index.get((rhs, op, lhs))
                    if row is None or not 1 <= g <= G:
                        raise InvarianceError(f"cannot release {lhs} {op} {rhs} in group {g}: no "
                                              "such parameter in the model")
                    if op == "|" and self.forced_threshold(lhs, int(rhs[1:]), markers):
                        raise InvarianceError(
                            f"cannot release {lhs} | {rhs}: id_cat={self.id_cat!r} holds it "
                            "equal in every model to identify the latent responses")
                    if not row.labels[g - 1]:
                        raise InvarianceError(f"cannot release {lhs} {op} {rhs}: it has no "
                                              "equality constraint")
                    row.labels[g - 1] = f"{row.labels[g - 1]}.r{n}"
        if ordered:
            self._ordinal_identification(rows)
        return rows

    # ------------------------------------------------------------------ ordinal items
    def effective_keywords(self, keywords: Iterable[str]) -> set:
        """The equality keywords in force for the items: with ordered items, equal intercepts
        include equal thresholds; under ``"lisrel"`` thresholds are always equal; under
        ``"mplus"`` / ``"millsap_tein2004"`` equal loadings and thresholds imply equal
        intercepts (semTools' measEq.syntax)."""
        kw = set(keywords)
        if self.ordered:
            if "intercepts" in kw or self.id_cat == "lisrel":
                kw.add("thresholds")
            if self.id_cat in ("mplus", "millsap_tein2004") and {"loadings", "thresholds"} <= kw:
                kw.add("intercepts")
        return kw

    def forced_threshold(self, item: str, j: int, markers: Optional[set] = None) -> bool:
        """Whether threshold ``j`` of an ordered item is held equal in every model for
        identification (Millsap & Tein: ``id_thr[0]`` of every item, ``id_thr[1]`` of the
        marker items; LISREL: every threshold)."""
        if item not in self.ordered:
            return False
        if self.id_cat == "lisrel":
            return True
        if self.id_cat != "millsap_tein2004":
            return False
        if markers is None:
            markers = {self.indicators[f][0] for f in self.factors}
        return j == self.id_thr[0] or (j == self.id_thr[1] and item in markers)

    def _ordinal_identification(self, rows: list[ParamRow]) -> None:
        """Set the fixed values of the ordered items' thresholds, intercepts and scales /
        residual variances cell by cell from the equalities in force (the labels shared with
        the reference cell), by the rules of ``id_cat`` (semTools 0.5-6 ``measEq.syntax``;
        Wu & Estabrook 2016; Millsap & Tein 2004)."""
        G = self.n_groups
        theta = self.parameterization == "theta"
        idc = self.id_cat
        index = {(r.lhs, r.op, r.rhs): r for r in rows}
        NA = math.nan
        primary, cell = self.primary, self.factor_cell
        for v, nth in self.ordered.items():
            f, k = primary[v]
            c, t = cell[f]
            chain = self.constructs[c]
            multi = len(chain) > 1
            first = self.indicators[chain[0]][k - 1]
            thr = [index[(v, "|", f"t{j}")] for j in range(1, nth + 1)]
            thr1 = [index[(first, "|", f"t{j}")] for j in range(1, nth + 1)]
            nu, nu1 = index[(v, "~1", "")], index[(first, "~1", "")]
            sc = index[(v, "~~", v)] if theta else index[(v, "~*~", v)]
            sc1 = index[(first, "~~", first)] if theta else index[(first, "~*~", first)]
            binary = nth == 1
            if idc == "lisrel":
                for j, row in enumerate(thr, start=1):
                    row.fixed = [0.0 if j == 1 else 1.0 if j == 2 else NA] * G
            for g in range(G):
                nu_v, sc_v = 0.0, 1.0
                if idc == "lisrel":
                    nu_v, sc_v = NA, (1.0 if binary else NA)
                elif multi and v != first:
                    n_eq = sum(a.labels[g] == b.labels[g] for a, b in zip(thr, thr1))
                    eq_int = nu.labels[g] == nu1.labels[g]
                    eq_res = theta and sc.labels[g] == sc1.labels[g]
                    if idc == "wu_estabrook2016":
                        nu_v = 0.0 if (n_eq == 0 or eq_int) else NA
                        sc_v = 1.0 if (n_eq == 0 or (n_eq < 2 and not eq_int) or eq_res) else NA
                    else:
                        sc_v = 1.0 if (n_eq == 0 or eq_res) else NA
                if G > 1 and g > 0 and idc != "lisrel":
                    n_eq = sum(row.labels[g] == row.labels[0] for row in thr)
                    eq_int = nu.labels[g] == nu.labels[0]
                    eq_res = theta and sc.labels[g] == sc.labels[0]
                    if idc == "wu_estabrook2016":
                        if n_eq >= 1 and not eq_int:
                            nu_v = NA
                        if (n_eq >= 2 or (n_eq >= 1 and eq_int)) and not eq_res:
                            sc_v = NA
                    elif n_eq >= 1 and not eq_res:
                        sc_v = NA
                nu.fixed[g] = nu_v
                sc.fixed[g] = sc_v

    @staticmethod
    def n_free(rows: list[ParamRow]) -> int:
        """Number of free parameters of the rows (shared labels count once)."""
        labels, unlabelled = set(), 0
        for r in rows:
            for g in range(len(r.fixed)):
                if r.is_free(g):
                    if r.labels[g]:
                        labels.add(r.labels[g])
                    else:
                        unlabelled += 1
        return len(labels) + unlabelled

    def syntax(self, group_eq: Iterable[str] = (), long_eq: Iterable[str] = (),
               released: Iterable[RowKey] = ()) -> str:
        """lavaan syntax of the model with the given equality keywords and released rows."""
        return self.parsed(group_eq, long_eq, released).source

    def parsed(self, group_eq: Iterable[str] = (), long_eq: Iterable[str] = (),
               released: Iterable[RowKey] = ()) -> ParsedModel:
        """The model's syntax (:meth:`syntax`) with the statements written in it, as
        :func:`~sem_models.model.syntax.parse_model` returns them: the levels of a sequence
        are fitted without parsing the text they were written from (issue 18; that the two
        agree is tested for every kind of row, identification and level)."""
        rows = self.rows(group_eq, long_eq, released)
        lines: list[str] = []
        statements: list[Statement] = []
        by_kind: dict[str, list] = {}
        for r in rows:
            by_kind.setdefault(r.kind, []).append(r)
        stmt = 0
        for kind, title in _SECTIONS:
            part = by_kind.get(kind, ())
            if part:
                lines.append(f"## {title}:")
                for r in part:
                    text, written = r.written(self.n_groups, len(lines) + 1, stmt)
                    lines.append(text)
                    statements.extend(written)
                    stmt += 1
                lines.append("")
        return ParsedModel(statements, [], "\n".join(lines))

    # ------------------------------------------------------------------ queries
    def row_kind(self, lhs: str, op: str, rhs: str) -> str:
        """Kind of a parameter-table row (``loadings``, ``intercepts``, ...)."""
        fset = set(self.factors)
        if op == "=~":
            return "loadings"
        if op == "|":
            return "thresholds"
        if op == "~*~":
            return "scales"
        if op == "~1":
            return "means" if lhs in fset else "intercepts"
        if op == "~~":
            if lhs == rhs:
                return "lv.variances" if lhs in fset else "residuals"
            return "lv.covariances" if lhs in fset else "residual.covariances"
        return "other"

    def item_factor(self, lhs: str, op: str, rhs: str) -> Optional[tuple[str, str]]:
        """(factor, indicator) a loading / intercept / residual row belongs to."""
        if op == "=~":
            return lhs, rhs
        if op in ("|", "~*~") and lhs in self.primary:
            return self.primary[lhs][0], lhs
        if op in ("~1", "~~") and lhs in self.primary and (op == "~1" or lhs == rhs):
            return self.primary[lhs][0], lhs
        return None

    def is_marker(self, lhs: str, op: str, rhs: str) -> bool:
        """The marker indicator's loading or intercept (identifications 'marker', 'lavaan')."""
        if self.identification == "std.lv":
            return False
        it = self.item_factor(lhs, op, rhs)
        if it is None or op in ("~~", "|", "~*~"):
            return False
        f, v = it
        return self.indicators[f][0] == v
