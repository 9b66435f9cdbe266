"""lavaan model syntax for informant x occasion x dimension designs.

Every builder returns a string of lavaan syntax, one statement per line with ``#`` comments,
written for lavaan's ``cfa()`` defaults (Rosseel 2012): the first indicator of a factor is its
marker (loading fixed to 1), exogenous factors are correlated, residual variances are free.
Factor names follow :class:`measurement.Design` (``c_mid_bond`` state, ``c_bond`` trait,
``c_mid_wording`` wording factor).

Options shared by the builders
------------------------------
wording_factor : ``False``; ``True`` for the first informant of the design (by convention the
    child); or an informant name / list of names. Adds one method factor per such informant
    and occasion, measured by that informant's reverse-keyed items of all dimensions at that
    occasion, uncorrelated with the substantive factors (``~~ 0*``); wording factors are
    correlated with each other (cfa() default).
equal_loadings_over_time : the same item has the same loading at every occasion (labels
    ``l_<informant>_<dimension>_<item>``; the marker is fixed to 1 at every occasion).
equal_intercepts_over_time : the same item has the same intercept at every occasion (labels
    ``i_...``); the factor means after the first occasion are then freed. Implies a mean
    structure.
equal_residuals_over_time : the same item has the same residual variance (labels ``r_...``).
residual_covariances : the residuals of the same item are correlated across occasions
    (default ``True`` in the trait model, ``False`` elsewhere).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence, Union

from .design import Design

__all__ = ["state_model", "trait_model", "state_trait_model"]


def _label(prefix: str, informant: str, dimension: str, item: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", f"{prefix}_{informant}_{dimension}_{item}")


def _check_items(design: Design) -> None:
    for d in design.dimensions:
        ids = design.items[d]
        if len(ids) < 2:
            i, o = design.informants[0], design.occasions[0]
            only = design.column(i, o, d, ids[0])
            raise ValueError(
                f"factor {design.factor(i, d, o)!r} would have a single indicator ({only}): "
                f"dimension {d!r} has only one item, and a factor needs at least two items")


def _check_occasions(design: Design, builder: str) -> None:
    if len(design.occasions) < 2:
        raise ValueError(
            f"{builder}() needs at least two occasions; the design has one "
            f"({design.occasions[0]!r}). Use state_model() for a single occasion.")


def _wording_informants(design: Design, wording_factor: Union[bool, str, Sequence[str]]
                        ) -> list[str]:
    if wording_factor is False or wording_factor is None:
        return []
    if wording_factor is True:
        infs = [design.informants[0]]
    elif isinstance(wording_factor, str):
        infs = [wording_factor]
    else:
        infs = list(wording_factor)
    for i in infs:
        if i not in design.informants:
            raise ValueError(f"wording_factor names informant {i!r}, not in the design "
                             f"{design.informants}")
    n_rev = sum(len(design.reverse[d]) for d in design.dimensions)
    if n_rev < 2:
        raise ValueError("a wording factor needs at least two reverse-keyed items per "
                         f"occasion; the design has {n_rev} (set reverse= in Design)")
    return infs


def _join(lhs: str, op: str, terms: Iterable[str]) -> str:
    return f"{lhs} {op} " + " + ".join(terms)


class _Builder:
    """Shared statement writer for the three builders."""

    def __init__(self, design: Design, *, wording_factor: Union[bool, str, Sequence[str]],
                 equal_loadings_over_time: bool, equal_intercepts_over_time: bool,
                 equal_residuals_over_time: bool, residual_covariances: bool) -> None:
        _check_items(design)
        self.d = design
        self.wording = _wording_informants(design, wording_factor)
        self.eq_load = bool(equal_loadings_over_time)
        self.eq_int = bool(equal_intercepts_over_time)
        self.eq_res = bool(equal_residuals_over_time)
        self.rescov = bool(residual_covariances)
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def indicator_terms(self, i: str, o: str, d: str, *, marker_fixed: bool) -> list[str]:
        """Loading terms of one informant x occasion x dimension's items."""
        terms = []
        for n, k in enumerate(self.d.items[d]):
            col = self.d.column(i, o, d, k)
            if n == 0:
                terms.append(f"1*{col}" if marker_fixed else col)
            elif self.eq_load:
                terms.append(f"{_label('l', i, d, k)}*{col}")
            else:
                terms.append(col)
        return terms

    def header(self, title: str, notes: Sequence[str]) -> None:
        d = self.d
        self.add(f"# {title}",
                 f"# informants: {', '.join(d.informants)} | occasions: "
                 f"{', '.join(d.occasions)} | dimensions: {', '.join(d.dimensions)}",
                 *[f"# {n}" for n in notes])

    def wording_block(self, substantive: Sequence[str]) -> None:
        if not self.wording:
            return
        d = self.d
        self.blank()
        self.add("# wording (method) factors: reverse-keyed items, first one is the marker")
        for i in self.wording:
            for o in d.occasions:
                cols = d.reverse_columns(informant=i, occasion=o)
                self.add(_join(d.wording_factor(i, o), "=~", cols))
        self.add("# wording factors are uncorrelated with the substantive factors")
        for i in self.wording:
            for o in d.occasions:
                self.add(_join(d.wording_factor(i, o), "~~", [f"0*{f}" for f in substantive]))

    def over_time_blocks(self) -> None:
        d = self.d
        if self.rescov and len(d.occasions) > 1:
            self.blank()
            self.add("# residuals of the same item correlated across occasions")
            for i in d.informants:
                for dim in d.dimensions:
                    for k in d.items[dim]:
                        cols = [d.column(i, o, dim, k) for o in d.occasions]
                        for a in range(len(cols)):
                            for b in range(a + 1, len(cols)):
                                self.add(f"{cols[a]} ~~ {cols[b]}")
        if self.eq_int:
            self.blank()
            self.add("# item intercepts equal over occasions")
            for i in d.informants:
                for o in d.occasions:
                    for dim in d.dimensions:
                        for k in d.items[dim]:
                            self.add(f"{d.column(i, o, dim, k)} ~ "
                                     f"{_label('i', i, dim, k)}*1")
        if self.eq_res:
            self.blank()
            self.add("# residual variances equal over occasions")
            for i in d.informants:
                for o in d.occasions:
                    for dim in d.dimensions:
                        for k in d.items[dim]:
                            col = d.column(i, o, dim, k)
                            self.add(f"{col} ~~ {_label('r', i, dim, k)}*{col}")

    def text(self) -> str:
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines) + "\n"


