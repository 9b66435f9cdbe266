"""Response surface analysis (RSA) for second-order polynomial regression.

The polynomial regression of an outcome ``Z`` on two commensurate predictors ``X`` and ``Y``

    Z = b0 + b1 X + b2 Y + b3 X^2 + b4 XY + b5 Y^2 (+ controls)

is summarised by surface parameters along the line of congruence (LOC, ``X = Y``) and the
line of incongruence (LOIC, ``X = -Y``), by the stationary point and by the principal axes of
the surface (Edwards & Parry, 1993; Edwards, 2002; Shanock et al., 2010). This module holds
the math only and does not depend on the SEM engine:

* :func:`surface_parameters` -- a1..a5 as linear combinations ``a = C b`` with ``Var(a) = C V C'``;
* :func:`stationary_point`, :func:`principal_axes`, :func:`surface_table` -- nonlinear
  quantities with delta-method standard errors from analytic gradients;
* :func:`congruence_check` -- the set of conditions for a congruence effect
  (Humberg, Nestler & Back, 2019);
* :func:`discrepancy_shares`, :func:`center`, :func:`polynomial_terms` -- data preparation;
* :func:`polynomial_syntax`, :func:`rsa_models`, :data:`RSA_MODELS` -- lavaan model syntax for
  the full polynomial and the constrained models of the RSA package (Schönbrodt & Humberg);
* :func:`aicc`, :func:`aicc_table` -- small-sample corrected AIC for model comparison;
* :func:`surface_group_tests` -- Wald tests that surface parameters differ between groups;
* :func:`bootstrap_surface` -- percentile / BCa bootstrap intervals for any statistic;
* :func:`polynomial_ols` -- the observed-score OLS polynomial (sensitivity analyses, tests).

References
----------
Burnham, K. P., & Anderson, D. R. (2002). *Model selection and multimodel inference* (2nd ed.).
    Springer.
Edwards, J. R. (2002). Alternatives to difference scores: Polynomial regression analysis and
    response surface methodology. In F. Drasgow & N. Schmitt (Eds.), *Measuring and analyzing
    behavior in organizations* (pp. 350-400). Jossey-Bass.
Edwards, J. R., & Parry, M. E. (1993). On the use of polynomial regression equations as an
    alternative to difference scores in organizational research. *Academy of Management
    Journal, 36*(6), 1577-1613.
Efron, B. (1987). Better bootstrap confidence intervals. *Journal of the American Statistical
    Association, 82*(397), 171-185.
Efron, B., & Tibshirani, R. J. (1993). *An introduction to the bootstrap*. Chapman & Hall.
Fleenor, J. W., McCauley, C. D., & Brutus, S. (1996). Self-other rating agreement and leader
    effectiveness. *The Leadership Quarterly, 7*(4), 487-506.
Humberg, S., Nestler, S., & Back, M. D. (2019). Response surface analysis in personality and
    social psychology: Checklist and clarifications for the case of congruence hypotheses.
    *Social Psychological and Personality Science, 10*(3), 409-419.
Hurvich, C. M., & Tsai, C.-L. (1989). Regression and time series model selection in small
    samples. *Biometrika, 76*(2), 297-307.
Schönbrodt, F. D., & Humberg, S. RSA: An R package for response surface analysis
    (CRAN package ``RSA``; documentation of ``RSA()``, argument ``models``).
    https://CRAN.R-project.org/package=RSA
Schönbrodt, F. D., Humberg, S., & Nestler, S. (2018). Testing similarity effects with dyadic
    response surface analysis. *European Journal of Personality, 32*(6), 627-641.
Shanock, L. R., Baran, B. E., Gentry, W. A., Pattison, S. C., & Heggestad, E. D. (2010).
    Polynomial regression with response surface analysis: A powerful approach for examining
    moderation and overcoming limitations of difference scores. *Journal of Business and
    Psychology, 25*(4), 543-554.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "SurfaceWarning",
    "B_NAMES",
    "SURFACE_NAMES",
    "NONLINEAR_NAMES",
    "SURFACE_MATRIX",
    "RSAModel",
    "RSA_MODELS",
    "DEFAULT_MODELS",
    "surface_parameters",
    "nonlinear_quantities",
    "nonlinear_jacobian",
    "stationary_point",
    "principal_axes",
    "surface_table",
    "surface_quantities",
    "congruence_check",
    "discrepancy_shares",
    "center",
    "term_names",
    "polynomial_terms",
    "coefficient_labels",
    "polynomial_syntax",
    "rsa_models",
    "is_nested",
    "aicc",
    "aicc_table",
    "surface_group_tests",
    "BootstrapResult",
    "bootstrap_surface",
    "polynomial_ols",
]


class SurfaceWarning(UserWarning):
    """Warnings about response surface quantities, centering and commensurability."""


#: Labels of the five polynomial coefficients (X, Y, X^2, XY, Y^2).
B_NAMES: tuple[str, ...] = ("b1", "b2", "b3", "b4", "b5")
#: Names of the surface parameters.
SURFACE_NAMES: tuple[str, ...] = ("a1", "a2", "a3", "a4", "a5")
#: Names of the nonlinear surface quantities (stationary point, principal axes).
NONLINEAR_NAMES: tuple[str, ...] = ("X0", "Y0", "p10", "p11", "p20", "p21")
_TABLE_COLUMNS = ["est", "se", "z", "pvalue", "ci_lower", "ci_upper"]

#: ``a = SURFACE_MATRIX @ b``:
#: a1 = b1 + b2 (slope along the LOC), a2 = b3 + b4 + b5 (curvature along the LOC),
#: a3 = b1 - b2 (slope along the LOIC), a4 = b3 - b4 + b5 (curvature along the LOIC),
#: a5 = b3 - b5 (asymmetry; Schönbrodt, Humberg & Nestler, 2018; Humberg et al., 2019).
SURFACE_MATRIX: np.ndarray = np.array(
    [
        [1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 1.0, 1.0],
        [1.0, -1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, -1.0, 1.0],
        [0.0, 0.0, 1.0, 0.0, -1.0],
    ]
)
SURFACE_MATRIX.setflags(write=False)

_DEFINED_A = (
    "a1 := b1 + b2",
    "a2 := b3 + b4 + b5",
    "a3 := b1 - b2",
    "a4 := b3 - b4 + b5",
    "a5 := b3 - b5",
)
_DEFINED_NONLINEAR = (
    "X0 := (b2*b4 - 2*b1*b5) / (4*b3*b5 - b4^2)",
    "Y0 := (b1*b4 - 2*b2*b3) / (4*b3*b5 - b4^2)",
    "p11 := (b5 - b3 + sqrt((b3 - b5)^2 + b4^2)) / b4",
    "p10 := Y0 - p11*X0",
    "p21 := (b5 - b3 - sqrt((b3 - b5)^2 + b4^2)) / b4",
    "p20 := Y0 - p21*X0",
)

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


# --------------------------------------------------------------------------------------------
# coercion helpers
# --------------------------------------------------------------------------------------------


def _coef_vector(b: Any, names: Sequence[str]) -> np.ndarray:
    """Return the coefficients named ``names`` from ``b`` as a float vector.

    ``b`` may be a mapping / Series holding the names, or an array-like whose length equals
    ``len(names)`` (taken in order).
    """
    k = len(names)
    if isinstance(b, pd.Series):
        if all(n in b.index for n in names):
            return b.loc[list(names)].to_numpy(dtype=float)
        if len(b) == k and isinstance(b.index, pd.RangeIndex):
            return b.to_numpy(dtype=float)
        missing = [n for n in names if n not in b.index]
        raise KeyError(f"coefficients {missing} not found in the Series index {list(b.index)}")
    if isinstance(b, Mapping):
        missing = [n for n in names if n not in b]
        if missing:
            raise KeyError(f"coefficients {missing} not found in the mapping keys {list(b)}")
        return np.array([float(b[n]) for n in names])
    arr = np.asarray(b, dtype=float).ravel()
    if arr.shape[0] != k:
        raise ValueError(f"expected {k} coefficients {tuple(names)}, got {arr.shape[0]}")
    return arr


def _cov_matrix(vcov: Any, names: Sequence[str]) -> np.ndarray:
    """Return the covariance matrix of the coefficients ``names`` as a float array."""
    return _cov_and_scale(vcov, names)[0]


def _cov_and_scale(vcov: Any, names: Sequence[str]) -> tuple[np.ndarray, float]:
    """The covariance matrix of ``names`` and the largest variance in all of ``vcov``.

    The scale decides which variances are rounding noise around 0 (see
    :func:`_inference_table`); taking it from the whole matrix handles models whose
    coefficients b1..b5 are all fixed by constraints (e.g. the null model).
    """
    k = len(names)
    full = np.abs(np.diag(np.asarray(vcov, dtype=float)))
    scale = float(np.nanmax(full)) if full.size and np.any(np.isfinite(full)) else 0.0
    if isinstance(vcov, pd.DataFrame):
        if all(n in vcov.index for n in names) and all(n in vcov.columns for n in names):
            out = vcov.loc[list(names), list(names)].to_numpy(dtype=float)
        elif vcov.shape == (k, k):
            out = vcov.to_numpy(dtype=float)
        else:
            raise KeyError(f"covariance matrix does not hold rows/columns {tuple(names)}")
    else:
        out = np.asarray(vcov, dtype=float)
    if out.shape != (k, k):
        raise ValueError(f"expected a {k} x {k} covariance matrix, got shape {out.shape}")
    return out, scale


def _crit(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _inference_table(
    est: np.ndarray,
    cov: np.ndarray | None,
    index: Sequence[str],
    level: float,
    scale: float = 0.0,
) -> pd.DataFrame:
    """Wald table (est, se, z, two-sided normal p-value, CI) from estimates and covariance.

    Variances with ``|var| <= 1e-12 * max(scale, largest |var| here)`` are set to 0 (they are
    rounding noise of combinations fixed by constraints); other negative variances give NaN.
    """
    est = np.asarray(est, dtype=float)
    crit = _crit(level)
    if cov is None:
        se = np.full(est.shape, np.nan)
    else:
        var = np.diag(np.asarray(cov, dtype=float)).copy()
        # Variances of exactly constrained combinations (e.g. a2 in the rising ridge model)
        # come out as +-1e-18 from rounding: treat |var| below a relative tolerance as 0.
        if np.any(np.isfinite(var)):
            scale = max(scale, float(np.nanmax(np.abs(var))))
        tiny = np.abs(var) <= 1e-12 * max(scale, np.finfo(float).tiny)
        var[tiny] = 0.0
        var[var < 0] = np.nan
        se = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, est / se, np.nan)
    p = 2.0 * stats.norm.sf(np.abs(z))
    out = pd.DataFrame(
        {
            "est": est,
            "se": se,
            "z": z,
            "pvalue": p,
            "ci_lower": est - crit * se,
            "ci_upper": est + crit * se,
        },
        index=pd.Index(list(index), name="parameter"),
    )
    return out


# --------------------------------------------------------------------------------------------
# surface parameters a1..a5
# --------------------------------------------------------------------------------------------


def surface_parameters(
    b: Any,
    vcov: Any = None,
    names: Sequence[str] = B_NAMES,
    level: float = 0.95,
) -> pd.DataFrame:
    """Surface parameters a1..a5 with standard errors, z tests and Wald confidence intervals.

    ``a = C b`` with ``C`` = :data:`SURFACE_MATRIX` and ``Var(a) = C V C'``
    (Edwards & Parry, 1993; Shanock et al., 2010; a5 from Schönbrodt et al., 2018):

    * a1 = b1 + b2, slope along the line of congruence X = Y;
    * a2 = b3 + b4 + b5, curvature along the line of congruence;
    * a3 = b1 - b2, slope along the line of incongruence X = -Y;
    * a4 = b3 - b4 + b5, curvature along the line of incongruence;
    * a5 = b3 - b5, asymmetry (rotation of the surface away from the congruence line).

    Parameters
    ----------
    b
        The coefficients of X, Y, X^2, XY, Y^2: a length-5 array in that order, or a mapping /
        Series holding the labels ``names`` (other entries, e.g. controls, are ignored).
    vcov
        Their covariance matrix: a 5 x 5 array in the same order, or a DataFrame with rows and
        columns labelled ``names`` (it may hold further parameters). ``None`` gives estimates
        only (standard errors NaN).
    names
        Labels of b1..b5 in ``b`` and ``vcov`` (e.g. ``("b1_g1", ..., "b5_g1")`` for one group).
    level
        Confidence level of the normal-theory intervals.

    Returns
    -------
    pandas.DataFrame
        Index a1..a5, columns ``est, se, z, pvalue, ci_lower, ci_upper``. Parameters fixed by a
        model's constraints have ``se = 0`` and ``z``/``pvalue`` NaN.
    """
    bv = _coef_vector(b, names)
    est = SURFACE_MATRIX @ bv
    cov = None
    scale = 0.0
    if vcov is not None:
        V, scale = _cov_and_scale(vcov, names)
        cov = SURFACE_MATRIX @ V @ SURFACE_MATRIX.T
    return _inference_table(est, cov, SURFACE_NAMES, level, scale)


# --------------------------------------------------------------------------------------------
# stationary point and principal axes
# --------------------------------------------------------------------------------------------


def _nonlinear(bv: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Values, analytic Jacobian (6 x 5) and explanatory notes for X0, Y0, p10, p11, p20, p21.

    Stationary point (Edwards, 2002): solve dZ/dX = b1 + 2 b3 X + b4 Y = 0 and
    dZ/dY = b2 + b4 X + 2 b5 Y = 0, giving D = 4 b3 b5 - b4^2,
    X0 = (b2 b4 - 2 b1 b5) / D and Y0 = (b1 b4 - 2 b2 b3) / D.
    Principal axes: Y = p10 + p11 X with p11 = (b5 - b3 + R) / b4, R = sqrt((b3 - b5)^2 + b4^2),
    p10 = Y0 - p11 X0; the second axis uses -R. The first axis is the eigenvector direction of
    the larger eigenvalue of the quadratic form [[b3, b4/2], [b4/2, b5]].
    """
    b1, b2, b3, b4, b5 = (float(v) for v in bv)
    vals = np.full(6, np.nan)
    jac = np.full((6, 5), np.nan)
    notes: list[str] = []
    curv = max(abs(b3), abs(b4), abs(b5))

    # --- stationary point
    D = 4.0 * b3 * b5 - b4 * b4
    d_scale = max(4.0 * abs(b3 * b5), b4 * b4)
    have_sp = not (abs(D) <= tol * d_scale)
    gX = gY = None
    X0 = Y0 = np.nan
    if have_sp:
        NX = b2 * b4 - 2.0 * b1 * b5
        NY = b1 * b4 - 2.0 * b2 * b3
        X0, Y0 = NX / D, NY / D
        dD = np.array([0.0, 0.0, 4.0 * b5, -2.0 * b4, 4.0 * b3])
        dNX = np.array([-2.0 * b5, b4, 0.0, b2, -2.0 * b1])
        dNY = np.array([b4, -2.0 * b3, -2.0 * b2, b1, 0.0])
        gX = (dNX - X0 * dD) / D
        gY = (dNY - Y0 * dD) / D
        vals[0], vals[1] = X0, Y0
        jac[0], jac[1] = gX, gY
    else:
        notes.append(
            "D = 4*b3*b5 - b4^2 is 0, so the surface has no unique stationary point (it is a "
            "plane, or a ridge or valley whose stationary points form a line or do not exist); "
            "X0, Y0 and the axis intercepts p10, p20 are undefined (NaN)."
        )

    # --- principal axis slopes
    u = b5 - b3
    R = math.hypot(u, b4)
    slopes: list[tuple[float, np.ndarray] | None] = [None, None]
    if not (abs(b4) <= tol * curv):
        p11 = (u + R) / b4
        p21 = (u - R) / b4
        g11 = np.array([0.0, 0.0, (-1.0 - u / R) / b4, 1.0 / R - p11 / b4, (1.0 + u / R) / b4])
        g21 = np.array([0.0, 0.0, (-1.0 + u / R) / b4, -1.0 / R - p21 / b4, (1.0 - u / R) / b4])
        slopes = [(p11, g11), (p21, g21)]
    elif not (abs(u) <= tol * curv):
        # b4 = 0, b3 != b5: the axes are parallel to the coordinate axes. The horizontal one has
        # slope -b4 / (2 u) + O(b4^3) near b4 = 0, hence slope 0 with gradient d/db4 = -1/(2u).
        g_h = np.array([0.0, 0.0, 0.0, -1.0 / (2.0 * u), 0.0])
        first_vertical = u > 0
        slopes = [None, (0.0, g_h)] if first_vertical else [(0.0, g_h), None]
        which = "first" if first_vertical else "second"
        other = "second" if first_vertical else "first"
        notes.append(
            f"b4 = 0: the principal axes are parallel to the X and Y axes. The {which} axis is "
            f"vertical (X = X0): its slope is infinite and its slope/intercept are NaN; the "
            f"{other} axis is horizontal (slope 0, intercept Y0)."
        )
    else:
        notes.append(
            "b4 = 0 and b3 = b5: the quadratic part of the surface is rotationally symmetric "
            "(or zero), so the principal axes are not defined (NaN)."
        )

    for k, s in enumerate(slopes):
        if s is None:
            continue
        slope, g = s
        vals[3 + 2 * k] = slope
        jac[3 + 2 * k] = g
        if have_sp:
            vals[2 + 2 * k] = Y0 - slope * X0
            jac[2 + 2 * k] = gY - slope * gX - X0 * g
    return vals, jac, notes


