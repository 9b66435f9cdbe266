"""Ordinal (ordered categorical) indicators fitted by weighted least squares, as lavaan 0.6-14
does it: the three-stage estimator of Muthen (1984) with the robust corrections of Muthen,
du Toit & Spisic (1997) and Asparouhov & Muthen (2010).

1. Sample statistics (:mod:`.categorical`): thresholds (probit regressions on exogenous
   covariates), polychoric / polyserial / Pearson correlations, their asymptotic covariance
   matrix Gamma (lavaan's ``NACOV``).
2. The model's statistics (:class:`~sem_models.model.ordinal.OrdinalModel`): thresholds,
   slopes and correlations of the latent responses under the delta or theta
   parameterization, with their Jacobian.
3. The loss: :class:`~.wls.WLSGroupLoss` with the statistics map :class:`OrdinalStatistics`:
   ``F_g = 1/2 (N_g - 1) / N_g (s - sigma)' W (s - sigma)`` with ``W = Gamma^-1`` (WLS;
   Muthen 1984), ``diag(Gamma)^-1`` (DWLS: WLSM, WLSMV; Muthen, du Toit & Spisic 1997) or I
   (ULS, ULSM, ULSMV).
4. Inference (:mod:`sem_models.inference.wls_inference`): robust ("sandwich") standard errors
   ``E^-1 Delta' W Gamma W Delta E^-1 / (N - G)`` and the mean-adjusted (WLSM) or scaled and
   shifted (WLSMV; Asparouhov & Muthen 2010) test, the baseline (independence) model with the
   correlations fixed to zero, and Satorra (2000) difference tests in ``compare()``.

:func:`fit_ordinal` is the entry point behind ``sem(..., ordered=...)``; :class:`OrdinalFit`
is the result (an :class:`~sem_models.results.SEMFit`).
"""
from __future__ import annotations

import warnings
from functools import cached_property
from typing import Optional

import numpy as np
import pandas as pd

from ..errors import EstimationError, ModelError
from ..model.constraints import build_parameter_map
from ..model.ordinal import OrdinalModel, OrdinalSpec, PARAMETERIZATIONS
from ..model.partable import build_partable, model_variables
from ..model.start import adjust_intercept_starts, apply_start, start_values
from ..model.syntax import parse_model
from ..results import SEMFit
from .categorical import categorical_stats
from .categorical_data import frame_inputs, group_order
from .data import DataError, GroupData, ObservedData
from .optimizer import ConvergenceWarning, Problem, optimize
from .threads import single_threaded_blas
from .wls import WLS_BASE, make_wls_loss, weight_from_gamma

__all__ = ["ORDINAL_ESTIMATORS", "OrdinalStatistics", "OrdinalFit", "fit_ordinal",
           "ordered_variables"]

#: estimators for ordered data (lavaan 0.6-14); the default is WLSMV
ORDINAL_ESTIMATORS = ("WLSMV", "WLSM", "WLS", "DWLS", "ULSMV", "ULSM", "ULS")


