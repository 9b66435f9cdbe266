"""Two-level (random-intercept) normal models by maximum likelihood: the numerical core.

Data ``y_ij`` (row i of cluster j, ``n_j`` rows) are split into *within-only* variables (they
vary only within clusters: no between part), *between-only* variables ``z_j`` (constant within
a cluster) and variables with both parts.  The level-1 ("within") variables are the within-only
and "both" columns, the level-2 ("between") variables the "both" and between-only columns, each
in the column order of the data.  The model is (McDonald & Goldstein 1989; Muthen 1990, 1994)

    y_ij = mu_W + P b_j + w_ij,   w_ij ~ N(0, Sigma_W)             (level-1 variables)
    u_j = (b_j, z_j) ~ N(mu_B, Sigma_B)                           (level-2 variables)

where ``P`` puts the between part ``b_j`` of each "both" variable into its level-1 slot (the
within-only slots get no between part).  The implied *level moments* are therefore
``(mu_W, Sigma_W)`` over the level-1 variables and ``(mu_B, Sigma_B)`` over the level-2
variables, as in lavaan's ``lavInspect(fit, "implied")``; the mean of a "both" variable is
``mu_W + mu_B`` (only the sum is identified).

Complete data (:func:`twolevel_loglik`)
    The rows of a cluster decompose into ``n_j - 1`` within contrasts, independent
    ``N(0, Sigma_W)``, and the cluster vector ``d_j = (z_j, ybar_j)`` (between-only variables
    first, then the level-1 cluster means), normal with mean ``(mu_Bz, mu_W + P mu_Bb)`` and
    covariance ``V_n = E Sigma_B E' + F Sigma_W F' / n`` (``E``, ``F`` the embeddings of the
    level-2 and level-1 variables into ``d``).  Hence, with ``S_PW`` the pooled within
    covariance (divisor ``N - J``) and, per distinct cluster size ``n`` with ``m_n`` clusters,
    ``C_n`` / ``dbar_n`` the covariance (divisor ``m_n``) and mean of their ``d_j``,

        -2 logL = (N - J) [log|Sigma_W| + tr(Sigma_W^-1 S_PW)]
                  + sum_n m_n [log|V_n| + p_1 log n + tr(V_n^-1 (C_n + e_n e_n'))]
                  + (N p_1 + J p_z) log(2 pi),        e_n = dbar_n - E[d].

    This is the McDonald & Goldstein (1989) likelihood in the cluster-size-grouped form that
    lavaan evaluates (``log|Sigma_zz| + log|Sigma_W + n Sigma_b.z| = log|V_n| + p_1 log n``);
    Muthen (1990, 1994) for the pooled-within / between decomposition.  The gradient and the
    expected information follow from the normal-theory results for ``(d_j)`` and the Wishart
    within part through the linear maps ``(mu_W, Sigma_W, mu_B, Sigma_B) -> (E[d], V_n)``.

Missing data (``twolevel_missing``): Rosseel (2021), "Evaluating the observed log-likelihood
function in two-level structural equation modeling with missing data: from formulas to R
code", Psych 3(2), 197-232.

References: McDonald, R. P., & Goldstein, H. (1989), Balanced versus unbalanced designs for
linear structural relations in two-level data, Brit. J. Math. Stat. Psych. 42, 215-232;
Muthen, B. O. (1990), Mean and covariance structure analysis of hierarchical data, UCLA
Statistics Series 62; Muthen, B. O. (1994), Multilevel covariance structure analysis,
Sociological Methods & Research 22, 376-398.

Moment coordinates
    A :class:`TwoLevelLayout` orders the moment vector as
    ``[mu_W (p1), vech Sigma_W, mu_B (p2), vech Sigma_B]`` with ``vech`` the lower triangle
    in ``numpy.tril_indices`` order ((0,0), (1,0), (1,1), (2,0), ...), the convention of
    :mod:`sem_models.estimation.fiml`.  Gradients w.r.t. a symmetric matrix ``Sigma`` are
    reported for its vech coordinates: element (i, j), i != j, gets ``G_ij + G_ji``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from .data import DataError

__all__ = [
    "TwoLevelData", "TwoLevelLayout", "TwoLevelMoments",
    "twolevel_loglik", "twolevel_gradient", "twolevel_information_expected",
    "twolevel_information_observed", "twolevel_scores", "between_quantities",
]  # the saturated, baseline and moment fits are in twolevel_fit

LOG_2PI = float(np.log(2.0 * np.pi))
ArrayLike = Union[np.ndarray, Sequence[float]]


# ------------------------------------------------------------------------------ coordinates
_VECH_CACHE: dict = {}


def _vech_idx(p: int) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.tril_indices(p)``, cached (read-only arrays)."""
    idx = _VECH_CACHE.get(p)
    if idx is None:
        idx = np.tril_indices(p)
        for a in idx:
            a.flags.writeable = False
        _VECH_CACHE[p] = idx
    return idx


def _vech(M: np.ndarray) -> np.ndarray:
    r, c = _vech_idx(M.shape[-1])
    return M[..., r, c]