def nonlinear_quantities(
    b: Any, names: Sequence[str] = B_NAMES, tol: float = 1e-10, warn: bool = True
) -> pd.Series:
    """Stationary point and principal axes as a Series (X0, Y0, p10, p11, p20, p21).

    Undefined quantities (``D = 0`` or ``b4 = 0``, see :func:`stationary_point` and
    :func:`principal_axes`) are NaN, with a :class:`SurfaceWarning` when ``warn`` is true.
    ``tol`` is the relative tolerance below which ``D`` and ``b4`` count as zero.
    """
    vals, _, notes = _nonlinear(_coef_vector(b, names), tol)
    if warn:
        for note in notes:
            warnings.warn(note, SurfaceWarning, stacklevel=2)
    return pd.Series(vals, index=list(NONLINEAR_NAMES), name="est")


def nonlinear_jacobian(b: Any, names: Sequence[str] = B_NAMES, tol: float = 1e-10) -> pd.DataFrame:
    """Analytic Jacobian of (X0, Y0, p10, p11, p20, p21) with respect to (b1, ..., b5).

    Rows of undefined quantities are NaN. Used for the delta-method standard errors.
    """
    _, jac, _ = _nonlinear(_coef_vector(b, names), tol)
    return pd.DataFrame(jac, index=list(NONLINEAR_NAMES), columns=list(B_NAMES))


