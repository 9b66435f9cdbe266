"""Resampling: bootstrap of fitted models, Monte Carlo power, data simulation.

:func:`run_replications` (:mod:`.executor`) runs seeded, batched replications in this process,
in local processes or on a dask cluster with identical results; :class:`Refitter`
(:mod:`.refit`) refits a model to new data without rebuilding it; :func:`bootstrap`
(:mod:`.boot`) refits a model on ordinary, Bollen-Stine, parametric or cluster bootstrap
samples, :func:`bootstrap_statistic` (:mod:`.statistic`) bootstraps any statistic of a data
set (response surfaces), both with the intervals of :mod:`.intervals` and the resampling units
of :mod:`.units`; :func:`simulate_data` (:mod:`.simulate`), :func:`power`
(:mod:`.power_analysis`) and :func:`power_curve` (:mod:`.curve`) simulate from a population
model written in lavaan syntax.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> defining submodule (no public name is a submodule's name, see sem_models)

_PUBLIC = {
    "run_replications": "executor", "replication_rng": "executor",
    "CheckpointError": "executor",
    "bootstrap": "boot", "BootstrapResult": "boot", "bca_interval": "boot",
    "power": "power_analysis", "analytic_power": "power_analysis",
    "simulate_data": "simulate", "population_moments": "simulate", "simulate_fit": "simulate",
    "power_curve": "curve", "PowerCurve": "curve",
    "Refitter": "refit", "bootstrap_statistic": "statistic", "StatisticBootstrap": "statistic",
    "interval": "intervals", "Units": "units",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
