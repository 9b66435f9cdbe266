"""Readable text summary of a fit, in the spirit of lavaan's ``summary()``."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["summary_text"]

SECTIONS = [
    ("=~", "Latent Variables"),
    ("~", "Regressions"),
    ("~~cov", "Covariances"),
    ("~1", "Intercepts"),
    ("~~var", "Variances"),
    (":=", "Defined Parameters"),
]


def _fmt(x, width=9, digits=3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return " " * width
    return f"{x:{width}.{digits}f}"


def _header(fit) -> list[str]:
    status = "ended normally" if fit.converged else "did NOT converge"
    lines = [f"sem-models {fit.options.get('estimator', 'ML')} fit {status} after "
             f"{fit.result.iterations} iterations", ""]
    lines.append(f"  {'Number of model parameters':<44}{fit.npar:>10}")
    n_eq = fit.problem.pmap.n_equality
    if n_eq:
        lines.append(f"  {'Number of equality constraints':<44}{n_eq:>10}")
    if fit.n_groups > 1:
        lines.append(f"  {'Number of observations per group':<44}")
        for lab, n in zip(fit.group_labels, fit.nobs):
            lines.append(f"    {str(lab):<42}{n:>10}")
    else:
        lines.append(f"  {'Number of observations':<44}{fit.ntotal:>10}")
    if fit.n_dropped:
        lines.append(f"  {'Rows not used':<44}{fit.n_dropped:>10}")
        lines.append(f"    ({fit.data.drop_reason})")
    cluster = fit.options.get("cluster")
    if cluster:
        n_clusters = len({c for g in fit.data.groups for c in g.cluster})
        lines.append(f"  {'Number of clusters [' + str(cluster) + ']':<44}{n_clusters:>10}")
    missing = fit.options.get("missing", "listwise")
    lines.append(f"  {'Missing data':<44}{missing:>10}")
    for key, label in (("se", "Standard errors"), ("information", "Information")):
        value = fit.options.get(key)
        if value and value not in ("standard", "expected"):
            lines.append(f"  {label:<44}{value:>10}")
    return lines


def _test_lines(fit, fit_measures: bool) -> list[str]:
    m = fit.measures()
    scaled = "chisq_scaled" in m.index
    lines = ["", "Model Test User Model:"]
    if scaled:
        lines.append(f"  {'':<44}{'Standard':>10}{'Scaled':>10}")
        lines.append(f"  {'Test statistic':<44}{m['chisq']:>10.3f}{m['chisq_scaled']:>10.3f}")
        lines.append(f"  {'Degrees of freedom':<44}{int(m['df']):>10}{int(m['df']):>10}")
        lines.append(f"  {'P-value (Chi-square)':<44}{m['pvalue']:>10.3f}{m['pvalue_scaled']:>10.3f}")
        lines.append(f"  {'Scaling correction factor':<44}{'':>10}{m['chisq_scaling_factor']:>10.3f}")
    else:
        lines.append(f"  {'Test statistic':<44}{m['chisq']:>10.3f}")
        lines.append(f"  {'Degrees of freedom':<44}{int(m['df']):>10}")
        lines.append(f"  {'P-value (Chi-square)':<44}{m['pvalue']:>10.3f}")
    if not fit_measures:
        return lines
    rows = [("Comparative Fit Index (CFI)", "cfi"), ("Tucker-Lewis Index (TLI)", "tli"),
            ("Loglikelihood user model (H0)", "logl"),
            ("Loglikelihood unrestricted model (H1)", "unrestricted_logl"),
            ("Akaike (AIC)", "aic"), ("Bayesian (BIC)", "bic"),
            ("RMSEA", "rmsea"), ("90 Percent confidence interval - lower", "rmsea_ci_lower"),
            ("90 Percent confidence interval - upper", "rmsea_ci_upper"),
            ("P-value H_0: RMSEA <= 0.050", "rmsea_pvalue"), ("SRMR", "srmr")]
    lines += ["", "Fit measures:"]
    if scaled:
        lines.append(f"  {'':<44}{'Standard':>10}{'Robust':>10}")
    for label, key in rows:
        val = m.get(key, np.nan)
        rob = m.get(f"{key}_robust", np.nan) if scaled else np.nan
        text = f"  {label:<44}{val:>10.3f}"
        if scaled and not np.isnan(rob):
            text += f"{rob:>10.3f}"
        lines.append(text)
    return lines


def _section_rows(est: pd.DataFrame, key: str) -> pd.DataFrame:
    if key == "~~cov":
        return est[(est["op"] == "~~") & (est["lhs"] != est["rhs"])]
    if key == "~~var":
        return est[(est["op"] == "~~") & (est["lhs"] == est["rhs"])]
    return est[est["op"] == key]


def _parameter_lines(fit, standardized: bool) -> list[str]:
    est = fit.standardized(se=False) if standardized else fit.estimates()
    lines = ["", "Parameter Estimates:", ""]
    endogenous = set(fit.variables.ov) | {v for v in fit.variables.lv
                                         if v not in fit.variables.lv_x}
    groups = fit.group_labels if fit.n_groups > 1 else [None]
    head = f"  {'':<24}{'Estimate':>9}{'Std.Err':>9}{'z-value':>9}{'P(>|z|)':>9}"
    if standardized:
        head += f"{'Std.lv':>9}{'Std.all':>9}"
    for g in groups:
        sub = est if g is None else est[est["group"] == g]
        if g is not None:
            lines += ["", f"Group {groups.index(g) + 1} [{g}]:"]
        for key, title in SECTIONS:
            rows = _section_rows(sub, key)
            if rows.empty:
                continue
            lines += ["", f"{title}:", head]
            current = None
            for _, r in rows.iterrows():
                if key in ("=~", "~") and r["lhs"] != current:
                    current = r["lhs"]
                    lines.append(f"  {current} {r['op']}")
                if key in ("=~", "~"):
                    name = "    " + r["rhs"]
                elif key == "~~cov":
                    if r["lhs"] != current:
                        current = r["lhs"]
                        prefix = "." if current in endogenous and current in fit.variables.ov else ""
                        lines.append(f"  {prefix}{current} ~~")
                    prefix = "." if r["rhs"] in fit.variables.ov else ""
                    name = f"    {prefix}{r['rhs']}"
                elif key == ":=":
                    name = f"    {r['lhs']}"
                else:
                    prefix = "." if r["lhs"] in endogenous and r["op"] == "~~" \
                        and r["lhs"] in fit.variables.ov else ""
                    name = f"    {prefix}{r['lhs']}"
                if r.get("label"):
                    name += f" ({r['label']})"
                fixed = r["se"] == 0 and r["op"] != ":="
                text = f"  {name[:24]:<24}{_fmt(r['est'])}"
                text += " " * 27 if fixed else f"{_fmt(r['se'])}{_fmt(r['z'], 9, 3)}{_fmt(r['pvalue'])}"
                if standardized:
                    text += f"{_fmt(r['std_lv'])}{_fmt(r['std_all'])}"
                lines.append(text.rstrip())
    return lines


def summary_text(fit, standardized: bool = False, fit_measures: bool = True) -> str:
    """The summary as one string (print it)."""
    lines = _header(fit) + _test_lines(fit, fit_measures) + _parameter_lines(fit, standardized)
    constraints = fit._partable[fit._partable["op"].isin(["==", "<", ">"])]
    if len(constraints):
        lines += ["", "Constraints:"]
        for _, r in constraints.iterrows():
            lines.append(f"  {r['lhs']} {r['op']} {r['rhs']}")
    return "\n".join(lines) + "\n"
