"""User entry points: :func:`sem` and :func:`cfa` run the pipeline and return a :class:`SEMFit`.

syntax (:mod:`.syntax`) -> parameter table (:mod:`.partable`) -> matrices (:mod:`.matrices`)
-> estimator (:mod:`.estimator`) -> results (:mod:`.results`).
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from .model.constraints import build_parameter_map
from .estimation.data import DataError, prepare_data
from .estimation.optimizer import ConvergenceWarning, Problem, optimize
from .estimation.ml import MLGroupLoss
from .model.graph import check_model_graph
from .model.matrices import RAMModel
from .model.partable import ParTable, build_partable, model_variables
from .results import SEMFit
from .model.start import adjust_intercept_starts, start_values
from .model.syntax import parse_model

__all__ = ["sem", "cfa", "fit_model"]

ESTIMATORS = ("ML", "MLM", "MLR")


class HeywoodWarning(UserWarning):
    """A variance estimate is negative (a Heywood case)."""


def _warn_heywood(partable: ParTable, values: np.ndarray, variables, group_labels) -> None:
    if not np.any(values < 0):
        return
    lhs, group = partable["lhs"], partable["group"]
    variances = (partable["op"] == "~~") & (lhs == partable["rhs"])
    negative = np.flatnonzero(variances & (values < 0) & (group > 0))
    if not len(negative):
        return
    where = [f"{lhs[r]} ({values[r]:.3g}"
             + (f", group {group_labels[group[r] - 1]!r})" if len(group_labels) > 1 else ")")
             for r in negative]
    kind = "latent" if set(lhs[negative]) <= set(variables.lv) else "residual"
    warnings.warn(
        f"Heywood case: negative {kind} variance estimate(s) for {', '.join(where)}. The model "
        "may be misspecified, a factor may have too few or weak indicators, or the sample may be "
        "too small; inspect the estimates and consider respecifying the model.",
        HeywoodWarning, stacklevel=4)


def sem(model: str, data: pd.DataFrame, *, group: Optional[str] = None,
        group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
        std_lv: bool = False, meanstructure: Union[bool, str] = "default",
        fixed_x: bool = True, orthogonal: bool = False, estimator: str = "ML",
        missing: str = "listwise", cluster: Optional[str] = None,
        group_labels: Optional[Sequence] = None, level: float = 0.95,
        max_iter: int = 500, se: Optional[str] = None, test=None,
        information: Optional[str] = None, start=None) -> SEMFit:
    """Fit a structural equation model written in lavaan syntax (lavaan's ``sem()``).

    Parameters follow lavaan's names with ``.`` replaced by ``_``: ``group`` (column name),
    ``group_equal`` (e.g. ``["loadings", "intercepts"]``), ``group_partial`` (e.g.
    ``["x3~1"]``), ``std_lv``, ``meanstructure``, ``fixed_x``, ``orthogonal``, ``estimator``,
    ``missing`` and ``cluster``; ``max_iter`` bounds the optimizer's iterations.
    ``estimator`` is ``"ML"``, ``"MLM"`` (Satorra-Bentler) or ``"MLR"`` (Huber-White,
    Yuan-Bentler); ``missing="fiml"`` (alias ``"ml"``) fits by full-information ML;
    ``se``, ``test`` and ``information`` override the estimator's defaults as in lavaan
    (:func:`sem_models.inference.options.resolve_options`).  ``start`` (lavaan's
    ``start = fit``): a fitted :class:`SEMFit` of the same model and options (or one value per
    parameter-table row) whose estimates start the free parameters (warm starts for refits).
    Returns a :class:`~sem_models.results.SEMFit`.
    """
    return fit_model(model, data, group=group, group_equal=group_equal,
                     group_partial=group_partial, std_lv=std_lv, meanstructure=meanstructure,
                     fixed_x=fixed_x, orthogonal=orthogonal, estimator=estimator,
                     missing=missing, cluster=cluster, group_labels=group_labels, level=level,
                     max_iter=max_iter, se=se, test=test, information=information,
                     start=start)


def cfa(model: str, data: pd.DataFrame, **options) -> SEMFit:
    """Confirmatory factor analysis (lavaan's ``cfa()``); same options and defaults as :func:`sem`."""
    return sem(model, data, **options)


def fit_model(model: str, data: pd.DataFrame, *, group=None, group_equal=(), group_partial=(),
              std_lv=False, meanstructure="default", fixed_x=True, orthogonal=False,
              estimator="ML", missing="listwise", cluster=None, group_labels=None,
              level=0.95, max_iter=500, se=None, test=None, information=None,
              start=None) -> SEMFit:
    estimator = estimator.upper()
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r} is not supported; choose from {ESTIMATORS}")
    if isinstance(group_equal, str):
        group_equal = [group_equal]
    if isinstance(group_partial, str):
        group_partial = [group_partial]
    missing = {"ml": "fiml", "fiml": "fiml", "listwise": "listwise", "default": "listwise"}.get(
        missing, missing)
    if estimator == "MLM" and missing == "fiml":
        raise ValueError("estimator='MLM' (Satorra-Bentler) needs complete data and cannot be "
                         "combined with missing='fiml'; use estimator='MLR' for robust "
                         "inference with missing data, or missing='listwise'")
    from .inference.options import resolve_options
    inference = resolve_options(estimator, missing, cluster, se=se, test=test,
                                information=information)
    parsed = parse_model(model)
    variables = model_variables(parsed.statements)
    where = {}
    for st in parsed.statements:
        for name in (st.lhs, st.rhs):
            where.setdefault(name, (st.line, st.col))
    if missing == "fiml" and fixed_x and variables.ov_x:
        from .estimation.fiml import prepare_data_fixed_x
        obs = prepare_data_fixed_x(data, variables, group=group, cluster=cluster, where=where,
                                   group_labels=group_labels)
    else:
        obs = prepare_data(data, variables.ov, group=group, missing=missing, cluster=cluster,
                           where=where, group_labels=group_labels)
    n_groups = len(obs.groups)
    if meanstructure == "default":
        meanstructure = (n_groups > 1 or missing == "fiml" or cluster is not None
                         or any(k in ("intercepts", "means") for k in group_equal))
    elif not meanstructure and (missing == "fiml" or cluster is not None):
        meanstructure = True  # as lavaan: FIML and cluster= always model the means
    partable, variables = build_partable(
        parsed, n_groups, std_lv=std_lv, meanstructure=bool(meanstructure), fixed_x=fixed_x,
        orthogonal=orthogonal, group_equal=group_equal, group_partial=group_partial)
    graph = check_model_graph(partable, variables)
    model_ = RAMModel(partable, variables, n_groups)
    if missing == "fiml":
        # FIML: EM estimates of the saturated moments serve as the sample moments
        from .estimation.fiml import FIMLGroupLoss
        fiml_losses = [FIMLGroupLoss(g.X) for g in obs.groups]
        covs = [loss.cov for loss in fiml_losses]
        means = [loss.mean for loss in fiml_losses]
    else:
        covs = [g.cov for g in obs.groups]
        means = [g.mean for g in obs.groups]
    values = start_values(partable, variables, covs, means)
    values = adjust_intercept_starts(values, partable, model_, means)
    if start is not None:  # warm start (lavaan's start = fit): free rows from its estimates
        previous = np.asarray(getattr(start, "values", start), float)
        if previous.shape != values.shape:
            raise ValueError(f"start= has {previous.size} values but the parameter table of "
                             f"this model has {values.size} rows: fit the same model")
        free = partable["free"] > 0
        values[free] = previous[free]
    pmap = build_parameter_map(partable)
    n_moments = n_groups * (len(variables.ov) * (len(variables.ov) + 1) // 2
                            + (len(variables.ov) if model_.meanstructure else 0))
    n_fixed_x = int(np.count_nonzero(partable["exo"] == 1))
    if pmap.n_z > n_moments - n_fixed_x:
        raise DataError(
            f"the model has {pmap.n_z} free parameters but the data provide only "
            f"{n_moments - n_fixed_x} sample moments: the model is not identified (negative "
            "degrees of freedom); add constraints or fix parameters")
    if cluster is not None:
        from .inference.options import check_clusters
        check_clusters(obs, cluster, pmap.n_z)
    if missing == "fiml":
        losses = fiml_losses
    else:
        losses = [MLGroupLoss(c, m, g.nobs, model_.meanstructure)
                  for c, m, g in zip(covs, means, obs.groups)]
    problem = Problem(model_, losses, pmap, values)
    z0 = pmap.z_from_free(values[pmap.free_rows])
    result = optimize(problem, z0, max_iter=max_iter)
    if not result.converged:
        warnings.warn(
            f"the optimizer did not converge ({result.message}; largest gradient "
            f"{result.max_gradient:.2e} after {result.iterations} iterations). The estimates are "
            "not trustworthy: check the model for misspecification, rescale variables with very "
            "different variances, or give start values with start().", ConvergenceWarning,
            stacklevel=3)
    _warn_heywood(partable, problem.values(result.z), variables, obs.group_labels)
    options = dict(group=group, group_equal=list(group_equal), group_partial=list(group_partial),
                   std_lv=std_lv, meanstructure=bool(meanstructure), fixed_x=fixed_x,
                   orthogonal=orthogonal, estimator=estimator, missing=missing, cluster=cluster,
                   level=level, **inference)
    return SEMFit(model, partable, variables, model_, obs, problem, result, graph, options)
