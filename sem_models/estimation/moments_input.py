"""Fits from summary statistics: ``sample_cov``, ``sample_mean``, ``sample_nobs`` (lavaan's
``sample.cov``, ``sample.mean``, ``sample.nobs``).

A model fitted by normal-theory ML, GLS or ULS depends on the data only through the sample
means and covariances (Joreskog 1969; Browne 1984, eq. 2.1), so a published covariance
matrix is enough to reproduce a fit.  As lavaan (``sample.cov.rescale = TRUE`` for ML), the
given covariance matrix is taken to have divisor N - 1 (R's ``cov()``, pandas' ``DataFrame.cov``)
and is rescaled by (N - 1) / N to the ML estimate; GLS and ULS use it with divisor N - 1 as given
(lavaan's ``sample.cov.rescale = FALSE`` for those estimators).  Either way the fit equals the
raw-data fit with the same moments.

Estimators that need the raw data (the fourth-order moments of the ADF weight matrix Gamma or
casewise scores) are refused: WLS, DWLS, MLM, MLMV, MLR, the robust least-squares variants, FIML
and ``cluster=``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .data import DataError, ObservedData

__all__ = ["MomentsGroup", "moments_data", "check_moments_options", "MOMENTS_ESTIMATORS"]

#: estimators that need only the sample means and covariances (as lavaan 0.6)
MOMENTS_ESTIMATORS = ("ML", "GLS", "ULS")


@dataclass
class MomentsGroup:
    """One group given by its sample moments (the interface of
    :class:`~sem_models.estimation.data.GroupData` without the raw rows)."""

    label: Any
    nobs: int
    mean: np.ndarray
    cov: np.ndarray  # divisor N (the ML estimate), as GroupData.cov
    row_index: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    cluster: Optional[np.ndarray] = None
    complete: bool = True
    has_raw: bool = False

    @property
    def X(self) -> np.ndarray:
        raise DataError("this needs the raw data, but the model was fitted from sample moments "
                        "(sample_cov / sample_mean / sample_nobs); fit it to a DataFrame instead")


def check_moments_options(*, data, estimator: str, missing: str, cluster, group, ordered,
                          se, test) -> None:
    """What summary-statistics input cannot do, as clear errors (names the option)."""
    if data is not None:
        raise DataError("give either data or sample_cov (with sample_nobs), not both")
    if group is not None:
        raise DataError("group= names a column of the data; with sample_cov give one "
                        "covariance matrix per group as a dict {label: DataFrame} or a list")
    if estimator not in MOMENTS_ESTIMATORS:
        raise DataError(
            f"estimator={estimator!r} needs the raw data (its weight matrix or robust "
            "corrections use fourth-order moments or casewise scores); from sample_cov only "
            f"{', '.join(MOMENTS_ESTIMATORS)} are possible (as in lavaan)")
    if missing != "listwise":
        raise DataError("missing='fiml' needs the raw data with its missing values; a fit from "
                        "sample_cov treats the moments as complete-data moments")
    if cluster is not None:
        raise DataError("cluster= needs the raw data (the cluster of every case)")
    if ordered not in (None, False) and not (isinstance(ordered, (list, tuple)) and not ordered):
        raise DataError("ordered indicators need the raw data (thresholds and polychoric "
                        "correlations are estimated from it)")
    if se not in (None, "standard", "none"):
        raise DataError(f"se={se!r} needs the raw data; from sample_cov use se='standard'")
    tests = [test] if isinstance(test, str) or test is None else list(test)
    if any(t not in (None, "standard", "none") for t in tests):
        raise DataError(f"test={test!r} needs the raw data; from sample_cov use "
                        "test='standard'")


def _as_list(value, what: str) -> tuple[list, Optional[list]]:
    """(items, labels) of a per-group argument: a dict {label: item}, a list, or one item."""
    if isinstance(value, dict):
        return list(value.values()), list(value.keys())
    if isinstance(value, (list, tuple)):
        return list(value), None
    return [value], None


def _cov_frame(cov, k: int, where: str) -> pd.DataFrame:
    if isinstance(cov, pd.DataFrame):
        frame = cov
    else:
        raise DataError(
            f"sample_cov{where} must be a pandas DataFrame whose index and columns name the "
            f"variables (e.g. df.cov()), got {type(cov).__name__}")
    if list(frame.index) != list(frame.columns):
        raise DataError(f"sample_cov{where}: the row names must equal the column names (a "
                        "covariance matrix labelled by variable on both sides)")
    if frame.columns.duplicated().any():
        dup = list(frame.columns[frame.columns.duplicated()])
        raise DataError(f"sample_cov{where} names variable(s) {dup} twice")
    return frame


def moments_data(sample_cov, sample_mean, sample_nobs, ov_names: Sequence[str], *,
                 estimator: str, meanstructure_needed: bool = False,
                 group_labels: Optional[Sequence] = None) -> ObservedData:
    """The observed data of a fit from sample moments (see the module docstring).

    ``sample_cov``: a DataFrame (one group), or a dict ``{label: DataFrame}`` / list of
    DataFrames (one per group; a list's groups are labelled "Group 1", "Group 2", ... as in
    lavaan, or by ``group_labels``); each names the variables in its index and columns (it may
    hold more variables than the model uses).  ``sample_mean``: per group a Series (or dict)
    by variable name, or an array in the order of the covariance matrix's columns; None
    without a mean structure.  ``sample_nobs``: the number of cases, one per group."""
    covs, cov_labels = _as_list(sample_cov, "sample_cov")
    n_groups = len(covs)
    if n_groups == 0:
        raise DataError("sample_cov is empty")
    if sample_nobs is None:
        raise DataError("sample_nobs= is needed with sample_cov: the number of cases (one per "
                        "group)")
    nobs_list, _ = _as_list(sample_nobs, "sample_nobs")
    if isinstance(sample_nobs, np.ndarray):
        nobs_list = list(sample_nobs.ravel())
    if len(nobs_list) != n_groups:
        raise DataError(f"sample_nobs gives {len(nobs_list)} number(s) of cases for "
                        f"{n_groups} covariance matrices; give one per group")
    if group_labels is not None:
        labels = list(group_labels)
        if len(labels) != n_groups:
            raise DataError(f"group_labels lists {len(labels)} groups but sample_cov has "
                            f"{n_groups}")
    elif cov_labels is not None:
        labels = cov_labels
    else:
        labels = [None] if n_groups == 1 else [f"Group {g + 1}" for g in range(n_groups)]
    if sample_mean is not None:
        means, mean_labels = _as_list(sample_mean, "sample_mean")
        if n_groups == 1 and (
                (isinstance(sample_mean, (dict, pd.Series)) and not (
                    isinstance(sample_mean, dict) and cov_labels is not None))
                or (isinstance(sample_mean, (list, tuple))
                    and all(np.isscalar(v) for v in sample_mean))):
            means = [sample_mean]  # one group: a Series / dict by name, or a vector
        elif mean_labels is not None and cov_labels is not None:
            missing = [k for k in cov_labels if k not in sample_mean]
            if missing:
                raise DataError(f"sample_mean has no mean vector for group(s) {missing} of "
                                "sample_cov")
            means = [sample_mean[k] for k in cov_labels]
        if len(means) != n_groups:
            raise DataError(f"sample_mean gives {len(means)} mean vector(s) for {n_groups} "
                            "covariance matrices; give one per group")
    else:
        means = [None] * n_groups
        if meanstructure_needed:
            warnings.warn("sample_mean is missing but the model has a mean structure: the "
                          "sample means are taken to be 0 (as lavaan)", UserWarning,
                          stacklevel=4)
    groups = []
    ov = list(ov_names)
    for g in range(n_groups):
        where = f" (group {labels[g]!r})" if n_groups > 1 else ""
        frame = _cov_frame(covs[g], g, where)
        absent = [v for v in ov if v not in frame.columns]
        if absent:
            raise DataError(f"variable(s) {absent} of the model are not in sample_cov{where} "
                            f"(it names {list(frame.columns)[:20]})")
        try:
            S = frame.loc[ov, ov].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"sample_cov{where} must hold numbers") from None
        if not np.all(np.isfinite(S)):
            raise DataError(f"sample_cov{where} has missing or infinite values")
        if not np.allclose(S, S.T, rtol=1e-8, atol=1e-10 * max(1.0, float(np.abs(S).max()))):
            raise DataError(f"sample_cov{where} is not symmetric")
        S = (S + S.T) / 2
        sd = np.sqrt(np.clip(np.diag(S), 0, None))
        zero = [ov[k] for k in np.flatnonzero(sd <= 0)]
        if zero:
            raise DataError(f"variable(s) {zero} have zero variance in sample_cov{where}")
        eig = np.linalg.eigvalsh(S / np.outer(sd, sd))
        if eig.min() < 1e-10:
            raise DataError(f"sample_cov{where} is not positive definite (smallest eigenvalue "
                            f"of the correlation matrix {eig.min():.2e}); check the matrix")
        n = nobs_list[g]
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer, float)) \
                or not float(n).is_integer() or n < 2:
            raise DataError(f"sample_nobs{where} must be a whole number of cases >= 2, got "
                            f"{n!r}")
        n = int(n)
        mean = np.zeros(len(ov))
        if means[g] is not None:
            mean = _mean_vector(means[g], ov, list(frame.columns), where)
        # lavaan's sample.cov.rescale: the given matrix has divisor N - 1; GroupData.cov holds
        # the ML estimate (divisor N), from which the least-squares losses rescale it back
        cov = S * (n - 1) / n
        groups.append(MomentsGroup(labels[g], n, mean, cov))
    return ObservedData(ov, groups, None, int(sum(grp.nobs for grp in groups)))


def _mean_vector(mean, ov: list, cov_names: list, where: str) -> np.ndarray:
    if isinstance(mean, dict):
        mean = pd.Series(mean)
    if isinstance(mean, pd.Series):
        absent = [v for v in ov if v not in mean.index]
        if absent:
            raise DataError(f"variable(s) {absent} are not in sample_mean{where}")
        values = mean.loc[ov].to_numpy(dtype=float)
    else:
        arr = np.asarray(mean, dtype=float).ravel()
        if len(arr) != len(cov_names):
            raise DataError(f"sample_mean{where} has {len(arr)} values for the "
                            f"{len(cov_names)} variables of sample_cov; give a Series by "
                            "variable name")
        values = arr[[cov_names.index(v) for v in ov]]
    if not np.all(np.isfinite(values)):
        raise DataError(f"sample_mean{where} has missing or infinite values")
    return values