def _unvech(v: np.ndarray, p: int) -> np.ndarray:
    r, c = _vech_idx(p)
    M = np.zeros(v.shape[:-1] + (p, p))
    M[..., r, c] = v
    M[..., c, r] = v
    return M


def _grad_vech(G: np.ndarray) -> np.ndarray:
    """vech-coordinate gradient of a symmetric matrix gradient ``G`` (``G_ij + G_ji``)."""
    p = G.shape[-1]
    r, c = _vech_idx(p)
    return (G[..., r, c] + G[..., c, r]) * np.where(r == c, 0.5, 1.0)


def _duplication(p: int) -> np.ndarray:
    """Duplication matrix ``D`` with ``vec(S) = D vech(S)`` (vec column-major, tril vech)."""
    r, c = _vech_idx(p)
    D = np.zeros((p * p, len(r)))
    k = np.arange(len(r))
    D[c * p + r, k] = 1.0
    D[r * p + c, k] = 1.0
    return D


@dataclass(frozen=True)
class TwoLevelLayout:
    """Positions of the level moments in the moment vector.

    ``[mu_W (p1), vech Sigma_W (p1*(p1+1)/2), mu_B (p2), vech Sigma_B (p2*(p2+1)/2)]``.
    """

    p1: int
    p2: int

    @property
    def n_w(self) -> int:
        return self.p1 * (self.p1 + 1) // 2

    @property
    def n_b(self) -> int:
        return self.p2 * (self.p2 + 1) // 2

    @property
    def mu_w(self) -> slice:
        return slice(0, self.p1)

    @property
    def sigma_w(self) -> slice:
        return slice(self.p1, self.p1 + self.n_w)

    @property
    def mu_b(self) -> slice:
        s = self.p1 + self.n_w
        return slice(s, s + self.p2)

    @property
    def sigma_b(self) -> slice:
        s = self.p1 + self.n_w + self.p2
        return slice(s, s + self.n_b)

    @property
    def dim(self) -> int:
        return self.p1 + self.n_w + self.p2 + self.n_b

    def vector(self, mu_w: ArrayLike, sigma_w: np.ndarray, mu_b: ArrayLike,
               sigma_b: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(mu_w, float), _vech(np.asarray(sigma_w, float)),
                               np.asarray(mu_b, float), _vech(np.asarray(sigma_b, float))])

    def moments(self, v: np.ndarray) -> "TwoLevelMoments":
        v = np.asarray(v, float)
        return TwoLevelMoments(v[self.mu_w].copy(), _unvech(v[self.sigma_w], self.p1),
                               v[self.mu_b].copy(), _unvech(v[self.sigma_b], self.p2))

    def jacobian(self, d_mu_w: np.ndarray, d_sigma_w: np.ndarray, d_mu_b: np.ndarray,
                 d_sigma_b: np.ndarray) -> np.ndarray:
        """Jacobian of the moment vector w.r.t. q model parameters, ``(dim, q)`` (lavaan's
        Delta) from the stacked derivatives ``d_mu_w (q, p1)``, ``d_sigma_w (q, p1, p1)``,
        ``d_mu_b (q, p2)``, ``d_sigma_b (q, p2, p2)``."""
        return np.concatenate([np.asarray(d_mu_w), _vech(np.asarray(d_sigma_w)),
                               np.asarray(d_mu_b), _vech(np.asarray(d_sigma_b))], axis=1).T

    def names(self, level1: Sequence[str], level2: Sequence[str]) -> list[str]:
        """lavaan-style labels of the coordinates (``y1~1``, ``y1~~y2``; level suffix)."""
        out = [f"{v}~1@1" for v in level1]
        r, c = _vech_idx(self.p1)
        out += [f"{level1[j]}~~{level1[i]}@1" for i, j in zip(r, c)]
        out += [f"{v}~1@2" for v in level2]
        r, c = _vech_idx(self.p2)
        out += [f"{level2[j]}~~{level2[i]}@2" for i, j in zip(r, c)]
        return out


@dataclass
class TwoLevelMoments:
    """Implied level moments: ``mu_w`` (p1), ``sigma_w`` (p1, p1) over the level-1 variables,
    ``mu_b`` (p2), ``sigma_b`` (p2, p2) over the level-2 variables."""

    mu_w: np.ndarray
    sigma_w: np.ndarray
    mu_b: np.ndarray
    sigma_b: np.ndarray

    def vector(self) -> np.ndarray:
        lay = TwoLevelLayout(len(self.mu_w), len(self.mu_b))
        return lay.vector(self.mu_w, self.sigma_w, self.mu_b, self.sigma_b)

    def copy(self) -> "TwoLevelMoments":
        return TwoLevelMoments(self.mu_w.copy(), self.sigma_w.copy(), self.mu_b.copy(),
                               self.sigma_b.copy())


