"""Findings of the alliance study as lists of tests, with a verdict computed from them.

Each finding states what the study expects; its evidence is a list of tests, each a dict

    {"name", "estimate", "statistic", "statistic_type", "p", "expect", "direction", "met"}

where ``expect`` is ``"significant"`` or ``"not significant"`` and ``direction``
(``"positive"``, ``"negative"`` or ``None``) the sign the estimate must have for a
significant expectation to count as met.  The verdict is never set by hand: it is
:func:`verdict` of the tests (rule :data:`VERDICT_RULE`, alpha = .05).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .pipeline import StudyResults

__all__ = ["ALPHA", "VERDICT_RULE", "VERDICTS", "make_test", "expectation_met", "verdict",
           "format_p", "describe_test", "analyses_agree", "study_findings"]

ALPHA = 0.05

#: The verdicts :func:`verdict` can give, in the order of the rule.
VERDICTS = ("supported", "partly supported", "not supported", "not tested")

VERDICT_RULE = (
    "A test meets its expectation when it is expected to be significant and p < .05 (with the "
    "estimate in the stated direction, where one is stated), or expected not to be significant "
    "and p >= .05. A finding is supported when every one of its tests meets its expectation, "
    "not supported when none does, and partly supported otherwise; it is not tested when a "
    "step it needs failed.")


def _num(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def make_test(name: str, p: Any, expect: str, *, estimate: Any = None, statistic: Any = None,
              statistic_type: str = "z", direction: Optional[str] = None,
              alpha: float = ALPHA) -> dict:
    """One test of a finding, with ``met`` computed by :func:`expectation_met`."""
    if expect not in ("significant", "not significant"):
        raise ValueError(f"expect must be 'significant' or 'not significant', not {expect!r}")
    if direction not in (None, "positive", "negative"):
        raise ValueError(f"direction must be 'positive', 'negative' or None, not {direction!r}")
    t = {"name": name, "estimate": _num(estimate), "statistic": _num(statistic),
         "statistic_type": statistic_type, "p": _num(p), "expect": expect,
         "direction": direction}
    t["met"] = expectation_met(t, alpha)
    return t


def expectation_met(test: Mapping, alpha: float = ALPHA) -> bool:
    """Whether a test meets its expectation (see :data:`VERDICT_RULE`)."""
    p = _num(test.get("p"))
    if p is None:
        return False
    if test["expect"] == "not significant":
        return p >= alpha
    if p >= alpha:
        return False
    direction = test.get("direction")
    if direction is None:
        return True
    est = _num(test.get("estimate"))
    if est is None:
        return False
    return est > 0 if direction == "positive" else est < 0


def verdict(tests: Iterable[Mapping], alpha: float = ALPHA) -> str:
    """``"supported"`` when every test meets its expectation at ``alpha``, ``"not supported"``
    when none does, ``"partly supported"`` otherwise; ``"not tested"`` without tests."""
    met = [expectation_met(t, alpha) for t in tests]
    if not met:
        return VERDICTS[3]
    if all(met):
        return VERDICTS[0]
    if not any(met):
        return VERDICTS[2]
    return VERDICTS[1]


def format_p(p: Any) -> str:
    """APA style: ``<.001``, ``.014``, ``1.000`` never (p = 1 is ``>.999``)."""
    v = _num(p)
    if v is None:
        return ""
    if v < 0.001:
        return "<.001"
    if v > 0.999:
        return ">.999"
    return f"{v:.3f}".lstrip("0")


def _p_phrase(p: str) -> str:
    """``p = .014`` or ``p <.001`` / ``p >.999`` from :func:`format_p`'s text."""
    return f"p {p}" if p.startswith(("<", ">")) else f"p = {p}"


def describe_test(t: Mapping) -> str:
    """One line: ``name: estimate 0.340, z = 2.455, p = .014``."""
    parts = []
    if t.get("estimate") is not None:
        parts.append(f"estimate {t['estimate']:.3f}")
    if t.get("statistic") is not None:
        parts.append(f"{t.get('statistic_type') or 'statistic'} = {t['statistic']:.3f}")
    p = format_p(t.get("p"))
    if p:
        parts.append(_p_phrase(p))
    return f"{t['name']}: " + ", ".join(parts) if parts else str(t["name"])


def analyses_agree(est_primary: Any, p_primary: Any, est_check: Any, p_check: Any,
                   alpha: float = ALPHA) -> tuple[bool, str]:
    """Whether a sensitivity analysis agrees with the primary one on an effect: the same sign
    and the same side of ``alpha``.  Returns ``(agree, description)``; the description says
    where they differ (direction, significance).  Used for the report only: verdicts come
    from the primary analysis' tests (:func:`verdict`)."""
    e1, e2, q1, q2 = _num(est_primary), _num(est_check), _num(p_primary), _num(p_check)
    if None in (e1, e2, q1, q2):
        return False, "not comparable (a value is missing)"
    same_sign = (e1 > 0) == (e2 > 0) or e1 == e2 == 0
    s1, s2 = q1 < alpha, q2 < alpha
    if same_sign and s1 == s2:
        return True, ("agree: same direction, both significant" if s1
                      else "agree: same direction, neither significant")
    if not same_sign:
        return False, "disagree on the direction"
    return False, ("disagree on significance: primary p "
                   f"{format_p(q1)}, sensitivity p {format_p(q2)} (same direction)")


