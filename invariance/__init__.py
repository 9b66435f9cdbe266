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
* :func:`permutation_test` -- permutation p-values for the changes in fit between levels
  (Jorgensen, Kite, Chen & Short 2018; semTools' ``permuteMeasEq``).
* :func:`model_syntax` -- the lavaan syntax of a level (semTools' ``measEq.syntax`` style).
* Ordinal items (``ordered=`` in :func:`sequence` / :func:`longitudinal`): thresholds level,
  the identification conventions of semTools' ``ID.cat`` (Wu & Estabrook 2016 by default;
  Mplus; Millsap & Tein 2004; LISREL) under delta or theta, ``seq.identification``, robust fit
  indices at every step, score tests under WLSMV, dMACS from the graded probit model;
  :func:`category_frequencies` and :func:`collapse_categories` (one mapping per item for all
  groups and occasions) before fitting (:mod:`invariance.ordinal`).

References: Meredith (1993) Psychometrika 58, 525-543; Cheung & Rensvold (2002) SEM 9,
233-255; Chen (2007) SEM 14, 464-504; Satorra & Bentler (2001) Psychometrika 66, 507-514;
Nye & Drasgow (2011) J Appl Psychol 96, 966-980; Millsap & Tein (2004) Multivariate Behav Res
39, 479-515; Wu & Estabrook (2016) Psychometrika 81, 1014-1045.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .effects import dmacs, latent_differences
from .ordinal import category_frequencies, collapse_categories, robust_wls_measures
from .rules import RULE_SETS, Criterion, RuleSet, get_rule_set
from .score import expected_parameter_changes, score_test_total, score_tests
from .permutation import PermutationResult, permutation_test
from .sequence import InvarianceSequence, longitudinal, sequence
from .spec import (ID_CATS, LEVELS, InvarianceError, MeasurementSpec, cumulative_keywords,
                   normalize_levels)

__all__ = ["permutation_test", "PermutationResult",
           "sequence", "longitudinal", "InvarianceSequence", "score_tests", "score_test_total",
           "expected_parameter_changes", "latent_differences", "dmacs", "RuleSet", "Criterion",
           "RULE_SETS", "get_rule_set", "InvarianceError", "LEVELS", "ID_CATS", "model_syntax",
           "category_frequencies", "collapse_categories", "robust_wls_measures"]


def model_syntax(model: str, level: str = "configural", *, n_groups: int = 1,
                 constructs: Optional[Mapping[str, Sequence[str]]] = None,
                 identification: str = "std.lv", long_level: Optional[str] = None,
                 auto_residual_covariances: bool = True,
                 ordered: Optional[Mapping[str, int]] = None, parameterization: str = "delta",
                 id_cat: str = "wu_estabrook2016", id_thr: Sequence[int] = (1, 2)) -> str:
    """lavaan syntax of one invariance level for ``n_groups`` groups.

    ``level`` constrains groups (and occasions, when ``long_level`` is None); ``long_level``
    sets the occasions' level separately.  ``ordered``: ordered indicator -> number of
    thresholds (categories - 1), with ``parameterization`` and ``id_cat`` as in
    :func:`sequence` (Wu & Estabrook's order: the thresholds level precedes metric).  Fit it
    with ``sem_models.sem(syntax, data, group=..., meanstructure=True, std_lv=False)`` (and
    ``ordered=``, ``parameterization=`` for ordinal items).
    """
    spec = MeasurementSpec.from_model(model, constructs, n_groups, identification,
                                      auto_residual_covariances, ordered=ordered,
                                      parameterization=parameterization, id_cat=id_cat,
                                      id_thr=id_thr)
    with_thr = bool(spec.ordered) and spec.id_cat == "wu_estabrook2016"
    lv = normalize_levels([level])[0]
    kw = cumulative_keywords(_chain(lv, with_thr))[lv]
    if long_level is None:
        leq = kw
    else:
        ll = normalize_levels([long_level])[0]
        leq = cumulative_keywords(_chain(ll, with_thr))[ll]
    return spec.syntax(kw, leq)


def _chain(level: str, thresholds: bool = False) -> list[str]:
    from .levels import normalize_levels_upto
    return normalize_levels_upto(level, thresholds)
