"""Sensitivity step of the alliance study (STUDY.md, analysis sequence 8): a two-level model
of the group format, children within therapy groups.

* ICCs of the alliance scale scores (trait level: both occasions' items; state level: per
  occasion), two estimates side by side:

  - ``icc_anova``: ICC(1) of the one-way random-effects ANOVA on the available scores,
    (MSB - MSW) / (MSB + (n0 - 1) MSW) with the size-adjusted mean cluster size
    n0 = (N - sum n_j^2 / N) / (J - 1) for unequal clusters (Snijders & Bosker 2012,
    "Multilevel Analysis", 2nd ed., ch. 3; Donner 1986, Int. Stat. Review 54:67-82);
    it can be negative when the groups differ less than chance allows;
  - ``icc_ml``: sigma_B^2 / (sigma_W^2 + sigma_B^2) of the saturated two-level model of the
    four trait scores (ML; lavaan's ``lavInspect(fit, "icc")``);

  with Kish's (1965) design effect 1 + (mean cluster size - 1) * ICC.
* A two-level measurement model of the four trait scale scores: within groups a child-rated
  and a therapist-rated alliance factor (bond and task scores, correlated factors); between
  groups the group-level alliance as rated by the children and by the therapist (random
  group intercepts with unit loadings on the informant's two scores, no between residual
  variance: with about 30 groups a free between factor model is not estimable), correlated.
  Its fit (chi-square, CFI, RMSEA, SRMR within and between) and estimates go into the report.

The two-level fit uses listwise deletion of the few children without a trait score (the
two-level FIML fit takes seconds). A fit that does not converge is reported with a warning;
one that raises makes the step fail after the ICC tables are stored (the study goes on).

Entry points: :func:`twolevel_sensitivity` (data in, tables out) and :func:`step_twolevel`
(the study step: reads and writes the pipeline's context), :func:`report_section` (HTML).
"""
from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

__all__ = ["TwoLevelSensitivity", "twolevel_sensitivity", "twolevel_data", "twolevel_model",
           "icc_anova",
           "step_twolevel", "report_section", "CLUSTER", "FALLBACK_CLUSTER"]

#: The therapy-group column of the alliance data (NaN in the individual format).
CLUSTER = "therapy_group"
#: Used when the data have no therapy-group ids.
FALLBACK_CLUSTER = "school"
_ESTIMATORS = ("ML", "MLR")
_INFORMANTS = {"c": "child", "t": "therapist"}


@dataclass
class TwoLevelSensitivity:
    """What :func:`twolevel_sensitivity` computed.

    ``tables``: ``twolevel_icc``, ``twolevel_fit`` and ``twolevel_estimates`` (the latter two
    only if the model could be fitted); ``cluster``: the clustering column used; ``notes``:
    sentences for the report (fallbacks, deleted rows, non-convergence); ``model``: the
    two-level syntax; ``fit``: the fitted model (``None`` if it failed); ``error``: the
    exception of a failed fit.
    """

    tables: dict = field(default_factory=dict)
    cluster: Optional[str] = None
    notes: list = field(default_factory=list)
    model: str = ""
    fit: Any = None
    error: Optional[BaseException] = None
    n: int = 0
    n_clusters: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.fit is not None and bool(self.fit.converged)


def icc_anova(values: np.ndarray, clusters: np.ndarray) -> dict:
    """ICC(1) of one variable from the one-way random-effects ANOVA (available cases).

    ``values``: N numbers (NaN = missing), ``clusters``: N cluster labels. Returns
    ``{"icc", "n", "clusters", "mean_size"}``; ``icc`` is NaN with fewer than two clusters
    or no within-cluster variation (Snijders & Bosker 2012, ch. 3; n0 of Donner
    1986 for unequal cluster sizes).
    """
    y = np.asarray(values, float)
    keep = ~np.isnan(y)
    y = y[keep]
    codes, _ = pd.factorize(np.asarray(clusters)[keep])
    N = y.size
    out = {"icc": np.nan, "n": int(N), "clusters": 0, "mean_size": np.nan}
    if N == 0:
        return out
    nj = np.bincount(codes).astype(float)
    nj_pos = nj[nj > 0]
    J = nj_pos.size
    out.update(clusters=int(J), mean_size=float(N / J))
    if J < 2 or N - J < 1:
        return out
    sums = np.bincount(codes, weights=y)
    means = np.divide(sums, nj, out=np.zeros_like(sums), where=nj > 0)
    ssw = float(np.sum((y - means[codes]) ** 2))
    ssb = float(np.sum(nj * (means - y.mean()) ** 2))
    msw = ssw / (N - J)
    msb = ssb / (J - 1)
    n0 = (N - float(np.sum(nj_pos ** 2)) / N) / (J - 1)
    den = msb + (n0 - 1.0) * msw
    if den > 0:
        out["icc"] = (msb - msw) / den
    return out