# ----------------------------------------------------------------------------- findings
def _row(tab: pd.DataFrame, **eq) -> Optional[pd.Series]:
    sel = np.ones(len(tab), bool)
    for k, v in eq.items():
        sel &= (tab[k].astype(str) == str(v)).to_numpy()
    return tab[sel].iloc[0] if sel.any() else None


def _required_row(tab: pd.DataFrame, missing: str, **eq) -> pd.Series:
    """The first row of ``tab`` matching ``eq``; KeyError(``missing``) when there is none."""
    r = _row(tab, **eq)
    if r is None:
        raise KeyError(missing)
    return r


def _path_test(tab: pd.DataFrame, name: str, expect: str, direction: Optional[str], **eq):
    r = _required_row(tab, f"no row {eq} in the table", **eq)
    return make_test(name, r["pvalue"], expect, estimate=r["est"], statistic=r["z"],
                     direction=direction)


def _group_format_only(tab: pd.DataFrame, label: str, grp: str, ind: str, **eq) -> list:
    """The two tests of an effect expected in the group format only: significant and
    positive in ``grp``, not significant in ``ind``."""
    return [_path_test(tab, f"{label} ({grp} format)", "significant", "positive",
                       group=grp, **eq),
            _path_test(tab, f"{label} ({ind} format)", "not significant", None,
                       group=ind, **eq)]


# what each finding needs: table -> the step that makes it
_NEEDS = {1: ["trait_means"], 2: ["outcome_paths"], 3: ["outcome_paths", "outcome_paths_format"],
          4: ["lcm_paths", "lcm_moderation"], 5: ["rsa_surface", "rsa_group_tests"]}


def _finding(res: StudyResults, key: int, fid: int, text: str, build) -> dict:
    """A finding with its tests from ``build()``; when a table it needs is missing (its step
    failed) or building the tests fails, it has no tests and the reason."""
    missing = [t for t in _NEEDS[key] if t not in res.tables]
    tests, context, reason = [], "", ""
    if missing:
        steps = sorted({s for s in res.failed} | ({res.interrupted} if res.interrupted else
                                                  set()))
        reason = (f"not tested: table(s) {missing} missing"
                  + (f" (step(s) failed: {'; '.join(steps)})" if steps else ""))
    else:
        try:
            tests, context = build()
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            reason = f"not tested: {type(exc).__name__}: {exc}"
            tests = []
    out = {"id": fid, "finding": text, "tests": tests, "verdict": verdict(tests)}
    warn = _fit_warning(res, key) if tests else ""
    if warn:
        out["fit_warning"] = warn
    lines = [_describe(t) for t in tests]
    out["evidence"] = "; ".join(lines) if lines else reason
    if context:
        out["context"] = context
    if reason:
        out["reason"] = reason
    return out


def _fit_rows(res: StudyResults, key: int) -> list:
    """(label, fit row) of the models the tests of finding ``key`` come from."""
    T = res.tables
    rows = []
    if key == 1 and "format_invariance" in T:
        fi = T["format_invariance"]
        r = _row(fi, informant="child", level="scalar")
        part = T.get("partial_invariance")
        if part is not None:
            p = part[(part["informant"] == "child") & (part["level"] == "scalar")]
            if len(p):
                rows.append(("child partial scalar model across format", p.iloc[-1]))
                r = None
        if r is not None:
            rows.append(("child scalar model across format", r))
    elif key in (2, 3) and "outcome_fit" in T:
        of = T["outcome_fit"]
        for name in (("pooled",) if key == 2 else ("pooled", "by format")):
            r = _row(of, model=name)
            if r is not None:
                rows.append((f"{name} outcome model", r))
    elif key == 4 and "lcm_fit" in T:
        rows.append(("latent congruence model", T["lcm_fit"].iloc[0]))
    return rows


def _fit_warning(res: StudyResults, key: int) -> str:
    from .report import POOR_FIT_RULE, poor_fit
    bad = [f"{label} ({why})" for label, row in _fit_rows(res, key) if (why := poor_fit(row))]
    if not bad:
        return ""
    return ("The model behind these tests fits poorly (" + POOR_FIT_RULE + "): "
            + "; ".join(bad) + ". Read the verdict with caution.")


def _describe(t: dict) -> str:
    p = _p_phrase(format_p(t["p"]))
    est = "" if t["estimate"] is None else f"{t['estimate']:.3f}, "
    stat = "" if t["statistic"] is None else f"{t['statistic_type']} = {t['statistic']:.3f}, "
    return f"{t['name']} {est}{stat}{p}"