def _nonlinear_table(
    b: Any, vcov: Any, names: Sequence[str], level: float, tol: float, rows: Sequence[str]
) -> pd.DataFrame:
    bv = _coef_vector(b, names)
    vals, jac, notes = _nonlinear(bv, tol)
    for note in notes:
        warnings.warn(note, SurfaceWarning, stacklevel=3)
    sel = [NONLINEAR_NAMES.index(r) for r in rows]
    cov = None
    scale = 0.0
    if vcov is not None:
        V, scale = _cov_and_scale(vcov, names)
        J = jac[sel]
        cov = np.full((len(sel), len(sel)), np.nan)
        ok = np.all(np.isfinite(J), axis=1)
        cov[np.ix_(ok, ok)] = J[ok] @ V @ J[ok].T
    return _inference_table(vals[sel], cov, rows, level, scale)


def stationary_point(
    b: Any,
    vcov: Any = None,
    names: Sequence[str] = B_NAMES,
    level: float = 0.95,
    tol: float = 1e-10,
) -> pd.DataFrame:
    """Stationary point (X0, Y0) of the surface with delta-method standard errors.

    ``D = 4 b3 b5 - b4^2``, ``X0 = (b2 b4 - 2 b1 b5) / D``, ``Y0 = (b1 b4 - 2 b2 b3) / D``
    (Edwards, 2002; Edwards & Parry, 1993). Standard errors use the analytic gradient,
    ``se = sqrt(g' V g)``. If ``|D| <= tol * max(4|b3 b5|, b4^2)`` (e.g. a plane, or a ridge
    model whose constraints imply D = 0) the point is undefined: NaN with a
    :class:`SurfaceWarning`. Note that z tests of X0 = 0 or Y0 = 0 are rarely of interest and
    that delta-method intervals for ratios can be poor; prefer :func:`bootstrap_surface`.

    Parameters are as in :func:`surface_parameters`; returns a DataFrame indexed X0, Y0.
    """
    return _nonlinear_table(b, vcov, names, level, tol, ("X0", "Y0"))