def twolevel_model(design) -> str:
    """The two-level measurement model of the trait scale scores (module docstring)."""
    within, between, fixed = [], [], []
    for i in design.informants:
        name = _INFORMANTS.get(i, i)
        scores = [design.factor(i, d) for d in design.dimensions]
        within.append(f"  {name}_w =~ " + " + ".join(scores))
        between.append(f"  {name}_b =~ " + " + ".join(f"1*{s}" for s in scores))
        fixed += [f"  {s} ~~ 0*{s}" for s in scores]
    return "\n".join(["level: 1", *within, "level: 2", *between, *fixed]) + "\n"


def _cluster_column(data: pd.DataFrame, cluster: str, fallback: Optional[str],
                    notes: list) -> tuple[pd.DataFrame, str]:
    """The rows to analyse and the name of their cluster-id column (see the notes)."""
    if cluster in data.columns and data[cluster].notna().any():
        ids = data[cluster]
        miss = int(ids.isna().sum())
        if miss:
            notes.append(f"{miss} children of the group format without a {cluster!r} id were "
                         "left out.")
            data = data[ids.notna()]
        col = cluster
        if fallback is not None and fallback in data.columns:
            per = data.groupby(cluster, sort=False)[fallback].nunique()
            if (per > 1).any():
                # labels repeated across schools (e.g. 1, 2, ... in each school): nest them
                col = f"{fallback}/{cluster}"
                data = data.assign(**{col: data[fallback].astype(str) + "/"
                                      + data[cluster].astype(str)})
                notes.append(f"{cluster!r} labels repeat across {fallback!r}: clusters are "
                             f"{fallback} x {cluster}.")
        return data, col
    if fallback is None or fallback not in data.columns:
        raise ValueError(f"the data have no cluster column: neither {cluster!r} nor "
                         f"{fallback!r}")
    notes.append(f"The data have no therapy-group ids ({cluster!r}): children are clustered by "
                 f"{fallback!r} instead, which mixes therapy groups of a school.")
    return data, fallback


def _group_rows(df: pd.DataFrame, group_column: str, group_label: Any, cluster: str,
                fallback: Optional[str], notes: list) -> tuple[pd.DataFrame, str]:
    if group_column not in df.columns:
        raise ValueError(f"the format column {group_column!r} is not in the data")
    rows = df[df[group_column].astype(str) == str(group_label)]
    if len(rows) == 0:
        raise ValueError(f"no rows of the group format {group_label!r} in {group_column!r}")
    return _cluster_column(rows, cluster, fallback, notes)


def twolevel_data(df: pd.DataFrame, design, group_column: str, group_label: Any, *,
                  cluster: str = CLUSTER, fallback_cluster: Optional[str] = FALLBACK_CLUSTER,
                  min_items: float = 0.5) -> tuple[pd.DataFrame, str]:
    """The data of the two-level model: the cluster-id column and the trait scale scores of
    the group format (``df`` reverse-scored); returns (data, cluster column name)."""
    from measurement import scale_means
    rows, col = _group_rows(df, group_column, group_label, cluster, fallback_cluster, [])
    trait = scale_means(rows, design, min_items=min_items, level="trait")
    return pd.concat([rows[[col]], trait], axis=1), col


