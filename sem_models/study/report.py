"""HTML report and figures of :func:`sem_models.study.run_study`.

Figures are drawn with matplotlib on :class:`matplotlib.figure.Figure` objects (no pyplot
state, works headless): the path diagram of the structural model (from ``fit.graph``), the
response surfaces and contour plots by format (over the data's convex hull, both formats on
one outcome scale), the invariance fit-change chart and the trait means by format.  Figures
are SVG, except the 3-D surfaces (PNG at 200 dpi).  The report is one static ``index.html``
next to the figures, with every table also as ``tables/<name>.csv`` and the findings (with
their tests and computed verdicts) in ``findings.json``, which also lists every file written
(so that a rerun into the same folder removes them first).

Conventions of the report: numbers with 3 decimals, p values as ``.014`` / ``<.001``; format
differences are individual minus group, rater differences therapist minus child; a model whose
(robust) CFI is below .90 or RMSEA above .10 is flagged next to its results.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .figures import (make_figures, plot_invariance_changes, plot_path_diagram,  # noqa: F401
                      plot_trait_means)

__all__ = ["write_report", "write_tables", "poor_fit", "POOR_FIT_RULE"]

#: The rule that flags a model's fit as poor (robust versions when the estimator has them).
POOR_FIT_RULE = "CFI < .90 or RMSEA > .10 (robust versions for robust estimators)"


# ----------------------------------------------------------------------------- HTML
_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1320px; padding: 1.2em 2em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
.meta { color: #555; font-size: 0.9em; }
.conv { font-size: 0.85em; background: #f7f7f7; border-left: 3px solid #999; padding: 0.4em 0.8em; }
.tblwrap { overflow-x: auto; max-width: 100%; }
table.tbl { border-collapse: collapse; font-size: 0.78em; margin: 0.4em 0 1em 0;
            font-variant-numeric: tabular-nums; }
table.tbl th, table.tbl td { border-bottom: 1px solid #e3e3e3; padding: 2px 6px; text-align: right;
                             white-space: nowrap; }
table.tbl th { background: #f3f5f8; font-weight: 600; white-space: normal; max-width: 7em;
               vertical-align: bottom; }
table.tbl td.txt, table.tbl th.txt { text-align: left; }
tr.poor td { background: #fff4e5; }
.findings { border: 1px solid #b9c7d6; background: #f8fafc; padding: 0.4em 1em; border-radius: 6px; }
.finding { margin: 0.7em 0 1em 0; }
.verdict { display: inline-block; font-weight: bold; padding: 0 0.45em; border-radius: 4px;
           color: white; font-size: 0.85em; }
.v-supported { background: #2e7d32; } .v-partly { background: #b26a00; }
.v-not { background: #c62828; } .v-untested { background: #777; }
.met { color: #2e7d32; font-weight: bold; } .unmet { color: #c62828; font-weight: bold; }
.rule { font-size: 0.85em; color: #444; }
.ctx { font-size: 0.8em; color: #555; }
.fail { color: #b71c1c; background: #fdecea; padding: 0.3em 0.6em; border-radius: 4px; }
.warn { color: #7a4a00; background: #fff4e5; padding: 0.3em 0.6em; border-radius: 4px;
        font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
.glance { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; align-items: center; }
.glance img { width: 100%; margin: 0; }
.note { font-size: 0.8em; color: #7a5b00; } pre { font-size: 0.75em; background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
"""

_TEXT_COLUMNS = {"informant", "occasion", "subscale", "model", "level", "decision", "freed",
                 "scale", "dimension", "converged",
                 "lhs", "op", "rhs", "group", "label", "factor", "construct", "ref_factor",
                 "ref_group", "difference", "compared_with", "partial", "outcome", "predictor",
                 "parameter", "path", "format", "requirement", "step", "fit", "test",
                 "expected", "direction", "met", "difference_test", "lr_test", "scalar_model",
                 "decision_chen2007", "predictor_type", "warning", "seconds_label",
                 "analysis", "item", "empty", "collapsed", "sequence", "decision_ordinal",
                 "decision_continuous", "partial_ordinal", "partial_continuous", "agree",
                 "agreement", "scalar_model_ordinal", "scalar_model_continuous",
                 "constrained", "fixed", "released", "ref_item"}


