"""Observed data: checks, groups, missing-data handling and sample moments.

The caller's DataFrame is never modified: the analysed variables are copied into float
arrays, one per group.  Sample covariances use the divisor N (maximum likelihood, as lavaan's
default ``likelihood = "normal"``).

Large data: the float array is the only copy of the data.  It is filled, checked and
summarised in blocks of rows (:data:`BLOCK_ELEMENTS` values at a time), so that the working
memory beyond it is a few vectors of length N (no N x p temporaries, no copies for NaN
handling).
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..linalg import spd_inverse_factor

__all__ = ["GroupData", "ObservedData", "prepare_data", "DataError", "column_dtypes",
           "column_moments", "column_values", "labels_index", "split_groups"]

#: values per block of rows when the data are copied, checked and summarised
BLOCK_ELEMENTS = 1 << 21


def _block_rows(p: int) -> int:
    return max(256, BLOCK_ELEMENTS // max(p, 1))


def column_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n_observed, mean, variance)`` of each column over its non-missing values (divisor:
    the number of observed values), in blocks of rows with sums shifted by a provisional mean
    (no copy of X, no loss of precision for large means)."""
    n, p = X.shape
    step = _block_rows(p)
    count = np.zeros(p)
    total = np.zeros(p)
    squares = np.zeros(p)
    shift = None
    for start in range(0, n, step):
        block = X[start:start + step]
        if shift is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column in the block
                shift = np.nanmean(block, axis=0)
            shift = np.where(np.isfinite(shift), shift, 0.0)
        dev = block - shift
        observed = ~np.isnan(dev)
        np.copyto(dev, 0.0, where=~observed)
        count += observed.sum(axis=0)
        total += dev.sum(axis=0)
        squares += np.einsum("ij,ij->j", dev, dev)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_dev = total / count
        var = squares / count - mean_dev ** 2
    mean = (shift if shift is not None else np.zeros(p)) + mean_dev
    return count, mean, np.maximum(var, 0.0)

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
        step = _block_rows(self.X.shape[1])
        return not any(np.isnan(self.X[start:start + step]).any()
                       for start in range(0, self.X.shape[0], step))

    @cached_property
    def mean(self) -> np.ndarray:
        return self.X.mean(axis=0)

    @cached_property
    def cov(self) -> np.ndarray:
        # cross-products of centred blocks of rows (no centred copy of the whole data)
        mean = self.mean
        n, p = self.X.shape
        step = _block_rows(p)
        out = np.zeros((p, p))
        for start in range(0, n, step):
            centred = self.X[start:start + step] - mean
            out += centred.T @ centred
        return out / self.nobs


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
    columns = column_values(data, ov_names)
    for name, col in zip(ov_names, columns):
        if (getattr(col.dtype, "kind", "") in "biuf" or col.dtype == bool
                or pd.api.types.is_numeric_dtype(col.dtype)):
            continue
        col = data[name]
        bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()]
        example = repr(bad.iloc[0]) if len(bad) else "?"
        raise DataError(f"column {name!r} is not numeric (e.g. value {example}); convert it "
                        "or leave it out of the model")
    X, row_nan_any, row_nan_all, inf_cols, moments = _float_matrix(columns, len(data))
    if inf_cols.any():
        col = ov_names[int(np.flatnonzero(inf_cols)[0])]
        raise DataError(f"column {col!r} contains infinite values")
    all_finite = not row_nan_any.any()

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
        if missing == "listwise":
            incomplete = row_nan_any & keep
            if incomplete.any():
                cols = [ov_names[k] for k in np.flatnonzero(
                    _columns_with_nan(X, keep & row_nan_any))]
                reasons.append(f"{int(incomplete.sum())} with missing values in {cols} "
                               "(listwise deletion; use missing='fiml' to keep them)")
                keep &= ~incomplete
        else:
            empty = row_nan_all & keep
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
        parts = [(None, positions if keep.all() else np.flatnonzero(keep))]
    else:
        if group_labels is None:
            group_labels = list(pd.unique(gvals[keep]))
        parts = split_groups(gvals, keep, group_labels)
    groups = []
    cl = data[cluster].to_numpy() if cluster is not None else None
    for lab, rows in parts:
        every = len(rows) == len(data)  # then rows are all positions, in order
        groups.append(GroupData(lab, X if every else X[rows], rows,
                                None if cl is None else cl[rows]))
        if every and moments is not None:
            groups[-1].__dict__["column_moments"] = moments  # computed while copying
        # known from the copy: skip the scan for missing values
        groups[-1].complete = all_finite or not bool(row_nan_any[rows].any())
    obs = ObservedData(list(ov_names), groups, group, len(data), n_dropped, drop_reason, notes)
    _check_groups(obs)
    return obs


