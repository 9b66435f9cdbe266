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
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

import sem_models as sm
from sem_models.estimation.threads import single_threaded_blas

from .effects import dmacs as _dmacs
from .effects import latent_differences as _latent_differences
from .rules import INVARIANT, NON_INVARIANT, NOT_TESTED, RuleSet, get_rule_set
from .score import release_tests, score_tests
from .spec import (LEVEL_KEYWORDS, InvarianceError, MeasurementSpec, RowKey,
                   cumulative_keywords, normalize_level, normalize_levels)

__all__ = ["sequence", "longitudinal", "InvarianceSequence", "fit_level"]

ROBUST = ("MLM", "MLR", "MLMV", "MLMVS", "WLSMV", "WLSM", "ULSMV", "ULSM")
DEFAULT_LEVELS = ("configural", "metric", "scalar", "strict")
_RESERVED = ("group_equal", "group_partial", "std_lv", "meanstructure", "group_labels")
_INDEX_COLUMNS = ["npar", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "aic", "bic"]
#: columns of an ordinal sequence's table (lavaan's names; ``*_robust`` are lavaan's catML
#: indices, NaN once thresholds are constrained; ``*_robust_wls`` are defined at every step,
#: see :mod:`invariance.ordinal`)
_ORDINAL_COLUMNS = ["npar", "chisq", "df", "pvalue", "chisq_scaled", "df_scaled",
                    "pvalue_scaled", "cfi", "tli", "rmsea", "cfi_scaled", "tli_scaled",
                    "rmsea_scaled", "cfi_robust", "tli_robust", "rmsea_robust",
                    "cfi_robust_wls", "tli_robust_wls", "rmsea_robust_wls", "srmr"]
FIT_INDEX_FAMILIES = ("robust", "robust_wls", "scaled", "standard")


def _group_labels(data: pd.DataFrame, group: Optional[str], given) -> Optional[list]:
    if group is None:
        return None
    if group not in data.columns:
        raise InvarianceError(f"the group column {group!r} is not in the data")
    present = list(pd.unique(data[group].dropna()))
    if given is None:
        return present
    given = list(given)
    missing = [g for g in given if g not in present]
    if missing or len(given) != len(present):
        raise InvarianceError(f"group_labels {given} must list every group in the data once: "
                              f"{present}")
    return given


def _check_data(spec: MeasurementSpec, data: pd.DataFrame, group: Optional[str], labels,
                missing: str) -> None:
    """Clear errors before fitting: a group with too few cases, an indicator not observed in
    some group (the factor would not have the same indicators in every group)."""
    ov = spec.observed
    absent = [v for v in ov if v not in data.columns]
    if absent:
        raise InvarianceError(f"indicator(s) {absent} are not columns of the data")
    values = np.column_stack([pd.to_numeric(data[v], errors="coerce").to_numpy(dtype=float)
                              for v in ov])
    observed = ~np.isnan(values)
    if group is None:
        parts = [(None, np.ones(len(data), bool))]
    else:
        gvals = data[group].to_numpy()
        parts = [(lab, gvals == lab) for lab in labels]
    p = len(ov)
    for lab, rows in parts:
        where = "" if lab is None else f" in group {lab!r}"
        block = observed[rows]
        never = [v for k, v in enumerate(ov) if not block[:, k].any()]
        if never:
            fac = {f: [v for v in spec.indicators[f] if v in never] for f in spec.factors}
            fac = {f: vs for f, vs in fac.items() if vs}
            raise InvarianceError(
                f"indicator(s) {never} have no observed value{where}, so factor(s) "
                f"{sorted(fac)} would not have the same indicators in every group; invariance "
                "needs the same indicators everywhere (drop the item or the group)")
        avail = missing in ("fiml", "ml", "pairwise")
        n = len(block) if avail else int(block.all(axis=1).sum())
        if n < p + 1:
            what = "cases" if avail else "complete cases"
            raise InvarianceError(
                f"group {lab!r} has only {n} {what} for {p} indicators; each group needs at "
                f"least {p + 1} to estimate its own (configural) model" if lab is not None else
                f"only {n} {what} for {p} indicators; at least {p + 1} are needed")