# ------------------------------------------------------------------------------------ data
@dataclass
class SizeStats:
    """Between statistics of the clusters of one size ``n``: count ``m``, mean ``dbar`` and
    covariance ``cov`` (divisor ``m``) of ``d_j = (z_j, ybar_j)`` (lavaan's ``mean.d`` /
    ``cov.d``)."""

    n: int
    m: int
    dbar: np.ndarray
    cov: np.ndarray
    clusters: np.ndarray  # cluster indices of this size


def _factorize_clusters(cluster, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster codes (order of first appearance) and the labels as Python objects; numeric
    identifiers without the conversion of every value to a Python object."""
    raw = np.asarray(cluster)
    if raw.ndim == 1 and raw.dtype.kind in "biuf":
        if len(raw) != N:
            raise DataError(f"cluster has {len(raw)} values for {N} rows")
        if raw.dtype.kind == "f" and np.isnan(raw).any():
            raise DataError(f"cluster variable is missing in {int(np.isnan(raw).sum())} rows")
        codes, labels = pd.factorize(raw, sort=False)
        out = np.empty(len(labels), dtype=object)
        out[:] = labels.tolist()
        return codes, out
    cl_raw = pd.Series(np.asarray(cluster, dtype=object).ravel())
    if len(cl_raw) != N:
        raise DataError(f"cluster has {len(cl_raw)} values for {N} rows")
    if cl_raw.isna().any():
        raise DataError(f"cluster variable is missing in {int(cl_raw.isna().sum())} rows")
    codes, labels = pd.factorize(cl_raw, sort=False)
    return codes, np.asarray(labels, dtype=object)


class TwoLevelData:
    """Clustered data and their two-level sufficient statistics.

    Parameters
    ----------
    X : (N, p) array or DataFrame of the analysed variables (NaN = missing).
    cluster : (N,) cluster identifiers of any hashable type; rows need not be sorted or
        contiguous by cluster.
    names : variable names (default: DataFrame columns or ``V1..Vp``).
    within : variables that exist at level 1 only (names or column positions).
    between : variables that exist at level 2 only.  Default: every variable not declared
        ``within`` whose observed values do not vary within any cluster (zero pooled within
        variance), as lavaan classifies them.  All other variables have both parts.

    Attributes (all positions refer to the columns of ``X``): ``kind`` ("within", "between",
    "both" per column), ``level1`` / ``level2`` the column positions of the level-1 / level-2
    variables (``level1_names`` / ``level2_names``), ``cluster_labels``, ``cluster_index``
    (row -> cluster), ``cluster_size``, ``nclusters``, ``nobs``, ``has_missing``; for
    complete data also ``ybar`` (J, p) cluster means, ``S_PW`` (p1, p1) pooled within
    covariance (divisor N - J), ``d`` (J, pz + p1) the between vectors ``(z_j, ybar_j)`` and
    ``size_stats`` (one :class:`SizeStats` per distinct cluster size, sorted by size).
    """

    def __init__(self, X, cluster, names: Optional[Sequence[str]] = None,
                 within: Optional[Sequence] = None, between: Optional[Sequence] = None,
                 tol: float = 1e-10):
        if isinstance(X, pd.DataFrame):
            if names is None:
                names = [str(c) for c in X.columns]
            try:
                X = X.to_numpy(dtype=float, copy=True)
            except (TypeError, ValueError) as exc:
                raise DataError(f"two-level data must be numeric: {exc}") from None
        else:
            try:
                X = np.array(X, dtype=float, copy=True)
            except (TypeError, ValueError) as exc:
                raise DataError(f"two-level data must be numeric: {exc}") from None
        if X.ndim != 2:
            raise DataError("two-level data must be a 2-d array (rows x variables)")
        N, p = X.shape
        names = [f"V{k + 1}" for k in range(p)] if names is None else [str(v) for v in names]
        if len(names) != p:
            raise DataError(f"{len(names)} names for {p} columns")
        if len(set(names)) != p:
            raise DataError("duplicate variable names")
        if np.isinf(X).any():
            bad = names[int(np.where(np.isinf(X).any(axis=0))[0][0])]
            raise DataError(f"column {bad!r} has infinite values")
        codes, labels = _factorize_clusters(cluster, N)
        self.names = names
        self.X = X
        self.nobs = N
        self.p = p
        self.cluster_index = codes.astype(np.intp)
        self.cluster_labels = labels
        self.nclusters = J = len(labels)
        self.cluster_size = np.bincount(self.cluster_index, minlength=J)
        self.order = np.argsort(self.cluster_index, kind="stable")  # rows sorted by cluster
        self._starts = np.concatenate([[0], np.cumsum(self.cluster_size)[:-1]])
        self.has_missing = bool(np.isnan(X).any())

        obs = ~np.isnan(X)
        if (~obs).all(axis=0).any():
            bad = names[int(np.where((~obs).all(axis=0))[0][0])]
            raise DataError(f"column {bad!r} has no observed values")
        # cluster means over observed values, within-cluster sum of squares per column
        Xz = np.where(obs, X, 0.0)
        cnt = self._cluster_sum(obs.astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            ybar = self._cluster_sum(Xz) / cnt
        dev = np.where(obs, X - ybar[self.cluster_index], 0.0)
        ss_within = (dev ** 2).sum(axis=0)
        gm = np.nanmean(X, axis=0)
        ss_total = np.nansum((X - gm) ** 2, axis=0)
        if (ss_total <= 0).any():
            bad = names[int(np.where(ss_total <= 0)[0][0])]
            raise DataError(f"column {bad!r} has zero variance")
        const_within = ss_within <= tol * ss_total

        def _resolve(spec, what):
            if spec is None:
                return []
            out = []
            for v in spec:
                if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                    if not 0 <= int(v) < p:
                        raise DataError(f"{what} column position {v} out of range")
                    out.append(int(v))
                elif str(v) in names:
                    out.append(names.index(str(v)))
                else:
                    raise DataError(f"{what} variable {v!r} is not in the data")
            return sorted(set(out))

        w_idx = _resolve(within, "within")
        b_idx = _resolve(between, "between")
        if set(w_idx) & set(b_idx):
            raise DataError("variable(s) " + ", ".join(names[k] for k in set(w_idx) & set(b_idx))
                            + " declared both within-only and between-only")
        for k in b_idx:
            if not const_within[k]:
                j = int(np.argmax(np.bincount(self.cluster_index, weights=dev[:, k] ** 2,
                                              minlength=J)))
                raise DataError(f"between-only variable {names[k]!r} varies within cluster "
                                f"{self.cluster_labels[j]!r}")
        for k in w_idx:
            if const_within[k]:
                raise DataError(f"within-only variable {names[k]!r} has zero within-cluster "
                                "variance")
        if between is None:
            b_idx = [k for k in range(p) if const_within[k] and k not in w_idx]
        kind = np.array(["both"] * p, dtype=object)
        kind[w_idx] = "within"
        kind[b_idx] = "between"
        self.kind = kind
        self.within_idx = np.array(w_idx, dtype=np.intp)
        self.between_idx = np.array(sorted(b_idx), dtype=np.intp)
        self.both_idx = np.where(kind == "both")[0]
        self.level1 = np.where(kind != "between")[0]
        self.level2 = np.where(kind != "within")[0]
        self.level1_names = [names[k] for k in self.level1]
        self.level2_names = [names[k] for k in self.level2]
        self.p1, self.p2 = len(self.level1), len(self.level2)
        self.pz = len(self.between_idx)
        if self.p1 == 0:
            raise DataError("two-level data need at least one level-1 (within) variable")
        self.layout = TwoLevelLayout(self.p1, self.p2)
        # embeddings of level-1 / level-2 variables into d = (z, ybar_level1)
        q = self.pz + self.p1
        self.E = np.zeros((q, self.p2))
        self.F = np.zeros((q, self.p1))
        self.F[self.pz + np.arange(self.p1), np.arange(self.p1)] = 1.0
        pos1 = {c: i for i, c in enumerate(self.level1)}
        zpos = {c: i for i, c in enumerate(self.between_idx)}
        for a, c in enumerate(self.level2):
            self.E[(zpos[c] if c in zpos else self.pz + pos1[c]), a] = 1.0
        # P: level-1 slot <- level-2 "both" variable
        self.P = self.F.T @ self.E  # (p1, p2)
        # the same embeddings as positions in d (E, F are selection matrices)
        self._e_idx, self._f_idx = _selection_index(self.E), _selection_index(self.F)
        # observed per-cluster z (between-only values; NaN if missing in the whole cluster)
        self.z = ybar[:, self.between_idx]
        self.ybar = ybar
        self._within_cp = None
        if not self.has_missing:
            self._complete_stats(ybar, dev)
        self._missing = None

    # -- helpers
    def _cluster_sum(self, A: np.ndarray) -> np.ndarray:
        """Per-cluster column sums of a per-row array (rows in the caller's order)."""
        A = np.asarray(A, float)
        out = np.zeros((self.nclusters,) + A.shape[1:])
        nz = self.cluster_size > 0
        out[nz] = np.add.reduceat(A[self.order], self._starts[nz], axis=0)
        return out

    def _complete_stats(self, ybar: np.ndarray, dev: np.ndarray) -> None:
        N, J = self.nobs, self.nclusters
        if N - J <= 0:
            raise DataError("two-level data need more rows than clusters (all clusters "
                            "have size 1)")
        D1 = dev[:, self.level1]
        self.S_PW = D1.T @ D1 / (N - J)
        self.d = np.concatenate([self.z, ybar[:, self.level1]], axis=1)
        sizes, inv = np.unique(self.cluster_size, return_inverse=True)
        self.size_stats = []
        for s, n in enumerate(sizes):
            idx = np.where(inv == s)[0]
            D = self.d[idx]
            dbar = D.mean(axis=0)
            C = (D - dbar).T @ (D - dbar) / len(idx)
            self.size_stats.append(SizeStats(int(n), len(idx), dbar, C, idx))
        # the same stacked over sizes, for the batched likelihood and derivatives
        self._size_n = np.array([st.n for st in self.size_stats], float)
        self._size_m = np.array([st.m for st in self.size_stats], float)
        self._size_dbar = np.array([st.dbar for st in self.size_stats])
        self._size_cov = np.array([st.cov for st in self.size_stats])

    def within_crossproducts(self) -> np.ndarray:
        """``W_j`` (J, p1, p1): each cluster's within cross-products of the level-1 variables
        about the cluster means (complete data; computed once)."""
        if self._within_cp is None:
            dev = self.X[:, self.level1] - self.ybar[self.cluster_index][:, self.level1]
            self._within_cp = self._cluster_sum(dev[:, :, None] * dev[:, None, :])
        return self._within_cp

    def subset(self, names: Sequence[str]) -> "TwoLevelData":
        """The same clusters restricted to some variables (kinds kept), e.g. the exogenous
        covariates for :func:`loglik_x`."""
        idx = [self.names.index(str(v)) if str(v) in self.names else None for v in names]
        if None in idx:
            bad = [v for v, k in zip(names, idx) if k is None]
            raise DataError(f"variables {bad} are not in the data")
        kinds = self.kind[idx]
        sub = [self.names[k] for k in idx]
        return TwoLevelData(self.X[:, idx], self.cluster_labels[self.cluster_index], names=sub,
                            within=[v for v, k in zip(sub, kinds) if k == "within"],
                            between=[v for v, k in zip(sub, kinds) if k == "between"])

    @property
    def missing(self):
        """Missing-data pattern statistics (:class:`twolevel_missing.MissingTwoLevel`)."""
        if self._missing is None:
            from .twolevel_missing import MissingTwoLevel
            self._missing = MissingTwoLevel(self)
        return self._missing

    def summary(self) -> pd.DataFrame:
        """One row per variable: its kind and levels."""
        return pd.DataFrame({"variable": self.names, "kind": list(self.kind),
                             "level1": [k != "between" for k in self.kind],
                             "level2": [k != "within" for k in self.kind]})

    def start_moments(self) -> TwoLevelMoments:
        """Moment start values (lavaan-like): ``Sigma_W = S_PW``, ``Sigma_B`` from the
        between cross-products ``(S_b - S_W) / s`` (Muthen 1994's ``s``), made positive
        definite; means from the grand / cluster means."""
        X, cl = self.X, self.cluster_index
        obs = ~np.isnan(X)
        ybar = self.ybar
        dev = np.where(obs, X - ybar[cl], 0.0)
        cnt_w = np.maximum(obs.astype(float).T @ obs.astype(float) - self.nclusters, 1.0)
        Sw_all = dev.T @ dev / cnt_w
        gm = np.nanmean(X, axis=0)
        Yb = np.where(np.isnan(ybar), gm, ybar)
        nj = self.cluster_size.astype(float)
        N, J = float(self.nobs), float(self.nclusters)
        s = (N - (nj ** 2).sum() / N) / max(J - 1.0, 1.0)
        Yc = Yb - gm
        Sb = (Yc * nj[:, None]).T @ Yc / J
        SigB = (Sb - Sw_all) / s
        l1, l2 = self.level1, self.level2
        z = self.between_idx
        if len(z):
            Zc = Yc[:, z]
            SigB[np.ix_(z, z)] = Zc.T @ Zc / J
            SigB[np.ix_(l1, z)] = Yc[:, l1].T @ Zc / J
            SigB[np.ix_(z, l1)] = SigB[np.ix_(l1, z)].T
        Sw = Sw_all[np.ix_(l1, l1)]
        # within-only variables: total covariance (no between part)
        w = self.within_idx
        if len(w):
            Xw = np.where(np.isnan(X[:, w]), gm[w], X[:, w]) - gm[w]
            pos = np.searchsorted(l1, w)
            Sw[np.ix_(pos, pos)] = Xw.T @ Xw / N
        Sw = _make_pd(Sw)
        SB = _make_pd(SigB[np.ix_(l2, l2)], floor=1e-3)
        mu_w = np.where(self.kind[l1] == "within", gm[l1], 0.0)
        mu_b = gm[l2].copy()
        return TwoLevelMoments(mu_w, Sw, mu_b, SB)


def _selection_index(L: np.ndarray) -> np.ndarray:
    """Row of the one 1 in each column of a selection matrix: ``L' X L = X[idx][:, idx]``."""
    return np.argmax(L, axis=0).astype(np.intp)


def _make_pd(S: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    S = (S + S.T) / 2
    d = np.sqrt(np.maximum(np.diag(S), 1e-12))
    R = S / np.outer(d, d)
    w, U = np.linalg.eigh(R)
    if w.min() >= floor:
        return S
    R = (U * np.maximum(w, floor)) @ U.T
    return R * np.outer(d, d)


def _as_moments(data: TwoLevelData, moments) -> TwoLevelMoments:
    if isinstance(moments, TwoLevelMoments):
        m = moments
    else:
        m = data.layout.moments(np.asarray(moments, float))
    if m.mu_w.shape != (data.p1,) or m.sigma_w.shape != (data.p1, data.p1):
        raise ValueError(f"within moments must be over the {data.p1} level-1 variables "
                         f"{data.level1_names}")
    if m.mu_b.shape != (data.p2,) or m.sigma_b.shape != (data.p2, data.p2):
        raise ValueError(f"between moments must be over the {data.p2} level-2 variables "
                         f"{data.level2_names}")
    return m


# ----------------------------------------------------------------- complete-data likelihood
@dataclass
class _Between:
    """Per-size between quantities at given moments (stacked over the sizes)."""

    Vinv: np.ndarray
    logdet: np.ndarray
    mean_d: np.ndarray
    Sw_inv: np.ndarray
    Sw_logdet: float


def _chol_inv(S: np.ndarray) -> tuple[np.ndarray, float]:
    L = np.linalg.cholesky(S)
    Linv = np.linalg.solve(L, np.eye(len(S)))
    return Linv.T @ Linv, 2.0 * float(np.log(np.diag(L)).sum())


def _between(data: TwoLevelData, m: TwoLevelMoments) -> _Between:
    """Per-size inverses and log-determinants of ``V_n`` and of ``Sigma_W`` at ``m``
    (``LinAlgError`` when one is not positive definite).  The likelihood, gradient and
    information functions take it as ``between=`` to share one evaluation (complete data).
    All cluster sizes are factorised in one batched Cholesky call."""
    SB = data.E @ m.sigma_b @ data.E.T
    FWF = data.F @ m.sigma_w @ data.F.T
    n = data._size_n
    V = SB[None] + FWF[None] / n[:, None, None]
    L = np.linalg.cholesky(V)
    Linv = np.linalg.inv(L)
    Vinv = np.matmul(Linv.transpose(0, 2, 1), Linv)
    logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    Swi, swld = _chol_inv(m.sigma_w)
    return _Between(Vinv, logdet, data.E @ m.mu_b + data.F @ m.mu_w, Swi, swld)


between_quantities = _between


def _require_complete(data: TwoLevelData) -> None:
    if data.has_missing:
        raise ValueError("the data have missing values: use the twolevel_missing functions")


def twolevel_loglik(data: TwoLevelData, moments, between=None) -> float:
    """Two-level normal log-likelihood at the level moments (``-inf`` where a covariance is
    not positive definite).  Complete data: the cluster-size-grouped McDonald & Goldstein
    (1989) form (module docstring); missing data: Rosseel (2021), see
    :func:`sem_models.estimation.twolevel_missing.loglik_missing`."""
    m = _as_moments(data, moments)
    if data.has_missing:
        from .twolevel_missing import loglik_missing
        return loglik_missing(data, m)
    try:
        bt = _between(data, m) if between is None else between
    except np.linalg.LinAlgError:
        return -np.inf
    N, J = data.nobs, data.nclusters
    f = (N - J) * (bt.Sw_logdet + float(np.sum(bt.Sw_inv * data.S_PW)))
    P = bt.Vinv                                              # (S, q, q), all sizes at once
    e = data._size_dbar - bt.mean_d
    quad = np.einsum("sq,sqr,sr->s", e, P, e)
    tr = np.einsum("sqr,sqr->s", P, data._size_cov)
    f += float(data._size_m @ (bt.logdet + data.p1 * np.log(data._size_n) + tr + quad))
    f += (N * data.p1 + J * data.pz) * LOG_2PI
    return -0.5 * f


def _moment_gradient(data: TwoLevelData, g_mean: np.ndarray, GV: np.ndarray,
                     G_W: np.ndarray) -> np.ndarray:
    """Chain rule from d-space gradients (mean, per-size V_n stacked ``(S, q, q)``) and a
    within-matrix gradient to the moment vector."""
    GVsum = GV.sum(axis=0)
    GVw = np.tensordot(1.0 / data._size_n, GV, axes=1)
    g_mu_w = data.F.T @ g_mean
    g_mu_b = data.E.T @ g_mean
    G_sw = data.F.T @ GVw @ data.F + G_W
    G_sb = data.E.T @ GVsum @ data.E
    return np.concatenate([g_mu_w, _grad_vech(G_sw), g_mu_b, _grad_vech(G_sb)])


def twolevel_gradient(data: TwoLevelData, moments, between=None) -> np.ndarray:
    """Analytic gradient of :func:`twolevel_loglik` w.r.t. the moment vector
    (:class:`TwoLevelLayout` order).  Complete data: per size ``n``
    ``dlogL/dV_n = -m_n/2 (V^-1 - V^-1 (C_n + e e') V^-1)``, ``dlogL/dE[d] = m_n V^-1 e``,
    within ``-(N - J)/2 (Sigma_W^-1 - Sigma_W^-1 S_PW Sigma_W^-1)`` (Magnus & Neudecker 1999,
    ch. 9), chained through ``V_n = E Sigma_B E' + F Sigma_W F' / n``."""
    m = _as_moments(data, moments)
    if data.has_missing:
        from .twolevel_missing import gradient_missing
        return gradient_missing(data, m)
    bt = _between(data, m) if between is None else between
    P = bt.Vinv                                              # (S, q, q), all sizes at once
    a = np.einsum("sqr,sr->sq", P, data._size_dbar - bt.mean_d)
    mm = data._size_m
    g_mean = mm @ a
    GV = (-0.5 * mm)[:, None, None] * (P - P @ data._size_cov @ P
                                       - a[:, :, None] * a[:, None, :])
    Swi = bt.Sw_inv
    G_W = -0.5 * (data.nobs - data.nclusters) * (Swi - Swi @ data.S_PW @ Swi)
    return _moment_gradient(data, g_mean, GV, G_W)


def twolevel_information_expected(data: TwoLevelData, moments, between=None) -> np.ndarray:
    """Expected (Fisher) information of the total log-likelihood in moment coordinates
    (complete data; not divided by N).

    The within contrasts and the cluster vectors ``d_j`` are independent, so the information
    is ``(N - J)/2 D'(Sigma_W^-1 (x) Sigma_W^-1)D`` for vech Sigma_W plus, per cluster size,
    ``m_n K_m' V_n^-1 K_m`` (means) and ``m_n/2 K_V'(V_n^-1 (x) V_n^-1)K_V`` (covariances),
    with ``K`` the Jacobians of ``E[d]`` and ``vec V_n`` w.r.t. the moment vector
    (Magnus & Neudecker 1999, ch. 9; McDonald & Goldstein 1989)."""
    _require_complete(data)
    m = _as_moments(data, moments)
    bt = _between(data, m) if between is None else between
    lay = data.layout
    info = np.zeros((lay.dim, lay.dim))
    W, B = lay.sigma_w, lay.sigma_b
    e, f = data._e_idx, data._f_idx                           # E, F as positions in d
    Vi = np.asarray(bt.Vinv)                                  # (S, q, q)
    mm = np.asarray(data._size_m, float)
    nn = data._size_n
    # means: K_m' (sum_n m_n V_n^-1) K_m, K_m = [F, E] at the mu_w, mu_b coordinates
    means, sel = _mean_positions(data)
    info[np.ix_(means, means)] = np.einsum("s,sij->ij", mm, Vi)[np.ix_(sel, sel)]
    # dV = E dSigma_B E' + F dSigma_W F' / n: tr(Vi dV_k Vi dV_l) in vech coordinates
    EVE = Vi[:, e[:, None], e[None, :]]
    FVF = Vi[:, f[:, None], f[None, :]]
    EVF = Vi[:, e[:, None], f[None, :]]                       # (S, p2, p1)
    c = 0.5 * mm
    info[B, B] += _trace_pairs(EVE, EVE, c)
    info[W, W] += _trace_pairs(FVF, FVF, c / nn ** 2)
    cross = _trace_pairs(EVF, EVF.transpose(0, 2, 1), c / nn)   # rows Sigma_B, cols Sigma_W
    info[B, W] += cross
    info[W, B] += cross.T
    info[W, W] += _trace_pairs(bt.Sw_inv[None], bt.Sw_inv[None],
                               np.array([0.5 * (data.nobs - data.nclusters)]))
    return info


def _mean_positions(data) -> tuple[np.ndarray, np.ndarray]:
    """The mean coordinates ``[mu_w, mu_b]`` in the moment vector and their positions in d."""
    lay = data.layout
    means = np.concatenate([np.arange(lay.mu_w.start, lay.mu_w.stop),
                            np.arange(lay.mu_b.start, lay.mu_b.stop)])
    return means, np.concatenate([data._f_idx, data._e_idx])


def _trace_pairs(A: np.ndarray, B: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_s weights[s] tr(A_s U_kl B_s U_ij)`` for all vech pairs, ``A``, ``B`` stacks
    ``(S, r, c)`` / ``(S, c, r)``: rows (i, j) over the tril indices of r, columns (k, l) over
    those of c, ``U`` the symmetric unit matrices (ones at (i, j) and (j, i)).  These are the
    duplication-matrix products ``D' (A (x) B) D`` of the normal information (Magnus &
    Neudecker 1999, ch. 3) without a Kronecker product:
    ``w_ij w_kl (A_jk B_li + A_ik B_lj + A_jl B_ki + A_il B_kj)``, w = 1/2 on diagonals.
    One matrix product over the sizes, ``M[(a, b), (c, d)] = sum_s weights[s] A_s[a, b]
    B_s[c, d]``, then four gathers of M."""
    S, r, c = A.shape
    M = ((np.asarray(weights, float)[:, None, None] * A).reshape(S, r * c).T
         @ B.reshape(S, c * r)).ravel()
    t1, t2, t3, t4, w = _pair_index(r, c)
    return (M[t1] + M[t2] + M[t3] + M[t4]) * w


_PAIR_CACHE: dict = {}


def _pair_index(r: int, c: int):
    """Flat positions in ``M`` (see :func:`_trace_pairs`) of the four terms, and the
    weights, for rows (i, j) over tril(r) and columns (k, l) over tril(c)."""
    key = (r, c)
    if key not in _PAIR_CACHE:
        i, j = _vech_idx(r)
        k, l = _vech_idx(c)
        i, j = i[:, None], j[:, None]
        k, l = k[None, :], l[None, :]

        def flat(a, b, d, e):       # position of A[a, b] B[d, e]
            return ((a * c + b) * c + d) * r + e

        w = np.where(i == j, 0.5, 1.0) * np.where(k == l, 0.5, 1.0)
        _PAIR_CACHE[key] = (flat(j, k, l, i), flat(i, k, l, j), flat(j, l, k, i),
                            flat(i, l, k, j), w)
    return _PAIR_CACHE[key]


def twolevel_information_observed(data: TwoLevelData, moments, h: float = 1e-6) -> np.ndarray:
    """Observed information (negative Hessian of the total log-likelihood) in moment
    coordinates by central differences of the analytic gradient (fallback where no analytic
    Hessian is available; works with missing data)."""
    m = _as_moments(data, moments)
    v = m.vector()
    lay = data.layout
    H = np.zeros((lay.dim, lay.dim))
    for k in range(lay.dim):
        step = h * max(1.0, abs(v[k]))
        vp, vm = v.copy(), v.copy()
        vp[k] += step
        vm[k] -= step
        H[:, k] = (twolevel_gradient(data, lay.moments(vp))
                   - twolevel_gradient(data, lay.moments(vm))) / (2 * step)
    return -(H + H.T) / 2


def twolevel_scores(data: TwoLevelData, moments, lavaan_compat: bool = False) -> np.ndarray:
    """Clusterwise scores: ``(J, dim)``, row j the gradient of cluster j's log-likelihood
    contribution in moment coordinates (rows in ``data.cluster_labels`` order; they sum to
    :func:`twolevel_gradient`).  For the cluster-robust (MLR) sandwich and Yuan-Bentler test.

    Cluster j (size n): ``dl_j/dV_n = -1/2 (V^-1 - V^-1 e_j e_j' V^-1)``,
    ``dl_j/dE[d] = V^-1 e_j`` and ``dl_j/dSigma_W`` (within part)
    ``= -1/2 ((n - 1) Sigma_W^-1 - Sigma_W^-1 W_j Sigma_W^-1)`` with ``W_j`` the cluster's
    within cross-products.  Missing data: Fisher's identity (expected complete-data scores),
    see :func:`sem_models.estimation.twolevel_missing.scores_missing`.

    ``lavaan_compat=True`` zeroes the within-mean columns of the "both" variables, as lavaan
    0.6-14 does in its two-level first-order information (``lav_mvnorm_cluster_scores_2l``
    via ``information.first.order``): lavaan then counts a model parameter's effect on those
    means only through the between means.  Use it to reproduce lavaan's MLR numbers; the
    default gives the exact scores (which sum to the gradient)."""
    m = _as_moments(data, moments)
    if data.has_missing:
        from .twolevel_missing import scores_missing
        out = scores_missing(data, m)
    else:
        out = _scores_complete(data, m)
    if lavaan_compat:
        out[:, np.where(data.kind[data.level1] == "both")[0]] = 0.0
    return out


def _scores_complete(data: TwoLevelData, m: TwoLevelMoments) -> np.ndarray:
    bt = _between(data, m)
    lay = data.layout
    J = data.nclusters
    out = np.zeros((J, lay.dim))
    E, F = data.E, data.F
    # all clusters at once: cluster j uses the inverse of its size's V_n
    sid = np.zeros(J, np.intp)
    for s, st in enumerate(data.size_stats):
        sid[st.clusters] = s
    P = np.asarray(bt.Vinv)                                 # (S, q, q)
    e = data.d - bt.mean_d                                  # (J, q)
    a = np.einsum("jq,jqr->jr", e, P[sid])                  # V^-1 e_j
    aF, aE = a @ F, a @ E
    out[:, lay.mu_w] = aF
    out[:, lay.mu_b] = aE
    # dl_j/dSigma = L' GV_j L with GV_j = -(V^-1 - a_j a_j') / 2, in vech coordinates
    # (off-diagonal entries twice: G_ij + G_ji)
    for sl, L, scale in ((lay.sigma_w, F, 1.0 / data.cluster_size), (lay.sigma_b, E, None)):
        r, c = _vech_idx(L.shape[1])
        LPL = (L.T @ P @ L)[:, r, c][sid]                   # (J, n_vech)
        aL = a @ L
        G = -0.5 * (LPL - aL[:, r] * aL[:, c]) * np.where(r == c, 1.0, 2.0)
        out[:, sl] = G if scale is None else G * scale[:, None]
    # within part
    Swi = bt.Sw_inv
    r, c = _vech_idx(data.p1)
    uu = _vech(Swi @ data.within_crossproducts() @ Swi)   # (J, n_w) vech Sw^-1 W_j Sw^-1
    Gw = -0.5 * ((data.cluster_size - 1)[:, None] * _vech(Swi)[None] - uu)
    out[:, lay.sigma_w] += Gw * np.where(r == c, 1.0, 2.0)
    return out
