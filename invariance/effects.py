"""Effect sizes once (partial) invariance holds: latent mean and variance differences, dMACS.

* Latent mean differences are only interpretable under (partial) scalar invariance: the
  factor's origin and unit must be linked across the cells compared by invariant loadings and
  intercepts (Meredith 1993; Byrne, Shavelson & Muthen 1989 for partial invariance, which needs
  at least two invariant indicators per factor).  Standardized difference
  ``d = (alpha_f - alpha_r) / sqrt(psi_pooled)``, ``psi_pooled = ((n_r - 1) psi_r + (n_f - 1) psi_f)
  / (n_r + n_f - 2)`` (Hancock 2001, Psychometrika 66(3), 373-388); variance ratio
  ``psi_f / psi_r``.  Standard errors by the delta method on the estimates' covariance matrix.
* dMACS (Nye & Drasgow 2011, J Appl Psychol 96(5), 966-980) for a continuous item of a factor
  with loading lambda and intercept nu in the reference (R) and focal (F) cell:

      dMACS = sqrt( E_F[(nu_R - nu_F + (lambda_R - lambda_F) xi)^2] ) / SD_pooled
            = sqrt(dnu^2 + 2 dnu dlambda mu_F + dlambda^2 (sigma_F^2 + mu_F^2)) / SD_pooled

  with xi ~ N(mu_F, sigma_F^2) the focal cell's latent distribution and
  ``SD_pooled = sqrt(((n_R - 1) s_R^2 + (n_F - 1) s_F^2) / (n_R + n_F - 2))`` the pooled item
  SD (variances, not SDs, pooled).  ``dmacs_signed`` (Nye, Bradburn, Olenick, Bialko &
  Drasgow 2019) is ``(dnu + dlambda mu_F) / SD_pooled``, the expected item-score difference
  at the focal latent mean, in pooled SD units.

* dMACS of an **ordinal** item (graded probit model; Nye & Drasgow 2011 with the expected item
  score as the item's mean function, as in their polytomous extension): the latent response
  ``y* = nu + lambda xi + e``, ``Var(e) = theta`` (the residual variance of the latent response:
  a parameter under theta, derived under delta), and categories with scores
  ``x_1 < ... < x_K`` and thresholds ``tau_1 < ... < tau_{K-1}`` give

      E[X | xi] = x_1 + sum_k (x_{k+1} - x_k) P(X >= k + 1 | xi)
                = x_1 + sum_k (x_{k+1} - x_k) Phi((nu + lambda xi - tau_k) / sqrt(theta)),

  (``sum_k P(X >= k | xi)`` for scores 1..K) and

      dMACS = sqrt( int (E_R[X | xi] - E_F[X | xi])^2 f_F(xi) dxi ) / SD_pooled,

  ``f_F`` the focal cell's latent distribution N(mu_F, sigma_F^2), SD_pooled the pooled SD of
  the observed item scores (category frequencies, divisor n - 1); ``dmacs_signed`` is
  ``int (E_R - E_F) f_F / SD_pooled``.  The integral is a Gauss-Hermite sum (61 nodes).  Other
  factors the item loads on (e.g. a wording factor) are integrated out given the compared
  factor within each cell: their conditional mean enters ``nu`` and their conditional variance
  ``theta``.  An ordinal item is invariant when its loading, intercept and all its thresholds
  are equal; its expected score also depends on the residual variance of its latent
  response, so without strict invariance (theta) or equal scales (delta) an invariant item
  can still have a small dMACS (``all_items=True`` lists it).

Cells are groups (multi-group fits) and occasions / informants (the factors of a construct);
each non-reference cell is compared with the reference cell (first group, first occasion) of
the same construct.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from sem_models.inference.distributions import norm_cdf, norm_sf

from sem_models.inference.wald import delta_method

from .spec import InvarianceError

__all__ = ["latent_differences", "dmacs"]


@dataclass
class _Comparison:
    construct: str
    ref_factor: str
    ref_group: int  # 1-based
    factor: str
    group: int


def _constructs(fit, constructs: Optional[Mapping[str, Sequence[str]]]) -> dict[str, list[str]]:
    lv = list(fit.variables.lv)
    out: dict[str, list[str]] = {}
    seen = set()
    for c, fl in (constructs or {}).items():
        fl = [fl] if isinstance(fl, str) else list(fl)
        for f in fl:
            if f not in lv:
                raise InvarianceError(f"construct {c!r} names {f!r}, not a factor of the fit "
                                      f"(factors: {lv})")
            seen.add(f)
        out[str(c)] = fl
    for f in lv:
        if f not in seen:
            out[f] = [f]
    return out


def _comparisons(fit, constructs: dict[str, list[str]], reference_group) -> list[_Comparison]:
    G = fit.n_groups
    ref_g = 1
    if reference_group is not None:
        if reference_group not in fit.group_labels:
            raise InvarianceError(f"reference group {reference_group!r} is not a group of the fit "
                                  f"({fit.group_labels})")
        ref_g = fit.group_labels.index(reference_group) + 1
    out = []
    for c, fl in constructs.items():
        for g in range(1, G + 1):
            for t, f in enumerate(fl):
                if g == ref_g and t == 0:
                    continue
                # groups: same occasion's factor in the reference group; occasions: first
                # occasion in the same group
                if g != ref_g:
                    out.append(_Comparison(c, f, ref_g, f, g))
                if t > 0:
                    out.append(_Comparison(c, fl[0], g, f, g))
    return out


class _Table:
    """Fast lookup of parameter-table rows by (lhs, op, rhs, group)."""

    def __init__(self, fit):
        pt = fit._partable
        self.pt = pt
        self.index = {}
        for k, (lhs, op, rhs, g) in enumerate(zip(pt["lhs"], pt["op"], pt["rhs"], pt["group"])):
            self.index[(lhs, op, rhs, int(g))] = k
        self.free = pt["free"].to_numpy()
        self.label = pt["label"].to_numpy()
        self.ustart = pt["ustart"].to_numpy()

    def row(self, lhs, op, rhs, g) -> int:
        key = (lhs, op, rhs, g)
        if key not in self.index and op == "~~":
            key = (rhs, op, lhs, g)
        if key not in self.index:
            raise InvarianceError(f"the fit has no parameter {lhs} {op} {rhs} in group {g}")
        return self.index[key]

    def thresholds(self, item: str, g: int) -> list[int]:
        """Rows of the item's thresholds ``t1, t2, ...`` in group ``g`` (empty: continuous)."""
        out, k = [], 1
        while (item, "|", f"t{k}", g) in self.index:
            out.append(self.index[(item, "|", f"t{k}", g)])
            k += 1
        return out

    def linked(self, a: int, b: int) -> bool:
        """Equal by the model: a shared label, or both fixed to the same value."""
        if self.free[a] == 0 and self.free[b] == 0:
            return bool(np.isclose(self.ustart[a], self.ustart[b]))
        return bool(self.label[a]) and self.label[a] == self.label[b]


