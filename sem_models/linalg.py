"""Small symmetric positive-definite matrices through LAPACK's Cholesky routines.

The matrices of a fit are small (a few to a few hundred rows) and factorised many times, so
numpy's ``linalg`` wrappers (argument checks, error-state contexts, a general LU inverse) cost
more than the arithmetic.  These helpers call LAPACK directly (``potrf``: Cholesky factor;
``potrs``: solve with it; ``trtri``: inverse of the triangular factor; Golub & Van Loan 2013,
section 4.2) and report a matrix that is not positive definite as ``None`` instead of an
exception, which is how the callers branch.  A factor with a non-finite diagonal (NaN input,
which some LAPACK builds do not flag) also counts as not positive definite.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotrs, dtrtri

__all__ = ["identity", "cholesky_lower", "spd_inverse", "spd_solve", "spd_inverse_factor"]

_IDENTITIES: dict[int, np.ndarray] = {}


def identity(n: int) -> np.ndarray:
    """The n x n identity matrix, read-only and shared (kept for n <= 512)."""
    eye = _IDENTITIES.get(n)
    if eye is None:
        eye = np.eye(n)
        eye.flags.writeable = False
        if n <= 512:
            _IDENTITIES[n] = eye
    return eye


def _finite_diagonal(factor: np.ndarray) -> bool:
    """Whether the diagonal of a Cholesky factor is finite (its sum as Python floats: a
    third of the cost of ``trace()`` on small matrices)."""
    return math.isfinite(sum(factor.diagonal().tolist()))


def cholesky_lower(matrix: np.ndarray) -> Optional[np.ndarray]:
    """The lower Cholesky factor ``L`` (``matrix = L L'``; the strict upper triangle of the
    result is not zeroed and must not be read), or None when ``matrix`` is not positive
    definite.  ``matrix`` is not modified."""
    factor, info = dpotrf(matrix, lower=1, clean=0)
    if info != 0 or not _finite_diagonal(factor):
        return None
    return factor


def spd_solve(matrix: np.ndarray, rhs: np.ndarray) -> Optional[np.ndarray]:
    """``matrix^-1 rhs`` by the Cholesky factorisation, or None when ``matrix`` is not
    positive definite."""
    factor = cholesky_lower(matrix)
    if factor is None:
        return None
    return dpotrs(factor, rhs, lower=1)[0]


def spd_inverse(matrix: np.ndarray) -> Optional[tuple[np.ndarray, float]]:
    """``(inverse, log-determinant)`` of a positive-definite matrix, or None when it is not
    positive definite.  The inverse solves against the identity with the Cholesky factor
    (``potrs``), the log-determinant is ``2 sum log L_ii``."""
    factor = cholesky_lower(matrix)
    if factor is None:
        return None
    logdet = 2.0 * float(np.log(factor.diagonal()).sum())
    return dpotrs(factor, identity(matrix.shape[0]), lower=1)[0], logdet


def spd_inverse_factor(matrix: np.ndarray) -> Optional[np.ndarray]:
    """``L^-1`` for the lower Cholesky factor ``L`` of ``matrix`` (so that ``matrix^-1 =
    L^-T L^-1``), or None when ``matrix`` is not positive definite."""
    factor, info = dpotrf(matrix, lower=1, clean=1)
    if info != 0 or not _finite_diagonal(factor):
        return None
    inverse, info = dtrtri(factor, lower=1)
    return inverse if info == 0 else None