def split_groups(gvals: np.ndarray, keep: np.ndarray, labels: Sequence) -> list:
    """``(label, positions of its kept rows)`` per group label: one hash lookup per row and
    one stable sort (time linear in the rows, whatever the number of groups)."""
    index = pd.Index(list(labels), dtype=object)  # (no conversion to pandas strings)
    if not index.is_unique:
        return [(lab, np.flatnonzero(keep & (gvals == lab))) for lab in labels]
    # the values as an object Index too: pandas would otherwise infer (and convert to) its
    # string dtype first, several times the cost of the lookup
    codes = index.get_indexer(pd.Index(gvals, dtype=object, copy=False))
    codes[~keep] = -1
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(index) + 1))
    return [(lab, order[bounds[k]:bounds[k + 1]]) for k, lab in enumerate(labels)]


@functools.lru_cache(maxsize=64)
def labels_index(names: tuple) -> pd.Index:
    """The labels as a pandas Index, built once per tuple of names (an Index is immutable:
    tables can share it; an Index of strings costs about as much to build as the rest of a
    small results table)."""
    return pd.Index(list(names))


def column_dtypes(data: pd.DataFrame):
    """The dtypes of the data frame's columns, in order: read from pandas' block manager when
    it offers them (``DataFrame.dtypes`` builds a Series, several times the cost)."""
    get = getattr(getattr(data, "_mgr", None), "get_dtypes", None)
    return get() if get is not None else data.dtypes


def column_values(data: pd.DataFrame, names: Sequence[str]) -> list:
    """The named columns: numeric NumPy columns as their 1-d arrays (views, read only here),
    any other column as its Series.  Building a Series per column costs about 20 us in
    pandas 3, more than the rest of the preparation of a small data set, so the arrays are
    read from the frame's block manager when pandas offers it."""
    iget = getattr(getattr(data, "_mgr", None), "iget_values", None)
    out = []
    for name in names:
        values = None
        if iget is not None:
            loc = data.columns.get_loc(name)
            if isinstance(loc, (int, np.integer)):
                values = iget(int(loc))
        if not (isinstance(values, np.ndarray) and values.ndim == 1
                and values.dtype.kind in "biuf"):
            values = data[name]
        out.append(values)
    return out


#: bytes above which the data's copy is allocated without the transparent-huge-page hint
#: (:func:`_large_empty`)
NO_HUGE_PAGE_BYTES = 64 * 2 ** 20


def _large_empty(shape: tuple) -> np.ndarray:
    """``np.empty(shape)``, for a large array without numpy's transparent-huge-page hint
    (``madvise(MADV_HUGEPAGE)``).  With the Linux default ``defrag = madvise`` the hint makes
    the first writes wait for the kernel to compact memory into huge pages: measured here at
    N = 1e6, p = 30 (229 MB), the copy took 0.8 s instead of 0.3 s in about a third of the
    fits, depending on how fragmented memory was; with ordinary pages it costs about 0.03 s
    more every time.  numpy's switch is process-wide: it is turned off for this one
    allocation and restored at once."""
    nbytes = 8 * int(np.prod(shape))
    toggle = getattr(getattr(getattr(np, "_core", None), "multiarray", None),
                     "_set_madvise_hugepage", None)
    if nbytes < NO_HUGE_PAGE_BYTES or toggle is None:
        return np.empty(shape)
    previous = toggle(False)
    try:
        return np.empty(shape)
    finally:
        toggle(previous)