_ROBUST_COLUMNS = ["chisq_scaled", "pvalue_scaled", "cfi_robust", "tli_robust", "rmsea_robust"]
_DIFFERENCE_TESTS = {"standard": "likelihood ratio (chi-square difference)",
                     "satorra.bentler.2001": "Satorra-Bentler 2001 scaled difference",
                     "satorra.bentler.2010": "Satorra-Bentler 2010 scaled difference",
                     "satorra.2000": "Satorra 2000 scaled difference"}


def _is_ordinal(fit) -> bool:
    return bool(fit.options.get("ordered"))


def _measures(fit) -> dict:
    """Fit indices for the table under lavaan's names: the standard ones, and for robust
    estimators also ``chisq_scaled``, ``pvalue_scaled`` and the robust CFI, TLI, RMSEA.
    Ordinal fits: :data:`_ORDINAL_COLUMNS` (scaled, lavaan's robust and the robust indices of
    the (D)WLS statistic, :func:`invariance.ordinal.robust_wls_measures`)."""
    m = fit.measures()
    if _is_ordinal(fit):
        from .ordinal import robust_wls_measures
        out = {k: float(m[k]) if k in m.index else np.nan for k in _ORDINAL_COLUMNS}
        out.update(robust_wls_measures(fit))
        return out
    out = {k: float(m[k]) if k in m.index else np.nan for k in _INDEX_COLUMNS}
    est = str(fit.options.get("estimator", "ML")).upper()
    if est in ROBUST and "chisq_scaled" in m.index:
        out["chisq_scaled"] = float(m["chisq_scaled"])
        out["pvalue_scaled"] = float(m.get("pvalue_scaled", np.nan))
        for k in ("cfi", "tli", "rmsea"):
            val = np.nan
            for cand in (f"{k}_robust", f"{k}_scaled"):
                if cand in m.index and np.isfinite(m[cand]):
                    val = float(m[cand])
                    break
            out[f"{k}_robust"] = val
    return out


def _index(m: Mapping, k: str, family: str = "robust") -> float:
    """Index ``k`` (cfi, tli, rmsea) of the family used for the decisions: ``"robust"`` (the
    robust version when there is one, else the standard one; continuous data),
    ``"robust_wls"`` (ordinal data: the robust indices of the (D)WLS statistic),
    ``"scaled"`` or ``"standard"``."""
    def get(name):
        v = m.get(name, np.nan)
        return float(v) if v is not None and np.isfinite(v) else np.nan

    if family == "robust_wls":
        return get(f"{k}_robust_wls")
    if family == "scaled":
        return get(f"{k}_scaled")
    if family == "standard":
        return get(k)
    v = get(f"{k}_robust")
    if np.isfinite(v) or "cfi_robust_wls" in m:  # ordinal: no fallback to the standard one
        return v
    return get(k)


def _changes(prev, cur, prev_m: dict, cur_m: dict, family: str = "robust") -> dict:
    out = {}
    try:
        lrt = sm.compare(prev, cur)
        row = lrt.iloc[-1]
        out.update(delta_chisq=float(row["chisq_diff"]), delta_df=float(row["df_diff"]),
                   delta_pvalue=float(row["pvalue"]),
                   difference_test=_DIFFERENCE_TESTS.get(str(row.get("method", "standard")),
                                                         str(row.get("method", ""))))
    except (ValueError, NotImplementedError, ImportError) as exc:  # pragma: no cover
        out.update(delta_chisq=np.nan, delta_df=cur_m["df"] - prev_m["df"],
                   delta_pvalue=np.nan, difference_test="", note=str(exc))
    for k in ("cfi", "tli", "rmsea"):
        out[f"delta_{k}"] = _index(cur_m, k, family) - _index(prev_m, k, family)
    out["delta_srmr"] = cur_m["srmr"] - prev_m["srmr"]
    return out