# ----------------------------------------------------------------------- statistics map
class OrdinalStatistics:
    """The statistics map of ordinal data: the model's latent-response statistics in lavaan's
    ``WLS.obs`` order (thresholds / minus the means of continuous variables, slopes on the
    covariates column by column, variances of continuous variables, correlations below the
    diagonal column by column)."""

    def __init__(self, py: int, nx: int, numeric: np.ndarray, n_th: int):
        self.py, self.nx = py, nx
        self.numeric = np.flatnonzero(numeric)
        self.n_th = n_th
        cj, ci = np.triu_indices(py, 1)
        self.ci, self.cj = ci, cj
        self.n_stats = n_th + py * nx + len(self.numeric) + len(ci)

    def value(self, mom) -> np.ndarray:
        if not mom.admissible:
            return np.full(self.n_stats, np.nan)
        return np.concatenate([mom.th, mom.slopes.ravel(order="F"),
                               np.diag(mom.cor)[self.numeric], mom.cor[self.ci, self.cj]])

    def jacobian(self, mom, d_cov: np.ndarray, d_ext: np.ndarray) -> np.ndarray:
        """``(n_stats, q)`` from the model's ``d_cor`` (q x py x py) and ``d_ext`` (q x
        (n_th + py nx): thresholds and slopes; :meth:`OrdinalModel.jacobian`)."""
        parts = [d_ext, d_cov[:, self.numeric, self.numeric], d_cov[:, self.ci, self.cj]]
        return np.concatenate(parts, axis=1).T

    def baseline_design(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The independence model of lavaan for categorical data: thresholds, slopes and
        variances free, correlations zero (``lav_partable_independence``)."""
        free = np.ones(self.n_stats, bool)
        free[self.n_stats - len(self.ci):] = False
        return free, np.zeros(self.n_stats), self.n_stats


# ---------------------------------------------------------------------------- options
def ordered_variables(ordered, variables, data: pd.DataFrame) -> list[str]:
    """The ordered variables of the model: ``ordered`` True (every observed variable but the
    exogenous covariates), a name or a list of names; ordered pandas Categorical columns of the
    model's variables count as ordered too (as lavaan's ordered factors)."""
    y_names = [v for v in variables.ov if v not in variables.ov_x]
    if ordered is True:
        chosen = list(y_names)
    elif ordered is None or ordered is False:
        chosen = []
    else:
        items = [ordered] if isinstance(ordered, str) else list(ordered)
        bad = [v for v in items if not isinstance(v, str)]
        if bad:
            raise ModelError(f"ordered= must be True or a list of column names, got {bad[:3]}")
        exo = [v for v in items if v in variables.ov_x]
        if exo:
            raise ModelError(
                f"ordered variable(s) {exo} are exogenous covariates (they only predict): "
                "lavaan conditions on covariates and does not model their distribution; "
                "declare them as continuous (0/1 dummies for categories)")
        unknown = [v for v in items if v not in variables.ov]
        if unknown:
            raise ModelError(f"ordered variable(s) {unknown} are not observed variables of the "
                             f"model ({y_names})")
        chosen = [v for v in y_names if v in items]
    for v in y_names:
        if v in data.columns and isinstance(data[v].dtype, pd.CategoricalDtype) \
                and data[v].cat.ordered and v not in chosen:
            chosen.append(v)
    return [v for v in y_names if v in chosen]


def _check_options(estimator, missing, cluster, parameterization) -> tuple[str, str]:
    est = "WLSMV" if estimator is None or str(estimator).lower() == "default" \
        else str(estimator).upper()
    if est not in ORDINAL_ESTIMATORS:
        raise ModelError(
            f"estimator={estimator!r} is not available for ordered (categorical) indicators; "
            f"choose from {ORDINAL_ESTIMATORS} (WLSMV is lavaan's default; maximum likelihood "
            "for ordinal data needs numerical integration, which this package does not do)")
    miss = str(missing).lower().replace(".", "_")
    if miss in ("ml", "fiml", "ml_x", "direct"):
        raise ModelError(
            "missing='fiml' is not available with ordered indicators: full-information ML for "
            "ordinal data needs numerical integration over the latent responses (lavaan does "
            "not offer it either); use missing='pairwise' (stage 1 and 2 statistics from all "
            "available cases, as lavaan) or missing='listwise'")
    if miss not in ("listwise", "default", "pairwise"):
        raise ModelError(f"missing={missing!r} is not supported with ordered indicators; use "
                         "'listwise' (the default) or 'pairwise'")
    if cluster is not None:
        raise ModelError("cluster= is not supported with ordered indicators (cluster-robust "
                         "WLSMV is not implemented)")
    if parameterization not in PARAMETERIZATIONS:
        raise ModelError(f"parameterization={parameterization!r} is not supported; use "
                         "'delta' (the default) or 'theta'")
    return est, "pairwise" if miss == "pairwise" else "listwise"


# ------------------------------------------------------------------------------ data
def _ordinal_data(data: pd.DataFrame, y_names: list, ordered: list, x_names: list, group,
                  group_labels, missing: str, where: dict):
    """Per-group :class:`~.categorical.CategoricalStats` and the :class:`ObservedData`."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    needed = y_names + x_names
    absent = [v for v in needed if v not in data.columns]
    if absent:
        loc = where.get(absent[0])
        at = f" (model syntax line {loc[0]}, column {loc[1]})" if loc else ""
        raise DataError(f"variable(s) {absent} named in the model are not columns of the "
                        f"data{at}; available columns: {list(data.columns)[:30]}")
    if group is not None and group not in data.columns:
        raise DataError(f"the group column {group!r} is not in the data")
    inp = frame_inputs(data, y_names, ordered, x_names or None, None)
    parts = group_order(data, group)
    if group is not None and group_labels is not None:
        by_label = {lab: rows for lab, rows in parts}
        unknown = [lab for lab in group_labels if lab not in by_label]
        if unknown or len(group_labels) != len(parts):
            raise DataError(f"group_labels {list(group_labels)} do not match the values of "
                            f"{group!r}: {[lab for lab, _ in parts]}")
        parts = [(lab, by_label[lab]) for lab in group_labels]
    stats, groups = [], []
    X_all = inp["X"] if not x_names else np.column_stack([inp["X"], inp["exo"]])
    n_dropped = 0
    for label, rows in parts:
        st = categorical_stats(
            inp["X"][rows], inp["ordered"], inp["exo"][rows] if inp["exo"] is not None else None,
            missing, names=inp["names"], exo_names=inp["exo_names"], levels=inp["levels"],
            level_labels=inp["level_labels"], group=label if group is not None else None)
        positions = np.flatnonzero(rows)[st.row_index]
        st.row_index = positions
        stats.append(st)
        groups.append(GroupData(label, X_all[positions], positions))
        n_dropped += st.norig - st.nobs
    reason = ("" if not n_dropped else "rows with every variable missing (pairwise)"
              if missing == "pairwise" else "incomplete rows (listwise deletion)")
    obs = ObservedData(y_names + x_names, groups, group, len(data), n_dropped, reason)
    return stats, obs, inp