def _indicators(fit, factor: str) -> list[str]:
    return list(fit.variables.indicators[factor])


def _item_pairs(fit, tab: _Table, comp: _Comparison) -> list[dict]:
    ref_inds = _indicators(fit, comp.ref_factor)
    foc_inds = _indicators(fit, comp.factor)
    if len(ref_inds) != len(foc_inds):
        raise InvarianceError(f"factors {comp.ref_factor!r} and {comp.factor!r} have different "
                              "numbers of indicators; they cannot be compared")
    out = []
    for k, (vr, vf) in enumerate(zip(ref_inds, foc_inds)):
        lr = tab.row(comp.ref_factor, "=~", vr, comp.ref_group)
        lf = tab.row(comp.factor, "=~", vf, comp.group)
        nr = tab.row(vr, "~1", "", comp.ref_group)
        nf = tab.row(vf, "~1", "", comp.group)
        th_r, th_f = tab.thresholds(vr, comp.ref_group), tab.thresholds(vf, comp.group)
        if len(th_r) != len(th_f):
            raise InvarianceError(f"items {vr!r} and {vf!r} have different numbers of "
                                  "thresholds; they cannot be compared")
        out.append({"position": k + 1, "ref_item": vr, "item": vf, "lambda_rows": (lr, lf),
                    "nu_rows": (nr, nf), "loading_invariant": tab.linked(lr, lf),
                    "intercept_invariant": tab.linked(nr, nf),
                    "threshold_rows": (th_r, th_f), "ordinal": bool(th_r),
                    "thresholds_invariant": all(tab.linked(a, b) for a, b in zip(th_r, th_f))})
    return out


def _invariant(it: dict) -> bool:
    return it["loading_invariant"] and it["intercept_invariant"] and it["thresholds_invariant"]


def _label(fit, g: int):
    return fit.group_labels[g - 1] if fit.n_groups > 1 else None


