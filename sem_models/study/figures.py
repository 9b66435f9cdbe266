"""Figures of the study report: path diagram, invariance changes, trait means, response
surfaces (written as SVG, 3-D surfaces as PNG at 200 dpi)."""
from __future__ import annotations
from pathlib import Path
from typing import Any, Optional, Sequence
import numpy as np
import pandas as pd

#: resolution of the raster (PNG) figures
FIGURE_DPI = 200

__all__ = ["plot_path_diagram", "plot_invariance_changes", "plot_trait_means", "make_figures"]


def plot_path_diagram(fit: Any, title: Optional[str] = None, figsize=None) -> Any:
    """Path diagram of a fitted model (:func:`sem_models.diagram.path_diagram`): loadings and
    regressions labelled with standardized estimates; covariances not drawn."""
    from ..diagram import path_diagram
    return path_diagram(fit, title=title, figsize=figsize, covariances=False)


def plot_invariance_changes(table: pd.DataFrame, title: str = "Change in fit between "
                            "invariance levels", robust: bool = False) -> Any:
    """Bar chart of delta CFI and delta RMSEA per sequence and level with the common cut-offs
    (Cheung & Rensvold 2002: delta CFI <= -.010; Chen 2007: delta RMSEA >= .015).

    ``table`` needs columns ``sequence``, ``level``, ``delta_cfi``, ``delta_rmsea`` (and
    optionally ``decision``: levels "not tested" are drawn hatched and grey).
    """
    from matplotlib.figure import Figure

    t = table.dropna(subset=["delta_cfi"]).reset_index(drop=True)
    labels = [f"{s}\n{lv}" for s, lv in zip(t["sequence"], t["level"])]
    xs = np.arange(len(t))
    untested = (t["decision"].astype(str).str.startswith("not tested").to_numpy()
                if "decision" in t.columns else np.zeros(len(t), bool))
    fig = Figure(figsize=(9.0, 4.2))
    axes = fig.subplots(1, 2)
    kind = " (robust)" if robust else ""
    for ax, col, cut, name in ((axes[0], "delta_cfi", -0.010, f"ΔCFI{kind}"),
                               (axes[1], "delta_rmsea", 0.015, f"ΔRMSEA{kind}")):
        vals = t[col].to_numpy(float)
        bad = vals <= cut if col == "delta_cfi" else vals >= cut
        colours = np.where(untested, "#bbbbbb", np.where(bad, "#c0504d", "#4f81bd"))
        bars = ax.bar(xs, vals, color=colours)
        for b, u in zip(bars, untested):
            if u:
                b.set_hatch("//")
        ax.axhline(cut, color="k", ls="--", lw=0.8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=6.5, rotation=60, ha="right")
        ax.set_title(f"{name}, cut-off {cut:+.3f}", fontsize=9)
    if untested.any():
        fig.text(0.01, 0.01, "grey, hatched: not tested (previous level failed)", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_trait_means(table: pd.DataFrame) -> Any:
    """Forest plot of the latent trait mean differences by format (d with 95% CI), individual
    minus group (the ``mean_diff`` / ``d`` of the table, whose reference is the group
    format)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.0))
    ax = fig.add_subplot()
    t = table.reset_index(drop=True)
    ys = np.arange(len(t))[::-1]
    d = t["d"].to_numpy(float)
    se = t["d_se"].to_numpy(float)
    sig = t["pvalue"].to_numpy(float) < 0.05
    ax.errorbar(d, ys, xerr=1.96 * se, fmt="none", ecolor="#555555", capsize=3)
    ax.scatter(d, ys, c=np.where(sig, "#c0504d", "#4f81bd"), zorder=3)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(ys)
    ax.set_yticklabels(t["factor"])
    ax.set_xlabel("latent mean difference, individual - group (d, 95% CI; red: p < .05)")
    ax.set_title("Trait means by format ((partial) scalar models)", fontsize=10)
    fig.tight_layout()
    return fig


def _surface_figures(res: Any) -> tuple[Any, Any]:
    """3-D surfaces and contour plots of the two formats, over each format's data hull and on
    one outcome scale."""
    from matplotlib.figure import Figure

    from ..discrepancy.plots import surface_zrange

    rsa = res.fits["rsa"]
    d = rsa.data
    pts, ranges = {}, {}
    for g in rsa.group_labels:
        sub = d[d[rsa.group] == g]
        pts[g] = sub[[rsa.x, rsa.y]].to_numpy(float)
        ranges[g] = rsa.ranges(g)
    zs = [surface_zrange(rsa.b(g), *ranges[g], points=pts[g]) for g in rsa.group_labels]
    lo, hi = min(z[0] for z in zs), max(z[1] for z in zs)
    pad = 0.02 * (hi - lo if hi > lo else 1.0)
    zlim = (lo - pad, hi + pad)
    fmt = res.options.get("formats", {})
    role = {str(v): k for k, v in fmt.items()}
    n = len(rsa.group_labels)
    order = sorted(rsa.group_labels, key=lambda g: role.get(str(g), str(g)) != "individual")
    from matplotlib.ticker import MaxNLocator
    levels = MaxNLocator(nbins=12).tick_values(*zlim)
    zlim = (min(zlim[0], levels[0]), max(zlim[1], levels[-1]))
    surf = Figure(figsize=(10.0, 4.9))
    axes = []
    for k, g in enumerate(order):
        ax = surf.add_subplot(1, n, k + 1, projection="3d")
        rsa.plot_surface(g, ax=ax, principal_axis=False, points=pts[g], zlim=zlim, n_grid=81,
                         labels=("therapist bond (centred)", "child bond (centred)", "int_fu"),
                         title=f"{g} format", legend=False)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(5))
        axes.append(ax)
    h, lab = axes[0].get_legend_handles_labels()
    surf.legend(h, lab, loc="lower center", ncol=len(lab), fontsize=8, frameon=False)
    surf.suptitle("Predicted int_fu over the observed bond scores (both formats on one int_fu "
                  "scale; dots: the data, dashed: their convex hull)", fontsize=10)
    surf.tight_layout(rect=(0, 0.06, 1, 1))
    cont = Figure(figsize=(10.0, 5.0))
    axes = []
    for k, g in enumerate(order):
        ax = cont.add_subplot(1, n, k + 1)
        rsa.plot_contour(g, ax=ax, points=pts[g], zlim=zlim, levels=levels,
                         labels=("therapist bond (centred)", "child bond (centred)"),
                         title=f"{g} format", legend=False, colorbar=True, zlabel="int_fu")
        axes.append(ax)
    handles: dict = {}
    for ax in axes:
        for hd, lb in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lb, hd)
    cont.legend(list(handles.values()), list(handles), loc="lower center", ncol=3, fontsize=8,
                frameon=False)
    cont.tight_layout(rect=(0, 0.1, 1, 1))
    return surf, cont


def _save_figure(res: Any, out: Path, figs: dict, name: str, fig: Any, ext: str) -> None:
    fname = f"{name}.{ext}"
    fig.savefig(out / fname, dpi=FIGURE_DPI, bbox_inches="tight")
    figs[name] = fname
    if fname not in res.files:
        res.files.append(fname)


def make_figures(res: Any, out: Path, only: Optional[Sequence[str]] = None,
                 skip: Sequence[str] = ()) -> dict:
    """Draw and save the report's figures; returns {name: file name}.  A figure that cannot
    be drawn is recorded in ``res.failed`` ("Figures: name") and the others are still made.

    ``only`` / ``skip``: draw only these / not these of ``path_diagram``,
    ``response_surfaces`` (the 3-D surfaces and the contour plots), ``invariance_changes``,
    ``trait_means`` (default: all)."""
    out = Path(out)
    figs: dict = {}

    def save(name: str, make, ext: str = "svg", part: bool = False):
        if not part and ((only is not None and name not in only) or name in skip):
            return
        try:
            fig = make()
            if isinstance(fig, tuple):
                for (n, f) in fig:
                    save(n, lambda f=f: f, "png" if n == "response_surface" else "svg", True)
                return
            _save_figure(res, out, figs, name, fig, ext)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one figure must not stop the others
            res.failed[f"Figures: {name}"] = " ".join(f"{type(exc).__name__}: {exc}".split())

    if "outcomes_pooled" in res.fits:
        save("path_diagram", lambda: plot_path_diagram(
            res.fits["outcomes_pooled"].fit, "Structural model: trait alliance -> follow-up "
            "problems (pooled, standardized)"))
    if "rsa" in res.fits:
        def surfaces():
            s, c = _surface_figures(res)
            return (("response_surface", s), ("response_contour", c))
        save("response_surfaces", surfaces)
    rows = []
    robust = False
    for key, name in (("format_invariance", "format"), ("longitudinal", "mid vs end")):
        t = res.tables.get(key)
        if t is None:
            continue
        robust = robust or "cfi_robust" in t.columns
        for _, r in t.iterrows():
            rows.append({"sequence": f"{r['informant']} {name}", "level": r["level"],
                         "delta_cfi": r.get("delta_cfi"), "delta_rmsea": r.get("delta_rmsea"),
                         "decision": r.get("decision", "")})
    if rows:
        save("invariance_changes",
             lambda: plot_invariance_changes(pd.DataFrame(rows), robust=robust))
    if "trait_means" in res.tables:
        save("trait_means", lambda: plot_trait_means(res.tables["trait_means"]))
    return figs