# ------------------------------------------------------------------------------- fit
@single_threaded_blas
def fit_ordinal(model: str, data: pd.DataFrame, *, ordered=True, group=None, group_equal=(),
                group_partial=(), std_lv=False, orthogonal=False, estimator=None,
                missing="listwise", cluster=None, group_labels=None, level=0.95,
                max_iter=500, se=None, test=None, information=None, start=None,
                parameterization="delta", fixed_x=True, meanstructure="default") -> "OrdinalFit":
    """Fit a model with ordered indicators (see the module docstring); the options are
    :func:`sem_models.sem`'s."""
    from ..api import _flag, _names, _warn_heywood
    from ..errors import validate_level
    from ..model.graph import check_model_graph
    from ..inference.wls_inference import wls_options

    if not isinstance(model, str):
        raise ModelError(f"the model must be a string of lavaan syntax, got "
                         f"{type(model).__name__}")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    estimator, missing = _check_options(estimator, missing, cluster, parameterization)
    if meanstructure is False:
        raise ModelError("meanstructure=False is not possible with ordered indicators: the "
                         "thresholds are part of the mean structure (lavaan sets it to TRUE)")
    if not _flag(fixed_x, "fixed_x"):
        raise ModelError("fixed_x=False is not supported with ordered indicators (lavaan "
                         "conditions on the exogenous covariates: conditional.x)")
    group_equal = _names(group_equal, "group_equal")
    group_partial = _names(group_partial, "group_partial")
    std_lv, orthogonal = _flag(std_lv, "std_lv"), _flag(orthogonal, "orthogonal")
    level = validate_level(level)
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)) \
            or max_iter < 0:
        raise ModelError(f"max_iter must be a whole number >= 0, got {max_iter!r}")
    try:
        inference = wls_options(estimator, missing, None, se=se, test=test,
                                information=information)
    except ValueError as exc:
        raise ModelError(str(exc)) from None

    parsed = parse_model(model)
    variables = model_variables(parsed.statements)
    where = {}
    for st in parsed.statements:
        for name in (st.lhs, st.rhs):
            where.setdefault(name, (st.line, st.col))
    ord_names = ordered_variables(ordered, variables, data)
    if not ord_names:
        raise ModelError("ordered= names no observed endogenous variable of the model")
    x_names = list(variables.ov_x)
    y_names = [v for v in variables.ov if v not in x_names]
    _check_threshold_statements(parsed, ord_names)
    stats, obs, inp = _ordinal_data(data, y_names, ord_names, x_names, group, group_labels,
                                    missing, where)
    n_groups = len(stats)
    nth = {v: len(stats[0].levels[y_names.index(v)]) - 1 for v in ord_names}
    _check_user_thresholds(parsed, nth)
    spec = OrdinalSpec(nth, parameterization, conditional_x=True)
    partable, variables = build_partable(
        parsed, n_groups, std_lv=std_lv, meanstructure=True, fixed_x=True,
        orthogonal=orthogonal, group_equal=group_equal, group_partial=group_partial,
        ordinal=spec)
    _check_ordinal_rows(partable, spec)
    graph = check_model_graph(partable, variables)
    model_ = OrdinalModel(partable, variables, n_groups, spec)

    # losses: W from Gamma (NACOV), statistics in lavaan's WLS.obs order
    base = WLS_BASE[estimator]
    smap = OrdinalStatistics(model_.py, model_.nx, ~model_.ordered, model_.n_th)
    losses = []
    for g, st in enumerate(stats):
        where_g = f" in group {st.group!r}" if n_groups > 1 else ""
        if len(st.wls_obs) != smap.n_stats:
            raise EstimationError("internal: the sample statistics do not match the model's")
        if base == "WLS" and st.nobs <= smap.n_stats:
            raise DataError(
                f"estimator='WLS' needs more cases than sample statistics{where_g}: "
                f"{st.nobs} cases for {smap.n_stats} thresholds and correlations (its weight "
                "matrix is the inverse of their asymptotic covariance matrix); use "
                "estimator='WLSMV' (diagonal weights) instead")
        if st.gamma is None or not np.all(np.isfinite(st.gamma)):
            raise DataError(f"the asymptotic covariance matrix of the thresholds and "
                            f"correlations{where_g} is not finite (a correlation of +-1?); "
                            "check the items for redundancy or collapse sparse categories")
        W = weight_from_gamma(st.gamma, base, where_g)
        losses.append(make_wls_loss(st.wls_obs, W, smap, st.nobs, cov=st.cov, mean=st.mean,
                                    meanstructure=True, gamma=st.gamma, estimator=base))

    values = _ordinal_starts(partable, variables, model_, stats, spec)
    if start is not None:  # warm start from a fit of the same model
        values = apply_start(values, partable["free"] > 0, start, partable)
    pmap = build_parameter_map(partable)
    n_stats = smap.n_stats * n_groups
    if pmap.n_z > n_stats:
        raise DataError(
            f"the model has {pmap.n_z} free parameters but the data provide only {n_stats} "
            "sample statistics (thresholds, slopes and correlations): the model is not "
            "identified (negative degrees of freedom); add constraints or fix parameters")
    problem = Problem(model_, losses, pmap, values)
    z0 = pmap.z_from_free(values[pmap.free_rows])
    try:
        result = optimize(problem, z0, max_iter=max_iter)
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        raise EstimationError(
            f"the start values give inadmissible latent-response moments ({exc}); give start "
            "values with start() or check fixed values") from None
    if not (np.isfinite(result.fmin) and np.all(np.isfinite(result.z))):
        raise EstimationError("the estimation ended at non-finite values; check the model for "
                              "parameters that are not identified")
    if not result.converged:
        warnings.warn(
            f"the optimizer did not converge ({result.message}; largest gradient "
            f"{result.max_gradient:.2e} after {result.iterations} iterations); the estimates "
            "are not trustworthy", ConvergenceWarning, stacklevel=3)
    # negative variances, the residual variances of the latent responses included (delta)
    _warn_heywood(partable, model_.derived_values(problem.values(result.z)), variables,
                  obs.group_labels)
    # lavaan flags the regressions on conditioned covariates as exogenous (exo = 1)
    exo = partable["exo"]
    exo[(partable["op"] == "~") & np.isin(partable["rhs"], x_names)] = 1
    options = dict(group=group, group_equal=list(group_equal),
                   group_partial=list(group_partial), std_lv=std_lv, meanstructure=True,
                   fixed_x=True, orthogonal=orthogonal, estimator=estimator, missing=missing,
                   cluster=None, level=level, ordered=list(ord_names),
                   parameterization=parameterization, conditional_x=bool(x_names),
                   collapsed_categories=dict(data.attrs.get("collapsed_categories", {})),
                   **inference)
    fit = OrdinalFit(model, partable, variables, model_, obs, problem, result, graph, options)
    fit.categorical = stats
    return fit


