"""Data preparation for response surface analysis: centring at a common point, the
polynomial terms, and the shares of cases with enough discrepancy (Shanock et al. 2010)."""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from .surface import SurfaceWarning, _NAME_RE

__all__ = ["discrepancy_shares", "center", "term_names", "polynomial_terms"]


# --------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------


def discrepancy_shares(x: Any, y: Any, threshold: float = 0.5, ddof: int = 1) -> pd.Series:
    """Shares of cases whose standardized discrepancy zY - zX is below, within or above.

    Both predictors are z-scored with their *common* mean and standard deviation (pooled
    over the values of both variables, so that the scales stay commensurate), and
    ``d = zY - zX = (Y - X) / SD_pooled`` is classified as ``below`` (d < -threshold),
    ``within`` (|d| <= threshold) or ``above`` (d > threshold) (Fleenor, McCauley & Brutus,
    1996; Shanock et al., 2010, who suggest that a sizeable share of cases -- e.g. 10% or more
    -- in the discrepant groups is needed before interpreting discrepancy effects).

    Only cases with both values observed are used, for the pooled mean/SD as well.

    Returns
    -------
    pandas.Series
        Index ``below, within, above`` (shares summing to 1). ``.attrs`` holds ``n``,
        ``mean``, ``sd`` and ``threshold``.
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length ({xa.size} vs {ya.size})")
    if threshold < 0:
        raise ValueError("threshold must be non-negative")
    ok = np.isfinite(xa) & np.isfinite(ya)
    n = int(ok.sum())
    if n < 2:
        raise ValueError("need at least two cases with both x and y observed")
    pooled = np.concatenate([xa[ok], ya[ok]])
    mean = float(pooled.mean())
    sd = float(pooled.std(ddof=ddof))
    if not sd > 0:
        raise ValueError("the pooled standard deviation of x and y is 0")
    d = (ya[ok] - xa[ok]) / sd  # = zY - zX with common mean and SD
    below = float(np.mean(d < -threshold))
    above = float(np.mean(d > threshold))
    out = pd.Series(
        {"below": below, "within": 1.0 - below - above, "above": above}, name="share"
    )
    out.attrs.update({"n": n, "mean": mean, "sd": sd, "threshold": float(threshold)})
    return out


def center(
    data: pd.DataFrame,
    x: str,
    y: str,
    how: str | float | tuple[float, float] | None = "pooled",
    midpoint: float | tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Center the two predictors at a common point; returns a new DataFrame.

    Parameters
    ----------
    data
        The data; never modified.
    x, y
        Column names of the two commensurate predictors.
    how
        * ``"pooled"``: subtract the mean of all observed values of x and y pooled together;
        * ``"midpoint"``: subtract the scale midpoint given as ``midpoint`` (a number such as
          2.5 for a 1..4 scale, or the scale's ``(min, max)``);
        * a number: subtract that number from both;
        * ``None`` or ``"none"``: no centering (a copy is returned);
        * ``"variablewise"`` or a pair ``(cx, cy)``: each predictor at its own point -- allowed
          but warned about, because it breaks commensurability (the line X = Y no longer
          means agreement).
    midpoint
        Scale midpoint for ``how="midpoint"``.

    Centering both predictors at one point keeps the scales commensurate (Edwards, 2002;
    Shanock et al., 2010; Humberg et al., 2019). A :class:`SurfaceWarning` is issued when
    x and y are centered at different points, and when 0 lies outside a predictor's observed
    range after centering (the surface parameters then describe a region without data).

    Returns
    -------
    pandas.DataFrame
        A copy with x and y centered. ``.attrs["centering"]`` maps each column to the value
        subtracted (0.0 for no centering).
    """
    for col in (x, y):
        if col not in data.columns:
            raise KeyError(f"column {col!r} not in data")
    out = data.copy()
    xs = pd.to_numeric(out[x], errors="raise").astype(float)
    ys = pd.to_numeric(out[y], errors="raise").astype(float)
    if how is None or (isinstance(how, str) and how.lower() == "none"):
        cx = cy = 0.0
    elif isinstance(how, str):
        key = how.lower()
        if key == "pooled":
            pooled = pd.concat([xs, ys]).dropna()
            if pooled.empty:
                raise ValueError("no observed values to compute a pooled mean")
            cx = cy = float(pooled.mean())
        elif key == "midpoint":
            if midpoint is None:
                raise ValueError("how='midpoint' needs the scale midpoint, e.g. midpoint=2.5 "
                                 "for a 1..4 scale (or midpoint=(1, 4))")
            if isinstance(midpoint, (tuple, list)):
                lo, hi = (float(v) for v in midpoint)
                cx = cy = (lo + hi) / 2.0
            else:
                cx = cy = float(midpoint)
        elif key in ("variablewise", "mean"):
            cx, cy = float(xs.mean()), float(ys.mean())
        else:
            raise ValueError(f"unknown centering {how!r}; use 'pooled', 'midpoint', a number, "
                             "None, 'variablewise' or a pair (cx, cy)")
    elif isinstance(how, (tuple, list)):
        if len(how) != 2:
            raise ValueError("a centering pair must have two values (cx, cy)")
        cx, cy = float(how[0]), float(how[1])
    else:
        cx = cy = float(how)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError("centering values must be finite")
    if cx != cy:
        warnings.warn(
            f"{x!r} and {y!r} are centered at different points ({cx:.4g} vs {cy:.4g}); this "
            "breaks the commensurability of the predictors, so X = Y no longer marks "
            "agreement and a1..a5 lose their congruence interpretation. Center both at a "
            "common point (pooled mean or scale midpoint).",
            SurfaceWarning,
            stacklevel=2,
        )
    out[x] = xs - cx
    out[y] = ys - cy
    for col in (x, y):
        vals = out[col].dropna()
        if vals.empty:
            continue
        lo, hi = float(vals.min()), float(vals.max())
        if lo > 0 or hi < 0:
            warnings.warn(
                f"after centering, 0 lies outside the observed range of {col!r} "
                f"[{lo:.4g}, {hi:.4g}]; the surface parameters (evaluated at X = Y = 0) then "
                "describe a region without data. Consider another centering point.",
                SurfaceWarning,
                stacklevel=2,
            )
    out.attrs["centering"] = {x: cx, y: cy}
    return out


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid model-syntax variable name (start with a letter; "
            "then letters, digits, underscores or dots)"
        )


