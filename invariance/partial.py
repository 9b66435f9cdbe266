"""The partial-invariance search of an invariance sequence (:meth:`InvarianceSequence.partial`).

:class:`PartialSearch` is a mixin of :class:`invariance.sequence.InvarianceSequence`: after a
level fails its rule, the constraint of that level with the smallest score-test p-value
(Satorra 1989; :func:`invariance.score.release_tests`) is released in one cell (group,
occasion or group x occasion), the model refitted and judged again, until the rule set
passes (Byrne, Shavelson & Muthen 1989; Yoon & Kim 2014).  It uses the sequence's ``spec``,
``levels``, ``fits``, ``rules``, ``keywords()`` and ``_fit()``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from sem_models.estimation.threads import single_threaded_blas

from .fit_changes import _ORDINAL_COLUMNS, _ROBUST_COLUMNS, _changes, _measures
from .levels import InvarianceError, cumulative_keywords, normalize_level
from .rules import INVARIANT, get_rule_set
from .score import release_tests

__all__ = ["PartialSearch"]


class PartialSearch:
    """Mixin: the partial-invariance search and the fits it leaves (``partial_fits``,
    ``partial_steps``, ``released``)."""

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
