"""The optimizer: a :class:`Problem` (model + one loss per group + parameter map) minimised in
the reduced parameter vector z of :mod:`sem_models.model.constraints`.

Fisher scoring (Lee & Jennrich 1979) with step halving, then Newton steps with the analytic
Hessian where the loss family has one; a quasi-Newton (L-BFGS-B) fallback when scoring stalls;
models with bounds use an active-set method.  The losses are interchangeable: anything that
implements :class:`sem_models.estimation.loss.GroupLoss`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..linalg import spd_solve
from ..model.constraints import ParameterMap
from ..model.matrices import GroupMoments, RAMModel
from . import structured as _structured
from .structured import BlockArrow
from .threads import single_threaded_blas

__all__ = [
    "BFGS_SWITCH", "ConvergenceWarning", "NEWTON_REUSE", "NEWTON_SWITCH", "OptimizationResult",
    "Problem", "STALL_ITERATIONS", "observed_hessian", "optimize",
]


class ConvergenceWarning(UserWarning):
    """The optimizer stopped before the convergence criteria were met."""


@dataclass
class OptimizationResult:
    z: np.ndarray
    fmin: float
    converged: bool
    iterations: int
    message: str
    max_gradient: float
    active: Optional[np.ndarray] = None  # z coordinates held at a bound (bounded models)
    #: the expected information at ``z`` when the search computed it there (the standard
    #: errors reuse it), else None; a BlockArrow for structured multi-group problems
    information: Optional[object] = None


class Problem:
    """Model + per-group losses + parameter map: everything the optimizer needs."""

    def __init__(self, model: RAMModel, losses: list, pmap: ParameterMap, base_values: np.ndarray):
        self.model = model
        self.losses = losses
        self.pmap = pmap
        self.base_values = base_values
        nobs = np.array([loss.nobs for loss in losses], float)
        self.nobs = nobs
        self.weights = nobs / nobs.sum()
        n_rows = len(base_values)
        self.free_position = np.full(n_rows, -1)
        self.free_position[pmap.free_rows] = np.arange(len(pmap.free_rows))
        free_mask = np.zeros(n_rows, bool)
        free_mask[pmap.free_rows] = True
        self._cells = [model.free_rows(g, free_mask) for g in range(model.n_groups)]
        # where each group's derivatives go among the free rows: a slice when its rows are
        # consecutive (the usual case), else index arrays
        self._positions = [self.free_position[cells.rows] for cells in self._cells]
        self._blocks = [_block(pos, len(pmap.free_rows)) for pos in self._positions]

    @property
    def has_hessian(self) -> bool:
        """Whether every loss has an analytic observed Hessian: a ``hessian`` method
        (:class:`~.loss.HessianLoss`; checked by name, as a runtime protocol check would, at a
        fraction of its cost)."""
        return all(callable(getattr(loss, "hessian", None)) for loss in self.losses)

    def start(self, z: np.ndarray, **kinds):
        """:meth:`derivatives` at the start of a search (``FloatingPointError`` when the
        implied covariance matrix is not positive definite there)."""
        out = self.derivatives(z, **kinds)
        if not np.isfinite(out[0]):
            raise FloatingPointError("the start values give a non-positive-definite implied "
                                     "covariance matrix")
        return out

    def values(self, z: np.ndarray) -> np.ndarray:
        vals = self.base_values.copy()
        vals[self.pmap.free_rows] = self.pmap.theta_free(z)
        return vals

    def moments(self, values: np.ndarray) -> list[GroupMoments]:
        return [self.model.moments(values, g) for g in range(self.model.n_groups)]

    def objective(self, z: np.ndarray) -> float:
        vals = self.values(z)
        total = 0.0
        for g, loss in enumerate(self.losses):
            try:
                mom = self.model.moments(vals, g)
            except np.linalg.LinAlgError:
                return np.inf
            total += self.weights[g] * loss.value(mom)
        return total

    def group_jacobian(self, values: np.ndarray, g: int, mom: Optional[GroupMoments] = None):
        """``(positions, d_cov, d_mean)`` of group g's moments w.r.t. the free rows."""
        mom = mom or self.model.moments(values, g)
        _, d_cov, d_mean = self.model.jacobian(mom, self._cells[g])
        return self._positions[g], d_cov, d_mean

    def derivatives(self, z: np.ndarray, info: bool = True, hessian: bool = False,
                    structured: bool = False):
        """Objective, gradient and a curvature matrix in terms of z: the expected information
        (``info``), the analytic observed Hessian (``hessian``, for losses that have one) or
        None.  With ``structured`` the curvature of a multi-group problem comes as a
        :class:`~.structured.BlockArrow` (private blocks per group + shared block: solves in
        time linear in the number of groups) when the groups' parameters have that structure
        (:meth:`block_layout`), else as the dense matrix."""
        vals = self.values(z)
        identity = self.pmap.is_identity
        want = "hessian" if hessian else ("info" if info else None)
        layout = self.block_layout() if structured and want else None
        # identity map: accumulate in the free rows; otherwise straight into z, group by
        # group, through the rows of T that group touches (see _group_maps)
        maps = None if identity else self._group_maps()
        size = len(self.pmap.free_rows) if identity else self.pmap.n_z
        # one group whose parameters are all the free rows, in order: its derivatives are
        # the result (no accumulation)
        whole = (identity and len(self.losses) == 1 and isinstance(self._blocks[0][0], slice)
                 and self._blocks[0][0] == slice(0, size))
        grad_out = None if whole else np.zeros(size)
        if layout is not None:
            curv_out = layout.zeros()
            local_maps = self._local_maps()
        else:
            curv_out = np.zeros((size, size)) if want and not whole else None
        total = 0.0
        for g, loss in enumerate(self.losses):
            mom = self.model.moments(vals, g)
            total += self.weights[g] * loss.value(mom)
            if not math.isfinite(total):
                return np.inf, np.full(self.pmap.n_z, np.nan), None
            _, d_cov, d_mean = self.group_jacobian(vals, g, mom)
            grad, inf = loss.derivatives(mom, d_cov, d_mean, info=want == "info")
            if want == "hessian":
                cells = self._cells[g]

                def second(W, r, mom=mom, cells=cells):
                    return self.model.second_order_terms(mom, cells, W, r)

                inf = loss.hessian(mom, d_cov, d_mean, second)
            w = self.weights[g]
            if whole:
                return total, w * grad, (w * inf if want else None)
            if identity:
                rows, block = self._blocks[g]
                grad_out[rows] += w * grad  # positions are unique within a group
            else:
                cols, t_g, kind, block = maps[g]
                if kind == "unique":  # each row is one z coordinate of its own
                    grad_out[cols] += w * grad
                elif kind == "select":  # rows sharing a z coordinate: index sums
                    np.add.at(grad_out, cols, w * grad)
                else:
                    grad_out[cols] += t_g.T @ (w * grad)
            if not want:
                continue
            if layout is not None:  # the group's block in the layout's local order
                order, u_loc = local_maps[g]
                local = inf[np.ix_(order, order)] if u_loc is None else u_loc.T @ inf @ u_loc
                curv_out.set_group(g, local, w)
            elif identity or kind in ("unique", "select"):
                _add_block(curv_out, block, w * inf)
            else:
                _add_block(curv_out, block, t_g.T @ (w * inf) @ t_g)
        return total, grad_out, curv_out

    def _group_cols(self) -> list:
        """Per group: the z coordinates (without repeats) its free rows depend on."""
        if self.pmap.is_identity:
            return list(self._positions)
        return [np.unique(cols) if kind == "select" else cols
                for cols, _, kind, _ in self._group_maps()]

    def block_layout(self):
        """The :class:`~.structured.BlockLayout` of the curvature matrices in z (coordinates
        private to one group + coordinates shared by several), or None when the problem has
        one group, few parameters or no such structure (:func:`~.structured.block_layout`).
        Cached for the current ``pmap.T``."""
        T = self.pmap.T
        cached = self.__dict__.get("_layout_cache")
        if cached is not None and cached[0] is T:
            return cached[1]
        layout = _structured.block_layout(self._group_cols(), self.pmap.n_z) \
            if len(self.losses) > 1 and self.pmap.n_z >= _structured.STRUCTURED_MIN_NZ \
            else None
        self.__dict__["_layout_cache"] = (T, layout)
        return layout

    def _local_maps(self) -> list:
        """Per group, how its curvature block (over its free rows) becomes its block over its
        z coordinates in the layout's local order: ``(order, None)`` (a permutation of the rows:
        each row its own coordinate) or ``(None, U)`` with ``local = U' block U``."""
        T = self.pmap.T
        cached = self.__dict__.get("_local_cache")
        if cached is not None and cached[0] is T:
            return cached[1]
        layout = self.block_layout()
        out = []
        if self.pmap.is_identity:
            out = [(layout.local[g], None) for g in range(len(self.losses))]
        else:
            for g, (cols, t_g, kind, _) in enumerate(self._group_maps()):
                local = layout.local[g]
                if kind == "unique":
                    out.append((local, None))
                elif kind == "select":
                    ucols = np.unique(cols)
                    U = (cols[:, None] == ucols[None, :]).astype(float)
                    out.append((None, np.ascontiguousarray(U[:, local])))
                else:
                    out.append((None, np.ascontiguousarray(t_g[:, local])))
        self.__dict__["_local_cache"] = (T, out)
        return out

    def _group_maps(self) -> list:
        """Per group: the z coordinates its free rows depend on and the rows of T restricted
        to them, so that ``T' g`` and ``T' C T`` are sums of small per-group products (the
        information is block diagonal over groups; a dense ``T' C T`` costs n_free^2 n_z, which
        grows like G^3).  When each of the group's rows has a single unit entry (labels shared
        across groups, the usual ``group_equal`` case) the products are index sums
        (``np.add.at``).  Cached for the current ``pmap.T``."""
        T = self.pmap.T
        cached = self.__dict__.get("_maps_cache")
        if cached is not None and cached[0] is T:
            return cached[1]
        maps = []
        selection = self.pmap.selection
        if selection is not None:  # every row a single unit entry: no sparse matrix needed
            for pos in self._positions:
                cols = selection[pos].astype(np.intp)
                if len(np.unique(cols)) == len(cols):
                    maps.append((cols, None, "unique", _block(cols, T.shape[1])[1]))
                else:
                    maps.append((cols, None, "select", _block(cols, T.shape[1])[1]))
            self.__dict__["_maps_cache"] = (T, maps)
            return maps
        import scipy.sparse

        sparse = scipy.sparse.csr_matrix(T)
        for pos in self._positions:
            sub = sparse[pos]
            nnz_rows = np.diff(sub.indptr)
            if np.all(nnz_rows == 1) and np.all(sub.data == 1.0):
                cols = sub.indices.astype(np.intp)
                if len(np.unique(cols)) == len(cols):
                    maps.append((cols, None, "unique", _block(cols, T.shape[1])[1]))
                else:
                    maps.append((cols, None, "select", _block(cols, T.shape[1])[1]))
                continue
            cols = np.unique(sub.indices).astype(np.intp)
            t_g = sub[:, cols].toarray()
            maps.append((cols, t_g, "dense", _block(cols, T.shape[1])[1]))
        self.__dict__["_maps_cache"] = (T, maps)
        return maps


