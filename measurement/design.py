"""Which columns measure what: informants x occasions x dimensions x items.

Factor names (the defaults; each is a format string that can be changed in :class:`Design`):

==================  =========================================  ===========================
factor              default name                               example
==================  =========================================  ===========================
state               ``{informant}_{occasion}_{dimension}``     ``c_mid_bond``
trait               ``{informant}_{dimension}``                ``c_bond``
wording (method)    ``{informant}_{occasion}_wording``         ``c_mid_wording``
==================  =========================================  ===========================

A *state* factor is measured by one informant's items of one dimension at one occasion; a
*trait* factor by that informant's items of that dimension over all occasions (trait model) or
by the state factors (latent state-trait model); a *wording* factor by one informant's
reverse-keyed items (all dimensions) at one occasion. Scale means from
:func:`measurement.scale_means` use the state (and trait) names as column names.
"""
from __future__ import annotations

import numbers
import re
import string
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import pandas as pd

__all__ = ["Design"]

_FIELDS = ("informant", "occasion", "dimension", "item")
_NAME_RE = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")

ItemId = Union[int, str]


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    try:
        out = [str(v) for v in value]
    except TypeError:
        raise ValueError(f"{what} must be a list of names, got {value!r}") from None
    if not out:
        raise ValueError(f"{what} must name at least one level")
    if len(set(out)) != len(out):
        raise ValueError(f"{what} contains duplicates: {out}")
    return out


def _fields(pattern: str, what: str) -> set[str]:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{what} {pattern!r} is not a valid format string: {exc}") from None
    unknown = names - set(_FIELDS)
    if unknown:
        raise ValueError(f"{what} {pattern!r} uses unknown fields {sorted(unknown)}; "
                         f"allowed: {{informant}}, {{occasion}}, {{dimension}}, {{item}}")
    return names


