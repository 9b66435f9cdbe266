"""Response surface analysis with the SEM engine: :func:`response_surface`.

Built on :mod:`.surface`, :mod:`.models`, :mod:`.bootstrap` (formulas, model syntax,
bootstrap) and :mod:`.plots` (figures). The full second-order polynomial and the constrained
models of the RSA package (Schönbrodt & Humberg, CRAN ``RSA``) are fitted with
:func:`sem_models.sem` -- so FIML, robust (MLR) and cluster-robust standard errors apply as
for any model -- and compared by chi-square difference tests against the full model and by
AICc. Nothing here prints; problems are reported with :class:`~sem_models.discrepancy.surface.SurfaceWarning`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

from .surface import B_NAMES, NONLINEAR_NAMES, SURFACE_MATRIX, SURFACE_NAMES, SurfaceWarning, _nonlinear, congruence_check, principal_axes, stationary_point, surface_parameters
from .models import DEFAULT_MODELS, RSA_MODELS, _model_key, aicc_table, coefficient_labels, polynomial_syntax, surface_group_tests
from .bootstrap import bootstrap_surface
from .prepare import center, discrepancy_shares, polynomial_terms

__all__ = ["ResponseSurface", "response_surface"]

_NUMBER = (int, float, np.integer, np.floating)




@dataclass
class ResponseSurface:
    """Result of :func:`response_surface`.

    Attributes
    ----------
    surface
        a1..a5 of the full polynomial: columns ``group, parameter, est, se, z, pvalue,
        ci_lower, ci_upper`` (``group`` is ``None`` for one group).
    stationary
        Stationary point X0, Y0 and principal axes p10, p11, p20, p21 with delta-method SEs
        (same columns).
    coefficients
        b0..b5 (and controls) of the full model per group: ``group, parameter, est, se, ...``.
    models
        Model comparison: one row per fitted model with ``npar, df, chisq, logl, aicc,
        delta_aicc, weight`` and the chi-square difference test against the full model
        (``chisq_diff, df_diff, pvalue``; Satorra-Bentler scaled for robust estimators).
    discrepancy
        Shares of cases with zY - zX below -.5, within, above .5 (per group).
    group_tests
        Wald tests that a1..a5 differ between groups (``None`` for one group).
    bootstrap
        Bootstrap table (``group, parameter, est, boot_se, ci_lower, ci_upper, n_valid``) or
        ``None``.
    fits
        ``{model: SEMFit}``; ``centering`` the values subtracted from x and y; ``data`` the
        centered data with the polynomial terms.
    """

    outcome: str
    x: str
    y: str
    controls: list
    group: Optional[str]
    group_labels: Optional[list]
    surface: pd.DataFrame
    stationary: pd.DataFrame
    coefficients: pd.DataFrame
    models: pd.DataFrame
    discrepancy: pd.DataFrame
    group_tests: Optional[pd.DataFrame]
    fits: dict = field(repr=False)
    centering: dict = field(default_factory=dict)
    bootstrap: Optional[pd.DataFrame] = None
    data: Any = field(default=None, repr=False)
    level: float = 0.95
    #: the curvature direction kept for each rotated ridge model ("up" / "down")
    directions: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    def _labels(self, group: Any) -> tuple[str, ...]:
        labs = coefficient_labels(self.group_labels)
        key = None if self.group_labels is None else (
            self.group_labels[0] if group is None else group)
        if key not in labs:
            raise KeyError(f"unknown group {group!r}; groups are {self.group_labels}")
        return labs[key]["b"]

    def b(self, group: Any = None, at_control_means: bool = True) -> pd.Series:
        """b0..b5 of the full model (in ``group``) as a Series indexed b0, b1..b5.

        With ``at_control_means`` (default) ``b0`` is the predicted outcome at X = Y = 0 with
        the controls at their means (in that group), the level the plots show.
        """
        fit = self.fits["full"]
        est = fit.estimates()
        names = self._labels(group)
        vals = fit.label_values()
        out = {f"b{k + 1}": float(vals[n]) for k, n in enumerate(names)}
        sel = (est["lhs"] == self.outcome) & (est["op"] == "~1")
        if self.group_labels is not None:
            g = self.group_labels[0] if group is None else group
            sel &= est["group"] == g
        b0 = float(est.loc[sel, "est"].iloc[0]) if sel.any() else 0.0
        if at_control_means and self.controls:
            # predicted outcome with the controls at their (group) means
            d = self.data
            if self.group_labels is not None:
                d = d[d[self.group] == (self.group_labels[0] if group is None else group)]
            rows = est[(est["lhs"] == self.outcome) & (est["op"] == "~")
                       & est["rhs"].isin(self.controls)]
            if self.group_labels is not None:
                g = self.group_labels[0] if group is None else group
                rows = rows[rows["group"] == g]
            for _, r in rows.iterrows():
                b0 += float(r["est"]) * float(pd.to_numeric(d[r["rhs"]], errors="coerce").mean())
        return pd.Series({"b0": b0, **out})

    def table(self, group: Any = None) -> pd.DataFrame:
        """a1..a5, X0, Y0, p10, p11, p20, p21 (est, se, z, pvalue, CI) for one group."""
        frames = [self.surface, self.stationary]
        out = pd.concat(frames)
        if self.group_labels is not None:
            g = self.group_labels[0] if group is None else group
            out = out[out["group"] == g]
        return out.set_index("parameter").drop(columns="group")

    def congruence(self, group: Any = None, optimum: str = "maximum",
                   strict: bool = False) -> pd.DataFrame:
        """The set of conditions for a congruence effect (:func:`surface.congruence_check`).

        For problem outcomes (lower = better) congruence is a minimum: ``optimum="minimum"``.
        Bootstrap intervals replace the Wald intervals when the bootstrap was run.
        """
        tab = self.table(group)
        if self.bootstrap is not None:
            bt = self.bootstrap
            if self.group_labels is not None:
                g = self.group_labels[0] if group is None else group
                bt = bt[bt["group"] == g]
            bt = bt.set_index("parameter")
            for p in bt.index.intersection(tab.index):
                if np.isfinite(bt.loc[p, "ci_lower"]) and np.isfinite(bt.loc[p, "ci_upper"]):
                    tab.loc[p, ["ci_lower", "ci_upper"]] = bt.loc[p, ["ci_lower", "ci_upper"]].values
        return congruence_check(tab, optimum=optimum, strict=strict)

    def ranges(self, group: Any = None) -> tuple[tuple[float, float], tuple[float, float]]:
        """Observed (centered) ranges of x and y, for plotting."""
        d = self.data
        if self.group_labels is not None and group is not None:
            d = d[d[self.group] == group]
        return ((float(d[self.x].min()), float(d[self.x].max())),
                (float(d[self.y].min()), float(d[self.y].max())))

    def plot_surface(self, group: Any = None, **kwargs) -> Any:
        """3-D surface of the full model (:func:`surface_plots.plot_surface`)."""
        from .plots import plot_surface
        xr, yr = self.ranges(group)
        kwargs.setdefault("labels", (self.x, self.y, self.outcome))
        if group is not None:
            kwargs.setdefault("title", f"{self.group} = {group}")
        return plot_surface(self.b(group), xr, yr, **kwargs)

    def plot_contour(self, group: Any = None, **kwargs) -> Any:
        """Contour plot of the full model (:func:`surface_plots.plot_contour`)."""
        from .plots import plot_contour
        xr, yr = self.ranges(group)
        kwargs.setdefault("labels", (self.x, self.y))
        kwargs.setdefault("zlabel", self.outcome)
        if group is not None:
            kwargs.setdefault("title", f"{self.group} = {group}")
        return plot_contour(self.b(group), xr, yr, **kwargs)

    def summary(self) -> str:
        """Plain-text summary (surface parameters, stationary point, models, discrepancy)."""
        fmt = {"float_format": lambda v: f"{v:.4f}"}
        parts = [f"Response surface analysis: {self.outcome} on {self.x} (X) and {self.y} (Y)"
                 + (f", controls {', '.join(self.controls)}" if self.controls else "")
                 + (f", by {self.group}" if self.group else ""),
                 f"centering: {self.centering}",
                 "", "Surface parameters (full polynomial)", self.surface.to_string(index=False, **fmt),
                 "", "Stationary point and principal axes", self.stationary.to_string(index=False, **fmt),
                 "", "Models", self.models.to_string(**fmt),
                 "", "Discrepancy (zY - zX)", self.discrepancy.to_string(index=False, **fmt)]
        if self.group_tests is not None:
            parts += ["", "Group differences of the surface parameters (Wald)",
                      self.group_tests.to_string(**fmt)]
        if self.bootstrap is not None:
            parts += ["", "Bootstrap intervals", self.bootstrap.to_string(index=False, **fmt)]
        return "\n".join(parts)


def _center(data: pd.DataFrame, x: str, y: str, how: Any, midpoint: Any) -> pd.DataFrame:
    if isinstance(how, str) and how.lower() == "midpoint" and midpoint is None:
        pooled = pd.concat([data[x], data[y]]).dropna()
        midpoint = (float(pooled.min()), float(pooled.max()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = center(data, x, y, how=how, midpoint=midpoint)
    for w in caught:  # re-issue at the caller of response_surface()
        warnings.warn(str(w.message), w.category, stacklevel=4)
    return out


def _frame(table: pd.DataFrame, group: Any) -> pd.DataFrame:
    t = table.reset_index()
    t.insert(0, "group", group)
    return t


def _stat_ols(k_controls: int, labels: Optional[list]):
    """Bootstrap statistic on an array [outcome, x, y, controls..., group code]: the OLS
    polynomial's surface quantities per group (fast: numpy only)."""
    n_q = len(SURFACE_NAMES) + len(NONLINEAR_NAMES)

    def statistic(a: np.ndarray) -> np.ndarray:
        parts = []
        for gi in range(len(labels) if labels else 1):
            sub = a if not labels else a[a[:, -1] == gi]
            z, xs, ys = sub[:, 0], sub[:, 1], sub[:, 2]
            X = np.column_stack([np.ones(len(sub)), xs, ys, xs * xs, xs * ys, ys * ys,
                                 sub[:, 3:3 + k_controls]])
            if len(sub) <= X.shape[1]:
                parts.append(np.full(n_q, np.nan))
                continue
            coef = np.linalg.lstsq(X, z, rcond=None)[0]
            vals, _, _ = _nonlinear(coef[1:6], 1e-10)
            parts.append(np.concatenate([SURFACE_MATRIX @ coef[1:6], vals]))
        return np.concatenate(parts)
    return statistic


