"""Refitting one model to many data sets without rebuilding it.

A bootstrap, a permutation test or a power study fits the same model thousands of times to new
data.  :func:`sem_models.sem` parses the syntax, builds the parameter table, the matrices and
the constraint map, checks the data frame and computes start values on every call: for a small
model about half of a fit.  :class:`Refitter` does that work once (from a fitted model) and per
data set only builds the sample statistics and losses, starts from the fitted estimates (a warm
start, lavaan's ``start = fit``) and runs the optimizer.  The result is the fit
:func:`sem_models.sem` returns for the same data, options and ``start=`` (tested).

The fast path covers maximum likelihood with complete data (``MLGroupLoss``) or FIML
(``FIMLGroupLoss``), including fixed exogenous covariates (whose fixed moments are recomputed
from each data set), labels, equality constraints and bounds.  Any other fit (least-squares
estimators, ordinal data, two-level models, nonlinear or inequality constraints) is refitted
by :func:`sem_models.sem` with the same options and the warm start.

The bootstrap refits complete-data ML fits a chunk of data sets at a time with the vectorised
kernel of :mod:`.batched`, built from a :class:`Refitter`; the data sets that kernel does not
finish come back here.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["Refitter", "refit_options"]

#: options that change standard errors and tests but not the estimates (left out of refits)
_INFERENCE_ONLY = {"se", "test", "information", "observed_information", "h1_information",
                   "level", "cluster", "group", "group_labels", "start", "bootstrap", "iseed"}
#: options a refit sets itself
_GROUPING = {"cluster", "group", "group_labels", "start", "bootstrap", "iseed"}
#: estimators whose point estimates are the ML estimates
ML_FAMILY = {"ML", "MLM", "MLR", "MLMV", "MLMVS", "MLF"}


def refit_options(fit, inference: bool = False) -> dict:
    """The fit's options as keywords of :func:`sem_models.sem`: those that determine the
    estimates (robust ML variants refit as plain ML: same estimates), or with
    ``inference=True`` also those of the standard errors and tests (``group``,
    ``group_labels`` and ``cluster`` are set by the refit)."""
    import inspect

    from ..api import fit_model
    accepted = inspect.signature(fit_model).parameters
    skip = _GROUPING if inference else _INFERENCE_ONLY
    opts = {key: value for key, value in fit.options.items()
            if key in accepted and key not in skip}
    if not inference and str(opts.get("estimator", "ML")).upper() in ML_FAMILY:
        opts["estimator"] = "ML"
    return opts


def _fast_path_ok(fit) -> bool:
    from ..results import SEMFit
    if type(fit) is not SEMFit:  # ordinal, two-level, ... fits: their own pipelines
        return False
    if str(fit.options.get("estimator", "ML")).upper() not in ML_FAMILY:
        return False
    if fit.options.get("missing", "listwise") not in ("listwise", "fiml"):
        return False
    ops = set(fit._table["op"].tolist())
    return not ops & {"<", ">"}  # inequalities: the constrained optimizer of sem()


class Refitter:
    """Fits a fitted model's parameter table to new data, one array per group.

    ``Refitter(fit).fit(Xs)`` returns a :class:`~sem_models.results.SEMFit` for the rows
    ``Xs[g]`` (columns in the order of ``fit.data.ov_names``) of group ``g``; ``start``
    (default the fit's estimates) starts the free parameters.  By default the refits are
    plain ML fits (for estimates and the chi-square: robust variants have the same
    estimates); ``inference=True`` keeps the fit's ``se`` / ``test`` / ``information``
    options (its standard errors and tests, e.g. for power analyses).  Picklable: worker
    processes receive the parameter table, matrices and constraint map, never the data of
    the fit.
    """

    def __init__(self, fit, *, inference: bool = False, max_iter: Optional[int] = None):
        self.syntax = fit.model_syntax
        self.options = refit_options(fit, inference)
        self.group = fit.options.get("group")
        self.group_labels = list(fit.group_labels)
        self.ov = list(fit.data.ov_names)
        self.start = np.asarray(fit.values, float).copy()
        self.max_iter = int(max_iter if max_iter is not None else
                            fit.options.get("max_iter", 500) or 500)
        self.fast = _fast_path_ok(fit)
        self._z_start = None
        #: the fit's cluster column when its standard errors are cluster-robust
        self.cluster = fit.options.get("cluster") if inference else None
        if self.fast:
            from ..inference.options import resolve_options
            from ..model.constraints import build_parameter_map
            table = fit._table
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pmap = build_parameter_map(table, allow_general=True)
            if pmap.general is not None:
                self.fast = False
            else:
                self.table = table
                self.variables = fit.variables
                self.model = fit.model
                self.pmap = pmap
                self.graph = fit._graph
                self.fiml = fit.options.get("missing") == "fiml"
                self.exo = np.asarray(table["exo"]) == 1
                if inference:
                    self.fit_options = dict(fit.options)
                else:
                    self.fit_options = dict(
                        fit.options, estimator="ML", cluster=None,
                        **resolve_options("ML", fit.options.get("missing"), None))

    # ---------------------------------------------------------------------------- data
    def frame(self, Xs: Sequence[np.ndarray],
              clusters: Optional[Sequence[np.ndarray]] = None) -> pd.DataFrame:
        """The arrays as the data frame :func:`sem_models.sem` would receive."""
        data = pd.DataFrame(np.vstack(Xs), columns=self.ov)
        if self.group is not None:
            data[self.group] = np.repeat(np.array(self.group_labels, dtype=object),
                                         [len(X) for X in Xs])
        if clusters is not None:
            data[self.cluster] = np.concatenate([np.asarray(c) for c in clusters])
        return data

    # ---------------------------------------------------------------------------- fitting
    def fit(self, Xs: Sequence[np.ndarray], start: Optional[np.ndarray] = None,
            clusters: Optional[Sequence[np.ndarray]] = None):
        """The model fitted to ``Xs`` (one array per group), started at ``start``;
        ``clusters`` (one id array per group) when the fit's standard errors are
        cluster-robust (``inference=True`` with a ``cluster=`` fit)."""
        Xs = [np.asarray(X, float) for X in Xs]
        if len(Xs) != len(self.group_labels):
            raise ValueError(f"{len(Xs)} data arrays for {len(self.group_labels)} group(s)")
        if (clusters is None) != (self.cluster is None):
            raise ValueError("cluster ids are needed exactly when the refits keep cluster-robust "
                             f"standard errors (cluster={self.cluster!r})")
        if clusters is not None and [len(c) for c in clusters] != [len(X) for X in Xs]:
            raise ValueError("one cluster id per row of each group's data")
        start = self.start if start is None else np.asarray(start, float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.fast:
                return self._fit_fast(Xs, start, clusters)
            return self._fit_sem(Xs, start, clusters)

    def _fit_sem(self, Xs, start, clusters=None):
        from ..api import sem
        data = self.frame(Xs, clusters)
        kwargs = dict(self.options, group=self.group, cluster=self.cluster,
                      group_labels=self.group_labels if self.group is not None else None)
        try:
            return sem(self.syntax, data, start=start, **kwargs)
        except (FloatingPointError, np.linalg.LinAlgError):
            pass  # the start does not suit these data: start afresh
        return sem(self.syntax, data, **kwargs)

    def _fit_fast(self, Xs, start, clusters=None):
        from ..errors import EstimationError
        from ..estimation.data import DataError, GroupData, ObservedData
        from ..estimation.ml import MLGroupLoss
        from ..estimation.optimizer import Problem, optimize
        from ..model.start import start_values
        from ..results import SEMFit

        groups = []
        ids = [None] * len(Xs) if clusters is None else [np.asarray(c) for c in clusters]
        for label, X, cl in zip(self.group_labels, Xs, ids):
            if X.ndim != 2 or X.shape[1] != len(self.ov):
                raise ValueError(f"data of group {label!r} must have {len(self.ov)} columns")
            if X.shape[0] < 2:
                raise DataError(f"only {X.shape[0]} case(s) in group {label!r}")
            groups.append(GroupData(label, X, np.arange(X.shape[0]), cl))
        obs = ObservedData(self.ov, groups, self.group, int(sum(X.shape[0] for X in Xs)))
        if self.fiml:
            from ..estimation.fiml import FIMLGroupLoss
            losses = [FIMLGroupLoss(g.X) for g in groups]
            covs = [loss.cov for loss in losses]
            means = [loss.mean for loss in losses]
        else:
            if any(np.isnan(g.X).any() for g in groups):
                raise DataError("missing values in a complete-data (listwise) refit")
            covs = [g.cov for g in groups]
            means = [g.mean for g in groups]
            for g, cov in zip(groups, covs):
                try:
                    np.linalg.cholesky(cov)
                except np.linalg.LinAlgError:
                    raise DataError(f"the sample covariance matrix of group {g.label!r} is "
                                    "not positive definite") from None
            losses = [MLGroupLoss(c, m, g.nobs, self.model.meanstructure)
                      for c, m, g in zip(covs, means, groups)]
        values = start.copy()
        if self.exo.any():  # fixed exogenous moments: those of these data
            fresh = start_values(self.table, self.variables, covs, means)
            values[self.exo] = fresh[self.exo]
        problem = Problem(self.model, losses, self.pmap, values)
        if start is self.start:  # the reduced start vector once (a least-squares solve)
            if self._z_start is None:
                self._z_start = self.pmap.z_from_free(values[self.pmap.free_rows])
            z0 = self._z_start.copy()
        else:
            z0 = self.pmap.z_from_free(values[self.pmap.free_rows])
        try:
            result = optimize(problem, z0, max_iter=self.max_iter)
        except (FloatingPointError, np.linalg.LinAlgError):
            return self._fit_sem(Xs, None, clusters)  # as sem(): start values of its own
        if not (np.isfinite(result.fmin) and np.all(np.isfinite(result.z))):
            raise EstimationError("the estimation ended at non-finite values")
        return SEMFit(self.syntax, self.table, self.variables, self.model, obs, problem, result,
                      self.graph, dict(self.fit_options))
