"""Measurement invariance: multi-group and longitudinal sequences, decision rules, score tests,
partial invariance and effect sizes, on the :mod:`sem_models` engine.

* :func:`sequence` -- configural / metric / scalar / strict (and latent variances, covariances,
  means) across groups; :func:`longitudinal` -- across occasions or informants (and groups).
  Both return an :class:`InvarianceSequence` with ``.fits``, ``.table`` (fit, changes in fit,
  decision), ``.summary()``, ``.partial(level)``, ``.latent_differences()``, ``.dmacs()``.
* Rule sets (:mod:`invariance.rules`): Cheung & Rensvold (2002), Chen (2007), the chi-square
  difference test, or your own.
* :func:`score_tests` -- univariate score tests of every equality constraint (lavaan's
  ``lavTestScore``); :func:`expected_parameter_changes`.
* :func:`latent_differences`, :func:`dmacs` -- effect sizes (Nye & Drasgow 2011).
* :func:`model_syntax` -- the lavaan syntax of a level (semTools' ``measEq.syntax`` style).

References: Meredith (1993) Psychometrika 58, 525-543; Cheung & Rensvold (2002) SEM 9,
233-255; Chen (2007) SEM 14, 464-504; Satorra & Bentler (2001) Psychometrika 66, 507-514;
Nye & Drasgow (2011) J Appl Psychol 96, 966-980.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .effects import dmacs, latent_differences
from .rules import RULE_SETS, Criterion, RuleSet, get_rule_set
from .score import expected_parameter_changes, score_test_total, score_tests
from .sequence import InvarianceSequence, longitudinal, sequence
from .spec import LEVELS, InvarianceError, MeasurementSpec, cumulative_keywords, normalize_levels

__all__ = ["sequence", "longitudinal", "InvarianceSequence", "score_tests", "score_test_total",
           "expected_parameter_changes", "latent_differences", "dmacs", "RuleSet", "Criterion",
           "RULE_SETS", "get_rule_set", "InvarianceError", "LEVELS", "model_syntax"]


def model_syntax(model: str, level: str = "configural", *, n_groups: int = 1,
                 constructs: Optional[Mapping[str, Sequence[str]]] = None,
                 identification: str = "std.lv", long_level: Optional[str] = None,
                 auto_residual_covariances: bool = True) -> str:
    """lavaan syntax of one invariance level for ``n_groups`` groups.

    ``level`` constrains groups (and occasions, when ``long_level`` is None); ``long_level``
    sets the occasions' level separately.  Fit it with ``sem_models.sem(syntax, data,
    group=..., meanstructure=True)``.
    """
    lv = normalize_levels([level])[0]
    kw = cumulative_keywords(_chain(lv))[lv]
    spec = MeasurementSpec.from_model(model, constructs, n_groups, identification,
                                      auto_residual_covariances)
    leq = kw if long_level is None else cumulative_keywords(_chain(normalize_levels(
        [long_level])[0]))[normalize_levels([long_level])[0]]
    return spec.syntax(kw, leq)


def _chain(level: str) -> list[str]:
    from .sequence import normalize_levels_upto
    return normalize_levels_upto(level)