def _check_threshold_statements(parsed, ord_names: list) -> None:
    for st in parsed.statements:
        if st.op in ("|", "~*~") and st.lhs not in ord_names:
            what = "thresholds" if st.op == "|" else "a scale factor"
            raise ModelError(f"{st.lhs!r} has {what} in the model (line {st.line}) but is not "
                             f"an ordered variable; add it to ordered= ({ord_names})")


def _check_user_thresholds(parsed, nth: dict) -> None:
    for st in parsed.statements:
        if st.op == "|":
            k = int(st.rhs[1:])
            if k > nth[st.lhs]:
                raise ModelError(
                    f"threshold {st.lhs}|{st.rhs} (line {st.line}) does not exist: "
                    f"{st.lhs!r} has {nth[st.lhs] + 1} categories, hence {nth[st.lhs]} "
                    "thresholds")


def _check_ordinal_rows(partable, spec: OrdinalSpec) -> None:
    """Under delta the latent responses' residual variances are not parameters (they follow
    from the scale factors): a statement that frees one is an error naming the variables."""
    if spec.parameterization != "delta":
        return
    op, lhs, rhs = partable["op"], partable["lhs"], partable["rhs"]
    mask = (op == "~~") & (lhs == rhs) & np.isin(lhs, list(spec.nthresholds)) \
        & (partable["free"] > 0)
    if mask.any():
        names = sorted(set(lhs[mask]))
        raise ModelError(
            f"the residual variances of the ordered variables {names} cannot be free under "
            "parameterization='delta' (they follow from the scale factors); use "
            "parameterization='theta' to make them parameters")


