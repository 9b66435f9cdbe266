"""User entry points: :func:`sem` and :func:`cfa` run the pipeline and return a :class:`SEMFit`.

syntax (:mod:`.syntax`) -> parameter table (:mod:`.partable`) -> matrices (:mod:`.matrices`)
-> estimator (:mod:`.estimator`) -> results (:mod:`.results`).

Every option is checked here, before any work (:func:`validate_options`), and the failures of
the later stages reach the caller as the package's own exceptions (:mod:`sem_models.errors`):
``ModelSyntaxError``, ``ModelError``, ``DataError`` or ``EstimationError``, each naming the
option, parameter, column or group involved.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from .errors import EstimationError, ModelError, validate_level
from .model.constraints import build_parameter_map
from .estimation.data import DataError, ObservedData, column_dtypes, prepare_data
from .estimation.optimizer import ConvergenceWarning, Problem, optimize
from .estimation.threads import single_threaded_blas
from .estimation.ml import MLGroupLoss
from .estimation.wls import WLS_LOSS_ESTIMATORS, wls_exogenous_values, wls_losses
from .model.graph import check_model_graph
from .model.matrices import RAMModel
from .model.partable import ParTable, build_partable, model_variables
from .results import SEMFit
from .model.start import adjust_intercept_starts, apply_start, start_values
from .model.syntax import parse_model

__all__ = ["sem", "cfa", "growth", "fit_model"]

ESTIMATORS = ("ML", "MLM", "MLR", "MLMV", "GLS", "WLS", "DWLS", "WLSM", "WLSMV", "ULS", "ULSM",
              "ULSMV")


MISSING = {"ml": "fiml", "fiml": "fiml", "listwise": "listwise", "default": "listwise"}


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


def sem(model: str, data: Optional[pd.DataFrame] = None, *, group: Optional[str] = None,
        group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
        std_lv: bool = False, meanstructure: Union[bool, str] = "default",
        fixed_x: bool = True, orthogonal: bool = False, estimator: str = "default",
        missing: str = "listwise", cluster: Optional[str] = None,
        group_labels: Optional[Sequence] = None, level: float = 0.95,
        max_iter: int = 500, se: Optional[str] = None, test=None,
        information: Optional[str] = None, start=None, ordered=None,
        parameterization: str = "delta", sample_cov=None, sample_mean=None,
        sample_nobs=None, int_ov_free: bool = True, int_lv_free: bool = False,
        bootstrap: int = 1000, iseed: Optional[int] = None) -> SEMFit:
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
    ``ordered`` (lavaan's ``ordered=``): a list of ordinal columns, or True for every
    observed endogenous variable (ordered pandas Categoricals count as ordinal too); the model
    is then fitted to thresholds and polychoric correlations by ``estimator="WLSMV"`` (the
    default; also ``"WLSM"``, ``"WLS"``, ``"DWLS"``, ``"ULSMV"``, ``"ULSM"``, ``"ULS"``) with
    ``parameterization="delta"`` (default) or ``"theta"`` and ``missing="listwise"`` or
    ``"pairwise"`` (:func:`sem_models.estimation.ordinal.fit_ordinal`).
    Summary statistics instead of ``data`` (lavaan's ``sample.cov``, ``sample.mean``,
    ``sample.nobs``): ``sample_cov`` a covariance matrix as a DataFrame labelled by variable
    (or a dict ``{group label: DataFrame}`` / a list, one per group), ``sample_mean`` the means
    (a Series per group; needed with a mean structure) and ``sample_nobs`` the number of cases
    per group.  As lavaan, ``sample_cov`` is read as having divisor N - 1 (``DataFrame.cov()``)
    and is rescaled by (N - 1) / N for ML, so the fit equals the raw-data fit; only the
    normal-theory estimators ML, GLS and ULS are possible
    (:mod:`sem_models.estimation.moments_input`).
    ``int_ov_free`` / ``int_lv_free`` (lavaan's ``int.ov.free`` / ``int.lv.free``): free
    observed intercepts / latent means in a mean structure (defaults True / False; see
    :func:`growth`).  Constraints may be nonlinear (``a == b*c``) or inequalities
    (``b > c``; :mod:`sem_models.estimation.constrained`).
    ``se="bootstrap"`` (lavaan's): standard errors from ``bootstrap`` (default 1000)
    ordinary bootstrap refits seeded by ``iseed`` (:func:`sem_models.bootstrap`, run when the
    standard errors are first needed); ``estimates()`` then gives percentile intervals
    (lavaan's ``boot.ci.type = "perc"``; other types with ``boot_ci_type=``).
    Returns a :class:`~sem_models.results.SEMFit`.

    Raises (all ``ValueError`` subclasses, :mod:`sem_models.errors`): ``ModelSyntaxError``
    (the model text, with line and column; duplicate or clashing names), ``ModelError`` (an
    option, e.g. ``level`` outside (0, 1), or an impossible model such as contradictory
    bounds), ``DataError`` (the data: column, group) and ``EstimationError`` (start values
    or a fit that cannot be evaluated).
    """
    return fit_model(model, data, group=group, group_equal=group_equal,
                     group_partial=group_partial, std_lv=std_lv, meanstructure=meanstructure,
                     fixed_x=fixed_x, orthogonal=orthogonal, estimator=estimator,
                     missing=missing, cluster=cluster, group_labels=group_labels, level=level,
                     max_iter=max_iter, se=se, test=test, information=information,
                     start=start, ordered=ordered, parameterization=parameterization,
                     sample_cov=sample_cov, sample_mean=sample_mean, sample_nobs=sample_nobs,
                     int_ov_free=int_ov_free, int_lv_free=int_lv_free,
                     bootstrap=bootstrap, iseed=iseed)


