"""HTML report and figures of :func:`sem_models.study.run_study`.

Figures are drawn with matplotlib on :class:`matplotlib.figure.Figure` objects (no pyplot
state, works headless): the path diagram of the structural model (from ``fit.graph``), the
response surfaces and contour plots by format, the invariance fit-change chart and the trait
means by format. The report is one static ``index.html`` next to the PNG files, with every
table also as ``tables/<name>.csv`` and the findings in ``findings.json``.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

__all__ = ["plot_path_diagram", "plot_invariance_changes", "plot_trait_means", "make_figures",
           "write_report", "write_tables"]


# ----------------------------------------------------------------------------- figures
def plot_path_diagram(fit: Any, title: Optional[str] = None, figsize=(9.0, 6.0)) -> Any:
    """Path diagram of a fitted model drawn from ``fit.graph`` (networkx DiGraph).

    Columns: indicators of latent variables (left), latent variables, then endogenous
    variables (right), exogenous observed covariates below them. Regression paths are labelled
    with standardized estimates (``std_all``), solid when p < .05, red when negative.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, FancyArrowPatch, Rectangle

    g = fit.graph
    latent = [n for n, a in g.nodes(data=True) if a.get("latent")]
    indicators = [n for n in g.nodes if any(g.edges[u, n].get("op") == "=~"
                                            for u in g.predecessors(n))]
    outcomes = [n for n in g.nodes if n not in latent and n not in indicators
                and any(g.edges[u, n].get("op") == "~" for u in g.predecessors(n))]
    covs = [n for n in g.nodes if n not in latent + indicators + outcomes]
    pos = {}

    def column(nodes, x, top=1.0, bottom=0.0):
        k = len(nodes)
        for j, n in enumerate(nodes):
            pos[n] = (x, top - (j + 0.5) * (top - bottom) / max(k, 1))

    # indicators ordered by their factor
    ordered = []
    for f in latent:
        ordered += [s for s in g.successors(f) if s in indicators and s not in ordered]
    ordered += [s for s in indicators if s not in ordered]
    column(ordered, 0.0)
    column(latent, 0.38)
    column(outcomes, 0.76, 0.9, 0.1)
    # covariates right of the outcome(s) they predict
    free_y = []
    for c in covs:
        ys = [pos[v][1] for v in g.successors(c) if v in outcomes]
        if ys:
            pos[c] = (1.0, float(np.mean(ys)))
        else:
            free_y.append(c)
    column(free_y, 1.0, 0.2, 0.0)
    std = None
    try:
        s = fit.standardized(se=False)
        if "group" in s.columns:
            s = s[s["group"] == s["group"].iloc[0]]
        std = s
        est = fit.estimates()
        if "group" in est.columns:
            est = est[est["group"] == est["group"].iloc[0]]
    except Exception:  # noqa: BLE001 - draw without numbers
        est = None
    fig = Figure(figsize=figsize)
    ax = fig.add_axes([0.01, 0.01, 0.98, 0.92 if title else 0.98])
    ax.set_xlim(-0.12, 1.1)
    ax.set_ylim(-0.04, 1.04)
    ax.axis("off")
    w_obs, h_obs = 0.15, 0.045
    for n in g.nodes:
        x, y = pos[n]
        if n in latent:
            ax.add_patch(Ellipse((x, y), 0.14, 0.09, facecolor="#dbe9f6", edgecolor="#1f4e79",
                                 lw=1.4, zorder=3))
        else:
            fc = "#fdf0d5" if n in outcomes else ("#eeeeee" if n in covs else "white")
            ax.add_patch(Rectangle((x - w_obs / 2, y - h_obs / 2), w_obs, h_obs, facecolor=fc,
                                   edgecolor="#444444", lw=1.0, zorder=3))
        ax.text(x, y, n, ha="center", va="center", fontsize=7.5, zorder=4)

    def lookup(table, lhs, op, rhs, col):
        if table is None:
            return None
        r = table[(table["lhs"] == lhs) & (table["op"] == op) & (table["rhs"] == rhs)]
        return None if r.empty else r[col].iloc[0]

    for u, v, a in g.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        op = a.get("op")
        if op == "=~":
            ax.add_patch(FancyArrowPatch((x0 - 0.07, y0), (x1 + w_obs / 2, y1),
                                         arrowstyle="-|>", mutation_scale=8, color="#888888",
                                         lw=0.6, zorder=2))
            continue
        b = lookup(std, v, "~", u, "std_all")
        p = lookup(est, v, "~", u, "pvalue")
        sig = p is not None and np.isfinite(p) and p < 0.05
        colour = "#b22222" if (b is not None and b < 0) else "#1f6f3f"
        start = (x0 + 0.07, y0) if u in latent else (x0 - w_obs / 2, y0)
        end = (x1 - w_obs / 2, y1)
        if u in covs:
            start, end = (x0 - w_obs / 2, y0), (x1 + w_obs / 2, y1)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10,
                                     color=colour, lw=1.8 if sig else 0.8,
                                     linestyle="-" if sig else "--", zorder=2))
        if b is not None and u not in covs:
            t = 0.55
            ax.text(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]),
                    f"{b:.2f}", fontsize=7, color=colour, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8),
                    zorder=5)
        elif b is not None:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.015, f"{b:.2f}",
                    fontsize=7, color=colour, ha="center")
    ax.text(-0.11, -0.03, "solid: p < .05; red: negative; numbers: standardized (std_all); "
            "trait covariances and residual covariances not drawn", fontsize=7, color="#555555")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_invariance_changes(table: pd.DataFrame, title: str = "Change in fit between "
                            "invariance levels") -> Any:
    """Bar chart of delta CFI and delta RMSEA per sequence and level with the common cut-offs
    (Cheung & Rensvold 2002: delta CFI <= -.010; Chen 2007: delta RMSEA >= .015).

    ``table`` needs columns ``sequence``, ``level``, ``delta_cfi``, ``delta_rmsea``.
    """
    from matplotlib.figure import Figure

    t = table.dropna(subset=["delta_cfi"])
    labels = [f"{s}\n{lv}" for s, lv in zip(t["sequence"], t["level"])]
    xs = np.arange(len(t))
    fig = Figure(figsize=(9.0, 4.2))
    axes = fig.subplots(1, 2)
    for ax, col, cut, name in ((axes[0], "delta_cfi", -0.010, "ΔCFI"),
                               (axes[1], "delta_rmsea", 0.015, "ΔRMSEA")):
        vals = t[col].to_numpy(float)
        bad = vals <= cut if col == "delta_cfi" else vals >= cut
        ax.bar(xs, vals, color=np.where(bad, "#c0504d", "#4f81bd"))
        ax.axhline(cut, color="k", ls="--", lw=0.8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=6.5, rotation=60, ha="right")
        ax.set_title(f"{name} (cut-off {cut:+.3f})", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_trait_means(table: pd.DataFrame) -> Any:
    """Forest plot of the latent trait mean differences by format (d with 95% CI)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.0))
    ax = fig.add_subplot()
    t = table.reset_index(drop=True)
    ys = np.arange(len(t))[::-1]
    sign = np.where(t["ref_group"] == "group", 1.0, -1.0)
    d = sign * t["d"].to_numpy(float)
    se = t["d_se"].to_numpy(float)
    sig = t["pvalue"].to_numpy(float) < 0.05
    ax.errorbar(d, ys, xerr=1.96 * se, fmt="none", ecolor="#555555", capsize=3)
    ax.scatter(d, ys, c=np.where(sig, "#c0504d", "#4f81bd"), zorder=3)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(ys)
    ax.set_yticklabels(t["factor"])
    ax.set_xlabel("latent mean difference, individual - group (d, 95% CI)")
    ax.set_title("Trait means by format (partial scalar models)", fontsize=10)
    fig.tight_layout()
    return fig


def make_figures(res: Any, out: Path) -> dict:
    """Draw and save the report's figures; returns {name: file name}."""
    out = Path(out)
    figs = {}

    def save(fig, name):
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        figs[name.rsplit(".", 1)[0]] = name

    pooled = res.fits["outcomes_pooled"].fit
    save(plot_path_diagram(pooled, "Structural model: trait alliance -> follow-up problems "
                                   "(pooled, standardized)"), "path_diagram.png")
    rsa = res.fits["rsa"]
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11.0, 4.8))
    for k, g in enumerate(rsa.group_labels):
        ax = fig.add_subplot(1, len(rsa.group_labels), k + 1, projection="3d")
        rsa.plot_surface(g, ax=ax, principal_axis=False, labels=("therapist bond",
                         "child bond", "int_fu"), title=f"{g} format", legend=(k == 0))
    fig.tight_layout()
    save(fig, "response_surface.png")
    fig = Figure(figsize=(10.0, 4.4))
    for k, g in enumerate(rsa.group_labels):
        ax = fig.add_subplot(1, len(rsa.group_labels), k + 1)
        rsa.plot_contour(g, ax=ax, labels=("therapist bond (centred)", "child bond (centred)"),
                         title=f"{g} format", legend=(k == 0), colorbar=True)
    fig.tight_layout()
    save(fig, "response_contour.png")
    rows = []
    for key, name in (("format_invariance", "format"), ("longitudinal", "mid vs end")):
        t = res.tables[key]
        for _, r in t.iterrows():
            rows.append({"sequence": f"{r['informant']} {name}", "level": r["level"],
                         "delta_cfi": r.get("delta_cfi"), "delta_rmsea": r.get("delta_rmsea")})
    save(plot_invariance_changes(pd.DataFrame(rows)), "invariance_changes.png")
    save(plot_trait_means(res.tables["trait_means"]), "trait_means.png")
    return figs


