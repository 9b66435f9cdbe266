"""The summary of a fit, laid out as lavaan's ``summary(fit, fit.measures = TRUE,
standardized = TRUE, rsquare = TRUE)``.

:func:`build_summary` collects the summary as blocks (label / value rows, parameter tables)
and :class:`Summary` renders them twice: as lavaan's fixed-width text (``str``; the object
*is* that string, so ``print(fit.summary())`` and ``"..." in fit.summary()`` keep working) and
as HTML tables for notebooks (``_repr_html_``).

Sections, in lavaan's order: the header (estimator, optimizer, iterations, parameters and
constraints, observations per group, missing patterns, clusters), Model Test User Model
(standard and, for robust estimators, scaled column with the scaling factor and the name of
the correction), and with ``fit_measures``: Model Test Baseline Model, User Model versus
Baseline Model (CFI, TLI, robust CFI/TLI), Loglikelihood and Information Criteria (AIC, BIC,
SABIC), RMSEA (interval, p-values of H0: RMSEA <= .05 and H0: RMSEA >= .08, robust RMSEA),
SRMR; then Parameter Estimates (standard-error and information type; Latent Variables,
Regressions, Covariances, Intercepts, Variances per group, with Std.lv / Std.all when
``standardized``), R-Square per group (``rsquare``), Defined Parameters and Constraints
(with the slack of each constraint).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

__all__ = ["Summary", "build_summary", "summary_text"]

#: widths of lavaan's layout: label area, value columns, parameter-table name and columns
LABEL_WIDTH = 42
VALUE_WIDTH = 12
NAME_WIDTH = 18
NUMBER_WIDTH = 9

SCALED_TEST_NAMES = {"satorra.bentler": "Satorra-Bentler correction",
                     "yuan.bentler.mplus": "Yuan-Bentler correction (Mplus variant)",
                     "yuan.bentler": "Yuan-Bentler correction"}
SE_NAMES = {"standard": "Standard", "robust.huber.white": "Sandwich",
            "robust.sem": "Robust.sem", "robust.cluster": "Robust.cluster",
            "robust.cluster.sem": "Robust.cluster.sem", "none": "None"}


# ------------------------------------------------------------------------------ blocks
@dataclass
class Rows:
    """A titled block of ``label  value [value]`` lines (values already formatted)."""

    title: Optional[str]
    rows: list = field(default_factory=list)  # (label with indentation, (values...))
    header: Optional[tuple] = None  # column titles (e.g. Standard / Scaled); () = blank line

    def add(self, label: str = "", *values: str) -> None:
        self.rows.append((label, tuple(values)))


@dataclass
class Heading:
    """A line of text on its own (``Group 1 [Pasteur]:``), preceded by ``blank`` lines."""

    text: str
    blank: int = 1


@dataclass
class Table:
    """A parameter section (Latent Variables, ...): rows of name / label / numbers.

    ``rows`` holds ``(kind, name, label, values)`` with kind ``"head"`` for the ``lhs op``
    lines that group rows (no values) and ``"row"`` for parameters (values: formatted
    strings, blank where lavaan leaves the cell empty)."""

    title: str
    columns: tuple
    rows: list = field(default_factory=list)


def _num(x, digits: int = 3) -> str:
    if x is None:
        return ""
    x = float(x)
    if np.isnan(x):
        return "NA"
    return f"{x:.{digits}f}"


def _int(x) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else str(int(x))


# ------------------------------------------------------------------------------ rendering
def _render_rows(block: Rows) -> list[str]:
    lines = []
    if block.title is not None:
        lines.append(block.title)
    if block.header is not None:
        lines.append(" " * LABEL_WIDTH + "".join(h.rjust(VALUE_WIDTH) for h in block.header))
    elif block.title is not None:
        lines.append("")
    for label, values in block.rows:
        text = "".join(v.rjust(VALUE_WIDTH) for v in values)
        width = LABEL_WIDTH + VALUE_WIDTH * len(values) - len(text)
        if values and len(label) >= width:
            lines.append(f"{label} {text}")
        else:
            lines.append(label.ljust(width) + text)
    return lines


def _name_width(table: Table) -> int:
    longest = max((len(name) + (len(label) + 3 if label else 0)
                   for kind, name, label, _ in table.rows if kind == "row"), default=0)
    return max(NAME_WIDTH, longest + 1)


def _render_table(table: Table) -> list[str]:
    width = _name_width(table)
    lines = [table.title, " " * width + "".join(c.rjust(NUMBER_WIDTH) for c in table.columns)]
    for kind, name, label, values in table.rows:
        if kind == "head":
            lines.append(name)
            continue
        tag = f"({label})" if label else ""
        left = name.ljust(width - len(tag)) + tag
        lines.append(left + "".join(v.rjust(NUMBER_WIDTH) for v in values))
    return lines


def render_text(blocks: list) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += [""] * block.blank + [block.text]
        elif isinstance(block, Rows):
            lines += ([""] if lines else []) + _render_rows(block)
        else:
            lines += [""] + _render_table(block)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _html_rows(block: Rows) -> str:
    esc = html.escape
    out = []
    if block.title is not None:
        out.append(f"<h4 style='margin:0.8em 0 0.2em 0'>{esc(block.title.rstrip(':'))}</h4>")
    out.append("<table class='sem-summary'>")
    if block.header:
        out.append("<tr><th></th>" + "".join(f"<th>{esc(h)}</th>" for h in block.header)
                   + "</tr>")
    for label, values in block.rows:
        if not label and not values:
            continue
        pad = (len(label) - len(label.lstrip())) // 2
        style = f" style='padding-left:{pad}em;text-align:left'"
        out.append(f"<tr><td{style}>{esc(label.strip())}</td>"
                   + "".join(f"<td style='text-align:right'>{esc(v)}</td>" for v in values)
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _html_table(table: Table) -> str:
    esc = html.escape
    out = [f"<h4 style='margin:0.8em 0 0.2em 0'>{esc(table.title.rstrip(':'))}</h4>",
           "<table class='sem-summary'>",
           "<tr><th></th><th></th>" + "".join(f"<th>{esc(c)}</th>" for c in table.columns)
           + "</tr>"]
    ncol = len(table.columns) + 2
    for kind, name, label, values in table.rows:
        if kind == "head":
            out.append(f"<tr><td colspan='{ncol}' style='text-align:left'>"
                       f"<b>{esc(name.strip())}</b></td></tr>")
            continue
        out.append(f"<tr><td style='padding-left:1.5em;text-align:left'>{esc(name.strip())}"
                   f"</td><td>{esc(label)}</td>"
                   + "".join(f"<td style='text-align:right'>{esc(v)}</td>" for v in values)
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_html(blocks: list) -> str:
    parts = ["<div class='sem-models-summary'>",
             "<style>.sem-models-summary table.sem-summary {border-collapse: collapse; "
             "margin-left: 0.5em} .sem-models-summary table.sem-summary td, "
             ".sem-models-summary table.sem-summary th {padding: 1px 10px; "
             "font-variant-numeric: tabular-nums} .sem-models-summary table.sem-summary "
             "td:first-child {min-width: 20em}</style>"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h3 style='margin:0.8em 0 0.2em 0'>{html.escape(block.text)}</h3>")
        elif isinstance(block, Rows):
            parts.append(_html_rows(block))
        else:
            parts.append(_html_table(block))
    parts.append("</div>")
    return "\n".join(parts)


class Summary(str):
    """The summary of a fit: a ``str`` holding lavaan's text layout (print it, search it,
    concatenate it), with ``_repr_html_`` for notebooks and the pieces in :attr:`blocks`."""

    blocks: list

    def __new__(cls, blocks: list) -> "Summary":
        obj = super().__new__(cls, render_text(blocks))
        obj.blocks = blocks
        return obj

    def __getnewargs__(self) -> tuple:  # copy and pickle rebuild from the blocks
        return (self.blocks,)

    def __repr__(self) -> str:  # the REPL shows the summary, not a quoted string
        return str.__str__(self)

    def _repr_html_(self) -> str:
        return render_html(self.blocks)


# ------------------------------------------------------------------------------ building
def _optimizer_name(fit) -> str:
    return "L-BFGS-B" if fit.problem.pmap.has_bounds else "SCORING/NEWTON"


def _header(fit) -> list:
    from . import __version__
    iterations = int(fit.result.iterations)
    blocks: list = []
    if fit.converged:
        blocks.append(Heading(f"sem-models {__version__} ended normally after {iterations} "
                              "iterations", blank=0))
    else:
        blocks.append(Heading(f"** WARNING ** sem-models {__version__} did NOT end normally "
                              f"after {iterations} iterations", blank=0))
        blocks.append(Heading("** WARNING ** Estimates below are most likely unreliable",
                              blank=0))
    model = Rows(None)
    # lavaan names the estimator ML for MLM and MLR too (the robust standard errors and
    # the scaled test are reported in their sections)
    estimator = fit.options.get("estimator", "ML")
    model.add("  Estimator", "ML" if estimator in ("ML", "MLM", "MLR") else estimator)
    model.add("  Optimization method", _optimizer_name(fit))
    model.add("  Number of model parameters", str(len(fit.problem.pmap.free_rows)))
    n_eq = fit.problem.pmap.n_equality
    if n_eq:
        model.add("  Number of equality constraints", str(n_eq))
    n_ineq = int(np.count_nonzero(np.isin(fit._table["op"], ["<", ">"])))
    if n_ineq:
        model.add("  Number of inequality constraints", str(n_ineq))
    blocks.append(model)

    obs = Rows(None)
    if fit.n_groups > 1:
        obs.add("  Number of observations per group:")
        for label, n in zip(fit.group_labels, fit.nobs):
            obs.add(f"    {label}", str(n))
    elif fit.n_dropped:
        obs.header = ("Used", "Total")
        obs.add("  Number of observations", str(fit.ntotal), str(fit.ntotal + fit.n_dropped))
    else:
        obs.add("  Number of observations", str(fit.ntotal))
    if fit.n_dropped:
        obs.add("  Rows not used", str(fit.n_dropped))
        if fit.data.drop_reason:
            obs.add(f"    ({fit.data.drop_reason})")
    if fit.options.get("missing") == "fiml":
        patterns = [len(np.unique(np.isnan(g.X), axis=0)) for g in fit.data.groups]
        if fit.n_groups > 1:
            obs.add("  Number of missing patterns per group:")
            for label, k in zip(fit.group_labels, patterns):
                obs.add(f"    {label}", str(k))
        else:
            obs.add("  Number of missing patterns", str(patterns[0]))
    cluster = fit.options.get("cluster")
    if cluster:
        n_clusters = sum(len(np.unique(g.cluster)) for g in fit.data.groups)
        obs.add(f"  Number of clusters [{cluster}]", str(n_clusters))
    blocks.append(obs)
    return blocks


def _group_statistics(fit) -> list[float]:
    """Each group's contribution to the test statistic, ``2 n_g F_g``."""
    return [2.0 * loss.nobs * float(loss.value(mom))
            for loss, mom in zip(fit.problem.losses, fit._moments)]


