"""Resampling in the alliance study: the school bootstrap of the latent congruence model's
discrepancy paths and the power of the format x discrepancy effect by number of schools
(issue 17; the steps ``lcm`` and ``power`` of :func:`sem_models.study.pipeline.run_study`).

* :func:`lcm_bootstrap_table` -- whole schools resampled within format (Davison & Hinkley
  1997, sec. 3.8, the first stage of their two-stage scheme: with 10 schools per format the
  children of one school are not independent), the LCM refitted (FIML) on each sample:
  percentile intervals of the outcome's paths on M and D per format and of the format
  difference of the D path.
* :func:`school_power` -- Monte Carlo power of the test of equal discrepancy paths across
  formats by the number of schools per format, from a two-level population built from the
  data (between- and within-school covariance matrices by the ANOVA estimators).

References: Davison, A. C., & Hinkley, D. V. (1997). Bootstrap methods and their application.
Cambridge UP.  Searle, S. R., Casella, G., & McCulloch, C. E. (1992). Variance components.
Wiley.
"""
from __future__ import annotations

import html
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["lcm_bootstrap_table", "school_power", "POWER_MODEL", "step_power",
           "report_section"]

#: the observed-score moderation model of the power analysis (one D path per format)
POWER_MODEL = "int_fu ~ c(bM1, bM2)*M + c(bD1, bD2)*D + int_pre"


# ----------------------------------------------------------------------------- LCM bootstrap
def lcm_bootstrap_table(lcm, data: pd.DataFrame, cluster: str, R: int, *, seed: int,
                        level: float = 0.95, executor=None) -> pd.DataFrame:
    """School bootstrap of a fitted latent congruence model (``CongruenceFit`` by format):
    per format the outcome's paths on the latent mean and difference, and the difference of
    the D paths (second format minus the first), with bootstrap SE and percentile interval.
    ``data``: the data the model was fitted to (its ``cluster`` column)."""
    from ..resampling.boot import bootstrap
    from ..resampling.intervals import interval
    boot = bootstrap(lcm.fit, int(R), seed=seed, cluster=cluster, data=data,
                     executor=executor, progress=False)
    draws = boot.draws.loc[boot.valid]
    est = lcm.paths()
    labels = list(lcm.group_labels)
    values = {}
    rows = []
    for k, g in enumerate(labels):
        for path in (lcm.mean, lcm.diff):
            name = f"{lcm.outcome}~{path}" + (f".g{k + 1}" if k else "")
            e = float(est[(est["rhs"] == path) & (est["group"] == g)]["est"].iloc[0])
            values[(g, path)] = (e, draws[name].to_numpy(float))
            rows.append((str(g), f"{lcm.outcome} ~ {path}", e, values[(g, path)][1]))
    (e1, d1), (e2, d2) = values[(labels[0], lcm.diff)], values[(labels[1], lcm.diff)]
    rows.append((f"{labels[1]} - {labels[0]}", f"{lcm.outcome} ~ {lcm.diff} (difference)",
                 e2 - e1, d2 - d1))
    out = []
    for fmt, param, e, d in rows:
        d = d[np.isfinite(d)]
        lo, hi = interval(d, e, "percentile", level)
        out.append({"format": fmt, "parameter": param, "est": e,
                    "boot_se": float(np.std(d, ddof=1)) if len(d) > 1 else np.nan,
                    "ci_lower": lo, "ci_upper": hi, "n_valid": int(len(d))})
    table = pd.DataFrame(out)
    table.attrs.update({"replicates": int(R), "valid": int(boot.n_valid)})
    return table