def _block(positions: np.ndarray, size: int) -> tuple:
    """Indices of a vector segment and a matrix block at the given positions of a vector of
    ``size`` and a ``size x size`` matrix: slices when the positions are consecutive and
    increasing (a view), else the positions and the block's flat positions in the matrix
    (:func:`_add_block`)."""
    if len(positions) and np.array_equal(positions,
                                         np.arange(positions[0], positions[0] + len(positions))):
        segment = slice(int(positions[0]), int(positions[0]) + len(positions))
        return segment, (segment, segment)
    return positions, (positions[:, None] * size + positions[None, :]).ravel()


def _add_block(matrix: np.ndarray, block, values: np.ndarray) -> None:
    """``matrix[block] += values`` for a block of :func:`_block`: a view, or an unbuffered sum
    at flat positions (repeated positions add up), several times cheaper than an ``ix_``
    block."""
    if isinstance(block, tuple):
        matrix[block] += values
    else:
        np.add.at(matrix.reshape(-1), block, values.reshape(-1))


def observed_hessian(problem: "Problem", z: np.ndarray) -> Optional[np.ndarray]:
    """Analytic observed Hessian of the objective in z (None if a loss has no Hessian or the
    implied covariance matrix is not positive definite there)."""
    if not problem.has_hessian:
        return None
    f, _, hess = problem.derivatives(z, hessian=True)
    return hess if np.isfinite(f) else None


