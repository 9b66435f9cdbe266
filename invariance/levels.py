"""The invariance levels and identification conventions by name, and the package's error.

The levels in their order (configural, thresholds, metric, scalar, strict, lv.variances,
lv.covariances, means; Meredith 1993; Vandenberg & Lance 2000; Wu & Estabrook 2016 for the
thresholds level), their aliases and the equality keywords each adds; the identification
names (semTools' ``ID.fac``) and the ``ID.cat`` conventions for ordinal items; and
:class:`InvarianceError`.  This module imports nothing else of the package, so every other
module of :mod:`invariance` can use it (:mod:`invariance.spec` re-exports its names).
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["InvarianceError", "LEVELS", "LEVEL_KEYWORDS", "normalize_level", "normalize_levels",
           "IDENTIFICATIONS", "ID_CATS", "normalize_id_cat", "cumulative_keywords",
           "normalize_levels_upto"]


class InvarianceError(ValueError):
    """The invariance model cannot be built or tested as asked (the message says why)."""


LEVELS = ("configural", "thresholds", "metric", "scalar", "strict", "lv.variances",
          "lv.covariances", "means")

LEVEL_KEYWORDS: dict[str, frozenset] = {
    "configural": frozenset(),
    "thresholds": frozenset({"thresholds"}),
    "metric": frozenset({"loadings"}),
    "scalar": frozenset({"loadings", "intercepts"}),
    "strict": frozenset({"loadings", "intercepts", "residuals"}),
    "lv.variances": frozenset({"lv.variances"}),
    "lv.covariances": frozenset({"lv.covariances"}),
    "means": frozenset({"means"}),
}

_LEVEL_ALIASES = {
    "configural": "configural", "thresholds": "thresholds", "threshold": "thresholds",
    "metric": "metric", "weak": "metric", "loadings": "metric",
    "scalar": "scalar", "strong": "scalar", "intercepts": "scalar",
    "strict": "strict", "residuals": "strict",
    "lv.variances": "lv.variances", "lv_variances": "lv.variances",
    "variances": "lv.variances",
    "lv.covariances": "lv.covariances", "lv_covariances": "lv.covariances",
    "covariances": "lv.covariances",
    "means": "means", "lv.means": "means", "lv_means": "means", "latent_means": "means",
}

IDENTIFICATIONS = {
    "std.lv": "std.lv", "std_lv": "std.lv", "uv": "std.lv", "fixed.factor": "std.lv",
    "fixed_factor": "std.lv",
    "marker": "marker", "ul": "marker", "auto.fix.first": "marker", "ref.indicator": "marker",
    "lavaan": "lavaan",
}

#: semTools' ``ID.cat`` conventions for ordinal indicators: alias -> canonical name
ID_CATS = {
    "wu_estabrook2016": "wu_estabrook2016", "wu.estabrook.2016": "wu_estabrook2016",
    "wu_estabrook_2016": "wu_estabrook2016", "wu": "wu_estabrook2016",
    "wu2016": "wu_estabrook2016", "wu_estabrook": "wu_estabrook2016",
    "wu.estabrook": "wu_estabrook2016", "wu.2016": "wu_estabrook2016",
    "mplus": "mplus", "muthen": "mplus", "default": "mplus",
    "millsap_tein2004": "millsap_tein2004", "millsap.tein.2004": "millsap_tein2004",
    "millsap_tein_2004": "millsap_tein2004", "millsap": "millsap_tein2004",
    "millsap.2004": "millsap_tein2004", "millsap2004": "millsap_tein2004",
    "lisrel": "lisrel", "joreskog": "lisrel",
}

def normalize_id_cat(id_cat: str) -> str:
    """Canonical ``id_cat`` name (``"wu"`` -> ``"wu_estabrook2016"``, ...)."""
    key = str(id_cat).strip().lower()
    if key not in ID_CATS:
        raise InvarianceError(f"unknown id_cat {id_cat!r}; use one of 'wu_estabrook2016' (the "
                              "default), 'mplus', 'millsap_tein2004', 'lisrel'")
    return ID_CATS[key]


def normalize_level(level: str) -> str:
    """Canonical level name (``"weak"`` -> ``"metric"``, ``"strong"`` -> ``"scalar"``, ...)."""
    if not isinstance(level, str):
        raise InvarianceError(f"a level must be a string, got {level!r}")
    key = level.strip().lower()
    if key not in _LEVEL_ALIASES:
        raise InvarianceError(f"unknown invariance level {level!r}; levels are {list(LEVELS)}")
    return _LEVEL_ALIASES[key]


def normalize_levels(levels: Sequence[str]) -> list[str]:
    """Check that the levels are known, distinct and in the order of :data:`LEVELS`."""
    if isinstance(levels, str):
        levels = [levels]
    out = [normalize_level(lv) for lv in levels]
    if not out:
        raise InvarianceError("at least one level is needed")
    order = [LEVELS.index(lv) for lv in out]
    for a, b, la, lb in zip(order, order[1:], out, out[1:]):
        if b <= a:
            raise InvarianceError(
                f"levels out of order: {lb!r} cannot follow {la!r}; each level adds constraints "
                f"to the previous one, in the order {' < '.join(LEVELS)} (got {list(levels)})")
    return out


def cumulative_keywords(levels: Sequence[str]) -> dict[str, frozenset]:
    """Equality keywords in force at each level of a sequence (each adds to the previous)."""
    out, acc = {}, frozenset()
    for lv in levels:
        acc = acc | LEVEL_KEYWORDS[lv]
        out[lv] = acc
    return out


def normalize_levels_upto(level: str, thresholds: bool = False) -> list[str]:
    """The measurement levels implied by ``level`` (scalar -> configural, metric, scalar;
    ``thresholds=True``: with the thresholds level before metric, Wu & Estabrook's order)."""
    k = LEVELS.index(level)
    chain = list(LEVELS[: k + 1]) if k <= LEVELS.index("strict") else \
        ["configural", "thresholds", "metric", "scalar", "strict", level]
    if not thresholds and level != "thresholds":
        chain = [lv for lv in chain if lv != "thresholds"]
    return chain