def principal_axes(
    b: Any,
    vcov: Any = None,
    names: Sequence[str] = B_NAMES,
    level: float = 0.95,
    tol: float = 1e-10,
) -> pd.DataFrame:
    """First and second principal axes ``Y = p10 + p11 X`` and ``Y = p20 + p21 X``.

    ``p11 = (b5 - b3 + sqrt((b3 - b5)^2 + b4^2)) / b4``, ``p10 = Y0 - p11 X0``; the second axis
    uses minus the root (Edwards, 2002). The first axis points along the eigenvector of the
    larger eigenvalue of the quadratic part, so it is the ridge line of a concave surface
    (maximum) and the second axis is the valley line of a convex surface (minimum).
    Delta-method standard errors come from analytic gradients.

    Special cases (with a :class:`SurfaceWarning`): ``D = 0`` leaves the slopes defined but the
    intercepts NaN; ``b4 = 0`` makes the axes parallel to the coordinate axes, so one axis is
    vertical (slope and intercept NaN) and the other horizontal (slope 0, intercept Y0);
    ``b4 = 0`` and ``b3 = b5`` leaves both axes undefined.

    Parameters are as in :func:`surface_parameters`; returns a DataFrame indexed
    p10, p11, p20, p21.
    """
    return _nonlinear_table(b, vcov, names, level, tol, ("p10", "p11", "p20", "p21"))


def surface_table(
    b: Any,
    vcov: Any = None,
    names: Sequence[str] = B_NAMES,
    level: float = 0.95,
    tol: float = 1e-10,
) -> pd.DataFrame:
    """a1..a5, X0, Y0, p10, p11, p20, p21 in one table (see the individual functions)."""
    lin = surface_parameters(b, vcov, names=names, level=level)
    nl = _nonlinear_table(b, vcov, names, level, tol, NONLINEAR_NAMES)
    return pd.concat([lin, nl])


def surface_quantities(b: Any, names: Sequence[str] = B_NAMES, tol: float = 1e-10) -> pd.Series:
    """Point estimates of a1..a5, X0, Y0, p10, p11, p20, p21 without warnings.

    Meant as the return value of a bootstrap statistic (see :func:`bootstrap_surface`);
    undefined quantities are NaN.
    """
    bv = _coef_vector(b, names)
    vals, _, _ = _nonlinear(bv, tol)
    return pd.Series(
        np.concatenate([SURFACE_MATRIX @ bv, vals]),
        index=list(SURFACE_NAMES) + list(NONLINEAR_NAMES),
    )


def congruence_check(
    table: pd.DataFrame,
    optimum: str = "maximum",
    strict: bool = False,
) -> pd.DataFrame:
    """The set of conditions for a congruence effect, from a :func:`surface_table` result.

    Following Humberg, Nestler & Back (2019), a (broad) congruence effect needs all of:

    1. the ridge (``optimum="maximum"``: the first principal axis) or valley
       (``optimum="minimum"``: the second principal axis) lies on the line of congruence:
       its intercept's CI includes 0 and its slope's CI includes 1;
    2. the curvature along the line of incongruence is significant in the right direction:
       a4 < 0 for a maximum at congruence, a4 > 0 for a minimum (e.g. fewer problems when
       informants agree means problems *rise* with disagreement);
    3. no linear effect along the line of incongruence: the CI of a3 includes 0.

    ``strict=True`` adds a1 = 0 and a2 = 0 (outcome equal all along the congruence line).
    "CI includes" is not evidence of equality; report the whole set with the estimates,
    never a single p-value. The CIs are those of ``table`` (its ``level``; they may be
    replaced by bootstrap intervals before calling this function).

    Returns a DataFrame with one row per condition: parameter, est, ci_lower, ci_upper,
    requirement, met (bool); ``.attrs["all_met"]`` holds the conjunction.
    """
    if optimum not in ("maximum", "minimum"):
        raise ValueError("optimum must be 'maximum' or 'minimum'")
    axis = "1" if optimum == "maximum" else "2"
    rows: list[tuple[str, str, float, str]] = [
        (f"p{axis}0", "CI includes 0", 0.0, "includes"),
        (f"p{axis}1", "CI includes 1", 1.0, "includes"),
        ("a4", "CI below 0" if optimum == "maximum" else "CI above 0", 0.0,
         "below" if optimum == "maximum" else "above"),
        ("a3", "CI includes 0", 0.0, "includes"),
    ]
    if strict:
        rows += [("a1", "CI includes 0", 0.0, "includes"), ("a2", "CI includes 0", 0.0, "includes")]
    out = []
    for par, text, value, kind in rows:
        est, lo, hi = (float(table.loc[par, c]) for c in ("est", "ci_lower", "ci_upper"))
        if kind == "includes":
            met = bool(lo <= value <= hi)
        elif kind == "below":
            met = bool(hi < value)
        else:
            met = bool(lo > value)
        out.append({"parameter": par, "est": est, "ci_lower": lo, "ci_upper": hi,
                    "requirement": text, "met": met})
    df = pd.DataFrame(out)
    df.attrs["all_met"] = bool(df["met"].all())
    return df


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


# --------------------------------------------------------------------------------------------
# model syntax: full polynomial and the RSA package's constrained models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RSAModel:
    """A polynomial model defined by linear equality constraints on b1..b5.

    ``constraints`` are lavaan constraint statements in the labels b1..b5 and ``matrix`` is the
    same set as rows ``r`` of ``r' b = 0`` (used to decide nesting).
    """

    name: str
    description: str
    constraints: tuple[str, ...]
    matrix: np.ndarray = field(repr=False, compare=False)

    @property
    def n_constraints(self) -> int:
        """Number of independent constraints (degrees of freedom relative to ``full``)."""
        return int(np.linalg.matrix_rank(self.matrix)) if self.matrix.size else 0


def _model(name: str, description: str, *cons: tuple[str, Sequence[float]]) -> RSAModel:
    mat = np.array([c[1] for c in cons], dtype=float).reshape(len(cons), 5)
    mat.setflags(write=False)
    return RSAModel(name, description, tuple(c[0] for c in cons), mat)


