"""Equality constraints, bounds and defined parameters on the parameter table.

The free rows of the parameter table are written as an affine function of the vector the
optimizer moves, ``theta_free = offset + T @ z``:

* rows sharing a label (user labels, ``c(a, b)`` labels repeated across groups, and the
  automatic labels of ``group_equal``) are one parameter;
* linear ``==`` constraints ``R x = r`` on those parameters are solved once:
  ``x = x0 + K z`` with ``K`` an orthonormal basis of the null space of ``R``
  (the reparameterisation of Lee & Bentler 1980; lavaan's ``ceq.simple`` does the same);
* simple bounds ``a > c`` / ``a < c`` become box bounds on z.

Defined parameters (``:=``) and constraint expressions are evaluated on a dictionary of
label -> value that holds every row's ``label`` and ``plabel`` and the earlier defined names.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import pandas as pd

from ..errors import ModelError
from .partable import ParTable
from .syntax import ModelSyntaxError, compile_expression

__all__ = ["ParameterMap", "build_parameter_map", "label_values", "defined_values",
           "numerical_jacobian"]


@dataclass
class ParameterMap:
    free_rows: np.ndarray  # positions (0-based) of the free rows in the parameter table
    T: np.ndarray  # n_free x n_z
    offset: np.ndarray  # n_free
    lower: np.ndarray  # n_z
    upper: np.ndarray  # n_z
    n_equality: int  # number of equality restrictions (labels and ==)

    @property
    def n_z(self) -> int:
        return self.T.shape[1]

    def theta_free(self, z: np.ndarray) -> np.ndarray:
        return self.offset + self.T @ z

    def z_from_free(self, theta_free: np.ndarray) -> np.ndarray:
        return np.linalg.lstsq(self.T, theta_free - self.offset, rcond=None)[0]

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


def build_parameter_map(partable: ParTable) -> ParameterMap:
    """Reduce the free rows to the vector z the optimizer moves (labels, ``==``, bounds)."""
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
    P = np.zeros((n_free, n_x))
    P[np.arange(n_free), col_of_row] = 1.0

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

    # 2. linear equality constraints (==) and bounds (<, >)
    ops = partable["op"].tolist()
    is_constraint = np.array([op in ("==", "<", ">") for op in ops])
    R_rows, r_vals = [], []
    lower_x = np.full(n_x, -np.inf)
    upper_x = np.full(n_x, np.inf)
    cons = partable.records(is_constraint) if is_constraint.any() else []
    defined = partable.records(np.array(ops) == ":=") if cons else []
    for row in cons:
        func = _constraint_function(row, defined, label_to_x, fixed_labels, n_x)
        x_a = np.random.default_rng(1).normal(size=n_x)
        x_b = np.random.default_rng(2).normal(size=n_x)
        jac_a = numerical_jacobian(func, x_a)[0]
        jac_b = numerical_jacobian(func, x_b)[0]
        if not np.allclose(jac_a, jac_b, atol=1e-6):
            raise _row_error(row, f"the constraint '{row['lhs']} {row['op']} {row['rhs']}' is "
                             "nonlinear; only linear constraints are supported")
        if not np.any(np.abs(jac_a) > 1e-9):
            raise _row_error(row, f"the constraint '{row['lhs']} {row['op']} {row['rhs']}' "
                             "involves no free parameter (unknown label?)")
        jac = np.where(np.abs(jac_a) < 1e-9, 0.0, jac_a)
        const = float(func(np.zeros(n_x))[0])
        if row["op"] == "==":
            R_rows.append(jac)
            r_vals.append(-const)
            continue
        nz = np.flatnonzero(jac)
        if len(nz) != 1:
            raise _row_error(row, f"the inequality '{row['lhs']} {row['op']} {row['rhs']}' must "
                             "bound a single parameter by a number")
        k = nz[0]
        bound = -const / jac[k]
        # func = lhs - rhs; '>' means func > 0
        positive = (row["op"] == ">") == (jac[k] > 0)
        if positive:
            lower_x[k] = max(lower_x[k], bound)
        else:
            upper_x[k] = min(upper_x[k], bound)
        bound_rows.setdefault(int(k), []).append(row)
        if lower_x[k] > upper_x[k]:
            given = "; ".join(f"'{c['lhs']} {c['op']} {c['rhs']}' (line {c['line']})"
                              for c in bound_rows[int(k)])
            raise ModelError(
                f"the bounds on {x_name.get(int(k), k)!r} contradict each other: {given} "
                f"leave no value (lower {lower_x[k]:g} > upper {upper_x[k]:g}); correct or "
                "remove one of them")
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
    else:
        x0 = np.zeros(n_x)
        K = np.eye(n_x)
    lower = np.full(K.shape[1], -np.inf)
    upper = np.full(K.shape[1], np.inf)
    for k in np.flatnonzero(np.isfinite(lower_x) | np.isfinite(upper_x)):
        nz = np.flatnonzero(np.abs(K[k]) > 1e-12)
        if len(nz) != 1:
            raise ModelError(
                f"the bounded parameter {x_name.get(int(k), k)!r} also takes part in an '==' "
                "constraint; this combination is not supported: bound the parameter it is "
                "set equal to instead, or drop one of the constraints")
        c = K[k, nz[0]]
        lo, hi = (lower_x[k] - x0[k]) / c, (upper_x[k] - x0[k]) / c
        if c < 0:
            lo, hi = hi, lo
        lower[nz[0]] = max(lower[nz[0]], lo)
        upper[nz[0]] = min(upper[nz[0]], hi)
    return ParameterMap(free_rows, P @ K, P @ x0, lower, upper, n_free - K.shape[1])


def _constraint_function(row: dict, defined: list[dict], label_to_x: dict, fixed_labels: dict,
                         n_x: int):
    lhs = compile_expression(row["lhs"])
    rhs = compile_expression(row["rhs"])
    defs = [(d["lhs"], compile_expression(d["rhs"])) for d in defined]
    known = set(label_to_x) | set(fixed_labels) | {name for name, _ in defs}
    for expr in (lhs, rhs):
        unknown = [n for n in expr.names.values() if n not in known]
        if unknown:
            raise _row_error(row, f"unknown label(s) {unknown} in the constraint "
                             f"'{row['lhs']} {row['op']} {row['rhs']}'")

    def func(x: np.ndarray) -> np.ndarray:
        env = {lab: x[k] for lab, k in label_to_x.items()}
        env.update(fixed_labels)
        for name, expr in defs:
            try:
                env[name] = expr.evaluate(env)
            except KeyError:
                pass
        return np.array([lhs.evaluate(env) - rhs.evaluate(env)], float)

    return func

