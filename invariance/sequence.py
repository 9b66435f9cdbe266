"""Invariance sequences: fit the nested models, tabulate the changes in fit, decide, and search
for partial invariance.

* :func:`sequence` -- across groups (``group=``), optionally with constructs measured at several
  occasions held at a fixed longitudinal level (``constructs=``, ``long_equal=``) or constrained
  together with the groups.
* :func:`longitudinal` -- across occasions / informants in one sample (``constructs=``),
  optionally crossed with groups.

The levels (Meredith 1993; Vandenberg & Lance 2000): configural, metric (equal loadings),
scalar (+ intercepts), strict (+ residual variances), and the structural levels of semTools'
``measEq.syntax``: lv.variances, lv.covariances, means.  Each level adds its constraints to
those of the levels before it in the sequence.  Every step is compared with the previous one:
chi-square difference test (Satorra & Bentler 2001 scaled difference for MLM / MLR, through
:func:`sem_models.compare`) and changes in CFI, RMSEA and SRMR, judged by a rule set
(:mod:`invariance.rules`: Cheung & Rensvold 2002; Chen 2007).

Sequence semantics: a level is only tested against a model that passed.  Once a level fails
its rule, either the partial-invariance search runs at that level (when ``partial=`` asks for
it; :meth:`InvarianceSequence.partial`) and, if a partial model passes, the next level is
fitted on top of that partial model (its freed parameters stay free) and compared with it; or
every later level is reported as ``"not tested: previous level failed"``
(:data:`invariance.rules.NOT_TESTED`).  The later levels are still fitted (as the cumulative
models lavaan / semTools would fit), so their own fit and the change from the previous fitted
model are in the table, but they get no decision.

For robust estimators (MLM, MLR, ...) the table holds lavaan's standard ``chisq`` and
``pvalue`` and next to them ``chisq_scaled``, ``pvalue_scaled``, ``cfi_robust``,
``tli_robust``, ``rmsea_robust``; the changes ``delta_cfi``, ``delta_tli``, ``delta_rmsea`` are
then computed from the robust indices and ``delta_chisq`` is the scaled difference test named
in ``difference_test`` (Satorra & Bentler 2001).

The pieces: :mod:`invariance.prepare` (arguments and data checks), :mod:`invariance.fit_changes`
(the table's fit indices and changes), :mod:`invariance.partial` (the partial-invariance
search, a mixin of :class:`InvarianceSequence`), :mod:`invariance.levels` (level names).
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

import sem_models as sm
from sem_models.estimation.threads import single_threaded_blas
from sem_models.model.syntax import remember_parse

from . import fit_changes as _fit_changes
from .effects import dmacs as _dmacs
from .effects import latent_differences as _latent_differences
from .fit_changes import _INDEX_COLUMNS, _ORDINAL_COLUMNS, _ROBUST_COLUMNS, _changes, _index, \
    _measures
from .levels import InvarianceError, cumulative_keywords
from .partial import PartialSearch
from .prepare import _fit_index, _fixed_keywords, _partial_levels, _partial_options, _prepare, \
    _resolve_levels
from .rules import INVARIANT, NON_INVARIANT, NOT_TESTED, RuleSet, get_rule_set
from .score import score_tests
from .spec import MeasurementSpec, RowKey

__all__ = ["sequence", "longitudinal", "InvarianceSequence", "fit_level"]

#: importable from here as before the split (:mod:`sem_models.study.pipeline` reads it)
_DIFFERENCE_TESTS = _fit_changes._DIFFERENCE_TESTS


def fit_level(spec: MeasurementSpec, data: pd.DataFrame, *, group=None, group_labels=None,
              group_eq=(), long_eq=(), released: Sequence[RowKey] = (), observed=None,
              **fit_options):
    """Fit one level: write its syntax and fit it with :func:`sem_models.sem` (ordered
    indicators: WLSMV unless ``estimator=`` says otherwise, with the spec's
    parameterization).  ``observed``: the prepared data (``fit.data``) of another level's
    fit of the same data and options, reused instead of preparing the data again."""
    parsed = spec.parsed(group_eq, long_eq, released)
    remember_parse(parsed)  # the fit below reads these statements instead of parsing
    syntax = parsed.source
    if spec.ordered:
        fit_options = dict(fit_options, ordered=list(spec.ordered),
                           parameterization=spec.parameterization)
    if observed is None:
        fit = sm.sem(syntax, data, group=group, group_labels=group_labels, meanstructure=True,
                     std_lv=False, **fit_options)
    else:
        from sem_models.api import fit_model

        fit = fit_model(syntax, data, group=group, group_labels=group_labels,
                        meanstructure=True, std_lv=False, _observed=observed, **fit_options)
    return syntax, fit


def _warm_fit(spec: MeasurementSpec, data: pd.DataFrame, previous, options: dict):
    """:func:`fit_level` started from another level's estimates (``start=`` that fit: rows
    matched by name); when that start fails or does not converge, the level is fitted from its default
    start values instead (and only that fit's warnings are shown)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            syntax, fit = fit_level(spec, data, start=previous, **options)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            fit = None
    if fit is None or not fit.converged:
        return fit_level(spec, data, **options)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return syntax, fit


@dataclass
class InvarianceSequence(PartialSearch):
    """A fitted invariance sequence.

    Attributes: ``levels``, ``fits`` (level -> :class:`~sem_models.SEMFit`), ``syntax`` (level
    -> lavaan syntax), ``table`` (fit indices, changes, decision per level), ``rules``
    (:class:`~invariance.rules.RuleSet`), ``spec`` (the measurement model), and after
    :meth:`partial`: ``partial_fits``, ``partial_steps``, ``released``.
    """

    spec: MeasurementSpec
    data: pd.DataFrame
    group: Optional[str]
    group_labels: Optional[list]
    levels: list
    rules: RuleSet
    fit_options: dict
    vary: tuple  # dimensions the levels constrain: "groups", "occasions"
    fixed_group_eq: frozenset = frozenset()
    fixed_long_eq: frozenset = frozenset()
    fits: dict = field(default_factory=dict)
    syntax: dict = field(default_factory=dict)
    table: pd.DataFrame = None
    partial_fits: dict = field(default_factory=dict)
    partial_steps: dict = field(default_factory=dict)
    released: dict = field(default_factory=dict)
    partial_levels: tuple = ()
    partial_options: dict = field(default_factory=dict)
    index_family: str = "robust"
    categories: Optional[pd.DataFrame] = None
    collapsed: dict = field(default_factory=dict)
    _fitted_with: dict = field(default_factory=dict, repr=False)

    @property
    def ordinal(self) -> bool:
        """Whether the sequence has ordered indicators."""
        return bool(self.spec.ordered)

    # ---------------------------------------------------------------- fitting
    def keywords(self, level: str) -> tuple[frozenset, frozenset]:
        """(group_eq, long_eq) keywords in force at ``level``."""
        kw = cumulative_keywords(self.levels)[level]
        geq = kw if "groups" in self.vary else self.fixed_group_eq
        leq = kw if "occasions" in self.vary else self.fixed_long_eq
        return geq, leq

    def _fit(self, level: str, released=(), start=None):
        geq, leq = self.keywords(level)
        # the levels share the data, options and observed variables: the data are prepared
        # by the first fit only (issue 18)
        options = dict(group=self.group, group_labels=self.group_labels, group_eq=geq,
                       long_eq=leq, released=released,
                       observed=self.__dict__.get("_observed"), **self.fit_options)
        if start is not None and "start" not in self.fit_options:
            syntax, fit = _warm_fit(self.spec, self.data, start, options)
        else:
            syntax, fit = fit_level(self.spec, self.data, **options)
        if "_observed" not in self.__dict__:
            self.__dict__["_observed"] = getattr(fit, "data", None)
        return syntax, fit

    @single_threaded_blas
    def _run(self) -> None:
        """Fit the levels in order; a level is judged against the last model that passed.

        ``base`` is the model the next level is compared with: the previous level's model, or
        its partial model when the previous level failed and its partial search (requested by
        ``partial_levels``) found a model that passes; the parameters that search freed stay
        free in every later level.  After a failure without such a partial model, the later
        levels are fitted as the cumulative models but get the decision
        :data:`~invariance.rules.NOT_TESTED`.
        """
        rows = []
        base_fit = base_m = None
        base_name = ""
        carried: list = []   # release groups freed by partial searches that passed
        failed = False
        for k, level in enumerate(self.levels):
            # each level starts from the estimates of the level before (rows matched by name:
            # the nested model's solution is close, so fewer iterations; same optimum)
            previous = self.fits[self.levels[k - 1]] if k else None
            self.syntax[level], self.fits[level] = self._fit(level, carried, start=previous)
            self._fitted_with[level] = list(carried)
            if carried:
                self.released[level] = list(carried)
            fit = self.fits[level]
            m = _measures(fit)
            row = dict(m)
            row.update(compared_with="", partial_freed=np.nan, partial_decision="")
            nxt_fit, nxt_m, nxt_name = fit, m, level
            if k == 0:
                row["decision"] = ""
            else:
                ch = _changes(base_fit, fit, base_m, m, self.index_family)
                row.update(ch)
                row["compared_with"] = base_name
                if failed:
                    row["decision"] = NOT_TESTED
                else:
                    dec = self.rules.decide(level, ch)
                    row["decision"] = dec
                    if dec == NON_INVARIANT:
                        failed = True
                        if level in self.partial_levels:
                            steps = self.partial(level, **self.partial_options)
                            row["partial_freed"] = float(len(steps) - 1)
                            row["partial_decision"] = str(steps["decision"].iloc[-1])
                            if row["partial_decision"] == INVARIANT:
                                failed = False
                                carried = list(self.released[level])
                                nxt_fit = self.partial_fits[level]
                                nxt_m = _measures(nxt_fit)
                                nxt_name = f"{level} (partial)"
            row["converged"] = fit.converged
            rows.append(row)
            base_fit, base_m, base_name = nxt_fit, nxt_m, nxt_name
        robust = any("chisq_scaled" in r for r in rows)
        first = _ORDINAL_COLUMNS if self.ordinal else \
            _INDEX_COLUMNS + (_ROBUST_COLUMNS if robust else [])
        cols = (first
                + ["delta_chisq", "delta_df", "delta_pvalue", "difference_test", "delta_cfi",
                   "delta_tli", "delta_rmsea", "delta_srmr", "compared_with", "decision",
                   "partial_freed", "partial_decision", "converged"])
        # one frame in the final column order (columns a level lacks are NaN)
        self.table = pd.DataFrame({c: [r.get(c, np.nan) for r in rows] for c in cols},
                                  index=pd.Index(self.levels, name="level"))
        self.table.attrs["fit_index"] = self.index_family

    def decide(self, rules: Union[str, RuleSet, Mapping, Callable]) -> pd.Series:
        """The decision column under another rule set (the fits are reused).

        The same semantics as the sequence's own decisions: after a level the rule set rejects,
        later levels are :data:`~invariance.rules.NOT_TESTED` unless the partial model found at
        that level (by :meth:`partial` during the sequence) passes this rule set too.  The
        partial searches are not re-run.
        """
        rs = get_rule_set(rules)
        out = {}
        failed = False
        for k, level in enumerate(self.levels):
            if k == 0:
                out[level] = ""
                continue
            if failed:
                out[level] = NOT_TESTED
                continue
            dec = rs.decide(level, self.table.loc[level].to_dict())
            out[level] = dec
            if dec == NON_INVARIANT:
                steps = self.partial_steps.get(level)
                searched = pd.notna(self.table.loc[level, "partial_freed"])
                failed = not (searched and steps is not None and rs.decide(
                    level, steps.iloc[-1].to_dict()) == INVARIANT)
        return pd.Series(out, name=f"decision_{rs.name}")

    def with_rules(self, rules) -> "InvarianceSequence":
        """The same fits judged by another rule set (a shallow copy with a new decision
        column; see :meth:`decide`)."""
        import copy
        other = copy.copy(self)
        other.rules = get_rule_set(rules)
        other.table = self.table.copy()
        other.table["decision"] = self.decide(other.rules).to_numpy()
        return other

    # ---------------------------------------------------------------- identification
    def _level_rows(self, level: str) -> list:
        geq, leq = self.keywords(level)
        return self.spec.rows(geq, leq, self._fitted_with.get(level, []))

    def identification_detail(self) -> pd.DataFrame:
        """Every parameter whose fixed / free status a level changes for identification, one
        row per parameter and group: ``level``, ``lhs``, ``op``, ``rhs``, ``kind``, ``group``,
        ``change`` (``"freed"`` / ``"fixed"``; the first level: ``"fixed"`` for the
        identification constraints of the configural model) and ``value`` (the fixed value)."""
        recs = []
        prev = None
        kinds = ("thresholds", "intercepts", "scales", "residuals", "means", "lv.variances",
                 "loadings")
        for level in self.levels:
            rows = self._level_rows(level)
            before = {(r.lhs, r.op, r.rhs): r for r in prev} if prev is not None else {}
            for r in rows:
                if r.kind not in kinds:
                    continue
                old = before.get((r.lhs, r.op, r.rhs))
                for g in range(self.spec.n_groups):
                    free = r.is_free(g)
                    if old is None:
                        if free or prev is not None:
                            continue
                        if r.kind in ("loadings",) and not self.spec.is_marker(r.lhs, r.op,
                                                                                 r.rhs):
                            continue
                        change = "fixed"
                    elif old.is_free(g) == free:
                        continue
                    else:
                        change = "freed" if free else "fixed"
                    recs.append({"level": level, "lhs": r.lhs, "op": r.op, "rhs": r.rhs,
                                 "kind": r.kind, "group": self._glabel(g), "change": change,
                                 "value": np.nan if free else float(r.fixed[g])})
            prev = rows
        return pd.DataFrame(recs, columns=["level", "lhs", "op", "rhs", "kind", "group",
                                           "change", "value"])

    def _glabel(self, g: int):
        return self.group_labels[g] if self.group_labels is not None else None

    @property
    def identification(self) -> pd.DataFrame:
        """What each level constrained and what it freed or fixed for identification
        (semTools' ``measEq.syntax`` conventions; Wu & Estabrook 2016 for ordinal items).

        One row per level: ``constrained`` (the equality keywords the level adds, with those
        implied for ordinal items), ``equalities`` (equality constraints in the model),
        ``npar``, ``freed`` and ``fixed`` (parameters whose status the level changes for
        identification, by kind and group; for the first level, its identification
        constraints), ``released`` (parameters kept free by an earlier partial search) and
        ``id_cat`` / ``parameterization`` for ordinal sequences.  The parameter by parameter
        list is :meth:`identification_detail`.
        """
        detail = self.identification_detail()
        names = {"intercepts": "intercepts", "scales": "scale factors",
                 "residuals": "residual variances", "means": "latent means",
                 "lv.variances": "latent variances", "thresholds": "thresholds",
                 "loadings": "marker loadings"}

        def text(sub: pd.DataFrame) -> str:
            parts = []
            for (kind, grp, val), part in sub.groupby(["kind", "group", "value"], sort=False,
                                                      dropna=False):
                items = list(dict.fromkeys(
                    f"{a}{o}{c}" if o in ("|", "=~") else a for a, o, c in
                    zip(part["lhs"], part["op"], part["rhs"])))
                what = ", ".join(items) if len(items) <= 4 else \
                    f"{items[0]}, ..., {items[-1]} ({len(items)})"
                where = "" if grp is None or (isinstance(grp, float) and np.isnan(grp)) \
                    else f" [{grp}]"
                value = "" if pd.isna(val) else f" = {val:g}"
                parts.append(f"{names.get(kind, kind)}{value}: {what}{where}")
            return "; ".join(parts)

        recs = []
        prev_kw: set = set()
        for level in self.levels:
            geq, leq = self.keywords(level)
            kw = self.spec.effective_keywords(set(geq) | set(leq))
            rows = self._level_rows(level)
            eq = 0
            labels: dict = {}
            for r in rows:
                for g in range(self.spec.n_groups):
                    if r.is_free(g) and r.labels[g]:
                        labels[r.labels[g]] = labels.get(r.labels[g], 0) + 1
            eq = sum(n - 1 for n in labels.values())
            d = detail[detail["level"] == level]
            rel = self._fitted_with.get(level, [])
            rec = {"level": level,
                   "constrained": ", ".join(sorted(kw - prev_kw)),
                   "equalities": eq, "npar": self.spec.n_free(rows),
                   "freed": text(d[d["change"] == "freed"]),
                   "fixed": text(d[d["change"] == "fixed"]),
                   "released": "; ".join(self._describe(g) for g in rel)}
            if self.ordinal:
                rec.update(id_cat=self.spec.id_cat,
                           parameterization=self.spec.parameterization)
            recs.append(rec)
            prev_kw = kw
        return pd.DataFrame(recs).set_index("level")

    # ---------------------------------------------------------------- reporting
    def summary(self) -> str:
        """The invariance table as text, with the rule set and the partial-invariance steps."""
        dims = " and ".join(self.vary)
        lines = [f"Measurement invariance across {dims}"]
        if self.group is not None:
            lines.append(f"  groups ({self.group}): " + ", ".join(map(str, self.group_labels))
                         + f"  (N = {', '.join(str(n) for n in self.fits[self.levels[0]].nobs)})")
        long = {c: fl for c, fl in self.spec.constructs.items() if len(fl) > 1}
        if long:
            lines.append("  constructs: " + "; ".join(f"{c} = {', '.join(fl)}"
                                                      for c, fl in long.items()))
        if "groups" not in self.vary and self.fixed_group_eq:
            lines.append(f"  held equal across groups: {', '.join(sorted(self.fixed_group_eq))}")
        if "occasions" not in self.vary and self.fixed_long_eq:
            lines.append("  held equal across occasions: "
                         + ", ".join(sorted(self.fixed_long_eq)))
        first = self.fits[self.levels[0]]
        est = first.options.get("estimator", self.fit_options.get("estimator", "ML"))
        miss = first.options.get("missing", self.fit_options.get("missing", "listwise"))
        lines.append(f"  estimator {est}, missing = {miss}, identification "
                     f"{self.spec.identification}")
        if self.ordinal:
            lines.append(f"  ordered items: {len(self.spec.ordered)}; parameterization "
                         f"{self.spec.parameterization}; id_cat {self.spec.id_cat}")
            if self.collapsed:
                from .ordinal import mapping_summary
                lines.append(f"  categories collapsed: {mapping_summary(self.collapsed)}")
        t = self.table
        robust = "chisq_scaled" in t.columns
        tests = sorted({str(v) for v in t["difference_test"].dropna() if str(v)})
        fam = self.index_family
        if robust:
            which = {"robust": "robust versions", "scaled": "scaled versions",
                     "standard": "standard versions",
                     "robust_wls": "robust versions of the (D)WLS statistic (*_robust_wls; "
                                   "lavaan's catML robust indices are undefined once "
                                   "thresholds are constrained)"}[fam]
            lines.append("  chisq: standard statistic; scaled: its scaled version (p for the "
                         f"scaled statistic); CFI, RMSEA and their changes: {which}")
        if tests:
            lines.append(f"  difference tests: {', '.join(tests)}")
        lines.append("")
        header = (f"{'level':<15}{'npar':>5}{'chisq':>10}" + (f"{'scaled':>10}" if robust else "")
                  + f"{'df':>5}{'p':>7}{'CFI':>7}{'RMSEA':>7}"
                  f"{'SRMR':>7} {'dchisq':>8}{'ddf':>4}{'p':>7}{'dCFI':>8}{'dRMSEA':>8}"
                  f"{'dSRMR':>8}  decision")
        lines.append(header)
        lines.append("-" * len(header))

        def f(x, fmt):
            return format(x, fmt) if pd.notna(x) else ""

        for level, r in t.iterrows():
            p = r["pvalue_scaled"] if robust else r["pvalue"]
            extra = ""
            if pd.notna(r.get("partial_freed")):
                extra = (f"; partial: {int(r['partial_freed'])} freed -> "
                         f"{r['partial_decision']}")
            if r.get("compared_with") and str(r["compared_with"]).endswith("(partial)"):
                extra += f" (vs {r['compared_with']})"
            lines.append(
                f"{level:<15}{f(r['npar'], '5.0f')}{f(r['chisq'], '10.3f')}"
                + (f"{f(r['chisq_scaled'], '10.3f')}" if robust else "")
                + f"{f(r['df'], '5.0f')}"
                f"{f(p, '7.3f')}{f(_index(r, 'cfi', fam), '7.3f')}"
                f"{f(_index(r, 'rmsea', fam), '7.3f')}"
                f"{f(r['srmr'], '7.3f')} {f(r['delta_chisq'], '8.3f'):>8}"
                f"{f(r['delta_df'], '4.0f'):>4}{f(r['delta_pvalue'], '7.3f'):>7}"
                f"{f(r['delta_cfi'], '8.3f'):>8}{f(r['delta_rmsea'], '8.3f'):>8}"
                f"{f(r['delta_srmr'], '8.3f'):>8}  {r['decision']}{extra}"
                + ("" if r["converged"] else "  (NOT converged)"))
        lines.append("")
        lines.append("Decision rule: " + self.rules.describe())
        for level, steps in self.partial_steps.items():
            lines.append("")
            lines.append(f"Partial {level} invariance ({steps.attrs.get('stop_reason', '')}):")
            for _, s in steps.iterrows():
                what = "start" if not s["freed"] else f"free {s['freed']}"
                score = "" if not s["freed"] else f" (score X2 = {s['score_X2']:.2f}, " \
                    f"p = {s['score_pvalue']:.4f})"
                lines.append(f"  step {int(s['step'])}: {what}{score}: chisq = {s['chisq']:.3f}, "
                             f"df = {int(s['df'])}, dCFI = {s['delta_cfi']:.4f}, "
                             f"dRMSEA = {s['delta_rmsea']:.4f}, dSRMR = {s['delta_srmr']:.4f}"
                             f" -> {s['decision']}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<InvarianceSequence {', '.join(self.levels)}; rules {self.rules.name}>"

    # ---------------------------------------------------------------- effect sizes
    def _long_constructs(self) -> dict:
        return {c: fl for c, fl in self.spec.constructs.items() if len(fl) > 1}

    def latent_differences(self, level: str = "scalar", reference_group=None) -> pd.DataFrame:
        """Latent mean / variance differences (:func:`invariance.latent_differences`) in the
        (partial, if searched) ``level`` model; needs (partial) scalar invariance."""
        return _latent_differences(self.final_fit(level), self._long_constructs(),
                                   reference_group=reference_group)

    def dmacs(self, level: str = "scalar", reference_group=None,
              all_items: bool = False) -> pd.DataFrame:
        """dMACS of the non-invariant items (:func:`invariance.dmacs`) in the (partial)
        ``level`` model."""
        return _dmacs(self.final_fit(level), self._long_constructs(),
                      reference_group=reference_group, all_items=all_items)

    def score_tests(self, level: str, **kwargs) -> pd.DataFrame:
        """Score tests of the constraints of the (partial) ``level`` model."""
        return score_tests(self.final_fit(level), **kwargs)


_ORDINAL_DOC = """
    **Ordered indicators** (``ordered=``: True for all indicators or a list of names; WLSMV
    unless ``estimator=`` says otherwise, ``missing="listwise"`` or ``"pairwise"``): the
    thresholds, intercepts and scales (delta) or residual variances (theta) of the items are
    written per cell with the identification convention ``id_cat`` (semTools' ``ID.cat``):
    ``"wu_estabrook2016"`` (default; levels configural, thresholds, metric, scalar),
    ``"mplus"``, ``"millsap_tein2004"`` (theta, marker identification; ``id_thr``: the two
    thresholds held equal) or ``"lisrel"`` (theta); the later three default to configural,
    metric, scalar; strict only under ``parameterization="theta"``.  The intercepts level
    holds the thresholds equal too.  ``seq.identification`` lists per level what it
    constrained and which parameters were freed or fixed for identification.  Before fitting,
    the categories of every item are counted by group and occasion (``seq.categories``); an
    empty cell stops the sequence with the item, group and category named, unless
    ``collapse="empty"`` (or a minimum count) merges sparse categories with one mapping per
    item for all groups and occasions (recorded in ``seq.collapsed``).  The table has
    lavaan's ``chisq``, ``chisq_scaled`` (scaled-shifted), the scaled, lavaan's robust (NaN
    once thresholds are constrained, lavaan #386) and the ``*_robust_wls`` indices defined at
    every step (:mod:`invariance.ordinal`); ``fit_index`` (``"auto"``: ``"robust_wls"`` for
    ordinal items, the robust indices otherwise; or ``"robust"``, ``"scaled"``,
    ``"standard"``) chooses which the changes and decisions use.  Differences: Satorra
    (2000) scaled-shifted tests (lavaan's default for WLSMV).
"""


def sequence(model: str, data: pd.DataFrame, group: str, *,
             levels: Optional[Sequence[str]] = None,
             rules: Union[str, RuleSet, Mapping, Callable] = "chen2007",
             identification: str = "std.lv",
             constructs: Optional[Mapping[str, Sequence[str]]] = None,
             long_equal: Union[None, str, Sequence[str]] = None,
             auto_residual_covariances: bool = True,
             group_labels: Optional[Sequence] = None,
             partial: Union[bool, str, Sequence[str]] = False,
             partial_options: Optional[Mapping] = None,
             ordered: Union[None, bool, str, Sequence[str]] = None,
             parameterization: str = "delta",
             id_cat: str = "wu_estabrook2016",
             id_thr: Sequence[int] = (1, 2),
             collapse: Union[None, str, int] = None,
             fit_index: str = "auto",
             **fit_options) -> InvarianceSequence:
    """Fit the invariance sequence of a CFA across the groups in column ``group``.

    ``model``: the configural CFA in lavaan syntax (``=~`` statements, optionally ``~~``
    residual covariances between indicators or covariances between factors, e.g. ``f1 ~~ 0*f2``;
    no modifiers on loadings: identification is set by ``identification``: ``"std.lv"``
    (fixed factor, semTools' default), ``"marker"`` (semTools: marker loading 1 and intercept 0)
    or ``"lavaan"`` (as lavaan's ``cfa(group.equal=)``: marker loading 1, reference latent means
    0)).  ``levels``: in the order configural, thresholds (ordinal items), metric, scalar,
    strict, lv.variances, lv.covariances, means (aliases weak / strong / loadings / intercepts
    / residuals); each adds its constraints to the previous ones; default configural, metric,
    scalar, strict (ordinal items: see below).  ``rules``: ``"chen2007"`` (default),
    ``"cheung_rensvold2002"``, ``"chisq_difference"``, a dict of thresholds or a callable
    (:mod:`invariance.rules`).  ``constructs`` (factors that are one construct at several
    occasions) with ``long_equal``: ``None`` constrains occasions together with groups at every
    level; a level name (e.g. ``"scalar"``) holds the occasions at that level while the groups
    go through ``levels``.  ``group_labels`` orders the groups (the first is the reference);
    by default the order of first appearance in the data, as in lavaan.  Other options
    (``estimator``, ``missing``, ``cluster``, ``fixed_x``, ...) go to :func:`sem_models.sem`.

    A level is judged only against a model that passed: when a level fails its rule, the
    later levels are ``"not tested: previous level failed"``, unless ``partial`` asks for a
    partial-invariance search at that level (``True``: at every level; a level name or a list
    of names: there) and it finds a model that passes; the next level is then fitted on top of
    that partial model and compared with it.  ``partial_options`` go to
    :meth:`InvarianceSequence.partial` (``alpha``, ``max_steps``, ``protect_marker``; the
    sequence's rule set is used).
    """
    if group is None:
        raise InvarianceError("sequence() needs group=; for one sample measured at several "
                              "occasions use invariance.longitudinal()")
    rs = get_rule_set(rules)
    prep = _prepare(model, data, group, constructs, identification, auto_residual_covariances,
                    group_labels, fit_options, ordered, parameterization, id_cat, id_thr,
                    collapse)
    spec, labels = prep.spec, prep.labels
    levels = _resolve_levels(levels, spec)
    if len(labels) < 2:
        raise InvarianceError(f"the group column {group!r} has only one group ({labels}); "
                              "multi-group invariance needs at least two")
    if spec.longitudinal and long_equal is not None:
        vary, fixed_long = ("groups",), _fixed_keywords(long_equal, spec)
    elif spec.longitudinal:
        vary, fixed_long = ("groups", "occasions"), frozenset()
    else:
        vary, fixed_long = ("groups",), frozenset()
    seq = InvarianceSequence(spec, prep.data, group, labels, levels, rs, dict(fit_options),
                             vary, frozenset(), fixed_long,
                             partial_levels=_partial_levels(partial, levels),
                             partial_options=_partial_options(partial_options),
                             index_family=_fit_index(fit_index, spec),
                             categories=prep.categories, collapsed=prep.collapsed)
    seq._run()
    return seq


def longitudinal(model: str, data: pd.DataFrame, constructs: Mapping[str, Sequence[str]], *,
                 levels: Optional[Sequence[str]] = None,
                 rules: Union[str, RuleSet, Mapping, Callable] = "chen2007",
                 identification: str = "std.lv",
                 group: Optional[str] = None,
                 group_equal: Union[None, str, Sequence[str]] = None,
                 auto_residual_covariances: bool = True,
                 group_labels: Optional[Sequence] = None,
                 partial: Union[bool, str, Sequence[str]] = False,
                 partial_options: Optional[Mapping] = None,
                 ordered: Union[None, bool, str, Sequence[str]] = None,
                 parameterization: str = "delta",
                 id_cat: str = "wu_estabrook2016",
                 id_thr: Sequence[int] = (1, 2),
                 collapse: Union[None, str, int] = None,
                 fit_index: str = "auto",
                 **fit_options) -> InvarianceSequence:
    """Longitudinal (or multi-informant) invariance sequence in one sample.

    ``constructs`` maps each construct to its factors at the successive occasions (or by the
    successive informants), e.g. ``{"B": ["B1", "B2"], "K": ["K1", "K2"]}``; the k-th indicators
    of these factors are the same item.  Equal loadings / intercepts / residual variances are
    imposed across the factors of a construct; same-item residuals are correlated across
    occasions (``auto_residual_covariances``, semTools' ``auto = "all"``); identification as in
    semTools' ``measEq.syntax`` (``"std.lv"``: first occasion's latent variance 1 and mean 0,
    later variances free once loadings are equal and means once intercepts are equal).
    Factors of constructs must have the same number of indicators.

    With ``group=`` the sequence is group x time: ``group_equal=None`` constrains groups
    together with occasions at every level; a level name holds the groups at that level while
    the occasions go through ``levels``.  See :func:`sequence` for the other arguments
    (including ``partial``, ordered indicators and the semantics after a failed level).
    """
    if not constructs:
        raise InvarianceError("longitudinal() needs constructs={construct: [factor at occasion 1, "
                              "factor at occasion 2, ...]}")
    rs = get_rule_set(rules)
    prep = _prepare(model, data, group, constructs, identification, auto_residual_covariances,
                    group_labels, fit_options, ordered, parameterization, id_cat, id_thr,
                    collapse)
    spec, labels = prep.spec, prep.labels
    levels = _resolve_levels(levels, spec)
    if not spec.longitudinal:
        raise InvarianceError("no construct has more than one factor; list the factors of each "
                              "construct at its occasions, e.g. {'B': ['B1', 'B2']}")
    if group is None:
        vary, fixed_group = ("occasions",), frozenset()
    elif group_equal is None:
        vary, fixed_group = ("groups", "occasions"), frozenset()
    else:
        vary, fixed_group = ("occasions",), _fixed_keywords(group_equal, spec)
    seq = InvarianceSequence(spec, prep.data, group, labels, levels, rs, dict(fit_options),
                             vary, fixed_group, frozenset(),
                             partial_levels=_partial_levels(partial, levels),
                             partial_options=_partial_options(partial_options),
                             index_family=_fit_index(fit_index, spec),
                             categories=prep.categories, collapsed=prep.collapsed)
    seq._run()
    return seq


if sequence.__doc__:  # not under python -OO
    sequence.__doc__ += _ORDINAL_DOC
if longitudinal.__doc__:
    longitudinal.__doc__ += _ORDINAL_DOC