_E = np.eye(5)
_Z = {i: ("b%d == 0" % i, _E[i - 1]) for i in range(1, 6)}
_B3_EQ_B5 = ("b3 == b5", (0, 0, 1, 0, -1))
_B4_EQ_M2B3 = ("b4 == -2*b3", (0, 0, 2, 1, 0))
_B1_EQ_B2 = ("b1 == b2", (1, -1, 0, 0, 0))
_B1_EQ_MB2 = ("b1 == -b2", (1, 1, 0, 0, 0))

#: The constrained polynomial models of the RSA package (Schönbrodt & Humberg, CRAN ``RSA``,
#: documentation of ``RSA(models=...)``; Schönbrodt, 2016; Humberg et al., 2019), keyed by
#: name. ``"interaction"`` is the RSA package's ``"IA"``. Not included: the nonlinearly
#: constrained rotated ridge (``SRRR``: b4^2 = 4 b3 b5 with sign constraints), the shifted and
#: rotated squared difference (``SRSQD``), absolute-difference and cubic models.
RSA_MODELS: dict[str, RSAModel] = {
    m.name: m
    for m in (
        _model("full", "Full second-order polynomial: b1..b5 free."),
        _model(
            "SRR",
            "Shifted rising ridge: Z = b0 + b1 X + b2 Y + b3 (X - Y)^2 (b3 = b5, b4 = -2 b3, so "
            "a2 = 0 and a5 = 0); a ridge or valley parallel to the line of congruence, shifted "
            "off it when b1 != b2, along which Z changes linearly (a1).",
            _B3_EQ_B5, _B4_EQ_M2B3,
        ),
        _model(
            "RR",
            "Rising ridge: Z = b0 + b1 (X + Y) + b3 (X - Y)^2 (b1 = b2, b3 = b5, b4 = -2 b3); a "
            "ridge or valley on the line of congruence that rises or falls along it (a1).",
            _B1_EQ_B2, _B3_EQ_B5, _B4_EQ_M2B3,
        ),
        _model(
            "SSQD",
            "Shifted squared difference: Z = b0 + b1 (X - Y) + b3 (X - Y)^2 (b1 = -b2, "
            "b3 = b5, b4 = -2 b3); optimum on a line parallel to X = Y, at X - Y = -b1/(2 b3).",
            _B1_EQ_MB2, _B3_EQ_B5, _B4_EQ_M2B3,
        ),
        _model(
            "SQD",
            "Basic squared difference: Z = b0 + b3 (X - Y)^2 (b1 = b2 = 0, b3 = b5, "
            "b4 = -2 b3); optimum exactly on the line of congruence, flat along it.",
            _Z[1], _Z[2], _B3_EQ_B5, _B4_EQ_M2B3,
        ),
        _model(
            "interaction",
            "Interaction (RSA 'IA'): Z = b0 + b1 X + b2 Y + b4 XY (b3 = b5 = 0).",
            _Z[3], _Z[5],
        ),
        _model(
            "additive",
            "Additive: Z = b0 + b1 X + b2 Y (b3 = b4 = b5 = 0).",
            _Z[3], _Z[4], _Z[5],
        ),
        _model(
            "diff",
            "Algebraic difference: Z = b0 + b1 (X - Y) (b1 = -b2, b3 = b4 = b5 = 0).",
            _B1_EQ_MB2, _Z[3], _Z[4], _Z[5],
        ),
        _model(
            "mean",
            "Mean (sum) of the predictors: Z = b0 + b1 (X + Y) (b1 = b2, b3 = b4 = b5 = 0).",
            _B1_EQ_B2, _Z[3], _Z[4], _Z[5],
        ),
        _model("onlyx", "Only X: Z = b0 + b1 X.", _Z[2], _Z[3], _Z[4], _Z[5]),
        _model("onlyy", "Only Y: Z = b0 + b2 Y.", _Z[1], _Z[3], _Z[4], _Z[5]),
        _model("onlyx2", "X and X^2: Z = b0 + b1 X + b3 X^2.", _Z[2], _Z[4], _Z[5]),
        _model("onlyy2", "Y and Y^2: Z = b0 + b2 Y + b5 Y^2.", _Z[1], _Z[3], _Z[4]),
        _model("null", "Intercept only (b1 = ... = b5 = 0).", *(_Z[i] for i in range(1, 6))),
    )
}

#: Models fitted by default (at least the ones named in STUDY.md / issue 6).
DEFAULT_MODELS: tuple[str, ...] = (
    "full", "SRR", "RR", "SSQD", "SQD", "interaction", "additive", "null",
)

_ALIASES = {"ia": "interaction", "sqdiff": "SQD"}


def _model_key(model: str) -> str:
    if model in RSA_MODELS:
        return model
    low = model.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    for key in RSA_MODELS:
        if key.lower() == low:
            return key
    raise ValueError(f"unknown RSA model {model!r}; choose from {list(RSA_MODELS)} (or 'IA')")


def is_nested(restricted: str, general: str) -> bool:
    """True if model ``restricted`` is nested in (a special case of) model ``general``.

    That holds when every constraint of ``general`` is implied by those of ``restricted``,
    i.e. the row space of the general constraint matrix lies in that of the restricted one.
    """
    r = RSA_MODELS[_model_key(restricted)].matrix
    g = RSA_MODELS[_model_key(general)].matrix
    if g.size == 0:
        return True
    if r.size == 0:
        return False
    rank_r = np.linalg.matrix_rank(r)
    return bool(np.linalg.matrix_rank(np.vstack([r, g])) == rank_r)


def _suffixes(group_labels: Sequence[Any] | int) -> list[str]:
    if isinstance(group_labels, (int, np.integer)):
        if group_labels < 1:
            raise ValueError("the number of groups must be positive")
        return [f"g{i + 1}" for i in range(int(group_labels))]
    labels = list(group_labels)
    if not labels:
        raise ValueError("group_labels is empty")
    sanitized = [re.sub(r"[^0-9A-Za-z_]", "_", str(g)) for g in labels]
    if len(set(sanitized)) != len(sanitized) or any(s.strip("_") == "" for s in sanitized):
        return [f"g{i + 1}" for i in range(len(labels))]
    return sanitized


