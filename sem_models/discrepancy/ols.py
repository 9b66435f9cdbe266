"""The observed-score OLS polynomial regression (sensitivity analyses and tests)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from .surface import B_NAMES

__all__ = ["polynomial_ols"]


# --------------------------------------------------------------------------------------------
# observed-score OLS polynomial
# --------------------------------------------------------------------------------------------


def polynomial_ols(
    data: pd.DataFrame,
    outcome: str,
    x: str,
    y: str,
    controls: Sequence[str] = (),
    ml: bool = False,
) -> tuple[pd.Series, pd.DataFrame]:
    """Ordinary least squares fit of the second-order polynomial (complete cases).

    Fits ``outcome ~ b0 + b1 x + b2 y + b3 x^2 + b4 xy + b5 y^2 + controls`` on observed
    scores (the polynomial terms are computed here from ``x`` and ``y``; center first).
    ``ml=False`` gives the usual OLS covariance ``s^2 (X'X)^-1`` with ``s^2 = RSS / (n - p)``;
    ``ml=True`` uses ``RSS / n``, which matches normal-theory ML standard errors with fixed
    predictors (lavaan's ``fixed.x = TRUE``).

    Returns
    -------
    (coef, vcov)
        ``coef`` indexed ``b0, b1, ..., b5, *controls``; ``vcov`` labelled the same way.
    """
    cols = [outcome, x, y, *controls]
    sub = data[cols].apply(pd.to_numeric, errors="raise").astype(float).dropna()
    xs, ys = sub[x].to_numpy(), sub[y].to_numpy()
    design = np.column_stack(
        [np.ones(len(sub)), xs, ys, xs * xs, xs * ys, ys * ys]
        + [sub[c].to_numpy() for c in controls]
    )
    z = sub[outcome].to_numpy()
    n, p = design.shape
    if n <= p:
        raise ValueError(f"{n} complete cases are too few for {p} coefficients")
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    resid = z - design @ coef
    s2 = float(resid @ resid) / (n if ml else n - p)
    vcov = s2 * np.linalg.inv(design.T @ design)
    labels = ["b0", *B_NAMES, *controls]
    return (pd.Series(coef, index=labels, name="est"),
            pd.DataFrame(vcov, index=labels, columns=labels))
