"""Vectorised refits: a whole chunk of data sets fitted by normal-theory ML at once.

A bootstrap refits one model thousands of times to data sets that differ only in their sample
moments.  Fitting them one by one (:meth:`.refit.Refitter.fit`) spends most of its time in the
overhead of small numpy calls; :class:`MLKernel` instead holds the sample moments of a chunk of
``R`` data sets as stacked arrays (``(R, p, p)`` covariances) and runs the same iterations on
all of them with batched RAM algebra, batched derivatives and batched linear solves, each data
set iterating until its own convergence (converged ones are masked out).

The loss is the complete-data ML discrepancy of :mod:`sem_models.estimation.ml` (Joreskog
1969; Bollen 1989, ch. 4): ``f = sum_g (N_g / N) F_g / 2``.  The implied moments are those of
the RAM model (McArdle & McDonald 1984): ``Sigma = F B S B' F'``, ``B = (I - A)^-1``.  The
derivative of ``Sigma`` with respect to a directed path ``A[i, j]`` or a (co)variance
``S[i, j]`` is a symmetrised outer product ``u w' + w u'`` (von Oertzen & Brick 2014), with
``u = (F B)[:, i]`` and ``w = (F B S B')[:, j]`` or ``(F B)[:, j]`` (``w = u / 2`` on the
diagonal of ``S``).  With ``P = Sigma^-1``, ``U`` and ``V`` the matrices of the ``u`` and ``w``
columns and ``X_ab = a' X b``, the gradient of ``F/2`` is ``u_k' W w_k`` (``W = P - P (S + dd')
P``), and the traces of the expected information ``tr(P dSigma_k P dSigma_l) / 2`` (Lee &
Jennrich 1979) and of the observed Hessian's ``tr(P dSigma_k (P - 2W) dSigma_l)`` (Magnus &
Neudecker 1999, ch. 9 differentials, as :meth:`MLGroupLoss.hessian`) reduce to Hadamard
products of the small matrices ``U'PU``, ``U'PV``, ``V'PV``, e.g. the information is
``P_uu o P_vv + P_uv o P_uv'``: no ``(q, p, p)`` arrays are formed.  The second-order terms of
the Hessian are :meth:`RAMModel.second_order_terms` gathered over the batch.

The iterations are those of :func:`sem_models.estimation.optimizer.optimize`: Fisher scoring
with step halving while ``max |gradient| >= 0.1``, Newton steps with the analytic Hessian
below, the last Hessian reused once ``max |gradient| < 1e-4``, convergence at
``max |gradient| < 1e-8``.  A data set whose sample covariance matrix is not positive definite,
whose line search fails or which has not converged after :data:`MAX_KERNEL_ITER` iterations
is reported as not done (``ok = False``): the caller refits it by the per-data-set path, with
its warnings, fall-backs and convergence flags.

Determinism: every operation is batched over the data sets (stacked matmul, stacked LAPACK
calls, elementwise arithmetic), so a data set's result is computed by the same calls whatever
else is in its chunk; the callers moreover make chunks canonical (fixed runs of consecutive
replicate indices, :data:`CHUNK`), so that results are identical for every executor and batch
size.

References: Bollen, K. A. (1989). Structural equations with latent variables. Wiley.  Lee,
S.-Y., & Jennrich, R. I. (1979). A study of algorithms for covariance structure analysis with
specific comparisons using factor analysis. Psychometrika 44, 99-113.  Magnus, J. R., &
Neudecker, H. (1999). Matrix differential calculus (rev. ed.). Wiley.  McArdle, J. J., &
McDonald, R. P. (1984). Some algebraic properties of the reticular action model. British J.
of Math. and Stat. Psychology 37, 234-251.  von Oertzen, T., & Brick, T. R. (2014). Efficient
Hessian computation using sparse matrix derivatives in RAM notation. Behavior Research Methods
46, 385-395.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = ["MLKernel", "KernelResult", "CHUNK", "sample_moments"]

#: replicates per canonical chunk (fewer for large models, see :meth:`MLKernel.chunk_size`)
CHUNK = 64
#: smallest chunk (large models)
MIN_CHUNK = 8
#: iterations of the kernel before a data set is handed to the per-data-set path
MAX_KERNEL_ITER = 100
#: thresholds of :func:`sem_models.estimation.optimizer.optimize`
NEWTON_SWITCH = 1e-1
NEWTON_REUSE = 1e-4
TOL = 1e-8


@dataclass
class KernelResult:
    """Per data set: ``values`` (parameter-table rows), ``fmin``, ``ntotal``, ``ok`` (fitted
    and converged here; the others need the per-data-set path) and ``iterations``."""

    values: np.ndarray  # (R, n_rows)
    fmin: np.ndarray  # (R,)
    ntotal: np.ndarray  # (R,)
    ok: np.ndarray  # (R,) bool
    iterations: np.ndarray  # (R,) int


def sample_moments(samples: Sequence[Sequence[np.ndarray]], n_groups: int, p: int):
    """Stacked sample covariances (divisor N), means and sizes of the data sets ``samples``
    (one list of ``n_groups`` arrays with ``p`` columns each): ``covs[g]`` (R, p, p),
    ``means[g]`` (R, p), ``nobs`` (R, G) and ``usable`` (R,): complete data with at least
    two rows per group (the others are left to the per-data-set path and its errors)."""
    R = len(samples)
    covs, means = [], []
    nobs = np.zeros((R, n_groups), int)
    usable = np.ones(R, bool)
    for g in range(n_groups):
        arrays = [np.asarray(s[g], float) if len(s) == n_groups else np.zeros((0, p))
                  for s in samples]
        cov = np.zeros((R, p, p))
        mean = np.zeros((R, p))
        for r, X in enumerate(arrays):
            n = X.shape[0] if X.ndim == 2 else 0
            nobs[r, g] = n
            if X.ndim != 2 or X.shape[1] != p or n < 2:
                usable[r] = False
                continue
            m = X.mean(axis=0)
            centred = X - m
            cov[r] = centred.T @ centred / n
            mean[r] = m
        bad = ~np.isfinite(cov).all(axis=(1, 2)) | ~np.isfinite(mean).all(axis=1)
        usable &= ~bad
        covs.append(cov)
        means.append(mean)
    return covs, means, nobs, usable


try:  # numpy's stacked LAPACK gufuncs: a failed matrix gives NaNs, never an exception
    from numpy.linalg import _umath_linalg as _ULA
    _ULA.cholesky_lo, _ULA.inv, _ULA.solve1  # noqa: B018 - present in numpy 1.x and 2.x
except (ImportError, AttributeError):  # pragma: no cover - another numpy layout
    _ULA = None


def _chol(mats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of stacked matrices and which are positive definite (one LAPACK call
    per matrix whatever the stack; a failure only marks its matrix)."""
    if _ULA is not None:  # (the kernel runs under np.errstate(all="ignore"))
        chol = _ULA.cholesky_lo(mats, signature="d->d")
        # LAPACK's factor of a matrix that is not positive definite is all NaN
        return chol, np.isfinite(np.diagonal(chol, axis1=1, axis2=2)).all(axis=1)
    try:  # pragma: no cover - the public API raises for the whole stack
        return np.linalg.cholesky(mats), np.ones(len(mats), bool)
    except np.linalg.LinAlgError:  # pragma: no cover
        chol = np.full(mats.shape, np.nan)
        for k in range(len(mats)):
            try:
                chol[k] = np.linalg.cholesky(mats[k:k + 1])[0]
            except np.linalg.LinAlgError:
                pass
        return chol, np.isfinite(chol).all(axis=(1, 2))