def _tests(fit, m: pd.Series, fit_measures: bool) -> list:
    from .inference.options import scaled_test_name
    scaled_name = scaled_test_name(fit)
    scaled = scaled_name is not None and "chisq_scaled" in m.index
    get = lambda key: m.get(key, np.nan)  # noqa: E731

    def values(std_key, scaled_key=None, fmt=_num):
        out = [fmt(get(std_key))]
        if scaled:
            out.append(fmt(get(scaled_key)) if scaled_key else "")
        return out

    blocks = []
    user = Rows("Model Test User Model:", header=("Standard", "Scaled") if scaled else ())
    user.add("  Test Statistic" if scaled else "  Test statistic",
             *values("chisq", "chisq_scaled"))
    user.add("  Degrees of freedom", *values("df", "df_scaled", _int))
    user.add("  P-value (Chi-square)", *values("pvalue", "pvalue_scaled"))
    if scaled:
        user.add("  Scaling correction factor", "", _num(get("chisq_scaling_factor")))
        user.add(f"    {SCALED_TEST_NAMES.get(scaled_name, scaled_name)}", "", "")
        if fit.options.get("observed_information", ("hessian", "hessian"))[1] == "h1":
            user.add("  Observed information based on", "H1", "")
    if fit.n_groups > 1:
        user.add("  Test statistic for each group:")
        c = get("chisq_scaling_factor") if scaled else np.nan
        # scaled and shifted tests: each group gets its share N_g / N of the shift (lavaan)
        shift = get("chisq_shift_parameter") if scaled else np.nan
        shift = shift if np.isfinite(shift) else 0.0
        for w, label, stat in zip(fit.problem.weights, fit.group_labels, _group_statistics(fit)):
            user.add(f"    {label}", _num(stat),
                     *([_num(stat / c + w * shift)] if scaled else []))
    blocks.append(user)
    if not fit_measures:
        return blocks

    base = Rows("Model Test Baseline Model:")
    base.add("  Test statistic", *values("baseline_chisq", "baseline_chisq_scaled"))
    base.add("  Degrees of freedom", *values("baseline_df", "baseline_df_scaled", _int))
    base.add("  P-value", *values("baseline_pvalue", "baseline_pvalue_scaled"))
    if scaled:
        base.add("  Scaling correction factor", "", _num(get("baseline_chisq_scaling_factor")))
    blocks.append(base)

    robust_col = ("",) if scaled else ()
    incremental = Rows("User Model versus Baseline Model:")
    incremental.add("  Comparative Fit Index (CFI)", *values("cfi", "cfi_scaled"))
    incremental.add("  Tucker-Lewis Index (TLI)", *values("tli", "tli_scaled"))
    if np.isfinite(get("cfi_robust")):
        incremental.add("", *robust_col, "")
        incremental.add("  Robust Comparative Fit Index (CFI)", *robust_col,
                        _num(get("cfi_robust")))
        incremental.add("  Robust Tucker-Lewis Index (TLI)", *robust_col,
                        _num(get("tli_robust")))
    blocks.append(incremental)

    return blocks + _loglik_blocks(get, scaled) + _rmsea_blocks(get, scaled, values, robust_col)


