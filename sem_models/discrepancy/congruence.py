"""Latent congruence model (Cheung, 2009): outcome on the latent mean and difference of two raters.

Two raters (here therapist ``t`` and child ``c``) rate the same dimension with parallel items.
Each rater's ratings measure a first-order factor with **equal loadings and intercepts across
raters** (labels shared by parallel items; the marker's loading is 1 and its intercept 0, which
sets the latent metric and origin common to both raters). The two rater factors are then
re-expressed by two second-order factors with fixed loadings and no disturbances:

    t = M + D/2,    c = M - D/2

so that ``M`` is the latent mean of the two ratings and ``D = t - c`` their latent difference
(therapist minus child). ``M`` and ``D`` are correlated and have free means, and the outcome
is regressed on both (plus controls). A positive ``D`` effect means the outcome rises with the
therapist rating the dimension higher than the child.

By group (e.g. treatment format) every parameter is group-specific (rater equality holds within
each group), and the ``M`` and ``D`` paths are labelled per group so that their equality across
groups can be tested (Wald; likelihood ratio by refitting).

Reference: Cheung, G. W. (2009). Introducing the latent congruence model for improving the
assessment of similarity, agreement, and fit in organizational research. *Organizational
Research Methods, 12*(1), 6-33.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pandas as pd

__all__ = ["congruence_items", "congruence_syntax", "congruence_starts", "CongruenceFit", "fit_congruence"]


def _suffix(group: Any) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", str(group))
    return s if re.match(r"^[A-Za-z]", s) else f"g{s}"


def congruence_items(design: Any, dimension: str, raters: Sequence[str] = ("t", "c"),
                     occasions: Optional[Sequence[str]] = None
                     ) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Parallel item lists of two raters for ``dimension`` from a :class:`measurement.Design`.

    Returns ``(first_rater_items, second_rater_items, residual_pairs)`` where the residual
    pairs correlate the same item of the same rater across occasions (as in the trait model).
    """
    occ = list(occasions) if occasions is not None else list(design.occasions)
    items = design.items[dimension]
    lists, pairs = [], []
    for r in raters:
        cols = [design.column(r, o, dimension, k) for o in occ for k in items]
        lists.append(cols)
        for k in items:
            same = [design.column(r, o, dimension, k) for o in occ]
            pairs += [(same[a], same[b]) for a in range(len(same)) for b in range(a + 1, len(same))]
    return lists[0], lists[1], pairs


def congruence_starts(data: pd.DataFrame, first_marker: str, second_marker: str) -> dict:
    """Start values for M and D from the two raters' marker items (observed moments)."""
    x = pd.to_numeric(data[first_marker], errors="coerce")
    y = pd.to_numeric(data[second_marker], errors="coerce")
    ok = x.notna() & y.notna()
    vx, vy = float(x[ok].var()), float(y[ok].var())
    c = float(x[ok].cov(y[ok]))
    # half the observed variance goes to the factors (lavaan's rule of thumb)
    m_var = max(0.5 * (0.25 * (vx + vy) + 0.5 * c), 0.05 * (vx + vy))
    d_var = max(0.5 * (vx + vy - 2 * c), 0.05 * (vx + vy))
    return {"M_var": m_var, "D_var": d_var, "M_mean": float((x[ok].mean() + y[ok].mean()) / 2),
            "D_mean": float(x[ok].mean() - y[ok].mean())}


def _lab(base: str, groups: Optional[list]) -> str:
    if groups is None:
        return base
    return "c(" + ", ".join(f"{base}_{_suffix(g)}" for g in groups) + ")"


