"""Two-level structural equation models (lavaan's ``level:`` syntax with ``cluster=``).

:func:`fit_twolevel` is what :func:`sem_models.sem` runs when the model has ``level:``
blocks; it returns a :class:`TwoLevelSEMFit`.  The pipeline is the one of one-level models:

    level blocks (:mod:`.model.levels`) -> parameter table with block / level columns
    -> one RAM model per block -> :class:`~.estimation.twolevel_loss.TwoLevelLoss` per group
    -> the unchanged optimizer -> :class:`TwoLevelSEMFit`

The saturated (h1) two-level model is fitted first, with its between covariance matrix kept
positive semi-definite (Fisher scoring; EM and Newton with a Cholesky factor when the maximum
is on the boundary, as it often is with small ICCs; :func:`.estimation.twolevel_fit.fit_h1`):
it gives the chi-square's reference log-likelihood, the ICCs, the fixed.x values of the
covariates of each level and the start values.  Rows need not be sorted by cluster.

Small ICCs and few clusters (the usual case in applied data) make the between level fragile:
level-2 factor variances start at no less than a fraction of the indicators' within
variances, a search that does not converge is restarted from lavaan-like "simple" between
start values (:func:`_search`), a model whose implied between covariance matrix is not
positive semi-definite gets lavaan's chi-square rule (negative values set to 0), and the
Heywood and convergence warnings name the low-ICC variables and the fixes (level-2 residual
variances fixed to 0, ``std_lv=True``, a one-level model with cluster-robust SEs).  Failures
are :class:`~sem_models.errors.EstimationError` that say what to do.  Estimators: ``"ML"`` and ``"MLR"`` (cluster-robust SEs, Yuan-Bentler test), with
``missing="fiml"`` (alias ``"ml"``) full-information ML (Rosseel 2021).  Several groups
(``group=``) fit the same two-level model in each group, with ``group_equal`` /
``group_partial`` constraints across groups and labels across groups and levels.

Not (yet) available for two-level fits: modification indices, factor scores, the path
diagram, the LISREL-matrix keys of ``inspect``, MLM and the WLS family, random slopes, three
or more levels.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd

from .errors import EstimationError, ModelError
from .estimation.data import DataError, prepare_data
from .estimation.optimizer import STALL_ITERATIONS, ConvergenceWarning, Problem, optimize
from .estimation.twolevel import (TwoLevelData)
from .estimation.twolevel_fit import (TwoLevelFit, fit_h1)
from .estimation.twolevel_loss import TwoLevelModel, twolevel_loss
from .model.constraints import build_parameter_map
from .model.levels import (BlockView, build_twolevel_partable, parse_twolevel,
                           union_variables)
from .model.partable import model_variables
from .model.start import adjust_intercept_starts, apply_start, start_values
from .multilevel_results import LEVEL_LABELS, TwoLevelSEMFit, _h1_count

__all__ = ["fit_twolevel", "TwoLevelSEMFit", "LEVEL_LABELS"]

#: names of the levels in results (``implied()``, ``inspect("h1")``, ``estimates()``)
TWOLEVEL_ESTIMATORS = ("ML", "MLR")


def _twolevel_options(estimator: str, se, test, information) -> dict:
    """lavaan 0.6-14's defaults for two-level models: ML ``se="standard"``, MLR
    ``se="robust.huber.white"`` with ``test="yuan.bentler.mplus"``; observed information."""
    if estimator not in TWOLEVEL_ESTIMATORS:
        raise ModelError(f"estimator={estimator!r} is not available for two-level models; "
                         f"choose from {TWOLEVEL_ESTIMATORS}")
    d_se, d_test = (("standard", "standard") if estimator == "ML"
                    else ("robust.huber.white", "yuan.bentler.mplus"))
    se = d_se if se is None else se
    test = d_test if test is None else test
    information = "observed" if information is None else information
    if se not in ("standard", "robust.huber.white", "none"):
        raise ModelError(f"se={se!r} is not available for two-level models; choose "
                         "'standard', 'robust.huber.white' or 'none'")
    tests = [test] if isinstance(test, str) else list(test)
    for t in tests:
        if t not in ("standard", "yuan.bentler.mplus", "none"):
            raise ModelError(f"test={t!r} is not available for two-level models; choose "
                             "'standard' or 'yuan.bentler.mplus'")
    if information not in ("observed", "expected"):
        raise ModelError("information must be 'observed' or 'expected'")
    return {"se": se, "test": test, "information": information,
            "observed_information": ("hessian", "hessian"), "h1_information": "structured"}


def fit_twolevel(model: str, data: pd.DataFrame, *, group=None, group_equal=(),
                 group_partial=(), std_lv=False, meanstructure="default", fixed_x=True,
                 orthogonal=False, estimator="ML", missing="listwise", cluster=None,
                 group_labels=None, level=0.95, max_iter=500, se=None, test=None,
                 information=None, start=None) -> "TwoLevelSEMFit":
    """Fit a two-level model (syntax with ``level: 1`` / ``level: 2`` blocks); the options
    are those of :func:`sem_models.sem` (``meanstructure`` is always on)."""
    estimator = str(estimator).upper()
    inference = _twolevel_options(estimator, se, test, information)
    if isinstance(group_equal, str):
        group_equal = [group_equal]
    if isinstance(group_partial, str):
        group_partial = [group_partial]
    missing = {"ml": "fiml", "fiml": "fiml", "listwise": "listwise", "default": "listwise"}.get(
        missing, missing)
    syntax = parse_twolevel(model)
    if cluster is None:
        raise ModelError("the model has 'level:' blocks (a two-level model) but no cluster= "
                         "variable: give the column that identifies the clusters, e.g. "
                         "sem(model, data, cluster='school')")
    v1 = model_variables(syntax.levels[1].statements)
    v2 = model_variables(syntax.levels[2].statements)
    union = union_variables(v1, v2)
    where: dict = {}
    for lv in (1, 2):
        for st in syntax.levels[lv].statements:
            for name in (st.lhs, st.rhs):
                where.setdefault(name, (st.line, st.col))
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if cluster not in data.columns:
        raise DataError(f"the cluster column {cluster!r} is not in the data")
    obs = prepare_data(data, union.ov, group=group, missing=missing, cluster=cluster,
                       where=where, group_labels=group_labels)
    n_groups = len(obs.groups)
    tl = build_twolevel_partable(syntax, n_groups, std_lv=std_lv, fixed_x=fixed_x,
                                 orthogonal=orthogonal, group_equal=group_equal,
                                 group_partial=group_partial)
    table = tl.table
    datasets = []
    for gd in obs.groups:
        try:
            datasets.append(TwoLevelData(gd.X, gd.cluster, names=union.ov, within=tl.within,
                                         between=tl.between))
        except DataError as exc:
            where_g = f" (group {gd.label!r})" if n_groups > 1 else ""
            raise DataError(f"{exc}{where_g}") from None
        d = datasets[-1]
        if d.nclusters < 2:
            raise DataError(f"only {d.nclusters} cluster in {cluster!r}"
                            + (f" in group {gd.label!r}" if n_groups > 1 else "")
                            + ": a two-level model needs several clusters")
    exo = [(list(v1.ov_x) if fixed_x else [], list(v2.ov_x) if fixed_x else [])
           for _ in datasets]
    h1 = []
    for d, gd in zip(datasets, obs.groups):
        h = _fit_h1_checked(d, cluster, gd.label if n_groups > 1 else None)
        h1.append(h)
    model_ = TwoLevelModel(table, union, n_groups, datasets)
    # start values from the saturated moments, block by block (fixed.x rows: h1 values)
    ov_index = {v: k for k, v in enumerate(union.ov)}
    P = len(union.ov)
    covs, means = [], []
    for d, h in zip(datasets, h1):
        for names, cov, mean in ((d.level1_names, h.moments.sigma_w, h.moments.mu_w),
                                 (d.level2_names, h.moments.sigma_b, h.moments.mu_b)):
            idx = np.array([ov_index[v] for v in names], int)
            S, m = np.zeros((P, P)), np.zeros(P)
            S[np.ix_(idx, idx)] = cov
            m[idx] = mean
            covs.append(S)
            means.append(m)
    view = BlockView(table)
    values = start_values(view, union, covs, means)
    values = adjust_intercept_starts(values, view, model_.ram, means)
    values = _level2_starts(values, table, datasets, h1)
    if start is not None:  # warm start from a fit of the same model
        values = apply_start(values, table["free"] > 0, start)
    pmap = build_parameter_map(table)
    n_moments = sum(_h1_count(d, x1, x2) for d, (x1, x2) in zip(datasets, exo))
    if pmap.n_z > n_moments:
        raise DataError(
            f"the model has {pmap.n_z} free parameters but the two-level data provide only "
            f"{n_moments} moments (within and between): the model is not identified "
            "(negative degrees of freedom); add constraints or fix parameters")
    losses = [twolevel_loss(d, h.moments, model_, g)
              for g, (d, h) in enumerate(zip(datasets, h1))]
    problem = Problem(model_, losses, pmap, values)
    z0 = pmap.z_from_free(values[pmap.free_rows])
    simple = _level2_starts(values, table, datasets, h1, simple=True)
    z1 = pmap.z_from_free(simple[pmap.free_rows])
    result = _search(problem, z0, None if start is not None or np.allclose(z0, z1) else z1,
                     max_iter)
    options = dict(group=group, group_equal=list(group_equal), group_partial=list(group_partial),
                   std_lv=std_lv, meanstructure=True, fixed_x=fixed_x, orthogonal=orthogonal,
                   estimator=estimator, missing=missing, cluster=cluster, level=level,
                   **inference)
    fit = TwoLevelSEMFit(model, table, union, model_, obs, problem, result, None, options)
    fit._setup(tl, datasets, h1, exo)
    if not result.converged:
        warnings.warn(
            f"the optimizer did not converge ({result.message}; largest gradient "
            f"{result.max_gradient:.2e} after {result.iterations} iterations, restarts "
            "included). The estimates are not trustworthy." + fit._convergence_advice()
            + " Or give start values with start().", ConvergenceWarning, stacklevel=3)
    fit._warn_heywood()
    return fit


def _fit_h1_checked(d: TwoLevelData, cluster: str, group_label) -> TwoLevelFit:
    """The saturated model of one group (:func:`~.estimation.twolevel_fit.fit_h1`), its
    numerical failures as :class:`EstimationError`, a warning with advice when it did not
    converge."""
    where = f" in group {group_label!r}" if group_label is not None else ""
    try:
        with np.errstate(all="ignore"):
            h = fit_h1(d)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        raise EstimationError(
            f"the saturated two-level model{where} cannot be fitted ({exc}): check for "
            "variables that are (nearly) constant within clusters or collinear, and declare "
            f"cluster-level variables at level 2 only ({d.nclusters} clusters in "
            f"{cluster!r})") from None
    if not h.converged:
        warnings.warn(
            f"the saturated two-level model{where} did not converge ({h.method}, "
            f"{h.iterations} iterations): the chi-square test, the ICCs and the fixed.x "
            "values may be off. Variables with almost no within- or between-cluster "
            "variation are the usual cause: check inspect('icc').", ConvergenceWarning,
            stacklevel=4)
    return h


def _search(problem: Problem, z0: np.ndarray, z1: Optional[np.ndarray], max_iter: int):
    """The optimizer with restarts for small between-level variation.

    Fisher scoring from the start values ``z0``; if it has not converged within
    :data:`~sem_models.estimation.optimizer.STALL_ITERATIONS` iterations, scoring from the
    "simple" between-level start values ``z1`` (:func:`_level2_starts`); if neither
    converged, the full search (scoring, then the quasi-Newton fallback) from ``z1`` (from
    ``z0`` when there is no ``z1``).  The
    converged search with the lowest discrepancy wins (else the lowest discrepancy)."""
    short = min(max_iter, STALL_ITERATIONS)
    tried = [_run_optimizer(problem, z0, short)]
    if not tried[-1].converged and z1 is not None:
        tried.append(_run_optimizer(problem, z1, short))
    if not any(r.converged for r in tried) and max_iter > short:
        tried.append(_run_optimizer(problem, z0 if z1 is None else z1, max_iter))
    best = max(tried, key=lambda r: (r.converged, -r.fmin if np.isfinite(r.fmin) else -np.inf))
    best.iterations = sum(r.iterations for r in tried)
    return best


def _run_optimizer(problem: Problem, z0: np.ndarray, max_iter: int):
    """:func:`~sem_models.estimation.optimizer.optimize`, with its numerical failures as
    :class:`~sem_models.errors.EstimationError` that says what to do."""
    try:
        with np.errstate(all="ignore"):
            return optimize(problem, z0, max_iter=max_iter)
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        raise _start_error(problem, problem.values(z0), exc) from None


def _start_error(problem: Problem, values: np.ndarray, exc: Exception) -> EstimationError:
    """The error for start values at which the two-level likelihood is not defined: names a
    fixed negative variance, else the level (and group) whose implied covariance matrix is
    not positive definite."""
    model = problem.model
    pt = model.table
    lhs, op, rhs = pt["lhs"], pt["op"], pt["rhs"]
    negative = np.flatnonzero((op == "~~") & (lhs == rhs) & (pt["free"] == 0)
                              & (pt["group"] > 0) & (values < 0))
    if len(negative):
        r = negative[0]
        line = f", model syntax line {pt['line'][r]}" if pt["line"][r] else ""
        return EstimationError(
            f"the variance of {lhs[r]!r} (level {pt['level'][r]}{line}) is fixed to "
            f"{values[r]:g}: a variance cannot be negative; fix it to a value >= 0 (0 for a "
            "between-level variance near zero) or free it")
    where = []
    for g, d in enumerate(model.data):
        try:
            tl = model.moments(values, g).tl
        except np.linalg.LinAlgError:
            where.append(f"group {g + 1}: I - B is singular (a loop of paths)")
            continue
        tag = f" (group {g + 1})" if len(model.data) > 1 else ""
        if not np.all(np.isfinite(tl.sigma_w)) or np.linalg.eigvalsh(tl.sigma_w).min() <= 0:
            where.append("the within level" + tag)
            continue
        # the between level: V_n = E Sigma_B E' + F Sigma_W F' / n for every cluster size n
        SB, FWF = d.E @ tl.sigma_b @ d.E.T, d.F @ tl.sigma_w @ d.F.T
        if any(np.linalg.eigvalsh(SB + FWF / n).min() <= 0
               for n in np.unique(d.cluster_size)):
            where.append("the between level" + tag)
    detail = " at " + " and ".join(where) if where else ""
    return EstimationError(
        "the two-level model cannot be evaluated at its start values: the implied covariance "
        f"matrix is not positive definite{detail} ({exc}). Give start values with start() "
        "(e.g. 'fb =~ start(0.5)*y2'), check the fixed values, or fix between-level "
        "variances of variables with ICC near 0 to 0")


def _level2_starts(values: np.ndarray, table, datasets: list, h1: list,
                   simple: bool = False) -> np.ndarray:
    """Start values of the between level that survive small ICCs.

    The one-level start values scale a factor by its marker's variance; at level 2 a marker
    with almost no between-cluster variance (ICC near 0) gives a factor variance near 0, and
    then the information about the loadings (proportional to it) is near 0 and the first
    scoring steps send them to absurd values.  So a level-2 factor variance starts at no less
    than ``0.05`` times the mean within-level variance of its indicators (lavaan starts every
    factor variance at 0.05 whatever the scale; this floor is unit-free).  ``simple=True``
    (the restart after a failed search) raises that floor to 0.1, starts the level-2
    loadings at 1 (lavaan's "simple" start values) and the level-2 residual variances at half
    the saturated between variances (at least 1% of the within variances).  User ``start()``
    values are kept."""
    values = values.copy()
    lhs, op, rhs = table["lhs"], table["op"], table["rhs"]
    level, group, free = table["level"], table["group"], table["free"] > 0
    derived = free & np.isnan(table["start"])
    for g, (d, h) in enumerate(zip(datasets, h1)):
        in_b = (level == 2) & (group == g + 1)
        var_w = dict(zip(d.level1_names, np.diag(h.moments.sigma_w)))
        var_b = dict(zip(d.level2_names, np.diag(h.moments.sigma_b)))
        loading = in_b & (op == "=~")
        for lv in dict.fromkeys(lhs[loading]):
            inds = [v for v in rhs[loading & (lhs == lv)] if v in var_w]
            if not inds:
                continue
            scale = float(np.mean([var_w[v] for v in inds]))
            rows = np.flatnonzero(in_b & derived & (op == "~~") & (lhs == lv) & (rhs == lv))
            values[rows] = np.maximum(values[rows], (0.1 if simple else 0.05) * scale)
            if simple:
                values[np.flatnonzero(in_b & derived & (op == "=~") & (lhs == lv))] = 1.0
        if simple:
            for r in np.flatnonzero(in_b & derived & (op == "~~") & (lhs == rhs)):
                v = lhs[r]
                if v in var_b:
                    values[r] = max(0.5 * var_b[v], 0.01 * var_w.get(v, var_b[v]))
    return values