def coefficient_labels(
    group_labels: Sequence[Any] | int | None = None,
) -> dict[Any, dict[str, tuple[str, ...]]]:
    """Parameter labels used by :func:`polynomial_syntax`.

    Returns ``{group: {"b": (b1.., b5 labels), "a": (a1.., a5 labels),
    "nonlinear": (X0, Y0, p10, p11, p20, p21 labels)}}``. For one group the key is ``None``
    and the labels are the plain names. For several groups the labels end in ``_{suffix}``,
    where the suffix is the group label with characters other than letters, digits and
    underscores replaced by ``_`` (``g1, g2, ...`` if that is not unique, or when an integer
    number of groups is given).
    """
    base = {"b": B_NAMES, "a": SURFACE_NAMES, "nonlinear": NONLINEAR_NAMES}
    if group_labels is None:
        return {None: dict(base)}
    keys = (list(range(1, int(group_labels) + 1))
            if isinstance(group_labels, (int, np.integer)) else list(group_labels))
    out: dict[Any, dict[str, tuple[str, ...]]] = {}
    for key, suf in zip(keys, _suffixes(group_labels)):
        out[key] = {k: tuple(f"{n}_{suf}" for n in v) for k, v in base.items()}
    return out


_LABEL_RE = re.compile(r"\b(b[1-5]|a[1-5]|X0|Y0|p[12][01])\b")


def _relabel(statement: str, suffix: str | None) -> str:
    if suffix is None:
        return statement
    return _LABEL_RE.sub(lambda m: f"{m.group(1)}_{suffix}", statement)


def polynomial_syntax(
    outcome: str,
    x: str,
    y: str,
    controls: Sequence[str] = (),
    model: str = "full",
    group_labels: Sequence[Any] | int | None = None,
    stationary: bool = False,
) -> str:
    """lavaan model syntax for the polynomial regression of ``outcome`` on ``x`` and ``y``.

    The regression is ``outcome ~ b1*x + b2*y + b3*x2 + b4*x_y + b5*y2 + controls`` with the
    second-order term columns named by :func:`term_names` (create them with
    :func:`polynomial_terms`). The constraints of ``model`` (see :data:`RSA_MODELS`, after
    the RSA package: Schönbrodt & Humberg, CRAN ``RSA``) are added as ``==`` statements, and
    a1..a5 as ``:=`` defined parameters, so that the engine reports them with delta-method
    standard errors.

    Parameters
    ----------
    outcome, x, y
        Variable names (valid model-syntax names).
    controls
        Covariates added as linear predictors (free, unlabelled; no interactions).
    model
        A key of :data:`RSA_MODELS` (case-insensitive; ``"IA"`` means ``"interaction"``).
    group_labels
        ``None`` for one group. For a multi-group model, the group labels in the engine's
        group order (or the number of groups): each coefficient gets group-wise labels,
        ``c(b1_g1, b1_g2)*x``, the constraints and the defined parameters are repeated per
        group (see :func:`coefficient_labels` for the suffixes).
    stationary
        Also define X0, Y0, p11, p10, p21, p20 (only for ``full`` and ``interaction``; in the
        other models they are undefined because D = 0 or b4 = 0).

    Returns
    -------
    str
        One statement per line.
    """
    key = _model_key(model)
    spec = RSA_MODELS[key]
    _check_name(outcome, "outcome name")
    for c in controls:
        _check_name(c, "control variable name")
    terms = (x, y) + term_names(x, y)
    if outcome in terms or any(c in terms or c == outcome for c in controls):
        raise ValueError("outcome, predictors, polynomial terms and controls must all differ")
    if stationary and key not in ("full", "interaction"):
        raise ValueError(f"the stationary point / principal axes are undefined in model {key!r} "
                         "(its constraints imply D = 0 or b4 = 0); use stationary=False")

    if group_labels is None:
        suffixes: list[str | None] = [None]
        rhs = [f"{lab}*{term}" for lab, term in zip(B_NAMES, terms)]
    else:
        suffixes = list(_suffixes(group_labels))
        rhs = [
            "c(" + ", ".join(f"{lab}_{s}" for s in suffixes) + f")*{term}"
            for lab, term in zip(B_NAMES, terms)
        ]
    rhs += list(controls)
    lines = [f"{outcome} ~ " + " + ".join(rhs)]
    for s in suffixes:
        lines += [_relabel(c, s) for c in spec.constraints]
    for s in suffixes:
        lines += [_relabel(d, s) for d in _DEFINED_A]
        if stationary:
            lines += [_relabel(d, s) for d in _DEFINED_NONLINEAR]
    return "\n".join(lines) + "\n"


def rsa_models(
    outcome: str = "z",
    x: str = "x",
    y: str = "y",
    controls: Sequence[str] = (),
    models: Iterable[str] | str = DEFAULT_MODELS,
    group_labels: Sequence[Any] | int | None = None,
) -> dict[str, str]:
    """Model syntax for several RSA models: ``{model name: syntax}``.

    ``models`` is an iterable of keys of :data:`RSA_MODELS` or ``"all"``; the default,
    :data:`DEFAULT_MODELS`, holds full, SRR, RR, SSQD, SQD, interaction, additive and null.
    See :func:`polynomial_syntax` for the other arguments and :data:`RSA_MODELS` for the
    definitions (after the RSA package, Schönbrodt & Humberg, CRAN ``RSA``).
    """
    names = list(RSA_MODELS) if models == "all" else [_model_key(m) for m in models]
    return {
        m: polynomial_syntax(outcome, x, y, controls=controls, model=m, group_labels=group_labels)
        for m in names
    }


# --------------------------------------------------------------------------------------------
# model comparison
# --------------------------------------------------------------------------------------------


