"""Equality constraints, bounds and defined parameters on the parameter table.

The free rows of the parameter table are written as an affine function of the vector the
optimizer moves, ``theta_free = offset + T @ z``:

* rows sharing a label (user labels, ``c(a, b)`` labels repeated across groups, and the
  automatic labels of ``group_equal``) are one parameter;
* linear ``==`` constraints ``R x = r`` on those parameters are solved once:
  ``x = x0 + K z`` with ``K`` an orthonormal basis of the null space of ``R``
  (the reparameterisation of Lee & Bentler 1980; lavaan's ``ceq.simple`` does the same);
* simple bounds ``a > c`` / ``a < c`` and ``lower()`` / ``upper()`` modifiers become box
  bounds on z;
* nonlinear ``==`` (``a == b*c``) and inequalities between parameters (``b > c``) stay
  functions of z (``ParameterMap.general``, :mod:`.nonlinear`), handled by
  :mod:`sem_models.estimation.constrained`.

Defined parameters (``:=``) and constraint expressions are evaluated on a dictionary of
label -> value that holds every row's ``label`` and ``plabel`` and the earlier defined names.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from ..errors import ModelError
from .nonlinear import LINEAR, ConstraintFunction, GeneralConstraints, expression_degree
from .partable import ParTable
from .syntax import ModelSyntaxError, compile_expression

__all__ = ["ParameterMap", "build_parameter_map", "label_values", "defined_values",
           "numerical_jacobian"]


def selection_of(T: np.ndarray) -> Optional[np.ndarray]:
    """The column of each row when every row of ``T`` is a single 1 (a map that only selects:
    free rows each equal to one z coordinate), else None."""
    nonzero = T != 0
    if T.size and np.all(nonzero.sum(axis=1) == 1) and np.all(T[nonzero] == 1.0):
        return np.argmax(nonzero, axis=1)
    return None


@dataclass
class ParameterMap:
    free_rows: np.ndarray  # positions (0-based) of the free rows in the parameter table
    T: np.ndarray  # n_free x n_z
    offset: np.ndarray  # n_free
    lower: np.ndarray  # n_z
    upper: np.ndarray  # n_z
    n_equality: int  # number of equality restrictions (labels and ==)
    #: nonlinear ``==`` and inequalities between parameters (:mod:`.nonlinear`), or None
    general: Optional[GeneralConstraints] = None
    #: per z: its bounds come only from ``lower()`` / ``upper()`` modifiers (an estimate at
    #: such a bound keeps its standard error, as in lavaan); None when there are none
    soft: Optional[np.ndarray] = None
    #: free parameters lavaan counts that z does not move (inequalities active at a solution,
    #: see :func:`sem_models.estimation.constrained.linearised_problem`)
    npar_extra: int = 0

    @property
    def n_z(self) -> int:
        return self.T.shape[1]

    def theta_free(self, z: np.ndarray) -> np.ndarray:
        cols = self.selection
        if cols is not None:  # T only selects: no dense product
            return self.offset + np.asarray(z, float)[cols]
        return self.offset + self.T @ z

    def z_from_free(self, theta_free: np.ndarray) -> np.ndarray:
        """Least-squares z for given free-row values.  When T only selects (each row a single
        unit entry: shared labels) that is the mean over the rows of each z coordinate, in
        O(n_free) instead of a dense least-squares solve."""
        cols = self.selection
        if cols is not None:
            resid = np.asarray(theta_free, float) - self.offset
            counts = np.bincount(cols, minlength=self.n_z)
            return np.bincount(cols, weights=resid, minlength=self.n_z) / np.maximum(counts, 1)
        return np.linalg.lstsq(self.T, theta_free - self.offset, rcond=None)[0]

    @property
    def selection(self) -> Optional[np.ndarray]:
        """The z coordinate of each free row when every row of T is a single 1 (else None)."""
        cached = self.__dict__.get("_selection")
        if cached is None or cached[0] is not self.T:
            cached = (self.T, selection_of(self.T))
            self.__dict__["_selection"] = cached
        return cached[1]

    @property
    def is_identity(self) -> bool:
        """True when z is simply the free rows (no shared labels, constraints or offsets)."""
        cached = self.__dict__.get("_is_identity")
        if cached is None:
            T = self.T
            cached = (T.shape[0] == T.shape[1] and not self.offset.any()
                      and np.array_equal(T, np.eye(T.shape[0])))
            self.__dict__["_is_identity"] = cached
        return cached

    @property
    def has_bounds(self) -> bool:
        return bool(np.isfinite(self.lower).any() or np.isfinite(self.upper).any())


def label_values(partable: pd.DataFrame, values: np.ndarray) -> dict:
    """label -> value for every parameter row (user labels and automatic ``.pN.`` labels)."""
    out = {}
    rows = partable["group"].to_numpy() > 0
    for lab, plab, val in zip(partable["label"][rows], partable["plabel"][rows], values[rows]):
        out[plab] = val
        if lab and lab not in out:
            out[lab] = val
    return out


def defined_values(partable: pd.DataFrame, values: np.ndarray) -> dict:
    """Values of labels and of ``:=`` parameters (evaluated in the order they are written)."""
    env = label_values(partable, values)
    for _, row in partable[partable["op"] == ":="].iterrows():
        env[row["lhs"]] = compile_expression(row["rhs"]).evaluate(env)
    return env


def numerical_jacobian(func, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobian of a vector function (Richardson-extrapolated, O(h^4))."""
    x = np.asarray(x, float)
    f0 = np.atleast_1d(func(x))
    jac = np.zeros((f0.size, x.size))
    for k in range(x.size):
        h = step * max(1.0, abs(x[k]))
        e = np.zeros_like(x)
        e[k] = h
        d1 = (np.atleast_1d(func(x + e)) - np.atleast_1d(func(x - e))) / (2 * h)
        d2 = (np.atleast_1d(func(x + 2 * e)) - np.atleast_1d(func(x - 2 * e))) / (4 * h)
        jac[:, k] = (4 * d1 - d2) / 3
    return jac