def latent_differences(fit, constructs: Optional[Mapping[str, Sequence[str]]] = None,
                       reference_group=None, min_invariant: int = 2) -> pd.DataFrame:
    """Latent mean and variance differences of every cell from its reference cell.

    Rows: one per comparison (a factor in a non-reference group vs. the reference group; a
    later occasion's factor vs. the first occasion's, within a group).  Columns: ``construct``,
    ``factor``, ``group``, ``ref_factor``, ``ref_group``, ``n_invariant`` (items with invariant
    loading and intercept, and thresholds for ordinal items), ``mean_diff`` (alpha_f -
    alpha_r) with ``mean_diff_se``, ``z``,
    ``pvalue``; ``d`` (standardized by the pooled latent SD) with ``d_se``; ``var_ratio``
    (psi_f / psi_r) with ``var_ratio_se``.  SEs by the delta method (``fit.vcov()``).

    Raises :class:`InvarianceError` when a comparison has fewer than ``min_invariant`` items
    with invariant loadings and intercepts (the latent means are then not on a common scale:
    scalar or partial scalar invariance is needed).
    """
    if not fit.model.meanstructure:
        raise InvarianceError("latent mean differences need a mean structure in the fit")
    cons = _constructs(fit, constructs)
    comps = _comparisons(fit, cons, reference_group)
    if not comps:
        raise InvarianceError("nothing to compare: the fit has one group and no construct "
                              "measured at more than one occasion")
    tab = _Table(fit)
    nobs = fit.nobs
    records, spec = [], []
    lacking = []
    for comp in comps:
        items = _item_pairs(fit, tab, comp)
        n_inv = sum(_invariant(it) for it in items)
        if n_inv < min_invariant:
            lacking.append(f"{comp.factor} [{_label(fit, comp.group)}] vs {comp.ref_factor} "
                           f"[{_label(fit, comp.ref_group)}]: {n_inv} invariant item(s)")
        a_r = tab.row(comp.ref_factor, "~1", "", comp.ref_group)
        a_f = tab.row(comp.factor, "~1", "", comp.group)
        p_r = tab.row(comp.ref_factor, "~~", comp.ref_factor, comp.ref_group)
        p_f = tab.row(comp.factor, "~~", comp.factor, comp.group)
        n_r, n_f = nobs[comp.ref_group - 1], nobs[comp.group - 1]
        spec.append((a_r, a_f, p_r, p_f, n_r, n_f))
        records.append({"construct": comp.construct, "factor": comp.factor,
                        "group": _label(fit, comp.group), "ref_factor": comp.ref_factor,
                        "ref_group": _label(fit, comp.ref_group), "n_invariant": n_inv})
    if lacking:
        raise InvarianceError(
            "latent means are compared only under (partial) scalar invariance, with at least "
            f"{min_invariant} items per factor whose loadings and intercepts are equal: "
            + "; ".join(lacking))
    rows = np.asarray(fit.problem.pmap.free_rows)
    base = fit.values.copy()

    def func(theta):
        vals = base.copy()
        vals[rows] = theta
        out = []
        for a_r, a_f, p_r, p_f, n_r, n_f in spec:
            pooled = ((n_r - 1) * vals[p_r] + (n_f - 1) * vals[p_f]) / (n_r + n_f - 2)
            diff = vals[a_f] - vals[a_r]
            out.extend([diff, diff / math.sqrt(pooled) if pooled > 0 else np.nan,
                        vals[p_f] / vals[p_r]])
        return np.array(out)

    vcov = fit.vcov().to_numpy()
    value, cov = delta_method(func, base[rows], vcov)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    table = pd.DataFrame(records)
    table["mean_diff"] = value[0::3]
    table["mean_diff_se"] = se[0::3]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["z"] = table["mean_diff"] / table["mean_diff_se"]
    table["pvalue"] = 2 * norm_sf(np.abs(table["z"]))
    table["d"] = value[1::3]
    table["d_se"] = se[1::3]
    table["var_ratio"] = value[2::3]
    table["var_ratio_se"] = se[2::3]
    if fit.n_groups <= 1:
        table = table.drop(columns=["group", "ref_group"])
    return table


_GH_NODES = 61