class Design:
    """Informants x occasions x dimensions x items, and the column name of each item.

    Parameters
    ----------
    informants, occasions, dimensions : level names, e.g. ``["c", "t"]``, ``["mid", "end"]``,
        ``["bond", "task"]``.
    items : number of items per dimension (ids ``1..items``), a list of item ids used for every
        dimension, or a dict ``{dimension: [item ids]}``.
    pattern : format string giving an item's column from ``{informant}``, ``{occasion}``,
        ``{dimension}`` and ``{item}``.
    reverse : reverse-keyed (negatively worded) item ids: a list used for every dimension that
        has those items, or a dict ``{dimension: [item ids]}``.
    state_name, trait_name, wording_name : format strings of the factor names (see the module
        docstring); change them when they collide with column names in your data.

    Example
    -------
    >>> d = Design(informants=["c", "t"], occasions=["mid", "end"],
    ...            dimensions=["bond", "task"], items=4,
    ...            pattern="{informant}_{occasion}_{dimension}{item}", reverse=[2, 4])
    >>> d.columns(informant="c", occasion="mid", dimension="bond")
    ['c_mid_bond1', 'c_mid_bond2', 'c_mid_bond3', 'c_mid_bond4']
    >>> d.factor("c", "bond", "mid"), d.factor("c", "bond")
    ('c_mid_bond', 'c_bond')
    """

    def __init__(self, informants: Sequence[str], occasions: Sequence[str],
                 dimensions: Sequence[str],
                 items: Union[int, Sequence[ItemId], Mapping[str, Sequence[ItemId]]],
                 pattern: str = "{informant}_{occasion}_{dimension}{item}",
                 reverse: Optional[Union[Sequence[ItemId], Mapping[str, Sequence[ItemId]]]] = None,
                 state_name: str = "{informant}_{occasion}_{dimension}",
                 trait_name: str = "{informant}_{dimension}",
                 wording_name: str = "{informant}_{occasion}_wording") -> None:
        self.informants = _as_list(informants, "informants")
        self.occasions = _as_list(occasions, "occasions")
        self.dimensions = _as_list(dimensions, "dimensions")
        self.items = self._parse_items(items)
        fields = _fields(pattern, "pattern")
        if "item" not in fields:
            raise ValueError(f"pattern {pattern!r} must contain {{item}}")
        for f, levels in (("informant", self.informants), ("occasion", self.occasions),
                          ("dimension", self.dimensions)):
            if f not in fields and len(levels) > 1:
                raise ValueError(f"pattern {pattern!r} has no {{{f}}} field but the design has "
                                 f"{len(levels)} {f}s {levels}: their columns would coincide")
        self.pattern = pattern
        for what, pat, needed in (("state_name", state_name, ("informant", "occasion",
                                                               "dimension")),
                                  ("trait_name", trait_name, ("informant", "dimension")),
                                  ("wording_name", wording_name, ("informant", "occasion"))):
            missing = [f for f in needed if f not in _fields(pat, what)]
            if missing:
                raise ValueError(f"{what} {pat!r} must contain "
                                 + ", ".join("{" + f + "}" for f in missing))
        self.state_name, self.trait_name, self.wording_name = state_name, trait_name, wording_name
        self.reverse = self._parse_reverse(reverse)
        self._validate_names()

    # -- construction helpers -----------------------------------------------------------------
    def _parse_items(self, items: Any) -> dict[str, list[ItemId]]:
        if isinstance(items, bool):
            raise ValueError("items must be a positive int, a list of item ids or a dict")
        if isinstance(items, numbers.Integral):
            items = int(items)
            if items < 1:
                raise ValueError(f"items must be at least 1, got {items}")
            return {d: list(range(1, items + 1)) for d in self.dimensions}
        if isinstance(items, Mapping):
            unknown = [d for d in items if d not in self.dimensions]
            if unknown:
                raise ValueError(f"items names dimensions not in the design: {unknown}")
            absent = [d for d in self.dimensions if d not in items]
            if absent:
                raise ValueError(f"items gives no item ids for dimensions {absent}")
            out = {d: list(items[d]) for d in self.dimensions}
        elif isinstance(items, str):
            raise ValueError("items must be a positive int, a list of item ids or a dict")
        else:
            ids = list(items)
            out = {d: list(ids) for d in self.dimensions}
        for d, ids in out.items():
            if not ids:
                raise ValueError(f"dimension {d!r} has no items")
            if len(set(map(str, ids))) != len(ids):
                raise ValueError(f"dimension {d!r} has duplicate item ids: {ids}")
        return out

    def _parse_reverse(self, reverse: Any) -> dict[str, list[ItemId]]:
        out: dict[str, list[ItemId]] = {d: [] for d in self.dimensions}
        if reverse is None:
            return out
        if isinstance(reverse, Mapping):
            for d, ids in reverse.items():
                if d not in self.dimensions:
                    raise ValueError(f"reverse names a dimension not in the design: {d!r}")
                if isinstance(ids, (str, int)):
                    ids = [ids]
                for k in ids:
                    if k not in self.items[d]:
                        raise ValueError(f"reverse-keyed item {k!r} is not an item of "
                                         f"dimension {d!r} (items {self.items[d]})")
                out[d] = [k for k in self.items[d] if k in list(ids)]
            return out
        if isinstance(reverse, (str, int)):
            reverse = [reverse]
        ids = list(reverse)
        for k in ids:
            if not any(k in self.items[d] for d in self.dimensions):
                raise ValueError(f"reverse-keyed item {k!r} is not an item of any dimension")
        for d in self.dimensions:
            out[d] = [k for k in self.items[d] if k in ids]
        return out

    def _validate_names(self) -> None:
        cols = self.columns()
        if len(set(cols)) != len(cols):
            dup = sorted({c for c in cols if cols.count(c) > 1})
            raise ValueError(f"pattern {self.pattern!r} gives the same column for different "
                             f"items: {dup}")
        factors = ([self.factor(i, d, o) for i in self.informants for o in self.occasions
                    for d in self.dimensions]
                   + [self.factor(i, d) for i in self.informants for d in self.dimensions]
                   + [self.wording_factor(i, o) for i in self.informants
                      for o in self.occasions])
        if len(set(factors)) != len(factors):
            dup = sorted({f for f in factors if factors.count(f) > 1})
            raise ValueError(f"factor names collide: {dup}; change state_name, trait_name or "
                             "wording_name")
        clash = sorted(set(factors) & set(cols))
        if clash:
            raise ValueError(f"factor names equal item columns: {clash}; change state_name, "
                             "trait_name or wording_name")
        bad = [n for n in cols + factors if not _NAME_RE.match(n)]
        if bad:
            raise ValueError("names usable in model syntax need letters, digits, '_' or '.' "
                             f"(not starting with a digit); these are not: {bad[:10]}")

    # -- queries ------------------------------------------------------------------------------
    def _check_level(self, value: Optional[str], levels: list[str], what: str) -> list[str]:
        if value is None:
            return levels
        values = [value] if isinstance(value, str) else list(value)
        for v in values:
            if v not in levels:
                raise ValueError(f"unknown {what} {v!r}; the design has {levels}")
        return [v for v in levels if v in values]

    def column(self, informant: str, occasion: str, dimension: str, item: ItemId) -> str:
        """The column of one item."""
        return self.pattern.format(informant=informant, occasion=occasion,
                                   dimension=dimension, item=item)

    def columns(self, informant: Optional[str] = None, occasion: Optional[str] = None,
                dimension: Optional[str] = None) -> list[str]:
        """Item columns (ordered informant, occasion, dimension, item), optionally filtered.

        Each filter is one level name or a list of names."""
        inf = self._check_level(informant, self.informants, "informant")
        occ = self._check_level(occasion, self.occasions, "occasion")
        dim = self._check_level(dimension, self.dimensions, "dimension")
        return [self.column(i, o, d, k) for i in inf for o in occ for d in dim
                for k in self.items[d]]

    def is_reverse(self, dimension: str, item: ItemId) -> bool:
        """Whether an item is reverse keyed (negatively worded)."""
        return item in self.reverse.get(dimension, [])

    def reverse_columns(self, informant: Optional[str] = None, occasion: Optional[str] = None,
                        dimension: Optional[str] = None) -> list[str]:
        """Columns of the reverse-keyed items, optionally filtered."""
        inf = self._check_level(informant, self.informants, "informant")
        occ = self._check_level(occasion, self.occasions, "occasion")
        dim = self._check_level(dimension, self.dimensions, "dimension")
        return [self.column(i, o, d, k) for i in inf for o in occ for d in dim
                for k in self.reverse[d]]

    def factor(self, informant: str, dimension: str, occasion: Optional[str] = None) -> str:
        """Factor name: the state factor with ``occasion``, the trait factor without."""
        self._check_level(informant, self.informants, "informant")
        self._check_level(dimension, self.dimensions, "dimension")
        if occasion is None:
            return self.trait_name.format(informant=informant, dimension=dimension)
        self._check_level(occasion, self.occasions, "occasion")
        return self.state_name.format(informant=informant, occasion=occasion,
                                      dimension=dimension)

    def wording_factor(self, informant: str, occasion: str) -> str:
        """Name of the wording (method) factor of one informant at one occasion."""
        self._check_level(informant, self.informants, "informant")
        self._check_level(occasion, self.occasions, "occasion")
        return self.wording_name.format(informant=informant, occasion=occasion)

    def check(self, data: pd.DataFrame, columns: Optional[Iterable[str]] = None) -> None:
        """Raise ``ValueError`` naming every item column (or given column) absent from data."""
        wanted = self.columns() if columns is None else list(columns)
        missing = [c for c in wanted if c not in data.columns]
        if missing:
            raise ValueError(f"the data lack {len(missing)} column(s) named by the design "
                             f"(pattern {self.pattern!r}): {', '.join(missing)}")

    def subset(self, informants: Optional[Sequence[str]] = None,
               occasions: Optional[Sequence[str]] = None,
               dimensions: Optional[Sequence[str]] = None) -> "Design":
        """A design with only some informants, occasions or dimensions (same names)."""
        inf = self._check_level(informants, self.informants, "informant")
        occ = self._check_level(occasions, self.occasions, "occasion")
        dim = self._check_level(dimensions, self.dimensions, "dimension")
        return Design(inf, occ, dim, items={d: self.items[d] for d in dim},
                      pattern=self.pattern, reverse={d: self.reverse[d] for d in dim},
                      state_name=self.state_name, trait_name=self.trait_name,
                      wording_name=self.wording_name)

    def __repr__(self) -> str:
        items = {d: v for d, v in self.items.items()}
        return (f"Design(informants={self.informants}, occasions={self.occasions}, "
                f"dimensions={self.dimensions}, items={items}, pattern={self.pattern!r}, "
                f"reverse={self.reverse})")