def _ordinal_starts(partable, variables, model_: OrdinalModel, stats, spec) -> np.ndarray:
    """Start values: the usual ones from the polychoric correlations (thresholds at their
    sample values, scale factors and free latent-response variances at 1)."""
    p = model_.n_ov
    y, x = model_.y_idx, model_.x_idx
    covs, means = [], []
    for st in stats:
        cov = np.zeros((p, p))
        cov[np.ix_(y, y)] = st.cov
        mean = np.zeros(p)
        mean[y] = st.mean
        if len(x):
            cov[np.ix_(x, x)] = st.cov_x
            mean[x] = st.mean_x
        covs.append(cov)
        means.append(mean)
    values = start_values(partable, variables, covs, means)
    op, free = partable["op"], partable["free"] > 0
    user_start = ~np.isnan(partable["start"])
    for g, (st, lay) in enumerate(zip(stats, model_.layouts)):
        rows = lay.th_rows
        ok = rows >= 0
        pick = ok & free[np.maximum(rows, 0)] & ~user_start[np.maximum(rows, 0)]
        values[rows[pick]] = st.th[pick]
    scale_or_var = free & ~user_start & (
        (op == "~*~") | ((op == "~~") & (partable["lhs"] == partable["rhs"])
                         & np.isin(partable["lhs"], list(spec.nthresholds))))
    values[scale_or_var] = 1.0
    values = adjust_intercept_starts(values, partable, model_, means)
    return values


