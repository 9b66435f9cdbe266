"""Inference: covariance matrix of the estimates, defined parameters, Wald tests.

* ``vcov`` of the free parameters from the expected information (lavaan's default for
  complete-data ML): ``V = T (N T' I T)^-1 T'`` with ``T`` the constraint map of
  :mod:`sem_models.model.constraints` (Bollen 1989, ch. 4; Lee & Bentler 1980 for the constrained case).
* Defined parameters ``:=`` and Wald tests by the delta method: for ``h(theta)`` with Jacobian
  ``J``, ``Var(h) = J V J'`` and ``W = h' (J V J')^-1 h ~ chi2(rank)`` (Wald 1943; Buse 1982).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..linalg import spd_inverse_factor
from ..model.constraints import numerical_jacobian, selection_of
from .distributions import chi2_sf, norm_ppf, norm_sf
from ..model.syntax import compile_expression, parse_model

__all__ = ["IdentificationWarning", "constrained_inverse", "constrained_variances",
           "identification_check", "scaled_condition_ratio", "scaled_information", "wald_test", "delta_method"]


class IdentificationWarning(UserWarning):
    """The information matrix is singular: the model is probably not identified."""


#: smallest eigenvalue of the correlation-scaled information (unit diagonal) below which the
#: model is taken as not identified
IDENTIFICATION_TOLERANCE = 1e-10


def scaled_information(info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(D I D, d)`` with ``D = diag(d)``, ``d = diag(I)^(-1/2)``: the information rescaled to
    unit diagonal, invariant to the units of the parameters (a variable multiplied by c scales
    its parameters, and their rows of I, by powers of c; Gill, Murray & Wright 1981, section
    8.7 on scaling).  Parameters without information (diagonal 0) get d = 0."""
    diag = np.diag(info).copy()
    ok = np.isfinite(diag) & (diag > 0)
    d = np.zeros_like(diag)
    d[ok] = 1.0 / np.sqrt(diag[ok])
    return info * np.outer(d, d), d


