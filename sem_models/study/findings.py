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
from typing import Any, Iterable, Mapping, Optional

__all__ = ["ALPHA", "VERDICT_RULE", "VERDICTS", "make_test", "expectation_met", "verdict",
           "format_p", "describe_test", "analyses_agree"]

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


def describe_test(t: Mapping) -> str:
    """One line: ``name: estimate 0.340, z = 2.455, p = .014``."""
    parts = []
    if t.get("estimate") is not None:
        parts.append(f"estimate {t['estimate']:.3f}")
    if t.get("statistic") is not None:
        parts.append(f"{t.get('statistic_type') or 'statistic'} = {t['statistic']:.3f}")
    p = format_p(t.get("p"))
    if p:
        parts.append(f"p {p}" if p[0] in "<>" else f"p = {p}")
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