def twolevel_sensitivity(df: pd.DataFrame, design, group_column: str, group_label: Any, *,
                         cluster: str = CLUSTER, fallback_cluster: Optional[str] = FALLBACK_CLUSTER,
                         estimator: str = "MLR", min_items: float = 0.5) -> TwoLevelSensitivity:
    """ICCs of the alliance scale scores and the two-level measurement model of the group
    format (rows with ``df[group_column] == group_label``); ``df`` has the items already
    reverse-scored. ``estimator``: ML or MLR (others: MLR, with a note).
    """
    from measurement import scale_means

    from ..api import sem

    out = TwoLevelSensitivity()
    rows, col = _group_rows(df, group_column, group_label, cluster, fallback_cluster,
                            out.notes)
    out.cluster = col
    trait = scale_means(rows, design, min_items=min_items, level="trait")
    state = scale_means(rows, design, min_items=min_items, level="state")
    ids = rows[col].to_numpy()

    # ----- ICCs -----------------------------------------------------------------------
    icc_rows = []
    for lev, tab in (("trait", trait), ("state", state)):
        for name in tab.columns:
            r = icc_anova(tab[name].to_numpy(), ids)
            parts = name.split("_")
            icc_rows.append({"scale": name, "level": lev,
                             "informant": _INFORMANTS.get(parts[0], parts[0]),
                             "dimension": parts[-1],
                             "occasion": parts[1] if lev == "state" else "both",
                             "n": r["n"], "clusters": r["clusters"],
                             "mean_cluster_size": r["mean_size"], "icc_anova": r["icc"],
                             "icc_ml": np.nan})
    icc = pd.DataFrame(icc_rows)
    out.tables["twolevel_icc"] = icc

    # ----- the two-level model ---------------------------------------------------------
    est = str(estimator).upper()
    if est not in _ESTIMATORS:
        out.notes.append(f"estimator {estimator} is not available for two-level models: MLR "
                         "is used.")
        est = "MLR"
    data = pd.concat([rows[[col]], trait], axis=1)
    out.model = twolevel_model(design)
    dropped = int(trait.isna().any(axis=1).sum())
    if dropped:
        out.notes.append(f"{dropped} of {len(trait)} children without all four trait scores "
                         "were left out of the two-level model (listwise deletion).")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sem(out.model, data, cluster=col, estimator=est, missing="listwise")
            meas = fit.measures()
            estimates = fit.estimates()
            icc_ml = fit.icc()
        except Exception as exc:  # noqa: BLE001 - reported; the caller decides
            out.error = exc
            fit = None
    msgs = []
    for w in caught:
        m = " ".join(str(w.message).split())
        # numpy's floating-point notes (e.g. the SRMR of a negative variance) say nothing
        # to a reader; the deleted rows are in the notes already
        if "rows were not used" in m or m.startswith("invalid value") or m in msgs:
            continue
        msgs.append(m)
    if fit is None:
        out.notes.append(f"The two-level model could not be fitted: "
                         f"{type(out.error).__name__}: {out.error}")
        return out
    out.fit = fit
    out.n = int(fit.ntotal)
    out.n_clusters = int(sum(fit.nclusters))
    if not fit.converged:
        note = ("the two-level model did not converge: its estimates and fit are not "
                "trustworthy")
        out.notes.append(note[0].upper() + note[1:] + ".")
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    sel = icc["level"].eq("trait") & icc["scale"].isin(icc_ml.index)
    icc.loc[sel, "icc_ml"] = icc.loc[sel, "scale"].map(icc_ml).astype(float)
    best = icc["icc_ml"].where(icc["icc_ml"].notna(), icc["icc_anova"])
    icc["design_effect"] = 1.0 + (icc["mean_cluster_size"] - 1.0) * best

    def g(k):
        v = meas.get(k, np.nan)
        return float(v) if v is not None and np.isfinite(v) else np.nan

    row = {"model": "within: child + therapist factors; between: group intercepts by "
                    "informant", "n": out.n, "clusters": out.n_clusters,
           "converged": bool(fit.converged), "chisq": g("chisq"), "df": g("df"),
           "pvalue": g("pvalue")}
    if est == "MLR":
        row.update(chisq_scaled=g("chisq_scaled"), pvalue_scaled=g("pvalue_scaled"))
    for k in ("cfi", "tli", "rmsea"):
        row[k] = g(k)
        if est == "MLR":
            row[f"{k}_robust"] = g(f"{k}_robust")
    row.update(srmr=g("srmr"), srmr_within=g("srmr_within"), srmr_between=g("srmr_between"),
               warning="; ".join(msgs))
    out.tables["twolevel_fit"] = pd.DataFrame([row])
    if np.isnan(row["srmr_between"]):
        out.notes.append("SRMR between is not available: an implied between-level variance "
                         "is not positive (see the warnings of the fit).")
    # loadings and (co)variances, without the between residual variances fixed at 0
    e = estimates[estimates["op"].isin(["=~", "~~"])]
    e = e[~((e["est"] == 0) & (e["se"].fillna(0) == 0))].copy()
    e["level"] = e["level"].map({1: "within", 2: "between"}).fillna(e["level"].astype(str))
    keep = ["level", "lhs", "op", "rhs", "est", "se", "z", "pvalue", "std_all"]
    out.tables["twolevel_estimates"] = e[[c for c in keep if c in e.columns]].reset_index(
        drop=True)
    return out


