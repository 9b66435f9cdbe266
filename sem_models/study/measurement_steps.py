"""Steps 2-5 of the study (docs/study.md): measurement models per informant x occasion,
longitudinal and format invariance with partial invariance, and the trait means by format,
with the items as **ordinal** (WLSMV: thresholds, polychoric correlations; the primary
analysis, STUDY.md step 2) and as **continuous** (MLR with FIML; the sensitivity check),
side by side.

Ordinal analysis:

* the 4-point items pile up at the top of the scale, so some categories are empty in a format
  or at an occasion; before any fit the categories are counted by format and occasion
  (table ``item_categories``) and an empty category is merged into its neighbour with one
  mapping per item for both formats and both occasions (:func:`invariance.collapse_categories`),
  so the thresholds of an item can be held equal everywhere;
* WLSMV with ``missing="pairwise"`` (FIML is not available for ordinal data), the theta
  parameterization (so the residual variances can be tested) and Wu & Estabrook's (2016)
  identification: configural, thresholds, metric, scalar (and strict across formats); the
  decisions use the robust indices of the WLS statistic at every step (lavaan's catML robust
  indices are undefined once thresholds are constrained; :mod:`invariance.ordinal`) and the
  Satorra (2000) scaled-shifted difference tests.

Tables (``res.tables``): ``item_categories``, ``measurement`` (both analyses, column
``analysis``), ``longitudinal`` / ``format_invariance`` / ``partial_invariance`` /
``trait_means`` / ``format_identification`` / ``dmacs`` (ordinal, primary) with the continuous
versions under ``*_continuous``, and ``invariance_comparison`` / ``trait_means_comparison``
(where the two analyses agree).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ORDINAL", "CONTINUOUS", "ordinal_data", "step_measurement", "step_longitudinal",
           "step_format_invariance", "trait_means_comparison", "invariance_comparison"]

ORDINAL = "ordinal (WLSMV)"
CONTINUOUS = "continuous (MLR)"
#: engine options of the ordinal analysis
ORDINAL_OPTS = {"missing": "pairwise"}
ORDINAL_SEQ = {"parameterization": "theta", "id_cat": "wu_estabrook2016"}
INFORMANT_NAMES = {"c": "child", "t": "therapist"}
TRAITS = ["c_bond", "c_task", "t_bond", "t_task"]
ALPHA = 0.05


def _chains(design) -> list[list[str]]:
    """Each item at its occasions (mid, end)."""
    first = design.occasions[0]
    out = []
    for c in design.columns():
        if f"_{first}_" in c:
            out.append([c.replace(f"_{first}_", f"_{o}_") for o in design.occasions])
    return out


def ordinal_data(ctx: Any) -> pd.DataFrame:
    """The reverse-scored data with empty categories merged the same way for both formats and
    occasions (computed once; the category table goes to ``res.tables["item_categories"]``)."""
    cached = getattr(ctx, "_ordinal_df", None)
    if cached is not None:
        return cached
    import invariance
    design, df = ctx.design, ctx.df
    items = list(design.columns())
    chains = _chains(design)
    freq = invariance.category_frequencies(df, items, group=ctx.group_column, chains=chains,
                                           group_labels=ctx.labels)
    odf = invariance.collapse_categories(df, items, "empty", group=ctx.group_column,
                                         chains=chains, group_labels=ctx.labels)
    record = odf.attrs.get("collapsed_categories", {})
    wide = freq.pivot_table(index=["item", "group"], columns="category", values="count",
                            aggfunc="sum", fill_value=0)
    wide.columns = [f"n_{int(c) if float(c).is_integer() else c}" for c in wide.columns]
    wide = wide.reset_index().rename(columns={"group": "format"})
    order = {v: k for k, v in enumerate(items)}
    wide = wide.sort_values(["item", "format"], key=lambda s: s.map(order)
                            if s.name == "item" else s).reset_index(drop=True)
    empty: dict = {}  # (item, format) -> its empty categories, in the order of freq
    for it, g, c in freq.loc[freq["empty"].astype(bool), ["item", "group", "category"]].itertuples(
            index=False):
        empty.setdefault((it, g), []).append(str(int(c)))
    wide["empty"] = [", ".join(empty.get((it, g), [])) for it, g in zip(wide["item"],
                                                                         wide["format"])]
    wide["collapsed"] = [", ".join(f"{int(o)}->{int(n)}" for o, n in record.get(it, {}).items())
                         for it in wide["item"]]
    ctx.res.tables["item_categories"] = wide
    ctx.res.text["collapsed_categories"] = record
    ctx._ordinal_df = odf
    return odf


def _fitm_ordinal(fit) -> dict:
    """The fit row of an ordinal fit: lavaan's standard and scaled-shifted chi-square, the
    robust (catML) CFI / TLI / RMSEA where lavaan defines them, those of the WLS statistic,
    SRMR."""
    from invariance.ordinal import robust_wls_measures
    m = fit.measures()

    def get(k):
        return float(m[k]) if k in m.index and np.isfinite(m[k]) else np.nan

    out = {k: get(k) for k in ("chisq", "df", "pvalue", "chisq_scaled", "pvalue_scaled",
                               "cfi_robust", "tli_robust", "rmsea_robust", "srmr")}
    out.update(robust_wls_measures(fit))
    return out


# ----------------------------------------------------------------------------- steps
def step_measurement(ctx: Any) -> None:
    """Reliability (continuous items) and the measurement model of each informant x occasion
    (bond + task; child: also with a wording factor), ordinal and continuous."""
    from measurement import reliability, state_model

    from ..api import cfa
    from .pipeline import _fitm
    res, design, df = ctx.res, ctx.design, ctx.df
    odf = ordinal_data(ctx)
    rel_rows, meas_rows = [], []
    missing = ctx.fit_opts["missing"]
    for i in design.informants:
        for o in design.occasions:
            sub = design.subset(informants=[i], occasions=[o])
            items = list(sub.columns())
            models = [("bond + task", state_model(sub))]
            if i == "c":
                models.append(("bond + task + wording factor",
                               state_model(sub, wording_factor=True)))
            for k, (name, syntax) in enumerate(models):
                fo = cfa(syntax, odf, ordered=items, **ORDINAL_OPTS)
                meas_rows.append({"informant": INFORMANT_NAMES[i], "occasion": o, "model": name,
                                  "analysis": ORDINAL, "n": int(fo.ntotal),
                                  **_fitm_ordinal(fo)})
                fc = cfa(syntax, df, **ctx.fit_opts)
                meas_rows.append({"informant": INFORMANT_NAMES[i], "occasion": o, "model": name,
                                  "analysis": CONTINUOUS, "n": int(fc.ntotal), **_fitm(fc)})
                if k == 0:
                    rel = reliability(fc, df, missing="ml" if missing == "fiml" else "listwise")
                    for fac, r in rel.iterrows():
                        rel_rows.append({"informant": INFORMANT_NAMES[i], "occasion": o,
                                         "subscale": fac.split("_")[-1],
                                         "items": int(r["n_items"]), "alpha": r["alpha"],
                                         "omega": r["omega"], "ave": r["ave"]})
    res.tables["reliability"] = pd.DataFrame(rel_rows)
    res.tables["measurement"] = pd.DataFrame(meas_rows)


def _long_sequence(ctx: Any, i: str, ordinal: bool):
    import invariance
    from measurement import state_model
    design = ctx.design
    sub = design.subset(informants=[i])
    model = state_model(sub, wording_factor=(i == "c"))
    constructs = {d: [design.factor(i, d, o) for o in design.occasions]
                  for d in design.dimensions}
    if i == "c":
        constructs["wording"] = [design.wording_factor(i, o) for o in design.occasions]
    common = dict(rules="chen2007", partial=True, partial_options={"max_steps": 4})
    if ordinal:
        return invariance.longitudinal(model, ordinal_data(ctx), constructs, ordered=True,
                                       levels=["configural", "thresholds", "metric", "scalar"],
                                       **ORDINAL_SEQ, **common, **ORDINAL_OPTS)
    return invariance.longitudinal(model, ctx.df, constructs,
                                   levels=["configural", "metric", "scalar"], **common,
                                   **ctx.fit_opts)


def step_longitudinal(ctx: Any) -> None:
    """Longitudinal invariance (mid vs end) per informant, ordinal and continuous."""
    res = ctx.res
    for ordinal, suffix in ((True, ""), (False, "_continuous")):
        rows = []
        for i in ctx.design.informants:
            seq = _long_sequence(ctx, i, ordinal)
            t = seq.table.reset_index()
            t.insert(0, "informant", INFORMANT_NAMES[i])
            rows.append(t)
            res.fits[f"longitudinal{suffix}_{i}"] = seq
        res.tables[f"longitudinal{suffix}"] = pd.concat(rows, ignore_index=True)


def _format_sequence(ctx: Any, i: str, ordinal: bool):
    import invariance
    from measurement import trait_model
    sub = ctx.design.subset(informants=[i])
    model = trait_model(sub, wording_factor=(i == "c"))
    common = dict(group=ctx.group_column, group_labels=ctx.labels, rules="chisq_difference",
                  partial=True, partial_options={"max_steps": 4})
    if ordinal:
        return invariance.sequence(model, ordinal_data(ctx), ordered=True,
                                   levels=["configural", "thresholds", "metric", "scalar",
                                           "strict"], **ORDINAL_SEQ, **common, **ORDINAL_OPTS)
    return invariance.sequence(model, ctx.df, levels=["configural", "metric", "scalar",
                                                      "strict"], **common, **ctx.fit_opts)


def step_format_invariance(ctx: Any) -> None:
    """Invariance across format of the trait models with partial invariance, the trait means
    by format (individual - group) and dMACS of the non-invariant items; ordinal and
    continuous; then where the two analyses agree."""
    res = ctx.res
    for ordinal, suffix in ((True, ""), (False, "_continuous")):
        rows, part_rows, diff_rows, dm_rows, id_rows = [], [], [], [], []
        for i in ctx.design.informants:
            name = INFORMANT_NAMES[i]
            seq = _format_sequence(ctx, i, ordinal)
            t = seq.table.reset_index()
            t["decision_chen2007"] = seq.decide("chen2007").to_numpy()
            t.insert(0, "informant", name)
            rows.append(t)
            for lvl, p in seq.partial_steps.items():
                p = p.copy()
                p.insert(0, "level", lvl)
                p.insert(0, "informant", name)
                part_rows.append(p)
            res.fits[f"format{suffix}_{i}"] = seq
            if ordinal:
                ident = seq.identification.reset_index()
                ident.insert(0, "informant", name)
                id_rows.append(ident)
            # trait means need (partial) scalar invariance: the scalar model that passed
            tab = seq.table
            scalar_ok = tab.loc["scalar", "decision"] == "invariant" or \
                tab.loc["scalar", "partial_decision"] == "invariant"
            ld = seq.latent_differences("scalar", reference_group=ctx.roles["group"])
            ld = ld[ld["factor"].isin(TRAITS)].copy()
            ld.insert(0, "informant", name)
            ld.insert(3, "difference", "individual - group")
            ld["scalar_model"] = ("partial scalar" if tab.loc["scalar", "decision"] !=
                                  "invariant" else "scalar") + ("" if scalar_ok
                                                                else " (rejected)")
            diff_rows.append(ld)
            dm = seq.dmacs("scalar", reference_group=ctx.roles["group"])
            if len(dm):
                dm = dm.copy()
                dm.insert(0, "informant", name)
                dm_rows.append(dm)
        res.tables[f"format_invariance{suffix}"] = pd.concat(rows, ignore_index=True)
        if part_rows:
            res.tables[f"partial_invariance{suffix}"] = pd.concat(part_rows, ignore_index=True)
        res.tables[f"trait_means{suffix}"] = pd.concat(diff_rows, ignore_index=True)
        if dm_rows:
            res.tables[f"dmacs{suffix}"] = pd.concat(dm_rows, ignore_index=True)
        if id_rows:
            res.tables["format_identification"] = pd.concat(id_rows, ignore_index=True)
    T = res.tables
    if "trait_means_continuous" in T:
        T["trait_means_comparison"] = trait_means_comparison(T["trait_means"],
                                                             T["trait_means_continuous"])
    parts = []
    for key, label in (("longitudinal", "mid vs end"), ("format_invariance", "format")):
        if key in T and f"{key}_continuous" in T:
            parts.append(invariance_comparison(T[key], T[f"{key}_continuous"], label))
    if parts:
        T["invariance_comparison"] = pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------------- agreement
def trait_means_comparison(ordinal: pd.DataFrame, continuous: pd.DataFrame) -> pd.DataFrame:
    """The trait mean differences of the two analyses side by side: ``d`` (standardized by the
    pooled latent SD, comparable across the two metrics), p, and whether they agree (same
    sign and the same side of alpha = .05)."""
    from .findings import analyses_agree
    o = ordinal.set_index("factor")
    c = continuous.set_index("factor")
    rows = []
    for f in [x for x in o.index if x in c.index]:
        ro, rc = o.loc[f], c.loc[f]
        agree, how = analyses_agree(ro["d"], ro["pvalue"], rc["d"], rc["pvalue"], ALPHA)
        rows.append({"informant": ro["informant"], "factor": f,
                     "difference": ro["difference"], "d_ordinal": ro["d"],
                     "d_se_ordinal": ro["d_se"], "p_ordinal": ro["pvalue"],
                     "scalar_model_ordinal": ro["scalar_model"], "d_continuous": rc["d"],
                     "d_se_continuous": rc["d_se"], "p_continuous": rc["pvalue"],
                     "scalar_model_continuous": rc["scalar_model"], "agree": agree,
                     "agreement": how})
    return pd.DataFrame(rows)


def invariance_comparison(ordinal: pd.DataFrame, continuous: pd.DataFrame,
                          sequence: str) -> pd.DataFrame:
    """Decisions of the two analyses per informant and level (the thresholds level exists in
    the ordinal analysis only), the parameters their partial searches freed, and whether the
    decisions agree."""
    rows = []
    for _, ro in ordinal.iterrows():
        sel = continuous[(continuous["informant"] == ro["informant"])
                         & (continuous["level"] == ro["level"])]
        rc = sel.iloc[0] if len(sel) else None
        if not str(ro.get("decision", "")):
            continue
        dc = "" if rc is None else str(rc.get("decision", ""))
        rows.append({"sequence": sequence, "informant": ro["informant"],
                     "level": ro["level"], "decision_ordinal": ro["decision"],
                     "partial_ordinal": _partial_text(ro),
                     "decision_continuous": dc if rc is not None else "(no such level)",
                     "partial_continuous": "" if rc is None else _partial_text(rc),
                     "agree": "" if rc is None else ("yes" if dc == ro["decision"] else "no")})
    return pd.DataFrame(rows)


def _partial_text(r) -> str:
    n = r.get("partial_freed")
    if n is None or not np.isfinite(n):
        return ""
    return f"{int(n)} freed -> {r.get('partial_decision', '')}"
