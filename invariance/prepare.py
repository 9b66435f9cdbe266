"""The arguments of :func:`invariance.sequence` / :func:`invariance.longitudinal`, checked
before anything is fitted.

:func:`_prepare` reads the configural model into a :class:`~invariance.spec.MeasurementSpec`,
checks the groups and the data (every indicator observed in every group, enough cases per
group) and, for ordered items, counts their categories by group and occasion and collapses
sparse ones when asked (:mod:`invariance.ordinal`); the other helpers resolve ``levels``,
``long_equal`` / ``group_equal``, ``partial``, ``partial_options`` and ``fit_index``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from sem_models.estimation.data import column_values, split_groups

from .fit_changes import FIT_INDEX_FAMILIES
from .levels import (LEVEL_KEYWORDS, InvarianceError, cumulative_keywords, normalize_level,
                     normalize_levels, normalize_levels_upto)
from .spec import MeasurementSpec

DEFAULT_LEVELS = ("configural", "metric", "scalar", "strict")
_RESERVED = ("group_equal", "group_partial", "std_lv", "meanstructure", "group_labels")


def _group_labels(data: pd.DataFrame, group: Optional[str], given) -> Optional[list]:
    if group is None:
        return None
    if group not in data.columns:
        raise InvarianceError(f"the group column {group!r} is not in the data")
    values = data[group].to_numpy()
    present = list(pd.unique(values[~pd.isna(values)]))
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
    columns = column_values(data, ov)  # numeric NumPy columns as arrays, others as Series
    values = np.column_stack([
        col.astype(float) if isinstance(col, np.ndarray) and col.dtype.kind in "fiu" else
        pd.to_numeric(col, errors="coerce").to_numpy(dtype=float) for col in columns])
    observed = ~np.isnan(values)
    if group is None:
        parts = [(None, np.arange(len(data)))]
    else:
        parts = split_groups(data[group].to_numpy(), np.ones(len(data), bool), labels)
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
