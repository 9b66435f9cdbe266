"""Ordinal indicators in invariance sequences: the items' categories before fitting, the
collapse of sparse categories applied the same way in every group and at every occasion, the
default levels of each identification convention and the robust fit indices used for the
decisions.

**Categories.**  Thresholds can only be held equal across groups (occasions) when every
category of an item is observed in every group (at every occasion): a category that is empty
in one cell has no threshold there.  :func:`category_frequencies` counts the categories of
each item by group and occasion and flags the empty cells; :func:`collapse_categories` merges
a sparse category into its neighbour with one mapping per item for all its groups and
occasions (the same item at several occasions is one "chain"), so the items keep the same
categories everywhere (Wu & Estabrook 2016; semTools' ``measEq.syntax`` refuses items whose
numbers of categories differ between occasions).

**Robust fit indices at every step.**  lavaan 0.6-14 reports the robust CFI / TLI / RMSEA of a
categorical fit as Savalei's (2021) catML indices: the normal-theory ML discrepancy between
the polychoric correlation matrix and the implied correlations at the (D)WLS estimates,
with the thresholds treated as saturated (lavaan's ``lav_fit_catml_dwls``).  Once thresholds
are held equal across groups that is no longer defined: the threshold structure then carries
misfit that a correlation-only statistic cannot see, and the scale factors (delta) or
residual variances (theta) freed in later groups for identification are not identified by
the correlations alone.  lavaan's code fails there (the threshold rows are dropped from the
catML parameter table while the equality constraints that refer to them are kept) and
reports NA (lavaan issue #386).  This package keeps lavaan's values (``cfi_robust``,
``tli_robust``, ``rmsea_robust``: NaN at those steps) and adds indices defined at every step,
:func:`robust_wls_measures`: the robust CFI / TLI / RMSEA of the fit's own (D)WLS statistic,
``T - c df`` in place of ``T - df`` with ``c = tr(U Gamma) / df`` for the model and the
independence model (Brosseau-Liard, Savalei & Li 2012, Multivariate Behavioral Research 47,
904-930; Brosseau-Liard & Savalei 2014, ibid. 49, 460-470; lavaan's formula for continuous
(D)WLS data, ``c.hat = scaling.factor * (df - shift) / df`` for the scaled-shifted test).
They include the threshold misfit; their population values depend on the DWLS weights
(Savalei 2021), which are the same at every step of a sequence (they come from the data), so
the changes between steps are comparable.  The ordinal sequences decide on these
(``fit_index="robust_wls"``).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from sem_models.estimation.categorical_data import CategoricalDataError

from .spec import InvarianceError

__all__ = ["category_frequencies", "collapse_categories", "ordered_items", "default_levels",
           "robust_wls_measures", "check_categories", "item_chains"]


# ----------------------------------------------------------------------------- items
def ordered_items(ordered, indicators: Sequence[str], data: pd.DataFrame) -> list[str]:
    """The ordered indicators: ``True`` (all indicators), a name or a list of names; ordered
    pandas Categorical indicator columns count as ordered too."""
    if ordered is None or ordered is False:
        chosen: list = []
    elif ordered is True:
        chosen = list(indicators)
    else:
        items = [ordered] if isinstance(ordered, str) else list(ordered)
        bad = [v for v in items if v not in indicators]
        if bad:
            raise InvarianceError(f"ordered variable(s) {bad} are not indicators of the model "
                                  f"({list(indicators)[:12]}...)")
        chosen = items
    for v in indicators:
        if v in data.columns and isinstance(data[v].dtype, pd.CategoricalDtype) \
                and data[v].cat.ordered and v not in chosen:
            chosen.append(v)
    return [v for v in indicators if v in chosen]


def item_chains(items: Sequence[str], chains: Optional[Iterable[Sequence[str]]] = None
                ) -> list[list[str]]:
    """The items grouped into chains (the same item at its occasions); items in no chain
    are chains of their own."""
    out, seen = [], set()
    for ch in chains or ():
        ch = [v for v in ch if v in items]
        if ch:
            out.append(ch)
            seen.update(ch)
    out.extend([v] for v in items if v not in seen)
    return out


def _values(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def _cells(data: pd.DataFrame, group: Optional[str], group_labels=None):
    if group is None:
        return [(None, np.ones(len(data), bool))]
    labels = list(group_labels) if group_labels is not None else \
        list(pd.unique(data[group].dropna()))
    g = data[group].to_numpy()
    return [(lab, g == lab) for lab in labels]


# ----------------------------------------------------------------------------- diagnostics
def category_frequencies(data: pd.DataFrame, items: Sequence[str], group: Optional[str] = None,
                         chains: Optional[Iterable[Sequence[str]]] = None,
                         group_labels: Optional[Sequence] = None) -> pd.DataFrame:
    """Category counts of ordinal items by group (and occasion), empty cells flagged.

    ``chains``: lists of columns that are the same item at successive occasions (their
    categories are pooled: a category observed at one occasion and not at another is an
    empty cell).  One row per item x group x category of the item's chain: ``chain`` (the
    first column of the chain), ``occasion`` (1-based position in the chain), ``item``,
    ``group``, ``category``, ``count``, ``proportion`` (within item and group) and ``empty``
    (True where the count is 0).
    """
    items = list(items)
    absent = [v for v in items if v not in data.columns]
    if absent:
        raise CategoricalDataError(f"item(s) {absent} are not columns of the data")
    cells = _cells(data, group, group_labels)
    rows = []
    for chain in item_chains(items, chains):
        vals = {v: _values(data[v]) for v in chain}
        levels = np.unique(np.concatenate([x[~np.isnan(x)] for x in vals.values()]))
        for t, v in enumerate(chain, start=1):
            x = vals[v]
            for lab, sel in cells:
                xs = x[sel]
                xs = xs[~np.isnan(xs)]
                counts = (xs[:, None] == levels[None, :]).sum(axis=0)
                n = max(int(counts.sum()), 1)
                for cat, cnt in zip(levels, counts):
                    rows.append({"chain": chain[0], "occasion": t, "item": v, "group": lab,
                                 "category": cat, "count": int(cnt),
                                 "proportion": float(cnt) / n, "empty": bool(cnt == 0)})
    out = pd.DataFrame(rows, columns=["chain", "occasion", "item", "group", "category",
                                      "count", "proportion", "empty"])
    if group is None:
        out = out.drop(columns=["group"])
    return out


def check_categories(freq: pd.DataFrame) -> None:
    """Raise :class:`~sem_models.estimation.categorical_data.CategoricalDataError` naming the
    empty cells of a :func:`category_frequencies` table (items whose categories are not all
    observed in every group and at every occasion)."""
    empty = freq[freq["empty"]]
    if empty.empty:
        return
    parts = []
    for _, r in empty.head(6).iterrows():
        where = f" in group {r['group']!r}" if "group" in empty.columns else ""
        occ = f" (occasion {int(r['occasion'])} of {r['chain']})" if r["item"] != r["chain"] \
            or (freq["chain"] == r["chain"]).sum() > (freq["item"] == r["item"]).sum() else ""
        cat = r["category"]
        cat = int(cat) if float(cat).is_integer() else cat
        parts.append(f"{r['item']} category {cat}{where}{occ}")
    more = f" and {len(empty) - 6} more" if len(empty) > 6 else ""
    raise CategoricalDataError(
        "ordinal items have categories that are empty in some group or at some occasion, so "
        "their thresholds cannot be held equal: " + "; ".join(parts) + more + ". Merge sparse "
        "categories the same way everywhere: collapse='empty' (or a minimum count) in the "
        "sequence, or invariance.collapse_categories(data, items, group=..., chains=...)")


def collapse_categories(data: pd.DataFrame, items: Sequence[str],
                        rule: Union[str, int] = "empty", group: Optional[str] = None,
                        chains: Optional[Iterable[Sequence[str]]] = None,
                        group_labels: Optional[Sequence] = None) -> pd.DataFrame:
    """Merge sparse categories with one mapping per item for all its groups and occasions.

    ``rule``: ``"empty"`` merges every category that is empty in some group x occasion cell
    into its neighbour (the adjacent category with fewer cases), repeatedly; an integer ``m``
    does the same for categories with fewer than ``m`` cases in some cell (the rule of
    :func:`sem_models.estimation.categorical.collapse_categories`, applied to the counts of
    all cells of the item's chain).  Returns a new DataFrame (the input is not modified) with
    ``attrs["collapsed_categories"]`` = ``{column: {old: new}}``; the fits record it.
    """
    from sem_models.estimation.categorical_data import _auto_mapping
    from sem_models.estimation.categorical_data import collapse_categories as _collapse

    if isinstance(rule, str):
        if rule != "empty":
            raise CategoricalDataError(f"unknown collapse rule {rule!r}; use 'empty' or a "
                                       "minimum count")
        min_count = 1
    elif isinstance(rule, (int, np.integer)) and not isinstance(rule, bool) and rule >= 1:
        min_count = int(rule)
    else:
        raise CategoricalDataError(f"collapse must be 'empty' or a positive minimum count, "
                                   f"got {rule!r}")
    items = list(items)
    absent = [v for v in items if v not in data.columns]
    if absent:
        raise CategoricalDataError(f"item(s) {absent} are not columns of the data")
    bad = [v for v in items if isinstance(data[v].dtype, pd.CategoricalDtype)]
    if bad:
        raise CategoricalDataError(f"collapse_categories here needs numeric item codes; "
                                   f"{bad[:3]} are Categorical (use their codes)")
    cells = _cells(data, group, group_labels)
    mapping: dict = {}
    for chain in item_chains(items, chains):
        vals = {v: _values(data[v]) for v in chain}
        levels = np.unique(np.concatenate([x[~np.isnan(x)] for x in vals.values()]))
        counts = np.array([[int((vals[v][sel] == lv).sum()) for lv in levels]
                           for v in chain for _, sel in cells])
        lv = [float(x) for x in levels]
        full = _auto_mapping(" / ".join(chain), lv, counts, min_count)
        for v in chain:
            own = set(float(x) for x in np.unique(vals[v][~np.isnan(vals[v])]))
            m = {o: n for o, n in full.items() if o != n and o in own}
            if m:
                mapping[v] = m
    if not mapping:
        out = data.copy()
        out.attrs = dict(data.attrs)
        out.attrs.setdefault("collapsed_categories", {})
        return out
    return _collapse(data, list(mapping), mapping)


# ----------------------------------------------------------------------------- levels
def default_levels(id_cat: str, parameterization: str) -> tuple:
    """The measurement levels of an ordinal sequence under an identification convention:
    Wu & Estabrook (2016) test thresholds first (configural, thresholds, metric, scalar);
    the Mplus, Millsap-Tein and LISREL conventions go configural, metric, scalar (thresholds
    with the intercepts); strict (residual variances) only under theta."""
    out = ["configural"]
    if id_cat == "wu_estabrook2016":
        out.append("thresholds")
    out += ["metric", "scalar"]
    if parameterization == "theta":
        out.append("strict")
    return tuple(out)


# ----------------------------------------------------------------------------- indices
ROBUST_WLS = ("cfi_robust_wls", "tli_robust_wls", "rmsea_robust_wls")


def robust_wls_measures(fit) -> dict:
    """Robust CFI, TLI and RMSEA of a (D)WLS fit from its own test statistic (see the module
    docstring): ``cfi_robust_wls``, ``tli_robust_wls``, ``rmsea_robust_wls``; NaN without a
    robust (mean- or mean-and-variance-adjusted) test."""
    from sem_models.inference.fitmeasures import rmsea_measures
    from sem_models.inference.wls_inference import _c_hat, _n_inference, _robust_incremental

    nan = {k: np.nan for k in ROBUST_WLS}
    if not hasattr(fit, "_test_statistics") or not hasattr(fit, "_baseline_statistics"):
        return nan
    stats, base = fit._test_statistics(), fit._baseline_statistics()
    if "chisq_scaled" not in stats or "chisq_scaled" not in base:
        return nan
    X2, df = float(stats["chisq"]), float(stats["df"])
    c = _c_hat(stats, df)
    c0 = _c_hat(base, float(base["df"]))
    inc = _robust_incremental(X2, df, c, float(base["chisq"]), float(base["df"]), c0,
                              fallback=stats.get("scaled_test") == "satorra.bentler")
    rmsea = rmsea_measures(X2, df, _n_inference(fit), fit.n_groups, c_hat=c)["rmsea"] \
        if np.isfinite(c) else np.nan
    return {"cfi_robust_wls": float(inc["cfi_robust"]), "tli_robust_wls": float(inc["tli_robust"]),
            "rmsea_robust_wls": float(rmsea)}


def nthresholds(data: pd.DataFrame, items: Sequence[str]) -> dict:
    """Number of thresholds (distinct observed values - 1) of each item."""
    out = {}
    for v in items:
        x = _values(data[v])
        k = len(np.unique(x[~np.isnan(x)]))
        if k < 2:
            raise CategoricalDataError(f"ordinal item {v!r} has fewer than two observed "
                                       "categories")
        out[v] = k - 1
    return out


def _chain_map(spec) -> list[list[str]]:
    """The chains of a :class:`~invariance.spec.MeasurementSpec` (k-th items of the factors
    of each construct measured at more than one occasion)."""
    out = []
    for c, fl in spec.constructs.items():
        if len(fl) < 2:
            continue
        for k in range(len(spec.indicators[fl[0]])):
            out.append([spec.indicators[f][k] for f in fl])
    return out


def chains_of(spec) -> list[list[str]]:
    """Public alias of the spec's item chains."""
    return _chain_map(spec)


def mapping_summary(record: Mapping) -> str:
    """``"u1: 1->2; u3: 5->4"`` from a ``collapsed_categories`` record."""
    def f(x):
        return str(int(x)) if isinstance(x, float) and float(x).is_integer() else str(x)
    return "; ".join(f"{c}: " + ", ".join(f"{f(o)}->{f(n)}" for o, n in m.items())
                     for c, m in record.items())
