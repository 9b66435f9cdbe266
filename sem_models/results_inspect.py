"""lavaan's ``lavInspect`` for a fit: :meth:`~sem_models.results.SEMFit.inspect` and what it
reads.

:class:`InspectMixin` is a base class of :class:`sem_models.results.SEMFit`: the key table
(:attr:`InspectMixin.INSPECT_KEYS`), the parameter table laid out as lavaan's LISREL
matrices (``lambda``, ``theta``, ``psi``, ``beta``, ``nu``, ``alpha``; Joreskog & Sorbom's
all-y model), the R-squared values (also the ``r2`` rows of ``estimates(rsquare=True)``),
start values, unit information matrices and lavaan's parameter names.  It uses the fit's
``_table``, ``model``, ``variables``, ``problem``, ``values`` and moments.
"""
from __future__ import annotations

from functools import cached_property
from typing import Optional

import numpy as np
import pandas as pd

from .estimation.threads import single_threaded_blas

__all__ = ["InspectMixin"]


class InspectMixin:
    """Mixin of :class:`~sem_models.results.SEMFit`: ``inspect()`` (lavaan's ``lavInspect``)."""

    # ---------------------------------------------------------------------------- lavInspect
    @cached_property
    def _rsquare(self) -> list:
        """R-squared per group (a Series each), lavaan's ``lavInspect(fit, "r2")``.

        For every endogenous variable (an indicator, ``=~`` rhs, or a regression outcome,
        ``~`` lhs; observed or latent) ``R^2 = 1 - psi_ii / var_ii``: one minus the ratio of
        its residual variance to its model-implied total variance, i.e. one minus the
        residual variance's ``std_all`` value (the squared multiple correlation; Bollen 1989,
        *Structural Equations with Latent Variables*, ch. 4 and 7).  NaN where the residual
        variance is negative (R^2 > 1).  Order: the parameter table's variance rows.
        """
        from .inference.standardized import standardize_values
        std_all = standardize_values(self, self.values, "all")
        group = self._table["group"]
        return [rsquare_series(self._table, group == g + 1, std_all)
                for g in range(self.n_groups)]

    def _rsquare_rows(self) -> pd.DataFrame:
        """The ``op == "r2"`` rows of ``estimates(rsquare=True)``."""
        groups = self.group_labels if self.n_groups > 1 else [None] * self.n_groups
        return rsquare_rows(self._rsquare, groups)

    @cached_property
    def _start_values(self) -> np.ndarray:
        """The start values the optimizer began from, per parameter-table row (fixed rows:
        their values): ``start_values`` of :mod:`sem_models.model.start` (or ``start=``),
        projected onto the equality constraints as the optimizer received them."""
        pmap = self.problem.pmap
        base = self.problem.base_values
        return self.problem.values(pmap.z_from_free(base[pmap.free_rows]))

    @cached_property
    def _lisrel_layout(self) -> list:
        """Where each parameter-table row sits in lavaan's LISREL matrices, per group.

        lavaan's representation (``lavInspect(fit, "est")``): ``lambda`` (observed x latent),
        ``theta`` (observed residual (co)variances), ``psi`` (latent (co)variances), ``beta``
        (latent regressions, when there are any), ``nu`` / ``alpha`` (intercepts, with a mean
        structure).  Observed variables that take part in a regression, or covary with such
        a variable, are carried as "dummy" latent variables (appended to the latent
        variables in observed-variable order) with a fixed loading of 1 and zero residual
        variance, so that their regressions go into ``beta`` and their variances into
        ``psi`` (Joreskog & Sorbom's all-y LISREL model; the layout lavaan uses).
        """
        pt = self._table
        op, lhs, rhs, group = pt["op"], pt["lhs"], pt["rhs"], pt["group"]
        ov = list(self.model.ov_names)
        lv = list(self.variables.lv)
        layouts = []
        for g in range(self.n_groups):
            in_group = group == g + 1
            reg = in_group & (op == "~")
            in_reg = (set(lhs[reg]) | set(rhs[reg])) - set(lv)
            touch = in_group & (op == "~~") & (np.isin(lhs, list(in_reg))
                                               | np.isin(rhs, list(in_reg)))
            dummy_set = in_reg | set(lhs[touch]) | set(rhs[touch])
            dummies = [v for v in ov if v in dummy_set]
            eta = lv + dummies
            eta_pos = {v: k for k, v in enumerate(eta)}
            ov_pos = {v: k for k, v in enumerate(ov)}
            rows = np.flatnonzero(in_group & np.isin(op, ["=~", "~", "~~", "~1"]))
            l_eta = np.array([eta_pos.get(v, -1) for v in lhs[rows]], int)
            r_eta = np.array([eta_pos.get(v, -1) for v in rhs[rows]], int)
            l_ov = np.array([ov_pos.get(v, -1) for v in lhs[rows]], int)
            r_ov = np.array([ov_pos.get(v, -1) for v in rhs[rows]], int)
            o = op[rows]
            # (matrix, selection, row index, column index)
            spec = [
                ("lambda", (o == "=~") & (r_eta < 0), r_ov, l_eta),
                ("beta", (o == "=~") & (r_eta >= 0), r_eta, l_eta),
                ("beta", o == "~", l_eta, r_eta),
                ("theta", (o == "~~") & (l_eta < 0), l_ov, r_ov),
                ("psi", (o == "~~") & (l_eta >= 0), l_eta, r_eta),
                ("nu", (o == "~1") & (l_eta < 0), l_ov, np.zeros(len(rows), int)),
                ("alpha", (o == "~1") & (l_eta >= 0), l_eta, np.zeros(len(rows), int)),
            ]
            cells: dict = {}
            for name, sel, i, j in spec:
                if sel.any():
                    prev = cells.get(name, (np.zeros(0, int),) * 3)
                    cells[name] = tuple(np.concatenate([a, b[sel]])
                                        for a, b in zip(prev, (rows, i, j)))
            names = ["lambda", "theta", "psi"] + (["beta"] if "beta" in cells else []) \
                + (["nu", "alpha"] if self.model.meanstructure else [])
            dims = {"lambda": (ov, eta), "theta": (ov, ov), "psi": (eta, eta),
                    "beta": (eta, eta), "nu": (ov, ["intercept"]),
                    "alpha": (eta, ["intercept"])}
            dummy_cells = (np.array([ov_pos[v] for v in dummies], int),
                           np.array([eta_pos[v] for v in dummies], int))
            layouts.append({"names": names, "dims": dims, "cells": cells,
                            "dummy": dummy_cells})
        return layouts

    def _lisrel_matrices(self, row_values: np.ndarray, dummy_value: float, dtype=float):
        """``row_values`` (one per parameter-table row) laid out as lavaan's LISREL matrices
        (labelled DataFrames), one dict per group; dummy loadings get ``dummy_value``."""
        out = []
        for layout in self._lisrel_layout:
            group = {}
            for name in layout["names"]:
                index, columns = layout["dims"][name]
                mat = np.zeros((len(index), len(columns)), dtype)
                if name in layout["cells"]:
                    rows, i, j = layout["cells"][name]
                    mat[i, j] = row_values[rows]
                    if name in ("theta", "psi"):
                        mat[j, i] = row_values[rows]
                if name == "lambda":
                    mat[layout["dummy"]] = dummy_value
                group[name] = pd.DataFrame(mat, index=list(index), columns=list(columns))
            out.append(group)
        return out

    def _per_group(self, items: list):
        """One group: the item itself; several: a dict keyed by group label (lavaan's list)."""
        if self.n_groups == 1:
            return items[0]
        return dict(zip(self.group_labels, items))

    def _moment_frames(self, arrays: list) -> list:
        """(cov, mean) arrays per group as {"cov": DataFrame, "mean": Series}; the means
        only with a mean structure (as lavaan's ``implied`` / ``sampstat``)."""
        ov = list(self.model.ov_names)
        out = []
        for cov, mean in arrays:
            item = {"cov": pd.DataFrame(cov, index=ov, columns=ov)}
            if self.model.meanstructure:
                item["mean"] = pd.Series(mean, index=ov)
            out.append(item)
        return out

    def _information_free(self, kind: str) -> pd.DataFrame:
        """Unit (per-case) information matrix of the free parameter-table rows (lavaan's
        ``lavInspect(fit, "information")``): ``kind`` ``"expected"`` (Fisher) or
        ``"observed"`` (Hessian of the fitting function), in the free rows' coordinates
        before equality constraints (as lavaan), built by the same routines as the robust
        standard errors (:class:`sem_models.inference.sandwich.RobustEvaluator` with the
        identity in place of the constraint map)."""
        from .inference.sandwich import RobustEvaluator
        evaluator = RobustEvaluator(self)
        evaluator.T = np.eye(len(self.problem.pmap.free_rows))
        names = self._lavaan_param_names()
        return pd.DataFrame(evaluator.information(kind), index=names, columns=names)

    def _lavaan_param_names(self) -> list[str]:
        """lavaan's names of the free parameters (``lavInspect`` matrices): the label when
        the row has one (automatic ``.pN.`` labels of ``group_equal`` included), else
        ``lhs op rhs`` with ``.gK`` for group K > 1."""
        pt = self._table
        rows = self.problem.pmap.free_rows
        names = []
        for lab, lhs, op, rhs, g in zip(pt["label"][rows], pt["lhs"][rows], pt["op"][rows],
                                        pt["rhs"][rows], pt["group"][rows]):
            names.append(lab if lab else f"{lhs}{op}{rhs}" + (f".g{g}" if g > 1 else ""))
        return names

    #: lavInspect keys (lavaan's names; ``_`` may replace ``.``) -> canonical key
    INSPECT_KEYS = {
        "free": "free", "partable": "partable", "start": "start",
        "starting.values": "start", "est": "est", "estimates": "est", "x": "est",
        "se": "se", "std.err": "se", "standard.errors": "se",
        "std": "std", "std.all": "std", "standardized": "std", "std.lv": "std.lv",
        "std.nox": "std.nox", "implied": "implied", "fitted": "implied",
        "sampstat": "sampstat", "sample.statistics": "sampstat", "obs": "sampstat",
        "nobs": "nobs", "ntotal": "ntotal", "ngroups": "ngroups",
        "group.label": "group.label", "group.labels": "group.label",
        "r2": "r2", "rsquare": "r2", "r.squared": "r2",
        "cov.lv": "cov.lv", "veta": "cov.lv", "cor.lv": "cor.lv",
        "converged": "converged", "iterations": "iterations", "niter": "iterations",
        "information": "information", "information.expected": "information.expected",
        "information.observed": "information.observed", "vcov": "vcov",
        "coef": "coef", "npar": "npar", "fit": "fit", "fit.measures": "fit",
        "fitmeasures": "fit",
    }

    @single_threaded_blas
    def inspect(self, what: str = "free"):
        """lavaan's ``lavInspect(fit, what)`` in pandas form.

        Model matrices (lavaan's LISREL layout, see :attr:`_lisrel_layout`: a dict of
        labelled DataFrames ``lambda``, ``theta``, ``psi`` and, when present, ``beta``,
        ``nu``, ``alpha``): ``"free"`` (free-parameter numbers, 0 = fixed), ``"partable"``
        (parameter-table row ids), ``"start"`` (start values), ``"est"``, ``"se"``,
        ``"std"`` (= ``"std.all"``), ``"std.lv"``, ``"std.nox"``.
        Moments: ``"implied"`` and ``"sampstat"`` ({"cov": DataFrame, "mean": Series}, the
        means with a mean structure; sample covariances with divisor N, EM estimates under
        FIML), ``"cov.lv"`` / ``"cor.lv"`` (model-implied covariance / correlation matrix of
        the latent variables), ``"r2"`` (R-squared of the endogenous variables: a Series;
        several groups: a DataFrame with one column per group).
        Per-group items are dicts keyed by group label when there are several groups.
        Scalars and vectors: ``"nobs"`` (int; several groups: Series by group label),
        ``"ntotal"``, ``"ngroups"``, ``"group.label"`` (list; ``[]`` for one group),
        ``"converged"``, ``"iterations"``, ``"npar"``, ``"coef"`` (free estimates),
        ``"fit"`` (:meth:`measures`).  Free-parameter matrices: ``"information"`` (unit
        information of the fit's ``information`` type; ``"information.expected"``,
        ``"information.observed"``) and ``"vcov"`` (labelled as lavaan's: by label where a
        row has one, ``.pN.`` labels of ``group_equal`` included, unlike :meth:`vcov`).
        ``_`` may stand for ``.``
        (``"group_label"``, ``"cov_lv"``).
        """
        if not isinstance(what, str):
            raise ValueError(f"inspect() takes a key (a string), not {type(what).__name__}")
        key = self.INSPECT_KEYS.get(what.strip().lower().replace("_", ".").replace("-", "."))
        if key is None:
            valid = sorted(set(self.INSPECT_KEYS.values()))
            raise ValueError(f"unknown inspect key {what!r}; valid keys: {', '.join(valid)}")
        pt = self._table
        if key in ("free", "partable"):
            column = pt["free"] if key == "free" else pt["id"]
            return self._per_group(self._lisrel_matrices(np.asarray(column, int), 0, int))
        if key in ("start", "est", "se", "std", "std.lv", "std.nox"):
            if key == "start":
                values, dummy = self._start_values, 1.0
            elif key == "est":
                values, dummy = self.values, 1.0
            elif key == "se":
                values, dummy = np.nan_to_num(self._est_se[1]), 0.0
            else:
                from .inference.standardized import standardize_values
                kind = {"std": "all", "std.lv": "lv", "std.nox": "nox"}[key]
                values, dummy = standardize_values(self, self.values, kind), 1.0
            return self._per_group(self._lisrel_matrices(values, dummy))
        if key == "implied":
            return self._per_group(self._moment_frames(
                [(mom.cov, self._implied_mean(g)) for g, mom in enumerate(self._moments)]))
        if key == "sampstat":
            return self._per_group(self._moment_frames(self.sample_moments_arrays))
        if key in ("cov.lv", "cor.lv"):
            lv = list(self.variables.lv)
            idx = np.arange(self.model.n_ov, self.model.n_ov + len(lv))
            frames = []
            for mom in self._moments:
                cov = mom.full_cov[np.ix_(idx, idx)]
                if key == "cor.lv":
                    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
                    with np.errstate(invalid="ignore", divide="ignore"):
                        cov = cov / np.outer(sd, sd)
                frames.append(pd.DataFrame(cov, index=lv, columns=lv))
            return self._per_group(frames)
        if key == "r2":
            if self.n_groups == 1:
                return self._rsquare[0].copy()
            return pd.DataFrame({lab: s for lab, s in zip(self.group_labels, self._rsquare)})
        if key == "nobs":
            return int(self.nobs[0]) if self.n_groups == 1 else \
                pd.Series([int(n) for n in self.nobs], index=self.group_labels, name="nobs")
        if key == "group.label":
            return list(self.group_labels) if self.n_groups > 1 else []
        if key.startswith("information"):
            estimator = self.options.get("estimator", "ML")
            if estimator not in ("ML", "MLM", "MLR", "MLMV"):
                raise ValueError(f"inspect({what!r}) gives the ML information matrix; it is "
                                 f"not available for estimator={estimator!r} (use "
                                 "inspect('vcov') for its covariance matrix)")
            kind = self.options.get("information", "expected") if key == "information" \
                else key.split(".")[1]
            return self._information_free(kind)
        simple = {
            "ntotal": lambda: int(self.ntotal), "ngroups": lambda: int(self.n_groups),
            "converged": lambda: bool(self.converged),
            "iterations": lambda: int(self.result.iterations),
            "npar": lambda: int(len(self.problem.pmap.free_rows)),
            "fit": self.measures,
            "vcov": lambda: self.vcov().set_axis(self._lavaan_param_names(), axis=0)
                                       .set_axis(self._lavaan_param_names(), axis=1),
            "coef": lambda: pd.Series(self.values[self.problem.pmap.free_rows],
                                      index=self._param_names(), name="est"),
        }
        return simple[key]()


