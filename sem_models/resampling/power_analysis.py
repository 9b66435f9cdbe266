"""Power analysis of a model by Monte Carlo simulation and from the noncentral chi-square.

* :func:`power` -- Monte Carlo power, bias, coverage and SE accuracy of an analysis model fitted
  to samples from a population model (Muthen & Muthen 2002), by Wald or likelihood-ratio tests;
  power is reported over converged replications and over all replications, where
  non-converged ones count as non-rejections (Wang & Rhemtulla 2021);
* :func:`analytic_power` -- the power of the likelihood-ratio test from the noncentral
  chi-square distribution (Satorra & Saris 1985).

The population models and the data generators are those of :mod:`.simulate`; the power curves
of :mod:`.curve` reuse the replication task built here.

References: Muthen, L. K., & Muthen, B. O. (2002). How to use a Monte Carlo study to decide on
sample size and determine power. SEM 9, 599-620.  Satorra, A., & Saris, W. E. (1985). Power of
the likelihood ratio test in covariance structure analysis. Psychometrika 50, 83-90.  Wang,
Y. A., & Rhemtulla, M. (2021). Power analysis for parameter estimation in structural equation
modeling. AMPPS 4(1).
"""
from __future__ import annotations

import math
import re
import warnings
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from .executor import run_replications
from .refit import Refitter
from .simulate import Sizes, _Generator, _Population, _sizes

__all__ = ["power", "analytic_power"]

_OPS = ("=~", "~~", "~1", "~")


def _split_parameter(text: str) -> tuple[str, str, str, Optional[int]]:
    """``"y ~ x"`` -> ("y", "~", "x", None); ``"y~x.g2"`` -> (..., 2); labels -> ("", "", label)."""
    name = re.sub(r"\s+", "", str(text))
    group = None
    m = re.match(r"^(.*)\.g(\d+)$", name)
    if m and any(op in m.group(1) for op in _OPS):
        name, group = m.group(1), int(m.group(2))
    for op in _OPS:
        if op in name:
            lhs, rhs = name.split(op, 1)
            if op == "~" and rhs == "1":
                return lhs, "~1", "", group
            return lhs, op, rhs, group
    return "", "", name, group


def _row_names(table: pd.DataFrame) -> list[str]:
    """``lhs op rhs`` (``.gK`` for group K > 1) for every estimates() row, ``:=`` names."""
    out = []
    for lhs, op, rhs, g in zip(table["lhs"], table["op"], table["rhs"], table["group"]):
        if op == ":=":
            out.append(str(lhs))
        else:
            name = f"{lhs}{op}{rhs}"
            out.append(name if int(g) <= 1 else f"{name}.g{int(g)}")
    return out


def _resolve_parameters(pilot, parameters) -> list[tuple[str, int]]:
    """(name, estimates() row) of each requested parameter (all groups for ``lhs op rhs``)."""
    pt = pilot.partable
    keep = ~pt["op"].isin(["==", "<", ">"]).to_numpy()
    table = pt[keep].reset_index(drop=True)
    names = _row_names(table)
    free = (table["free"].to_numpy() > 0) | (table["op"].to_numpy() == ":=")
    if parameters is None:
        return [(names[i], i) for i in np.flatnonzero(free)]
    if isinstance(parameters, str):
        parameters = [parameters]
    out = []
    for spec in parameters:
        lhs, op, rhs, group = _split_parameter(spec)
        if op:
            hit = [i for i in range(len(table))
                   if table["op"][i] == op and ((table["lhs"][i], table["rhs"][i]) == (lhs, rhs)
                                                or (op == "~~" and (table["rhs"][i],
                                                                    table["lhs"][i]) == (lhs, rhs)))
                   and (group is None or int(table["group"][i]) == group)]
        else:
            hit = [i for i in range(len(table))
                   if (table["label"][i] == rhs and table["op"][i] != ":=")
                   or (table["op"][i] == ":=" and table["lhs"][i] == rhs)]
        if not hit:
            raise ValueError(f"parameter {spec!r} is not in the analysis model; its parameters "
                             f"are: {', '.join(names[i] for i in np.flatnonzero(free))}")
        for i in hit:
            if not free[i]:
                raise ValueError(f"parameter {spec!r} is fixed in the analysis model: no test")
            out.append((names[i], i))
    seen = set()
    return [(n, i) for n, i in out if not (n in seen or seen.add(n))]


