"""Model syntax: lavaan's model language parsed into flat statements.

Stage 1 of the pipeline (syntax -> parameter table -> matrices -> estimator -> results).
The grammar follows the lavaan model syntax (Rosseel 2012, J Stat Softw 48(2), section 4 and
``?model.syntax``):

* ``f =~ x1 + x2``   latent variable definition (loadings)
* ``y ~ x1 + x2``    regression; ``y ~ 1`` intercept
* ``x1 ~~ x2``       (residual) variance / covariance
* ``name := expr``   defined parameter
* ``x1 | t1 + t2``   thresholds of an ordered variable (``t1``, ``t2``, ... in order)
* ``x1 ~*~ x1``      scale factor of an ordered variable's latent response (delta)
* ``expr == expr``, ``expr < expr``, ``expr > expr``  constraints

Modifiers precede a right-hand-side variable with ``*``: a number fixes the parameter,
``NA`` frees it, a name labels it, ``start(v)`` gives a start value, ``label("a")`` and
``equal("a")`` label it, and ``c(...)`` gives one modifier per group.  Statements are separated
by new lines or ``;``; a statement continues on the next line when a line ends with an operator
or the next line starts with ``+`` or ``*``.  Comments start with ``#`` or ``!``.

Every syntax error is raised as :class:`ModelSyntaxError` with the line and column.
The arithmetic of ``:=`` and constraints is compiled by :mod:`.expressions`
(:func:`compile_expression`).
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Optional

from ..errors import ModelError
from .expressions import MAX_EXPRESSION_DEPTH, Expression, _compile, _ExprError

__all__ = [
    "ModelSyntaxError",
    "Modifier",
    "Statement",
    "Constraint",
    "ParsedModel",
    "parse_model",
    "compile_expression",
    "Expression",
    "MAX_EXPRESSION_DEPTH",
]

MODEL_OPS = ("=~", "~~", "~", "|", "~*~")
CONSTRAINT_OPS = (":=", "==", "<", ">")


class ModelSyntaxError(ModelError):
    """A model syntax error with the line and column where it was found (both 1-based).

    Also raised for statements that read well but clash: duplicate model elements, a ``:=``
    name that is already a label, an unknown label in ``:=`` or a constraint."""

    def __init__(self, message: str, line: int, column: int, source_line: str = ""):
        self.message = message
        self.line = line
        self.column = column
        self.source_line = source_line
        text = f"model syntax error at line {line}, column {column}: {message}"
        if source_line:
            text += f"\n    {source_line}\n    {' ' * (column - 1)}^"
        super().__init__(text)


@dataclass(slots=True)
class Token:
    kind: str  # name, number, op, plus, star, lparen, rparen, comma, string, newline, semicolon
    text: str
    pos: int  # offset in the source
    line: int
    col: int


#: one scanner for every token, without named groups (faster: Python's ``re`` engine does the
#: character work and fills no group slots): whitespace never matches, so ``finditer`` steps
#: over it, and the last alternative takes any other single character, which is then either
#: a one-character token or the tokenizer's error.  The order of the alternatives decides the
#: text of each token (a number before a name: ``.5`` is a number, ``.p1.`` a name); the kind
#: is read from the text (:func:`_tokenize`).
_TOKEN_RE = re.compile(
    r"""
    [#!][^\n]*                                  # comment (dropped)
  | \n
  | =~|~\*~|~~|:=|==|<=|>=|~|<|>|\|               # operators
  | (?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?          # number
  | [A-Za-z_.][A-Za-z0-9_.]*                    # name
  | "[^"\n]*"|'[^'\n]*'                          # quoted string
  | [^ \t\r\n]                                  # one other character
    """,
    re.VERBOSE,
)
#: kinds of the tokens known by their whole text: one-character tokens and operators
_TEXT_KINDS = {"\n": "newline", "~": "op", "<": "op", ">": "op", "|": "op", "+": "plus",
               "-": "minus", "*": "star", "/": "slash", "^": "caret", "(": "lparen",
               ")": "rparen", ",": "comma", ";": "semicolon", "=~": "op", "~*~": "op",
               "~~": "op", ":=": "op", "==": "op", "<=": "op", ">=": "op"}
#: kinds of the other tokens known by their first character (not ".": ``.5``, ``.a``)
_FIRST_CHAR_KINDS = {**dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_",
                                     "name"),
                     **dict.fromkeys("0123456789", "number"), "#": "comment", "!": "comment"}


def _token_kind(text: str) -> Optional[str]:
    """The kind of a token text :data:`_TOKEN_RE` matched that neither
    :data:`_TEXT_KINDS` nor :data:`_FIRST_CHAR_KINDS` knows, or None for a character no token
    starts with.  ``\\d`` of a ``str`` pattern is Unicode category Nd, as ``str.isdecimal``."""
    first = text[0]
    if first == ".":
        return "number" if len(text) > 1 and text[1].isdecimal() else "name"
    if first.isdecimal():
        return "number"
    if (first == '"' or first == "'") and len(text) > 1:
        return "string"
    return None


def _tokenize(source: str) -> list[Token]:
    """The tokens of ``source`` with their offsets and 1-based lines and columns (spaces,
    tabs, carriage returns and comments dropped)."""
    tokens: list[Token] = []
    append = tokens.append
    text_kind = _TEXT_KINDS.get
    first_char_kind = _FIRST_CHAR_KINDS.get
    line = 1
    line_start = 0
    for m in _TOKEN_RE.finditer(source):
        text = m.group()
        kind = text_kind(text) or first_char_kind(text[0]) or _token_kind(text)
        if kind == "comment":
            continue
        pos = m.start()
        if kind is None:
            raise ModelSyntaxError(f"unexpected character {source[pos]!r}", line,
                                   pos - line_start + 1, _line_text(source, line))
        append(Token(kind, text, pos, line, pos - line_start + 1))
        if kind == "newline":
            line += 1
            line_start = pos + 1
    return tokens


def _line_text(source: str, line: int) -> str:
    lines = source.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


# --------------------------------------------------------------------------------------------
# Parsed objects


@dataclass
class Modifier:
    """What the syntax says about one parameter, per group (lists of length 1 or n_groups).

    ``fixed`` holds a number (fixed), ``None`` (no statement) or ``nan`` (``NA``: free).
    """

    fixed: Optional[list] = None
    label: Optional[list] = None
    start: Optional[list] = None
    equal: bool = False  # the label came from equal("..."): it must name another parameter
    lower: Optional[list] = None  # lower() bounds (-inf: none)
    upper: Optional[list] = None  # upper() bounds (inf: none)

    def merge(self, other: "Modifier") -> "Modifier":
        return Modifier(
            fixed=other.fixed if other.fixed is not None else self.fixed,
            label=other.label if other.label is not None else self.label,
            start=other.start if other.start is not None else self.start,
            equal=other.equal if other.label is not None else self.equal,
            lower=other.lower if other.lower is not None else self.lower,
            upper=other.upper if other.upper is not None else self.upper,
        )


@dataclass
class Statement:
    """One parameter statement ``lhs op rhs`` (``rhs`` is ``""`` for an intercept ``~ 1``)."""

    lhs: str
    op: str  # "=~", "~", "~~", "~1"
    rhs: str
    modifier: Modifier = field(default_factory=Modifier)
    line: int = 0
    col: int = 0
    stmt: int = 0  # index of the statement (line or ';' part) it was written in


@dataclass
class Constraint:
    """A defined parameter (``:=``) or a constraint (``==``, ``<``, ``>``)."""

    lhs: str
    op: str
    rhs: str
    line: int = 0
    col: int = 0


@dataclass
class ParsedModel:
    statements: list[Statement]
    constraints: list[Constraint]
    source: str

    @property
    def n_group_modifiers(self) -> int:
        """Largest length of a ``c(...)`` modifier vector (1 when none is used)."""
        n = 1
        for st in self.statements:
            for values in (st.modifier.fixed, st.modifier.label, st.modifier.start,
                           st.modifier.lower, st.modifier.upper):
                if values is not None:
                    n = max(n, len(values))
        return n


# --------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.tokens = _tokenize(source)

    # -- helpers ---------------------------------------------------------------------------
    def error(self, message: str, token: Optional[Token]) -> ModelSyntaxError:
        if token is None:
            lines = self.source.split("\n")
            line = len(lines)
            col = len(lines[-1]) + 1
        else:
            line, col = token.line, token.col
        return ModelSyntaxError(message, line, col, _line_text(self.source, line))

    def split_statements(self) -> list[list[Token]]:
        """Split the token stream into statements (new line / ';', with continuation).

        A new line continues the statement when the statement so far ends with an operator,
        ``+``, ``*``, ``,``, ``(``, ``-``, ``/`` or ``^``, is inside parentheses, or the next
        token (past blank lines) is ``+``, ``*``, ``)`` or an operator the statement does not
        have yet.  A statement is a slice of the token list (its new lines dropped when it
        spans lines)."""
        statements: list[list[Token]] = []
        toks = self.tokens
        n = len(toks)
        continues_after = _CONTINUES_AFTER
        start = -1  # index of the current statement's first token (-1: no statement open)
        last = None  # the current statement's last token
        spans_lines = has_op = False
        depth = 0
        next_index = 0  # index of the next token that is not a new line (cached over runs)
        for i, tok in enumerate(toks):
            kind = tok.kind
            if kind == "newline" or kind == "semicolon":
                if start < 0:
                    continue
                if kind == "newline":
                    if next_index <= i:
                        next_index = i + 1
                        while next_index < n and toks[next_index].kind == "newline":
                            next_index += 1
                    nxt = toks[next_index].kind if next_index < n else None
                    if (last.kind in continues_after or depth > 0
                            or nxt in ("plus", "star", "rparen")
                            or (nxt == "op" and not has_op)):
                        spans_lines = True
                        continue
                part = toks[start:i]
                statements.append([t for t in part if t.kind != "newline"] if spans_lines
                                  else part)
                start, last, spans_lines, has_op, depth = -1, None, False, False, 0
                continue
            if start < 0:
                start = i
            if kind == "lparen":
                depth += 1
            elif kind == "rparen":
                depth -= 1
            elif kind == "op":
                has_op = True
            last = tok
        if start >= 0:
            part = toks[start:]
            statements.append([t for t in part if t.kind != "newline"] if spans_lines
                              else part)
        return statements

    def parse(self) -> ParsedModel:
        statements: list[Statement] = []
        constraints: list[Constraint] = []
        for index, toks in enumerate(self.split_statements()):
            op_index = next((i for i, t in enumerate(toks) if t.kind == "op"), None)
            if op_index is None:
                raise self.error(
                    "expected an operator (=~, ~, ~~, :=, ==, <, >) in this statement", toks[0]
                )
            op_tok = toks[op_index]
            if op_tok.text in ("<=", ">="):
                raise self.error(f"operator {op_tok.text!r} is not supported; use '<' or '>'",
                                 op_tok)
            if op_index == 0:
                raise self.error(f"expected a left-hand side before {op_tok.text!r}", op_tok)
            if op_index == len(toks) - 1:
                raise self.error(f"expected a right-hand side after {op_tok.text!r}",
                                 _after(op_tok))
            if op_tok.text in CONSTRAINT_OPS:
                constraints.append(self.parse_constraint(toks, op_index))
            else:
                for st in self.parse_model_statement(toks, op_index):
                    st.stmt = index
                    statements.append(st)
        if not statements and not constraints:
            raise ModelSyntaxError("the model syntax is empty", 1, 1)
        return ParsedModel(statements, constraints, self.source)

    def text_between(self, first: Token, last: Token) -> str:
        return self.source[first.pos:last.pos + len(last.text)]

    def parse_constraint(self, toks: list[Token], op_index: int) -> Constraint:
        op_tok = toks[op_index]
        lhs_toks, rhs_toks = toks[:op_index], toks[op_index + 1:]
        extra = next((t for t in rhs_toks if t.kind == "op"), None)
        if extra is not None:
            raise self.error(f"unexpected second operator {extra.text!r}", extra)
        if op_tok.text == ":=":
            if len(lhs_toks) != 1 or lhs_toks[0].kind != "name":
                raise self.error("expected a single new parameter name before ':='", lhs_toks[0])
        lhs = _squash(self.text_between(lhs_toks[0], lhs_toks[-1]))
        rhs = _squash(self.text_between(rhs_toks[0], rhs_toks[-1]))
        what = (f"the definition of {lhs!r}" if op_tok.text == ":="
                else f"the constraint '{lhs} {op_tok.text} {rhs}'")
        for side_toks in (lhs_toks, rhs_toks):
            raw = self.text_between(side_toks[0], side_toks[-1])
            try:
                _compile(raw)
            except _ExprError as exc:
                pos = side_toks[0].pos + exc.offset
                line = self.source.count("\n", 0, pos) + 1
                col = pos - (self.source.rfind("\n", 0, pos) + 1) + 1
                raise ModelSyntaxError(f"{exc.message} in {what}", line, col,
                                       _line_text(self.source, line)) from None
        return Constraint(lhs, op_tok.text, rhs, op_tok.line, op_tok.col)

    def parse_model_statement(self, toks: list[Token], op_index: int) -> list[Statement]:
        op_tok = toks[op_index]
        op = op_tok.text
        lhs_names = self.parse_lhs(toks[:op_index], op_tok)
        terms = self.split_terms(toks[op_index + 1:], op_tok)
        out: list[Statement] = []
        for term in terms:
            modifier, var_tok = self.parse_term(term, op)
            if var_tok.kind == "number":
                if op != "~" or float(var_tok.text) != 1.0:
                    raise self.error(
                        "a number can only stand alone as the intercept '1' after '~'", var_tok)
                for name in lhs_names:
                    out.append(Statement(name, "~1", "", modifier, var_tok.line, var_tok.col))
                continue
            if op == "|" and not re.fullmatch(r"t[1-9][0-9]*", var_tok.text):
                raise self.error(f"thresholds are named t1, t2, ... (found {var_tok.text!r}); "
                                 "e.g. 'x1 | a*t1 + t2'", var_tok)
            if op == "~*~" and any(name != var_tok.text for name in lhs_names):
                raise self.error("a scale factor '~*~' relates a variable to itself "
                                 f"(e.g. '{lhs_names[0]} ~*~ {lhs_names[0]}')", var_tok)
            for name in lhs_names:
                out.append(Statement(name, op, var_tok.text, modifier, var_tok.line,
                                     var_tok.col))
        return out

    def parse_lhs(self, toks: list[Token], op_tok: Token) -> list[str]:
        names = []
        expect_name = True
        for tok in toks:
            if expect_name:
                if tok.kind != "name":
                    raise self.error(
                        f"expected a variable name before {op_tok.text!r}, found {tok.text!r}",
                        tok)
                names.append(tok.text)
                expect_name = False
            else:
                if tok.kind != "plus":
                    raise self.error(
                        f"expected '+' or {op_tok.text!r} after {names[-1]!r}, found "
                        f"{tok.text!r}", tok)
                expect_name = True
        if expect_name:
            raise self.error(f"expected a variable name before {op_tok.text!r}", op_tok)
        return names

    def split_top_level(self, toks: list[Token], sep: str, empty_before: str,
                        statement: bool = False) -> list[list[Token]]:
        """Split ``toks`` at the ``sep`` tokens outside parentheses; an empty part before a
        separator is the error ``empty_before``.  ``statement``: the right-hand side of a
        statement, where an operator and unbalanced parentheses are errors too."""
        parts: list[list[Token]] = []
        depth = 0
        start = 0
        for i, tok in enumerate(toks):
            kind = tok.kind
            if kind == "lparen":
                depth += 1
            elif kind == "rparen":
                depth -= 1
                if statement and depth < 0:
                    raise self.error("unmatched ')'", tok)
            elif kind == sep:
                if depth == 0:
                    if i == start:
                        raise self.error(empty_before, tok)
                    parts.append(toks[start:i])
                    start = i + 1
            elif statement and kind == "op":
                raise self.error(f"unexpected second operator {tok.text!r} in one statement "
                                 "(start a new line or use ';')", tok)
        parts.append(toks[start:])
        if statement and depth > 0:
            raise self.error("missing ')'", toks[-1])
        return parts

    def split_terms(self, toks: list[Token], op_tok: Token) -> list[list[Token]]:
        terms = self.split_top_level(toks, "plus", "expected a variable name before '+'",
                                     statement=True)
        if not terms[-1]:
            raise self.error("expected a variable name after '+'", _after(toks[-1]))
        return terms

    def parse_term(self, toks: list[Token], op: str) -> tuple[Modifier, Token]:
        """A term is ``modifier * modifier * ... * variable``.

        The modifier of a term that parsed before is taken from :data:`_TERM_MODIFIERS`
        (keyed by the texts of the term's tokens, which decide their kinds; only terms that
        parsed without error are kept, so errors and their positions are unchanged)."""
        key = tuple([t.text for t in toks])
        known = _TERM_MODIFIERS.get(key)
        if known is not None:
            return (Modifier(known.fixed, known.label, known.start, known.equal, known.lower,
                             known.upper), toks[-1])
        modifier, var = self._parse_term(toks)
        if len(_TERM_MODIFIERS) >= _TERM_CACHE_SIZE:
            _TERM_MODIFIERS.clear()
        _TERM_MODIFIERS[key] = modifier
        return Modifier(modifier.fixed, modifier.label, modifier.start, modifier.equal,
                        modifier.lower, modifier.upper), var

    def _parse_term(self, toks: list[Token]) -> tuple[Modifier, Token]:
        parts = self.split_top_level(toks, "star", "expected a modifier before '*'")
        if not parts[-1]:
            raise self.error("expected a variable name after '*'", _after(toks[-1]))
        var = parts[-1]
        if len(var) != 1 or var[0].kind not in ("name", "number"):
            raise self.error(f"expected a variable name, found {self.text_between(var[0], var[-1])!r}",
                             var[0])
        modifier = Modifier()
        for part in parts[:-1]:
            modifier = modifier.merge(self.parse_modifier(part))
        return modifier, var[0]

    def parse_modifier(self, toks: list[Token]) -> Modifier:
        first = toks[0]
        if first.kind == "name" and len(toks) > 1 and toks[1].kind == "lparen":
            func = first.text
            if toks[-1].kind != "rparen":
                raise self.error(f"expected ')' to close {func}(", toks[-1])
            inner = toks[2:-1]
            if func in _AS_NUMERIC:  # as.numeric(NA): a free parameter, as NA
                return _modifier_from_values([self.parse_scalar(toks)], self, first)
            if func in ("start", "label", "equal", "lower", "upper") and _is_call(inner, "c"):
                inner = inner[2:-1]  # start(c(0.5, 0.6)): one value per group
            if not inner:
                raise self.error(f"empty argument list in {func}()", first)
            args = self.parse_args(inner, first)
            if func == "c":
                return _modifier_from_values(args, self, first)
            if func == "start":  # NA: the default start value in that group
                return Modifier(start=[_as_number(a, self, first) for a in args])
            if func in ("lower", "upper"):  # NA: no bound in that group
                default = -math.inf if func == "lower" else math.inf
                bounds = [_as_number(a, self, first, func) for a in args]
                bounds = [default if math.isnan(b) else b for b in bounds]
                return Modifier(**{func: bounds})
            if func in ("label", "equal"):  # NA: no label in that group
                return Modifier(label=[_as_label(a, self, first) for a in args],
                                equal=func == "equal")
            raise self.error(f"unknown modifier function {func}(); expected c(), start(), "
                             "label(), equal(), lower(), upper() or as.numeric()", first)
        value = self.parse_scalar(toks)
        return _modifier_from_values([value], self, first)

    def parse_args(self, toks: list[Token], func_tok: Token) -> list:
        args = self.split_top_level(toks, "comma", "empty element in the list")
        if not args[-1]:
            raise self.error(f"empty argument list in {func_tok.text}()", func_tok)
        return [self.parse_scalar(a) for a in args]

    def parse_scalar(self, toks: list[Token]):
        """A number (optionally signed), NA, a bare label, a quoted string, or
        ``as.numeric(...)`` of a number or NA."""
        if (len(toks) > 3 and toks[0].kind == "name" and toks[0].text in _AS_NUMERIC
                and toks[1].kind == "lparen" and toks[-1].kind == "rparen"):
            value = self.parse_scalar(toks[2:-1])
            if isinstance(value, _Label):
                raise self.error(f"{toks[0].text}() needs a number or NA, found {value!r}",
                                 toks[2])
            return value
        sign = 1.0
        if toks[0].kind in ("minus", "plus") and len(toks) == 2:
            sign = -1.0 if toks[0].kind == "minus" else 1.0
            toks = toks[1:]
        if len(toks) != 1:
            raise self.error(f"expected a number, NA or a label, found "
                             f"{self.text_between(toks[0], toks[-1])!r}", toks[0])
        tok = toks[0]
        if tok.kind == "number":
            number = float(tok.text)
            if not math.isfinite(number):
                raise self.error(f"the number {tok.text} is out of range", tok)
            return sign * number
        if tok.kind == "name" and tok.text == "NA":
            return math.nan
        if tok.kind == "name" and sign == 1.0:
            return _Label(tok.text)
        if tok.kind == "string" and sign == 1.0:
            return _QuotedLabel(tok.text[1:-1])
        raise self.error(f"expected a number, NA or a label, found {tok.text!r}", tok)


class _Label(str):
    """A label value inside a modifier."""


class _QuotedLabel(_Label):
    """A label written as a quoted string (``"a"``)."""


#: R's coercions lavaan users write around NA (``as.numeric(NA)*x1``: a free parameter)
_AS_NUMERIC = ("as.numeric", "as.double")


def _is_call(toks: list[Token], name: str) -> bool:
    """Whether the tokens are exactly ``name( ... )``."""
    if len(toks) < 3 or toks[0].kind != "name" or toks[0].text != name \
            or toks[1].kind != "lparen" or toks[-1].kind != "rparen":
        return False
    depth = 0
    for tok in toks[1:-1]:
        depth += tok.kind == "lparen"
        depth -= tok.kind == "rparen"
        if depth == 0:
            return False  # the first '(' closes before the end: c(1)*c(2), not one call
    return True


#: the modifiers of terms parsed before, by the texts of the term's tokens (never handed out:
#: :meth:`_Parser.parse_term` returns a new :class:`Modifier` with the same values, and
#: :func:`parse_model` copies its lists)
_TERM_MODIFIERS: dict[tuple, Modifier] = {}
_TERM_CACHE_SIZE = 4096

#: token kinds after which a new line continues the statement
_CONTINUES_AFTER = frozenset(("op", "plus", "star", "comma", "lparen", "minus", "slash",
                              "caret"))


def _after(tok: Token) -> Token:
    return Token("end", "", tok.pos + len(tok.text), tok.line, tok.col + len(tok.text))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _as_number(value, parser: _Parser, tok: Token, func: str = "start") -> float:
    if isinstance(value, _Label):
        raise parser.error(f"{func}() needs numbers, found {value!r}", tok)
    return value


def _as_label(value, parser: _Parser, tok: Token) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""  # label(c("a", NA)): no label in that group
    if not isinstance(value, _Label):
        raise parser.error("label() and equal() need names", tok)
    return str(value)


def _modifier_from_values(values: list, parser: _Parser, tok: Token) -> Modifier:
    """``c(a, b)`` / ``c(1, NA)`` / a single value: labels, or fixed/free values, per group.

    NA among labels follows lavaan 0.6: among quoted labels (``c("a", NA)``) it means no label
    in that group; among bare names (``c(a, NA)``) lavaan drops it, so ``c(NA, a)`` is the
    single label ``a`` (shared by every group)."""
    is_label = [isinstance(v, _Label) for v in values]
    if all(is_label):
        return Modifier(label=[str(v) for v in values])
    if not any(is_label):
        return Modifier(fixed=list(values))
    others = [v for v, lab in zip(values, is_label) if not lab]
    if all(isinstance(v, float) and math.isnan(v) for v in others):
        if all(isinstance(v, _QuotedLabel) for v in values if isinstance(v, _Label)):
            return Modifier(label=["" if not isinstance(v, _Label) else str(v)
                                   for v in values])
        return Modifier(label=[str(v) for v in values if isinstance(v, _Label)])
    raise parser.error("a c() modifier mixes labels and numbers; use separate modifiers, "
                       "e.g. c(1, NA)*c(a, b)*x", tok)


def parse_model(source: str, copy: bool = True) -> ParsedModel:
    """Parse lavaan model syntax into flat :class:`Statement` and :class:`Constraint` lists.

    The parses of the last :data:`PARSE_CACHE_SIZE` distinct texts are kept (refits of the
    same syntax: invariance levels, bootstrap and simulation replicates, partial-invariance
    steps); every call returns a fresh copy, so a caller may change the result without
    changing what later calls return.  ``copy=False`` returns the kept parse itself, for
    callers that only read it (the fitting pipeline).  Syntax errors are raised on every
    call."""
    if not isinstance(source, str):
        raise TypeError(f"the model must be a string of lavaan syntax, got {type(source).__name__}")
    parsed = _PARSED.get(source)
    if parsed is None:
        parsed = _parse_uncached(source)
        with _PARSED_LOCK:
            if len(_PARSED) >= PARSE_CACHE_SIZE:
                _PARSED.pop(next(iter(_PARSED)), None)  # the oldest entry
            _PARSED[source] = parsed
    return _copy_parsed(parsed) if copy else parsed


def remember_parse(parsed: ParsedModel) -> None:
    """Keep ``parsed`` as the parse of ``parsed.source``: for model text written by a program
    together with the statements it writes (:meth:`invariance.spec.MeasurementSpec.parsed`),
    so that fitting it needs no parsing.  The writer must produce exactly what
    :func:`parse_model` would (its tests compare the two); ``parsed`` is handed over (not
    copied) and every later :func:`parse_model` of the text returns a copy."""
    with _PARSED_LOCK:
        if len(_PARSED) >= PARSE_CACHE_SIZE and parsed.source not in _PARSED:
            _PARSED.pop(next(iter(_PARSED)), None)  # the oldest entry
        _PARSED[parsed.source] = parsed


def _parse_uncached(source: str) -> ParsedModel:
    return _Parser(source).parse()


def _clear_parse_caches() -> None:
    """Forget every cached parse and term (benchmarks of a first parse)."""
    with _PARSED_LOCK:
        _PARSED.clear()
    _TERM_MODIFIERS.clear()


#: how many distinct model texts :func:`parse_model` keeps parsed
PARSE_CACHE_SIZE = 128
_PARSED: dict[str, ParsedModel] = {}
_PARSED_LOCK = threading.Lock()


def _copy_parsed(parsed: ParsedModel) -> ParsedModel:
    """A copy of ``parsed`` that shares no mutable object with it (lists, statements,
    modifiers, constraints); a modifier shared by statements (``f1 + f2 =~ a*x1``) stays
    shared in the copy."""
    modifiers: dict[int, Modifier] = {}
    statements = []
    for st in parsed.statements:
        mod = st.modifier
        new = modifiers.get(id(mod))
        if new is None:
            new = modifiers[id(mod)] = Modifier(
                None if mod.fixed is None else list(mod.fixed),
                None if mod.label is None else list(mod.label),
                None if mod.start is None else list(mod.start),
                mod.equal,
                None if mod.lower is None else list(mod.lower),
                None if mod.upper is None else list(mod.upper))
        statements.append(Statement(st.lhs, st.op, st.rhs, new, st.line, st.col, st.stmt))
    constraints = [Constraint(c.lhs, c.op, c.rhs, c.line, c.col) for c in parsed.constraints]
    return ParsedModel(statements, constraints, parsed.source)


# --------------------------------------------------------------------------------------------
# Expressions in := and constraints (compiled by :mod:`.expressions`)

_CACHE: dict[str, Expression] = {}


def compile_expression(text: str, *, what: str = "") -> Expression:
    """Compile a lavaan arithmetic expression (``a*b``, ``a^2``, ``sqrt(v)``, ``-2*b + 1``).

    Labels may contain dots (``.p1.``).  Errors are :class:`ModelSyntaxError` with the column
    in ``text`` (line 1) and, when given, ``what`` the expression belongs to (e.g. "the
    definition of 'd'").  Compiled expressions are cached by text."""
    if not isinstance(text, str):
        raise ModelSyntaxError(f"an expression must be a string, got {type(text).__name__}",
                               1, 1)
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    try:
        expression = _compile(text)
    except _ExprError as exc:
        where = f" in {what}" if what else ""
        raise ModelSyntaxError(f"{exc.message}{where}", 1, exc.offset + 1,
                               text if "\n" not in text else "") from None
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[text] = expression
    return expression