def rsquare_series(table, rows_in: np.ndarray, std_all: np.ndarray) -> pd.Series:
    """R-squared of the endogenous variables among the parameter-table rows ``rows_in`` (one
    group, or one level of one group): ``1 - std_all`` of each residual variance, NaN where
    that variance is negative."""
    op, lhs, rhs = table["op"], table["lhs"], table["rhs"]
    endogenous = list(set(rhs[rows_in & (op == "=~")]) | set(lhs[rows_in & (op == "~")]))
    rows = np.flatnonzero(rows_in & (op == "~~") & (lhs == rhs) & np.isin(lhs, endogenous))
    r2 = 1.0 - std_all[rows]
    r2[r2 > 1.0] = np.nan
    return pd.Series(r2, index=list(lhs[rows]), name="r2", dtype=float)


def rsquare_rows(series: list, groups: list, extra: Optional[dict] = None) -> pd.DataFrame:
    """``op == "r2"`` rows as in lavaan's ``parameterEstimates(rsquare=TRUE)``: one Series of
    R-squared values per block, its group label (None for one group) and optional extra
    columns per block (e.g. ``{"level": [1, 2]}``)."""
    frames = []
    for b, (values, group) in enumerate(zip(series, groups)):
        names = list(values.index)
        frame = pd.DataFrame({"lhs": names, "op": "r2", "rhs": names})
        if group is not None:
            frame["group"] = group
        for column, per_block in (extra or {}).items():
            frame[column] = per_block[b]
        frame["label"] = ""
        frame["est"] = values.to_numpy()
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    for col in ("se", "z", "pvalue", "ci_lower", "ci_upper"):
        out[col] = np.nan
    return out
