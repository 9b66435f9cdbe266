"""sem-models: structural equation models with lavaan-grade numbers in Python.

Fit a model with :func:`sem` or :func:`cfa` (lavaan syntax, one or many groups), compare
nested fits with :func:`compare`.  The pipeline: :mod:`.syntax` -> :mod:`.partable` ->
:mod:`.matrices` -> :mod:`.estimator` -> :mod:`.results`.
"""
from .api import HeywoodWarning, cfa, fit_model, sem
from .compare import compare
from .data import DataError
from .estimator import ConvergenceWarning
from .inference import IdentificationWarning
from .results import SEMFit
from .rsa import response_surface
from .syntax import ModelSyntaxError, parse_model

__version__ = "0.1.0"

__all__ = ["sem", "cfa", "fit_model", "compare", "SEMFit", "ModelSyntaxError", "DataError",
           "ConvergenceWarning", "IdentificationWarning", "HeywoodWarning", "parse_model", "__version__"]
