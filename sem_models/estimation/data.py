"""Observed data: checks, groups, missing-data handling and sample moments.

The caller's DataFrame is never modified: the analysed variables are copied into float
arrays, one per group.  Sample covariances use the divisor N (maximum likelihood, as lavaan's
default ``likelihood = "normal"``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["GroupData", "ObservedData", "prepare_data", "DataError"]


class DataError(ValueError):
    """The data cannot be analysed with this model (names the column or group)."""


@dataclass
class GroupData:
    """The analysed rows of one group."""

    label: object
    X: np.ndarray  # n x p, may contain NaN under FIML
    row_index: np.ndarray  # positions of the rows in the caller's DataFrame
    cluster: Optional[np.ndarray] = None

    @property
    def nobs(self) -> int:
        return self.X.shape[0]

    @cached_property
    def complete(self) -> bool:
        return not np.isnan(self.X).any()

    @cached_property
    def mean(self) -> np.ndarray:
        return self.X.mean(axis=0)

    @cached_property
    def cov(self) -> np.ndarray:
        centred = self.X - self.mean
        return centred.T @ centred / self.nobs


@dataclass
class ObservedData:
    """All groups' analysed data and what was dropped on the way."""

    ov_names: list[str]
    groups: list[GroupData]
    group_var: Optional[str]
    n_rows_input: int
    n_dropped: int = 0
    drop_reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def group_labels(self) -> list:
        return [g.label for g in self.groups]

    @property
    def nobs(self) -> list[int]:
        return [g.nobs for g in self.groups]

    @property
    def ntotal(self) -> int:
        return int(sum(self.nobs))


def _check_columns(data: pd.DataFrame, names: Sequence[str], where: dict) -> None:
    missing = [v for v in names if v not in data.columns]
    if missing:
        first = missing[0]
        loc = where.get(first)
        at = f" (model syntax line {loc[0]}, column {loc[1]})" if loc else ""
        raise DataError(
            f"variable(s) {missing} named in the model are not columns of the data{at}; "
            f"available columns: {list(data.columns)[:30]}")


