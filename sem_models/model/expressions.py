"""Arithmetic expressions of the model syntax (``:=`` right sides, ``==`` / ``<`` / ``>``
constraint sides, Wald constraints): a compiler and a floating-point evaluator.

A small recursive-descent parser (R's operator precedence: ``^`` binds tighter than unary
minus and is right-associative, R Language Definition section 10.4.2) compiles an
expression once into a postfix program, which a stack machine evaluates in floating point.
Nothing is handed to Python's ``eval``: the cost of an evaluation is linear in the length of
the expression (no big integers: ``9^9^9^9`` is ``inf``), nesting is bounded by
:data:`MAX_EXPRESSION_DEPTH`, and only R's decimal number syntax is read (no ``0x10``,
``1_000`` or ``1j``).

Errors are :class:`_ExprError` with the offset in the expression text; the public entry point
:func:`sem_models.model.syntax.compile_expression` turns them into
:class:`~sem_models.model.syntax.ModelSyntaxError` with line and column and caches compiled
expressions.  The opcodes and :data:`_FUNCTIONS` are shared with
:mod:`sem_models.model.nonlinear` (the analytic gradients of constraint functions).
"""
from __future__ import annotations

import math
import re

import numpy as _np

__all__ = ["Expression", "MAX_EXPRESSION_DEPTH", "MAX_EXPRESSION_LENGTH"]

#: deepest nesting of parentheses, function calls, signs and powers in an expression
MAX_EXPRESSION_DEPTH = 64
#: longest expression (characters) in ``:=`` / constraint / Wald statements
MAX_EXPRESSION_LENGTH = 20_000

_EXPR_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>\*\*|[-+*/^(),])
    """,
    re.VERBOSE,
)


class _ExprError(Exception):
    """An expression error at ``offset`` (0-based) in the expression text."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def _pnorm(x):
    from scipy.special import ndtr
    return ndtr(x)


_FUNCTIONS = {
    "exp": _np.exp, "log": _np.log, "sqrt": _np.sqrt, "abs": _np.abs, "sin": _np.sin,
    "cos": _np.cos, "tan": _np.tan, "tanh": _np.tanh, "log10": _np.log10, "pnorm": _pnorm,
}
_BINARY = {"+": _np.add, "-": _np.subtract, "*": _np.multiply, "/": _np.divide,
           "^": _np.power}

# postfix opcodes
_CONST, _VAR, _NEG, _BIN, _CALL = range(5)