#: largest |gradient| at which Newton steps with the analytic Hessian replace Fisher scoring
NEWTON_SWITCH = 1e-1
#: largest |gradient| from which a Newton step is expected to converge: the next point gets
#: only a gradient (its Hessian would not be used)
NEWTON_REUSE = 1e-4
#: largest |gradient| at which BFGS updates start (losses without an analytic Hessian)
BFGS_SWITCH = 1e-2
#: scoring iterations after which a search that has not converged is handed to L-BFGS-B
STALL_ITERATIONS = 100


@single_threaded_blas
def optimize(problem: Problem, z0: np.ndarray, *, max_iter: int = 500, tol: float = 1e-8,
             final_information: bool = False) -> OptimizationResult:
    """Minimise the discrepancy.

    Fisher scoring with step halving while far from the solution (Lee & Jennrich 1979); once
    the gradient is small, Newton steps with the analytic observed Hessian
    (:meth:`Problem.derivatives` with ``hessian=True``), which converge quadratically where Fisher scoring is only
    linear for misfitting models.  Losses without an analytic Hessian use a BFGS update seeded
    with the Fisher information instead (Nocedal & Wright 2006, ch. 6).  Models with bounds use
    L-BFGS-B to find the active set.

    Scoring that has not converged after :data:`STALL_ITERATIONS` iterations (a poor start can
    lead it along a ridge towards absurd values) or whose line search fails is handed to
    L-BFGS-B, started both from ``z0`` and from where scoring stopped; the better end point is
    polished by scoring again.  ``max_iter`` is respected: reaching it ends the search.
    ``final_information``: evaluate the expected information at the solution (returned as
    ``OptimizationResult.information``) when the caller's standard errors use it.
    """
    if problem.pmap.general is not None:  # nonlinear / inequality constraints
        from .constrained import optimize_constrained
        return optimize_constrained(problem, z0, max_iter=max_iter, tol=tol,
                                    unconstrained=lambda: _without_general(problem, z0,
                                                                           max_iter, tol))
    if problem.pmap.has_bounds:
        return _optimize_active_set(problem, z0, max_iter=max_iter, tol=tol)
    first = _scoring(problem, z0, max_iter=min(max_iter, STALL_ITERATIONS), tol=tol,
                     final_information=final_information)
    if first.converged or first.iterations >= max_iter:
        return first
    best = first
    for start in (z0, first.z):
        candidate = _optimize_bounded(problem, start, tol, max_iter - first.iterations)
        if np.isfinite(candidate.fmin) and candidate.fmin < best.fmin:
            best = candidate
    if best is first:
        return first
    polished = _scoring(problem, best.z, max_iter=min(max_iter, STALL_ITERATIONS), tol=tol,
                        final_information=final_information)
    result = polished if polished.converged or polished.fmin <= best.fmin else best
    result.iterations = first.iterations + best.iterations + (
        polished.iterations if result is polished else 0)
    return result