def prepare_data(
    data: pd.DataFrame,
    ov_names: Sequence[str],
    *,
    group: Optional[str] = None,
    missing: str = "listwise",
    cluster: Optional[str] = None,
    where: Optional[dict] = None,
    group_labels: Optional[Sequence] = None,
) -> ObservedData:
    """Check and split the data into groups; apply listwise deletion or keep holes for FIML."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    where = where or {}
    _check_columns(data, list(ov_names), where)
    for extra, what in ((group, "group"), (cluster, "cluster")):
        if extra is not None and extra not in data.columns:
            raise DataError(f"the {what} column {extra!r} is not in the data")
    if not data.columns.is_unique:
        duplicated = set(data.columns[data.columns.duplicated()]) & set(ov_names)
        if duplicated:
            raise DataError(f"column(s) {sorted(duplicated)} appear more than once in the data")
    columns = [data[name] for name in ov_names]  # one Series per column: cheaper than a subset
    for name, col in zip(ov_names, columns):
        if (getattr(col.dtype, "kind", "") in "biuf" or col.dtype == bool
                or pd.api.types.is_numeric_dtype(col.dtype)):
            continue
        bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()]
        example = repr(bad.iloc[0]) if len(bad) else "?"
        raise DataError(f"column {name!r} is not numeric (e.g. value {example}); convert it "
                        "or leave it out of the model")
    X = np.column_stack([col.to_numpy(dtype=float, na_value=np.nan) for col in columns]) \
        if columns else np.zeros((len(data), 0))
    all_finite = bool(np.isfinite(X).all())
    if not all_finite and np.isinf(X).any():
        col = ov_names[int(np.where(np.isinf(X).any(axis=0))[0][0])]
        raise DataError(f"column {col!r} contains infinite values")

    keep = np.ones(len(data), bool)
    notes: list[str] = []
    n_dropped = 0
    reasons = []
    gvals = data[group].to_numpy() if group is not None else None
    if group is not None:
        bad_group = pd.isna(gvals)
        if bad_group.any():
            reasons.append(f"{int(bad_group.sum())} with a missing group ({group!r})")
            keep &= ~bad_group
    if cluster is not None:
        bad_cluster = data[cluster].isna().to_numpy()
        if bad_cluster.any():
            raise DataError(f"the cluster column {cluster!r} has {int(bad_cluster.sum())} missing "
                            "value(s); every analysed row needs a cluster")
    if missing not in ("listwise", "fiml", "ml"):
        raise ValueError(f"missing={missing!r} is not supported; use 'listwise' or 'fiml' ('ml')")
    if not all_finite:
        isnan = np.isnan(X)
        if missing == "listwise":
            incomplete = isnan.any(axis=1) & keep
            if incomplete.any():
                cols = [ov_names[k] for k in np.where(isnan[keep].any(axis=0))[0]]
                reasons.append(f"{int(incomplete.sum())} with missing values in {cols} "
                               "(listwise deletion; use missing='fiml' to keep them)")
                keep &= ~incomplete
        else:
            empty = isnan.all(axis=1) & keep
            if empty.any():
                reasons.append(f"{int(empty.sum())} missing every analysed variable")
                keep &= ~empty
    n_dropped = int((~keep).sum())
    drop_reason = "; ".join(reasons)
    if n_dropped:
        warnings.warn(f"{n_dropped} of {len(data)} rows were not used: {drop_reason}",
                      stacklevel=3)

    positions = np.arange(len(data))
    if group is None:
        parts = [(None, keep)]
    else:
        if group_labels is None:
            group_labels = list(pd.unique(gvals[keep]))
        parts = [(lab, keep & (gvals == lab)) for lab in group_labels]
    groups = []
    cl = data[cluster].to_numpy() if cluster is not None else None
    for lab, mask in parts:
        every = bool(mask.all())
        Xg = X if every else X[mask]
        groups.append(GroupData(lab, Xg, positions if every else positions[mask],
                                None if cl is None else cl[mask]))
        if all_finite:
            groups[-1].complete = True  # known: skip the scan for missing values
    obs = ObservedData(list(ov_names), groups, group, len(data), n_dropped, drop_reason, notes)
    _check_groups(obs)
    return obs


def _check_groups(obs: ObservedData) -> None:
    p = len(obs.ov_names)
    for g in obs.groups:
        where = "" if obs.group_var is None else f" in group {g.label!r}"
        if g.nobs <= 1:
            raise DataError(f"only {g.nobs} usable case(s){where}; cannot estimate a model")
        if g.nobs < p and g.complete:
            raise DataError(
                f"only {g.nobs} complete cases{where} for {p} observed variables: the sample "
                "covariance matrix is singular; use more cases or fewer variables")
        if not g.complete:
            observed = ~np.isnan(g.X)
            never = [obs.ov_names[k] for k in np.where(~observed.any(axis=0))[0]]
            if never:
                raise DataError(f"variable(s) {never} are missing for every case{where}")
        if g.complete:
            sd, center = np.sqrt(np.diag(g.cov)), g.mean
        else:
            sd, center = np.sqrt(np.nanvar(g.X, axis=0)), np.nanmean(g.X, axis=0)
        constant = [obs.ov_names[k] for k in np.where(sd < 1e-12 * (1 + np.abs(center)))[0]]
        if constant:
            raise DataError(f"variable(s) {constant} are constant{where}; a constant column has "
                            "no variance to model; leave it out")
        if g.complete:
            cov = g.cov
            eig = np.linalg.eigvalsh(cov / np.outer(sd, sd))
            if eig.min() < 1e-10:
                raise DataError(
                    f"the sample covariance matrix{where} is not positive definite (smallest "
                    f"eigenvalue of the correlation matrix {eig.min():.2e}): some variables are "
                    "linear combinations of others; remove redundant variables")
