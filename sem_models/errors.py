"""The package's exceptions, in one place.

Every error that reaches a user of :func:`sem_models.sem` / :func:`sem_models.cfa` is one of

* :class:`ModelSyntaxError` -- the model text cannot be read, or names clash (duplicate
  statements, a ``:=`` name that is already a label, an unknown label); carries ``line`` and
  ``column`` (defined in :mod:`sem_models.model.syntax`, re-exported here);
* :class:`ModelError` -- the model or an option is not usable as given (an invalid option
  value, a ``group_partial`` entry the constraints do not touch, contradictory bounds);
* :class:`DataError` -- the data cannot be analysed with this model (names the column or
  group; defined in :mod:`sem_models.estimation.data`, re-exported here);
* :class:`EstimationError` -- the fit itself failed (start values that give a
  non-positive-definite implied covariance matrix, non-finite estimates).

All are :class:`ValueError` subclasses, so ``except ValueError`` catches every one of them.
Warnings (non-convergence, Heywood cases, identification) stay warnings.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ModelError", "EstimationError", "ModelSyntaxError", "DataError", "PACKAGE_ERRORS",
           "validate_level"]


class ModelError(ValueError):
    """The model or an option cannot be used as given (the message names the parameter or
    option and says what to do)."""


class EstimationError(ValueError):
    """The estimation failed (start values, non-finite values); the message names the
    parameter or group and says what to do."""


def validate_level(level) -> float:
    """A confidence level in (0, 1) as a float (``level=`` of :func:`sem_models.sem` and
    ``SEMFit.estimates``); otherwise :class:`ModelError`."""
    import math
    import numbers

    if isinstance(level, bool) or not isinstance(level, numbers.Real) \
            or not math.isfinite(float(level)) or not 0.0 < float(level) < 1.0:
        raise ModelError(f"level={level!r} is not a confidence level: give a number between 0 "
                         "and 1 (exclusive), e.g. 0.95")
    return float(level)


def __getattr__(name: str) -> Any:
    # re-exported lazily: importing this module stays free of numpy / pandas
    if name == "ModelSyntaxError":
        from .model.syntax import ModelSyntaxError
        return ModelSyntaxError
    if name == "DataError":
        from .estimation.data import DataError
        return DataError
    if name == "PACKAGE_ERRORS":
        from .estimation.data import DataError
        from .model.syntax import ModelSyntaxError
        return (ModelSyntaxError, ModelError, DataError, EstimationError)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