def aicc(loglik: Any, npar: Any, n: Any) -> Any:
    """Small-sample corrected AIC: ``-2 logL + 2k + 2k(k + 1) / (n - k - 1)``.

    (Hurvich & Tsai, 1989; Burnham & Anderson, 2002.) ``k = npar`` is the number of freely
    estimated parameters, net of equality constraints (a model with five labelled
    coefficients and three ``==`` constraints has two fewer than the full model). Works on
    scalars and arrays (broadcast); where ``n - k - 1 <= 0`` the result is NaN with a
    :class:`SurfaceWarning`. Note: the RSA package uses a different ``k`` in the correction
    term (only the regression parameters), so its AICc values can differ from these.
    """
    ll = np.asarray(loglik, dtype=float)
    k = np.asarray(npar, dtype=float)
    nn = np.asarray(n, dtype=float)
    denom = nn - k - 1.0
    bad = denom <= 0
    if np.any(bad):
        warnings.warn("AICc is undefined when n - npar - 1 <= 0; returning NaN there",
                      SurfaceWarning, stacklevel=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -2.0 * ll + 2.0 * k + np.where(bad, np.nan, 2.0 * k * (k + 1.0) / denom)
    return float(out) if out.ndim == 0 else out


def aicc_table(fits: Mapping[str, tuple[float, int]], n: int) -> pd.DataFrame:
    """AICc comparison of models: ``fits`` maps model name -> ``(loglik, npar)``.

    Returns a DataFrame sorted by AICc with columns ``loglik, npar, aicc, delta_aicc,
    weight`` (Akaike weights ``exp(-delta/2) / sum``) and ``cum_weight``
    (Burnham & Anderson, 2002).
    """
    if not fits:
        raise ValueError("no models given")
    names = list(fits)
    ll = np.array([float(fits[m][0]) for m in names])
    k = np.array([float(fits[m][1]) for m in names])
    df = pd.DataFrame({"loglik": ll, "npar": k.astype(int), "aicc": aicc(ll, k, n)},
                      index=pd.Index(names, name="model"))
    df = df.sort_values("aicc")
    df["delta_aicc"] = df["aicc"] - df["aicc"].min()
    rel = np.exp(-0.5 * df["delta_aicc"])
    df["weight"] = rel / rel.sum()
    df["cum_weight"] = df["weight"].cumsum()
    return df


def surface_group_tests(
    b: Any,
    vcov: Any,
    group_labels: Sequence[Any] | int,
    level: float = 0.95,
) -> pd.DataFrame:
    """Wald tests that the surface parameters are equal across groups.

    Parameters
    ----------
    b, vcov
        Estimates and their *joint* covariance matrix for all groups' coefficients: a Series
        and DataFrame labelled as in :func:`coefficient_labels` (``b1_g1``, ... as produced by
        :func:`polynomial_syntax` with ``group_labels``), or an array stacked group by group
        (b1..b5 of the first group, then of the second, ...) with a matching matrix.
    group_labels
        The group labels (or number of groups) used for the syntax.
    level
        Confidence level for the two-group difference intervals.

    Returns
    -------
    pandas.DataFrame
        Rows a1..a5 (each tested across groups, ``df = G - 1``) and ``all`` (all five at once,
        ``df = 5 (G - 1)``); columns ``chisq, df, pvalue``. With two groups also the difference
        (second minus first group) ``diff, se, ci_lower, ci_upper``.
    """
    labels = coefficient_labels(group_labels)
    groups = list(labels)
    G = len(groups)
    if G < 2:
        raise ValueError("need at least two groups")
    names = [lab for g in groups for lab in labels[g]["b"]]
    if isinstance(b, (pd.Series, Mapping)):
        bv = _coef_vector(b, names)
        V = _cov_matrix(vcov, names)
    else:
        bv = np.asarray(b, dtype=float).ravel()
        V = np.asarray(vcov, dtype=float)
        if bv.size != 5 * G or V.shape != (5 * G, 5 * G):
            raise ValueError(f"expected {5 * G} stacked coefficients and a matching matrix")
    A = np.kron(np.eye(G), SURFACE_MATRIX)
    a = A @ bv
    Va = A @ V @ A.T
    L = np.hstack([-np.ones((G - 1, 1)), np.eye(G - 1)])  # group g minus group 1
    rows = []
    crit = _crit(level)
    for j, name in enumerate(list(SURFACE_NAMES) + ["all"]):
        if name == "all":
            M = np.kron(L, np.eye(5))
        else:
            sel = np.zeros((G, 5 * G))
            sel[np.arange(G), 5 * np.arange(G) + j] = 1.0
            M = L @ sel
        d = M @ a
        S = M @ Va @ M.T
        chisq = float(d @ np.linalg.pinv(S) @ d)
        dfree = int(np.linalg.matrix_rank(S))
        row = {"chisq": chisq, "df": dfree,
               "pvalue": float(stats.chi2.sf(chisq, dfree)) if dfree > 0 else np.nan}
        if G == 2 and name != "all":
            se = float(np.sqrt(max(S[0, 0], 0.0)))
            row.update({"diff": float(d[0]), "se": se,
                        "ci_lower": float(d[0] - crit * se), "ci_upper": float(d[0] + crit * se)})
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(SURFACE_NAMES) + ["all"], name="parameter"))


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


@dataclass
class BootstrapResult:
    """Result of :func:`bootstrap_surface`.

    Attributes
    ----------
    table
        Index = statistic names; columns ``est`` (on the original data), ``boot_se``,
        ``ci_lower``, ``ci_upper``, ``n_valid`` (replicates with a finite value).
    replicates
        DataFrame of bootstrap replicates (``n_boot`` rows; NaN rows for failed replicates).
    method, level, n_failed
        Interval method, confidence level, and number of replicates whose statistic raised.
    jackknife
        Leave-one-unit-out values used for the BCa acceleration (``None`` for percentile).
    """

    table: pd.DataFrame
    replicates: pd.DataFrame = field(repr=False)
    method: str
    level: float
    n_failed: int
    jackknife: np.ndarray | None = field(default=None, repr=False)


def _as_vector(val: Any) -> tuple[np.ndarray, list[str] | None]:
    if isinstance(val, pd.Series):
        return val.to_numpy(dtype=float), [str(i) for i in val.index]
    arr = np.atleast_1d(np.asarray(val, dtype=float)).ravel()
    return arr, None


def _groups(values: Any, data: Any, n: int, what: str) -> np.ndarray:
    if isinstance(values, str):
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"{what} given as a column name needs a DataFrame")
        arr = data[values].to_numpy()
    else:
        arr = np.asarray(values)
    if arr.shape[0] != n:
        raise ValueError(f"{what} must have one entry per row ({n})")
    if pd.isna(arr).any():
        raise ValueError(f"{what} has missing values")
    return pd.factorize(arr)[0]


