"""Constraint functions of the parameters with analytic Jacobians.

A constraint row of the parameter table (``lhs == rhs``, ``lhs > rhs``, ``lhs < rhs``) is read
as a function of the label-reduced parameter vector x of :mod:`sem_models.model.constraints`:

* ``lhs == rhs``  ->  ``h(x) = lhs - rhs = 0``;
* ``lhs > rhs``   ->  ``g(x) = lhs - rhs >= 0``;  ``lhs < rhs``  ->  ``g(x) = rhs - lhs >= 0``

(the sign convention of lavaan's ``cin`` functions).  Values and gradients are computed by
forward-mode automatic differentiation of the compiled expression (the postfix programs of
:func:`sem_models.model.syntax.compile_expression`): every stack entry carries its value and its
gradient with respect to the few x the constraint involves (directly or through ``:=``
parameters), using the chain rule of each operation (Griewank & Walther 2008, *Evaluating
Derivatives*, ch. 3).  No finite differences: the Jacobian is exact to rounding.

:func:`expression_degree` classifies an expression as constant, linear or nonlinear in the
parameters from its program (no evaluation at random points), which is how
:func:`~sem_models.model.constraints.build_parameter_map` decides between the linear
reparameterisation (``==`` solved once, fast path) and the general constraints handled by
:mod:`sem_models.estimation.constrained`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .expressions import _CALL, _CONST, _NEG, _VAR, _FUNCTIONS
from .syntax import compile_expression

__all__ = ["ConstraintFunction", "GeneralConstraints", "expression_degree", "CONSTANT",
           "LINEAR", "NONLINEAR"]

CONSTANT, LINEAR, NONLINEAR = 0, 1, 2

_LN10 = math.log(10.0)


def _dnorm(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


#: derivative of each function of the expression language: f'(a)
_DERIVATIVE = {
    "exp": np.exp,
    "log": lambda a: 1.0 / a,
    "sqrt": lambda a: 0.5 / np.sqrt(a),
    "abs": np.sign,
    "sin": np.cos,
    "cos": lambda a: -np.sin(a),
    "tan": lambda a: 1.0 / np.cos(a) ** 2,
    "tanh": lambda a: 1.0 - np.tanh(a) ** 2,
    "log10": lambda a: 1.0 / (a * _LN10),
    "pnorm": _dnorm,
}
_FUNCTION_NAME = {id(func): name for name, func in _FUNCTIONS.items()}


def _program_degree(program, degree_of) -> int:
    """Degree (constant / linear / nonlinear) of a postfix program; ``degree_of(name)``
    gives the degree of a name (a free parameter: LINEAR, a fixed label: CONSTANT, a
    defined parameter: its expression's degree)."""
    stack: list[tuple[int, Optional[float]]] = []  # (degree, value when constant)
    for code, arg in program:
        if code == _CONST:
            stack.append((CONSTANT, float(arg)))
        elif code == _VAR:
            stack.append((degree_of(arg), None))
        elif code == _NEG:
            d, v = stack.pop()
            stack.append((d, None if v is None else -v))
        elif code == _CALL:
            d, _ = stack.pop()
            stack.append((CONSTANT if d == CONSTANT else NONLINEAR, None))
        else:
            (d2, v2), (d1, _) = stack.pop(), stack.pop()
            if arg in ("+", "-"):
                d = max(d1, d2)
            elif arg == "*":
                d = d1 + d2 if min(d1, d2) == CONSTANT else NONLINEAR
            elif arg == "/":
                d = d1 if d2 == CONSTANT else NONLINEAR
            else:  # ^
                if d1 == CONSTANT and d2 == CONSTANT:
                    d = CONSTANT
                elif d2 == CONSTANT and v2 is not None and v2 == 1.0:
                    d = d1
                elif d2 == CONSTANT and v2 is not None and v2 == 0.0:
                    d = CONSTANT
                else:
                    d = NONLINEAR
            stack.append((min(d, NONLINEAR), None))
    return stack[0][0]


def expression_degree(text: str, free: set, fixed: set, defined: dict) -> int:
    """CONSTANT, LINEAR or NONLINEAR: how the expression ``text`` depends on the free
    parameters (names in ``free``); ``defined`` maps ``:=`` names to their expression text."""
    memo: dict[str, int] = {}

    def degree_of(name: str) -> int:
        if name in free:
            return LINEAR
        if name in defined:
            if name not in memo:
                memo[name] = CONSTANT  # guards against (rejected earlier) self-reference
                memo[name] = _program_degree(compile_expression(defined[name]).program,
                                             degree_of)
            return memo[name]
        return CONSTANT

    return _program_degree(compile_expression(text).program, degree_of)


class ConstraintFunction:
    """One constraint ``lhs op rhs`` as a function of x with an analytic gradient.

    ``label_to_x`` maps labels (user and ``.pN.`` labels) of free parameters to x indices,
    ``fixed_labels`` labels of fixed parameters to their values, ``defined`` ``:=`` names to
    their expression texts (in order).  ``involved`` lists the x indices the constraint
    depends on; gradients are computed in those coordinates only."""

    def __init__(self, row: dict, defined: dict, label_to_x: dict, fixed_labels: dict):
        self.row = row
        self.op = row["op"]
        self.text = f"{row['lhs']} {row['op']} {row['rhs']}"
        self._lhs = compile_expression(row["lhs"])
        self._rhs = compile_expression(row["rhs"])
        self._defined = {name: compile_expression(text) for name, text in defined.items()}
        self._label_to_x = label_to_x
        self._fixed = fixed_labels
        involved: list[int] = []
        seen: set = set()

        def collect(expr) -> None:
            for name in expr.labels:
                if name in seen:
                    continue
                seen.add(name)
                if name in label_to_x:
                    k = int(label_to_x[name])
                    if k not in involved:
                        involved.append(k)
                elif name in self._defined:
                    collect(self._defined[name])

        collect(self._lhs)
        collect(self._rhs)
        self.involved = np.array(sorted(involved), int)
        position = {int(k): j for j, k in enumerate(self.involved)}
        self._local = {name: position[int(k)] for name, k in label_to_x.items()
                       if int(k) in position}
        # '<' is stored as rhs - lhs >= 0
        self.sign = -1.0 if self.op == "<" else 1.0

    # -- evaluation --------------------------------------------------------------------------
    def _run(self, program, env: dict, m: int, memo: dict):
        """(value, gradient over the involved x) of a postfix program."""
        stack: list = []
        zero = np.zeros(m)
        with np.errstate(all="ignore"):
            for code, arg in program:
                if code == _CONST:
                    stack.append((np.float64(arg), zero))
                elif code == _VAR:
                    stack.append(self._name(arg, env, m, memo))
                elif code == _NEG:
                    v, d = stack.pop()
                    stack.append((-v, -d))
                elif code == _CALL:
                    v, d = stack.pop()
                    name = _FUNCTION_NAME[id(arg)]
                    # np.float64, not float: 1/0 gives inf (then "cannot be evaluated"),
                    # not a ZeroDivisionError (issue 11)
                    stack.append((np.float64(arg(v)), np.float64(_DERIVATIVE[name](v)) * d))
                else:
                    (v2, d2), (v1, d1) = stack.pop(), stack.pop()
                    if arg == "+":
                        stack.append((v1 + v2, d1 + d2))
                    elif arg == "-":
                        stack.append((v1 - v2, d1 - d2))
                    elif arg == "*":
                        stack.append((v1 * v2, v1 * d2 + v2 * d1))
                    elif arg == "/":
                        stack.append((v1 / v2, (d1 * v2 - v1 * d2) / (v2 * v2)))
                    else:  # a^b = exp(b log a)
                        value = np.float64(np.power(v1, v2))
                        grad = v2 * np.power(v1, v2 - 1.0) * d1 if d1.any() else zero
                        if d2.any():
                            grad = grad + value * np.log(v1) * d2
                        stack.append((value, grad))
        return stack[0]

    def _name(self, name: str, env: dict, m: int, memo: dict):
        if name in memo:
            return memo[name]
        if name in self._local:
            grad = np.zeros(m)
            grad[self._local[name]] = 1.0
            out = (np.float64(env[name]), grad)
        elif name in self._defined:
            out = self._run(self._defined[name].program, env, m, memo)
        else:
            out = (np.float64(self._fixed[name]), np.zeros(m))
        memo[name] = out
        return out

    def evaluate(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value of ``sign * (lhs - rhs)`` and its gradient over ``self.involved``."""
        env = {name: x[k] for name, k in self._label_to_x.items()
               if name in self._local}
        m = len(self.involved)
        memo: dict = {}
        lv, lg = self._run(self._lhs.program, env, m, memo)
        rv, rg = self._run(self._rhs.program, env, m, memo)
        return self.sign * (lv - rv), self.sign * (lg - rg)

    def value(self, x: np.ndarray) -> float:
        return self.evaluate(x)[0]

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Gradient over all of x (zeros outside ``involved``)."""
        out = np.zeros(len(x))
        out[self.involved] = self.evaluate(x)[1]
        return out

    def hessian(self, x: np.ndarray, step: float = 1e-5) -> np.ndarray:
        """Hessian over the involved x (central differences of the analytic gradient)."""
        m = len(self.involved)
        H = np.zeros((m, m))
        for j, k in enumerate(self.involved):
            h = step * max(1.0, abs(x[k]))
            xp, xm = x.copy(), x.copy()
            xp[k] += h
            xm[k] -= h
            H[:, j] = (self.evaluate(xp)[1] - self.evaluate(xm)[1]) / (2 * h)
        return 0.5 * (H + H.T)


@dataclass
class GeneralConstraints:
    """Equality and inequality constraints that the linear reparameterisation cannot absorb
    (nonlinear ``==``, inequalities between parameters or nonlinear ones), as functions of the
    optimizer's vector z through ``x = x0 + K z``.

    ``equalities``: ``h_i(x) = 0``; ``inequalities``: ``g_j(x) >= 0``."""

    equalities: list
    inequalities: list
    x0: np.ndarray
    K: np.ndarray

    @property
    def n_eq(self) -> int:
        return len(self.equalities)

    @property
    def n_in(self) -> int:
        return len(self.inequalities)

    def x(self, z: np.ndarray) -> np.ndarray:
        return self.x0 + self.K @ z

    def _stack(self, funcs: Sequence, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.x(z)
        values = np.zeros(len(funcs))
        jac_x = np.zeros((len(funcs), len(x)))
        for i, f in enumerate(funcs):
            v, g = f.evaluate(x)
            values[i] = v
            jac_x[i, f.involved] = g
        return values, jac_x @ self.K

    def equality(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(h(z), dh/dz)``."""
        return self._stack(self.equalities, z)

    def inequality(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(g(z), dg/dz)`` (feasible where g >= 0)."""
        return self._stack(self.inequalities, z)

    def weighted_hessian(self, z: np.ndarray, w_eq: np.ndarray, w_in: np.ndarray) -> np.ndarray:
        """``sum_i w_i d2c_i/dz2`` over the equalities and inequalities (in z)."""
        x = self.x(z)
        H = np.zeros((len(x), len(x)))
        for funcs, weights in ((self.equalities, w_eq), (self.inequalities, w_in)):
            for f, w in zip(funcs, weights):
                if w == 0.0 or not len(f.involved):
                    continue
                H[np.ix_(f.involved, f.involved)] += w * f.hessian(x)
        return self.K.T @ H @ self.K

    def describe(self, kind: str, i: int) -> str:
        funcs = self.equalities if kind == "eq" else self.inequalities
        return funcs[i].text