# ----------------------------------------------------------------------------- HTML
_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 1.2em 2em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
.meta { color: #666; font-size: 0.9em; }
table.tbl { border-collapse: collapse; font-size: 0.8em; margin: 0.4em 0 1em 0; }
table.tbl th, table.tbl td { border-bottom: 1px solid #e3e3e3; padding: 2px 7px; text-align: right; }
table.tbl th { background: #f3f5f8; } table.tbl td:first-child, table.tbl th:first-child { text-align: left; }
.findings { border: 1px solid #9bbb59; background: #f6fbef; padding: 0.6em 1em; border-radius: 6px; }
.findings li { margin: 0.35em 0; } .ok { color: #2e7d32; font-weight: bold; } .no { color: #c62828; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
.glance { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; align-items: center; }
.glance img { width: 100%; margin: 0; }
.note { font-size: 0.8em; color: #7a5b00; } pre { font-size: 0.75em; background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
"""


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return ""
        if abs(v) < 1e-9:
            return "0"
        if float(v).is_integer() and abs(v) < 1e7:
            return str(int(v))
        if v != 0 and abs(v) < 0.001:
            return f"{v:.1e}"
        return f"{v:.3f}"
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return html.escape(str(v))


def _table(df: pd.DataFrame, columns: Optional[list] = None) -> str:
    if df is None or len(df) == 0:
        return "<p><em>(empty)</em></p>"
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    pcols = [("pvalue" in str(c)) for c in df.columns]
    for _, r in df.iterrows():
        cells = []
        for v, is_p in zip(r.to_list(), pcols):
            if is_p and isinstance(v, (float, np.floating)) and math.isfinite(v) and v < 0.001:
                cells.append("&lt;.001")
            else:
                cells.append(_fmt(v))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="tbl"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _img(res: Any, name: str, alt: str) -> str:
    f = res.figures.get(name)
    return f'<img src="{f}" alt="{html.escape(alt)}">' if f else ""


def write_report(res: Any, out: Path) -> Path:
    """Write ``index.html`` into ``out``; returns its path."""
    import datetime

    from .. import __version__

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    T = res.tables
    o = res.options
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>sem-models study report</title><style>{_CSS}</style></head><body>",
             "<h1>Therapeutic alliance study: sem-models report</h1>",
             f"<p class='meta'>sem-models {__version__} &middot; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC &middot; "
             f"estimator {o['estimator']}, missing = {o['missing']}, cluster-robust SEs by "
             f"{o['cluster']} &middot; run time {res.timings.get('total', 0):.1f} s. "
             "Data: the bundled <b>simulated</b> alliance study unless another file was "
             "given (see data/README.md).</p>"]
    parts.append("<h2>Findings</h2><div class='findings'><ul>")
    for f in res.findings:
        mark = "<span class='ok'>&#10003; shown</span>" if f["shown"] else \
            "<span class='no'>&#10007; not shown</span>"
        parts.append(f"<li>{mark} <b>Finding {f['id']}.</b> {html.escape(f['finding'])}<br>"
                     f"<small>{html.escape(f['evidence'])}</small></li>")
    parts.append("</ul></div>")
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

    parts.append("<h2>1. Reliability and measurement models</h2>"
                 "<p>Items reverse-scored (2, 4, 6). One model per informant x occasion with "
                 "correlated bond and task factors (child: also with a wording factor for the "
                 "negatively worded items). Omega as semTools::compRelSEM; alpha on observed "
                 "items.</p>")
    parts.append(_table(T["reliability"]))
    parts.append(_table(T["measurement"]))

    parts.append("<h2>2. Measurement invariance</h2>"
                 "<h3>Longitudinal (mid vs end) per informant, Chen (2007) rules</h3>")
    cols = ["informant", "level", "chisq", "df", "cfi", "rmsea", "srmr", "delta_chisq",
            "delta_df", "delta_pvalue", "delta_cfi", "delta_rmsea", "delta_srmr", "decision"]
    parts.append(_table(T["longitudinal"], cols))
    parts.append("<h3>Across format (trait models), chi-square difference decisions "
                 "(Satorra-Bentler scaled) and Chen (2007)</h3>")
    parts.append(_table(T["format_invariance"], cols + ["decision_chen2007"]))
    parts.append(_img(res, "invariance_changes", "invariance fit changes"))
    parts.append("<h3>Partial invariance: constraints freed one at a time by the largest score "
                 "test</h3>")
    parts.append(_table(T["partial_invariance"],
                        ["informant", "level", "step", "freed", "score_X2", "score_pvalue",
                         "chisq", "df", "cfi", "delta_chisq", "delta_pvalue", "decision"]))
    parts.append("<h3>Trait means by format (reference: first group; d = mean difference / "
                 "pooled latent SD)</h3>")
    parts.append(_table(T["trait_means"], ["informant", "factor", "group", "ref_group",
                                           "n_invariant", "mean_diff", "mean_diff_se", "z",
                                           "pvalue", "d", "d_se", "var_ratio"]))
    parts.append(_img(res, "trait_means", "trait means by format"))

    parts.append("<h2>3. Outcome models</h2><p>Follow-up externalizing (ext_fu) and "
                 "internalizing (int_fu) problems on the four trait factors, baseline "
                 "controlled; trait factors measured by the mid and end scale means (latent "
                 "state-trait parcels); FIML, MLR, cluster-robust standard errors by school "
                 "(only 20 clusters: treat them with caution).</p>")
    parts.append(_img(res, "path_diagram", "path diagram"))
    pcols = ["lhs", "rhs", "group", "est", "se", "z", "pvalue", "ci_lower", "ci_upper",
             "std_all"]
    parts.append("<h3>Pooled</h3>" + _table(T["outcome_paths"], pcols))
    parts.append("<h3>By format</h3><p>Paths free in each format; parcel residual variances "
                 "and trait (co)variances equal across the (randomized) formats.</p>"
                 + _table(T["outcome_paths_format"], pcols))
    parts.append("<h3>Format moderation of each path (Wald; all paths jointly also by the "
                 "scaled likelihood-ratio test)</h3><p class='note'>With cluster-robust "
                 "standard errors from 10 schools per format and more free parameters than "
                 "clusters, the robust covariance matrix is rank deficient: joint Wald tests "
                 "are then too liberal; prefer the likelihood-ratio test.</p>"
                 + _table(T["outcome_moderation"]))
    parts.append(_table(T["outcome_fit"]))
    if "outcome_paths_items" in T:
        parts.append("<h3>Check: pooled item-level model (48 items, wording factors for the "
                     "child items)</h3>"
                     + _table(T["outcome_paths_items"], pcols))

    parts.append("<h2>4. Discrepancy: response surface analysis</h2><p>int_fu on therapist "
                 "(X) and child (Y) trait bond scale means, centred at their pooled mean, "
                 "int_pre controlled, by format. a1/a2: slope/curvature along the line of "
                 "congruence; a3/a4 along the line of incongruence (a3 &gt; 0: more problems "
                 "when the therapist rates the bond higher than the child); a5 asymmetry.</p>")
    parts.append(_img(res, "response_surface", "response surfaces"))
    parts.append(_img(res, "response_contour", "contour plots"))
    scols = ["group", "parameter", "est", "se", "z", "pvalue", "ci_lower", "ci_upper"]
    parts.append("<h3>Surface parameters</h3>" + _table(T["rsa_surface"], scols))
    parts.append("<h3>Group differences (Wald)</h3>" + _table(T["rsa_group_tests"]))
    if "rsa_bootstrap" in T:
        parts.append(f"<h3>Bootstrap percentile intervals ({o['bootstrap']} replicates, "
                     "OLS on observed scores)</h3>" + _table(T["rsa_bootstrap"]))
    parts.append("<h3>Stationary point and principal axes (delta method)</h3>"
                 + _table(T["rsa_stationary"], scols))
    parts.append("<h3>Congruence conditions (problem outcome: minimum at congruence)</h3>"
                 + _table(T["rsa_congruence"]))
    parts.append("<h3>Models (chi-square difference vs full, AICc)</h3>"
                 + _table(T["rsa_models"]))
    parts.append("<h3>Enough discrepancy? Shares of zY - zX below -.5, within, above .5</h3>"
                 + _table(T["rsa_discrepancy"]))

    parts.append("<h2>5. Latent congruence model (bond, items of both occasions)</h2><p>"
                 "Therapist = M + D/2, child = M - D/2 with loadings and intercepts equal "
                 "across raters (Cheung 2009; same-item residuals correlated over time); "
                 "int_fu on the latent mean M and difference D, int_pre controlled; "
                 f"missing = {res.text.get('lcm_missing', o['missing'])}.</p>")
    parts.append(_table(T["lcm_paths"], pcols[:-1]))
    parts.append("<h3>Equal paths across format (Wald)</h3>" + _table(T["lcm_moderation"]))
    parts.append(_table(T["lcm_latent"], ["lhs", "op", "rhs", "group", "est", "se", "pvalue"]))
    parts.append(_table(T["lcm_fit"]))

    parts.append("<h2>Run</h2>")
    tim = pd.DataFrame([{"step": k, "seconds": v} for k, v in res.timings.items()])
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
    write_tables(res, out)
    return path


def write_tables(res: Any, out: Path) -> None:
    """Every table as ``tables/<name>.csv`` and the findings as ``findings.json``."""
    import json

    tdir = Path(out) / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    for name, tab in res.tables.items():
        tab.to_csv(tdir / f"{name}.csv", index=False)
    (Path(out) / "findings.json").write_text(
        json.dumps({"findings": res.findings, "timings": res.timings, "options": res.options},
                   indent=1, default=str), encoding="utf-8")
