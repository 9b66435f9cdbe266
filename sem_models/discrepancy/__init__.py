"""Discrepancy models: response surface analysis and latent congruence.

* :mod:`.surface` -- surface parameters a1..a5, stationary point, principal axes, congruence
  checks (the formulas; no SEM engine);
* :mod:`.prepare` -- centring and polynomial terms; :mod:`.models` -- RSA model syntax and
  model comparison; :mod:`.bootstrap` -- percentile / BCa intervals; :mod:`.ols` -- the
  observed-score polynomial;
* :mod:`.rsa` -- :func:`response_surface`, the models fitted with the SEM engine;
  :mod:`.plots` -- figures; :mod:`.congruence` -- the latent congruence model.

Public names load their module on first use (scipy stays unloaded until needed).
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    **dict.fromkeys([
        'SurfaceWarning', 'B_NAMES', 'SURFACE_NAMES', 'NONLINEAR_NAMES',
        'SURFACE_MATRIX', 'surface_parameters', 'nonlinear_quantities',
        'nonlinear_jacobian', 'stationary_point', 'principal_axes', 'surface_table',
        'surface_quantities', 'congruence_check',
    ], 'surface'),
    **dict.fromkeys([
        'discrepancy_shares', 'center', 'term_names', 'polynomial_terms',
    ], 'prepare'),
    **dict.fromkeys([
        'RSAModel', 'RSA_MODELS', 'DEFAULT_MODELS', 'is_nested', 'coefficient_labels',
        'polynomial_syntax', 'rsa_models', 'aicc', 'aicc_table', 'surface_group_tests',
    ], 'models'),
    **dict.fromkeys([
        'BootstrapResult', 'bootstrap_surface',
    ], 'bootstrap'),
    **dict.fromkeys([
        'polynomial_ols',
    ], 'ols'),
    **dict.fromkeys([
        'ResponseSurface', 'response_surface',
    ], 'rsa'),
    **dict.fromkeys([
        'congruence_items', 'congruence_syntax', 'congruence_starts', 'CongruenceFit',
        'fit_congruence',
    ], 'congruence'),
    **dict.fromkeys([
        'surface_grid', 'plot_surface', 'plot_contour',
    ], 'plots'),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