def _float_matrix(columns: list, n: int):
    """The columns (arrays or Series) as one C-ordered float array (n, p), filled in blocks of rows of about
    1 MB (writing a column at a time would stride over every row p times), with what is
    learnt on the way while each block is in cache: per-row flags of missing values, per-column
    flags of infinite values and, when the first block has missing values (incomplete data,
    whose checks need them), the per-column moments over the observed values (count, mean,
    variance; sums shifted by the first block's means).  Returns ``(X, any NaN, all NaN, any
    inf, moments or None)``."""
    p = len(columns)
    X = _large_empty((n, p))
    nan_any = np.zeros(n, bool)
    nan_all = np.zeros(n, bool)
    inf_cols = np.zeros(p, bool)
    arrays = []
    for col in columns:
        arr = col if isinstance(col, np.ndarray) else col.to_numpy()
        if arr.dtype.kind not in "biuf":  # extension / object dtypes: one float copy
            arr = col.to_numpy(dtype=float, na_value=np.nan)
        arrays.append(arr)
    step = max(64, (1 << 17) // max(p, 1))
    stats = None
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = X[start:stop]
        if p:
            np.stack([a[start:stop] for a in arrays], axis=1, out=block)
        isnan = np.isnan(block)
        has_nan = bool(isnan.any())
        if has_nan:
            nan_any[start:stop] = isnan.any(axis=1)
            nan_all[start:stop] = isnan.all(axis=1)
            inf_cols |= np.isinf(block).any(axis=0)
        elif not np.isfinite(block).all():
            inf_cols |= np.isinf(block).any(axis=0)
        if start == 0 and has_nan:
            observed = ~isnan
            count0 = observed.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                shift = np.where(observed, block, 0.0).sum(axis=0) / count0
            stats = [np.where(count0 > 0, shift, 0.0), np.zeros(p), np.zeros(p), np.zeros(p)]
        if stats is not None:
            dev = block - stats[0]
            np.copyto(dev, 0.0, where=isnan | ~np.isfinite(dev))
            stats[1] += (~isnan).sum(axis=0)
            stats[2] += dev.sum(axis=0)
            stats[3] += np.einsum("ij,ij->j", dev, dev)
    moments = None
    if stats is not None:
        shift, count, total, squares = stats
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_dev = total / count
            var = np.maximum(squares / count - mean_dev ** 2, 0.0)
        moments = (count, shift + mean_dev, var)
    return X, nan_any, nan_all, inf_cols, moments


def _columns_with_nan(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Columns with a missing value among the selected rows (boolean row mask)."""
    idx = np.flatnonzero(rows)
    out = np.zeros(X.shape[1], bool)
    step = _block_rows(X.shape[1])
    for start in range(0, len(idx), step):
        out |= np.isnan(X[idx[start:start + step]]).any(axis=0)
    return out


def _smallest_eigenvalue_below(corr: np.ndarray, bound: float) -> bool:
    """Whether the smallest eigenvalue of a correlation matrix may be below ``bound``: False
    when its Cholesky factorisation succeeds and ``1 / tr(R^-1)``, a lower bound on the
    smallest eigenvalue (Horn & Johnson 2013, section 4.2), is at least ``bound`` (a
    factorisation instead of an eigendecomposition); True otherwise (then the eigenvalues
    decide)."""
    factor_inverse = spd_inverse_factor(corr)
    if factor_inverse is None:
        return True
    return not 1.0 / float(np.einsum("ij,ij->", factor_inverse, factor_inverse)) >= bound


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
            count, center, var = g.__dict__.get("column_moments") or column_moments(g.X)
            never = [obs.ov_names[k] for k in np.flatnonzero(count == 0)]
            if never:
                raise DataError(f"variable(s) {never} are missing for every case{where}")
            sd = np.sqrt(var)
        else:
            sd, center = np.sqrt(np.diag(g.cov)), g.mean
        constant = [obs.ov_names[k] for k in np.where(sd < 1e-12 * (1 + np.abs(center)))[0]]
        if constant:
            raise DataError(f"variable(s) {constant} are constant{where}; a constant column has "
                            "no variance to model; leave it out")
        if g.complete and _smallest_eigenvalue_below(g.cov / np.outer(sd, sd), 1e-10):
            eig = np.linalg.eigvalsh(g.cov / np.outer(sd, sd))
            if eig.min() < 1e-10:
                raise DataError(
                    f"the sample covariance matrix{where} is not positive definite (smallest "
                    f"eigenvalue of the correlation matrix {eig.min():.2e}): some variables are "
                    "linear combinations of others; remove redundant variables")