def congruence_syntax(first_items: Sequence[str], second_items: Sequence[str],
                      outcome: Optional[str] = None, controls: Sequence[str] = (), *,
                      first: str = "t", second: str = "c", dimension: str = "",
                      mean: str = "M", diff: str = "D",
                      residual_pairs: Sequence[tuple[str, str]] = (),
                      parallel_residuals: bool = False,
                      group_labels: Optional[Sequence[Any]] = None,
                      extra: str = "", extra_predictors: Sequence[str] = (),
                      starts: Optional[dict] = None,
                      parameterization: str = "first-order") -> str:
    """lavaan syntax of the latent congruence model.

    Parameters
    ----------
    first_items, second_items
        Parallel items of the two raters (item k of one matches item k of the other); the first
        item is the marker (loading 1, intercept 0 for both raters).
    outcome, controls
        The outcome regressed on ``mean`` and ``diff`` (labels ``b_M``, ``b_D``, per group if
        ``group_labels``) and the observed ``controls``. ``None``: measurement part only.
    first, second, dimension
        Rater prefixes; the rater factors are ``{first}_{dimension}_r`` and
        ``{second}_{dimension}_r`` (``t_bond_r``, ``c_bond_r``) so that they never collide with
        trait factors of other models.
    mean, diff
        Names of the latent mean and difference factors (``D = first - second``).
    residual_pairs
        Residual covariances to add (e.g. the same item across occasions).
    parallel_residuals
        Also correlate the residuals of parallel items of the two raters.
    group_labels
        Group labels for a multi-group model (every parameter group-specific).
    extra, extra_predictors
        More measurement syntax (e.g. task factors) and predictors of the outcome from it.
    parameterization
        ``"first-order"`` (default): the items load on M and D directly, with the loadings on
        D tied to half the rater's loadings on M by ``==`` constraints; ``"second-order"``:
        Cheung's rater factors ``{first}_{dimension}_r`` and ``{second}_{dimension}_r`` as
        indicators of M and D without disturbances. Both are the same model (same fit and
        M, D parameters) and both converge in the engine.
    starts
        Start values ``{"M_var", "D_var", "M_mean", "D_mean"}`` written as ``start()``
        modifiers (the second-order factors without disturbances need them; see
        :func:`congruence_starts`). ``None``: no start values.
    """
    a, b = list(first_items), list(second_items)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("both raters need the same number (>= 2) of parallel items")
    groups = list(group_labels) if group_labels is not None else None
    dim = f"_{dimension}" if dimension else ""
    fa, fb = f"{first}{dim}_r", f"{second}{dim}_r"
    if parameterization not in ("first-order", "second-order"):
        raise ValueError("parameterization must be 'first-order' or 'second-order'")
    if parameterization == "second-order":
        lines = [f"# latent congruence model (Cheung 2009): {fa} = {mean} + {diff}/2, "
                 f"{fb} = {mean} - {diff}/2",
                 "# loadings and intercepts equal across raters (shared labels)"]
        for fac, items in ((fa, a), (fb, b)):
            terms = [f"1*{items[0]}"] + [f"{_lab(f'lam{k + 1}', groups)}*{it}"
                                         for k, it in enumerate(items) if k > 0]
            lines.append(f"{fac} =~ " + " + ".join(terms))
    else:
        lines = [f"# latent congruence model (Cheung 2009), first-order form: the items of rater "
                 f"{first} load lam_k on {mean} and lam_k/2 on {diff}, those of rater {second} "
                 f"lam_k on {mean} and -lam_k/2 on {diff} (= {first} = {mean} + {diff}/2, "
                 f"{second} = {mean} - {diff}/2 with loadings and intercepts equal across raters)"]
        mt = [f"1*{a[0]}"] + [f"{_lab(f'lam{k + 1}', groups)}*{it}" for k, it in enumerate(a)
                              if k > 0]
        mt += [f"1*{b[0]}"] + [f"{_lab(f'lam{k + 1}', groups)}*{it}" for k, it in enumerate(b)
                               if k > 0]
        dt = [f"0.5*{a[0]}"] + [f"{_lab(f'dfirst{k + 1}', groups)}*{it}"
                                for k, it in enumerate(a) if k > 0]
        dt += [f"-0.5*{b[0]}"] + [f"{_lab(f'dsecond{k + 1}', groups)}*{it}"
                                  for k, it in enumerate(b) if k > 0]
        lines += [f"{mean} =~ " + " + ".join(mt), f"{diff} =~ " + " + ".join(dt)]
        sfx = [""] if groups is None else [f"_{_suffix(g)}" for g in groups]
        for k in range(2, len(a) + 1):
            for s_ in sfx:
                lines.append(f"dfirst{k}{s_} == 0.5*lam{k}{s_}")
                lines.append(f"dsecond{k}{s_} == -0.5*lam{k}{s_}")
    for items in (a, b):
        for k, it in enumerate(items):
            lines.append(f"{it} ~ 0*1" if k == 0 else f"{it} ~ {_lab(f'nu{k + 1}', groups)}*1")
    if parameterization == "second-order":
        lines += ["# second-order mean and difference factors without disturbances",
                  f"{mean} =~ 1*{fa} + 1*{fb}",
                  f"{diff} =~ 0.5*{fa} + -0.5*{fb}",
                  f"{fa} ~~ 0*{fa}", f"{fb} ~~ 0*{fb}", f"{fa} ~~ 0*{fb}",
                  f"{fa} ~ 0*1", f"{fb} ~ 0*1"]
    lines.append(f"{mean} ~~ {diff}")
    st = starts or {}
    for name, key in ((mean, "M"), (diff, "D")):
        v, m = st.get(f"{key}_var"), st.get(f"{key}_mean")
        lines.append(f"{name} ~~ start({v:.6g})*{name}" if v is not None else f"{name} ~~ {name}")
        lines.append(f"{name} ~ start({m:.6g})*1" if m is not None else f"{name} ~ 1")
    pairs = list(residual_pairs)
    if parallel_residuals:
        pairs += list(zip(a, b))
    if pairs:
        lines.append("# residual covariances")
        lines += [f"{x} ~~ {y}" for x, y in pairs]
    if extra.strip():
        lines += ["# further measurement model", extra.rstrip()]
    if outcome is not None:
        terms = [f"{_lab('b_' + mean, groups)}*{mean}", f"{_lab('b_' + diff, groups)}*{diff}"]
        terms += list(extra_predictors) + list(controls)
        lines += ["# outcome on the latent mean and difference", f"{outcome} ~ " + " + ".join(terms)]
        if controls:
            lines += [f"{f} ~~ " + " + ".join(controls)
                      for f in [mean, diff] + list(extra_predictors)]
    return "\n".join(lines) + "\n"