class _ExpressionParser:
    """expr := term (('+'|'-') term)*;  term := unary (('*'|'/') unary)*;
    unary := ('+'|'-')* power;  power := primary ('^' unary)?;
    primary := number | name | function '(' expr ')' | '(' expr ')'."""

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        for m in _EXPR_TOKEN_RE.finditer(text):
            if m.start() != pos:
                break
            pos = m.end()
            if m.lastgroup != "ws":
                kind, value = m.lastgroup, m.group()
                if kind == "op" and value == "**":  # R reads ** as ^
                    value = "^"
                self.tokens.append((kind, value, m.start()))
        if pos < len(text):
            raise _ExprError(f"unexpected character {text[pos]!r}", pos)
        for (k1, v1, p1), (k2, v2, p2) in zip(self.tokens, self.tokens[1:]):
            if k1 == "number" and k2 in ("name", "number") and p2 == p1 + len(v1):
                raise _ExprError(f"{v1 + v2!r} is not a number: write numbers as in R "
                                 "(e.g. 16, 1000, 1.5e-3; no 0x10, 1_000 or 1j)", p1)
        self.i = 0
        self.program: list[tuple] = []
        self.names: dict[str, str] = {}

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def deeper(self, depth: int, offset: int) -> int:
        if depth >= MAX_EXPRESSION_DEPTH:
            raise _ExprError(f"the expression is nested too deeply (more than "
                             f"{MAX_EXPRESSION_DEPTH} levels of parentheses, signs or powers)",
                             offset)
        return depth + 1

    def parse(self) -> list[tuple]:
        if not self.tokens:
            raise _ExprError("empty expression", 0)
        self.expr(0)
        kind, value, offset = self.peek()
        if kind != "end":
            raise _ExprError(f"unexpected {value!r}: expected an operator (+ - * / ^)", offset)
        return self.program

    def expr(self, depth: int) -> None:
        self.term(depth)
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            self.term(depth)
            self.program.append((_BIN, op))

    def term(self, depth: int) -> None:
        self.unary(depth)
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take()[1]
            self.unary(depth)
            self.program.append((_BIN, op))

    def unary(self, depth: int) -> None:
        negate = False
        while self.peek()[0] == "op" and self.peek()[1] in ("+", "-"):
            kind, value, offset = self.take()
            depth = self.deeper(depth, offset)  # every sign counts (no unbounded chains)
            negate ^= value == "-"
        self.power(depth)
        if negate:
            self.program.append((_NEG, None))

    def power(self, depth: int) -> None:
        self.primary(depth)
        if self.peek()[0] == "op" and self.peek()[1] == "^":
            offset = self.take()[2]
            self.unary(self.deeper(depth, offset))
            self.program.append((_BIN, "^"))

    def primary(self, depth: int) -> None:
        kind, value, offset = self.take()
        if kind == "number":
            number = float(value)
            if not math.isfinite(number):
                raise _ExprError(f"the number {value} is out of range", offset)
            self.program.append((_CONST, _np.float64(number)))
            return
        if kind == "name":
            if self.peek()[1] == "(" and self.peek()[0] == "op":
                if value not in _FUNCTIONS:
                    raise _ExprError(f"unknown function {value}(); the functions are "
                                     + ", ".join(sorted(_FUNCTIONS)), offset)
                open_offset = self.take()[2]
                self.expr(self.deeper(depth, open_offset))
                self.expect_close(value + "(", open_offset)
                self.program.append((_CALL, _FUNCTIONS[value]))
                return
            self.names.setdefault(value, value)
            self.program.append((_VAR, value))
            return
        if kind == "op" and value == "(":
            self.expr(self.deeper(depth, offset))
            self.expect_close("(", offset)
            return
        if kind == "end":
            raise _ExprError("the expression ends where a number, label or '(' is expected",
                             offset)
        raise _ExprError(f"unexpected {value!r}: expected a number, a label or '('", offset)

    def expect_close(self, what: str, open_offset: int) -> None:
        kind, value, offset = self.take()
        if kind == "op" and value == ",":
            raise _ExprError(f"{what}) takes one argument", offset)
        if not (kind == "op" and value == ")"):
            raise _ExprError(f"missing ')' to close {what!r}", offset)


class Expression:
    """A compiled arithmetic expression over parameter labels (lavaan's ``:=`` right sides
    and constraint sides).

    ``labels`` lists the labels it reads (in order of first use); :meth:`evaluate` computes it
    in floating point (overflow gives ``inf``, invalid operations ``nan``; never an
    exception)."""

    __slots__ = ("text", "program", "labels", "names")

    def __init__(self, text: str, program: list, labels: tuple):
        self.text = text
        self.program = program
        self.labels = labels
        self.names = {name: name for name in labels}  # kept for callers of the old API

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, values: dict):
        """Value for ``values`` (label -> number or array); a missing label is a KeyError."""
        stack: list = []
        push, pop = stack.append, stack.pop
        with _np.errstate(all="ignore"):
            for code, arg in self.program:
                if code == _VAR:
                    push(values[arg])
                elif code == _CONST:
                    push(arg)
                elif code == _BIN:
                    right = pop()
                    push(_BINARY[arg](pop(), right))
                elif code == _NEG:
                    push(_np.negative(pop()))
                else:
                    push(arg(pop()))
        return stack[0]


def _compile(text: str) -> Expression:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise _ExprError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters",
                         0)
    parser = _ExpressionParser(text)
    program = parser.parse()
    expression = Expression(text, program, tuple(parser.names))
    if not expression.labels:  # a constant: it must be a finite number
        value = expression.evaluate({})
        if not _np.isfinite(value):
            raise _ExprError(f"the expression {text!r} evaluates to {value} (not a finite "
                             "number)", 0)
    return expression