def fit_level(spec: MeasurementSpec, data: pd.DataFrame, *, group=None, group_labels=None,
              group_eq=(), long_eq=(), released: Sequence[RowKey] = (), **fit_options):
    """Fit one level: write its syntax and fit it with :func:`sem_models.sem` (ordered
    indicators: WLSMV unless ``estimator=`` says otherwise, with the spec's
    parameterization)."""
    syntax = spec.syntax(group_eq, long_eq, released)
    if spec.ordered:
        fit_options = dict(fit_options, ordered=list(spec.ordered),
                           parameterization=spec.parameterization)
    fit = sm.sem(syntax, data, group=group, group_labels=group_labels, meanstructure=True,
                 std_lv=False, **fit_options)
    return syntax, fit


@dataclass
class InvarianceSequence:
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

    def _fit(self, level: str, released=()):
        geq, leq = self.keywords(level)
        return fit_level(self.spec, self.data, group=self.group, group_labels=self.group_labels,
                         group_eq=geq, long_eq=leq, released=released, **self.fit_options)

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
            self.syntax[level], self.fits[level] = self._fit(level, carried)
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
        table = pd.DataFrame(rows, index=pd.Index(self.levels, name="level"))
        for c in cols:
            if c not in table.columns:
                table[c] = np.nan
        self.table = table[cols]
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

    # ---------------------------------------------------------------- partial invariance
    def final_fit(self, level: str):
        """The partial fit of ``level`` if :meth:`partial` was run, else the full fit."""
        level = normalize_level(level)
        if level not in self.fits:
            raise InvarianceError(f"level {level!r} is not in this sequence ({self.levels})")
        return self.partial_fits.get(level, self.fits[level])

    def _describe(self, group: tuple) -> str:
        """``"x3~1 [Grant-White]"`` / ``"k2_t1~1, k2_t2~1 [b]"`` for a release group."""
        def name(key):
            lhs, op, rhs, _ = key
            return f"{lhs}~1" if op == "~1" else f"{lhs}{op}{rhs}"

        thr = [k for k in group if k[1] == "|"]
        if thr and len(thr) == len(group) and len({(k[0], k[3]) for k in thr}) == 1:
            lhs, _, _, g = thr[0]
            ts = ", ".join(k[2] for k in thr)
            where = "" if self.group_labels is None else f" [{self.group_labels[g - 1]}]"
            return f"{lhs}|{ts}{where}"
        if self.group_labels is None:
            return ", ".join(name(k) for k in group)
        groups = {k[3] for k in group}
        if len(groups) == 1:
            return ", ".join(name(k) for k in group) + f" [{self.group_labels[group[0][3] - 1]}]"
        return ", ".join(f"{name(k)} [{self.group_labels[k[3] - 1]}]" for k in group)

    def _occasion(self, lhs: str, op: str, rhs: str) -> int:
        spec = self.spec
        cell = spec.factor_cell
        if op == "=~" or (op in ("~1", "~~") and lhs in cell):
            return cell[lhs][1]
        it = spec.item_factor(lhs, op, rhs)
        return cell[it[0]][1] if it is not None else 1

    def _candidates(self, fit, kinds: frozenset, released: list, protect_marker: bool,
                    level: Optional[str] = None) -> list[tuple]:
        """Parameters that may be freed next: (parameter-table rows, release-group keys, df,
        fixed rows the release frees, df of its score test or None when the release also
        fixes parameters: then the score test's df is computed from the information).

        A constraint shared across the varying dimension(s) is released for one cell: one
        group (all its occasions when the occasions are held equal), one occasion (all groups
        when the groups are held equal), or one group x occasion when both vary.  The
        thresholds of an ordered item are released together in a cell (the item returns to
        its configural parameterization there, with the identification constraints of
        ``id_cat``); thresholds held equal for identification (Millsap & Tein, LISREL) are
        never released.  ``df`` is the number of free parameters the release adds (counted
        on the model's rows, identification changes included); a release with ``df <= 0``
        is not testable (e.g. the thresholds of a 3-category item under Wu & Estabrook) and
        is not a candidate.
        """
        spec = self.spec
        pt = fit._partable
        lhs_, op_, rhs_ = pt["lhs"].to_numpy(), pt["op"].to_numpy(), pt["rhs"].to_numpy()
        grp, labels = pt["group"].to_numpy(), pt["label"].to_numpy()
        where = {(str(a), str(o), str(b), int(g)): r for r, (a, o, b, g) in
                 enumerate(zip(lhs_, op_, rhs_, grp))}
        by_label: dict = {}
        # every labelled row: equal free parameters, and equal fixed ones (an ordinal item's
        # intercept fixed to 0 in every group is freed where its equality is released)
        for r in range(len(pt)):
            if labels[r] and op_[r] in ("=~", "~1", "~~", "|"):
                by_label.setdefault(labels[r], []).append(int(r))
        flat = [key for group in released for key in group]
        done: dict = {}   # (factor, group, kind) -> items already freed
        for lhs, op, rhs, g in flat:
            kind = spec.row_kind(lhs, op, rhs)
            it = spec.item_factor(lhs, op, rhs)
            if it is not None:
                done.setdefault((it[0], g, kind), set()).add(it[1])
        markers = {spec.indicators[f][0] for f in spec.factors}
        units: dict = {}  # (kind, item or label, cell) -> rows
        for lab, rows in by_label.items():
            if len(rows) < 2:
                continue
            kind = spec.row_kind(lhs_[rows[0]], op_[rows[0]], rhs_[rows[0]])
            if kind not in kinds:
                continue
            if kind == "thresholds" and spec.forced_threshold(
                    str(lhs_[rows[0]]), int(str(rhs_[rows[0]])[1:]), markers):
                continue
            cells = {r: (int(grp[r]), self._occasion(lhs_[r], op_[r], rhs_[r])) for r in rows}
            ref = cells[rows[0]]
            for r in rows[1:]:
                g, t = cells[r]
                if "groups" in self.vary and "occasions" in self.vary:
                    unit = (g, t)
                elif "groups" in self.vary and g != ref[0]:
                    unit = g
                elif "occasions" in self.vary and t != ref[1]:
                    unit = t
                else:
                    continue
                # thresholds: one unit per item and cell; other kinds: per label and cell
                who = (lhs_[r] if kind == "thresholds" else lab)
                units.setdefault((kind, who, unit), []).append(r)
        geq, leq = self.keywords(level) if level is not None else (frozenset(), frozenset())
        before = spec.rows(geq, leq, released)
        n_before = spec.n_free(before)
        status = {(r.lhs, r.op, r.rhs, g + 1): r.is_free(g) for r in before
                  for g in range(spec.n_groups)}
        out = []
        for (kind, _, _), unit in units.items():
            keys = tuple((str(lhs_[r]), str(op_[r]), str(rhs_[r]), int(grp[r])) for r in unit)
            if protect_marker and any(spec.is_marker(k[0], k[1], k[2]) for k in keys):
                continue
            ok = True
            if kind in ("loadings", "intercepts", "thresholds"):
                for lhs, op, rhs, g in keys:
                    f, item = spec.item_factor(lhs, op, rhs)
                    freed = done.get((f, g, kind), set()) | {item}
                    if len(spec.indicators[f]) - len(freed) < 2:
                        ok = False
            if not ok:
                continue
            try:
                after = spec.rows(geq, leq, released + [keys])
            except InvarianceError:
                continue
            df = spec.n_free(after) - n_before
            if df <= 0:
                continue
            # fixed rows the release frees, free rows it fixes (identification of ordinal
            # items): without the latter the score test's df is the spec's df
            newly, refixed = [], 0
            for r in after:
                for g in range(spec.n_groups):
                    key = (r.lhs, r.op, r.rhs, g + 1)
                    was_free = status.get(key, True)
                    if r.is_free(g) and not was_free:
                        row = where.get(key)
                        if row is None and r.op == "~~":
                            row = where.get((r.rhs, r.op, r.lhs, g + 1))
                        if row is not None:
                            newly.append(int(row))
                    elif was_free and not r.is_free(g):
                        refixed += 1
            out.append((unit, keys, int(df), newly, None if refixed else int(df)))
        return out

    @single_threaded_blas
    def partial(self, level: str, *, alpha: float = 0.05, max_steps: Optional[int] = None,
                rules=None, protect_marker: bool = True) -> pd.DataFrame:
        """Search for partial invariance at ``level`` by freeing one constraint at a time.

        Starting from the ``level`` model (with the parameters freed by the previous level's
        partial search, if one was run), the constraint of this level with the largest score
        test is released, the model refitted, and the step judged against the previous level
        by the rule set; this repeats until the rule set passes, no eligible constraint has a
        score test with p < ``alpha``, or ``max_steps`` constraints were freed.

        Candidates are the constraints added at ``level`` along the dimension(s) the sequence
        varies.  Across groups a parameter is freed in one group (lavaan's univariate score
        test, :func:`~invariance.score.score_tests`; with constructs held equal over occasions,
        in that group at every occasion jointly, keeping the occasions equal); across
        occasions, at one occasion.  The score test of a candidate is the Lagrange-multiplier
        test of releasing it (:func:`~invariance.score.release_tests`; Satorra 1989).  The
        marker indicator's loading and intercept (identification ``"marker"`` or
        ``"lavaan"``) are never freed (``protect_marker=False`` allows freeing the marker's
        intercept under ``"lavaan"`` identification, where it is an ordinary equality
        constraint as in lavaan's ``group.partial``; under ``"std.lv"`` no indicator is a
        marker), and every factor keeps at least two indicators whose parameter of this kind
        stays invariant (Byrne, Shavelson & Muthen 1989; Yoon & Kim 2014 on the sequential use
        of score tests).

        Returns one row per step (step 0 = the full ``level`` model): ``freed`` (e.g.
        ``"x3~1 [Grant-White]"``), ``lhs, op, rhs, group`` (the first freed parameter),
        ``n_freed`` (parameters freed together), the score test ``score_X2`` and
        ``score_pvalue``, the fit (``chisq, df, pvalue, cfi, rmsea, srmr``), its change from the
        previous level and the ``decision``; ``.attrs["stop_reason"]`` says why it stopped.
        The final fit is in ``partial_fits[level]``, the freed parameters (tuples of
        ``(lhs, op, rhs, group index)`` keys) in ``released[level]``.
        """
        level = normalize_level(level)
        if level not in self.levels:
            raise InvarianceError(f"level {level!r} is not in this sequence ({self.levels})")
        k = self.levels.index(level)
        if k == 0:
            raise InvarianceError(f"{level!r} is the first level of the sequence; partial "
                                  "invariance is searched at a later level")
        rs = self.rules if rules is None else get_rule_set(rules)
        prev_level = self.levels[k - 1]
        prev_fit = self.final_fit(prev_level)
        released = list(self.released.get(prev_level, []))
        cum = cumulative_keywords(self.levels)
        kinds = frozenset(self.spec.effective_keywords(cum[level])
                          - self.spec.effective_keywords(cum[prev_level]))
        if level in self.fits and self._fitted_with.get(level, []) == released:
            fit = self.fits[level]
        else:
            fit = self._fit(level, released)[1]
        prev_m = _measures(prev_fit)
        steps = []

        def record(step, fit, group=None, test=None):
            m = _measures(fit)
            ch = _changes(prev_fit, fit, prev_m, m, self.index_family)
            dec = rs.decide(level, ch)
            first = group[0] if group else None
            steps.append({
                "step": step, "freed": "" if group is None else self._describe(group),
                "lhs": "" if first is None else first[0], "op": "" if first is None else first[1],
                "rhs": "" if first is None else first[2],
                "group": None if first is None or self.group_labels is None
                else self.group_labels[first[3] - 1],
                "n_freed": 0 if group is None else len(group),
                "score_X2": np.nan if test is None else float(test["X2"]),
                "score_pvalue": np.nan if test is None else float(test["pvalue"]),
                "score_df": np.nan if test is None else float(test["df"]),
                "chisq": m["chisq"], "df": m["df"], "pvalue": m["pvalue"], "cfi": m["cfi"],
                "rmsea": m["rmsea"], "srmr": m["srmr"],
                **{c: m[c] for c in _ROBUST_COLUMNS + _ORDINAL_COLUMNS if c in m}, **ch,
                "decision": dec, "converged": fit.converged})
            return dec

        decision = record(0, fit)
        reason = ""
        n_freed = 0
        while True:
            if decision == INVARIANT:
                reason = f"the {rs.name} rule set passes"
                break
            if max_steps is not None and n_freed >= max_steps:
                reason = f"max_steps = {max_steps} reached"
                break
            cands = self._candidates(fit, kinds, released, protect_marker, level)
            if not cands:
                reason = ("no constraint of this level can be freed (marker / two-indicator "
                          "rule, identification of ordinal items)")
                break
            tests = release_tests(fit, [c[0] for c in cands], free=[c[3] for c in cands],
                                  df=[c[4] for c in cands])
            tests["keys"] = [c[1] for c in cands]
            tests = tests[tests["df"] > 0]
            # the smallest p first (equal df: the largest X2, lavaan's order)
            tests = tests.assign(_p=tests["pvalue"].fillna(1.0), _x=-tests["X2"]) \
                .sort_values(["_p", "_x"], kind="stable")
            tests = tests[tests["pvalue"] < alpha]
            if tests.empty:
                reason = f"no eligible constraint has a score test with p < {alpha}"
                break
            top = tests.iloc[0]
            released.append(top["keys"])
            _, fit = self._fit(level, released)
            n_freed += 1
            decision = record(n_freed, fit, top["keys"], top)
        table = pd.DataFrame(steps)
        table.attrs["stop_reason"] = reason
        self.partial_fits[level] = fit
        self.partial_steps[level] = table
        self.released[level] = released
        return table

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