def _row_error(row: dict, message: str) -> ModelSyntaxError:
    return ModelSyntaxError(message, int(row.get("line", 0) or 0), int(row.get("col", 0) or 0))


def build_parameter_map(partable: ParTable, allow_general: bool = False) -> ParameterMap:
    """Reduce the free rows to the vector z the optimizer moves (labels, ``==``, bounds).

    Linear ``==`` constraints are solved once (``x = x0 + K z``); single-parameter bounds
    (``a > 0``, ``lower()`` / ``upper()`` modifiers) become box bounds on z.  Nonlinear ``==``
    constraints and inequalities between parameters (or nonlinear ones) cannot be absorbed
    that way: with ``allow_general=True`` they are returned as
    :class:`~sem_models.model.nonlinear.GeneralConstraints` in ``general`` (handled by
    :mod:`sem_models.estimation.constrained`), otherwise they are a :class:`ModelError`.
    Whether a constraint is linear is read off its expression
    (:func:`~sem_models.model.nonlinear.expression_degree`); its coefficients come from the
    analytic gradient (:class:`~sem_models.model.nonlinear.ConstraintFunction`)."""
    free_mask = partable["free"] > 0
    free_rows = np.where(free_mask)[0]
    n_free = len(free_rows)
    # 1. shared labels -> one parameter
    labels = partable["label"].tolist()
    plabels = partable["plabel"].tolist()
    fixed_labels = {}
    for lab, free, ustart in zip(labels, free_mask, partable["ustart"].tolist()):
        if lab and not free:
            fixed_labels[lab] = ustart
    unique_index: dict[str, int] = {}
    col_of_row = np.zeros(n_free, int)
    n_x = 0
    for k, r in enumerate(free_rows):
        lab = labels[r]
        if lab and lab in unique_index:
            col_of_row[k] = unique_index[lab]
            continue
        if lab:
            unique_index[lab] = n_x
        col_of_row[k] = n_x
        n_x += 1

    # label -> x index (for expressions); fixed labels act as constants
    label_to_x = {}
    x_name: dict[int, str] = {}  # a readable name per x (for messages)
    lhs_all, op_all, rhs_all = (partable[c].tolist() for c in ("lhs", "op", "rhs"))
    for k, r in enumerate(free_rows):
        label_to_x.setdefault(plabels[r], col_of_row[k])
        if labels[r]:
            label_to_x.setdefault(labels[r], col_of_row[k])
        x_name.setdefault(int(col_of_row[k]), labels[r] if labels[r] and not
                          labels[r].startswith(".") else
                          f"{lhs_all[r]} {op_all[r]} {rhs_all[r]}".strip())
    bound_rows: dict[int, list] = {}  # x index -> the constraint rows that bound it

    # 2. linear equality constraints (==) and bounds (<, >); the others are general
    ops = partable["op"].tolist()
    is_constraint = np.array([op in ("==", "<", ">") for op in ops])
    R_rows, r_vals = [], []
    lower_x = np.full(n_x, -np.inf)
    upper_x = np.full(n_x, np.inf)
    hard_x = np.zeros(n_x, bool)  # bounded by a constraint row (not only by a modifier)
    cons = partable.records(is_constraint) if is_constraint.any() else []
    defined = {d["lhs"]: d["rhs"] for d in partable.records(np.array(ops) == ":=")} \
        if cons else {}
    general_eq: list[ConstraintFunction] = []
    general_in: list[ConstraintFunction] = []
    free_names = set(label_to_x)
    for row in cons:
        _check_constraint_labels(row, defined, label_to_x, fixed_labels)
        func = ConstraintFunction(row, defined, label_to_x, fixed_labels)
        text = f"'{row['lhs']} {row['op']} {row['rhs']}'"
        degrees = [expression_degree(row[side], free_names, set(fixed_labels), defined)
                   for side in ("lhs", "rhs")]
        if not len(func.involved):
            raise _row_error(row, f"the constraint {text} involves no free parameter (unknown "
                             "label?)")
        if max(degrees) > LINEAR:
            (general_eq if row["op"] == "==" else general_in).append(func)
            continue
        const, grad = func.evaluate(np.zeros(n_x))
        jac = np.zeros(n_x)
        jac[func.involved] = grad
        if not (np.isfinite(const) and np.all(np.isfinite(jac))):
            raise _row_error(row, f"the constraint {text} cannot be evaluated (division by "
                             "zero?)")
        jac = np.where(np.abs(jac) < 1e-12, 0.0, jac)
        if not np.any(jac):
            raise _row_error(row, f"the constraint {text} involves no free parameter (unknown "
                             "label?)")
        if row["op"] == "==":
            R_rows.append(jac)
            r_vals.append(-const)
            continue
        nz = np.flatnonzero(jac)
        if len(nz) != 1:  # a linear inequality between parameters, e.g. 'b > c'
            general_in.append(func)
            continue
        k = nz[0]
        bound = -const / jac[k]
        # func (sign applied) >= 0
        if jac[k] > 0:
            lower_x[k] = max(lower_x[k], bound)
        else:
            upper_x[k] = min(upper_x[k], bound)
        hard_x[k] = True
        bound_rows.setdefault(int(k), []).append(row)
        if lower_x[k] > upper_x[k]:
            given = "; ".join(f"'{c['lhs']} {c['op']} {c['rhs']}' (line {c['line']})"
                              for c in bound_rows[int(k)])
            raise ModelError(
                f"the bounds on {x_name.get(int(k), k)!r} contradict each other: {given} "
                f"leave no value (lower {lower_x[k]:g} > upper {upper_x[k]:g}); correct or "
                "remove one of them")
    if (general_eq or general_in) and not allow_general:
        first = (general_eq + general_in)[0]
        raise _row_error(first.row, f"the constraint '{first.text}' is nonlinear or an "
                         "inequality between parameters; such constraints are supported for "
                         "continuous single-level models (sem/cfa/growth) only")
    if R_rows:
        R = np.array(R_rows)
        r = np.array(r_vals)
        x0 = np.linalg.lstsq(R, r, rcond=None)[0]
        if not np.allclose(R @ x0, r, atol=1e-8 * max(1.0, float(np.abs(r).max()))):
            eqs = [c for c in cons if c["op"] == "=="]
            given = "; ".join(f"'{c['lhs']} == {c['rhs']}' (line {c['line']})" for c in eqs)
            raise ModelError(f"the '==' constraints contradict each other: {given}; no "
                             "parameter values satisfy all of them")
        import scipy.linalg

        K = scipy.linalg.null_space(R)
        K[np.abs(K) < 1e-12] = 0.0
    else:  # K is the identity (not built: n_x^2 entries)
        x0 = np.zeros(n_x)
        K = None
    n_z = K.shape[1] if K is not None else n_x
    # 3. bounds from lower() / upper() modifiers (lavaan ignores them, with a warning, when
    # the model has equality constraints)
    soft_x = _modifier_bounds(partable, free_rows, col_of_row, lower_x, upper_x,
                              n_free - n_z + len(general_eq), x_name)
    lower = np.full(n_z, -np.inf)
    upper = np.full(n_z, np.inf)
    z_bounded: dict[int, list] = {}  # z index -> the bounded x that map onto it
    soft_z = np.zeros(n_z, bool)
    for k in np.flatnonzero(np.isfinite(lower_x) | np.isfinite(upper_x)):
        nz = np.flatnonzero(np.abs(K[k]) > 1e-12) if K is not None else np.array([k])
        if len(nz) != 1:
            if allow_general:  # x_k = x0_k + K_k z is bounded: general linear inequalities
                for value, op in ((lower_x[k], ">"), (upper_x[k], "<")):
                    if np.isfinite(value):
                        general_in.append(_bound_function(k, value, op, x_name, label_to_x,
                                                          bound_rows.get(int(k))))
                continue
            raise ModelError(
                f"the bounded parameter {x_name.get(int(k), k)!r} also takes part in an '==' "
                "constraint; this combination is not supported: bound the parameter it is "
                "set equal to instead, or drop one of the constraints")
        c = K[k, nz[0]] if K is not None else 1.0
        lo, hi = (lower_x[k] - x0[k]) / c, (upper_x[k] - x0[k]) / c
        if c < 0:
            lo, hi = hi, lo
        lower[nz[0]] = max(lower[nz[0]], lo)
        upper[nz[0]] = min(upper[nz[0]], hi)
        z_bounded.setdefault(int(nz[0]), []).append(int(k))
        if lower[nz[0]] > upper[nz[0]] + 1e-12 * max(1.0, abs(lower[nz[0]])):
            tied = [x_name.get(j, j) for j in z_bounded[int(nz[0])]]
            rows = [r for j in z_bounded[int(nz[0])] for r in bound_rows.get(j, [])]
            given = "; ".join(f"'{c['lhs']} {c['op']} {c['rhs']}' (line {c['line']})"
                              for c in rows)
            raise ModelError(
                f"the bounds on {tied} contradict each other once the '==' constraints tie "
                f"these parameters together: {given} leave no value; correct or remove one "
                "of them")
        if soft_x[k] and not hard_x[k]:
            soft_z[nz[0]] = True
    general = GeneralConstraints(general_eq, general_in, x0,
                                 K if K is not None else np.eye(n_x)) \
        if (general_eq or general_in) else None
    # T = P K with P the 0/1 matrix that gives each free row its x: the rows of K (the
    # identity without '==' rows), gathered, not multiplied (P @ K would cost n_free n_x^2)
    if K is None:
        T = np.zeros((n_free, n_x))
        T[np.arange(n_free), col_of_row] = 1.0
    else:
        T = K[col_of_row]
    pmap = ParameterMap(free_rows, T, x0[col_of_row], lower, upper, n_free - n_z,
                        general=general, soft=soft_z if soft_z.any() else None)
    if K is None:  # T only selects: its columns are known (no scan of the dense T)
        pmap.__dict__["_selection"] = (T, col_of_row.astype(np.intp))
    return pmap