def _restricted_syntax(model: str, table: pd.DataFrame, row: int) -> str:
    """The analysis model with the parameter of estimates() row ``row`` constrained to 0,
    through its parameter label (``.pN. == 0``, as lavaan allows in constraints)."""
    lhs, op = table["lhs"][row], table["op"][row]
    if op == ":=":
        raise ValueError(f"the likelihood-ratio test of the defined parameter {lhs!r} needs a "
                         "nonlinear constraint; use test='wald'")
    return f"{model}\n{table['plabel'][row]} == 0\n"


def _split(total: int, shares: np.ndarray) -> list[int]:
    """``total`` cases split in the proportions ``shares`` (rounded down; the rest to the
    first groups)."""
    sizes = np.floor(total * shares).astype(int)
    sizes[: total - int(sizes.sum())] += 1
    return sizes.tolist()


def _test_stats(fit) -> tuple[float, float]:
    stats = getattr(fit, "_test_statistics", None)
    s = stats() if stats is not None else fit.measures()
    return float(s["chisq"]), float(s["df"])


class _PowerTask:
    """One replication of a power study: simulate, fit, (refit restricted models), extract.

    Estimates, SEs (``fit.vcov()``), Wald p-values and intervals are read for the requested
    parameters only; ``:=`` quantities by the delta method with a central-difference gradient
    (as ``fit.estimates()``, without evaluating every defined parameter)."""

    def __init__(self, gen: _Generator, conditions: list[list[int]], reps: int,
                 fitter, params: list[tuple[str, int]], targets: list, refit,
                 restricted: dict, test: str, truth: dict, columns: np.ndarray,
                 level: float):
        self.gen = gen
        self.conditions = conditions
        self.reps = reps
        self.fitter = fitter  # Refitter of the analysis model (from the pilot fit)
        self.columns = columns  # the analysis model's variables among the population's
        self.params = params
        self.targets = targets  # per parameter: ("free", k) or ("defined", j)
        self.refit = refit  # evaluates the := quantities (boot._Refit of the pilot fit)
        self.restricted = restricted  # parameter -> Refitter of the restricted model
        self.test = test
        self.truth = truth
        self.level = level
        #: (n_min, n_max, group shares): n drawn per replication, log-uniform (power curves)
        self.n_range: Optional[tuple] = None

    def _est_se(self, fit) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(fit.values, float)
        theta = values[self.refit.rows]
        V = fit.vcov().to_numpy(float)
        est, se = [], []
        for kind, k in self.targets:
            if kind == "free":
                est.append(theta[k])
                se.append(np.sqrt(max(V[k, k], 0.0)))
                continue
            f0 = self.refit.defined_at(theta, values)[k]
            grad = np.empty(len(theta))
            for m in range(len(theta)):
                h = 1e-6 * max(1.0, abs(theta[m]))
                up, down = theta.copy(), theta.copy()
                up[m] += h
                down[m] -= h
                grad[m] = (self.refit.defined_at(up, values)[k]
                           - self.refit.defined_at(down, values)[k]) / (2 * h)
            est.append(f0)
            se.append(np.sqrt(max(grad @ V @ grad, 0.0)))
        return np.array(est), np.array(se)

    def __call__(self, rng: np.random.Generator, r: int) -> dict:
        from scipy.special import chdtrc, ndtr, ndtri  # scipy.stats costs seconds to import
        if self.n_range is not None:
            lo, hi, shares = self.n_range
            c = int(round(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
            sizes = _split(c, shares)
        else:
            c = r // self.reps
            sizes = self.conditions[c]
        Xs = [X[:, self.columns] for X in self.gen.draw(rng, sizes)]
        fit = self.fitter.fit(Xs)
        est, se = self._est_se(fit)
        with np.errstate(divide="ignore", invalid="ignore"):
            pv = 2 * ndtr(-np.abs(est / se))
        crit = ndtri(0.5 + self.level / 2)
        out = {"condition": c, "converged": bool(fit.converged)}
        chisq = df = None
        for j, (name, _) in enumerate(self.params):
            out[f"{name}|est"] = est[j]
            out[f"{name}|se"] = se[j]
            out[f"{name}|p_wald"] = pv[j]
            t = self.truth.get(name, np.nan)
            out[f"{name}|covered"] = float(abs(est[j] - t) <= crit * se[j]) \
                if np.isfinite(t) else np.nan
            if self.test == "lrt":
                if chisq is None:
                    chisq, df = _test_stats(fit)
                small = self.restricted[name].fit(Xs)
                chisq0, df0 = _test_stats(small)
                diff = max(chisq0 - chisq, 0.0)
                out[f"{name}|p_lrt"] = float(chdtrc(df0 - df, diff)) if df0 > df else np.nan
                out[f"{name}|converged_lrt"] = bool(small.converged)
        return out


def power(population: str, model: str, n: Union[Sizes, Sequence[Sequence[int]]] = (100,),
          reps: int = 1000, parameters: Union[None, str, Sequence[str]] = None, *,
          alpha: float = 0.05, test: str = "wald", seed=None, executor=None,
          batch_size: Optional[int] = None, progress: bool = True, checkpoint=None,
          skewness=None, kurtosis=None, return_replications: bool = False, **fit_options):
    """Power by Monte Carlo simulation (Muthen & Muthen 2002; lavaan/simsem style).

    ``population`` is lavaan syntax with the population values (unspecified ones as lavaan's
    ``simulateData``), ``model`` the analysis model, fitted with :func:`sem_models.sem` and
    ``fit_options`` to ``reps`` samples for each sample size in ``n`` (an integer per
    condition, or a list of group sizes per condition for multi-group models, with group
    column ``group``).  ``parameters``: ``"lhs op rhs"`` (``.gK`` for one group), labels or
    ``:=`` names (default: all free parameters).  ``test="wald"`` rejects when the z-test's
    p-value is below ``alpha``; ``test="lrt"`` when the likelihood-ratio test against the model
    with the parameter fixed to 0 (in every group) is.

    Returns a DataFrame with one row per sample size and parameter: ``true`` (population
    value, NaN if the population model lacks the parameter), ``reps``, ``converged`` and
    ``convergence_rate``, ``power`` (share of converged replications that reject) and
    ``power_all`` (non-converged count as non-rejections), ``mean_est``, ``bias``,
    ``rel_bias``, ``sd_est``, ``mean_se``, ``se_ratio`` (mean SE / SD of the estimates) and
    ``coverage`` of the ``level`` (default 0.95) Wald intervals.  With
    ``return_replications=True`` also the per-replication table.
    """
    if test not in ("wald", "lrt"):
        raise ValueError(f"test must be 'wald' or 'lrt', not {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    reps = int(reps)
    if reps < 1:
        raise ValueError(f"reps must be positive, not {reps}")
    n_list = [n] if np.isscalar(n) else list(n)
    conditions = [_sizes(k) for k in n_list]
    n_groups = len(conditions[0])
    if any(len(c) != n_groups for c in conditions):
        raise ValueError("every condition in n must give the same number of group sizes")
    pilot_n = [max(c) for c in zip(*conditions)]
    task = _power_task(population, model, n_groups, pilot_n, parameters, test, fit_options,
                       skewness, kurtosis)
    task.conditions, task.reps = conditions, reps
    reps_table = run_replications(task, reps * len(conditions), seed=seed, executor=executor,
                                  batch_size=batch_size, progress=progress,
                                  checkpoint=checkpoint, desc="power")
    summary = _summarise(reps_table, conditions, n_list, reps, task.params, task.truth, test,
                         alpha)
    return (summary, reps_table) if return_replications else summary


def _power_task(population: str, model: str, n_groups: int, pilot_n: list[int], parameters,
                test: str, fit_options: dict, skewness, kurtosis) -> "_PowerTask":
    """The replication of a power study: population, pilot fit of the analysis model (to data
    with the population moments exactly: it checks the model and options and maps the
    parameters to rows), refitters, true values."""
    pop = _Population(population, n_groups)
    if pop.n_groups != n_groups:
        raise ValueError(f"the population model has {pop.n_groups} groups but n gives "
                         f"{n_groups} group size(s)")
    group = "group" if n_groups > 1 else None
    options = dict(fit_options)
    if group is not None:
        options.setdefault("group", group)
    gen = _Generator(pop.moments, pop.ov, skewness, kurtosis, pop.thresholds)
    from ..api import sem
    pilot_n = [max(k, len(pop.ov) + 1) for k in pilot_n]
    pilot_data = gen.frame(_Generator(pop.moments, pop.ov, thresholds=pop.thresholds).draw(
        np.random.default_rng(0), pilot_n, empirical=True), group)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pilot = sem(model, pilot_data, **options)
    params = _resolve_parameters(pilot, parameters)
    pt = pilot.partable
    table = pt[~pt["op"].isin(["==", "<", ">"]).to_numpy()].reset_index(drop=True)
    truth = {}
    pop_defined = None
    for name, i in params:
        op = table["op"][i]
        if op == ":=":
            if pop_defined is None:
                pop_defined = pop.defined()
            truth[name] = float(pop_defined.get(table["lhs"][i], np.nan))
        else:
            truth[name] = pop.value_of(table["lhs"][i], op, table["rhs"][i],
                                       int(table["group"][i]))
    restricted = {}
    if test == "lrt":
        for name, i in params:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                small = sem(_restricted_syntax(model, table, i), pilot_data, **options)
            restricted[name] = Refitter(small, inference=True)
    from .boot import _Refit
    refit = _Refit(pilot, [])
    missing_vars = [v for v in pilot.data.ov_names if v not in pop.ov]
    if missing_vars:
        raise ValueError(f"the analysis model's variable(s) {missing_vars} are not in the "
                         "population model")
    columns = np.array([pop.ov.index(v) for v in pilot.data.ov_names])
    free_rows = {int(r): k for k, r in enumerate(refit.rows)}
    keep_rows = np.flatnonzero(~pt["op"].isin(["==", "<", ">"]).to_numpy())
    defined_names = [name for name, _ in refit.defined]
    targets = []
    for name, i in params:
        row = int(keep_rows[i])
        targets.append(("free", free_rows[row]) if row in free_rows
                       else ("defined", defined_names.index(table["lhs"][i])))
    level = float(options.get("level", 0.95))
    return _PowerTask(gen, [], 1, Refitter(pilot, inference=True), params, targets, refit,
                      restricted, test, truth, columns, level)


def _is_true(column: pd.Series) -> np.ndarray:
    """True entries of a flag column (missing entries of failed replications are not)."""
    values = column.to_numpy(object)
    known = pd.notna(values)
    out = np.zeros(len(values), bool)
    out[known] = values[known].astype(bool)
    return out


def _summarise(reps_table: pd.DataFrame, conditions, n_list, reps, params, truth, test,
               alpha) -> pd.DataFrame:
    rows = []
    reps_table = reps_table.copy()
    for name, _ in params:  # replications that all failed leave columns out
        for key in ("est", "se", "p_wald", "covered", "p_lrt"):
            if f"{name}|{key}" not in reps_table:
                reps_table[f"{name}|{key}"] = np.nan
        if f"{name}|converged_lrt" not in reps_table:
            reps_table[f"{name}|converged_lrt"] = False
    if "converged" not in reps_table:
        reps_table["converged"] = False
    ok_run = reps_table["error"].isna().to_numpy()
    cond = np.arange(len(reps_table)) // reps
    conv = ok_run & _is_true(reps_table["converged"])
    for c, n_value in enumerate(n_list):
        in_c = cond == c
        for name, _ in params:
            used = in_c & conv
            if test == "lrt":
                used = used & _is_true(reps_table[f"{name}|converged_lrt"])
                pvals = reps_table[f"{name}|p_lrt"].to_numpy(float)
            else:
                pvals = reps_table[f"{name}|p_wald"].to_numpy(float)
            est = reps_table[f"{name}|est"].to_numpy(float)[in_c & conv]
            se = reps_table[f"{name}|se"].to_numpy(float)[in_c & conv]
            cov = reps_table[f"{name}|covered"].to_numpy(float)[in_c & conv]
            reject = (pvals[used] < alpha)
            n_conv = int(used.sum())
            t = truth[name]
            mean_est = float(np.mean(est)) if len(est) else np.nan
            sd_est = float(np.std(est, ddof=1)) if len(est) > 1 else np.nan
            mean_se = float(np.mean(se)) if len(se) else np.nan
            rows.append({
                "n": n_value, "parameter": name, "true": t, "reps": reps,
                "converged": n_conv, "convergence_rate": n_conv / reps,
                "power": float(reject.mean()) if n_conv else np.nan,
                "power_all": float(reject.sum()) / reps,
                "mean_est": mean_est, "bias": mean_est - t,
                "rel_bias": (mean_est - t) / t if np.isfinite(t) and t != 0 else np.nan,
                "sd_est": sd_est, "mean_se": mean_se,
                "se_ratio": mean_se / sd_est if sd_est and np.isfinite(sd_est) else np.nan,
                "coverage": float(np.nanmean(cov)) if len(cov) and np.isfinite(cov).any()
                else np.nan,
            })
    out = pd.DataFrame(rows)
    out.attrs.update({"alpha": alpha, "test": test})
    return out


def analytic_power(population: str, model: str, n: Sizes, parameter: Optional[str] = None, *,
                   restricted: Optional[str] = None, alpha: float = 0.05,
                   **fit_options) -> pd.DataFrame:
    """Power of the likelihood-ratio test by Satorra & Saris (1985).

    The restricted model (``model`` with ``parameter`` fixed to 0, or the syntax
    ``restricted``) is fitted to the population moments of ``population`` (samples with exact
    moments, :func:`~.simulate.simulate_data` with ``empirical=True``); with ``F0`` its minimum of the ML
    discrepancy ``log|Sigma| + tr(S Sigma^-1) - log|S| - p (+ mean part)``, the noncentrality
    at total sample size N is ``lambda = N F0`` (lavaan's convention: the statistic is
    ``N F``, not ``(N - 1) F``) and the power is ``P(chi2_df(lambda) > chi2_df,1-alpha)`` with
    ``df`` the difference in degrees of freedom between ``restricted`` and ``model``.
    Returns one row per sample size: ``n``, ``ncp``, ``df``, ``power``.
    """
    from scipy.stats import chi2, ncx2
    from ..api import sem
    n_list = [n] if np.isscalar(n) else list(n)
    conditions = [_sizes(k) for k in n_list]
    n_groups = len(conditions[0])
    pop = _Population(population, n_groups)
    group = "group" if n_groups > 1 else None
    options = dict(fit_options)
    if group is not None:
        options.setdefault("group", group)
    gen = _Generator(pop.moments, pop.ov)
    rows = []
    for cond, n_value in zip(conditions, n_list):
        # exact population moments, group sizes in the condition's proportions
        factor = math.ceil((len(pop.ov) + 1) / min(cond))
        scaled = [k * factor for k in cond]
        data = gen.frame(gen.draw(np.random.default_rng(0), scaled, empirical=True), group)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = sem(model, data, **options)
            if restricted is None:
                if parameter is None:
                    raise ValueError("give the parameter to test or the restricted model")
                params = _resolve_parameters(full, [parameter])
                pt = full.partable
                table = pt[~pt["op"].isin(["==", "<", ">"]).to_numpy()].reset_index(drop=True)
                small_syntax = _restricted_syntax(model, table, params[0][1])
            else:
                small_syntax = restricted
            small = sem(small_syntax, data, **options)
        chisq_f, df_f = _test_stats(full)
        chisq_r, df_r = _test_stats(small)
        F0 = (chisq_r - chisq_f) / full.ntotal  # chisq = N F with the N of these data
        N = sum(cond)
        ncp = N * F0
        df = int(round(df_r - df_f))
        crit = chi2.ppf(1 - alpha, df)
        rows.append({"n": n_value, "ncp": ncp, "df": df,
                     "power": float(ncx2.sf(crit, df, ncp)) if ncp > 0 else alpha})
    return pd.DataFrame(rows)