@dataclass
class CongruenceFit:
    """A fitted latent congruence model: ``fit``, ``syntax``, ``group_labels``, ``mean``, ``diff``."""

    fit: Any
    syntax: str
    group_labels: Optional[list]
    mean: str = "M"
    diff: str = "D"
    outcome: Optional[str] = None
    spec: dict = field(default_factory=dict, repr=False)
    _data: Any = field(default=None, repr=False)

    def paths(self) -> pd.DataFrame:
        """The outcome's regressions on M and D (and further predictors), per group."""
        est = self.fit.estimates()
        return est[(est["op"] == "~") & (est["lhs"] == self.outcome)].reset_index(drop=True)

    def latent(self) -> pd.DataFrame:
        """Means, variances and covariance of M and D."""
        est = self.fit.estimates()
        sel = est["lhs"].isin([self.mean, self.diff]) & est["op"].isin(["~1", "~~"])
        return est[sel].reset_index(drop=True)

    def moderation(self) -> pd.DataFrame:
        """Wald tests that the M and D paths are equal across groups (rows M, D, both)."""
        if not self.group_labels or len(self.group_labels) < 2:
            raise ValueError("moderation tests need a multi-group fit")
        rows = []
        g0 = _suffix(self.group_labels[0])
        cons = {}
        for f in (self.mean, self.diff):
            cons[f] = [(f"b_{f}_{g0}", f"b_{f}_{_suffix(g)}") for g in self.group_labels[1:]]
        cons["both"] = cons[self.mean] + cons[self.diff]
        from ..study.outcomes import wald_equal
        for k, c in cons.items():
            w = wald_equal(self.fit, c)
            rows.append({"path": k, "stat": float(w["stat"]), "df": int(w["df"]),
                         "pvalue": float(w["pvalue"])})
        return pd.DataFrame(rows)


def fit_congruence(data: pd.DataFrame, first_items: Sequence[str], second_items: Sequence[str],
                   outcome: Optional[str] = None, controls: Sequence[str] = (), *,
                   group: Optional[str] = None, estimator: str = "ML",
                   missing: str = "listwise", cluster: Optional[str] = None,
                   group_labels: Optional[Sequence] = None, **kwargs) -> CongruenceFit:
    """Build (:func:`congruence_syntax`) and fit the latent congruence model.

    Builder keywords (``first``, ``second``, ``dimension``, ``mean``, ``diff``,
    ``residual_pairs``, ``parallel_residuals``, ``extra``, ``extra_predictors``) go to
    :func:`congruence_syntax`, everything else to :func:`sem_models.sem` (``fixed_x=False``
    unless given).
    """
    from ..api import sem

    builder_keys = ("first", "second", "dimension", "mean", "diff", "residual_pairs",
                    "parallel_residuals", "extra", "extra_predictors", "starts",
                    "parameterization")
    bkw = {k: kwargs.pop(k) for k in builder_keys if k in kwargs}
    labels = None
    if group is not None:
        labels = list(group_labels) if group_labels is not None else \
            list(pd.unique(data[group].dropna()))
    bkw.setdefault("starts", congruence_starts(data, first_items[0], second_items[0]))
    syntax = congruence_syntax(first_items, second_items, outcome, controls,
                               group_labels=labels, **bkw)
    kwargs.setdefault("fixed_x", False)
    fit = sem(syntax, data, group=group, estimator=estimator, missing=missing, cluster=cluster,
              group_labels=labels, **kwargs)
    return CongruenceFit(fit=fit, syntax=syntax, group_labels=labels,
                         mean=bkw.get("mean", "M"), diff=bkw.get("diff", "D"), outcome=outcome,
                         spec=dict(bkw), _data=data)