# ----------------------------------------------------------------------------- power
def anova_covariances(Z: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Between- and within-cluster covariance matrices by the one-way (M)ANOVA estimators
    (Searle, Casella & McCulloch 1992, sec. 3.5): ``Sigma_W = MSW`` and ``Sigma_B = (MSB -
    MSW) / n0`` with ``n0 = (N - sum n_j^2 / N) / (J - 1)``, projected onto the positive
    semidefinite matrices."""
    Z = np.asarray(Z, float).reshape(len(Z), -1)
    codes, _ = pd.factorize(pd.Series(clusters))
    J, N = int(codes.max()) + 1, len(Z)
    if J < 2 or N <= J:
        raise ValueError("the ANOVA estimators need at least two clusters and more rows than "
                         "clusters")
    n = np.bincount(codes, minlength=J).astype(float)
    means = np.zeros((J, Z.shape[1]))
    np.add.at(means, codes, Z)
    means /= n[:, None]
    within = Z - means[codes]
    msw = within.T @ within / (N - J)
    dev = means - Z.mean(axis=0)
    msb = (dev * n[:, None]).T @ dev / (J - 1)
    n0 = (N - np.sum(n ** 2) / N) / (J - 1)
    vals, vecs = np.linalg.eigh((msb - msw) / n0)
    between = (vecs * np.clip(vals, 0, None)) @ vecs.T
    return between, msw


class _SchoolPowerTask:
    """Replication r: schools of both formats drawn from the two-level population, the
    moderation model refitted (cluster-robust SEs), Wald test of equal D paths."""

    def __init__(self, population: list, refitter, schools: list, reps: int, size: int):
        self.population = population  # per format: (mu, Sigma_B, Sigma_W, beta, tau2, sigma2)
        self.refitter = refitter
        self.schools = schools
        self.reps = reps
        self.size = size

    def __call__(self, rng: np.random.Generator, r: int) -> dict:
        from scipy.special import ndtr
        J = self.schools[r // self.reps]
        school = np.repeat(np.arange(J), self.size)
        Xs, ids = [], []
        for g, (mu, sb, sw, beta, tau2, sigma2) in enumerate(self.population):
            b = rng.multivariate_normal(np.zeros(len(mu)), sb, size=J, method="eigh")
            w = rng.multivariate_normal(np.zeros(len(mu)), sw, size=J * self.size,
                                        method="eigh")
            z = mu + b[school] + w
            u = rng.normal(0.0, np.sqrt(tau2), J)[school]
            y = beta[0] + z @ beta[1:] + u + rng.normal(0.0, np.sqrt(sigma2), len(z))
            Xs.append(np.column_stack([y, z]))  # int_fu, M, D, int_pre: the fit's order
            ids.append(school + g * J)
        fit = self.refitter.fit(Xs, clusters=ids)
        V = fit.vcov()
        est = dict(zip(V.index, np.asarray(fit.values)[fit.problem.pmap.free_rows]))
        diff = est["bD2"] - est["bD1"]
        var = V.loc["bD1", "bD1"] + V.loc["bD2", "bD2"] - 2 * V.loc["bD1", "bD2"]
        ok = bool(np.isfinite(var) and var > 0)
        return {"schools": J, "converged": bool(fit.converged), "difference": float(diff),
                "se": float(np.sqrt(var)) if ok else np.nan,
                "pvalue": float(2 * ndtr(-abs(diff) / np.sqrt(var))) if ok else np.nan}


def school_power(data: pd.DataFrame, group: str, labels: Sequence, cluster: str,
                 schools: Sequence[int] = (5, 10, 15, 20, 30), reps: int = 200, *,
                 seed: int = 1, alpha: float = 0.05, students: Optional[int] = None,
                 executor=None, progress: bool = False) -> pd.DataFrame:
    """Monte Carlo power of the format x discrepancy effect by the number of schools.

    ``data``: one row per child with ``int_fu``, ``int_pre``, ``M`` and ``D`` (observed mean
    and difference of the therapist and child bond scores), the format column ``group``
    (labels ``labels``, the reference first) and the school column ``cluster``.  The
    population of each format is the data's: the moderation model :data:`POWER_MODEL` (ML
    estimates), the between- and within-school covariance matrices of (M, D, int_pre) and
    variances of the outcome's residual (:func:`anova_covariances`).  Each replication draws
    ``J`` schools per format of ``students`` children (default: the mean school size),
    refits the model with cluster-robust (MLR) standard errors and tests ``bD1 == bD2``
    (Wald, level ``alpha``).  The effect is the one estimated from the data (planning
    power for an effect of that size, not the post-hoc power of this sample).

    The same runs with both D paths at their common (size-weighted) value give the actual
    rejection rate under the null hypothesis (``type1_error``): with few schools the
    cluster-robust Wald test is liberal, and the power is then too optimistic.

    Returns per ``J``: ``schools_per_format``, ``students_per_school``, ``n``, ``power``
    (over converged replications) with a 95% normal-approximation interval, ``converged``,
    ``reps``, ``difference`` (population value), ``mean_difference`` and ``type1_error``.
    """
    from ..api import sem
    from ..resampling.executor import run_replications
    from ..resampling.refit import Refitter
    cols = ["int_fu", "M", "D", "int_pre"]
    labels = list(labels)
    if len(labels) != 2:
        raise ValueError("the power analysis compares two formats")
    d = data.dropna(subset=cols + [group, cluster])
    d = d[d[group].isin(labels)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sem(POWER_MODEL, d, group=group, group_labels=labels, estimator="MLR",
                  cluster=cluster)
    if list(fit.data.ov_names) != cols:  # the column order the task writes
        raise RuntimeError(f"unexpected variable order {fit.data.ov_names}")
    table = fit.estimates()
    population = []
    for g in labels:
        sub = d[d[group] == g]
        rows = table[(table["group"] == g) & (table["lhs"] == "int_fu")]
        coef = {rhs: float(e) for rhs, e, op in zip(rows["rhs"], rows["est"], rows["op"])
                if op == "~"}
        intercept = float(rows.loc[rows["op"] == "~1", "est"].iloc[0])
        beta = np.array([intercept, coef["M"], coef["D"], coef["int_pre"]])
        Z = sub[["M", "D", "int_pre"]].to_numpy(float)
        resid = sub["int_fu"].to_numpy(float) - beta[0] - Z @ beta[1:]
        sb, sw = anova_covariances(Z, sub[cluster].to_numpy())
        tau2, sigma2 = anova_covariances(resid, sub[cluster].to_numpy())
        population.append((Z.mean(axis=0), sb, sw, beta, float(tau2[0, 0]),
                           float(sigma2[0, 0])))
    size = int(students) if students else int(round(d.groupby(cluster).size().mean()))
    schools = [int(j) for j in schools]
    if not schools or min(schools) < 2 or size < 1:
        raise ValueError("power needs at least 2 schools per format and 1 child per school")
    reps = int(reps)
    if reps < 1:
        raise ValueError(f"power_reps must be positive, not {reps}")
    refitter = Refitter(fit, inference=True)
    # under the null: both formats with the D path weighted by their sizes
    shares = d[group].value_counts().reindex(labels).to_numpy(float)
    common = float(np.average([pop[3][2] for pop in population], weights=shares))
    null = [(mu, sb, sw, np.r_[beta[:2], common, beta[3:]], tau2, sigma2)
            for mu, sb, sw, beta, tau2, sigma2 in population]
    tables = {}
    for name, pop, root in (("power", population, seed), ("null", null, seed + 1)):
        task = _SchoolPowerTask(pop, refitter, schools, reps, size)
        tables[name] = run_replications(task, len(schools) * reps, seed=root,
                                        executor=executor, progress=progress,
                                        desc="power" if name == "power" else "type I error")
    truth = float(population[1][3][2] - population[0][3][2])
    out = []
    for k, J in enumerate(schools):
        row = {"schools_per_format": J, "students_per_school": size, "n": 2 * J * size}
        for name, table in tables.items():
            sub = table.iloc[k * reps:(k + 1) * reps]
            ok = sub["error"].isna().to_numpy().copy()
            if "converged" in sub:
                conv = sub["converged"].to_numpy(object)
                ok &= pd.notna(conv) & (conv == True)  # noqa: E712 - object column
            p = sub["pvalue"].to_numpy(float)[ok] if "pvalue" in sub else np.array([])
            p = p[np.isfinite(p)]
            m = len(p)
            rate = float(np.mean(p < alpha)) if m else np.nan
            if name == "power":
                half = 1.96 * np.sqrt(rate * (1 - rate) / m) if m else np.nan
                row.update(power=rate, ci_lower=max(rate - half, 0.0) if m else np.nan,
                           ci_upper=min(rate + half, 1.0) if m else np.nan, converged=m,
                           reps=reps, difference=truth,
                           mean_difference=float(np.mean(sub["difference"].to_numpy(float)[ok]))
                           if m else np.nan)
            else:
                row["type1_error"] = rate
        out.append(row)
    result = pd.DataFrame(out)
    result.attrs.update({"alpha": alpha, "model": POWER_MODEL})
    return result


# ----------------------------------------------------------------------------- study steps
def step_power(ctx: Any) -> None:
    """The study's power step: observed M and D from the trait-level bond scale means."""
    from measurement import scale_means
    if not ctx.cluster:
        raise ValueError("the power analysis by number of schools needs the cluster column "
                         "(--cluster)")
    tm = scale_means(ctx.df, ctx.design, min_items=0.5, level="trait")
    d = pd.concat([ctx.df[[ctx.group_column, ctx.cluster, "int_pre", "int_fu"]], tm], axis=1)
    d["M"] = (d["t_bond"] + d["c_bond"]) / 2
    d["D"] = d["t_bond"] - d["c_bond"]
    ctx.res.tables["power_schools"] = school_power(
        d, ctx.group_column, ctx.labels, ctx.cluster, ctx.power_schools, ctx.power_reps,
        seed=ctx.seed, executor=ctx.executor)