def bootstrap_surface(
    data: pd.DataFrame | np.ndarray,
    statistic: Callable[[Any], Any],
    n_boot: int = 2000,
    level: float = 0.95,
    method: str = "percentile",
    seed: int | np.random.Generator | None = None,
    strata: Any = None,
    cluster: Any = None,
    vectorized: bool = False,
    names: Sequence[str] | None = None,
) -> BootstrapResult:
    """Nonparametric bootstrap confidence intervals (percentile or BCa) for any statistic.

    Cases (rows) are resampled with replacement; with ``cluster`` whole clusters are
    resampled (e.g. schools), and with ``strata`` resampling happens within each stratum
    (e.g. treatment format, keeping group sizes fixed as in multi-group bootstrapping).
    Clusters must be nested in strata.

    Parameters
    ----------
    data
        A DataFrame (``statistic`` receives row subsets, ``data.iloc[idx]``) or an array whose
        first axis indexes cases.
    statistic
        ``data -> estimates``: a scalar, 1-D array or Series (whose index names the estimates),
        e.g. ``lambda d: surface_quantities(fit(d))``. A replicate whose statistic raises is
        recorded as NaN and counted in ``n_failed`` (a :class:`SurfaceWarning` reports how many).
    n_boot
        Number of bootstrap replicates.
    level
        Confidence level.
    method
        ``"percentile"`` (Efron & Tibshirani, 1993, ch. 13) or ``"bca"`` (bias-corrected and
        accelerated; Efron, 1987), whose acceleration comes from a leave-one-unit-out jackknife
        (one extra evaluation per case, or per cluster).
    seed
        Seed or ``numpy.random.Generator`` for reproducible resampling.
    strata, cluster
        Column names (DataFrame data) or arrays with one entry per row.
    vectorized
        If true (array data without clusters), ``statistic`` is called once with all
        replicates stacked, shape ``(n_boot, n, ...)``, and must return shape ``(n_boot,)`` or
        ``(n_boot, k)``; it is also called with the original data of shape ``(1, n, ...)``.
        For example ``statistic=lambda a: a.mean(axis=1)`` for the mean.
    names
        Names of the estimates (default: the Series index, or ``stat0, stat1, ...``).

    Returns
    -------
    BootstrapResult
    """
    method = method.lower()
    if method not in ("percentile", "bca"):
        raise ValueError("method must be 'percentile' or 'bca'")
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    _crit(level)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    is_frame = isinstance(data, pd.DataFrame)
    arr = None if is_frame else np.asarray(data)
    n = len(data)
    if n < 2:
        raise ValueError("need at least two cases")
    strat = _groups(strata, data, n, "strata") if strata is not None else np.zeros(n, dtype=int)
    clus = _groups(cluster, data, n, "cluster") if cluster is not None else None
    if vectorized and (is_frame or clus is not None):
        raise ValueError("vectorized=True needs array data and no clusters")

    def take(idx: np.ndarray) -> Any:
        return data.iloc[idx] if is_frame else arr[idx]

    # resampling units: rows, or clusters (each a list of rows) within strata
    if clus is None:
        unit_rows = None
        unit_stratum = strat
    else:
        n_units = int(clus.max()) + 1
        unit_rows = [np.flatnonzero(clus == u) for u in range(n_units)]
        unit_stratum = np.array([strat[r[0]] for r in unit_rows])
        for u, r in enumerate(unit_rows):
            if np.any(strat[r] != unit_stratum[u]):
                raise ValueError("clusters must be nested in strata")
    strata_units = [np.flatnonzero(unit_stratum == s) for s in range(int(unit_stratum.max()) + 1)]
    # unit draws for all replicates at once: shape (n_boot, n_units)
    draws = np.concatenate(
        [units[rng.integers(0, units.size, size=(n_boot, units.size))] for units in strata_units],
        axis=1,
    )

    # estimate on the original data
    if vectorized:
        est0 = np.asarray(statistic(arr[np.newaxis]), dtype=float)
        est = est0.reshape(1, -1)[0]
        found_names = None
    else:
        est, found_names = _as_vector(statistic(data))
    k = est.size
    labels = list(names) if names is not None else (found_names or [f"stat{i}" for i in range(k)])
    if len(labels) != k:
        raise ValueError(f"{len(labels)} names given for {k} estimates")

    n_failed = 0
    if vectorized:
        reps = np.asarray(statistic(arr[draws]), dtype=float).reshape(n_boot, -1)
        if reps.shape[1] != k:
            raise ValueError("the vectorized statistic returned the wrong number of estimates")
    else:
        reps = np.full((n_boot, k), np.nan)
        for i in range(n_boot):
            if unit_rows is None:
                idx = draws[i]
            else:
                idx = np.concatenate([unit_rows[u] for u in draws[i]])
            try:
                v, _ = _as_vector(statistic(take(idx)))
            except Exception:  # noqa: BLE001 - a failed fit must not abort the bootstrap
                n_failed += 1
                continue
            if v.size != k:
                raise ValueError("the statistic returned a different number of estimates")
            reps[i] = v
        if n_failed:
            warnings.warn(f"{n_failed} of {n_boot} bootstrap replicates failed and were dropped",
                          SurfaceWarning, stacklevel=2)

    alpha = 1.0 - level
    finite = np.isfinite(reps)
    n_valid = finite.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        boot_se = np.nanstd(reps, axis=0, ddof=1)
        jack = None
        if method == "percentile":
            lo = np.nanquantile(reps, alpha / 2, axis=0)
            hi = np.nanquantile(reps, 1 - alpha / 2, axis=0)
        else:
            jack = _jackknife(statistic, data, arr, is_frame, unit_rows, n, k, vectorized)
            lo, hi = _bca_limits(reps, est, jack, alpha)
    table = pd.DataFrame(
        {"est": est, "boot_se": boot_se, "ci_lower": lo, "ci_upper": hi, "n_valid": n_valid},
        index=pd.Index(labels, name="parameter"),
    )
    return BootstrapResult(
        table=table,
        replicates=pd.DataFrame(reps, columns=labels),
        method=method,
        level=level,
        n_failed=n_failed,
        jackknife=jack,
    )


def _jackknife(
    statistic: Callable[[Any], Any],
    data: Any,
    arr: np.ndarray | None,
    is_frame: bool,
    unit_rows: list[np.ndarray] | None,
    n: int,
    k: int,
    vectorized: bool,
) -> np.ndarray:
    """Leave-one-unit-out estimates, shape (units, k)."""
    if vectorized:
        idx = np.arange(n)
        loo = np.stack([np.delete(idx, i) for i in range(n)])  # (n, n - 1)
        return np.asarray(statistic(arr[loo]), dtype=float).reshape(n, k)
    groups = [np.array([i]) for i in range(n)] if unit_rows is None else unit_rows
    out = np.full((len(groups), k), np.nan)
    for j, rows in enumerate(groups):
        keep = np.setdiff1d(np.arange(n), rows, assume_unique=True)
        try:
            v, _ = _as_vector(statistic(data.iloc[keep] if is_frame else arr[keep]))
        except Exception:  # noqa: BLE001
            continue
        out[j] = v
    return out


def _bca_limits(
    reps: np.ndarray, est: np.ndarray, jack: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """BCa interval limits (Efron, 1987; Efron & Tibshirani, 1993, section 14.3)."""
    k = est.size
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    z_lo, z_hi = stats.norm.ppf(alpha / 2), stats.norm.ppf(1 - alpha / 2)
    for j in range(k):
        r = reps[:, j]
        r = r[np.isfinite(r)]
        jk = jack[:, j]
        jk = jk[np.isfinite(jk)]
        if r.size < 2 or jk.size < 2 or not np.isfinite(est[j]):
            continue
        prop = (np.sum(r < est[j]) + 0.5 * np.sum(r == est[j])) / r.size
        if prop <= 0.0 or prop >= 1.0:
            continue  # bias correction infinite: the estimate lies outside the replicates
        z0 = stats.norm.ppf(prop)
        dev = jk.mean() - jk
        den = 6.0 * np.sum(dev**2) ** 1.5
        acc = np.sum(dev**3) / den if den > 0 else 0.0
        qs = []
        for zq in (z_lo, z_hi):
            w = z0 + zq
            qs.append(stats.norm.cdf(z0 + w / (1.0 - acc * w)))
        lo[j], hi[j] = np.quantile(r, qs)
    return lo, hi


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
