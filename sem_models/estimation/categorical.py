"""Sample statistics for ordinal (and mixed ordinal / continuous) data, as lavaan 0.6-14
computes them for the (D)WLS estimators: stages 1-3 of Muthen (1984).

Stage 1 (:mod:`.categorical_uni`): thresholds, means / variances of continuous variables and,
with exogenous covariates (``conditional.x``), probit / linear regressions on them.
Stage 2 (:mod:`.categorical_bi`): polychoric, polyserial and Pearson correlations by
two-step ML, vectorised over pairs.
Stage 3 (here): the asymptotic covariance matrix Gamma (lavaan's ``NACOV``) of the
statistics by the sandwich B^-1 (sum_i s_i s_i') B^-T of the casewise scores s_i of the
stage-1 and stage-2 log-likelihoods (Muthen 1984, Psychometrika 49:115-132; Muthen &
Satorra 1995, Psychometrika 60:489-503, the estimating-equation form of the LISCOMP
weight matrix). B is block lower-triangular: A11 (block diagonal per variable), A21
(rho x univariate parameters), A22 (diagonal), all in outer-product form as in lavaan.
The correlations of pairs with a continuous variable are turned into covariances by the
delta method (H), and the "thresholds" of continuous variables are minus their means.

Weight matrices: WLS V = Gamma^-1, DWLS V = diag(1 / diag(Gamma)), ULS V = I (lavaan's
``lavInspect(fit, "wls.v")``).

Public: :func:`categorical_stats`, :func:`categorical_stats_frame`, :func:`polychoric`,
:func:`collapse_categories`, :class:`CategoricalStats`, :func:`wls_weight`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd
import scipy.linalg

from .categorical_bi import pearson, polychoric_casewise, polychoric_tables, polyserial
from .categorical_uni import fit_uvord, fit_uvord_nox, fit_uvreg
from .categorical_data import (CategoricalDataError, check_levels, codes_matrix,
                               collapse_categories, frame_inputs, group_order, to_codes)
from .threads import single_threaded_blas

__all__ = ["CategoricalStats", "CategoricalDataError", "categorical_stats",
           "categorical_stats_frame", "polychoric", "collapse_categories", "wls_weight"]


@dataclass
class CategoricalStats:
    """Ordinal sample statistics of one group (what the WLS loss consumes).

    The statistics vector ``wls_obs`` (names ``wls_names``) is lavaan's ``WLS.obs``:

    1. ``th``: per variable in order, the thresholds of an ordinal variable (``x|t1`` ...,
       intercept form under conditional.x) or minus the mean / intercept of a continuous one
       (``y~1``; the sign follows lavaan);
    2. only with covariates: the slopes, ``vec`` of the p x q slope matrix (column-major:
       all variables on the first covariate, then the second, ...; names ``y~x``);
    3. the variances of the continuous variables (``y~~y``);
    4. the correlations (covariances for pairs with a continuous variable) below the
       diagonal, column-wise: (2,1), (3,1), ..., (p,1), (3,2), ... (names ``a~~b``).

    ``gamma`` (lavaan's NACOV, ``lavInspect(fit, "gamma")``) is the asymptotic covariance
    matrix of sqrt(N) * ``wls_obs`` in the same order.
    """

    names: list
    ordered: np.ndarray
    exo_names: list
    nobs: int
    norig: int
    missing: str
    group: Any
    levels: list                 # category values per variable (None for continuous)
    counts: Mapping              # category frequencies per ordinal variable (Series)
    th: np.ndarray               # thresholds / means (positive sign), lavaan's TH
    th_names: list
    th_var: np.ndarray           # index of the variable of each th entry
    th_numeric: np.ndarray       # True where the th entry is a continuous variable's mean
    th_nox: np.ndarray           # marginal thresholds / means ignoring the covariates
    slopes: np.ndarray           # p x q
    var: np.ndarray              # p: 1 for ordinal, ML (residual) variance for continuous
    mean: np.ndarray             # p: 0 for ordinal, mean or intercept for continuous
    cor: np.ndarray              # p x p correlations (polychoric / polyserial / Pearson)
    cov: np.ndarray              # p x p lavaan "cov" / "res.cov" (cor scaled by the SDs)
    mean_x: np.ndarray           # covariate means
    cov_x: np.ndarray            # covariate covariance (n - 1 divisor, as lavaan)
    wls_obs: np.ndarray
    wls_names: list
    gamma: Optional[np.ndarray]
    zero_cell_pairs: list = field(default_factory=list)
    converged: bool = True
    row_index: Optional[np.ndarray] = None   # positions of the used rows in the input
    influence: Optional[np.ndarray] = None   # N x k casewise psi_i, gamma = N * psi' psi

    # ----- blocks of wls_obs ------------------------------------------------------------
    @property
    def conditional_x(self) -> bool:
        return len(self.exo_names) > 0

    @property
    def n_th(self) -> int:
        return len(self.th)

    @property
    def n_slopes(self) -> int:
        return self.slopes.size if self.conditional_x else 0

    @property
    def n_var(self) -> int:
        return int(np.sum(~self.ordered))

    @property
    def n_cor(self) -> int:
        p = len(self.names)
        return p * (p - 1) // 2

    @property
    def blocks(self) -> dict:
        """Slices of ``wls_obs`` / ``gamma``: th, slopes, var, cor."""
        a = self.n_th
        b = a + self.n_slopes
        c = b + self.n_var
        return {"th": slice(0, a), "slopes": slice(a, b), "var": slice(b, c),
                "cor": slice(c, c + self.n_cor)}

    @property
    def thresholds(self) -> pd.Series:
        """Thresholds of the ordinal variables (names ``x|t1``)."""
        m = ~self.th_numeric
        return pd.Series(self.th[m], index=[n for n, k in zip(self.th_names, m) if k],
                         name="threshold")

    def cor_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.cor, index=self.names, columns=self.names)

    def cov_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.cov, index=self.names, columns=self.names)

    def slopes_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.slopes, index=self.names, columns=self.exo_names)

    def gamma_frame(self) -> pd.DataFrame:
        if self.gamma is None:
            raise ValueError("Gamma was not computed (gamma=False)")
        return pd.DataFrame(self.gamma, index=self.wls_names, columns=self.wls_names)

    def sampstat(self) -> dict:
        """The pieces of lavaan's ``lavInspect(fit, "sampstat")`` as pandas objects:
        ``cov``, ``mean``, ``th`` or, with covariates, ``res_cov``, ``res_int``, ``res_th``,
        ``res_slopes``, ``cov_x``, ``mean_x`` (``th`` holds the ordinal thresholds only)."""
        th = self.thresholds
        mean = pd.Series(self.mean, index=self.names)
        if not self.conditional_x:
            return {"cov": self.cov_frame(), "mean": mean, "th": th}
        return {"res_cov": self.cov_frame(), "res_int": mean, "res_th": th,
                "res_slopes": self.slopes_frame(),
                "cov_x": pd.DataFrame(self.cov_x, index=self.exo_names, columns=self.exo_names),
                "mean_x": pd.Series(self.mean_x, index=self.exo_names)}

    def wls_v(self, estimator: str = "WLS") -> np.ndarray:
        """Weight matrix of ``estimator`` ("WLS", "DWLS" or "ULS"), see :func:`wls_weight`."""
        if self.gamma is None and estimator.upper() != "ULS":
            raise ValueError("Gamma was not computed (gamma=False)")
        return wls_weight(self.gamma if self.gamma is not None else np.eye(len(self.wls_obs)),
                          estimator)


class _Counts(Mapping):
    """{variable: category frequencies as a labelled pandas Series}, read-only; the
    Series are built on first access, so the fit's hot path creates none."""

    def __init__(self):
        self._raw: dict = {}
        self._series: dict = {}

    def _put(self, key: str, counts: np.ndarray, labels: list) -> None:
        self._raw[key] = (counts, labels)

    def __getitem__(self, key) -> pd.Series:
        if key not in self._series:
            counts, labels = self._raw[key]
            self._series[key] = pd.Series(counts, index=labels, name=key)
        return self._series[key]

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def wls_weight(gamma: np.ndarray, estimator: str = "WLS") -> np.ndarray:
    """lavaan's WLS.V: WLS ``Gamma^-1`` (by Cholesky), DWLS ``diag(1/diag(Gamma))``, ULS I."""
    est = estimator.upper()
    k = gamma.shape[0]
    if est == "WLS":
        try:
            cf = scipy.linalg.cho_factor(gamma, lower=True)
        except np.linalg.LinAlgError as exc:
            raise ValueError("Gamma (NACOV) is not positive definite; use DWLS or ULS "
                             "(WLS needs its inverse)") from exc
        return scipy.linalg.cho_solve(cf, np.eye(k))
    if est == "DWLS":
        d = np.diag(gamma)
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise ValueError("the diagonal of Gamma (NACOV) is not positive and finite")
        return np.diag(1.0 / d)
    if est == "ULS":
        return np.eye(k)
    raise ValueError(f"unknown estimator {estimator!r}; expected 'WLS', 'DWLS' or 'ULS'")


# ---------------------------------------------------------------------------------------
# stages 1-3 for one group
# ---------------------------------------------------------------------------------------
def _where(group) -> str:
    return "" if group is None else f" in group {group!r}"


@single_threaded_blas
def categorical_stats(X: np.ndarray, ordered: Sequence[bool], exo: Optional[np.ndarray] = None,
                      missing: str = "listwise", *, names: Optional[Sequence[str]] = None,
                      exo_names: Optional[Sequence[str]] = None,
                      levels: Optional[Sequence[Optional[Sequence]]] = None, group: Any = None,
                      gamma: bool = True,
                      level_labels: Optional[Sequence[Optional[Sequence]]] = None,
                      keep_influence: bool = False) -> CategoricalStats:
    """Thresholds, correlations, slopes and Gamma of one group (Muthen 1984, stages 1-3).

    ``X``: N x p numbers (NaN = missing); the values of an ordinal column are mapped to
    codes 0..K-1 in sorted order (``levels[j]`` fixes the category values, e.g. those of
    all groups, so an unobserved category is an error). ``ordered``: p booleans.
    ``exo``: N x q covariates (lavaan's conditional.x; rows with a missing covariate are
    deleted with a warning). ``missing``: "listwise" (rows with any missing value are
    deleted, with a warning) or "pairwise" (stage 1 per variable on all its observed values,
    stage 2 on pairwise complete rows; only rows with every variable missing are deleted).
    ``keep_influence``: keep the casewise influence values psi_i = H B^-1 s_i (N x k, in
    the order of ``wls_obs``; Gamma = N sum_i psi_i psi_i'), e.g. to sum them within
    clusters for a cluster-robust Gamma.
    """
    X = np.array(X, dtype=float, copy=True)
    if X.ndim != 2:
        raise CategoricalDataError("X must be a 2-dimensional array (cases x variables)")
    N0, p = X.shape
    ordered = np.asarray(ordered, dtype=bool).ravel()
    if ordered.shape[0] != p:
        raise CategoricalDataError(f"ordered has {ordered.shape[0]} entries for {p} variables")
    names = [f"y{j + 1}" for j in range(p)] if names is None else [str(n) for n in names]
    if len(names) != p:
        raise CategoricalDataError(f"names has {len(names)} entries for {p} variables")
    if p < 1:
        raise CategoricalDataError("no variables")
    miss = {"default": "listwise", "listwise": "listwise", "pairwise": "pairwise"}.get(
        str(missing).lower().replace(".", "_"))
    if miss is None:
        raise CategoricalDataError(
            f"missing={missing!r} is not available for ordinal data; use 'listwise' or "
            "'pairwise'")
    q = 0
    if exo is not None:
        exo = np.array(exo, dtype=float, copy=True)
        if exo.ndim == 1:
            exo = exo[:, None]
        if exo.shape[0] != N0:
            raise CategoricalDataError(f"exo has {exo.shape[0]} rows, X has {N0}")
        q = exo.shape[1]
    exo_names = ([f"x{k + 1}" for k in range(q)] if exo_names is None
                 else [str(n) for n in exo_names])
    if len(exo_names) != q:
        raise CategoricalDataError(f"exo_names has {len(exo_names)} entries for {q} covariates")

    keep = np.ones(N0, bool)
    if q:
        bad = np.isnan(exo).any(axis=1)
        if bad.any():
            warnings.warn(f"{int(bad.sum())} row(s){_where(group)} with missing values in the "
                          f"covariates {exo_names} were deleted", UserWarning, stacklevel=3)
        keep &= ~bad
    if miss == "listwise":
        bad = np.isnan(X).any(axis=1) & keep
        if bad.any():
            warnings.warn(f"{int(bad.sum())} row(s){_where(group)} with missing values were "
                          "deleted listwise (missing='listwise')", UserWarning, stacklevel=3)
        keep &= ~bad
    else:
        bad = np.isnan(X).all(axis=1) & keep
        if bad.any():
            warnings.warn(f"{int(bad.sum())} row(s){_where(group)} with all variables missing "
                          "were deleted", UserWarning, stacklevel=3)
        keep &= ~bad
    X = X[keep]
    Xe = exo[keep] if q else None
    N = X.shape[0]
    if N < 2:
        raise CategoricalDataError(f"fewer than 2 usable rows{_where(group)}")

    ordi = np.flatnonzero(ordered)
    numi = np.flatnonzero(~ordered)
    lev = [None] * p
    counts = _Counts()
    given = [None if levels is None else levels[j] for j in ordi]
    fast = codes_matrix(X[:, ordi], given)
    if fast is not None:
        codes, lvs, cnt = fast
        K = np.array([lv.size for lv in lvs], dtype=np.int64)
        bad = (K < 2) | np.any((cnt == 0) & (np.arange(cnt.shape[1]) < K[:, None]), axis=1)
        if np.any(bad):
            fast = None                      # an empty category: per-column checks below
    def labels(j, lv):
        return (list(level_labels[j]) if level_labels is not None and level_labels[j] is not None
                else [x.item() if hasattr(x, "item") else x for x in lv])

    if fast is None:
        codes = np.full((N, len(ordi)), -1, dtype=np.int64)
        K = np.zeros(len(ordi), dtype=np.int64)
        lvs = []
        for r, j in enumerate(ordi):        # raises the first column's error
            c, lv = to_codes(X[:, j], given[r], names[j], group)
            check_levels(c, labels(j, lv), names[j], group)
            codes[:, r] = c
            K[r] = len(lv)
            lvs.append(lv)
        cnt = np.array([np.bincount(codes[:, r][codes[:, r] >= 0], minlength=int(K.max()))
                        for r in range(len(ordi))]).reshape(len(ordi), -1)
    for r, j in enumerate(ordi):
        lev[j] = labels(j, lvs[r])
        counts._put(names[j], cnt[r, :K[r]], lev[j])
    for j in numi:
        col = X[:, j]
        obs = col[~np.isnan(col)]
        if obs.size < 2 or np.ptp(obs) == 0:
            raise CategoricalDataError(
                f"continuous variable {names[j]!r} has zero variance{_where(group)}")

    # ----- stage 1 -------------------------------------------------------------------
    uni: list = [None] * p
    if q == 0:
        for j, f in zip(ordi, fit_uvord_nox(codes, K, cnt)):
            uni[j] = f
    for r, j in enumerate(ordi if q else ()):
        f = fit_uvord(codes[:, r], int(K[r]), Xe)
        if not f.converged:
            warnings.warn(f"probit regression of {names[j]!r}{_where(group)} did not converge",
                          UserWarning, stacklevel=3)
        uni[j] = f
    for j in numi:
        uni[j] = fit_uvreg(X[:, j], Xe)

    # ----- stage 2 -------------------------------------------------------------------
    ord_pos = {j: r for r, j in enumerate(ordi)}
    num_pos = {j: r for r, j in enumerate(numi)}
    cj, ci = np.triu_indices(p, 1)                 # lavaan's vech order: (i, j), j < i
    P = cj.size
    rho = np.zeros(P)
    s_rho = None                                   # N x P casewise rho scores
    kmax = int(K.max()) if K.size else 2
    tmax = kmax - 1
    # univariate parameter columns of each variable (see the docstring of categorical_bi)
    nth_v = np.array([int(K[ord_pos[j]]) - 1 if ordered[j] else 1 for j in range(p)])
    th_off = np.concatenate(([0], np.cumsum(nth_v)))
    nTH = int(th_off[-1])
    nuni = nTH + p * q + len(numi)
    dummy = nuni
    cols = []
    for j in range(p):
        sl = [nTH + k * p + j for k in range(q)]
        if ordered[j]:
            th_cols = [th_off[j] + t if t < nth_v[j] else dummy for t in range(tmax)]
            cols.append(np.array(th_cols + sl, dtype=np.int64))
        else:
            cols.append(np.array([th_off[j]] + sl + [nTH + p * q + num_pos[j]], dtype=np.int64))
    A21 = np.zeros((P, nuni + 1))
    zero_cells = []
    conv = True
    th_list = [uni[j].th for j in ordi]
    wmsgs: list = []

    kind_oo = ordered[ci] & ordered[cj]
    kind_nn = ~ordered[ci] & ~ordered[cj]
    kind_mix = ~kind_oo & ~kind_nn

    def place(pidx, va, vb, res):
        nonlocal conv, s_rho
        rho[pidx] = res["rho"]
        if pidx.size == P:
            s_rho = res["s_rho"]
        else:
            if s_rho is None:
                s_rho = np.zeros((N, P))
            s_rho[:, pidx] = res["s_rho"]
        # the columns of a pair's two variables are distinct (apart from the padding
        # column ``dummy``, dropped later), so plain assignment places the G blocks
        ca = np.stack([cols[v] for v in va]) if len(va) else np.zeros((0, 0), np.int64)
        cb = np.stack([cols[v] for v in vb]) if len(vb) else np.zeros((0, 0), np.int64)
        if len(pidx):
            A21[pidx[:, None], ca] = res["Ga"]
            A21[pidx[:, None], cb] = res["Gb"]
        if not np.all(res["converged"]):
            conv = False
            for k in np.flatnonzero(~res["converged"]):
                wmsgs.append(f"estimation of the correlation of {names[va[k]]!r} and "
                             f"{names[vb[k]]!r}{_where(group)} did not converge")

    # ordinal x ordinal
    pidx = np.flatnonzero(kind_oo)
    if pidx.size:
        va = cj[pidx]
        vb = ci[pidx]
        ia = np.array([ord_pos[v] for v in va])
        ib = np.array([ord_pos[v] for v in vb])
        if q == 0:
            res = polychoric_tables(codes, K, th_list, ia, ib,
                                    names=[names[j] for j in ordi], warn=wmsgs.append)
        else:
            z1 = np.column_stack([uni[j].z1 for j in ordi])
            z2 = np.column_stack([uni[j].z2 for j in ordi])
            res = polychoric_casewise(z1, z2, codes, K, Xe, ia, ib)
        place(pidx, va, vb, res)
        zero_cells = [(names[va[k]], names[vb[k]]) for k in np.flatnonzero(res["zero_cells"])]

    # continuous x ordinal (the continuous variable first)
    pidx = np.flatnonzero(kind_mix)
    if pidx.size:
        vnum = np.where(ordered[cj[pidx]], ci[pidx], cj[pidx])
        vord = np.where(ordered[cj[pidx]], cj[pidx], ci[pidx])
        Zc = np.column_stack([(uni[j].y - uni[j].yhat) / uni[j].sd for j in numi])
        sd = np.array([uni[j].sd for j in numi])
        z1 = np.column_stack([uni[j].z1 for j in ordi])
        z2 = np.column_stack([uni[j].z2 for j in ordi])
        res = polyserial(Zc, sd, z1, z2, codes, K, Xe,
                         np.array([num_pos[v] for v in vnum]),
                         np.array([ord_pos[v] for v in vord]))
        place(pidx, vnum, vord, res)

    # continuous x continuous
    pidx = np.flatnonzero(kind_nn)
    if pidx.size:
        E = np.column_stack([uni[j].y - uni[j].yhat for j in numi])
        var_n = np.array([uni[j].var for j in numi])
        anym = np.isnan(X[:, numi]).any(axis=0)
        res = pearson(E, var_n, Xe, np.array([num_pos[v] for v in cj[pidx]]),
                      np.array([num_pos[v] for v in ci[pidx]]), any_missing=anym)
        place(pidx, cj[pidx], ci[pidx], res)

    if s_rho is None:
        s_rho = np.zeros((N, P))
    for k in np.flatnonzero(np.abs(rho) > 0.99):
        wmsgs.append(f"correlation between variables {names[ci[k]]!r} and {names[cj[k]]!r}"
                     f"{_where(group)} is (nearly) 1.0")
    for m in wmsgs:
        warnings.warn(m, UserWarning, stacklevel=3)

    # ----- assemble the statistics ---------------------------------------------------
    var = np.array([1.0 if ordered[j] else uni[j].var for j in range(p)])
    sds = np.sqrt(var)
    cor = np.eye(p)
    cor[ci, cj] = rho
    cor[cj, ci] = rho
    cov = cor * np.outer(sds, sds)
    np.fill_diagonal(cov, var)
    th = np.concatenate([uni[j].th if ordered[j] else [uni[j].mean] for j in range(p)])
    th_nox = np.concatenate([uni[j].th_nox if ordered[j] else [uni[j].mean_nox]
                             for j in range(p)])
    th_var = np.repeat(np.arange(p), nth_v)
    th_numeric = ~ordered[th_var]
    th_names = []
    for j in range(p):
        if ordered[j]:
            th_names += [f"{names[j]}|t{t + 1}" for t in range(nth_v[j])]
        else:
            th_names.append(f"{names[j]}~1")
    slopes = (np.array([uni[j].slopes for j in range(p)]) if q else np.zeros((p, 0)))
    mean = np.array([0.0 if ordered[j] else uni[j].mean for j in range(p)])
    th_sign = np.where(th_numeric, -th, th)
    wls_obs = np.concatenate([th_sign, slopes.ravel(order="F"), var[numi], cov[ci, cj]])
    wls_names = (th_names + [f"{names[j]}~{exo_names[k]}" for k in range(q) for j in range(p)]
                 + [f"{names[j]}~~{names[j]}" for j in numi]
                 + [f"{names[a]}~~{names[b]}" for a, b in zip(cj, ci)])

    G = psi = None
    if gamma and not keep_influence and ordered.all():
        G = N * _gamma_ordinal(uni, cols, nuni, A21[:, :nuni], s_rho, names, group)
    elif gamma or keep_influence:
        psi = _influence(uni, ordered, cols, nuni, A21[:, :nuni], s_rho, rho, ci, cj, var,
                         th_numeric, names, group)
        G = N * (psi.T @ psi)
    if G is not None:
        if not np.all(np.isfinite(G)):
            warnings.warn(f"Gamma (NACOV){_where(group)} is not finite (a correlation of +-1?)",
                          UserWarning, stacklevel=3)
        if not gamma:
            G = None
    mean_x = Xe.mean(axis=0) if q else np.zeros(0)
    cov_x = np.cov(Xe, rowvar=False, ddof=1).reshape(q, q) if q else np.zeros((0, 0))
    return CategoricalStats(
        names=names, ordered=ordered, exo_names=exo_names, nobs=N, norig=N0, missing=miss,
        group=group, levels=lev, counts=counts, th=th, th_names=th_names, th_var=th_var,
        th_numeric=th_numeric, th_nox=th_nox, slopes=slopes, var=var, mean=mean, cor=cor,
        cov=cov, mean_x=mean_x, cov_x=cov_x, wls_obs=wls_obs, wls_names=wls_names, gamma=G,
        zero_cell_pairs=zero_cells, converged=conv, row_index=np.flatnonzero(keep),
        influence=psi if keep_influence else None)


def _uni_block_inverse(SC: np.ndarray, blocks: list, names, group,
                       A: Optional[np.ndarray] = None) -> np.ndarray:
    """Block-diagonal A11^-1 (nuni x nuni) from the casewise univariate scores ``SC``:
    A11 is the outer-product information sum_i s_i s_i' of each variable's own parameters
    (``blocks[j]`` its columns; ``A``: SC' SC if known). Blocks of equal size are factored
    together (batched Cholesky); a block that is not positive definite gets a generalized
    inverse, with a warning naming the variable."""
    nuni = SC.shape[1]
    if A is None:
        A = SC.T @ SC
    Ainv = np.zeros((nuni, nuni))
    sizes = np.array([c.size for c in blocks])
    for size in np.unique(sizes):
        js = np.flatnonzero(sizes == size)
        if size == 0:
            continue
        cs = np.stack([blocks[j] for j in js])                 # (m, size)
        Ab = A[cs[:, :, None], cs[:, None, :]]
        try:
            np.linalg.cholesky(Ab)                             # positive definite?
            inv = np.linalg.solve(Ab, np.broadcast_to(np.eye(size), Ab.shape))
        except np.linalg.LinAlgError:
            inv = np.empty_like(Ab)
            for t, j in enumerate(js):
                try:
                    cf = scipy.linalg.cho_factor(Ab[t], lower=True)
                    inv[t] = scipy.linalg.cho_solve(cf, np.eye(size))
                except np.linalg.LinAlgError:
                    warnings.warn(f"trouble constructing Gamma: the score information of "
                                  f"{names[j]!r}{_where(group)} is singular; generalized "
                                  "inverse used", UserWarning, stacklevel=4)
                    inv[t] = np.linalg.pinv(Ab[t])
        Ainv[cs[:, :, None], cs[:, None, :]] = inv
    return Ainv


def _score_matrix(uni, cols, nuni):
    """N x nuni casewise scores of all univariate parameters and each variable's columns."""
    N = uni[0].scores.shape[0]
    SC = np.zeros((N, nuni))
    blocks = []
    for j in range(len(uni)):
        c = cols[j][cols[j] < nuni]
        SC[:, c] = uni[j].scores
        blocks.append(c)
    return SC, blocks


def _gamma_ordinal(uni, cols, nuni, A21, s_rho, names, group) -> np.ndarray:
    """N * Gamma of ordinal variables (no continuous ones) without the casewise psi_i.

    With M = A11^-1 (block diagonal), W = M A21' and D = diag(A22) (see :func:`_influence`),
    psi_i = [M s_uni,i ; D^-1 (s_rho,i - W' s_uni,i)], so sum_i psi_i psi_i' needs only the
    cross products of the scores: A = S_uni' S_uni, C = S_uni' S_rho and R = S_rho' S_rho
    (A22 = diag R), i.e. one N x (nuni + P) syrk's worth of work split in two smaller
    products and no N x k influence matrix (Muthen 1984; Muthen & Satorra 1995)."""
    SC, blocks = _score_matrix(uni, cols, nuni)
    A = SC.T @ SC
    M = _uni_block_inverse(SC, blocks, names, group, A)
    C = SC.T @ s_rho                                    # nuni x P
    R = s_rho.T @ s_rho                                 # P x P
    A22 = np.diag(R).copy()
    W = M @ np.ascontiguousarray(A21).T                 # nuni x P
    AW = A @ W
    CW = W.T @ C
    nu = nuni
    G = np.empty((nu + A22.size, nu + A22.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        G[:nu, :nu] = M @ A @ M
        G[:nu, nu:] = M @ (C - AW) / A22
        G[nu:, :nu] = G[:nu, nu:].T
        G[nu:, nu:] = (R - CW - CW.T + W.T @ AW) / np.outer(A22, A22)
    return G


def _influence(uni, ordered, cols, nuni, A21, s_rho, rho, ci, cj, var, th_numeric, names,
               group):
    """Casewise psi_i = H B^-1 s_i; NACOV = N * sum_i psi_i psi_i' (Muthen 1984;
    Muthen & Satorra 1995; lavaan's muthen1984).

    B^-1 s_i for the block lower-triangular B = [[A11, 0], [A21, A22]]:
    psi_uni = A11^-1 s_uni (block diagonal per variable), psi_cor = A22^-1 (s_rho -
    A21 psi_uni) with A22 diagonal; written into one N x k array (no stacking copies)."""
    N, P = s_rho.shape
    SC, blocks = _score_matrix(uni, cols, nuni)
    # column-major: both column blocks are contiguous, so the BLAS products write into
    # them directly and no N x k temporaries are made (Gamma = N psi' psi follows by syrk)
    psi = np.empty((N, nuni + P), order="F")
    psi_uni = psi[:, :nuni]
    np.matmul(SC, _uni_block_inverse(SC, blocks, names, group), out=psi_uni)
    A22 = np.einsum("ij,ij->j", s_rho, s_rho)
    psi_cor = psi[:, nuni:]
    np.matmul(psi_uni, np.ascontiguousarray(A21).T, out=psi_cor)
    np.subtract(s_rho, psi_cor, out=psi_cor)
    with np.errstate(divide="ignore", invalid="ignore"):
        psi_cor /= A22
    # delta method cor -> cov for pairs with continuous variables (lavaan's H)
    ks = np.flatnonzero(~ordered[ci] | ~ordered[cj])
    if ks.size:
        sd = np.sqrt(var)
        a, b = cj[ks], ci[ks]
        var_col = np.array([nuni if ordered[j] else cols[j][-1] for j in range(len(uni))])
        psi_ext = np.hstack([psi_uni, np.zeros((N, 1))])      # column nuni: zeros
        ca = np.where(ordered[a], 0.0, sd[b] * rho[ks] / (2.0 * sd[a]))
        cb = np.where(ordered[b], 0.0, sd[a] * rho[ks] / (2.0 * sd[b]))
        psi_cor[:, ks] = (psi_cor[:, ks] * (sd[a] * sd[b]) + psi_ext[:, var_col[a]] * ca
                          + psi_ext[:, var_col[b]] * cb)
    neg = np.flatnonzero(th_numeric)
    if neg.size:
        psi[:, neg] *= -1.0                          # continuous "thresholds" are -means
    return psi


# ---------------------------------------------------------------------------------------
# DataFrame front ends
# ---------------------------------------------------------------------------------------
def categorical_stats_frame(data: pd.DataFrame, variables: Optional[Sequence[str]] = None,
                            ordered: Union[None, bool, Sequence[str]] = None, *,
                            exo: Optional[Sequence[str]] = None, group: Optional[str] = None,
                            missing: str = "listwise", gamma: bool = True,
                            keep_influence: bool = False) -> dict:
    """:func:`categorical_stats` for the columns of a DataFrame, per group.

    ``variables`` default: all columns except ``group`` and ``exo``. ``ordered``: None or
    True = all ``variables`` are ordinal; a list of names = those (plus ordered pandas
    Categorical columns), the others continuous. Category values of an ordinal column are
    its sorted distinct values over all groups (or the categories of an ordered
    Categorical), so a category that is empty in one group is an error naming it.
    Returns {group label: CategoricalStats} in lavaan's group order (first appearance);
    the single key is None without ``group``. ``row_index`` of each result holds positions
    in ``data``.
    """
    inp = frame_inputs(data, variables, ordered, exo, group)
    out = {}
    for label, rows in group_order(data, group):
        st = categorical_stats(
            inp["X"][rows], inp["ordered"], inp["exo"][rows] if inp["exo"] is not None else None,
            missing, names=inp["names"], exo_names=inp["exo_names"], levels=inp["levels"],
            level_labels=inp["level_labels"], group=label, gamma=gamma,
            keep_influence=keep_influence)
        st.row_index = np.flatnonzero(rows)[st.row_index]
        out[label] = st
    return out


def polychoric(data: pd.DataFrame, ordered: Union[None, bool, Sequence[str]] = None, *,
               group: Optional[str] = None, missing: str = "listwise"):
    """Polychoric (polyserial, Pearson) correlation matrix and thresholds, as lavaan's
    ``lavCor(data, ordered=, group=, missing=)``.

    ``ordered``: None or True = every column (except ``group``) is ordinal; a list of
    names = those columns (and ordered Categoricals) are ordinal, the rest continuous.
    Returns ``(cor, thresholds)``: a labelled DataFrame and a Series (``x|t1`` ...); with
    ``group=`` two dicts keyed by the group labels (in order of first appearance).
    """
    stats = categorical_stats_frame(data, None, ordered, group=group, missing=missing,
                                    gamma=False)
    cors = {g: s.cor_frame() for g, s in stats.items()}
    ths = {g: s.thresholds for g, s in stats.items()}
    if group is None:
        return cors[None], ths[None]
    return cors, ths