@dataclass
class _Prepared:
    spec: MeasurementSpec
    labels: Optional[list]
    data: pd.DataFrame
    categories: Optional[pd.DataFrame] = None
    collapsed: dict = field(default_factory=dict)


def _prepare(model, data, group, constructs, identification, auto_residual_covariances,
             group_labels, fit_options, ordered=None, parameterization="delta",
             id_cat="wu_estabrook2016", id_thr=(1, 2), collapse=None) -> _Prepared:
    """Read the model, check the data; with ordered items: count their categories by group
    and occasion, collapse sparse ones consistently when ``collapse`` asks (else stop on an
    empty cell, naming it), and build the ordinal spec."""
    bad = [k for k in fit_options if k in _RESERVED + ("ordered", "parameterization")]
    if bad:
        raise InvarianceError(f"option(s) {bad} are set by the invariance levels / "
                              "identification (ordered= and parameterization= are arguments "
                              "of the sequence) and cannot be passed as fit options")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    labels = _group_labels(data, group, group_labels)
    n_groups = len(labels) if labels is not None else 1
    spec = MeasurementSpec.from_model(model, constructs, n_groups, identification,
                                      auto_residual_covariances)
    out = _Prepared(spec, labels, data)
    if ordered is not None and ordered is not False:
        from .ordinal import (category_frequencies, check_categories, chains_of,
                              collapse_categories, nthresholds, ordered_items)
        items = ordered_items(ordered, spec.observed, data)
        absent = [v for v in items if v not in data.columns]
        if absent:
            raise InvarianceError(f"indicator(s) {absent} are not columns of the data")
        if items:
            chains = chains_of(spec)
            if collapse is not None and collapse is not False:
                data = collapse_categories(data, items, collapse, group=group,
                                           chains=chains, group_labels=labels)
                out.collapsed = dict(data.attrs.get("collapsed_categories", {}))
            freq = category_frequencies(data, items, group=group, chains=chains,
                                        group_labels=labels)
            check_categories(freq)
            spec = MeasurementSpec.from_model(
                model, constructs, n_groups, identification, auto_residual_covariances,
                ordered=nthresholds(data, items), parameterization=parameterization,
                id_cat=id_cat, id_thr=id_thr)
            out.spec, out.data, out.categories = spec, data, freq
    elif collapse is not None and collapse is not False:
        raise InvarianceError("collapse= merges categories of ordered items; give ordered=")
    missing = str(fit_options.get("missing", "listwise")).lower()
    _check_data(out.spec, out.data, group, labels, missing)
    return out