def _without_general(problem: Problem, z0: np.ndarray, max_iter: int,
                     tol: float) -> Optional[np.ndarray]:
    """The solution without the general constraints (bounds kept), or None if that search
    does not converge: the usual start of :func:`.constrained.optimize_constrained`."""
    import copy

    sub = copy.copy(problem)
    sub.pmap = copy.copy(problem.pmap)
    sub.pmap.general = None
    result = optimize(sub, z0, max_iter=max_iter, tol=tol)
    return result.z if result.converged and np.isfinite(result.fmin) else None


def _scoring(problem: Problem, z0: np.ndarray, *, max_iter: int, tol: float,
             final_information: bool = False) -> OptimizationResult:
    """Fisher scoring, then Newton (or BFGS) steps, with step halving (see :func:`optimize`)."""
    z = np.asarray(z0, float).copy()
    # multi-group problems: block-arrow curvature matrices (solves linear in the groups);
    # BFGS (losses without a Hessian) updates a dense matrix
    analytic = problem.has_hessian
    structured = problem.block_layout() is not None
    f, grad, info = problem.start(z, structured=structured)
    info_at = z  # where ``info`` was computed
    message = "maximum number of iterations reached"
    converged = False
    it = 0
    bfgs = None  # BFGS approximation of the Hessian, once close (losses without a Hessian)
    hess = None  # analytic Hessian at z, requested with the gradient once it is small
    newton = None  # the last positive-definite analytic Hessian
    max_grad = _max_abs(grad)
    for it in range(1, max_iter + 1):
        # a Newton step when the Hessian at z is positive definite (its Cholesky solve)
        step = None if hess is None else _positive_definite_solve(hess, grad)
        if step is not None:
            newton = hess
        else:
            if hess is None and newton is not None and max_grad < NEWTON_REUSE:
                curvature = newton  # at the last step the previous Hessian is as good
            elif bfgs is not None:
                curvature = bfgs
            else:
                curvature = info
            step = _solve(curvature, grad)
        descent = step @ grad  # not finite when the step is not
        if not (math.isfinite(descent) and descent > 0):
            bfgs = None
            step = np.linalg.lstsq(_dense(info), grad, rcond=None)[0]
        # the curvature wanted at the next point: the analytic Hessian once the gradient is
        # small (Newton), else the information (Fisher scoring); after the Newton step that
        # should end the search (quadratic convergence) only the gradient, or with
        # ``final_information`` the information (the standard errors' at the solution); none
        # for BFGS
        if analytic:
            last = newton is not None and max_grad < NEWTON_REUSE
            kind = {"hessian": max_grad < NEWTON_SWITCH and not last,
                    "info": max_grad >= NEWTON_SWITCH or (last and final_information)}
        else:
            near = max_grad < BFGS_SWITCH
            kind = {"hessian": False, "info": not near or bfgs is None}
        # full step first (its derivatives are needed anyway), then step halving
        z_new = z - step
        f_new, grad_new, curv_new = problem.derivatives(z_new, structured=structured, **kind)
        alpha = 1.0
        while not (np.isfinite(f_new) and f_new <= f + 1e-14 * max(1.0, abs(f))):
            alpha *= 0.5
            if alpha < 1e-10:
                break
            z_new = z - alpha * step
            f_new = problem.objective(z_new)
            if np.isfinite(f_new) and f_new <= f + 1e-14 * max(1.0, abs(f)):
                f_new, grad_new, curv_new = problem.derivatives(z_new, structured=structured,
                                                                **kind)
                break
        if alpha < 1e-10:
            message = "line search failed"
            break
        hess = curv_new if kind["hessian"] else None
        if not analytic and max_grad < BFGS_SWITCH:
            bfgs = _bfgs_update(bfgs if bfgs is not None else _dense(info), z_new - z, grad_new - grad)
        z, f, grad = z_new, f_new, grad_new
        if kind["info"]:
            info, info_at = curv_new, z
        max_grad = _max_abs(grad)
        if max_grad < tol:
            converged = True
            message = "converged"
            break
    max_grad = _max_abs(grad)
    if not converged and max_grad < 1e-6:
        converged = True
        message = "converged (gradient below 1e-6)"
    return OptimizationResult(z, f, converged, it, message, max_grad,
                              information=info if info_at is z else None)