def cfa(model: str, data: Optional[pd.DataFrame] = None, **options) -> SEMFit:
    """Confirmatory factor analysis (lavaan's ``cfa()``); same options and defaults as :func:`sem`."""
    return sem(model, data, **options)


def growth(model: str, data: Optional[pd.DataFrame] = None, **options) -> SEMFit:
    """Latent growth curve models (lavaan's ``growth()``): :func:`sem` with lavaan's growth
    defaults -- a mean structure, the intercepts of the observed variables fixed to 0 and the
    latent means (growth factor means) free (``meanstructure=True``, ``int_ov_free=False``,
    ``int_lv_free=True``; Bollen & Curran 2006, *Latent Curve Models*, ch. 2 and 4).  Time
    scores are written as fixed loadings (``s =~ 0*t1 + 1*t2 + 2*t3``); every other option
    (groups, covariates, ``sample_cov``, estimators) is as for :func:`sem`."""
    options.setdefault("meanstructure", True)
    options.setdefault("int_ov_free", False)
    options.setdefault("int_lv_free", True)
    return sem(model, data, **options)


def _names(value, option: str) -> list[str]:
    """A string or a sequence of strings as a list (``group_equal``, ``group_partial``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        items = list(value)
    except TypeError:
        raise ModelError(f"{option} must be a string or a list of strings, got "
                         f"{type(value).__name__}") from None
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise ModelError(f"{option} must list strings; got {bad[:3]}")
    return items


def _flag(value, option: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ModelError(f"{option} must be True or False, got {value!r}")


def validate_options(model, data, *, group=None, group_equal=(), group_partial=(),
                     std_lv=False, meanstructure="default", fixed_x=True, orthogonal=False,
                     estimator="ML", missing="listwise", cluster=None, group_labels=None,
                     level=0.95, max_iter=500) -> dict:
    """Check every option of :func:`sem` before any work; return them normalised
    (``estimator`` upper case, ``missing`` "listwise" or "fiml", lists for ``group_equal`` /
    ``group_partial`` / ``group_labels``).

    Raises :class:`~sem_models.errors.ModelError` for an option (naming it and what it
    accepts) and :class:`~sem_models.estimation.data.DataError` when ``data`` is not a
    DataFrame; ``se`` / ``test`` / ``information`` are checked by
    :func:`sem_models.inference.options.resolve_options`."""
    if not isinstance(model, str):
        raise ModelError(f"the model must be a string of lavaan syntax, got "
                         f"{type(model).__name__}")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not isinstance(estimator, str) or estimator.upper() not in ESTIMATORS:
        raise ModelError(f"estimator={estimator!r} is not supported; choose from {ESTIMATORS}")
    if not isinstance(missing, str) or missing.lower() not in MISSING:
        raise ModelError(f"missing={missing!r} is not supported; use 'listwise' or 'fiml' "
                         "('ml')")
    for option, value in (("group", group), ("cluster", cluster)):
        if value is not None and not isinstance(value, str):
            raise ModelError(f"{option}= must be a column name (a string) or None, got "
                             f"{value!r}")
    if group is not None and group == cluster:
        raise ModelError(f"group= and cluster= name the same column {group!r}")
    if group_labels is not None:
        if group is None:
            raise ModelError("group_labels= needs group=")
        if isinstance(group_labels, str) or not hasattr(group_labels, "__iter__"):
            raise ModelError(f"group_labels must be a list of the group column's values, got "
                             f"{group_labels!r}")
        group_labels = list(group_labels)
        if len(set(map(repr, group_labels))) != len(group_labels):
            raise ModelError(f"group_labels {group_labels} lists a group twice")
    if not (isinstance(meanstructure, (bool, np.bool_)) or meanstructure == "default"):
        raise ModelError(f"meanstructure must be True, False or 'default', got "
                         f"{meanstructure!r}")
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)) \
            or max_iter < 0:
        raise ModelError(f"max_iter must be a whole number >= 0, got {max_iter!r}")
    missing = MISSING[missing.lower()]
    estimator = estimator.upper()
    if estimator == "MLM" and missing == "fiml":
        raise ModelError("estimator='MLM' (Satorra-Bentler) needs complete data and cannot be "
                         "combined with missing='fiml'; use estimator='MLR' for robust "
                         "inference with missing data, or missing='listwise'")
    return dict(group_equal=_names(group_equal, "group_equal"),
                group_partial=_names(group_partial, "group_partial"),
                std_lv=_flag(std_lv, "std_lv"), fixed_x=_flag(fixed_x, "fixed_x"),
                orthogonal=_flag(orthogonal, "orthogonal"), estimator=estimator,
                missing=missing, group_labels=group_labels, level=validate_level(level),
                max_iter=int(max_iter),
                meanstructure=meanstructure if isinstance(meanstructure, str) else
                bool(meanstructure))


def _start_failure(partable: ParTable, model: RAMModel, values: np.ndarray,
                   group_labels: list, exc: Exception) -> EstimationError:
    """The error for start values at which the implied covariance matrix is not positive
    definite: names a fixed negative variance, else the group(s)."""
    lhs, op, rhs = partable["lhs"], partable["op"], partable["rhs"]
    negative = np.flatnonzero((op == "~~") & (lhs == rhs) & (partable["free"] == 0)
                              & (partable["group"] > 0) & (values < 0))
    if len(negative):
        r = negative[0]
        where = f" (model syntax line {partable['line'][r]})" if partable["line"][r] else ""
        return EstimationError(
            f"the variance of {lhs[r]!r} is fixed to {values[r]:g}{where}: a variance cannot "
            "be negative, so the implied covariance matrix is not positive definite; fix it "
            "to a value >= 0 or free it")
    bad = []
    for g in range(model.n_groups):
        try:
            cov = model.moments(values, g).cov
            ok = bool(np.all(np.isfinite(cov)) and np.linalg.eigvalsh(cov).min() > 0)
        except np.linalg.LinAlgError:
            ok = False
        if not ok:
            bad.append(g)
    where = ""
    if bad and len(group_labels) > 1:
        where = " in group(s) " + ", ".join(repr(group_labels[g]) for g in bad)
    detail = ("a loop of paths makes I - B singular at these values"
              if isinstance(exc, np.linalg.LinAlgError) else str(exc))
    return EstimationError(
        f"the start values give an implied covariance matrix that is not positive definite"
        f"{where} ({detail}); give start values with start() (e.g. 'f =~ start(0.8)*x2'), "
        "check fixed values, or start from another fit with start=")


def _is_ordinal(ordered, data, model) -> bool:
    """Whether the fit is one with ordered indicators: ``ordered`` is True or names
    columns, or (``ordered=None``) the model's observed variables include ordered pandas
    Categorical columns of the data (lavaan's ordered factors)."""
    if ordered is None:
        if not isinstance(data, pd.DataFrame) or not isinstance(model, str) or not any(
                isinstance(dtype, pd.CategoricalDtype) and dtype.ordered
                for dtype in column_dtypes(data)):
            return False
        variables = model_variables(parse_model(model).statements)
        return any(v in data.columns and isinstance(data[v].dtype, pd.CategoricalDtype)
                   and data[v].cat.ordered for v in variables.ov if v not in variables.ov_x)
    if ordered is False:
        return False
    if isinstance(ordered, (list, tuple)) and len(ordered) == 0:
        return False
    return True


@single_threaded_blas  # issue 18: the whole fit on one BLAS thread (small matrices)
def fit_model(model: str, data: pd.DataFrame, *, group=None, group_equal=(), group_partial=(),
              std_lv=False, meanstructure="default", fixed_x=True, orthogonal=False,
              estimator="default", missing="listwise", cluster=None, group_labels=None,
              level=0.95, max_iter=500, se=None, test=None, information=None,
              start=None, ordered=None, parameterization="delta", sample_cov=None,
              sample_mean=None, sample_nobs=None, int_ov_free=True,
              int_lv_free=False, bootstrap=1000, iseed=None, _observed=None) -> SEMFit:
    # _observed (private): the ObservedData (``fit.data``) of an earlier fit of the same data
    # with the same observed variables, group, group_labels, missing and cluster, reused
    # instead of preparing the data again (issue 18: the levels of an invariance sequence)
    moments_input = sample_cov is not None
    if moments_input:  # summary statistics: :mod:`.estimation.moments_input`
        from .estimation.moments_input import check_moments_options
        est = "ML" if isinstance(estimator, str) and estimator.lower() == "default" \
            else (estimator.upper() if isinstance(estimator, str) else estimator)
        check_moments_options(data=data, estimator=est, missing=MISSING.get(
            str(missing).lower(), missing), cluster=cluster, group=group, ordered=ordered,
            se=se, test=test)
    elif data is None:
        raise DataError("no data: give a DataFrame (data=) or summary statistics "
                        "(sample_cov= with sample_nobs=)")
    elif sample_mean is not None or sample_nobs is not None:
        raise DataError("sample_mean= and sample_nobs= go with sample_cov=; with data= the "
                        "moments are computed from the data")
    growth_defaults = not int_ov_free or bool(int_lv_free)
    if _is_ordinal(ordered, data, model):  # ordered indicators: WLSMV and relatives
        if growth_defaults:
            raise ModelError("growth() / int_ov_free=False / int_lv_free=True are not "
                             "supported with ordered indicators (their intercepts are fixed "
                             "and thresholds carry the means); write the growth model with "
                             "sem() and explicit mean statements")
        from .estimation.ordinal import fit_ordinal
        return fit_ordinal(model, data, ordered=ordered,
                           group=group, group_equal=group_equal, group_partial=group_partial,
                           std_lv=std_lv, orthogonal=orthogonal, estimator=estimator,
                           missing=missing, cluster=cluster, group_labels=group_labels,
                           level=level, max_iter=max_iter, se=se, test=test,
                           information=information, start=start,
                           parameterization=parameterization, fixed_x=fixed_x,
                           meanstructure=meanstructure)
    if parameterization != "delta":
        raise ModelError(f"parameterization={parameterization!r} applies to ordered "
                         "indicators only (give ordered=)")
    if isinstance(estimator, str) and estimator.lower() == "default":
        estimator = "ML"
    checked = validate_options(
        model, pd.DataFrame() if moments_input else data, group=group,
        group_equal=group_equal, group_partial=group_partial,
        std_lv=std_lv, meanstructure=meanstructure, fixed_x=fixed_x, orthogonal=orthogonal,
        estimator=estimator, missing=missing, cluster=cluster,
        group_labels=None if moments_input else group_labels, level=level, max_iter=max_iter)
    group_equal, group_partial = checked["group_equal"], checked["group_partial"]
    std_lv, fixed_x, orthogonal = checked["std_lv"], checked["fixed_x"], checked["orthogonal"]
    estimator, missing = checked["estimator"], checked["missing"]
    if not moments_input:  # with sample_cov, group_labels name the matrices' groups
        group_labels = checked["group_labels"]
    level = checked["level"]
    max_iter, meanstructure = checked["max_iter"], checked["meanstructure"]
    from .model.levels import has_levels
    if has_levels(model):  # 'level:' blocks: a two-level model (sem_models.multilevel)
        if moments_input:
            raise DataError("two-level models need the raw data (cases within clusters); "
                            "sample_cov cannot be used")
        if growth_defaults:
            raise ModelError("growth() / int_ov_free=False / int_lv_free=True are not "
                             "supported for two-level models; write the intercepts and means "
                             "of each level explicitly (e.g. 't1 ~ 0*1', 'i ~ 1')")
        from .multilevel import fit_twolevel
        return fit_twolevel(model, data, group=group, group_equal=group_equal,
                            group_partial=group_partial, std_lv=std_lv, fixed_x=fixed_x,
                            orthogonal=orthogonal, estimator=estimator, missing=missing,
                            cluster=cluster, group_labels=group_labels, level=level,
                            max_iter=max_iter, se=se, test=test, information=information,
                            start=start)
    from .inference.options import resolve_options
    boot_se = isinstance(se, str) and se == "bootstrap"  # lavaan's se = "bootstrap"
    if boot_se:
        from .resampling.boot import check_bootstrap_options
        check_bootstrap_options(bootstrap, iseed, moments_input)
    try:
        inference = resolve_options(estimator, missing, cluster, se=None if boot_se else se,
                                    test=test, information=information)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if boot_se:
        inference.update(se="bootstrap", bootstrap=int(bootstrap), iseed=iseed)
    parsed = parse_model(model, copy=False)  # read only: the kept parse, not a copy
    variables = model_variables(parsed.statements)
    if not variables.ov:
        raise ModelError("the model names no observed variable: a model needs at least one "
                         "column of the data (e.g. 'f =~ x1 + x2 + x3')")
    where = {}
    for st in parsed.statements:
        for name in (st.lhs, st.rhs):
            where.setdefault(name, (st.line, st.col))
    if moments_input:
        from .estimation.moments_input import moments_data
        n_cov = len(sample_cov) if isinstance(sample_cov, (dict, list, tuple)) else 1
        obs = moments_data(sample_cov, sample_mean, sample_nobs, variables.ov,
                           estimator=estimator, group_labels=group_labels,
                           meanstructure_needed=bool(meanstructure is True or n_cov > 1
                                                     or any(st.op == "~1"
                                                            for st in parsed.statements)
                                                     or not int_ov_free))
    elif missing == "fiml" and fixed_x and variables.ov_x:
        from .estimation.fiml import prepare_data_fixed_x
        obs = prepare_data_fixed_x(data, variables, group=group, cluster=cluster, where=where,
                                   group_labels=group_labels)
    elif (isinstance(_observed, ObservedData) and list(_observed.ov_names) == list(variables.ov)
          and _observed.group_var == group):
        obs = _observed
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
        orthogonal=orthogonal, group_equal=group_equal, group_partial=group_partial,
        int_ov_free=int_ov_free, int_lv_free=int_lv_free)
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
    try:
        values = adjust_intercept_starts(values, partable, model_, means)
    except np.linalg.LinAlgError as exc:  # (I - B) singular: a loop of paths
        raise _start_failure(partable, model_, values, obs.group_labels, exc) from None
    if start is not None:  # warm start (lavaan's start = fit): free rows from its estimates
        values = apply_start(values, partable["free"] > 0, start, partable)
    pmap = build_parameter_map(partable, allow_general=True)
    n_moments = n_groups * (len(variables.ov) * (len(variables.ov) + 1) // 2
                            + (len(variables.ov) if model_.meanstructure else 0))
    n_fixed_x = int(np.count_nonzero(partable["exo"] == 1))
    n_general_eq = pmap.general.n_eq if pmap.general is not None else 0
    if pmap.n_z == 0:
        raise ModelError("the model has no free parameters (every parameter is fixed or "
                         "determined by constraints): there is nothing to estimate; free at "
                         "least one parameter (e.g. 'NA*x1')")
    if pmap.n_z - n_general_eq > n_moments - n_fixed_x:
        raise DataError(
            f"the model has {pmap.n_z - n_general_eq} free parameters but the data provide only "
            f"{n_moments - n_fixed_x} sample moments: the model is not identified (negative "
            "degrees of freedom); add constraints or fix parameters")
    if cluster is not None:
        from .inference.options import check_clusters
        try:
            check_clusters(obs, cluster, pmap.n_z)
        except ValueError as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(str(exc)) from None
    if missing == "fiml":
        losses = fiml_losses
    elif estimator in WLS_LOSS_ESTIMATORS:  # GLS, WLS, DWLS, ULS: :mod:`.estimation.wls`
        losses = wls_losses(estimator, obs, model_, variables, fixed_x=fixed_x)
        values = wls_exogenous_values(values, partable, variables, losses)  # S with N - 1
    else:
        losses = [MLGroupLoss(c, m, g.nobs, model_.meanstructure)
                  for c, m, g in zip(covs, means, obs.groups)]
    problem = Problem(model_, losses, pmap, values)
    z0 = pmap.z_from_free(values[pmap.free_rows])
    try:
        # the standard errors from the expected information: the optimizer's at the solution
        expected_se = (inference.get("se", "standard") == "standard"
                       and inference.get("information", "expected") == "expected"
                       and estimator not in WLS_LOSS_ESTIMATORS)
        result = optimize(problem, z0, max_iter=max_iter, final_information=expected_se)
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        raise _start_failure(partable, model_, problem.values(z0), obs.group_labels,
                             exc) from None
    if pmap.general is not None:  # nonlinear / inequality constraints: local linear map
        from .estimation.constrained import linearised_problem
        problem, result = linearised_problem(problem, result)
    elif pmap.soft is not None and result.active is not None:
        # as lavaan, an estimate at a lower() / upper() bound keeps its standard error
        result.active = result.active & ~pmap.soft
    if not (np.isfinite(result.fmin) and np.all(np.isfinite(result.z))):
        raise EstimationError(
            "the estimation ended at non-finite values (the implied covariance matrix became "
            "singular); check the model for parameters that are not identified, rescale "
            "variables with very different variances, or give start values with start()")
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