def _fit_index(fit_index: str, spec: MeasurementSpec) -> str:
    if fit_index in (None, "auto"):
        return "robust_wls" if spec.ordered else "robust"
    if fit_index not in FIT_INDEX_FAMILIES:
        raise InvarianceError(f"fit_index={fit_index!r}; use 'auto' or one of "
                              f"{list(FIT_INDEX_FAMILIES)}")
    return fit_index


def _resolve_levels(levels, spec: MeasurementSpec) -> list:
    """The levels of the sequence (defaults per data type and id_cat), checked."""
    from .ordinal import default_levels
    if levels is None:
        levels = default_levels(spec.id_cat, spec.parameterization) if spec.ordered \
            else DEFAULT_LEVELS
    levels = normalize_levels(levels)
    if "thresholds" in levels:
        if not spec.ordered:
            raise InvarianceError("the 'thresholds' level needs ordered indicators (ordered=)")
        if spec.id_cat == "lisrel":
            raise InvarianceError("id_cat='lisrel' holds the thresholds equal in every model "
                                  "(first 0, second 1): there is no 'thresholds' level; use "
                                  "configural, metric, scalar")
    if spec.ordered and spec.parameterization == "delta" and "strict" in levels:
        raise InvarianceError(
            "the strict level (equal residual variances) cannot be tested for ordinal items "
            "under parameterization='delta' (the residual variances are not parameters "
            "there); use parameterization='theta'")
    if (spec.ordered and spec.id_cat == "wu_estabrook2016" and "metric" in levels
            and "thresholds" not in levels and levels.index("metric") > 0):
        warnings.warn(
            "with id_cat='wu_estabrook2016' test the thresholds before the loadings (levels "
            "configural, thresholds, metric, scalar; Wu & Estabrook 2016): without a "
            "thresholds level the metric model keeps the scales of later groups fixed and the "
            "scalar model frees them, so the two are not nested", UserWarning, stacklevel=3)
    return levels