def _max_abs(vector: np.ndarray) -> float:
    """The largest absolute entry (0 for an empty vector)."""
    return float(max(vector.max(), -vector.min())) if vector.size else 0.0


def _dense(matrix) -> np.ndarray:
    return matrix.to_dense() if isinstance(matrix, BlockArrow) else matrix


def _positive_definite_solve(curvature, grad: np.ndarray) -> Optional[np.ndarray]:
    """``curvature^-1 grad`` by a Cholesky factorisation (block-arrow matrices by their block
    factorisation, :mod:`.structured`), or None when ``curvature`` is not positive
    definite."""
    if isinstance(curvature, BlockArrow):
        return curvature.solve(grad)
    return spd_solve(curvature, grad)


def _solve(curvature, grad: np.ndarray) -> np.ndarray:
    """The step ``curvature^-1 grad``: by Cholesky when positive definite
    (:func:`_positive_definite_solve`), else by LU on the dense matrix, least squares when
    singular."""
    step = _positive_definite_solve(curvature, grad)
    if step is not None:
        return step
    curvature = _dense(curvature)
    try:
        return np.linalg.solve(curvature, grad)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(curvature, grad, rcond=None)[0]


def _bfgs_update(hess: np.ndarray, s_k: np.ndarray, y_k: np.ndarray) -> Optional[np.ndarray]:
    """BFGS update of a Hessian approximation (None when the curvature condition fails)."""
    sy = s_k @ y_k
    if sy <= 1e-16:
        return None
    hs = hess @ s_k
    return hess + np.outer(y_k, y_k) / sy - np.outer(hs, hs) / (s_k @ hs)


