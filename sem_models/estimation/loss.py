"""The loss-family interface: what the optimizer and inference need from one group's loss.

A fit minimises ``f(theta) = sum_g (N_g / N) F_g(moments_g(theta))`` where ``F_g`` is one group's
discrepancy between its data and the model-implied moments (``GroupMoments`` from
:mod:`sem_models.model.matrices`).  Each estimator family supplies ``F_g`` as a class that
implements :class:`GroupLoss`; the optimizer (:mod:`.optimizer`) chains its derivatives with
respect to the implied moments through the model's Jacobian (``d_cov``, ``d_mean``: one slice per
free parameter) and sums over groups.  Families so far:

* :class:`~.ml.MLGroupLoss` -- normal-theory ML with complete data (sample moments);
* :class:`~.fiml.FIMLGroupLoss` -- full-information ML with missing data (casewise, grouped by
  missing-data pattern; EM moments as the unrestricted model).

A new family (WLS for ordinal data, two-level ML) is a new class beside these: it needs no
change to the optimizer.  Inference uses ``nobs``, ``cov``/``mean`` (the unrestricted model's
moments: sample or EM) and, for the likelihood families, the pieces in :mod:`sem_models.inference`.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol, runtime_checkable

import numpy as np

from ..model.matrices import GroupMoments

__all__ = ["GroupLoss", "HessianLoss"]


@runtime_checkable
class GroupLoss(Protocol):
    """One group's discrepancy ``F_g`` as a function of its model-implied moments."""

    nobs: int  # cases in the group: the weight of the group is nobs / total
    meanstructure: bool  # whether the means enter the discrepancy
    cov: np.ndarray  # the unrestricted model's covariance matrix (sample or EM estimate)
    mean: np.ndarray  # the unrestricted model's means

    def value(self, mom: GroupMoments) -> float:
        """``F_g`` at the implied moments (``np.inf`` where they are inadmissible)."""

    def derivatives(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                    info: bool = True) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Gradient of ``F_g`` for the q parameters whose moment derivatives are ``d_cov``
        (q x p x p) and ``d_mean`` (q x p), and the expected information per case (q x q) when
        ``info`` (else None)."""


@runtime_checkable
class HessianLoss(GroupLoss, Protocol):
    """A loss with an analytic observed Hessian: the optimizer then finishes with Newton steps."""

    def hessian(self, mom: GroupMoments, d_cov: np.ndarray, d_mean: np.ndarray,
                second: Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]) -> np.ndarray:
        """Observed Hessian of ``F_g``; ``second(W, r)`` returns the model's second-order term
        ``tr(W d2Sigma) - 2 r' d2mu`` for ``W = dF/dSigma`` and ``r = -(dF/dmu) / 2``."""