def step_twolevel(ctx) -> TwoLevelSensitivity:
    """The study step (pipeline context ``ctx``): tables into ``ctx.res.tables``, the notes
    into ``ctx.res.text["twolevel_notes"]``; a fit that raised makes the step fail (after
    the ICC tables are stored)."""
    res = ctx.res
    out = twolevel_sensitivity(ctx.df, ctx.design, ctx.group_column, ctx.roles["group"],
                               estimator=ctx.fit_opts.get("estimator", "MLR"))
    res.tables.update(out.tables)
    res.text["twolevel_notes"] = list(out.notes)
    res.text["twolevel_model"] = out.model
    res.text["twolevel_cluster"] = out.cluster
    res.fits["twolevel"] = out.fit
    if out.error is not None:
        raise RuntimeError(f"the two-level model could not be fitted: "
                           f"{type(out.error).__name__}: {out.error}") from out.error
    return out


def report_section(res: Any, number: Any = 6) -> list:
    """The HTML of the step's report section (a list of strings)."""
    from .report import _fit_table, _step_status, _table

    T = res.tables
    status = _step_status(res, "twolevel")
    if not status and "twolevel_icc" not in T:
        return []                                # not part of this run
    cl = res.text.get("twolevel_cluster") or CLUSTER
    parts = [f"<h2>{number}. Sensitivity: two-level model of the group format</h2>"
             "<p>Children of the group format nested in their clusters "
             f"(<code>{html.escape(str(cl))}</code>). ICCs of the scale scores: ICC(1) of the "
             "one-way ANOVA on the available scores and, for the trait scores, the ML "
             "estimate of the saturated two-level model; design effect 1 + (mean cluster "
             "size - 1) ICC. Two-level model of the four trait scores: within groups a "
             "child-rated and a therapist-rated alliance factor (bond, task), between groups "
             "the group-level alliance as rated by the children and by the therapist (random "
             "intercepts, unit loadings), correlated.</p>" + status]
    for note in res.text.get("twolevel_notes", []):
        parts.append(f"<p class='note'>{html.escape(str(note))}</p>")
    if "twolevel_icc" in T:
        parts.append("<h3>Intraclass correlations</h3>" + _table(
            T["twolevel_icc"], ["scale", "level", "occasion", "n", "clusters",
                                "mean_cluster_size", "icc_anova", "icc_ml", "design_effect"]))
    if "twolevel_fit" in T:
        fit = T["twolevel_fit"]
        parts.append(_fit_table(fit, ["model"], "the two-level model",
                                extra=["clusters", "srmr_within", "srmr_between",
                                       "converged"]))
        w = str(fit["warning"].iloc[0]) if "warning" in fit.columns else ""
        if w and w != "nan":
            parts.append(f"<p class='warn'>Warnings of the two-level fit: {html.escape(w)}</p>")
    if "twolevel_estimates" in T:
        parts.append("<h3>Loadings and (co)variances by level</h3>"
                     + _table(T["twolevel_estimates"]))
    if res.text.get("twolevel_model"):
        parts.append("<pre>" + html.escape(res.text["twolevel_model"]) + "</pre>")
    return parts