def _loglik_blocks(get, scaled: bool) -> list:
    """Loglikelihood and Information Criteria (none for least-squares estimators)."""
    if not np.isfinite(get("logl")):
        return []
    loglik = Rows("Loglikelihood and Information Criteria:")
    two = lambda key: [_num(get(key))] * (2 if scaled else 1)  # noqa: E731
    loglik.add("  Loglikelihood user model (H0)", *two("logl"))
    if scaled and np.isfinite(get("scaling_factor_h0")):
        loglik.add("  Scaling correction factor", "", _num(get("scaling_factor_h0")))
        loglik.add("      for the MLR correction", "", "")
    loglik.add("  Loglikelihood unrestricted model (H1)", *two("unrestricted_logl"))
    if scaled and np.isfinite(get("scaling_factor_h1")):
        loglik.add("  Scaling correction factor", "", _num(get("scaling_factor_h1")))
        loglik.add("      for the MLR correction", "", "")
    loglik.add("", *[""] * (2 if scaled else 1))
    loglik.add("  Akaike (AIC)", *two("aic"))
    loglik.add("  Bayesian (BIC)", *two("bic"))
    loglik.add("  Sample-size adjusted Bayesian (SABIC)", *two("bic2"))
    return [loglik]


def _rmsea_blocks(get, scaled: bool, values, robust_col: tuple) -> list:
    """RMSEA (with the robust RMSEA when there is one) and SRMR."""
    two = lambda key: [_num(get(key))] * (2 if scaled else 1)  # noqa: E731
    blocks = []
    level = get("rmsea_ci_level")
    level = 90 if not np.isfinite(level) else int(round(100 * level))
    close = get("rmsea_close_h0")
    close = 0.05 if not np.isfinite(close) else close
    notclose = get("rmsea_notclose_h0")
    notclose = 0.08 if not np.isfinite(notclose) else notclose
    rmsea = Rows("Root Mean Square Error of Approximation:")
    rmsea.add("  RMSEA", *values("rmsea", "rmsea_scaled"))
    rmsea.add(f"  {level} Percent confidence interval - lower",
              *values("rmsea_ci_lower", "rmsea_ci_lower_scaled"))
    rmsea.add(f"  {level} Percent confidence interval - upper",
              *values("rmsea_ci_upper", "rmsea_ci_upper_scaled"))
    rmsea.add(f"  P-value H_0: RMSEA <= {close:.3f}", *values("rmsea_pvalue", "rmsea_pvalue_scaled"))
    rmsea.add(f"  P-value H_0: RMSEA >= {notclose:.3f}",
              *values("rmsea_notclose_pvalue", "rmsea_notclose_pvalue_scaled"))
    if np.isfinite(get("rmsea_robust")):
        rmsea.add("", *robust_col, "")
        rmsea.add("  Robust RMSEA", *robust_col, _num(get("rmsea_robust")))
        rmsea.add(f"  {level} Percent confidence interval - lower", *robust_col,
                  _num(get("rmsea_ci_lower_robust")))
        rmsea.add(f"  {level} Percent confidence interval - upper", *robust_col,
                  _num(get("rmsea_ci_upper_robust")))
        rmsea.add(f"  P-value H_0: Robust RMSEA <= {close:.3f}", *robust_col,
                  _num(get("rmsea_pvalue_robust")))
        rmsea.add(f"  P-value H_0: Robust RMSEA >= {notclose:.3f}", *robust_col,
                  _num(get("rmsea_notclose_pvalue_robust")))
    blocks.append(rmsea)

    srmr = Rows("Standardized Root Mean Square Residual:")
    srmr.add("  SRMR", *two("srmr"))
    blocks.append(srmr)
    return blocks