def state_model(design: Design, *, wording_factor: Union[bool, str, Sequence[str]] = False,
                equal_loadings_over_time: bool = False, equal_intercepts_over_time: bool = False,
                equal_residuals_over_time: bool = False,
                residual_covariances: bool = False) -> str:
    """State model: one factor per informant x occasion x dimension, all correlated.

    The first item of each factor is its marker. Factors are named ``design.factor(i, d, o)``
    (``c_mid_bond``). With one occasion and informant this is the per-informant x occasion
    measurement model of correlated bond and task factors; with several occasions it is the
    configural longitudinal model (add ``equal_*_over_time`` for invariance over time).
    """
    b = _Builder(design, wording_factor=wording_factor,
                 equal_loadings_over_time=equal_loadings_over_time,
                 equal_intercepts_over_time=equal_intercepts_over_time,
                 equal_residuals_over_time=equal_residuals_over_time,
                 residual_covariances=residual_covariances)
    d = design
    b.header("State model: one factor per informant x occasion x dimension",
             ["first item of each factor is its marker (loading fixed to 1 by cfa())",
              "all factors are correlated (cfa() correlates exogenous factors by default)"])
    states = []
    for i in d.informants:
        b.blank()
        b.add(f"# informant {i}")
        for o in d.occasions:
            for dim in d.dimensions:
                f = d.factor(i, dim, o)
                states.append(f)
                later = o != d.occasions[0]
                b.add(_join(f, "=~", b.indicator_terms(i, o, dim,
                                                       marker_fixed=b.eq_load and later)))
    b.wording_block(states)
    b.over_time_blocks()
    if b.eq_int:
        _free_later_means(b, [[d.factor(i, dim, o) for o in d.occasions[1:]]
                              for i in d.informants for dim in d.dimensions])
    return b.text()


def _free_later_means(b: _Builder, groups: list[list[str]]) -> None:
    names = [f for g in groups for f in g]
    if not names:
        return
    b.blank()
    b.add("# factor means: fixed to 0 at the first occasion, free afterwards")
    for f in names:
        b.add(f"{f} ~ 1")


