"""Estimation under nonlinear equality and general inequality constraints.

Models whose constraints the linear reparameterisation of :mod:`sem_models.model.constraints`
cannot absorb (``a == b*c``, ``b4^2 == 4*b3*b5``, ``b > c``) are minimised here; every other
model keeps the unconstrained fast path of :mod:`.optimizer`.

The method is an active-set reduced-gradient (feasible-path) Newton method (Gill, Murray &
Wright 1981, *Practical Optimization*, sections 5.2 and 6.3; Nocedal & Wright 2006, ch. 15.5,
18.1):

* the equality constraints and the inequalities in the working (active) set define a manifold
  ``c_A(z) = 0``; every iterate lies on it (restored after each step by minimum-norm Newton
  steps ``z <- z - J^+ c``), so the line search needs only the objective;
* the step is ``d = Z p`` with ``Z`` an orthonormal basis of the null space of the Jacobian
  ``J_A`` and ``(Z' W Z) p = -Z' g``, where ``W`` is the expected information (Fisher scoring)
  far from the solution and the Hessian of the Lagrangian
  ``H_f + sum_i nu_i d2c_i`` (analytic Hessian of the loss, second derivatives of the
  constraints from their analytic gradients) close to it, which gives quadratic convergence;
  ``nu`` are the least-squares Lagrange multipliers ``g + J_A' nu = 0``;
* an inactive inequality that a step would cross enters the working set at the point where it
  becomes binding; an active inequality whose multiplier has the wrong sign (the loss falls when
  moving into the feasible interior) leaves it.

Inequality constraints are lavaan's ``cin`` (``g(x) >= 0``); the box bounds of single
parameters (``a > 0``, ``lower()`` / ``upper()``) are linear inequalities in z here.

:func:`linearised_problem` turns the solution into a problem with a local linear parameter map
``theta = theta_hat + T Z w`` whose columns span the tangent space of the active constraints:
standard errors computed from it equal lavaan's augmented-information inverse (the top-left
block of ``[[I + H'H, H'], [H, 0]]^+`` with H the Jacobian of the active constraints; Aitchison &
Silvey 1958; lavaan's ``lav_model_information_augment_invert``), and every robust or scaled
statistic downstream sees the constraints without knowing about them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..model.constraints import ParameterMap
from .optimizer import NEWTON_SWITCH, OptimizationResult, Problem

__all__ = ["ConstrainedResult", "optimize_constrained", "linearised_problem",
           "INACTIVE_SLACK"]

#: an inequality with slack above this value counts as inactive for the standard errors
#: (lavaan's ``nlminb.constr``: ``slack = 1e-05``)
INACTIVE_SLACK = 1e-5
#: largest constraint violation accepted on the manifold (absolute)
FEASIBILITY_TOL = 1e-11


@dataclass
class ConstrainedResult(OptimizationResult):
    """:class:`~.optimizer.OptimizationResult` with the state of the constraints at the end."""

    equality_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inequality_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    working_set: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    multipliers: np.ndarray = field(default_factory=lambda: np.zeros(0))


class _Constraints:
    """Equalities h(z) = 0 and inequalities g(z) >= 0 (general ones, then box bounds) in z."""

    def __init__(self, pmap: ParameterMap):
        self.general = pmap.general
        n = pmap.n_z
        lo = np.flatnonzero(np.isfinite(pmap.lower))
        hi = np.flatnonzero(np.isfinite(pmap.upper))
        self.box_index = np.concatenate([lo, hi]).astype(int)
        self.box_sign = np.concatenate([np.ones(len(lo)), -np.ones(len(hi))])
        self.box_bound = np.concatenate([pmap.lower[lo], pmap.upper[hi]])
        soft = pmap.soft if pmap.soft is not None else np.zeros(n, bool)
        self.n_general_in = self.general.n_in if self.general is not None else 0
        #: per inequality: from lower() / upper() only (not a constraint for inference)
        self.soft = np.concatenate([np.zeros(self.n_general_in, bool), soft[self.box_index]])
        self.n = n
        self.n_eq = self.general.n_eq if self.general is not None else 0
        self.n_in = self.n_general_in + len(self.box_index)

    def equality(self, z):
        if self.n_eq == 0:
            return np.zeros(0), np.zeros((0, self.n))
        return self.general.equality(z)

    def inequality(self, z):
        parts_v, parts_j = [], []
        if self.n_general_in:
            v, j = self.general.inequality(z)
            parts_v.append(v)
            parts_j.append(j)
        if len(self.box_index):
            parts_v.append(self.box_sign * (z[self.box_index] - self.box_bound))
            jac = np.zeros((len(self.box_index), self.n))
            jac[np.arange(len(self.box_index)), self.box_index] = self.box_sign
            parts_j.append(jac)
        if not parts_v:
            return np.zeros(0), np.zeros((0, self.n))
        return np.concatenate(parts_v), np.vstack(parts_j)

    def active(self, z, working: np.ndarray):
        """Values and Jacobian of the equalities and the inequalities in ``working``."""
        h, jh = self.equality(z)
        if len(working):
            g, jg = self.inequality(z)
            return np.concatenate([h, g[working]]), np.vstack([jh, jg[working]])
        return h, jh

    def weighted_hessian(self, z, nu: np.ndarray, working: np.ndarray) -> np.ndarray:
        if self.general is None:
            return np.zeros((self.n, self.n))
        w_eq = nu[:self.n_eq]
        w_in = np.zeros(self.n_general_in)
        for k, j in enumerate(working):
            if j < self.n_general_in:
                w_in[j] = nu[self.n_eq + k]
        if not (np.any(w_eq) or np.any(w_in)):
            return np.zeros((self.n, self.n))
        return self.general.weighted_hessian(z, w_eq, w_in)


def _null_space(J: np.ndarray, n: int) -> np.ndarray:
    if J.shape[0] == 0:
        return np.eye(n)
    import scipy.linalg
    return scipy.linalg.null_space(J, rcond=1e-10)


def _restore(cons: _Constraints, z: np.ndarray, working: np.ndarray,
             max_steps: int = 60) -> Optional[np.ndarray]:
    """Minimum-norm Newton steps back onto ``c_A(z) = 0`` (None when they do not get there)."""
    z = z.copy()
    previous = np.inf
    for _ in range(max_steps):
        c, J = cons.active(z, working)
        if not len(c):
            return z
        viol = float(np.max(np.abs(c))) if len(c) else 0.0
        if not np.isfinite(viol):
            return None
        if viol <= FEASIBILITY_TOL * max(1.0, float(np.max(np.abs(z)))):
            return z
        if viol > 0.999 * previous and viol > 1e-8:
            return None  # no progress (singular Jacobian, infeasible)
        previous = viol
        step = np.linalg.lstsq(J, -c, rcond=None)[0]
        if not np.all(np.isfinite(step)):
            return None
        z = z + step
    c, _ = cons.active(z, working)
    return z if float(np.max(np.abs(c))) <= 1e-9 else None


def _feasible_start(cons: _Constraints, z: np.ndarray) -> tuple[Optional[np.ndarray], np.ndarray]:
    """A point on the equalities with every inequality satisfied, starting from ``z``: the
    violated inequalities join the working set until the restored point satisfies all."""
    working = np.zeros(0, int)
    g, _ = cons.inequality(z)
    working = np.flatnonzero(g < 0)
    for _ in range(cons.n_in + 1):
        zr = _restore(cons, z, working)
        if zr is None:
            return None, working
        g, _ = cons.inequality(zr)
        viol = np.setdiff1d(np.flatnonzero(g < -FEASIBILITY_TOL * 10), working)
        if not len(viol):
            return zr, working
        working = np.union1d(working, viol).astype(int)
        z = zr
    return None, working


def _minimise(problem: Problem, cons: _Constraints, z: np.ndarray, working: np.ndarray, *,
              max_iter: int, tol: float) -> ConstrainedResult:
    analytic = problem.has_hessian
    f, grad, info = problem.start(z)
    message = "maximum number of iterations reached"
    converged = False
    it = 0
    nu = np.zeros(0)
    reduced = np.inf
    released: dict[int, int] = {}
    for it in range(1, max_iter + 1):
        c, J = cons.active(z, working)
        Z = _null_space(J, cons.n)
        nu = np.linalg.lstsq(J.T, -grad, rcond=None)[0] if len(c) else np.zeros(0)
        rg = Z.T @ grad
        reduced = float(np.max(np.abs(rg))) if rg.size else 0.0
        if reduced < tol:
            # a working inequality whose multiplier has the wrong sign leaves the set
            nu_in = nu[cons.n_eq:]
            wrong = np.flatnonzero(nu_in > max(10 * tol, 1e-9))
            if len(wrong):
                k = wrong[np.argmax(nu_in[wrong])]
                j = int(working[k])
                released[j] = released.get(j, 0) + 1
                if released[j] <= 5:
                    working = np.delete(working, k)
                    continue
            converged = True
            message = "converged"
            break
        W = None
        if analytic and reduced < NEWTON_SWITCH:
            _, _, hess = problem.derivatives(z, info=False, hessian=True)
            if hess is not None:
                W = hess + cons.weighted_hessian(z, nu, working)
        p = None
        for curvature in ([W, info] if W is not None else [info]):
            M = Z.T @ curvature @ Z
            try:
                np.linalg.cholesky(M)
            except np.linalg.LinAlgError:
                continue
            p = np.linalg.solve(M, -rg)
            break
        if p is None:
            p = np.linalg.lstsq(Z.T @ info @ Z + 1e-8 * np.eye(Z.shape[1]), -rg, rcond=None)[0]
        d = Z @ p
        if grad @ d >= 0:
            d = -Z @ rg  # steepest descent on the manifold
        # inactive inequalities that the (linearised) step would cross
        alpha_max, blocking = 1.0, None
        if cons.n_in:
            gv, gj = cons.inequality(z)
            slope = gj @ d
            for j in np.setdiff1d(np.arange(cons.n_in), working):
                if slope[j] < 0:
                    a = max(gv[j], 0.0) / -slope[j]
                    if a < alpha_max:
                        alpha_max, blocking = a, int(j)
        alpha = alpha_max
        accepted = False
        while alpha > 1e-12:
            trial_working = working if (blocking is None or alpha < alpha_max) else \
                np.union1d(working, [blocking]).astype(int)
            zt = _restore(cons, z + alpha * d, trial_working)
            if zt is not None:
                if cons.n_in:
                    gt, _ = cons.inequality(zt)
                    outside = np.setdiff1d(np.flatnonzero(gt < -1e-9), trial_working)
                else:
                    outside = ()
                if not len(outside):
                    ft = problem.objective(zt)
                    if np.isfinite(ft) and ft <= f + 1e-14 * max(1.0, abs(f)):
                        accepted = True
                        break
            alpha *= 0.5
        if not accepted:
            if reduced < 1e-6:
                converged = True
                message = "converged (reduced gradient below 1e-6)"
            else:
                message = "line search failed"
            break
        working = trial_working
        z = zt
        f, grad, info = problem.derivatives(z)
    h, _ = cons.equality(z)
    g, _ = cons.inequality(z)
    return ConstrainedResult(z, f, converged, it, message, reduced, None, h, g,
                             np.asarray(working, int), nu)


def optimize_constrained(problem: Problem, z0: np.ndarray, *, max_iter: int = 500,
                         tol: float = 1e-8, unconstrained=None) -> ConstrainedResult:
    """Minimise the discrepancy subject to the general constraints of ``problem.pmap`` (and
    its box bounds).  Tried from the unconstrained solution (``unconstrained``: a callable
    giving it, or None) and from ``z0``; the converged end point with the lower objective wins."""
    cons = _Constraints(problem.pmap)
    starts = []
    if unconstrained is not None:
        try:
            free = unconstrained()
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            free = None
        if free is not None and np.all(np.isfinite(free)):
            starts.append(free)
    starts.append(np.asarray(z0, float))
    best: Optional[ConstrainedResult] = None
    for start in starts:
        z, working = _feasible_start(cons, start)
        if z is None or not np.isfinite(problem.objective(z)):
            continue
        try:
            res = _minimise(problem, cons, z, working, max_iter=max_iter, tol=tol)
        except (FloatingPointError, np.linalg.LinAlgError):
            continue
        if best is None or (res.converged and not best.converged) or (
                res.converged == best.converged and res.fmin < best.fmin - 1e-12):
            best = res
        if best.converged and start is starts[0] and len(starts) > 1:
            # the unconstrained solution is the usual start; z0 is a second opinion only
            # when the first search did not converge
            break
    if best is None:
        from ..errors import EstimationError
        gc = problem.pmap.general
        texts = [f.text for f in gc.equalities + gc.inequalities]
        raise EstimationError(
            f"no parameter values were found that satisfy the constraints {texts} with a "
            "positive definite implied covariance matrix (searched from the start values and "
            "from the unconstrained solution): check that the constraints can hold together, "
            "or give start values that satisfy them with start()")
    return best


def linearised_problem(problem: Problem, result: ConstrainedResult
                       ) -> tuple[Problem, OptimizationResult]:
    """The fitted problem re-expressed with a local linear map around the solution:
    ``theta_free = theta_hat + T Z w`` (w = 0 at the solution), Z an orthonormal basis of the
    null space of the Jacobian of the equalities and of the inequalities lavaan counts as
    active (slack <= :data:`INACTIVE_SLACK`; bounds from ``lower()`` / ``upper()`` never).

    ``npar_extra`` of the new map counts the active inequalities: lavaan does not subtract
    them from the number of free parameters (df), while the SEs treat them as equalities."""
    pmap = problem.pmap
    cons = _Constraints(pmap)
    z = result.z
    h, jh = cons.equality(z)
    g, jg = cons.inequality(z)
    counted = np.flatnonzero((g <= INACTIVE_SLACK) & ~cons.soft) if len(g) else \
        np.zeros(0, int)
    J = np.vstack([jh, jg[counted]]) if len(counted) else jh
    Z = _null_space(J, cons.n)
    rank_eq = int(np.linalg.matrix_rank(jh, tol=1e-7 * max(1.0, float(np.abs(jh).max())))) \
        if len(h) else 0
    removed = cons.n - Z.shape[1]
    values = problem.values(z)
    theta = values[pmap.free_rows]
    new_map = copy.copy(pmap)
    new_map.T = pmap.T @ Z
    new_map.offset = theta.copy()
    new_map.lower = np.full(Z.shape[1], -np.inf)
    new_map.upper = np.full(Z.shape[1], np.inf)
    new_map.general = None
    new_map.soft = None
    new_map.n_equality = pmap.n_equality + rank_eq
    new_map.npar_extra = max(removed - rank_eq, 0)
    new_map.__dict__.pop("_is_identity", None)
    new_problem = Problem(problem.model, problem.losses, new_map, values)
    new_result = OptimizationResult(np.zeros(Z.shape[1]), result.fmin, result.converged,
                                    result.iterations, result.message, result.max_gradient,
                                    None)
    new_result.constraints = {
        "equalities": [f.text for f in (pmap.general.equalities if pmap.general else [])],
        "equality_values": h, "inequality_values": g, "active": counted,
        "n_general_inequalities": cons.n_general_in}
    return new_problem, new_result