def _gauss_hermite(n: int = _GH_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[h(Z)], Z ~ N(0, 1) (probabilists' Gauss-Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


def _latent_moments(tab: _Table, vals: np.ndarray, factors: list, g: int):
    """Means and covariance matrix of ``factors`` in group ``g`` (0 for a fixed-out row)."""
    k = len(factors)
    mean = np.zeros(k)
    cov = np.zeros((k, k))
    for a, fa in enumerate(factors):
        key = (fa, "~1", "", g)
        mean[a] = vals[tab.index[key]] if key in tab.index else 0.0
        for b in range(a, k):
            fb = factors[b]
            r = tab.index.get((fa, "~~", fb, g), tab.index.get((fb, "~~", fa, g)))
            cov[a, b] = cov[b, a] = vals[r] if r is not None else 0.0
    return mean, cov


def _item_response(tab: _Table, vals: np.ndarray, item: str, factor: str, g: int,
                   lv_of: dict) -> tuple[float, float, float]:
    """(intercept, slope, residual variance) of the item's latent response as a function of
    ``factor`` in group ``g``, the item's other factors integrated out given ``factor``."""
    loads = {f: vals[tab.index[(f, "=~", item, g)]] for f in lv_of.get(item, [factor])
             if (f, "=~", item, g) in tab.index}
    nu = vals[tab.row(item, "~1", "", g)]
    theta = vals[tab.row(item, "~~", item, g)]
    lam = loads.pop(factor)
    if not loads:
        return nu, lam, theta
    others = list(loads)
    mean, cov = _latent_moments(tab, vals, [factor] + others, g)
    lo = np.array([loads[f] for f in others])
    beta = cov[1:, 0] / cov[0, 0]
    cond_cov = cov[1:, 1:] - np.outer(beta, cov[0, 1:])
    # E[eta_o | xi] = mean_o + beta (xi - mean_f)
    nu_x = nu + float(lo @ (mean[1:] - beta * mean[0]))
    return nu_x, lam + float(lo @ beta), theta + float(lo @ cond_cov @ lo)


def _expected_score(xi: np.ndarray, nu: float, lam: float, theta: float, tau: np.ndarray,
                    scores: np.ndarray) -> np.ndarray:
    """E[X | xi] of the graded probit item (see the module docstring)."""
    z = (nu + lam * xi[:, None] - tau[None, :]) / np.sqrt(theta)
    return scores[0] + norm_cdf(z) @ np.diff(scores)


def _category_variance(fit, item: str, g: int) -> tuple[float, np.ndarray]:
    """Sample variance (divisor n - 1) of the observed scores of an ordinal item in group
    ``g`` from its category counts, and the category scores."""
    st = fit.categorical[g - 1]
    counts = st.counts[item]
    x = np.asarray(counts.index, float)
    n = np.asarray(counts.to_numpy(), float)
    tot = n.sum()
    m = float(x @ n) / tot
    return float(((x - m) ** 2) @ n) / (tot - 1), x


def _continuous_variance(fit, item: str, g: int) -> float:
    """Sample variance (divisor n - 1) of a continuous item of an ordinal fit in group ``g``
    (its ML variance among the sample statistics)."""
    st = fit.categorical[g - 1]
    n = st.nobs
    return float(st.var[list(st.names).index(item)]) * n / (n - 1)


def dmacs(fit, constructs: Optional[Mapping[str, Sequence[str]]] = None,
          reference_group=None, all_items: bool = False) -> pd.DataFrame:
    """dMACS (Nye & Drasgow 2011) of the items whose loading or intercept (ordinal items:
    or a threshold) differs between a cell and its reference cell (``all_items=True``: every
    item).

    Columns: ``construct``, ``factor``, ``group``, ``ref_factor``, ``ref_group``, ``item``,
    ``ref_item``, ``loading_invariant``, ``intercept_invariant``, ``thresholds_invariant``,
    ``ordinal``, ``lambda_ref``, ``lambda_focal``, ``nu_ref``, ``nu_focal``, ``mean_focal`` /
    ``var_focal`` (latent mean and variance of the focal cell), ``sd_pooled`` (pooled item SD,
    sample variances with divisor n - 1; EM estimates under FIML; ordinal items: from the
    category frequencies), ``dmacs`` and ``dmacs_signed`` (ordinal items: the expected item
    score of the graded probit model, integrated over the focal latent distribution; module
    docstring).
    """
    if not fit.model.meanstructure:
        raise InvarianceError("dMACS needs intercepts: fit the model with a mean structure")
    cons = _constructs(fit, constructs)
    comps = _comparisons(fit, cons, reference_group)
    tab = _Table(fit)
    vals = fit.values
    ov = list(fit.model.ov_names)
    ordered = set(fit.options.get("ordered") or [])
    moments = None if ordered else fit.sample_moments_arrays
    nobs = fit.nobs
    lv_of: dict = {}
    for f, inds in fit.variables.indicators.items():
        for v in inds:
            lv_of.setdefault(v, []).append(f)
    nodes, weights = _gauss_hermite()
    records = []
    for comp in comps:
        a_f = vals[tab.row(comp.factor, "~1", "", comp.group)]
        p_f = vals[tab.row(comp.factor, "~~", comp.factor, comp.group)]
        n_r, n_f = nobs[comp.ref_group - 1], nobs[comp.group - 1]
        for it in _item_pairs(fit, tab, comp):
            invariant = _invariant(it)
            if invariant and not all_items:
                continue
            lam_r, lam_f = (vals[r] for r in it["lambda_rows"])
            nu_r, nu_f = (vals[r] for r in it["nu_rows"])
            if it["item"] in ordered:
                var_r, scores = _category_variance(fit, it["ref_item"], comp.ref_group)
                var_f, _ = _category_variance(fit, it["item"], comp.group)
                # counts are of the cases used in each group (pairwise: available cases)
                n_r = int(fit.categorical[comp.ref_group - 1].counts[it["ref_item"]].sum())
                n_f = int(fit.categorical[comp.group - 1].counts[it["item"]].sum())
                sd_pooled = math.sqrt(((n_r - 1) * var_r + (n_f - 1) * var_f)
                                      / (n_r + n_f - 2))
                xi = a_f + math.sqrt(max(p_f, 0.0)) * nodes
                th_r, th_f = it["threshold_rows"]
                e_r = _expected_score(xi, *_item_response(tab, vals, it["ref_item"],
                                                          comp.ref_factor, comp.ref_group,
                                                          lv_of),
                                      vals[np.asarray(th_r)], scores)
                e_f = _expected_score(xi, *_item_response(tab, vals, it["item"], comp.factor,
                                                          comp.group, lv_of),
                                      vals[np.asarray(th_f)], scores)
                diff = e_r - e_f
                d2 = float(weights @ diff ** 2)
                value = math.sqrt(max(d2, 0.0)) / sd_pooled
                signed = float(weights @ diff) / sd_pooled
            else:
                if moments is None:  # a continuous item of a fit with ordinal items
                    var_r = _continuous_variance(fit, it["ref_item"], comp.ref_group)
                    var_f = _continuous_variance(fit, it["item"], comp.group)
                else:
                    var_r = moments[comp.ref_group - 1][0][
                        ov.index(it["ref_item"]), ov.index(it["ref_item"])] * n_r / (n_r - 1)
                    var_f = moments[comp.group - 1][0][
                        ov.index(it["item"]), ov.index(it["item"])] * n_f / (n_f - 1)
                sd_pooled = math.sqrt(((n_r - 1) * var_r + (n_f - 1) * var_f)
                                      / (n_r + n_f - 2))
                dnu, dlam = nu_r - nu_f, lam_r - lam_f
                inner = dnu ** 2 + 2 * dnu * dlam * a_f + dlam ** 2 * (p_f + a_f ** 2)
                value = math.sqrt(max(inner, 0.0)) / sd_pooled
                signed = (dnu + dlam * a_f) / sd_pooled
            records.append({
                "construct": comp.construct, "factor": comp.factor,
                "group": _label(fit, comp.group), "ref_factor": comp.ref_factor,
                "ref_group": _label(fit, comp.ref_group), "item": it["item"],
                "ref_item": it["ref_item"], "loading_invariant": it["loading_invariant"],
                "intercept_invariant": it["intercept_invariant"],
                "thresholds_invariant": it["thresholds_invariant"], "ordinal": it["ordinal"],
                "lambda_ref": lam_r, "lambda_focal": lam_f, "nu_ref": nu_r, "nu_focal": nu_f,
                "mean_focal": a_f, "var_focal": p_f, "sd_pooled": sd_pooled,
                "dmacs": value, "dmacs_signed": signed})
    columns = ["construct", "factor", "group", "ref_factor", "ref_group", "item", "ref_item",
               "loading_invariant", "intercept_invariant", "thresholds_invariant", "ordinal",
               "lambda_ref", "lambda_focal", "nu_ref", "nu_focal", "mean_focal", "var_focal",
               "sd_pooled", "dmacs", "dmacs_signed"]
    table = pd.DataFrame(records, columns=columns)
    if fit.n_groups <= 1:
        table = table.drop(columns=["group", "ref_group"])
    return table
