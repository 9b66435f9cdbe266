"""Response surface analysis (RSA) for second-order polynomial regression.

The polynomial regression of an outcome ``Z`` on two commensurate predictors ``X`` and ``Y``

    Z = b0 + b1 X + b2 Y + b3 X^2 + b4 XY + b5 Y^2 (+ controls)

is summarised by surface parameters along the line of congruence (LOC, ``X = Y``) and the
line of incongruence (LOIC, ``X = -Y``), by the stationary point and by the principal axes of
the surface (Edwards & Parry, 1993; Edwards, 2002; Shanock et al., 2010). The package holds
the math (no dependence on the SEM engine) in these modules:

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
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..inference.distributions import norm_ppf, norm_sf  # no scipy.stats import

__all__ = [
    "SurfaceWarning", "B_NAMES", "SURFACE_NAMES", "NONLINEAR_NAMES", "SURFACE_MATRIX",
    "surface_parameters", "nonlinear_quantities", "nonlinear_jacobian", "stationary_point",
    "principal_axes", "surface_table", "surface_quantities", "congruence_check",
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
    return float(norm_ppf(0.5 + level / 2.0))


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
    p = 2.0 * norm_sf(np.abs(z))
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