def study_findings(res: StudyResults) -> list:
    """The study's findings (STUDY.md), each with its tests and the computed verdict."""
    fmt = res.options.get("formats", {"individual": "individual", "group": "group"})
    ind, grp = fmt["individual"], fmt["group"]
    out = []

    def f1():
        td = res.tables["trait_means"]
        r = _required_row(td, "c_task is not in the trait means table", factor="c_task")
        if "rejected" in str(r.get("scalar_model", "")):
            raise ValueError("the child scalar model across format was rejected and no partial "
                             "scalar model passed: the latent means are not comparable")
        t = make_test("latent mean difference of c_task, individual - group (items ordinal, "
                      "WLSMV)", r["pvalue"], "significant", estimate=r["mean_diff"],
                      statistic=r["z"], direction="positive")
        context = (f"d = {float(r['d']):.3f} (SE {float(r['d_se']):.3f}); "
                   f"{r.get('scalar_model', 'scalar')} model with the items as ordinal, "
                   f"{int(r['n_invariant'])} items with invariant thresholds, loadings and "
                   "intercepts")
        tc = res.tables.get("trait_means_continuous")
        rc = _row(tc, factor="c_task") if tc is not None else None
        if rc is not None:  # the sensitivity check: reported, not part of the verdict
            from .findings import analyses_agree
            _, how = analyses_agree(r["d"], r["pvalue"], rc["d"], rc["pvalue"])
            pc = format_p(rc["pvalue"])
            context += (f". Sensitivity check, items continuous (MLR; not part of the "
                        f"verdict): d = {float(rc['d']):.3f} (SE {float(rc['d_se']):.3f}), "
                        f"p {pc if pc[:1] in '<>' else '= ' + pc}, "
                        f"{rc.get('scalar_model', 'scalar')} model; the two analyses {how}")
        return [t], context

    out.append(_finding(res, 1, 1, "Children seen individually report higher trait-like task "
                        "collaboration than children in groups (a latent mean difference under "
                        "partial scalar invariance)", f1))

    def item_context(outcome, predictors):
        if "outcome_paths_items" not in res.tables:
            return ""
        ip = res.tables["outcome_paths_items"]
        parts = []
        for p in predictors:
            r = _row(ip, lhs=outcome, rhs=p)
            if r is not None:
                pv = format_p(r["pvalue"])
                parts.append(f"{outcome} on {p} std {r['std_all']:.3f} "
                             f"(p {pv if pv[:1] in '<>' else '= ' + pv})")
        return ("check, pooled item-level model (not part of the verdict): " + ", ".join(parts)
                if parts else "")

    def f2():
        pp = res.tables["outcome_paths"]
        tests = [_path_test(pp, f"ext_fu on {p} (pooled)", "significant", "negative",
                            lhs="ext_fu", rhs=p) for p in ("t_bond", "t_task")]
        return tests, item_context("ext_fu", ("t_bond", "t_task"))

    out.append(_finding(res, 2, 2, "Higher trait therapist-rated bond and task predict fewer "
                        "externalizing problems at follow-up, independent of format (baseline "
                        "controlled)", f2))

    def f3():
        pp = res.tables["outcome_paths"]
        bf = res.tables["outcome_paths_format"]
        tests = [_path_test(pp, f"int_fu on {p} (pooled)", "significant", "negative",
                            lhs="int_fu", rhs=p) for p in ("c_task", "t_task")]
        tests.append(_path_test(bf, f"int_fu on t_bond ({ind} format)", "significant",
                                "negative", lhs="int_fu", rhs="t_bond", group=ind))
        return tests, item_context("int_fu", ("c_task", "t_task"))

    out.append(_finding(res, 3, 2, "Child- and therapist-rated task and therapist-rated bond "
                        "predict fewer internalizing problems (the bond path in the individual "
                        "format: in the group format finding 3 reverses it)", f3))

    def f4():
        lp = res.tables["lcm_paths"]
        mod = res.tables["lcm_moderation"]
        m = _required_row(mod, "no D row in the LCM moderation table", path="D")
        tests = _group_format_only(lp, "int_fu on D", grp, ind, rhs="D")
        tests.append(make_test("D effect equal across formats (Wald)", m["pvalue"],
                               "significant", statistic=m["stat"],
                               statistic_type=f"chi2({int(m['df'])})"))
        return tests, ""

    out.append(_finding(res, 4, 3, "Therapist-child disagreement on bond (D = therapist - "
                        "child) predicts more internalizing problems in the group format only "
                        "(latent congruence model)", f4))

    def f5():
        surf = res.tables["rsa_surface"]
        gt = res.tables["rsa_group_tests"]
        g = _required_row(gt, "no a3 row in the RSA group tests", parameter="a3")
        tests = _group_format_only(surf, "a3", grp, ind, parameter="a3")
        tests.append(make_test("a3 difference, individual - group (Wald)", g["pvalue"],
                               "significant", estimate=g.get("diff"), statistic=g["chisq"],
                               statistic_type=f"chi2({int(g['df'])})", direction="negative"))
        return tests, ""

    out.append(_finding(res, 5, 3, "Response surface: int_fu rises along the line of "
                        "incongruence (therapist above child, a3 > 0) in the group format only",
                        f5))
    return out


__all__ += ["study_findings", "VERDICT_RULE"]