def _scaled_spectrum(info_z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scaled, dead, eigenvalues)``: the correlation-scaled information (non-finite
    entries 0), the parameters without (finite) information and the eigenvalues."""
    scaled, d = scaled_information(info_z)
    dead = d == 0
    if not np.all(np.isfinite(scaled)):
        dead = dead | ~np.isfinite(scaled).all(axis=1)
        scaled = np.where(np.isfinite(scaled), scaled, 0.0)
    return scaled, dead, np.linalg.eigvalsh(scaled)


def scaled_condition_ratio(info_z: np.ndarray) -> float:
    """Smallest eigenvalue of the correlation-scaled information relative to the largest (the
    inverse condition number; Belsley, Kuh & Welsch 1980, ch. 3); 0 when a parameter has no
    information, 1 for an empty matrix."""
    if not info_z.size:
        return 1.0
    _, dead, eig = _scaled_spectrum(info_z)
    return 0.0 if dead.any() else float(eig.min() / max(eig.max(), 1e-300))


def identification_check(info_z: np.ndarray, T: np.ndarray, names: list[str],
                         stacklevel: int = 4, ratio: Optional[float] = None) -> bool:
    """True when the information in z is non-singular, judged scale-free: its
    :func:`scaled_condition_ratio` (``ratio`` when the caller has it) above
    :data:`IDENTIFICATION_TOLERANCE`.  Otherwise warns :class:`IdentificationWarning` naming
    the parameters in the null space and returns False."""
    if not info_z.size:
        return True
    if ratio is None:
        ratio = scaled_condition_ratio(info_z)
    if ratio > IDENTIFICATION_TOLERANCE:
        return True
    scaled, dead, eig = _scaled_spectrum(info_z)
    import scipy.linalg

    null = scipy.linalg.null_space(scaled, rcond=1e-8)
    in_null = np.abs(null).max(axis=1) > 1e-6 if null.size else np.zeros(len(dead), bool)
    in_null |= dead
    involved = np.flatnonzero((np.abs(T)[:, in_null] > 1e-12).any(axis=1)) \
        if in_null.any() else []
    which = [names[k] for k in involved][:8]
    warnings.warn(
        "the information matrix is singular (smallest eigenvalue of the scale-free "
        f"information {max(eig.min(), 0.0):.2e} relative to the largest): the model is "
        f"probably not identified; parameters involved: {which}. Fix a loading or variance "
        "per factor, or add constraints. Standard errors are not reported.",
        IdentificationWarning, stacklevel=stacklevel)
    return False


def constrained_inverse(info_z: np.ndarray, T: np.ndarray, total_n: float, names: list[str],
                        selection: Optional[np.ndarray] = None) -> np.ndarray:
    """Covariance matrix of the free parameters from the per-case information in z:
    ``T (N I_z)^-1 T'`` (Bollen 1989, ch. 4), computed from the Cholesky factor of the
    correlation-scaled information ``R`` (scale-free: rescaling a variable rescales the SEs and
    leaves z values unchanged).  NaN with an :class:`IdentificationWarning` when singular.
    ``selection``: the z coordinate of each row of ``T`` when ``T`` only selects (as
    ``ParameterMap.selection``), else read off ``T``.

    The identification check of :func:`identification_check` needs the extreme eigenvalues
    of ``R``; once ``R^-1`` is known, ``lambda_max <= tr R = n`` and ``lambda_min >= 1 /
    tr R^-1`` (Horn & Johnson 2013, section 4.2) settle it without an eigendecomposition
    unless the bound is inconclusive (then the eigenvalues decide, as before)."""
    if not info_z.size:
        return np.zeros((T.shape[0], T.shape[0]))
    scaled, d = scaled_information(info_z)
    inverse_scaled = None
    if np.all(d > 0) and np.all(np.isfinite(scaled)):
        factor_inverse = spd_inverse_factor(scaled)
        if factor_inverse is not None:
            inverse_scaled = factor_inverse.T @ factor_inverse
            if not 1.0 / np.trace(inverse_scaled) > IDENTIFICATION_TOLERANCE * len(d):
                inverse_scaled = None  # the bound does not settle the check
    if inverse_scaled is None:
        if not identification_check(info_z, T, names, stacklevel=5):
            return np.full((T.shape[0], T.shape[0]), np.nan)
        factor_inverse = spd_inverse_factor(scaled)
        if factor_inverse is None:
            warnings.warn(
                "the information matrix is not positive definite: the model is probably not "
                "identified or the solution is not a minimum. Standard errors are not "
                "reported.", IdentificationWarning, stacklevel=4)
            return np.full((T.shape[0], T.shape[0]), np.nan)
        inverse_scaled = factor_inverse.T @ factor_inverse
    inverse = inverse_scaled * np.outer(d, d) / total_n
    if selection is None:
        selection = selection_of(T)
    if selection is not None:  # each free row is one z coordinate: a gather, no products
        return inverse[np.ix_(selection, selection)]
    return T @ inverse @ T.T


def constrained_variances(info_z, T: np.ndarray, total_n: float,
                          selection: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """The diagonal of :func:`constrained_inverse` (variances of the free parameters) without
    the dense inverse, for a block-arrow information of a multi-group model
    (:class:`~sem_models.estimation.structured.BlockArrow`; time linear in the number of
    groups) and a map ``T`` that only selects (``selection``: the z coordinate of each free
    row, else read off ``T``).

    The identification check of :func:`identification_check` is decided from bounds on the
    eigenvalues of the correlation-scaled information ``R`` (unit diagonal, positive definite
    once its Cholesky factorisation succeeds): ``lambda_max <= tr R = n`` and
    ``lambda_min >= 1 / tr R^-1`` (Horn & Johnson 2013, section 4.2), so
    ``1 / tr R^-1 > tol n`` guarantees that the dense check passes.  Returns None (the caller
    takes the dense path, with its warnings) whenever the structure does not apply or the
    bounds do not settle the check."""
    from ..estimation.structured import BlockArrow

    if not isinstance(info_z, BlockArrow):
        return None
    if selection is None:
        selection = selection_of(T)
    if selection is None:
        return None
    scaled, d = info_z.scaled()
    if not np.all(d > 0):
        return None
    inverse_diag = scaled.inverse_diagonal()
    if inverse_diag is None or not np.all(np.isfinite(inverse_diag)):
        return None
    if not 1.0 / inverse_diag.sum() > IDENTIFICATION_TOLERANCE * len(d):
        return None
    return (inverse_diag * d * d / total_n)[selection]


def delta_method(func, theta: np.ndarray, vcov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and covariance of ``func(theta)`` by the delta method."""
    value = np.atleast_1d(func(theta))
    jac = numerical_jacobian(func, theta)
    return value, jac @ vcov @ jac.T


def wald_test(constraints: str, func_factory, theta: np.ndarray, vcov: np.ndarray) -> dict:
    """Wald test of ``constraints`` (``"a == b; c == 0"``) on the estimates.

    ``func_factory(expressions)`` returns a function theta_free -> vector of ``lhs - rhs``.
    """
    parsed = parse_model(constraints)
    if parsed.statements or any(c.op != "==" for c in parsed.constraints):
        raise ValueError("Wald constraints must be equalities like 'a == b; c == 0'")
    exprs = [(compile_expression(c.lhs), compile_expression(c.rhs)) for c in parsed.constraints]
    func = func_factory(exprs)
    value, cov = delta_method(func, theta, vcov)
    rank = np.linalg.matrix_rank(cov, tol=1e-10 * max(1.0, np.abs(cov).max()))
    stat = float(value @ np.linalg.pinv(cov, rcond=1e-10) @ value)
    return {"stat": stat, "df": int(rank), "p_value": float(chi2_sf(stat, rank)),
            "constraints": [f"{c.lhs} == {c.rhs}" for c in parsed.constraints]}


def z_table(est: np.ndarray, se: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """z statistics, two-sided p-values and Wald confidence intervals (columns as arrays)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    crit = norm_ppf(0.5 + level / 2)
    return {"z": z, "pvalue": 2 * norm_sf(np.abs(z)),
            "ci_lower": est - crit * se, "ci_upper": est + crit * se}