def _check_constraint_labels(row: dict, defined: dict, label_to_x: dict,
                             fixed_labels: dict) -> None:
    known = set(label_to_x) | set(fixed_labels) | set(defined)
    for side in ("lhs", "rhs"):
        unknown = [n for n in compile_expression(row[side]).labels if n not in known]
        if unknown:
            raise _row_error(row, f"unknown label(s) {unknown} in the constraint "
                             f"'{row['lhs']} {row['op']} {row['rhs']}'")


def _bound_function(k: int, value: float, op: str, x_name: dict, label_to_x: dict,
                    rows: Optional[list]) -> ConstraintFunction:
    """A bound on x_k written as a constraint function (``name > value``)."""
    name = next(lab for lab, idx in label_to_x.items() if idx == k)
    row = dict(rows[0]) if rows else {"line": 0, "col": 0}
    row.update(lhs=name, op=op, rhs=repr(float(value)))
    return ConstraintFunction(row, {}, label_to_x, {})


def _modifier_bounds(partable: ParTable, free_rows: np.ndarray, col_of_row: np.ndarray,
                     lower_x: np.ndarray, upper_x: np.ndarray, n_equality: int,
                     x_name: dict) -> np.ndarray:
    """Fold the ``lower()`` / ``upper()`` modifiers of the free rows into the x bounds (in
    place); returns the x that got such a bound.  As lavaan 0.6 (``lav_model_estimate``),
    the bounds are not used when the model has equality constraints (a warning says so)."""
    soft = np.zeros(len(lower_x), bool)
    try:
        has_columns = "lower" in partable
    except (KeyError, TypeError, IndexError):  # a table view without __contains__
        has_columns = False
    if not has_columns:
        return soft
    lo = np.asarray(partable["lower"], float)[free_rows]
    hi = np.asarray(partable["upper"], float)[free_rows]
    has = np.isfinite(lo) | np.isfinite(hi)
    if not has.any():
        return soft
    if n_equality:
        names = sorted({x_name.get(int(col_of_row[k]), "") for k in np.flatnonzero(has)})
        warnings.warn(
            f"the lower()/upper() bounds on {names} are not used: as in lavaan, bounds have no "
            "effect in a model with equality constraints (shared labels, '==' or "
            "group_equal); write them as inequality constraints (e.g. 'a > 0') instead",
            UserWarning, stacklevel=4)
        return soft
    for k in np.flatnonzero(has):
        x = int(col_of_row[k])
        lower_x[x] = max(lower_x[x], lo[k])
        upper_x[x] = min(upper_x[x], hi[k])
        soft[x] = True
        if lower_x[x] > upper_x[x]:
            raise ModelError(f"the bounds on {x_name.get(x, x)!r} contradict each other: "
                             f"lower {lower_x[x]:g} > upper {upper_x[x]:g}")
    return soft
