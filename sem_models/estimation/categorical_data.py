"""Data handling for ordinal variables: category codes, empty-category checks, group
order, DataFrame inputs, and :func:`collapse_categories`."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from .data import DataError

__all__ = ["CategoricalDataError", "to_codes", "codes_matrix", "check_levels", "frame_inputs",
           "group_order", "collapse_categories"]


class CategoricalDataError(DataError):
    """Bad ordinal data (empty category, unknown value, constant item, ...)."""


def _where(group) -> str:
    return "" if group is None else f" in group {group!r}"


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def to_codes(values: np.ndarray, levels: Optional[Sequence], name: str, group: Any = None):
    """Map ordinal values (NaN missing) to codes 0..K-1 of ``levels`` (default: the sorted
    distinct observed values). Returns (codes with -1 for missing, levels array)."""
    v = np.asarray(values, float)
    obs = ~np.isnan(v)
    if levels is None:
        lv = np.unique(v[obs])
    else:
        lv = np.asarray(levels, float)
        if np.any(np.diff(lv) <= 0):
            raise CategoricalDataError(f"levels of {name!r} must be strictly increasing")
    codes = np.full(v.shape[0], -1, dtype=np.int64)
    pos = np.searchsorted(lv, v[obs])
    pos_c = np.minimum(pos, max(len(lv) - 1, 0))
    bad = (pos >= len(lv)) | (lv[pos_c] != v[obs]) if len(lv) else np.ones(obs.sum(), bool)
    if np.any(bad):
        raise CategoricalDataError(
            f"ordinal variable {name!r}{_where(group)} has value {_fmt(v[obs][bad][0])} that "
            f"is not one of its categories {[_fmt(x) for x in lv]}")
    codes[obs] = pos_c
    return codes, lv


def codes_matrix(X: np.ndarray, levels: Sequence[Optional[Sequence]]):
    """:func:`to_codes` for the N x m columns of ``X`` at once: (codes N x m with -1 for
    missing, list of level arrays, category counts m x kmax), or None when some value is
    not one of its column's categories, some given levels are not increasing or a column
    has no observed value (the caller then runs :func:`to_codes` per column for the
    error message). Columns with the same category values share one ``searchsorted``."""
    N, m = X.shape
    lvs = []
    for r in range(m):
        if levels[r] is None:
            v = np.sort(X[:, r])                       # the distinct values; NaN sort last
            v = v[:v.size - int(np.count_nonzero(np.isnan(v)))]
            if v.size == 0:
                return None
            lv = v[np.concatenate(([True], v[1:] != v[:-1]))]
        else:
            lv = np.asarray(levels[r], float)
        lvs.append(lv)
    codes = np.empty((N, m), dtype=np.int64)
    same: dict = {}
    for r, lv in enumerate(lvs):
        same.setdefault(lv.tobytes(), []).append(r)
    for cols in same.values():
        lv = lvs[cols[0]]
        if lv.size == 0 or np.any(np.diff(lv) <= 0):
            return None
        V = X[:, cols]
        obs = ~np.isnan(V)
        if np.array_equal(lv, lv[0] + np.arange(lv.size)):
            # consecutive integers (Likert codes): the code is the value minus the lowest
            C = np.where(obs, V - lv[0], 0.0)
            pos = C.astype(np.int64)
            if np.any((pos != C) | (pos < 0) | (pos >= lv.size)):
                return None
        else:
            pos = np.minimum(np.searchsorted(lv, V), lv.size - 1)
            if np.any(obs & (lv[pos] != V)):
                return None
        codes[:, cols] = np.where(obs, pos, -1)
    kmax = max(lv.size for lv in lvs) if lvs else 0
    counts = np.bincount((codes + 1 + (kmax + 1) * np.arange(m)).ravel(),
                         minlength=m * (kmax + 1)).reshape(m, kmax + 1)[:, 1:]
    return codes, lvs, counts


def check_levels(codes: np.ndarray, levels: Sequence, name: str, group: Any = None):
    """Category counts; error on an empty category or fewer than two categories.
    ``levels``: the category values or labels (for the messages)."""
    K = len(levels)
    counts = np.bincount(codes[codes >= 0], minlength=K)
    if K < 2 or np.count_nonzero(counts) < 2:
        raise CategoricalDataError(
            f"ordinal variable {name!r}{_where(group)} has fewer than two observed categories "
            f"(frequencies {dict(zip(map(_fmt, levels), counts.tolist()))})")
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        cats = ", ".join(_fmt(levels[k]) for k in empty)
        raise CategoricalDataError(
            f"category {cats} of ordinal variable {name!r} is empty{_where(group)} "
            f"(frequencies {dict(zip(map(_fmt, levels), counts.tolist()))}); merge adjacent "
            "categories in all groups, e.g. with collapse_categories()")
    return counts


def group_order(data: pd.DataFrame, group: Optional[str]):
    """[(label, row mask)] with groups in order of first appearance (lavaan's order)."""
    if group is None:
        return [(None, np.ones(len(data), bool))]
    if group not in data.columns:
        raise CategoricalDataError(f"group column {group!r} is not in the data")
    g = data[group]
    if g.isna().any():
        raise CategoricalDataError(f"group column {group!r} has missing values")
    labels = pd.unique(g)
    return [(lab, (g == lab).to_numpy()) for lab in labels]


def _column_values(s: pd.Series, name: str, ordinal: bool):
    """(float values, levels or None) of one column."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        if not s.cat.ordered:
            raise CategoricalDataError(
                f"column {name!r} is an unordered categorical; make it an ordered Categorical "
                "or numeric codes")
        codes = s.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes, list(s.cat.categories)
    if s.dtype == bool:
        return s.to_numpy(dtype=float), None
    if not pd.api.types.is_numeric_dtype(s.dtype):
        raise CategoricalDataError(
            f"column {name!r} is not numeric (dtype {s.dtype}); ordinal variables must be "
            "numeric codes or an ordered pandas Categorical")
    if isinstance(s.dtype, np.dtype):              # plain numpy column: NaN is missing
        return np.asarray(s.to_numpy(), dtype=float), None
    return s.to_numpy(dtype=float, na_value=np.nan), None


def frame_inputs(data: pd.DataFrame, variables, ordered, exo, group) -> dict:
    """Arrays for :func:`categorical_stats` from a DataFrame (does not modify ``data``)."""
    if not isinstance(data, pd.DataFrame):
        raise CategoricalDataError("data must be a pandas DataFrame")
    exo = [] if exo is None else ([exo] if isinstance(exo, str) else list(exo))
    skip = set(exo) | ({group} if group is not None else set())
    variables = ([c for c in data.columns if c not in skip] if variables is None
                 else list(variables))
    for c in list(variables) + exo:
        if c not in data.columns:
            raise CategoricalDataError(f"column {c!r} is not in the data")
    if ordered is None or ordered is True:
        ordset = set(variables)
    elif ordered is False:
        ordset = set()
    else:
        ordset = {ordered} if isinstance(ordered, str) else set(ordered)
        unknown = ordset - set(variables)
        if unknown:
            raise CategoricalDataError(f"ordered variables {sorted(unknown)} are not among the "
                                       f"analysed variables {variables}")
    series = {c: data[c] for c in variables}
    for c, s in series.items():
        if isinstance(s.dtype, pd.CategoricalDtype) and s.cat.ordered:
            ordset.add(c)
    X = np.empty((len(data), len(variables)))
    levels = []
    labels = []
    for j, c in enumerate(variables):
        vals, cats = _column_values(series[c], c, c in ordset)
        X[:, j] = vals
        if c not in ordset:
            if cats is not None:
                raise CategoricalDataError(f"column {c!r} is an ordered Categorical and cannot "
                                           "be continuous")
            levels.append(None)
            labels.append(None)
        elif cats is not None:
            levels.append(np.arange(len(cats), dtype=float))
            labels.append(list(cats))
        else:
            v = np.sort(vals)                      # the distinct values; NaN sort last
            v = v[:v.size - int(np.count_nonzero(np.isnan(v)))]
            lv = v[np.concatenate(([True], v[1:] != v[:-1]))] if v.size else v
            levels.append(lv)
            labels.append(None)
    E = None
    if exo:
        E = np.empty((len(data), len(exo)))
        for k, c in enumerate(exo):
            s = data[c]
            if not pd.api.types.is_numeric_dtype(s.dtype) or isinstance(s.dtype,
                                                                        pd.CategoricalDtype):
                raise CategoricalDataError(f"covariate {c!r} must be numeric")
            E[:, k] = s.to_numpy(dtype=float, na_value=np.nan)
    return dict(X=X, ordered=[c in ordset for c in variables], names=[str(c) for c in variables],
                levels=levels, level_labels=labels, exo=E, exo_names=[str(c) for c in exo])


# ---------------------------------------------------------------------------------------
# collapsing categories
# ---------------------------------------------------------------------------------------
def _validate_mapping(col: str, lv: list, mapping: Mapping) -> dict:
    """Full old -> new map over the sorted levels ``lv``; merges must be adjacent."""
    full = {old: mapping.get(old, old) for old in lv}
    unknown = [k for k in mapping if k not in full]
    if unknown:
        raise CategoricalDataError(f"collapse_categories: {unknown} are not categories of "
                                   f"{col!r} ({lv})")
    # each new value's pre-image must be a run of adjacent old categories, runs in order
    seq = [full[o] for o in lv]
    seen = []
    for v in seq:
        if seen and v == seen[-1]:
            continue
        if v in seen:
            raise CategoricalDataError(
                f"collapse_categories: the mapping of {col!r} merges non-adjacent categories "
                f"({dict(full)})")
        seen.append(v)
    for a, b in zip(seen, seen[1:]):
        try:
            if not a < b:
                raise CategoricalDataError(
                    f"collapse_categories: the mapping of {col!r} changes the order of the "
                    f"categories ({dict(full)})")
        except TypeError as exc:
            raise CategoricalDataError(f"collapse_categories: new categories of {col!r} are "
                                       "not comparable") from exc
    return full


def _auto_mapping(col: str, lv: list, counts: np.ndarray, min_count: int) -> dict:
    """Merge categories with fewer than ``min_count`` cases (in some group) into the adjacent
    category with the smaller total count (ties: the lower one); repeat until none is left.
    ``counts``: groups x categories."""
    members = [[o] for o in lv]
    cnt = counts.astype(float).copy()
    while True:
        k = cnt.shape[1]
        if k < 2:
            raise CategoricalDataError(
                f"collapse_categories: {col!r} would be left with a single category")
        low = np.flatnonzero((cnt < min_count).any(axis=0))
        if low.size == 0:
            break
        # the sparsest offending category first (smallest minimum over groups)
        i = int(low[np.argmin(cnt[:, low].min(axis=0))])
        if i == 0:
            jn = 1
        elif i == k - 1:
            jn = k - 2
        else:
            tl, tr = cnt[:, i - 1].sum(), cnt[:, i + 1].sum()
            jn = i - 1 if tl <= tr else i + 1
        lo, hi = min(i, jn), max(i, jn)
        members[lo] = members[lo] + members[hi]
        cnt[:, lo] += cnt[:, hi]
        del members[hi]
        cnt = np.delete(cnt, hi, axis=1)
    mapping = {}
    for run in members:
        # the merged run takes the value of its most frequent member (ties: the lowest)
        tot = [counts[:, lv.index(o)].sum() for o in run]
        target = run[int(np.argmax(tot))]
        for o in run:
            mapping[o] = target
    return mapping


def collapse_categories(data: pd.DataFrame, columns: Union[str, Sequence[str]],
                        mapping_or_rule: Union[str, int, Mapping] = "empty", *,
                        group: Optional[str] = None) -> pd.DataFrame:
    """Merge adjacent categories of ordinal columns; returns a NEW DataFrame.

    ``mapping_or_rule``:

    * a mapping ``{old: new}`` applied to every column in ``columns``, or
      ``{column: {old: new}}`` per column; the categories merged into one value must be
      adjacent and the order must be kept (e.g. ``{1: 2}`` merges category 1 into 2);
    * ``"empty"``: merge every category that is empty in some group (``group=``) into an
      adjacent category (the neighbour with fewer cases); the merged run takes the value
      of its most frequent category;
    * an integer ``m``: the same for categories with fewer than ``m`` cases in some group.

    The input is never modified. What was merged is recorded in
    ``result.attrs["collapsed_categories"]`` as ``{column: {old: new}}`` (only changed
    categories; composed with an earlier record). Ordered Categorical columns keep their
    dtype, with the absorbed categories removed.
    """
    if not isinstance(data, pd.DataFrame):
        raise CategoricalDataError("data must be a pandas DataFrame")
    columns = [columns] if isinstance(columns, str) else list(columns)
    for c in columns:
        if c not in data.columns:
            raise CategoricalDataError(f"column {c!r} is not in the data")
    groups = group_order(data, group)
    out = data.copy(deep=True)
    out.attrs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.attrs.items()}
    record = {k: dict(v) for k, v in data.attrs.get("collapsed_categories", {}).items()}
    per_column = (isinstance(mapping_or_rule, Mapping)
                  and all(k in columns for k in mapping_or_rule)
                  and all(isinstance(v, Mapping) for v in mapping_or_rule.values())
                  and len(mapping_or_rule) > 0)
    for c in columns:
        s = data[c]
        is_cat = isinstance(s.dtype, pd.CategoricalDtype)
        if is_cat:
            if not s.cat.ordered:
                raise CategoricalDataError(f"column {c!r} is an unordered categorical")
            lv = list(s.cat.categories)
            vals = s
        else:
            if not pd.api.types.is_numeric_dtype(s.dtype):
                raise CategoricalDataError(f"column {c!r} is not numeric or ordered categorical")
            lv = sorted(pd.unique(s.dropna()).tolist())
            vals = s
        if isinstance(mapping_or_rule, Mapping):
            m = mapping_or_rule.get(c, {}) if per_column else mapping_or_rule
            full = _validate_mapping(c, lv, m)
        else:
            if isinstance(mapping_or_rule, str):
                if mapping_or_rule != "empty":
                    raise CategoricalDataError(f"unknown rule {mapping_or_rule!r}; use 'empty', "
                                               "an integer minimum count or a mapping")
                min_count = 1
            elif isinstance(mapping_or_rule, (int, np.integer)) and mapping_or_rule >= 1:
                min_count = int(mapping_or_rule)
            else:
                raise CategoricalDataError("mapping_or_rule must be a mapping, 'empty' or a "
                                           "positive integer")
            counts = np.array([[int(((vals == o) & rows).sum()) for o in lv]
                               for _, rows in groups])
            full = _auto_mapping(c, lv, counts, min_count)
        changed = {o: n for o, n in full.items() if o != n}
        if not changed:
            continue
        if is_cat:
            if any(n not in lv for n in changed.values()):
                raise CategoricalDataError(
                    f"collapse_categories: categories of {c!r} can only be merged into existing "
                    f"categories {lv}")
            new_cats = [o for o in lv if o not in changed]
            mapped = s.astype(object).map(lambda x: full.get(x, x) if pd.notna(x) else x)
            out[c] = pd.Series(pd.Categorical(mapped, categories=new_cats, ordered=True),
                               index=s.index)
        else:
            mapped = s.map(lambda x: full.get(x, x) if pd.notna(x) else x)
            if (pd.api.types.is_integer_dtype(s.dtype)
                    and all(float(n).is_integer() for n in changed.values())):
                mapped = mapped.astype(s.dtype)
            out[c] = mapped
        prev = record.get(c, {})
        composed = {o: changed.get(n, n) for o, n in prev.items()}
        for o, n in changed.items():
            composed.setdefault(o, n)
        record[c] = {o: n for o, n in composed.items() if o != n}
    out.attrs["collapsed_categories"] = record
    return out