def _estimation_info(fit) -> Rows:
    block = Rows("Parameter Estimates:")
    se = fit.options.get("se", "standard")
    information = fit.options.get("information", "expected")
    block.add("  Standard errors", SE_NAMES.get(se, se))
    block.add("  Information bread" if se == "robust.huber.white" else "  Information",
              information.capitalize())
    if information == "expected":
        block.add("  Information saturated (h1) model",
                  fit.options.get("h1_information", "structured").capitalize())
    else:
        kind = fit.options.get("observed_information", ("hessian", "hessian"))[0]
        block.add("  Observed information based on", "Hessian" if kind == "hessian" else "H1")
    return block


def _parameter_blocks(fit, standardized: bool, rsquare: bool) -> list:
    table = fit.standardized(se=False) if standardized else fit.estimates()
    pt = fit._partable
    # the parameter table's rows shown in estimates() (constraint rows excluded), with
    # lavaan's labels (automatic ``.pN.`` labels of group_equal included)
    shown = ~pt["op"].isin(["==", "<", ">"]).to_numpy()
    rows = pt.loc[shown, ["group", "free", "exo", "label"]].reset_index(drop=True)
    table = table.reset_index(drop=True)
    table["_group"] = rows["group"].to_numpy()
    table["_fixed"] = (rows["free"].to_numpy() == 0) & (table["op"].to_numpy() != ":=")
    table["_exo"] = rows["exo"].to_numpy() == 1
    table["_label"] = rows["label"].to_numpy()
    columns = ("Estimate", "Std.Err", "z-value", "P(>|z|)") + \
        (("Std.lv", "Std.all") if standardized else ())

    def numbers(r) -> tuple:
        out = [_num(r["est"])]
        out += ["", "", ""] if r["_fixed"] else [_num(r["se"]), _num(r["z"]), _num(r["pvalue"])]
        if standardized:
            out += [_num(r["std_lv"]), _num(r["std_all"])]
        return tuple(out)

    blocks: list = []
    for g in range(fit.n_groups):
        sub = table[table["_group"] == g + 1]
        endogenous = set(sub.loc[sub["op"] == "=~", "rhs"]) | set(sub.loc[sub["op"] == "~", "lhs"])

        def name(v: str, indent: int = 4) -> str:
            return " " * (indent - 1) + "." + v if v in endogenous else " " * indent + v

        if fit.n_groups > 1:
            blocks.append(Heading(f"Group {g + 1} [{fit.group_labels[g]}]:", blank=2))
        op = sub["op"]
        same = sub["lhs"] == sub["rhs"]
        not_exo = ~sub["_exo"]
        sections = [("Latent Variables:", sub[op == "=~"], "grouped"),
                    ("Regressions:", sub[op == "~"], "grouped"),
                    ("Covariances:", sub[(op == "~~") & ~same & not_exo], "covariance"),
                    ("Intercepts:", sub[(op == "~1") & not_exo], "single"),
                    ("Thresholds:", sub[op == "|"], "threshold"),  # ordered indicators
                    ("Variances:", sub[(op == "~~") & same & not_exo], "single"),
                    ("Scales y*:", sub[op == "~*~"], "plain")]
        for title, part, kind in sections:
            if part.empty:
                continue
            block = Table(title, columns)
            current = None
            for _, r in part.iterrows():
                if kind == "grouped":
                    if r["lhs"] != current:
                        current = r["lhs"]
                        block.rows.append(("head", f"  {current} {r['op']}", "", ()))
                    label_name = f"    {r['rhs']}"
                elif kind == "covariance":
                    if r["lhs"] != current:
                        current = r["lhs"]
                        block.rows.append(("head", f"{name(current, 2)} ~~", "", ()))
                    label_name = name(r["rhs"])
                elif kind in ("threshold", "plain"):
                    suffix = f"|{r['rhs']}" if kind == "threshold" else ""
                    label_name = f"    {r['lhs']}{suffix}"
                else:
                    label_name = name(r["lhs"])
                block.rows.append(("row", label_name, r["_label"], numbers(r)))
            blocks.append(block)
        if rsquare:
            r2 = fit._rsquare[g]
            if len(r2):
                block = Table("R-Square:", ("Estimate",))
                for v, value in r2.items():
                    block.rows.append(("row", f"    {v}", "", (_num(value),)))
                blocks.append(block)

    defined = table[table["op"] == ":="]
    if len(defined):
        block = Table("Defined Parameters:", columns)
        for _, r in defined.iterrows():
            block.rows.append(("row", f"    {r['lhs']}", "", numbers(r)))
        blocks.append(block)
    constraints = _constraint_rows(fit)
    if constraints:
        block = Rows("Constraints:", header=("|Slack|",))
        for text, slack in constraints:
            block.add(f"    {text}", _num(slack))
        blocks.append(block)
    return blocks


