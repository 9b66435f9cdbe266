"""sem-models: structural equation models with lavaan-grade numbers in Python.

Fit a model with :func:`sem` or :func:`cfa` (lavaan syntax, one or many groups), compare
nested fits with :func:`compare`.  The pipeline, one subpackage per stage (docs/architecture.md):
:mod:`.model` (syntax -> parameter table -> matrices) -> :mod:`.estimation` (observed data,
loss families, optimizer) -> :mod:`.inference` (standard errors, tests, fit measures) ->
:mod:`.results`; :mod:`.api` runs it.  :mod:`.discrepancy` holds the response surface and
latent congruence models, :mod:`.study` the alliance study, :mod:`.cli` the command line.

The public names are loaded on first use (lazy loading as in Scientific Python's SPEC 1):
``import sem_models`` stays light, and numpy, pandas and the engine are imported when a
function or class is first looked up.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the submodule that defines it (no public name may be a submodule's name: the
# import system would rebind the package attribute to the module once that module is imported)
_PUBLIC = {
    "sem": "api", "cfa": "api", "growth": "api", "fit_model": "api", "HeywoodWarning": "api",
    "compare": "inference.lrt", "DataError": "estimation.data",
    "ConvergenceWarning": "estimation.optimizer", "IdentificationWarning": "inference.wald",
    "SEMFit": "results", "response_surface": "discrepancy.rsa",
    "ModelSyntaxError": "model.syntax", "parse_model": "model.syntax",
    "ModelError": "errors", "EstimationError": "errors",
    "polychoric": "estimation.categorical",
    "collapse_categories": "estimation.categorical_data",
    "bootstrap": "resampling.boot", "simulate_data": "resampling.simulate",
    "power": "resampling.power_analysis", "analytic_power": "resampling.power_analysis",
    "power_curve": "resampling.curve",
}
# subpackages and modules, plus the module names users imported before the stage layout
# (``sem_models.surface``, ``sem_models.robust``, ...: thin re-export modules)
_SUBMODULES = {
    "api", "cli", "datasets", "diagram", "errors", "multilevel", "multilevel_results", "results",
    "results_inspect",
    "summary", "linalg",
    "model", "estimation", "inference", "discrepancy", "study", "resampling",
    "congruence", "outcomes", "robust", "rsa", "surface",
}

__all__ = ["sem", "cfa", "growth", "fit_model", "compare", "SEMFit", "ModelSyntaxError", "DataError",
           "ModelError", "EstimationError",
           "ConvergenceWarning", "IdentificationWarning", "HeywoodWarning", "parse_model",
           "response_surface", "polychoric", "collapse_categories", "bootstrap",
           "simulate_data", "power", "analytic_power", "power_curve", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


#: the submodules a user imports directly (documented in the README); ``dir(sem_models)``
#: lists them with the public names and nothing else (the engine's stage subpackages and
#: modules stay importable by name)
_DOCUMENTED_SUBMODULES = ("datasets", "diagram", "study", "outcomes", "congruence", "robust")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_DOCUMENTED_SUBMODULES))


if TYPE_CHECKING:  # what static analysis and IDEs see
    from .api import HeywoodWarning, cfa, fit_model, growth, sem
    from .inference.lrt import compare
    from .estimation.data import DataError
    from .estimation.optimizer import ConvergenceWarning
    from .inference.wald import IdentificationWarning
    from .results import SEMFit
    from .discrepancy.rsa import response_surface
    from .model.syntax import ModelSyntaxError, parse_model
    from .errors import EstimationError, ModelError
    from .resampling.boot import bootstrap
    from .resampling.curve import power_curve
    from .resampling.power_analysis import analytic_power, power
    from .resampling.simulate import simulate_data
