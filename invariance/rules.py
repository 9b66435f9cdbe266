"""Decision rules for measurement-invariance steps: named, switchable rule sets.

A step of an invariance sequence adds equality constraints (loadings, then intercepts, ...) and
is judged by the *change* in fit from the previous, less constrained model.  The common
cut-offs:

* **Cheung & Rensvold (2002)**, Structural Equation Modeling 9(2), 233-255: a drop in CFI of
  .01 or more (``delta_cfi <= -.01``) signals non-invariance, at every step.
* **Chen (2007)**, Structural Equation Modeling 14(3), 464-504 (total N > 300, equal groups):
  loadings are non-invariant when ``delta_cfi <= -.010`` supplemented by ``delta_rmsea >= .015``
  or ``delta_srmr >= .030``; intercepts and residual variances when ``delta_cfi <= -.010``
  supplemented by ``delta_rmsea >= .015`` or ``delta_srmr >= .010``.  Chen did not study the
  structural steps (latent variances, covariances, means) nor the thresholds of ordinal items
  (location parameters like intercepts); the intercept criteria are used there.
* ``chisq_difference``: the (scaled, Satorra & Bentler 2001) chi-square difference test at
  alpha = .05 (``delta_pvalue < .05``).

A user rule is a :class:`RuleSet`, a dict of thresholds (``{"delta_cfi": -.01,
"delta_rmsea": .015}``; non-invariant when *any* threshold is crossed, or *all* with
``"combine": "all"``; a dict of such dicts keyed by level gives level-specific thresholds) or a
callable ``rule(level, changes) -> bool | str`` where ``changes`` is a mapping with
``delta_cfi``, ``delta_rmsea``, ``delta_srmr``, ``delta_tli``, ``delta_chisq``, ``delta_df``,
``delta_pvalue`` and ``True`` means the constraints of the step are tenable ("invariant").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Union

__all__ = ["Criterion", "RuleSet", "RULE_SETS", "get_rule_set", "INVARIANT", "NON_INVARIANT",
           "UNDETERMINED", "NOT_TESTED"]

INVARIANT = "invariant"
NON_INVARIANT = "non-invariant"
UNDETERMINED = "undetermined"
#: The decision of a level that follows a level rejected by the rule set (with no partial model
#: that passed): it is not judged against a rejected model (see :func:`invariance.sequence`).
NOT_TESTED = "not tested: previous level failed"

# which criterion a level is judged by (Chen 2007 distinguishes loadings from the rest)
LEVEL_KIND = {
    "thresholds": "thresholds",
    "metric": "loadings",
    "scalar": "intercepts",
    "strict": "residuals",
    "lv.variances": "structural",
    "lv.covariances": "structural",
    "means": "structural",
}

_DIRECTION = {  # index -> how a threshold is crossed
    "delta_cfi": "drop", "delta_tli": "drop",
    "delta_rmsea": "rise", "delta_srmr": "rise",
    "delta_pvalue": "below",
}


def _crossed(index: str, value: float, threshold: float) -> Optional[bool]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    how = _DIRECTION[index]
    if how == "drop":
        return value <= -abs(threshold) + 1e-12
    if how == "rise":
        return value >= abs(threshold) - 1e-12
    return value < threshold


@dataclass(frozen=True)
class Criterion:
    """Non-invariance when every ``require`` threshold is crossed and, if ``any_of`` is not
    empty, at least one of the ``any_of`` thresholds.  Thresholds are keyed by index name
    (``delta_cfi``, ``delta_tli``: a drop of at least |t|; ``delta_rmsea``, ``delta_srmr``: a rise
    of at least |t|; ``delta_pvalue``: below t)."""

    require: Mapping[str, float] = field(default_factory=dict)
    any_of: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        for name in list(self.require) + list(self.any_of):
            if name not in _DIRECTION:
                raise ValueError(f"unknown fit-change index {name!r} in a rule; use one of "
                                 f"{sorted(_DIRECTION)}")

    def non_invariant(self, changes: Mapping[str, float]) -> Optional[bool]:
        """True (non-invariant), False (invariant) or None (an index needed is missing)."""
        req = [_crossed(k, changes.get(k, math.nan), t) for k, t in self.require.items()]
        alt = [_crossed(k, changes.get(k, math.nan), t) for k, t in self.any_of.items()]
        if any(r is False for r in req):
            return False
        if any(r is None for r in req):
            return None
        if not alt:
            return True
        if any(a is True for a in alt):
            return True
        if any(a is None for a in alt):
            return None
        return False

    def describe(self) -> str:
        def fmt(k, t):
            how = _DIRECTION[k]
            sign = "<=" if how == "drop" else ">=" if how == "rise" else "<"
            val = -abs(t) if how == "drop" else abs(t) if how == "rise" else t
            return f"{k} {sign} {val:g}"
        parts = [fmt(k, t) for k, t in self.require.items()]
        if self.any_of:
            alt = " or ".join(fmt(k, t) for k, t in self.any_of.items())
            parts.append(f"({alt})" if self.require else alt)
        return " and ".join(parts)


@dataclass(frozen=True)
class RuleSet:
    """A named decision rule: a :class:`Criterion` per kind of step.

    ``criteria`` maps ``"loadings"``, ``"intercepts"``, ``"residuals"``, ``"structural"`` or a
    level name (``"metric"``, ``"scalar"``, ...) to a criterion; ``"default"`` is the fallback.
    ``func``, when given, replaces the criteria: ``func(level, changes) -> bool | str``
    (``True`` = invariant).
    """

    name: str
    criteria: Mapping[str, Criterion] = field(default_factory=dict)
    citation: str = ""
    func: Optional[Callable] = None

    def criterion(self, level: str) -> Optional[Criterion]:
        kind = LEVEL_KIND.get(level, "structural")
        # thresholds are location parameters: judged as intercepts unless a rule names them
        for key in (level, kind, "intercepts" if kind in ("structural", "thresholds") else None,
                    "default"):
            if key is not None and key in self.criteria:
                return self.criteria[key]
        return None

    def decide(self, level: str, changes: Mapping[str, float]) -> str:
        """``"invariant"``, ``"non-invariant"`` or ``"undetermined"`` for a step to ``level``."""
        if self.func is not None:
            out = self.func(level, dict(changes))
            if isinstance(out, str):
                return out
            if out is None:
                return UNDETERMINED
            return INVARIANT if bool(out) else NON_INVARIANT
        crit = self.criterion(level)
        if crit is None:
            return UNDETERMINED
        flag = crit.non_invariant(changes)
        if flag is None:
            return UNDETERMINED
        return NON_INVARIANT if flag else INVARIANT

    def describe(self) -> str:
        """One line per criterion (what counts as non-invariance)."""
        if self.func is not None:
            return f"{self.name}: user-supplied function"
        lines = [f"{self.name}" + (f" ({self.citation})" if self.citation else "")]
        for key, crit in self.criteria.items():
            lines.append(f"  {key}: non-invariant if {crit.describe()}")
        return "\n".join(lines)


RULE_SETS: dict[str, RuleSet] = {
    "cheung_rensvold2002": RuleSet(
        "cheung_rensvold2002",
        {"default": Criterion(require={"delta_cfi": -0.01})},
        "Cheung & Rensvold 2002, Structural Equation Modeling 9(2), 233-255"),
    "chen2007": RuleSet(
        "chen2007",
        {"loadings": Criterion(require={"delta_cfi": -0.010},
                               any_of={"delta_rmsea": 0.015, "delta_srmr": 0.030}),
         "intercepts": Criterion(require={"delta_cfi": -0.010},
                                 any_of={"delta_rmsea": 0.015, "delta_srmr": 0.010}),
         "residuals": Criterion(require={"delta_cfi": -0.010},
                                any_of={"delta_rmsea": 0.015, "delta_srmr": 0.010})},
        "Chen 2007, Structural Equation Modeling 14(3), 464-504"),
    "chisq_difference": RuleSet(
        "chisq_difference",
        {"default": Criterion(require={"delta_pvalue": 0.05})},
        "likelihood-ratio / Satorra & Bentler 2001 scaled difference test, alpha = .05"),
}


def _from_dict(spec: Mapping, name: str = "user") -> RuleSet:
    from .spec import normalize_level  # local: avoid an import cycle

    if spec and all(isinstance(v, Mapping) for v in spec.values()):
        criteria = {}
        for key, sub in spec.items():
            try:
                key = normalize_level(key)
            except ValueError:
                pass
            criteria[key] = _from_dict(sub).criteria["default"]
        return RuleSet(name, criteria, "user-supplied thresholds")
    spec = dict(spec)
    combine = spec.pop("combine", "any")
    if combine not in ("any", "all"):
        raise ValueError(f"'combine' in a rule dict must be 'any' or 'all', got {combine!r}")
    bad = [k for k in spec if k not in _DIRECTION]
    if bad:
        raise ValueError(f"unknown fit-change index(es) {bad} in the rule dict; use "
                         f"{sorted(_DIRECTION)}")
    if not spec:
        raise ValueError("a rule dict needs at least one threshold, e.g. {'delta_cfi': -0.01}")
    crit = Criterion(require=spec) if combine == "all" else Criterion(any_of=spec)
    return RuleSet(name, {"default": crit}, "user-supplied thresholds")


def get_rule_set(rules: Union[str, RuleSet, Mapping, Callable]) -> RuleSet:
    """A :class:`RuleSet` from a name in :data:`RULE_SETS`, a dict of thresholds or a callable."""
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str):
        key = rules.lower().replace("-", "_").replace(" ", "_").replace("&", "")
        if key in RULE_SETS:
            return RULE_SETS[key]
        raise ValueError(f"unknown rule set {rules!r}; available rule sets: "
                         f"{sorted(RULE_SETS)} (or pass a dict of thresholds or a callable)")
    if isinstance(rules, Mapping):
        return _from_dict(rules)
    if callable(rules):
        return RuleSet(getattr(rules, "__name__", "user"), {}, "user-supplied function", rules)
    raise TypeError(f"rules must be a rule-set name, a dict of thresholds, a RuleSet or a "
                    f"callable, got {type(rules).__name__}")
