"""Inference: covariance matrix of the estimates, defined parameters, Wald tests.

* ``vcov`` of the free parameters from the expected information (lavaan's default for
  complete-data ML): ``V = T (N T' I T)^-1 T'`` with ``T`` the constraint map of
  :mod:`sem_models.model.constraints` (Bollen 1989, ch. 4; Lee & Bentler 1980 for the constrained case).
* Defined parameters ``:=`` and Wald tests by the delta method: for ``h(theta)`` with Jacobian
  ``J``, ``Var(h) = J V J'`` and ``W = h' (J V J')^-1 h ~ chi2(rank)`` (Wald 1943; Buse 1982).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..model.constraints import numerical_jacobian
from .distributions import chi2_sf, norm_ppf, norm_sf
from ..model.syntax import compile_expression, parse_model

__all__ = ["IdentificationWarning", "constrained_inverse", "wald_test", "delta_method"]


class IdentificationWarning(UserWarning):
    """The information matrix is singular: the model is probably not identified."""


def constrained_inverse(info_z: np.ndarray, T: np.ndarray, total_n: float, names: list[str]) -> np.ndarray:
    """Covariance matrix of the free parameters from the per-case information in z."""
    eig = np.linalg.eigvalsh(info_z) if info_z.size else np.zeros(0)
    if eig.size and eig.min() <= 1e-10 * max(1.0, eig.max()):
        import scipy.linalg

        null = scipy.linalg.null_space(info_z, rcond=1e-9)
        involved = np.flatnonzero(np.abs(T @ null).max(axis=1) > 1e-6) if null.size else []
        which = [names[k] for k in involved][:8]
        warnings.warn(
            "the information matrix is singular (smallest eigenvalue "
            f"{eig.min():.2e}): the model is probably not identified; parameters involved: "
            f"{which}. Fix a loading or variance per factor, or add constraints. Standard errors "
            "are not reported.", IdentificationWarning, stacklevel=4)
        return np.full((T.shape[0], T.shape[0]), np.nan)
    return T @ np.linalg.inv(total_n * info_z) @ T.T


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
