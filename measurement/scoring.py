"""Observed scores: reverse keys and scale means per informant x occasion x dimension."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from .design import Design

__all__ = ["reverse_score", "scale_means"]


def reverse_score(data: pd.DataFrame, design: Design,
                  scale: Sequence[float] = (1, 4)) -> pd.DataFrame:
    """A new DataFrame with the design's reverse-keyed items recoded as ``min + max - x``.

    ``scale`` is the response range ``(min, max)`` (default 1..4, so ``5 - x``). The caller's
    DataFrame is not modified; missing values stay missing. Raises ``ValueError`` if a
    reverse-keyed column is absent or holds values outside the scale.
    """
    lo, hi = float(scale[0]), float(scale[1])
    if not lo < hi:
        raise ValueError(f"scale must be (min, max) with min < max, got {tuple(scale)}")
    cols = design.reverse_columns()
    design.check(data, cols)
    out = data.copy(deep=True)
    for c in cols:
        x = pd.to_numeric(out[c], errors="raise").astype(float)
        bad = x.notna() & ((x < lo) | (x > hi))
        if bad.any():
            raise ValueError(f"column {c!r} has values outside the scale {lo:g}..{hi:g} "
                             f"(e.g. {x[bad].iloc[0]:g}); pass scale=(min, max)")
        out[c] = lo + hi - x
    return out


def scale_means(data: pd.DataFrame, design: Design, *,
                min_items: Optional[Union[int, float]] = None, level: str = "state",
                reverse: bool = False, scale: Sequence[float] = (1, 4)) -> pd.DataFrame:
    """Mean item score per informant x occasion x dimension (or per informant x dimension).

    Parameters
    ----------
    data : item data, already reverse-scored (see :func:`reverse_score`) unless
        ``reverse=True``.
    min_items : how many items must be answered for a mean: ``None`` (all items), an int
        (count, capped at the scale's length) or a float in (0, 1] (share of the scale's
        items, rounded up; ``0.5`` = half, ``1.0`` = all). With fewer
        answered items the mean is missing; otherwise it is the mean of the answered items.
    level : ``"state"`` -- one mean per informant x occasion x dimension, columns named like
        the state factors (``c_mid_bond``); ``"trait"`` -- one mean per informant x dimension
        over all occasions' items, named like the trait factors (``c_bond``).
    reverse : reverse-score the items first (with ``scale``).

    Returns a new DataFrame with the same index as ``data``.
    """
    design.check(data)
    if reverse:
        data = reverse_score(data, design, scale=scale)
    if level not in ("state", "trait"):
        raise ValueError("level must be 'state' or 'trait'")
    groups: dict[str, list[str]] = {}
    for i in design.informants:
        if level == "trait":
            for d in design.dimensions:
                groups[design.factor(i, d)] = design.columns(informant=i, dimension=d)
        else:
            for o in design.occasions:
                for d in design.dimensions:
                    groups[design.factor(i, d, o)] = design.columns(informant=i, occasion=o,
                                                                    dimension=d)
    out = {}
    for name, cols in groups.items():
        k = len(cols)
        if min_items is None:
            need = k
        elif isinstance(min_items, float):
            if not 0 < min_items <= 1:
                raise ValueError("a float min_items is a share of the items and must be in "
                                 f"(0, 1], got {min_items}")
            need = math.ceil(min_items * k - 1e-12)
        else:
            need = int(min_items)
            if need < 1:
                raise ValueError(f"min_items must be at least 1, got {min_items}")
        X = data[cols].apply(pd.to_numeric, errors="raise").astype(float)
        answered = X.notna().sum(axis=1)
        out[name] = X.mean(axis=1).where(answered >= min(need, k), np.nan)
    return pd.DataFrame(out, index=data.index)