# ---------------------------------------------------------------------------- results
class OrdinalFit(SEMFit):
    """A fit with ordered indicators: :class:`~sem_models.results.SEMFit` whose moments are
    those of the latent responses.

    Differences from continuous fits: ``values`` (and :meth:`estimates`) hold lavaan's
    computed values of the fixed rows the parameterization derives (delta: the residual
    variances of the latent responses; theta: the scale factors); :meth:`implied` and
    :meth:`sample_moments` give thresholds (``th``) and the latent-response correlation
    matrices; the degrees of freedom count thresholds, slopes and correlations.
    ``categorical`` holds the per-group sample statistics
    (:class:`~sem_models.estimation.categorical.CategoricalStats`).
    """

    categorical: list = []

    @cached_property
    def values(self) -> np.ndarray:
        return self.model.derived_values(self.problem.values(self.result.z))

    def _n_moments(self) -> int:
        return sum(len(loss.statistics) for loss in self.problem.losses)

    def _baseline_df(self) -> int:
        return sum(len(loss.statistics_map.ci) for loss in self.problem.losses)

    def _frames(self, th, cor, mean, slopes, g: int) -> dict:
        m = self.model
        lay = m.layouts[g]
        ordered = lay.th_rows >= 0
        names = [n for n, k in zip(lay.th_names, ordered) if k]
        out = {"cov": pd.DataFrame(cor, index=m.y_names, columns=m.y_names),
               "mean": pd.Series(mean, index=m.y_names),
               "th": pd.Series(np.asarray(th)[ordered], index=names)}
        if m.nx:
            x = list(self.variables.ov_x)
            st = self.categorical[g]
            out = {"res_cov": out["cov"], "res_int": out["mean"], "res_th": out["th"],
                   "res_slopes": pd.DataFrame(slopes, index=m.y_names, columns=x),
                   "cov_x": pd.DataFrame(st.cov_x, index=x, columns=x),
                   "mean_x": pd.Series(st.mean_x, index=x)}
        return out

    def implied(self) -> dict:
        """Model-implied statistics of the latent responses per group (key None: one group):
        ``cov`` (correlations; covariances for continuous variables), ``mean`` (the implied
        means of the latent responses, unscaled), ``th`` (thresholds ``x|t1``, ...); with
        covariates lavaan's ``res_cov``, ``res_int``, ``res_th``, ``res_slopes``, ``cov_x``,
        ``mean_x`` (lavaan's ``fitted()``)."""
        out = {}
        for g, mom in enumerate(self._moments):
            key = self.group_labels[g] if self.n_groups > 1 else None
            th = np.where(self.model.layouts[g].th_rows >= 0, mom.th, np.nan)
            out[key] = self._frames(th, mom.cor, mom.mu, mom.slopes, g)
        return out

    def sample_moments(self) -> dict:
        """The sample statistics per group in the layout of :meth:`implied` (polychoric /
        polyserial / Pearson correlations, thresholds, slopes)."""
        out = {}
        for g, st in enumerate(self.categorical):
            key = self.group_labels[g] if self.n_groups > 1 else None
            out[key] = self._frames(st.th, st.cov, st.mean, st.slopes, g)
        return out

    @cached_property
    def sample_moments_arrays(self) -> list:
        return [(st.cov, st.mean) for st in self.categorical]

    def inspect(self, what: str = "free"):
        """lavaan's ``lavInspect`` (see :meth:`SEMFit.inspect`); for ordinal fits
        ``"implied"`` / ``"sampstat"`` are the latent-response statistics of :meth:`implied`
        / :meth:`sample_moments` and ``"th"`` the implied thresholds (``"sampstat.th"``: the
        sample ones)."""
        text = what.strip().lower().replace("_", ".").replace("-", ".") \
            if isinstance(what, str) else what
        if text in ("th", "thresholds", "sampstat.th"):
            source = self.sample_moments() if text == "sampstat.th" else self.implied()
            items = [frames.get("th", frames.get("res_th")) for frames in source.values()]
            return self._per_group(items)
        key = self.INSPECT_KEYS.get(text) if isinstance(text, str) else None
        if key == "implied":
            return self._per_group(list(self.implied().values()))
        if key == "sampstat":
            return self._per_group(list(self.sample_moments().values()))
        return super().inspect(what)

    def residuals(self) -> dict:
        """Sample minus implied statistics (correlations, thresholds, ...) per group."""
        sample, implied = self.sample_moments(), self.implied()
        return {k: {name: sample[k][name] - implied[k][name] for name in sample[k]}
                for k in sample}

    def _residual_measures(self) -> dict:
        """RMR / SRMR / CRMR as lavaan 0.6-14 computes them for categorical data
        (``lav_residuals_summary``): per group the root mean square of the residual
        correlations below the diagonal (``*_nomean``; divided by their number plus the number
        of variables, covariates included, except for CRMR) and with the residual thresholds
        (``rmr``, ``srmr_bentler``, ``crmr``); ``raw`` residuals for RMR, residuals scaled by the
        sample standard deviations for SRMR (Bentler), differences of correlations for CRMR
        (Bollen); combined over groups with weights N_g / N.  lavaan's ``srmr`` is
        ``srmr_bentler_nomean``."""
        out: dict = {}
        nvar = self.model.n_ov
        for g, (st, mom) in enumerate(zip(self.categorical, self._moments)):
            w = self.problem.weights[g]
            S, Sig = st.cov, mom.cor
            s = np.sqrt(np.diag(S))
            m = np.sqrt(np.clip(np.diag(Sig), 0, None))
            lay = self.model.layouts[g]
            ordered = lay.th_rows >= 0
            th_s, th_m = st.th[ordered], mom.th[ordered]
            tv = lay.th_var[ordered]
            rows, cols = np.tril_indices(len(s), -1)
            kinds = {
                "rmr": ((S - Sig)[rows, cols], th_s - th_m, True),
                "srmr_bentler": (((S - Sig) / np.outer(s, s))[rows, cols],
                                 (th_s - th_m) / s[tv], True),
                "crmr": ((S / np.outer(s, s) - Sig / np.outer(m, m))[rows, cols],
                         th_s / s[tv] - th_m / m[tv], False),
            }
            for name, (cor, th, with_diag) in kinds.items():
                extra = nvar if with_diag else 0
                nomean = np.sqrt(np.sum(cor ** 2) / (len(cor) + extra)) if len(cor) + extra \
                    else 0.0
                total = np.sqrt((np.sum(cor ** 2) + np.sum(th ** 2))
                                / (len(cor) + len(th) + extra))
                out[f"{name}_nomean"] = out.get(f"{name}_nomean", 0.0) + w * nomean
                out[name] = out.get(name, 0.0) + w * total
        out["srmr"] = out["srmr_bentler_nomean"]
        out["srmr_mplus"] = out["srmr_mplus_nomean"] = np.nan
        return {k: out[k] for k in ("rmr", "rmr_nomean", "srmr", "srmr_bentler",
                                    "srmr_bentler_nomean", "crmr", "crmr_nomean",
                                    "srmr_mplus", "srmr_mplus_nomean")}

    def _other_measures(self) -> dict:
        """GFI / AGFI / PGFI from the weighted statistics (lavaan's ``lav_fit_gfi``:
        ``1 - r' W r / s' W s`` per group, weighted by N_g), Hoelter's critical N, McDonald's
        MFI (both with lavaan's N - G) and the WRMR ``sqrt(chisq / n_stats)`` (lavaan counts the
        statistics of the first group only)."""
        from scipy.special import chdtri  # chi-square quantile (no scipy.stats import)
        stats = self._test_statistics()
        X2, df = stats["chisq"], stats["df"]
        N = float(self.ntotal - self.n_groups)  # lavaan's N of the least-squares estimators
        gfi = 0.0
        nel = 0
        for g, (loss, mom) in enumerate(zip(self.problem.losses, self._moments)):
            r = loss.residual(mom)
            s = loss.statistics
            gfi += self.problem.weights[g] * (1.0 - float(r @ loss._apply(r))
                                              / float(s @ loss._apply(s)))
            nel += len(s)
        out = {"gfi": gfi,
               "agfi": 1.0 - (nel / df) * (1.0 - gfi) if df > 0 else 1.0,
               "pgfi": (df / nel) * gfi if nel else np.nan}
        for alpha, key in ((0.05, "cn_05"), (0.01, "cn_01")):
            out[key] = chdtri(df, alpha) / (X2 / N) + 1 \
                if not (df == 0 and X2 < np.finfo(float).eps) else np.nan
        out["mfi"] = float(np.exp(-0.5 * (X2 - df) / N))
        n_first = len(self.problem.losses[0].statistics)  # lavaan: the first group's count
        out["wrmr"] = float(np.sqrt(X2 / n_first)) if n_first else np.nan
        return out

    # ------------------------------------------------------------------ robust CFI / RMSEA
    def _catml(self) -> Optional[dict]:
        """The pieces of lavaan's robust CFI / TLI / RMSEA for categorical data (Savalei 2021,
        "Improving fit indices in structural equation modeling with categorical data",
        Multivariate Behavioral Research 56:390-407; lavaan's ``lav_fit_catml_dwls``).

        The normal-theory ML discrepancy between the polychoric correlation matrix R and
        the implied Sigma* at the (D)WLS estimates, ``XX3 = sum_g N_g (log|Sigma*| - log|R|
        + tr(R Sigma*^-1) - p)``, with the scaling factor ``c3 = tr(U' V U Gamma) / df3``
        (correlation block only; ``U = I - Delta E^-1 Delta' W``, W the fit's weights, V the
        normal-theory information of the correlations at Sigma*) and for the baseline
        ``XX3_0 = -sum_g N_g log|R_g|`` with ``c3_0 = sum_g tr(Gamma_g) / (w_g df0)`` (lavaan's
        choice).  As lavaan 0.6-14: not defined (NaN) with continuous indicators, exogenous
        covariates or thresholds constrained across groups."""
        cache = self.__dict__.setdefault("_wls_cache", {})
        if "catml" in cache:
            return cache["catml"]
        out = None
        pt = self._table
        th = pt["op"] == "|"
        labels = pt["label"][th]
        shared = len(set(lab for lab in labels if lab)) < sum(1 for lab in labels if lab) \
            or any(lab and lab in set(pt["label"][~th]) for lab in labels)
        ok = (not self.model.nx and bool(self.model.ordered.all()) and not shared
              and not np.any(pt["op"] == "=="))
        if ok:
            from ..inference.wls_inference import _pieces
            pieces = _pieces(self)
            Einv = pieces.inverse_information()
            XX3 = XX3_null = kbs = trVG = 0.0
            q = Einv.shape[0]
            DVGWD, DVD, DWGWD = np.zeros((q, q)), np.zeros((q, q)), np.zeros((q, q))
            for g, (loss, mom) in enumerate(zip(self.problem.losses, self._moments)):
                R = self.categorical[g].cor
                if np.linalg.eigvalsh(R).min() < np.sqrt(np.finfo(float).eps):
                    ok = False
                    break
                S = mom.cor
                sign, logdet = np.linalg.slogdet(S)
                if sign <= 0:
                    ok = False
                    break
                A = np.linalg.inv(S)
                p = S.shape[0]
                logdet_R = np.linalg.slogdet(R)[1]
                XX3 += loss.nobs * (logdet - logdet_R + np.sum(R * A) - p)
                XX3_null -= loss.nobs * logdet_R
                smap = loss.statistics_map
                cor = slice(smap.n_stats - len(smap.ci), smap.n_stats)
                wg = pieces.weights[g]
                a, b = smap.ci, smap.cj
                # normal-theory information of the correlations at Sigma*
                Vg = A[a[:, None], a[None, :]] * A[b[:, None], b[None, :]] \
                    + A[a[:, None], b[None, :]] * A[b[:, None], a[None, :]]
                D = pieces.deltas[g][cor]
                W = loss.weight_matrix[cor, cor]
                G = loss.gamma[cor, cor]
                VG = Vg @ G
                WD = W @ D
                trVG += float(np.trace(VG))
                DVGWD += wg * (D.T @ VG @ WD)
                DVD += wg * (D.T @ Vg @ D)
                DWGWD += wg * (WD.T @ G @ WD)
                kbs += np.trace(G) / wg
        if ok:
            # tr((I - P)' V (I - P) Gamma), P = Delta E^-1 Delta' W, group by group
            ks = trVG - 2.0 * float(np.sum(Einv * DVGWD.T)) \
                + float(np.sum((Einv @ DVD) * (Einv @ DWGWD).T))
            df3 = self._test_statistics()["df"]
            df3_null = self._baseline_df()
            c3 = ks / df3 if df3 > 0 else np.nan
            out = {"XX3": XX3, "df3": df3, "c_hat3": c3, "XX3_scaled": XX3 / c3,
                   "XX3_null": XX3_null, "df3_null": df3_null, "c_hat3_null": kbs / df3_null}
        cache["catml"] = out
        return out

    @single_threaded_blas
    def measures(self) -> pd.Series:
        """Fit measures as lavaan 0.6-14 reports them for categorical data; the robust CFI /
        TLI / RNI / RMSEA are Savalei's (2021) catML versions (:meth:`_catml`), NaN where
        lavaan does not define them."""
        if "_measures" in self.__dict__:
            return self.__dict__["_measures"].copy()
        m = super().measures()
        m = pd.concat([m, pd.Series(self._other_measures(), dtype=float)])
        for k, v in self._residual_measures().items():
            m[k] = v
        if "cfi_robust" in m.index:
            from ..inference.fitmeasures import rmsea_measures, robust_incremental_measures
            c = self._catml()
            keys = [k for k in m.index if k.endswith("_robust")]
            m[keys] = np.nan
            if c is not None:
                stats, base = self._test_statistics(), self._baseline_statistics()
                inc = robust_incremental_measures(c["XX3"], stats["df"], c["c_hat3"],
                                                  c["XX3_null"], base["df"], c["c_hat3_null"])
                for k, v in inc.items():
                    m[k] = v
                N = float(self.ntotal - self.n_groups)
                G = self.n_groups
                point = rmsea_measures(c["XX3"], c["df3"], N, G, c_hat=c["c_hat3"])
                interval = rmsea_measures(c["XX3_scaled"], c["df3"], N, G, c_hat=c["c_hat3"])
                m["rmsea_robust"] = point["rmsea"]
                for k in ("rmsea_ci_lower", "rmsea_ci_upper", "rmsea_pvalue",
                          "rmsea_notclose_pvalue"):
                    m[f"{k}_robust"] = interval[k]
        self.__dict__["_measures"] = m
        return m.copy()

    # ------------------------------------------------------------------ standardized
    @single_threaded_blas
    def standardized(self, se: bool = True) -> pd.DataFrame:
        """Standardized solution (lavaan's ``standardizedSolution``): the latent responses
        are standardized by their model-implied standard deviations; the values lavaan
        derives (residual variances under delta, scale factors under theta) are recomputed
        inside the delta method, so they have standard errors."""
        from ..inference.standardized import standardize_values, standardized_table
        raw = self.problem.values(self.result.z)
        scale_rows = self._partable["op"].to_numpy() == "~*~"

        def std(vals, kind):
            full = self.model.derived_values(vals)
            out = standardize_values(self, full, kind)
            if kind != "lv":  # lavaan: thresholds / sd(y*), scale factors 1
                out = self._standardize_thresholds(out, full)
                out[scale_rows] = 1.0
            return out

        return standardized_table(self, raw, std, se)

    def _standardize_thresholds(self, out: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Thresholds divided by the model-implied standard deviation of their latent
        response (lavaan's std.all / std.nox)."""
        for g, lay in enumerate(self.model.layouts):
            mom = self.model.moments(values, g)
            sd = np.sqrt(np.diag(mom.full_cov)[self.model.y_idx])
            ok = lay.th_rows >= 0
            rows = lay.th_rows[ok]
            out[rows] = values[rows] / sd[lay.th_var[ok]]
        return out

    def factor_scores(self):
        raise NotImplementedError("factor scores for ordered indicators (empirical Bayes "
                                  "modal estimates) are not implemented")

    def _loglik(self) -> dict:
        raise ValueError("ordinal fits by (D)WLS have no likelihood")