def trait_model(design: Design, *, wording_factor: Union[bool, str, Sequence[str]] = False,
                equal_loadings_over_time: bool = False, equal_intercepts_over_time: bool = False,
                equal_residuals_over_time: bool = False,
                residual_covariances: bool = True) -> str:
    """Trait model: one factor per informant x dimension over all occasions' items.

    The first item at the first occasion is the marker; residuals of the same item are
    correlated across occasions (``residual_covariances=True``); all trait factors
    (``design.factor(i, d)``, e.g. ``c_bond``) are correlated. Needs two or more occasions.
    """
    _check_occasions(design, "trait_model")
    b = _Builder(design, wording_factor=wording_factor,
                 equal_loadings_over_time=equal_loadings_over_time,
                 equal_intercepts_over_time=equal_intercepts_over_time,
                 equal_residuals_over_time=equal_residuals_over_time,
                 residual_covariances=residual_covariances)
    d = design
    b.header("Trait model: one factor per informant x dimension, items of all occasions",
             ["first item at the first occasion is the marker (loading fixed to 1 by cfa())",
              "all factors are correlated (cfa() correlates exogenous factors by default)"])
    traits = []
    for i in d.informants:
        b.blank()
        b.add(f"# informant {i}")
        for dim in d.dimensions:
            f = d.factor(i, dim)
            traits.append(f)
            terms: list[str] = []
            for o in d.occasions:
                terms += b.indicator_terms(i, o, dim,
                                           marker_fixed=b.eq_load and o != d.occasions[0])
            b.add(_join(f, "=~", terms))
    b.wording_block(traits)
    b.over_time_blocks()
    return b.text()


def state_trait_model(design: Design, *,
                      wording_factor: Union[bool, str, Sequence[str]] = False,
                      equal_loadings_over_time: bool = False,
                      equal_intercepts_over_time: bool = False,
                      equal_residuals_over_time: bool = False,
                      residual_covariances: bool = False,
                      state_covariances: bool = True) -> str:
    """Latent state-trait model (Steyer, Ferring & Schmitt 1992; Steyer et al. 1999).

    ``Y_it = a_it + l_it S_t + e_it`` and ``S_t = xi + zeta_t``: a state factor per informant
    x occasion x dimension (first item the marker) and a trait factor per informant x
    dimension over its states with all second-order loadings fixed to 1 (equal; with two
    occasions nothing more is identified). Trait variances and the state residual
    (occasion-specific) variances are free; traits are correlated. With
    ``state_covariances=True`` the occasion-specific residuals of the same informant and
    occasion are correlated across dimensions (both rated in the same session). Needs two or
    more occasions and two or more items per dimension.
    """
    _check_occasions(design, "state_trait_model")
    b = _Builder(design, wording_factor=wording_factor,
                 equal_loadings_over_time=equal_loadings_over_time,
                 equal_intercepts_over_time=equal_intercepts_over_time,
                 equal_residuals_over_time=equal_residuals_over_time,
                 residual_covariances=residual_covariances)
    d = design
    b.header("Latent state-trait model: states per informant x occasion x dimension, "
             "traits per informant x dimension",
             ["Y = a + l*S + e, S = xi + zeta: second-order loadings fixed to 1",
              "first item of each state factor is its marker (loading fixed to 1 by cfa())",
              "trait factors are correlated (cfa() default), state residual variances free"])
    states = []
    for i in d.informants:
        b.blank()
        b.add(f"# informant {i}: state factors")
        for o in d.occasions:
            for dim in d.dimensions:
                f = d.factor(i, dim, o)
                states.append(f)
                later = o != d.occasions[0]
                b.add(_join(f, "=~", b.indicator_terms(i, o, dim,
                                                       marker_fixed=b.eq_load and later)))
    b.blank()
    b.add("# trait factors over the states (equal second-order loadings)")
    traits = []
    for i in d.informants:
        for dim in d.dimensions:
            t = d.factor(i, dim)
            traits.append(t)
            b.add(_join(t, "=~", [f"1*{d.factor(i, dim, o)}" for o in d.occasions]))
    if state_covariances and len(d.dimensions) > 1:
        b.blank()
        b.add("# occasion-specific residuals of the same informant and occasion correlated")
        for i in d.informants:
            for o in d.occasions:
                fs = [d.factor(i, dim, o) for dim in d.dimensions]
                for a in range(len(fs)):
                    for c in range(a + 1, len(fs)):
                        b.add(f"{fs[a]} ~~ {fs[c]}")
    b.wording_block(traits)
    b.over_time_blocks()
    if b.eq_int:
        _free_later_means(b, [[d.factor(i, dim, o) for o in d.occasions[1:]]
                              for i in d.informants for dim in d.dimensions])
    return b.text()