def report_section(res: Any, table) -> list:
    """HTML parts of the report for the LCM bootstrap and the power analysis (``table``: the
    report's table formatter)."""
    T = res.tables
    o = res.options
    parts = []
    if "lcm_bootstrap" in T:
        parts.append(f"<h3>School bootstrap of the discrepancy paths ({o.get('lcm_bootstrap')} "
                     "replicates, whole schools resampled within format; percentile "
                     "intervals)</h3>" + table(T["lcm_bootstrap"]))
    if "power_schools" in T:
        p = T["power_schools"]
        diff = p["difference"].iloc[0] if len(p) else np.nan
        parts.append("<h3>Power of the format x discrepancy effect by number of schools</h3>"
                     "<p>Monte Carlo power of the Wald test of equal discrepancy paths "
                     f"(observed scores, <code>{html.escape(POWER_MODEL)}</code>, MLR with "
                     "cluster-robust SEs, alpha .05) for the effect estimated here "
                     f"(D path individual - group = {diff:.3f}), from a two-level population "
                     "built from the data; "
                     f"{int(p['reps'].iloc[0]) if len(p) else 0} replications per row. "
                     "type1_error: the rejection rate with equal D paths (with few schools "
                     "the cluster-robust test is liberal and the power too optimistic).</p>"
                     + table(p))
    return parts


def check_options(lcm_bootstrap, power, power_schools, power_reps, cluster) -> None:
    """The study's resampling options, checked before any analysis (ValueError naming the
    option)."""
    if isinstance(lcm_bootstrap, bool) or not isinstance(lcm_bootstrap, (int, np.integer)) \
            or lcm_bootstrap < 0:
        raise ValueError(f"lcm_bootstrap must be a number of replicates >= 0, got "
                         f"{lcm_bootstrap!r}")
    if lcm_bootstrap and not cluster:
        raise ValueError("lcm_bootstrap resamples schools: it needs the cluster column")
    if power:
        if not cluster:
            raise ValueError("the power analysis by number of schools needs the cluster column")
        if isinstance(power_reps, bool) or not isinstance(power_reps, (int, np.integer)) \
                or power_reps < 1:
            raise ValueError(f"power_reps must be a positive number, got {power_reps!r}")
        schools = list(power_schools)
        if not schools or any(isinstance(j, bool) or not isinstance(j, (int, np.integer))
                              or j < 2 for j in schools):
            raise ValueError(f"power_schools must list numbers of schools >= 2, got "
                             f"{power_schools!r}")