def _inv(mats: np.ndarray) -> np.ndarray:
    """Stacked inverses (NaN for singular matrices)."""
    if _ULA is not None:
        return _ULA.inv(mats, signature="d->d")
    out = np.full(mats.shape, np.nan)  # pragma: no cover
    for k in range(len(mats)):  # pragma: no cover
        try:
            out[k] = np.linalg.inv(mats[k:k + 1])[0]
        except np.linalg.LinAlgError:
            pass
    return out  # pragma: no cover


def _solve(mats: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Stacked solves ``mats[k] x = rhs[k]`` (NaN for singular systems)."""
    if _ULA is not None:
        return _ULA.solve1(mats, rhs, signature="dd->d")
    out = np.full(rhs.shape, np.nan)  # pragma: no cover
    for k in range(len(mats)):  # pragma: no cover
        try:
            out[k] = np.linalg.solve(mats[k:k + 1], rhs[k:k + 1, :, None])[0, :, 0]
        except np.linalg.LinAlgError:
            pass
    return out  # pragma: no cover


def _t(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 1)


def _flat(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Flat indices of the cells ``[rows[k], cols[l]]`` of an n-column matrix, (k, l)."""
    return np.asarray(rows, int)[:, None] * n + np.asarray(cols, int)[None, :]


class _Group:
    """The RAM cells of one group and the index arrays of its batched derivatives.

    The columns of the derivatives are the free cells in :meth:`RAMModel.jacobian`'s order
    (A, S, M).  ``K = [F B[:, fb], (F B S B')[:, c]]`` holds every column the derivatives
    need: the ``u`` of the A and S cells, the ``w`` of the A cells (``c``) and of the S cells,
    the mean derivatives (columns of ``F B``); all products are gathered from ``K' X K``."""

    def __init__(self, model, g: int, free_mask: np.ndarray, free_position: np.ndarray):
        cells = model._cells[g]
        self.A, self.S, self.M = cells["A"], cells["S"], cells["M"]
        self.order = model._path_orders[g]
        free = model.free_rows(g, free_mask)
        self.positions = pos = free_position[free.rows]
        #: the group's columns among the free rows as a slice when they are consecutive
        self.block = slice(int(pos[0]), int(pos[0]) + len(pos)) if len(pos) and np.array_equal(
            pos, np.arange(pos[0], pos[0] + len(pos))) else None
        self.na, self.ns, self.nm = free.n_a, free.n_s, free.n_m
        self.nas = self.na + self.ns
        self.q = free.q
        v = model.n_var
        ai, aj = np.asarray(free.A[1], int), np.asarray(free.A[2], int)
        si, sj = np.asarray(free.S[1], int), np.asarray(free.S[2], int)
        mi = np.asarray(free.M[1], int)
        self.ai, self.aj, self.si, self.sj, self.mi = ai, aj, si, sj, mi
        self.mirror = np.asarray(free.mirror[self.na:], float)
        self.fb = np.unique(np.concatenate([ai, si, sj, mi]))
        self.c = np.unique(aj)
        nfb, nc = len(self.fb), len(self.c)
        m = self.m = nfb + nc
        fbpos = np.zeros(v, int)
        fbpos[self.fb] = np.arange(nfb)
        cpos = np.zeros(v, int)
        cpos[self.c] = nfb + np.arange(nc)
        u = fbpos[np.concatenate([ai, si])]
        w = np.concatenate([cpos[aj], fbpos[sj]])
        # w = u / 2 on the diagonal of S (d Sigma = u u' = u (u/2)' + (u/2) u'): every
        # trace carries one w of each column, hence the scales s and s s'
        self.s = np.concatenate([np.ones(self.na), np.where(si != sj, 1.0, 0.5)])
        self.ss = np.outer(self.s, self.s)
        self.uu, self.uw = _flat(u, u, m), _flat(u, w, m)
        self.wu, self.ww = _flat(w, u, m), _flat(w, w, m)
        self.g_diag = u * m + w
        self.u, self.w = u, w
        # mean derivatives: A cells (u * (B M)[j]) and M cells (F B[:, i])
        self.mean_cols = np.concatenate([np.arange(self.na), self.nas + np.arange(self.nm)])
        dm = np.concatenate([fbpos[ai], fbpos[mi]])
        self.dm = dm
        self.dmdm, self.udm, self.wdm = _flat(dm, dm, m), _flat(u, dm, m), _flat(w, dm, m)
        # second-order terms (RAMModel.second_order_terms): cells of B, C and K'WK
        self.b_ji_t = aj[None, :] * v + ai[:, None]  # (k, l): B[aj_l, ai_k]
        self.h_ji = _flat(cpos[aj], fbpos[ai], m)  # H[aj_k, ai_l] = C[:, aj]' W F B[:, ai]
        self.g_ii = _flat(fbpos[ai], fbpos[ai], m)
        self.c_jj = _flat(aj, aj, v)
        self.b_js, self.b_jsj = _flat(aj, si, v), _flat(aj, sj, v)
        self.g_isj, self.g_isi = _flat(fbpos[ai], fbpos[sj], m), _flat(fbpos[ai], fbpos[si], m)
        self.b_jm = _flat(aj, mi, v)
        self.rho_a = fbpos[ai]


class MLKernel:
    """Batched ML refits of a :class:`~.refit.Refitter`'s model (see the module docstring).

    ``MLKernel.build(refitter)`` returns None when the kernel does not apply: only the fast
    path's complete-data ML with linear equality constraints (no FIML, bounds, nonlinear
    constraints or cluster-robust refits)."""

    def __init__(self, refitter):
        model = refitter.model
        pmap = refitter.pmap
        self.model = model
        self.meanstructure = bool(model.meanstructure)
        self.p, self.v, self.G = model.n_ov, model.n_var, model.n_groups
        self.start = np.asarray(refitter.start, float)
        self.free_rows = np.asarray(pmap.free_rows, int)
        self.T = np.asarray(pmap.T, float)
        self.offset = np.asarray(pmap.offset, float)
        self.identity = bool(pmap.is_identity)
        self.selection = None if self.identity else pmap.selection
        self.n_z = self.T.shape[1]
        self.n_free = len(self.free_rows)
        self.z0 = pmap.z_from_free(self.start[self.free_rows])
        self.max_iter = min(int(refitter.max_iter), MAX_KERNEL_ITER)
        n_rows = len(self.start)
        free_mask = np.zeros(n_rows, bool)
        free_mask[self.free_rows] = True
        free_position = np.full(n_rows, -1)
        free_position[self.free_rows] = np.arange(self.n_free)
        self.groups = [_Group(model, g, free_mask, free_position) for g in range(self.G)]
        # fixed exogenous rows: the sample moments of each data set (as start_values)
        table = refitter.table
        ov_index = {name: k for k, name in enumerate(model.ov_names)}
        exo = np.flatnonzero(refitter.exo)
        self.exo_rows = exo
        self.exo_group = np.asarray(table["group"])[exo].astype(int) - 1
        self.exo_mean = np.asarray(table["op"])[exo] == "~1"
        self.exo_i = np.array([ov_index[v] for v in np.asarray(table["lhs"])[exo]], int)
        self.exo_j = np.array([ov_index.get(v, 0) if m else ov_index[v]
                               for v, m in zip(np.asarray(table["rhs"])[exo], self.exo_mean)],
                              int)

    @classmethod
    def build(cls, refitter) -> Optional["MLKernel"]:
        if not getattr(refitter, "fast", False) or getattr(refitter, "fiml", True):
            return None
        if refitter.cluster is not None:
            return None
        pmap = refitter.pmap
        if pmap.general is not None or pmap.has_bounds:
            return None
        model = refitter.model
        if not (hasattr(model, "_cells") and hasattr(model, "_path_orders")):
            return None  # pragma: no cover - another matrices layout: per-data-set path
        try:
            return cls(refitter)
        except (KeyError, IndexError, ValueError):  # pragma: no cover - unusual tables
            return None

    def chunk_size(self) -> int:
        """Replicates per canonical chunk: a function of the model only.  The largest power
        of two up to :data:`CHUNK` whose stacked square arrays (``(R, n, n)`` with ``n`` the
        largest dimension: free parameters, variables, columns of ``K``) stay below about
        120 kB: larger temporaries are mapped fresh from the system on every allocation
        (glibc's mmap threshold), whose page faults cost more than the batching saves; at
        least :data:`MIN_CHUNK`."""
        n = max([self.n_free, self.n_z, self.v, 1] + [g.m for g in self.groups])
        k = CHUNK
        while k > MIN_CHUNK and k * n * n * 8 > 120_000:
            k //= 2
        return k

    # ------------------------------------------------------------------------ parameters
    def _base(self, covs, means) -> np.ndarray:
        R = len(covs[0]) if covs else 0
        base = np.tile(self.start, (R, 1))
        if len(self.exo_rows):
            vals = np.empty((R, len(self.exo_rows)))
            for k, (g, is_mean, i, j) in enumerate(zip(self.exo_group, self.exo_mean,
                                                       self.exo_i, self.exo_j)):
                vals[:, k] = means[g][:, i] if is_mean else covs[g][:, i, j]
            base[:, self.exo_rows] = vals
        return base

    def _values(self, base: np.ndarray, z: np.ndarray) -> np.ndarray:
        vals = base.copy()
        if self.identity:
            theta = z
        elif self.selection is not None:  # shared labels: T only selects
            theta = z[:, self.selection]
        else:  # one product per data set (never a product over the stack)
            theta = (z[:, None, :] @ self.T.T)[:, 0, :]
        vals[:, self.free_rows] = self.offset + theta
        return vals

    # ------------------------------------------------------------------------ one group
    def _moments(self, grp: _Group, vals: np.ndarray):
        R, v = len(vals), self.v
        A = np.zeros((R, v, v))
        S = np.zeros((R, v, v))
        rows, i, j = grp.A
        A[:, i, j] = vals[:, rows]
        rows, i, j = grp.S
        S[:, i, j] = vals[:, rows]
        S[:, j, i] = vals[:, rows]
        ok = np.ones(R, bool)
        if grp.order is None:  # non-recursive models: (I - A)^-1
            B = _inv(np.eye(v) - A)
            ok = np.isfinite(B).all(axis=(1, 2))
            B[~ok] = np.eye(v)
        else:
            B = A.copy()
            B[:, np.arange(v), np.arange(v)] += 1.0
            for _ in range(grp.order - 1):
                B = A @ B
                B[:, np.arange(v), np.arange(v)] += 1.0
        C = B @ S @ _t(B)
        mu_full = None
        if self.meanstructure:
            M = np.zeros((R, v))
            rows, i, _ = grp.M
            M[:, i] = vals[:, rows]
            mu_full = (B @ M[:, :, None])[:, :, 0]
        return B, C, mu_full, ok

    def _group(self, grp: _Group, vals, cov, mean, logdet_s, kind: int):
        """Value of ``F_g / 2`` and, by ``kind`` (0 value, 1 gradient, 2 information,
        3 Hessian), the gradient and curvature over the group's free cells."""
        p, R = self.p, len(vals)
        B, C, mu_full, ok = self._moments(grp, vals)
        sigma = np.ascontiguousarray(C[:, :p, :p])
        chol, pd_ok = _chol(sigma)
        ok &= pd_ok
        if not ok.all():  # evaluated on the identity, then discarded (value inf)
            sigma[~ok] = np.eye(p)
            chol[~ok] = np.eye(p)
        P = _inv(sigma)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        F = logdet + (cov * P).sum(axis=(1, 2)) - logdet_s - p
        d = r = None
        if self.meanstructure:
            d = mean - mu_full[:, :p]
            r = (P @ d[:, :, None])[:, :, 0]
            F = F + (d * r).sum(axis=1)
        value = np.where(ok, 0.5 * F, np.inf)
        if kind == 0:
            return value, None, None, ok
        target = cov if d is None else cov + d[:, :, None] * d[:, None, :]
        PT = P @ target
        W = P - PT @ P
        FB = B[:, :p, :]
        K = np.concatenate([FB[:, :, grp.fb], C[:, :p, grp.c]], axis=2)  # (R, p, m)
        Kt = _t(K)
        KWK = (Kt @ (W @ K)).reshape(R, -1)
        na, nas, q = grp.na, grp.nas, grp.q
        grad = np.zeros((R, q))
        grad[:, :nas] = KWK[:, grp.g_diag] * grp.s  # u_k' W w_k
        rK = c = None
        if r is not None:
            rK = (Kt @ r[:, :, None])[:, :, 0]  # K' r
            c = np.concatenate([mu_full[:, grp.aj], np.ones((R, grp.nm))], axis=1)
            grad[:, grp.mean_cols] -= rK[:, grp.dm] * c  # - dmu_k' P d
        if kind == 1:
            return value, grad, None, ok
        KPK = (Kt @ (P @ K)).reshape(R, -1)
        Puu, Puw, Pwu, Pww = (KPK[:, grp.uu], KPK[:, grp.uw], KPK[:, grp.wu],
                              KPK[:, grp.ww])
        # tr(P dS_k P dS_l) / 2 = P_uu o P_ww + P_uw o P_wu
        cc = None if c is None else c[:, :, None] * c[:, None, :]
        mc = grp.mean_cols
        if kind == 2:
            info = Puu * Pww
            info += Puw * Pwu
            info *= grp.ss
            if nas == q and c is None:
                info_full = info
            else:
                info_full = np.zeros((R, q, q))
                info_full[:, :nas, :nas] = info
                if c is not None:
                    info_full[:, mc[:, None], mc[None, :]] += KPK[:, grp.dmdm] * cc
            return value, grad, info_full, ok
        # observed Hessian (MLGroupLoss.hessian): tr(P S_k Q S_l) with Q = P - 2W is
        # Q_wu o P_uw + Q_ww o P_uu + Q_uu o P_ww + Q_uw o P_wu
        KQK = KPK - 2.0 * KWK
        first = KQK[:, grp.wu] * Puw
        first += KQK[:, grp.ww] * Puu
        first += KQK[:, grp.uu] * Pww
        first += KQK[:, grp.uw] * Pwu
        first *= grp.ss
        if nas == q:
            curv = first
        else:
            curv = np.zeros((R, q, q))
            curv[:, :nas, :nas] = first
        if c is not None:
            wr = rK[:, grp.w][:, :, None]  # w_k' r (before the scale s_k)
            ur = rK[:, grp.u][:, :, None]  # u_k' r
            cross = (wr * KPK[:, grp.udm] + ur * KPK[:, grp.wdm]) * (
                grp.s[:, None] * c[:, None, :])
            curv[:, mc[:, None], mc[None, :]] += 2.0 * KPK[:, grp.dmdm] * cc
            curv[:, :nas, mc] += 2.0 * cross
            curv[:, mc, :nas] += 2.0 * _t(cross)
        if na:
            self._second(grp, curv, B, C, mu_full, KWK, rK)
        curv *= 0.5  # symmetric: MLGroupLoss.hessian's (H + H') / 4 is H / 2
        return value, grad, curv, ok

    def _second(self, grp: _Group, out, B, C, mu, KWK, rK) -> None:
        """Add the batched :meth:`RAMModel.second_order_terms` to ``out``."""
        R = len(B)
        na, ns = grp.na, grp.ns
        Bf, Cf = B.reshape(R, -1), C.reshape(R, -1)
        B_ji_t = Bf[:, grp.b_ji_t]
        cross = B_ji_t * KWK[:, grp.h_ji]
        block = cross + _t(cross) + Cf[:, grp.c_jj] * KWK[:, grp.g_ii]
        if rK is not None:
            rho = rK[:, grp.rho_a]  # (F B)' r at the A cells' i
            mean_part = mu[:, grp.aj][:, :, None] * B_ji_t * rho[:, None, :]
            block -= mean_part + _t(mean_part)
        out[:, :na, :na] += 2.0 * block
        if ns:
            blk = 2.0 * (Bf[:, grp.b_js] * KWK[:, grp.g_isj]
                         + grp.mirror * Bf[:, grp.b_jsj] * KWK[:, grp.g_isi])
            out[:, :na, na:na + ns] += blk
            out[:, na:na + ns, :na] += _t(blk)
        if grp.nm and rK is not None:
            blk = -2.0 * rK[:, grp.rho_a][:, :, None] * Bf[:, grp.b_jm]
            out[:, :na, na + ns:] += blk
            out[:, na + ns:, :na] += _t(blk)


    # ------------------------------------------------------------------------ all groups
    def _evaluate(self, data, idx: np.ndarray, z: np.ndarray, kind: int):
        """Objective, gradient and curvature in z of the data sets ``idx``: by ``kind``
        none (0, 1), the information (2) or the Hessian (3)."""
        covs, means, logdets, weights, base = data
        vals = self._values(base[idx], z)
        R = len(idx)
        if self.G == 1 and self.groups[0].block == slice(0, self.n_free):
            # one group: its weight is exactly 1 and its columns are all the free rows
            f, grad, curv, ok = self._group(self.groups[0], vals, covs[0][idx],
                                            means[0][idx], logdets[0][idx], kind)
            f = f.copy()
        else:
            n = self.n_free
            f = np.zeros(R)
            grad = np.zeros((R, n)) if kind else None
            curv = np.zeros((R, n, n)) if kind >= 2 else None
            ok = np.ones(R, bool)
            for g, grp in enumerate(self.groups):
                val, gr, cu, ok_g = self._group(grp, vals, covs[g][idx], means[g][idx],
                                                logdets[g][idx], kind)
                w = weights[idx, g]
                ok &= ok_g
                f += w * val
                if kind:
                    blk = grp.block
                    if blk is not None:
                        grad[:, blk] += w[:, None] * gr
                    else:
                        grad[:, grp.positions] += w[:, None] * gr
                    if kind >= 2 and blk is not None:
                        curv[:, blk, blk] += w[:, None, None] * cu
                    elif kind >= 2:
                        pos = grp.positions
                        curv[:, pos[:, None], pos[None, :]] += w[:, None, None] * cu
        f[~ok] = np.inf
        if kind and not self.identity:  # T' g and T' C T, one product per data set
            grad = (grad[:, None, :] @ self.T)[:, 0, :]
            if curv is not None:
                curv = self.T.T @ curv @ self.T
        return f, grad, curv

    def fit(self, covs: list, means: list, nobs: np.ndarray,
            usable: Optional[np.ndarray] = None) -> KernelResult:
        """Fit the data sets with the given stacked sample moments (:func:`sample_moments`)
        from the refitter's start (the original estimates)."""
        from ..estimation.threads import blas_single_thread
        with blas_single_thread(), np.errstate(all="ignore"):
            return self._fit(covs, means, nobs, usable)

    def _fit(self, covs, means, nobs, usable) -> KernelResult:
        R = len(nobs)
        nobs = np.asarray(nobs, float)
        ntotal = nobs.sum(axis=1)
        ok = np.ones(R, bool) if usable is None else np.asarray(usable, bool).copy()
        logdets = []
        for cov in covs:
            chol, pd_ok = _chol(cov)
            ok &= pd_ok
            logdets.append(2.0 * np.log(np.abs(np.diagonal(chol, axis1=1, axis2=2))).sum(1))
        weights = nobs / np.where(ntotal > 0, ntotal, 1.0)[:, None]
        data = (covs, means, logdets, weights, self._base(covs, means))
        n_z = self.n_z
        z = np.tile(self.z0, (R, 1))
        f = np.full(R, np.inf)
        grad = np.zeros((R, n_z))
        newton = np.zeros((R, n_z, n_z))  # the last positive-definite Hessian
        info = np.zeros((R, n_z, n_z))  # the information where the Hessian is not PD
        use_info = np.zeros(R, bool)  # this step: the information (Fisher scoring)
        step = np.zeros((R, n_z))
        alpha = np.ones(R)  # step halving: the fraction of the step being tried
        fresh = np.ones(R, bool)  # at a new point: a new step is due
        iterations = np.zeros(R, int)
        converged = np.zeros(R, bool)
        done = ~ok  # unusable data: not done here (ok stays False)

        def curvature(rows, f_new, hess):
            """Positive-definite Hessians are the Newton matrices; elsewhere the information
            (computed afresh) is used for the next step."""
            _, pd_ok = _chol(hess)
            if pd_ok.all():
                newton[rows] = hess
                use_info[rows] = False
                return
            newton[rows[pd_ok]] = hess[pd_ok]
            use_info[rows] = ~pd_ok
            redo = rows[~pd_ok & np.isfinite(f_new)]
            if len(redo):
                info[redo] = self._evaluate(data, redo, z[redo], 2)[2]

        rows = np.flatnonzero(ok)
        if len(rows):  # the optimizer's first step: Fisher scoring
            if len(self.exo_rows) == 0 and np.all(weights[rows] == weights[rows[0]]):
                # the information at the start depends on the model's moments and the
                # group weights only: the same for all (bit for bit: same inputs)
                f[rows], grad[rows], _ = self._evaluate(data, rows, z[rows], 1)
                info[rows] = self._evaluate(data, rows[:1], z[rows[:1]], 2)[2]
            else:
                f[rows], grad[rows], info[rows] = self._evaluate(data, rows, z[rows], 2)
            use_info[rows] = True
            bad = rows[~np.isfinite(f[rows])]
            ok[bad] = False
            done[bad] = True
        it = np.zeros(R, int)
        for _ in range(4 * self.max_iter):
            active = np.flatnonzero(~done)
            if not len(active):
                break
            new = active[fresh[active]]
            if len(new):  # new steps: Newton (or scoring) directions
                scoring = use_info[new]
                mats = newton[new] if not scoring.any() else info[new] if scoring.all() \
                    else np.where(scoring[:, None, None], info[new], newton[new])
                st = _solve(mats, grad[new])
                descent = np.isfinite(st).all(axis=1) & ((st * grad[new]).sum(axis=1) > 0)
                ok[new[~descent]] = False
                done[new[~descent]] = True
                step[new], alpha[new] = st, 1.0
                it[new] += 1
                over = new[it[new] > self.max_iter]
                ok[over] = False
                done[over] = True
                active = np.flatnonzero(~done)
                if not len(active):
                    break
            iterations[active] = it[active]
            g_max = np.abs(grad[active]).max(axis=1) if n_z else np.zeros(len(active))
            # the last Newton step (small gradient): no curvature at the next point
            last = ~use_info[active] & (g_max < NEWTON_REUSE)
            kind = 1 if last.all() else 3
            trial = z[active] - alpha[active, None] * step[active]
            f_new, g_new, c_new = self._evaluate(data, active, trial, kind)
            f_old = f[active]
            accept = np.isfinite(f_new) & (f_new <= f_old + 1e-14 * np.maximum(1.0,
                                                                              np.abs(f_old)))
            acc = active[accept]
            z[acc], f[acc], grad[acc] = trial[accept], f_new[accept], g_new[accept]
            fresh[active] = accept
            # each data set's own choice (never its chunk's): a last Newton step keeps its
            # Hessian even where the others' needs computed a new one
            want = accept & ~last
            if kind == 3 and want.any():
                curvature(active[want], f_new[want], c_new[want])
            rejected = active[~accept]
            alpha[rejected] *= 0.5
            failed = rejected[alpha[rejected] < 1e-10]
            ok[failed] = False
            done[failed] = True
            g_acc = np.abs(grad[acc]).max(axis=1) if n_z else np.zeros(len(acc))
            conv = acc[g_acc < TOL]
            converged[conv] = True
            done[conv] = True
        ok &= converged & np.isfinite(f)
        return KernelResult(self._values(data[4], z), f, ntotal, ok, iterations)