def _fit_directions(model: str, syntax_for, fit) -> tuple:
    """Fit a rotated ridge model (SRRR, SRSQD) as the RSA package does: once with b3, b5 >
    1e-6 ("up") and once with b3, b5 < -1e-6 ("down"); keep the converged fit with the smaller
    chi-square (a single converged fit if only one converged).  Returns ``(fit, direction)``."""
    results = {}
    for direction in ("up", "down"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*rows were not used.*")
            warnings.filterwarnings("ignore", category=UserWarning,
                                    message=r".*(converge|information matrix|singular).*")
            results[direction] = fit(syntax_for(direction))
    converged = [d for d, f in results.items() if f.converged]
    if not converged:
        warnings.warn(f"the {model} model did not converge in either curvature direction",
                      SurfaceWarning, stacklevel=3)
        converged = list(results)
    best = min(converged, key=lambda d: float(results[d].measures()["chisq"]))
    return results[best], best


def response_surface(data: pd.DataFrame, outcome: str, x: str, y: str,
                     controls: Sequence[str] = (), group: Optional[str] = None,
                     estimator: str = "MLR", missing: str = "fiml",
                     center: Union[str, float, None] = "pooled",
                     midpoint: Union[float, tuple, None] = None,
                     models: Union[Sequence[str], str, None] = None,
                     bootstrap: int = 0, seed: Optional[int] = None,
                     bootstrap_method: str = "percentile", cluster: Optional[str] = None,
                     level: float = 0.95, group_labels: Optional[Sequence] = None,
                     bootstrap_cluster: Optional[str] = None,
                     **options) -> ResponseSurface:
    """Polynomial regression with response surface analysis (Edwards & Parry 1993; STUDY.md).

    Fits ``outcome ~ b1 X + b2 Y + b3 X^2 + b4 XY + b5 Y^2 + controls`` (the full model) and
    the constrained RSA models ``models`` (default: full, SRR, RR, SSQD, SQD, interaction,
    additive, null; see :data:`surface.RSA_MODELS`) with :func:`sem_models.sem`.

    Parameters
    ----------
    data, outcome, x, y, controls
        Data and column names; x and y must be commensurate (same scale).
    group
        Grouping column (e.g. format): every coefficient is group-specific and the surface
        parameters are tested for group differences (Wald).
    estimator, missing, cluster, options
        Passed to :func:`sem_models.sem` (default MLR with FIML).
    center
        ``"pooled"`` (mean of x and y pooled), ``"midpoint"`` (the scale midpoint ``midpoint``,
        a number or ``(min, max)``; default: the middle of the observed pooled range), a
        number, or ``None``. Never each variable at its own mean (that breaks
        commensurability, and is warned about if asked for with ``"variablewise"``). A
        :class:`~sem_models.discrepancy.surface.SurfaceWarning` is also issued when 0 lies outside a
        predictor's observed range after centering.
    models
        Names of the models to fit (``"full"`` is always fitted) or ``"all"``; default
        :data:`surface.DEFAULT_MODELS` (full, SRR, RR, SSQD, SQD, interaction, additive, null).
    bootstrap, seed, bootstrap_method
        Number of bootstrap replicates (0: none) for percentile or BCa intervals of a1..a5,
        the stationary point and the principal axes; cases are resampled within groups (and
        by ``cluster`` when given). The replicates use the observed-score OLS polynomial on
        complete cases (equal to the ML estimates with fixed predictors under listwise
        deletion), which keeps thousands of replicates fast.  ``bootstrap_method``: any
        method of :func:`~sem_models.discrepancy.bootstrap.bootstrap_surface`.
    bootstrap_cluster
        Column whose clusters (e.g. schools) the bootstrap resamples whole, within groups
        (default: ``cluster``); it may be given without ``cluster`` (then the fits' standard
        errors are not cluster-robust, but the bootstrap intervals respect the clustering).
    level
        Confidence level.
    """
    from ..api import sem
    from ..inference.lrt import compare

    if bootstrap_cluster is None:
        bootstrap_cluster = cluster
    cols = [outcome, x, y, *controls] + ([group] if group else []) + ([cluster] if cluster else [])
    if bootstrap_cluster and bootstrap_cluster not in cols:
        cols.append(bootstrap_cluster)
    missing_cols = [c for c in cols if c not in data.columns]
    if missing_cols:
        raise KeyError(f"columns {missing_cols} not in data")
    labels = None
    if group is not None:
        labels = list(group_labels) if group_labels is not None else \
            list(pd.unique(data[group].dropna()))
        if len(labels) < 2:
            raise ValueError(f"group column {group!r} has fewer than two groups")
    centered = _center(data, x, y, center, midpoint)
    poly = polynomial_terms(centered, x, y, overwrite=True)
    if models is None:
        models = DEFAULT_MODELS
    names = list(RSA_MODELS) if models == "all" else list(models)
    keys = [_model_key(m) for m in names]
    if "full" not in keys:
        keys.insert(0, "full")
    keys = list(dict.fromkeys(keys))
    options = dict(options)
    options.setdefault("meanstructure", True)   # b0 (intercept) for the plots; lavaan's npar
    fits = {}
    directions = {}
    for m in keys:
        if RSA_MODELS[m].directions:  # rotated ridge models: both curvature directions
            fits[m], directions[m] = _fit_directions(
                m, lambda d: polynomial_syntax(outcome, x, y, controls=list(controls),
                                               model=m, group_labels=labels, direction=d),
                lambda syntax: sem(syntax, poly, group=group, estimator=estimator,
                                   missing=missing, cluster=cluster, group_labels=labels,
                                   level=level, **options))
            continue
        syntax = polynomial_syntax(outcome, x, y, controls=list(controls), model=m,
                                     group_labels=labels)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*rows were not used.*")
            fits[m] = sem(syntax, poly, group=group, estimator=estimator, missing=missing,
                          cluster=cluster, group_labels=labels, level=level, **options)
    full = fits["full"]
    if not full.converged:
        warnings.warn("the full polynomial model did not converge", SurfaceWarning,
                      stacklevel=2)
    vals = pd.Series(full.label_values())
    V = full.vcov()
    labs = coefficient_labels(labels)
    surf, stat, coefs = [], [], []
    est = full.estimates()
    for g, lab in labs.items():
        b = vals[list(lab["b"])]
        b.index = list(B_NAMES)
        Vg = V.loc[list(lab["b"]), list(lab["b"])]
        Vg.index = Vg.columns = list(B_NAMES)
        surf.append(_frame(surface_parameters(b, Vg, level=level), g))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nl = stationary_point(b, Vg, level=level)
            pa = principal_axes(b, Vg, level=level)
        for w in {str(w.message): w for w in caught}.values():
            warnings.warn((f"group {g}: " if g is not None else "") + str(w.message),
                          w.category, stacklevel=2)
        stat.append(_frame(pd.concat([nl, pa]), g))
        rows = est[(est["lhs"] == outcome) & est["op"].isin(["~", "~1"])]
        if g is not None:
            rows = rows[rows["group"] == g]
        rows = rows.copy()
        rows["parameter"] = np.where(rows["op"] == "~1", "b0",
                                     np.where(rows["label"].astype(str) != "",
                                              rows["label"].astype(str).str.replace(
                                                  r"_[^_]*$" if g is not None else r"$^", "",
                                                  regex=True), rows["rhs"]))
        rows.insert(0, "group_", g)
        coefs.append(rows[["group_", "parameter", "rhs", "est", "se", "z", "pvalue",
                           "ci_lower", "ci_upper"]].rename(columns={"group_": "group"}))
    surface = pd.concat(surf, ignore_index=True)
    stationary = pd.concat(stat, ignore_index=True)
    coefficients = pd.concat(coefs, ignore_index=True)

    # model comparison: AICc and chi-square difference against the full model
    n = int(full.ntotal)
    rows = []
    for m, f in fits.items():
        meas = f.measures()
        rows.append({"model": m, "npar": int(meas["npar"]), "df": float(meas["df"]),
                     "chisq": float(meas["chisq"]), "logl": float(meas["logl"]),
                     "converged": bool(f.converged)})
    models_tab = pd.DataFrame(rows).set_index("model")
    aic = aicc_table({m: (r.logl, r.npar) for m, r in models_tab.iterrows()}, n)
    models_tab = models_tab.join(aic[["aicc", "delta_aicc", "weight"]])
    diffs = []
    for m, f in fits.items():
        if m == "full":
            diffs.append((np.nan, np.nan, np.nan))
            continue
        try:
            tab = compare(full=full, restricted=f)
            last = tab.iloc[-1]
            diffs.append((float(last["chisq_diff"]), float(last["df_diff"]),
                          float(last["pvalue"])))
        except Exception as exc:  # noqa: BLE001 - keep the other rows
            warnings.warn(f"chi-square difference test of {m} failed: {exc}",
                          SurfaceWarning, stacklevel=2)
            diffs.append((np.nan, np.nan, np.nan))
    models_tab[["chisq_diff", "df_diff", "pvalue"]] = np.array(diffs)
    models_tab = models_tab.sort_values("aicc")

    # discrepancy shares, per group
    disc = []
    for g in (labels or [None]):
        sub = data if g is None else data[data[group] == g]
        sh = discrepancy_shares(sub[x], sub[y])
        disc.append({"group": g, **sh.to_dict(), "n": sh.attrs["n"]})
    discrepancy = pd.DataFrame(disc)

    group_tests = None
    if labels is not None:
        allb = [lab for g in labs for lab in labs[g]["b"]]
        group_tests = surface_group_tests(vals[allb], V.loc[allb, allb], labels, level=level)

    boot = None
    if bootstrap and bootstrap > 0:
        stat_fn = _stat_ols(len(controls), labels)
        sub = poly.dropna(subset=[outcome, x, y, *controls])
        codes = (sub[group].map({g: k for k, g in enumerate(labels)}).to_numpy(float)
                 if labels else np.zeros(len(sub)))
        arr = np.column_stack([sub[[outcome, x, y, *controls]].to_numpy(float), codes])
        qnames = list(SURFACE_NAMES) + list(NONLINEAR_NAMES)
        names = ([f"{g}\x1f{q}" for g in labels for q in qnames] if labels else qnames)
        res = bootstrap_surface(arr, stat_fn, n_boot=int(bootstrap), level=level,
                                  method=bootstrap_method, seed=seed,
                                  strata=codes if labels else None,
                                  cluster=sub[bootstrap_cluster].to_numpy()
                                  if bootstrap_cluster else None,
                                  names=names)
        bt = res.table.reset_index()
        if labels is not None:
            split = bt["parameter"].str.split("\x1f", expand=True)
            bt["group"] = split[0].map({str(g): g for g in labels})
            bt["parameter"] = split[1]
        else:
            bt["group"] = None
        boot = bt[["group", "parameter", "est", "boot_se", "ci_lower", "ci_upper", "n_valid"]]

    return ResponseSurface(outcome=outcome, x=x, y=y, controls=list(controls), group=group,
                           group_labels=labels, surface=surface, stationary=stationary,
                           coefficients=coefficients, models=models_tab,
                           discrepancy=discrepancy, group_tests=group_tests, fits=fits,
                           centering=dict(centered.attrs.get("centering", {})),
                           bootstrap=boot, data=poly, level=level, directions=directions)