def _constraint_rows(fit) -> list[tuple[str, float]]:
    """(``lhs - (rhs)``, slack) of each ``==``, ``<``, ``>`` row, as lavaan's Constraints
    section: |lhs - rhs| for equalities, the distance to the bound for inequalities."""
    from .model.syntax import compile_expression
    pt = fit._partable
    rows = pt[pt["op"].isin(["==", "<", ">"])]
    if rows.empty:
        return []
    env = fit.label_values()
    out = []
    for lhs, op, rhs in zip(rows["lhs"], rows["op"], rows["rhs"]):
        if op == "<":  # lhs < rhs  <=>  rhs - lhs > 0
            lhs, rhs = rhs, lhs
        try:
            value = compile_expression(lhs).evaluate(env) - compile_expression(rhs).evaluate(env)
        except (KeyError, ValueError, ZeroDivisionError):
            value = np.nan
        out.append((f"{lhs} - ({rhs})", abs(value) if op == "==" else value))
    return out


def build_summary(fit, standardized: bool = True, fit_measures: bool = True,
                  rsquare: bool = True) -> Summary:
    """The :class:`Summary` of a fit (see the module docstring for the sections)."""
    m = fit.measures()
    blocks = _header(fit) + _tests(fit, m, fit_measures) + [_estimation_info(fit)]
    blocks += _parameter_blocks(fit, standardized, rsquare)
    return Summary(blocks)


def summary_text(fit, standardized: bool = False, fit_measures: bool = True,
                 rsquare: bool = False) -> str:
    """The summary as a plain string (kept for callers of the earlier text summary)."""
    return str.__str__(build_summary(fit, standardized=standardized,
                                     fit_measures=fit_measures, rsquare=rsquare))