def _optimize_active_set(problem: Problem, z0: np.ndarray, max_iter: int, tol: float) -> OptimizationResult:
    """Bounds: L-BFGS-B finds the active set, then the free coordinates are polished by the
    unbounded optimizer with the active ones held at their bounds (so the estimates reach the
    same precision as in unbounded models)."""
    import copy

    first = _optimize_bounded(problem, z0, tol, max_iter)
    z = first.z
    pmap = problem.pmap
    _, grad, _ = problem.derivatives(z, info=False)
    at_lower = (z <= pmap.lower + 1e-8) & (grad > 0)
    at_upper = (z >= pmap.upper - 1e-8) & (grad < 0)
    active = at_lower | at_upper
    z_fixed = np.where(at_lower, pmap.lower, np.where(at_upper, pmap.upper, z))
    if not active.any():
        sub_map = copy.copy(pmap)
        sub_map.lower = np.full(pmap.n_z, -np.inf)
        sub_map.upper = np.full(pmap.n_z, np.inf)
    else:
        sub_map = copy.copy(pmap)
        sub_map.offset = pmap.offset + pmap.T[:, active] @ z_fixed[active]
        sub_map.T = pmap.T[:, ~active]
        sub_map.lower = np.full(sub_map.T.shape[1], -np.inf)
        sub_map.upper = np.full(sub_map.T.shape[1], np.inf)
    sub_map.__dict__.pop("_is_identity", None)  # T changed: recompute the cached flag
    sub = copy.copy(problem)
    sub.pmap = sub_map
    res = optimize(sub, z_fixed[~active], max_iter=max_iter, tol=tol)
    z_full = z_fixed.copy()
    z_full[~active] = res.z
    inside = np.all(z_full >= pmap.lower - 1e-8) and np.all(z_full <= pmap.upper + 1e-8)
    if not inside:
        first.active = active
        return first
    return OptimizationResult(z_full, res.fmin, res.converged, first.iterations + res.iterations,
                              res.message, res.max_gradient, active)


def _optimize_bounded(problem: Problem, z0: np.ndarray, tol: float,
                      max_iter: int) -> OptimizationResult:
    """L-BFGS-B within the bounds, for at most ``max_iter`` iterations (the caller's budget)."""
    bounds = list(zip(problem.pmap.lower, problem.pmap.upper))
    bounds = [(None if not np.isfinite(lo) else lo, None if not np.isfinite(hi) else hi)
              for lo, hi in bounds]
    z0 = np.clip(z0, [b[0] if b[0] is not None else -np.inf for b in bounds],
                 [b[1] if b[1] is not None else np.inf for b in bounds])

    def fun(z):
        try:
            f, g, _ = problem.derivatives(z, info=False)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(z)
        if not np.isfinite(f):
            return 1e10, np.zeros_like(z)
        return f, g

    import scipy.optimize

    res = scipy.optimize.minimize(fun, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"maxiter": max(int(max_iter), 1), "ftol": 1e-15, "gtol": 1e-10,
                                           "maxcor": 30})
    f, grad, _ = problem.derivatives(res.x)
    # projected gradient: components at an active bound do not count
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds])
    free = ~(((res.x <= lo + 1e-10) & (grad > 0)) | ((res.x >= hi - 1e-10) & (grad < 0)))
    max_grad = float(np.max(np.abs(grad[free]))) if free.any() else 0.0
    converged = max_grad < 1e-5
    return OptimizationResult(res.x, f, converged, int(res.nit), str(res.message), max_grad)