def term_names(x: str, y: str) -> tuple[str, str, str]:
    """Column names of the second-order terms: ``(f"{x}2", f"{x}_{y}", f"{y}2")``.

    The same naming as the RSA package, e.g. ``t_bond2``, ``t_bond_c_bond``, ``c_bond2``.
    """
    _check_name(x, "predictor name")
    _check_name(y, "predictor name")
    if x == y:
        raise ValueError("x and y must be different columns")
    names = (f"{x}2", f"{x}_{y}", f"{y}2")
    clash = set(names) & {x, y}
    if clash or len(set(names)) < 3:
        raise ValueError(f"the polynomial term names {names} clash with the predictors "
                         f"{x!r}, {y!r}; rename a predictor")
    return names


def polynomial_terms(data: pd.DataFrame, x: str, y: str, overwrite: bool = False) -> pd.DataFrame:
    """Return a copy of ``data`` with the columns X^2, XY and Y^2 added.

    The columns are named by :func:`term_names` (``{x}2``, ``{x}_{y}``, ``{y}2``). Center the
    predictors first (:func:`center`). Raises ``ValueError`` if a column of that name exists,
    unless ``overwrite=True``.
    """
    x2, xy, y2 = term_names(x, y)
    for col in (x, y):
        if col not in data.columns:
            raise KeyError(f"column {col!r} not in data")
    if not overwrite:
        existing = [c for c in (x2, xy, y2) if c in data.columns]
        if existing:
            raise ValueError(f"columns {existing} already exist; pass overwrite=True to replace")
    out = data.copy()
    xs = pd.to_numeric(out[x], errors="raise").astype(float)
    ys = pd.to_numeric(out[y], errors="raise").astype(float)
    out[x2] = xs * xs
    out[xy] = xs * ys
    out[y2] = ys * ys
    return out
