"""RSA model syntax (the full polynomial and the constrained models of the RSA package;
Schonbrodt & Humberg) and model comparison (AICc; Burnham & Anderson 2002; Wald tests of
surface parameters between groups)."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from ..inference.distributions import chi2_pvalue  # no scipy.stats import
from .prepare import _check_name, term_names
from .surface  import (
    B_NAMES, NONLINEAR_NAMES, SURFACE_MATRIX, SURFACE_NAMES, SurfaceWarning, _DEFINED_A,
    _DEFINED_NONLINEAR, _coef_vector, _cov_matrix, _crit)

__all__ = [
    "RSAModel", "RSA_MODELS", "DEFAULT_MODELS", "is_nested", "coefficient_labels",
    "polynomial_syntax", "rsa_models", "aicc", "aicc_table", "surface_group_tests",
]


# --------------------------------------------------------------------------------------------
# model syntax: full polynomial and the RSA package's constrained models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RSAModel:
    """A polynomial model defined by equality constraints on b1..b5.

    ``constraints`` are lavaan constraint statements in the labels b1..b5 and ``matrix`` is the
    linear ones as rows ``r`` of ``r' b = 0`` (used to decide nesting).  ``nonlinear`` holds
    nonlinear ``==`` constraints (the rotated ridge models: ``b4^2 == 4*b3*b5``; fitted by
    :mod:`sem_models.estimation.constrained`) and ``curvature`` the per-direction extras of
    such a model as the RSA package fits it: ``{"up": (bounds, starts), "down": ...}``, the
    bounds keeping b3 and b5 on one side of 0 and start values ``{coefficient: value}``.
    """

    name: str
    description: str
    constraints: tuple[str, ...]
    matrix: np.ndarray = field(repr=False, compare=False)
    nonlinear: tuple[str, ...] = ()
    curvature: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_constraints(self) -> int:
        """Number of independent constraints (degrees of freedom relative to ``full``)."""
        linear = int(np.linalg.matrix_rank(self.matrix)) if self.matrix.size else 0
        return linear + len(self.nonlinear)

    @property
    def directions(self) -> tuple[str, ...]:
        """``("up", "down")`` for the rotated ridge models, else ``()``."""
        return tuple(self.curvature)

    def satisfied(self, b: np.ndarray, tol: float = 1e-9) -> bool:
        """Whether b1..b5 (``b``) satisfy every equality constraint of the model."""
        env = dict(zip(B_NAMES, np.asarray(b, float)))
        from ..model.syntax import compile_expression
        for c in self.constraints + self.nonlinear:
            lhs, rhs = c.split("==")
            diff = compile_expression(lhs.strip()).evaluate(env) - \
                compile_expression(rhs.strip()).evaluate(env)
            if abs(diff) > tol * max(1.0, max(abs(v) for v in env.values())):
                return False
        return True

    def sample(self, rng: np.random.Generator, n: int = 4) -> np.ndarray:
        """``n`` random coefficient vectors b1..b5 on the model's constraint set (for
        nesting): the null space of ``matrix`` for linear models; for the rotated ridge
        models points with ``b4^2 = 4 b3 b5`` (b3, b5 of one sign; SRSQD also
        ``2 b1 b5 = b2 b4``)."""
        if not self.nonlinear:
            if not self.matrix.size:
                return rng.normal(size=(n, 5))
            _, sv, vt = np.linalg.svd(self.matrix)
            null = vt[int(np.sum(sv > 1e-10)):].T
            return (null @ rng.normal(size=(null.shape[1], n))).T if null.size else \
                np.zeros((n, 5))
        out = rng.normal(size=(n, 5))
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        b3, b5 = sign * rng.uniform(0.1, 1, n), sign * rng.uniform(0.1, 1, n)
        out[:, 2], out[:, 4] = b3, b5
        out[:, 3] = np.where(rng.random(n) < 0.5, -1.0, 1.0) * 2 * np.sqrt(b3 * b5)
        if self.name == "SRSQD":
            out[:, 0] = out[:, 1] * out[:, 3] / (2 * out[:, 4])
        return out


def _model(name: str, description: str, *cons: tuple[str, Sequence[float]],
           nonlinear: tuple[str, ...] = (), curvature: Optional[dict] = None) -> RSAModel:
    mat = np.array([c[1] for c in cons], dtype=float).reshape(len(cons), 5)
    mat.setflags(write=False)
    return RSAModel(name, description, tuple(c[0] for c in cons), mat, nonlinear,
                    dict(curvature or {}))


def _curvature(*coefficients: str, start: float) -> dict:
    """The RSA package's two fits of a rotated ridge model: b3 and b5 above 1e-6 ("up") or
    below -1e-6 ("down"), with start values +-``start`` for ``coefficients``."""
    return {direction: (tuple(f"{b} {op} {bound}" for b in ("b3", "b5")),
                        {c: sign * start for c in coefficients})
            for direction, op, bound, sign in (("up", ">", "0.000001", 1.0),
                                               ("down", "<", "-0.000001", -1.0))}


_E = np.eye(5)
_Z = {i: ("b%d == 0" % i, _E[i - 1]) for i in range(1, 6)}
_B3_EQ_B5 = ("b3 == b5", (0, 0, 1, 0, -1))
_B4_EQ_M2B3 = ("b4 == -2*b3", (0, 0, 2, 1, 0))
_B1_EQ_B2 = ("b1 == b2", (1, -1, 0, 0, 0))
_B1_EQ_MB2 = ("b1 == -b2", (1, 1, 0, 0, 0))

#: The constrained polynomial models of the RSA package (Schönbrodt & Humberg, CRAN ``RSA``,
#: documentation of ``RSA(models=...)``; Schönbrodt, 2016; Humberg et al., 2019), keyed by
#: name. ``"interaction"`` is the RSA package's ``"IA"``. ``SRRR`` and ``SRSQD`` are the
#: nonlinearly constrained rotated models (``b4^2 == 4*b3*b5``), fitted, as the RSA package
#: does, once with b3, b5 > 1e-6 and once with b3, b5 < -1e-6 (the converged fit with the
#: smaller chi-square is kept). Not included: the "weak" / "strong" patterns,
#: absolute-difference and cubic models.
RSA_MODELS: dict[str, RSAModel] = {
    m.name: m
    for m in (
        _model("full", "Full second-order polynomial: b1..b5 free."),
        _model(
            "SRRR",
            "Shifted and rotated rising ridge: b4^2 = 4 b3 b5, a ridge (b3, b5 < 0) or valley "
            "(b3, b5 > 0) along a line that need not be the line of congruence, rising or "
            "falling along it (the RSA package's SRRR).",
            nonlinear=("b4^2 == 4*b3*b5",),
            curvature=_curvature("b3", "b5", start=0.01),
        ),
        _model(
            "SRSQD",
            "Shifted and rotated squared difference: b4^2 = 4 b3 b5 and 2 b1 b5 = b2 b4, a "
            "ridge or valley along a rotated line, flat along it (the RSA package's SRSQD).",
            nonlinear=("2*b1*b5 == b2*b4", "b4^2 == 4*b3*b5"),
            curvature=_curvature("b5", start=0.001),
        ),
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
    rm, gm = RSA_MODELS[_model_key(restricted)], RSA_MODELS[_model_key(general)]
    if rm.nonlinear or gm.nonlinear:  # the rotated ridge models: check points of the set
        if rm.name == gm.name:
            return True
        points = rm.sample(np.random.default_rng(20261301), 8)
        return all(gm.satisfied(b) for b in points)
    r, g = rm.matrix, gm.matrix
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
    direction: str = "down",
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
    direction
        For the rotated ridge models (SRRR, SRSQD): ``"down"`` (b3, b5 < -1e-6, a ridge;
        start values -0.01) or ``"up"`` (b3, b5 > 1e-6, a valley), as the RSA package
        writes them; ignored for the other models.

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

    bounds, starts = (), {}
    if spec.curvature:
        if direction not in spec.curvature:
            raise ValueError(f"direction={direction!r}: model {key!r} is fitted 'up' or 'down'")
        bounds, starts = spec.curvature[direction]
    if group_labels is None:
        suffixes: list[str | None] = [None]
        rhs = [f"{lab}*{term}" for lab, term in zip(B_NAMES, terms)]
    else:
        suffixes = list(_suffixes(group_labels))
        rhs = [
            "c(" + ", ".join(f"{lab}_{s}" for s in suffixes) + f")*{term}"
            for lab, term in zip(B_NAMES, terms)
        ]
    rhs = [(f"start({starts[lab]:g})*" if lab in starts else "") + r
           for lab, r in zip(B_NAMES, rhs)]
    rhs += list(controls)
    lines = [f"{outcome} ~ " + " + ".join(rhs)]
    for s in suffixes:
        lines += [_relabel(c, s) for c in spec.constraints + bounds + spec.nonlinear]
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
               "pvalue": chi2_pvalue(chisq, dfree)}
        if G == 2 and name != "all":
            se = float(np.sqrt(max(S[0, 0], 0.0)))
            row.update({"diff": float(d[0]), "se": se,
                        "ci_lower": float(d[0] - crit * se), "ci_upper": float(d[0] + crit * se)})
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(SURFACE_NAMES) + ["all"], name="parameter"))