def _fixed_keywords(level, spec: Optional[MeasurementSpec] = None) -> frozenset:
    if level is None:
        return frozenset()
    if isinstance(level, str):
        lv = normalize_level(level)
        with_thr = spec is not None and bool(spec.ordered) and \
            spec.id_cat == "wu_estabrook2016"
        return cumulative_keywords(normalize_levels_upto(lv, with_thr))[lv]
    kws = frozenset(level)
    bad = [k for k in kws if k not in {w for s in LEVEL_KEYWORDS.values() for w in s}]
    if bad:
        raise InvarianceError(f"unknown equality keyword(s) {bad}")
    return kws


def _partial_levels(partial, levels: Sequence[str]) -> tuple:
    """The levels at which a failed step starts a partial-invariance search."""
    if partial is None or partial is False:
        return ()
    if partial is True:
        return tuple(levels[1:])
    names = [partial] if isinstance(partial, str) else list(partial)
    out = []
    for name in names:
        lv = normalize_level(name)
        if lv not in levels:
            raise InvarianceError(f"partial={name!r}: level {lv!r} is not in this sequence "
                                  f"({list(levels)})")
        if lv == levels[0]:
            raise InvarianceError(f"partial={name!r}: {lv!r} is the first level of the "
                                  "sequence; partial invariance is searched at a later level")
        out.append(lv)
    return tuple(out)


def _partial_options(options: Optional[Mapping]) -> dict:
    opts = dict(options or {})
    bad = [k for k in opts if k not in ("alpha", "max_steps", "protect_marker")]
    if bad:
        raise InvarianceError(f"unknown partial_options {bad}; use alpha, max_steps, "
                              "protect_marker")
    return opts


def normalize_levels_upto(level: str, thresholds: bool = False) -> list[str]:
    """The measurement levels implied by ``level`` (scalar -> configural, metric, scalar;
    ``thresholds=True``: with the thresholds level before metric, Wu & Estabrook's order)."""
    from .spec import LEVELS
    k = LEVELS.index(level)
    chain = list(LEVELS[: k + 1]) if k <= LEVELS.index("strict") else \
        ["configural", "thresholds", "metric", "scalar", "strict", level]
    if not thresholds and level != "thresholds":
        chain = [lv for lv in chain if lv != "thresholds"]
    return chain


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