def _is_p(col: str) -> bool:
    c = str(col)
    return c == "p" or "pvalue" in c or c.endswith("_p")


_COUNT_COLUMNS = {"n", "df", "npar", "items", "step", "n_freed", "n_invariant", "delta_df",
                  "wald_df", "lr_df", "n_valid", "partial_freed", "df_diff", "n_items"}


def _fmt(v: Any, is_p: bool = False, count: bool = False) -> str:
    from .findings import format_p

    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return ""
        if is_p:
            return format_p(v)
        if count and float(v).is_integer() and abs(v) < 1e9:
            return str(int(v))
        return "0.000" if abs(v) < 0.0005 else f"{v:.3f}"
    return html.escape(str(v))


def _table(df: Optional[pd.DataFrame], columns: Optional[list] = None,
           rename: Optional[dict] = None, poor: Optional[list] = None) -> str:
    """An HTML table: 3 decimals, p values as ``.014`` / ``<.001``; ``poor``: row flags."""
    if df is None or len(df) == 0:
        return "<p><em>(empty)</em></p>"
    df = df.reset_index(drop=True)
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    rename = rename or {}
    cols = list(df.columns)
    # exact (CSV) column names; <wbr> lets long names wrap after an underscore
    head = "".join(f"<th class='{'txt' if c in _TEXT_COLUMNS else 'num'}'>"
                   + html.escape(str(rename.get(c, c))).replace("_", "_<wbr>") + "</th>"
                   for c in cols)
    body = []
    flags = poor if poor is not None else [False] * len(df)
    for k, (_, r) in enumerate(df.iterrows()):
        cells = "".join(f"<td class='{'txt' if c in _TEXT_COLUMNS else 'num'}'>"
                        f"{_fmt(v, _is_p(c), c in _COUNT_COLUMNS)}</td>"
                        for c, v in zip(cols, r.to_list()))
        cls = " class='poor'" if flags[k] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return (f'<div class="tblwrap"><table class="tbl"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def poor_fit(row: Any) -> str:
    """``""`` or why the fit of a model (a row with cfi / rmsea, robust versions preferred) is
    poor by :data:`POOR_FIT_RULE`."""
    def get(k):
        for c in (f"{k}_robust", f"{k}_robust_wls", k):
            v = row.get(c) if hasattr(row, "get") else None
            if v is not None and isinstance(v, (int, float, np.floating)) and math.isfinite(v):
                return float(v), c
        return None, k

    why = []
    cfi, cn = get("cfi")
    rmsea, rn = get("rmsea")
    if cfi is not None and cfi < 0.90:
        why.append(f"{cn} {cfi:.3f} < .90")
    if rmsea is not None and rmsea > 0.10:
        why.append(f"{rn} {rmsea:.3f} > .10")
    return "; ".join(why)


_FIT_COLUMNS = ["n", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr"]
# robust estimators: lavaan's chisq next to chisq_scaled, the scaled p and the robust indices
# (the standard CFI / TLI / RMSEA and p are in the CSV tables)
_FIT_COLUMNS_ROBUST = ["n", "chisq", "chisq_scaled", "df", "pvalue_scaled", "cfi_robust",
                       "tli_robust", "rmsea_robust", "srmr"]
# ordinal items: lavaan's robust (catML) indices where defined and those of the WLS statistic
_FIT_COLUMNS_ORDINAL = ["n", "chisq", "chisq_scaled", "df", "pvalue_scaled", "cfi_robust",
                        "rmsea_robust", "cfi_robust_wls", "tli_robust_wls", "rmsea_robust_wls",
                        "srmr"]


def _fit_table(df: Optional[pd.DataFrame], labels: list, what: str,
               extra: Optional[list] = None, rename: Optional[dict] = None,
               drop: Sequence[str] = ()) -> str:
    """A table of fitted models with a ``fit`` column and, below it, the poorly fitting
    models named in the text."""
    if df is None or len(df) == 0:
        return "<p><em>(empty)</em></p>"
    df = df.reset_index(drop=True).copy()
    flags = [poor_fit(r) for _, r in df.iterrows()]
    df["fit"] = ["poor" if f else "" for f in flags]
    fitcols = (_FIT_COLUMNS_ORDINAL if "cfi_robust_wls" in df.columns else
               _FIT_COLUMNS_ROBUST if "chisq_scaled" in df.columns else _FIT_COLUMNS)
    cols = labels + [c for c in fitcols if c in df.columns and c not in drop] + (extra or []) \
        + ["fit"]
    out = _table(df, cols, rename=rename, poor=[bool(f) for f in flags])
    bad = [(" ".join(str(df.loc[k, c]) for c in labels if c in df.columns), f)
           for k, f in enumerate(flags) if f]
    if bad:
        out += ("<p class='warn'><b>Poor fit</b> (" + POOR_FIT_RULE + ") of " + what + ": "
                + "; ".join(f"{html.escape(n)} ({html.escape(f)})" for n, f in bad)
                + ". Estimates from these models are reported but should be read with "
                "caution.</p>")
    return out


def _img(res: Any, name: str, alt: str) -> str:
    f = res.figures.get(name)
    return f'<img src="{f}" alt="{html.escape(alt)}">' if f else ""


def _step_status(res: Any, key: str) -> str:
    """A failure / not-run notice for the report section of step ``key`` (or "")."""
    title = getattr(res, "steps", {}).get(key)
    if title is None:
        return ""
    if title in res.failed:
        return (f"<p class='fail'>step {html.escape(title)} failed: "
                f"{html.escape(res.failed[title])}</p>")
    if title not in res.timings and res.interrupted is not None:
        return f"<p class='fail'>step {html.escape(title)} was not run: the run was interrupted.</p>"
    return ""


def _verdict_class(v: str) -> str:
    from .findings import VERDICTS
    classes = dict(zip(VERDICTS, ("v-supported", "v-partly", "v-not", "v-untested")))
    return classes.get(v, "")


def _findings_html(res: Any) -> list:
    from .findings import VERDICT_RULE, format_p

    parts = ["<h2>Findings</h2>", f"<p class='rule'><b>Verdict rule.</b> "
             f"{html.escape(VERDICT_RULE)}</p>", "<div class='findings'>"]
    if not res.findings:
        parts.append("<p><em>The findings were not checked"
                     + (" (the run was interrupted)" if res.interrupted else "") + ".</em></p>")
    for f in res.findings:
        v = f["verdict"]
        parts.append(f"<div class='finding'><span class='verdict {_verdict_class(v)}'>"
                     f"{html.escape(v)}</span> <b>Finding {f['id']}.</b> "
                     f"{html.escape(f['finding'])}")
        if f.get("tests"):
            rows = []
            for t in f["tests"]:
                p = format_p(t.get("p"))
                exp = t["expect"] + (f", {t['direction']}" if t.get("direction") and
                                     t["expect"] == "significant" else "")
                met = "<span class='met'>met</span>" if t["met"] else \
                    "<span class='unmet'>not met</span>"
                stat = "" if t.get("statistic") is None else \
                    f"{html.escape(str(t.get('statistic_type') or ''))} = {t['statistic']:.3f}"
                est = "" if t.get("estimate") is None else f"{t['estimate']:.3f}"
                rows.append(f"<tr><td class='txt'>{html.escape(t['name'])}</td><td>{est}</td>"
                            f"<td>{stat}</td><td>{p}</td><td class='txt'>{html.escape(exp)}</td>"
                            f"<td class='txt'>{met}</td></tr>")
            parts.append("<div class='tblwrap'><table class='tbl'><thead><tr>"
                         "<th class='txt'>test</th><th>estimate</th><th>statistic</th><th>p</th>"
                         "<th class='txt'>expected</th><th class='txt'>result</th></tr></thead>"
                         f"<tbody>{''.join(rows)}</tbody></table></div>")
        elif f.get("reason"):
            parts.append(f"<p class='fail'>{html.escape(f['reason'])}</p>")
        if f.get("context"):
            parts.append(f"<div class='ctx'>{html.escape(f['context'])}</div>")
        if f.get("fit_warning"):
            parts.append(f"<p class='warn'>{html.escape(f['fit_warning'])}</p>")
        parts.append("</div>")
    parts.append("</div>")
    return parts


def _robust_rename(df: Optional[pd.DataFrame]) -> dict:
    """Display names of the change columns: robust versions say so (ordinal items: the robust
    indices of the WLS statistic)."""
    if df is None or "cfi_robust" not in df.columns:
        return {}
    kind = "robust WLS" if "cfi_robust_wls" in df.columns else "robust"
    return {"delta_cfi": f"delta_cfi ({kind})", "delta_tli": f"delta_tli ({kind})",
            "delta_rmsea": f"delta_rmsea ({kind})"}


def _difference_tests(df: Optional[pd.DataFrame], col: str = "difference_test") -> str:
    if df is None or col not in df.columns:
        return ""
    names = sorted({str(v) for v in df[col].dropna() if str(v) and str(v) != "nan"})
    return ", ".join(names)


def _invariance_table(df: Optional[pd.DataFrame], extra: Optional[list] = None) -> str:
    if df is None:
        return ""
    df = df.copy()
    if "partial_freed" in df.columns:
        df["partial"] = [f"{int(n)} freed: {d}" if pd.notna(n) else ""
                         for n, d in zip(df["partial_freed"], df["partial_decision"])]
    cols = ["delta_chisq", "delta_df", "delta_pvalue", "delta_cfi", "delta_rmsea",
            "delta_srmr", "compared_with", "decision", "partial"] + (extra or [])
    return _fit_table(df, ["informant", "level"], "these invariance models", extra=cols,
                      rename=_robust_rename(df), drop=("tli", "tli_robust", "tli_robust_wls"))


def _analysis_note(primary: bool) -> str:
    if primary:
        return ("<p class='rule'><b>Items as ordinal</b> (primary analysis): WLSMV, thresholds "
                "and polychoric correlations, missing = pairwise, theta parameterization, "
                "Wu &amp; Estabrook (2016) identification; chisq and the scaled-shifted "
                "chisq_scaled side by side; delta_chisq: Satorra (2000) scaled-shifted "
                "difference; delta_cfi / delta_rmsea: robust indices of the WLS statistic "
                "(<code>*_robust_wls</code>: lavaan's catML robust indices, "
                "<code>cfi_robust</code>, are undefined once thresholds are held equal).</p>")
    return ("<p class='rule'><b>Items as continuous</b> (sensitivity check): MLR with FIML; "
            "delta_chisq: Satorra-Bentler 2001 scaled difference; delta_cfi / delta_rmsea: "
            "robust indices.</p>")


def _agreement_text(res: Any) -> str:
    """One paragraph: where the ordinal and the continuous analyses agree."""
    T = res.tables
    parts = []
    ic = T.get("invariance_comparison")
    if ic is not None and len(ic):
        both = ic[ic["agree"].isin(["yes", "no"])]
        n_yes = int((both["agree"] == "yes").sum())
        dis = [f"{r['informant']} {r['sequence']} {r['level']} (ordinal: {r['decision_ordinal']}"
               f"; continuous: {r['decision_continuous']})"
               for _, r in both[both["agree"] == "no"].iterrows()]
        parts.append(f"The invariance decisions agree at {n_yes} of {len(both)} levels tested "
                     "in both analyses" + (": they differ at " + "; ".join(dis) if dis else "")
                     + ".")
    tm = T.get("trait_means_comparison")
    if tm is not None and len(tm):
        agree = tm[tm["agree"].astype(bool)]
        parts.append(f"The trait mean differences agree (same direction, same side of p = .05) "
                     f"for {len(agree)} of {len(tm)} traits"
                     + "".join(f"; {r['factor']}: {r['agreement']}"
                               for _, r in tm[~tm["agree"].astype(bool)].iterrows()) + ".")
    if not parts:
        return ""
    return ("<p class='conv'><b>Ordinal vs continuous.</b> " + html.escape(" ".join(parts))
            + " Verdicts use the ordinal (primary) analysis.</p>")


def _measurement_sections(res: Any) -> list:
    """Report sections 1 (reliability and measurement models) and 2 (invariance, partial
    invariance, trait means): the ordinal analysis (primary) and the continuous one (sensitivity)
    side by side, and where they agree."""
    T = res.tables
    parts = ["<h2>1. Reliability and measurement models</h2>"
             "<p>Items reverse-scored (2, 4, 6). One model per informant x occasion with "
             "correlated bond and task factors (child: also with a wording factor for the "
             "negatively worded items), fitted with the items as ordinal (WLSMV, the primary "
             "analysis) and as continuous (MLR, FIML). Omega as semTools::compRelSEM; alpha "
             "on observed items.</p>" + _step_status(res, "reliability")]
    if "reliability" in T:
        parts.append(_table(T["reliability"]))
    if "item_categories" in T:
        ic = T["item_categories"]
        rec = res.text.get("collapsed_categories", {})
        parts.append("<h3>Item categories by format (before collapsing)</h3><p>Thresholds can "
                     "only be held equal when every category of an item is observed in both "
                     "formats and at both occasions. " + (
                         f"{len(rec)} items had an empty category; it was merged into its "
                         "neighbour with the same mapping for both formats and occasions "
                         "(<code>collapsed</code>)." if rec else "No category was empty.")
                     + "</p>")
        show = ic[(ic["empty"].astype(str) != "") | (ic["collapsed"].astype(str) != "")]
        parts.append(_table(show if len(show) else ic.head(8)))
    if "measurement" in T:
        parts.append(_fit_table(T["measurement"], ["informant", "occasion", "model",
                                                   "analysis"], "these measurement models"))

    parts.append("<h2>2. Measurement invariance</h2>"
                 "<p>Each level is compared with the last model that passed; when a level "
                 "fails, constraints are freed one at a time by the largest score test "
                 "(partial invariance) and the next level is fitted on top of the partial model "
                 "that passed (<code>compared_with</code>), or reported as <i>not tested: "
                 "previous level failed</i>. With the items as ordinal, the thresholds are "
                 "tested before the loadings (Wu &amp; Estabrook 2016); an item with three "
                 "categories has no testable threshold constraint (its two thresholds trade "
                 "against its intercept and scale), and the thresholds of an item are freed "
                 "together.</p>")
    parts.append(_agreement_text(res))
    for key, title, step, extra in (
            ("longitudinal", "Longitudinal (mid vs end) per informant, Chen (2007) rules",
             "longitudinal", None),
            ("format_invariance", "Across format (trait models): decisions by the chi-square "
             "difference test (alpha = .05), Chen (2007) for comparison", "format",
             ["decision_chen2007"])):
        parts.append(f"<h3>{html.escape(title)}</h3>" + _step_status(res, step))
        for suffix, primary in (("", True), ("_continuous", False)):
            if f"{key}{suffix}" in T:
                parts.append(_analysis_note(primary))
                parts.append(_invariance_table(T[f"{key}{suffix}"], extra))
    if "invariance_comparison" in T:
        parts.append("<h3>Invariance decisions: ordinal vs continuous</h3>"
                     + _table(T["invariance_comparison"]))
    if "format_identification" in T:
        parts.append("<h3>What each level constrained and freed for identification (items "
                     "ordinal, across format)</h3>"
                     + _table(T["format_identification"],
                              ["informant", "level", "constrained", "equalities", "npar",
                               "freed", "fixed", "released"]))
    parts.append(_img(res, "invariance_changes", "invariance fit changes"))
    for suffix, primary in (("", True), ("_continuous", False)):
        if f"partial_invariance{suffix}" in T:
            tab = T[f"partial_invariance{suffix}"]
            what = "ordinal" if primary else "continuous"
            parts.append(f"<h3>Partial invariance, items {what}: constraints freed one at a "
                         "time by the largest score test</h3>")
            cols = ["informant", "level", "step", "freed", "score_X2", "score_df",
                    "score_pvalue", "chisq", "chisq_scaled", "df",
                    "cfi_robust_wls" if primary else "cfi_robust", "delta_chisq",
                    "delta_pvalue", "delta_cfi", "decision"]
            parts.append(_table(tab, [c for c in cols if c in tab.columns],
                                rename=_robust_rename(tab)))
    for suffix, primary in (("", True), ("_continuous", False)):
        if f"dmacs{suffix}" in T:
            what = ("ordinal: expected item score of the graded probit model" if primary
                    else "continuous")
            parts.append(f"<h3>Size of the non-invariance: dMACS of the freed items ({what}; "
                         "Nye &amp; Drasgow 2011)</h3>"
                         + _table(T[f"dmacs{suffix}"], ["informant", "factor", "item",
                                                        "group", "ref_group", "dmacs",
                                                        "dmacs_signed"]))
    tm_cols = ["informant", "factor", "difference", "scalar_model", "n_invariant",
               "mean_diff", "mean_diff_se", "z", "pvalue", "d", "d_se", "var_ratio"]
    if "trait_means" in T:
        parts.append("<h3>Trait means by format: individual - group (d = mean difference / "
                     "pooled latent SD), in the (partial) scalar models</h3>"
                     + _analysis_note(True) + _table(T["trait_means"], tm_cols))
    if "trait_means_continuous" in T:
        parts.append(_analysis_note(False) + _table(T["trait_means_continuous"], tm_cols))
    if "trait_means_comparison" in T:
        parts.append("<h3>Trait means: ordinal vs continuous (d is comparable across the two "
                     "metrics)</h3>" + _table(T["trait_means_comparison"]))
    parts.append(_img(res, "trait_means", "trait means by format"))
    return parts


def write_report(res: Any, out: Path) -> Path:
    """Write ``index.html`` into ``out`` (and the tables and findings.json); returns its
    path.  Sections whose step failed say so ("step X failed: message")."""
    import datetime

    from .. import __version__

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    T = res.tables
    o = res.options
    fmt = o.get("formats", {"individual": "individual", "group": "group"})
    robust = str(o.get("estimator", "")).upper() in ("MLR", "MLM", "MLMV", "MLMVS")
    cluster = o.get("cluster")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>sem-models study report</title><style>{_CSS}</style></head><body>",
             "<h1>Therapeutic alliance study: sem-models report</h1>",
             f"<p class='meta'>sem-models {__version__} &middot; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC &middot; "
             f"estimator {html.escape(str(o['estimator']))}, missing = "
             f"{html.escape(str(o['missing']))}"
             + (f", cluster-robust SEs by {html.escape(str(cluster))}" if cluster else "")
             + f" &middot; run time {res.timings.get('total', 0):.1f} s<br>"
             f"Data: {html.escape(str(o.get('data', '')))}; format column "
             f"<code>{html.escape(str(o.get('group_column', 'format')))}</code>: individual = "
             f"<code>{html.escape(str(fmt['individual']))}</code>, group = "
             f"<code>{html.escape(str(fmt['group']))}</code>.</p>",
             "<p class='conv'><b>Conventions.</b> Numbers have 3 decimals; p values are shown "
             "as .014 or &lt;.001. Format differences are <b>individual minus group</b> "
             "throughout (trait means, surface-parameter differences); rater differences are "
             "<b>therapist minus child</b> (D of the latent congruence model). For the robust "
             "estimator the tables show lavaan's <code>chisq</code> and its "
             "<code>chisq_scaled</code> side by side, with the robust CFI, TLI and RMSEA; "
             "measurement and invariance are analysed with the items as ordinal (WLSMV, the "
             "primary analysis, whose tests give the verdicts) and as continuous (MLR, a "
             "sensitivity check) side by side; "
             "models whose fit is poor (" + POOR_FIT_RULE + ") are flagged next to their "
             "results.</p>"]
    if res.interrupted:
        parts.append(f"<p class='fail'><b>The run was interrupted</b> during step "
                     f"{html.escape(res.interrupted)}: this report holds what was finished.</p>")
    if res.failed:
        parts.append("<div class='fail'><b>Steps that failed</b> (the other steps ran):<ul>"
                     + "".join(f"<li>step {html.escape(k)} failed: {html.escape(v)}</li>"
                               for k, v in res.failed.items()) + "</ul></div>")
    parts += _findings_html(res)
    glance = [(n, a) for n, a in (("path_diagram", "path diagram"),
                                  ("response_surface", "response surfaces by format"),
                                  ("trait_means", "trait means by format"),
                                  ("invariance_changes", "invariance fit changes"))
              if n in res.figures]
    if glance:
        parts.append("<h2>At a glance</h2><div class='glance'>")
        parts += [f"<a href='{res.figures[n]}'><img src='{res.figures[n]}' alt='{a}'></a>"
                  for n, a in glance]
        parts.append("</div>")

    parts += _measurement_sections(res)

    parts.append("<h2>3. Outcome models</h2><p>Follow-up externalizing (ext_fu) and "
                 "internalizing (int_fu) problems on the four trait factors, baseline "
                 "controlled; trait factors measured by the mid and end scale means (latent "
                 "state-trait parcels); FIML, " + html.escape(str(o["estimator"]))
                 + (f", cluster-robust standard errors by {html.escape(str(cluster))} (few "
                    "clusters: treat them with caution)" if cluster else "") + ".</p>"
                 + _step_status(res, "outcomes"))
    parts.append(_img(res, "path_diagram", "path diagram"))
    pcols = ["lhs", "rhs", "group", "est", "se", "z", "pvalue", "ci_lower", "ci_upper",
             "std_all"]
    if "outcome_fit" in T:
        parts.append(_fit_table(T["outcome_fit"], ["model"], "these outcome models"))
    if "outcome_paths" in T:
        parts.append("<h3>Pooled</h3>" + _table(T["outcome_paths"], pcols))
    if "outcome_paths_format" in T:
        parts.append("<h3>By format</h3><p>Paths free in each format; parcel residual variances "
                     "and trait (co)variances equal across the (randomized) formats.</p>"
                     + _table(T["outcome_paths_format"], pcols))
    if "outcome_moderation" in T:
        lr = _difference_tests(T["outcome_moderation"], "lr_test")
        parts.append("<h3>Format moderation of each path (Wald); all paths jointly also by "
                     f"the {html.escape(lr or 'likelihood-ratio')} test</h3>"
                     "<p class='note'>With cluster-robust standard errors from few clusters "
                     "and more free parameters than clusters, the robust covariance matrix is "
                     "rank deficient: joint Wald tests are then too liberal; prefer the "
                     "likelihood-ratio test.</p>"
                     + _table(T["outcome_moderation"]))
    if "outcome_paths_items" in T or _step_status(res, "items"):
        parts.append("<h3>Check: pooled item-level model (48 items, wording factors for the "
                     "child items)</h3>" + _step_status(res, "items"))
        if "outcome_paths_items" in T:
            parts.append(_table(T["outcome_paths_items"], pcols))

    parts.append("<h2>4. Discrepancy: response surface analysis</h2><p>int_fu on therapist "
                 "(X) and child (Y) trait bond scale means, centred at their pooled mean, "
                 "int_pre controlled, by format. a1/a2: slope/curvature along the line of "
                 "congruence; a3/a4 along the line of incongruence (a3 &gt; 0: more problems "
                 "when the therapist rates the bond higher than the child); a5 asymmetry. The "
                 "surfaces are drawn over each format's observed scores (their convex hull; "
                 "dots: the data), both formats on one int_fu scale.</p>"
                 + _step_status(res, "rsa"))
    parts.append(_img(res, "response_surface", "response surfaces"))
    parts.append(_img(res, "response_contour", "contour plots"))
    scols = ["group", "parameter", "est", "se", "z", "pvalue", "ci_lower", "ci_upper"]
    if "rsa_surface" in T:
        parts.append("<h3>Surface parameters</h3>" + _table(T["rsa_surface"], scols))
    if "rsa_group_tests" in T:
        parts.append("<h3>Format differences of the surface parameters (Wald; diff = "
                     "individual - group)</h3>" + _table(T["rsa_group_tests"]))
    if "rsa_bootstrap" in T:
        by = (f", whole {o['cluster']}s resampled within format" if o.get("cluster")
              else "")
        parts.append(f"<h3>Bootstrap percentile intervals ({o['bootstrap']} replicates, "
                     f"OLS on observed scores{html.escape(by)})</h3>"
                     + _table(T["rsa_bootstrap"]))
    if "rsa_stationary" in T:
        parts.append("<h3>Stationary point and principal axes (delta method)</h3>"
                     + _table(T["rsa_stationary"], scols))
    if "rsa_congruence" in T:
        parts.append("<h3>Congruence conditions (problem outcome: minimum at congruence)</h3>"
                     + _table(T["rsa_congruence"]))
    if "rsa_models" in T:
        test = ("Satorra-Bentler 2001 scaled difference" if robust
                else "likelihood-ratio (chi-square difference)")
        parts.append(f"<h3>Models: AICc, and the {test} test against the full model "
                     "(chisq_diff)</h3>" + _table(T["rsa_models"]))
    if "rsa_discrepancy" in T:
        parts.append("<h3>Enough discrepancy? Shares of cases whose z-scored bond ratings "
                     "differ by more than .5 SD (therapist higher / child higher)</h3>"
                     + _table(T["rsa_discrepancy"]))

    parts.append("<h2>5. Latent congruence model (bond, items of both occasions)</h2><p>"
                 "Therapist = M + D/2, child = M - D/2 with loadings and intercepts equal "
                 "across raters (Cheung 2009; same-item residuals correlated over time); "
                 "int_fu on the latent mean M and difference D (therapist - child), int_pre "
                 f"controlled; missing = {html.escape(str(res.text.get('lcm_missing', o['missing'])))}"
                 ".</p>" + _step_status(res, "lcm"))
    if "lcm_fit" in T:
        parts.append(_fit_table(T["lcm_fit"], ["model"], "the latent congruence model"))
    if "lcm_paths" in T:
        parts.append(_table(T["lcm_paths"], pcols[:-1]))
    if "lcm_moderation" in T:
        parts.append("<h3>Equal paths across format (Wald)</h3>" + _table(T["lcm_moderation"]))
    if "lcm_latent" in T:
        parts.append(_table(T["lcm_latent"], ["lhs", "op", "rhs", "group", "est", "se",
                                              "pvalue"]))
    from .resampling_step import report_section as _resampling_section
    parts += _resampling_section(res, _table)

    from .twolevel_step import report_section
    parts += report_section(res, 6)
    parts.append("<h2>Run</h2>")
    tim = pd.DataFrame([{"step": k, "seconds": float(v)} for k, v in res.timings.items()])
    parts.append(_table(tim))
    if res.notes:
        parts.append("<h3>Warnings</h3><ul>")
        for n in res.notes:
            parts.append(f"<li class='note'>{html.escape(n['step'])}: "
                         f"{html.escape(n['warning'][:400])}</li>")
        parts.append("</ul>")
    if "outcome_syntax" in res.text:
        parts.append("<h3>Outcome model syntax (pooled)</h3><pre>"
                     + html.escape(res.text["outcome_syntax"]) + "</pre>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    if "index.html" not in res.files:
        res.files.append("index.html")
    write_tables(res, out)
    return path


def write_tables(res: Any, out: Path) -> None:
    """Every table as ``tables/<name>.csv`` and ``findings.json`` (findings with their tests
    and verdicts, failed steps, timings, options and the list of files written).

    Called after every step: a table is written when it is new or has been replaced since the
    last call (the tables of finished steps are not modified in place), so each CSV is written
    once per run rather than once per step."""
    import json

    from .. import __version__
    from .findings import VERDICT_RULE
    from .pipeline import GENERATOR

    tdir = Path(out) / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    written = res.__dict__.setdefault("_written_tables", {})
    for name, tab in res.tables.items():
        if written.get(name) is tab and (tdir / f"{name}.csv").is_file():
            continue
        tab.to_csv(tdir / f"{name}.csv", index=False)
        written[name] = tab
        rel = f"tables/{name}.csv"
        if rel not in res.files:
            res.files.append(rel)
    if "findings.json" not in res.files:
        res.files.append("findings.json")
    doc = {"generator": GENERATOR, "version": __version__,
           "complete": res.report is not None and res.interrupted is None,
           "interrupted": res.interrupted,
           "failed_steps": [{"step": k, "message": v} for k, v in res.failed.items()],
           "verdict_rule": VERDICT_RULE, "findings": res.findings, "timings": res.timings,
           "options": res.options, "files": list(res.files)}
    tmp = Path(out) / "findings.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    tmp.replace(Path(out) / "findings.json")
