"""Data simulation from lavaan syntax and power analysis by Monte Carlo simulation.

* :func:`population_moments` -- the implied covariance matrix and means of a population model
  whose parameters are given numerically in lavaan syntax, with the defaults of lavaan's
  ``simulateData`` for everything left unspecified: latent variances fixed to 1 (``std.lv``),
  first loadings free, unspecified loadings 1, variances 1, regressions, covariances,
  intercepts and means 0 (``auto.fix.first = FALSE``, ``fixed.x = FALSE``, ``int.lv.free =
  FALSE``);
* :func:`simulate_data` -- multivariate normal samples from those moments (lavaan's
  ``simulateData``), optionally with exact sample moments (``empirical``) or with given
  univariate skewness and excess kurtosis by the Vale & Maurelli (1983) method (Fleishman 1978
  power polynomials with intermediate correlations);
* :func:`power` -- Monte Carlo power, bias, coverage and SE accuracy of an analysis model fitted
  to samples from a population model (Muthen & Muthen 2002), by Wald or likelihood-ratio tests;
  power is reported over converged replications and over all replications, where
  non-converged ones count as non-rejections (Wang & Rhemtulla 2021);
* :func:`analytic_power` -- the power of the likelihood-ratio test from the noncentral
  chi-square distribution (Satorra & Saris 1985).

References: Fleishman, A. I. (1978). A method for simulating non-normal distributions.
Psychometrika 43, 521-532.  Muthen, L. K., & Muthen, B. O. (2002). How to use a Monte Carlo
study to decide on sample size and determine power. SEM 9, 599-620.  Satorra, A., & Saris,
W. E. (1985). Power of the likelihood ratio test in covariance structure analysis.
Psychometrika 50, 83-90.  Vale, C. D., & Maurelli, V. A. (1983). Simulating multivariate
nonnormal distributions. Psychometrika 48, 465-471.  Wang, Y. A., & Rhemtulla, M. (2021).
Power analysis for parameter estimation in structural equation modeling. AMPPS 4(1).
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

__all__ = ["population_moments", "simulate_data", "simulate_fit", "power", "analytic_power"]

Sizes = Union[int, Sequence[int]]


# ------------------------------------------------------------------------------ population
class _Population:
    """A population model: parameter table with every value filled in, and its moments.

    Ordinal variables (those with thresholds, ``y | t1 + t2``) get latent responses of unit
    variance (lavaan's delta parameterization; their residual variance is ``1 -`` the
    explained variance unless given) and ``thresholds[g][j]``: the sorted thresholds of
    observed variable ``j`` in group ``g``."""

    def __init__(self, model, n_groups: int = 1, *, meanstructure: bool = False,
                 std_lv: bool = True):
        from ..model.matrices import RAMModel
        from ..model.partable import build_partable
        from ..model.syntax import parse_model
        parsed = parse_model(model) if isinstance(model, str) else model
        n_groups = max(int(n_groups), parsed.n_group_modifiers)
        table, variables = build_partable(parsed, n_groups, std_lv=std_lv,
                                          meanstructure=meanstructure, fixed_x=False)
        self.table = table
        self.variables = variables
        self.n_groups = n_groups
        self.ov = list(variables.ov)
        op, lhs, rhs = table["op"], table["lhs"], table["rhs"]
        values = np.where(np.isfinite(table["ustart"]), table["ustart"], table["start"])
        unset = ~np.isfinite(values)
        if np.any(unset & (op == "~") & (table["group"] > 0)):
            warnings.warn("some regression coefficients of the population model are unspecified "
                          "and are set to zero (as lavaan's simulateData)", UserWarning,
                          stacklevel=3)
        default = np.where((op == "=~") | ((op == "~~") & (lhs == rhs)), 1.0, 0.0)
        self.values = np.where(unset, default, values)
        ram = RAMModel(table, variables, n_groups)
        self.thresholds = self._ordinal(ram, unset)
        self.moments = []
        for g in range(n_groups):
            mom = ram.moments(self.values, g)
            cov = 0.5 * (mom.cov + mom.cov.T)
            try:
                np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                where = f" of group {g + 1}" if n_groups > 1 else ""
                raise ValueError(f"the population covariance matrix{where} is not positive "
                                 "definite: check the population values (variances, "
                                 "loadings, correlations above 1?)") from None
            mean = mom.mean if ram.meanstructure else np.zeros(len(self.ov))
            self.moments.append((np.asarray(mean, float), cov))

    def _ordinal(self, ram, unset: np.ndarray) -> list[dict]:
        """Thresholds per group and ordinal variable; residual variances that were not given
        set so that the latent responses have variance 1 (lavaan's simulateData cuts
        standardized latent responses)."""
        t = self.table
        op, lhs, rhs, group = t["op"], t["lhs"], t["rhs"], t["group"]
        out: list[dict] = []
        for g in range(1, self.n_groups + 1):
            rows = np.flatnonzero((op == "|") & (group == g))
            per_var: dict[int, np.ndarray] = {}
            for name in dict.fromkeys(lhs[rows]):
                if name not in self.ov:
                    raise ValueError(f"thresholds are given for {name!r}, which is not an "
                                     "observed variable of the population model")
                j = self.ov.index(name)
                per_var[j] = np.sort(self.values[rows[lhs[rows] == name]])
                res = np.flatnonzero((op == "~~") & (lhs == name) & (rhs == name)
                                     & (group == g))
                if len(res) and unset[res[0]]:
                    r = res[0]
                    self.values[r] = 0.0
                    var0 = ram.moments(self.values, g - 1).cov[j, j]
                    self.values[r] = 1.0
                    slope = ram.moments(self.values, g - 1).cov[j, j] - var0
                    if var0 >= 1 or slope <= 0:
                        raise ValueError(
                            f"the latent response of the ordinal variable {name!r} has an "
                            f"explained variance of {var0:.3g} (must be below 1: its "
                            "thresholds apply to a standardized latent response)")
                    self.values[r] = (1.0 - var0) / slope
            out.append(per_var)
        return out

    def value_of(self, lhs: str, op: str, rhs: str, group: int) -> float:
        """Population value of one parameter (NaN when the population model lacks it)."""
        t = self.table
        g = min(group, self.n_groups)
        hit = (t["lhs"] == lhs) & (t["op"] == op) & (t["rhs"] == rhs) & (t["group"] == g)
        if op == "~~" and not hit.any():
            hit = (t["lhs"] == rhs) & (t["op"] == op) & (t["rhs"] == lhs) & (t["group"] == g)
        rows = np.flatnonzero(hit)
        return float(self.values[rows[0]]) if len(rows) else np.nan

    def defined(self) -> dict:
        """Values of the population model's labels and ``:=`` quantities."""
        from ..model.constraints import defined_values
        return defined_values(self.table.to_frame(), self.values)


def population_moments(model: str, *, n_groups: int = 1, meanstructure: bool = False,
                       std_lv: bool = True) -> list[dict]:
    """Implied covariance matrix and means per group of a population model in lavaan syntax
    (unspecified values as lavaan's ``simulateData``; see the module docstring).

    Returns one ``{"cov": DataFrame, "mean": Series}`` per group.
    """
    pop = _Population(model, n_groups, meanstructure=meanstructure, std_lv=std_lv)
    return [{"cov": pd.DataFrame(cov, index=pop.ov, columns=pop.ov),
             "mean": pd.Series(mean, index=pop.ov)} for mean, cov in pop.moments]


# ------------------------------------------------------------------------------ non-normal
def fleishman_coefficients(skewness: float, kurtosis: float) -> tuple[float, float, float, float]:
    """``(a, b, c, d)`` of Fleishman's (1978) polynomial ``a + bZ + cZ^2 + dZ^3`` (a = -c)
    with unit variance, the given skewness and excess kurtosis (his eqs. 8, 11, 17, 18)."""
    from scipy.optimize import least_squares

    def equations(x):
        b, c, d = x
        return [b * b + 6 * b * d + 2 * c * c + 15 * d * d - 1,
                2 * c * (b * b + 24 * b * d + 105 * d * d + 2) - skewness,
                24 * (b * d + c * c * (1 + b * b + 28 * b * d)
                      + d * d * (12 + 48 * b * d + 141 * c * c + 225 * d * d)) - kurtosis]

    if skewness == 0 and kurtosis == 0:
        return 0.0, 1.0, 0.0, 0.0
    sol = least_squares(equations, x0=[1.0, 0.0, 0.0], xtol=1e-14, ftol=1e-14, gtol=1e-14)
    if np.max(np.abs(equations(sol.x))) > 1e-6:
        raise ValueError(f"no Fleishman polynomial has skewness {skewness} and excess kurtosis "
                         f"{kurtosis} (kurtosis must exceed about 1.8 skewness^2 - 1.2)")
    b, c, d = sol.x
    return -c, b, c, d


def _intermediate_correlation(r: float, coef1, coef2) -> float:
    """Vale & Maurelli (1983, eq. 11): the normal correlation rho that two Fleishman
    polynomials turn into the target correlation r:
    ``r = rho (b1 b2 + 3 b1 d2 + 3 d1 b2 + 9 d1 d2) + rho^2 2 c1 c2 + rho^3 6 d1 d2``."""
    _, b1, c1, d1 = coef1
    _, b2, c2, d2 = coef2
    poly = [6 * d1 * d2, 2 * c1 * c2, b1 * b2 + 3 * b1 * d2 + 3 * d1 * b2 + 9 * d1 * d2, -r]
    roots = np.roots(np.trim_zeros(np.array(poly), "f"))
    real = [z.real for z in np.atleast_1d(roots) if abs(z.imag) < 1e-10 and -1 <= z.real <= 1]
    if not real:
        raise ValueError(f"the correlation {r:.3f} cannot be reached with these skewness / "
                         "kurtosis values (Vale-Maurelli)")
    return float(min(real, key=lambda z: abs(z - r)))


def _vale_maurelli_setup(cov: np.ndarray, skewness, kurtosis) -> tuple:
    p = cov.shape[0]
    skew = np.broadcast_to(np.asarray(0.0 if skewness is None else skewness, float), (p,))
    kurt = np.broadcast_to(np.asarray(0.0 if kurtosis is None else kurtosis, float), (p,))
    coefs = [fleishman_coefficients(float(s), float(k)) for s, k in zip(skew, kurt)]
    sd = np.sqrt(np.diag(cov))
    cor = cov / np.outer(sd, sd)
    inter = np.eye(p)
    for i in range(p):
        for j in range(i):
            if cor[i, j] != 0:
                inter[i, j] = inter[j, i] = _intermediate_correlation(cor[i, j], coefs[i],
                                                                      coefs[j])
    try:
        chol = np.linalg.cholesky(inter)
    except np.linalg.LinAlgError:
        raise ValueError("the intermediate correlation matrix of the Vale-Maurelli method is "
                         "not positive definite; use milder skewness / kurtosis") from None
    return np.array(coefs), sd, chol


# ------------------------------------------------------------------------------ drawing
class _Generator:
    """Draws samples of given sizes from a population's moments (picklable)."""

    def __init__(self, moments: list, ov: list[str], skewness=None, kurtosis=None,
                 thresholds: Optional[list] = None):
        self.moments = moments
        self.ov = ov
        self.thresholds = thresholds if thresholds and any(thresholds) else None
        self.chol = [np.linalg.cholesky(cov) for _, cov in moments]
        self.nonnormal = skewness is not None or kurtosis is not None
        self.vm = [_vale_maurelli_setup(cov, skewness, kurtosis) for _, cov in moments] \
            if self.nonnormal else None

    def draw(self, rng: np.random.Generator, sizes: Sequence[int],
             empirical: bool = False) -> list[np.ndarray]:
        out = self._draw(rng, sizes, empirical)
        if self.thresholds is not None:  # ordinal variables: cut the latent responses
            for X, cuts in zip(out, self.thresholds):
                for j, th in cuts.items():
                    X[:, j] = 1 + (X[:, j, None] > th).sum(axis=1)
        return out

    def _draw(self, rng: np.random.Generator, sizes: Sequence[int],
              empirical: bool = False) -> list[np.ndarray]:
        out = []
        for g, n in enumerate(sizes):
            mean, cov = self.moments[g]
            p = len(mean)
            Z = rng.standard_normal((int(n), p))
            if self.nonnormal:
                coefs, sd, chol = self.vm[g]
                Z = Z @ chol.T
                Y = coefs[:, 0] + Z * (coefs[:, 1] + Z * (coefs[:, 2] + Z * coefs[:, 3]))
                out.append(mean + Y * sd)
                continue
            if empirical:
                if n <= p:
                    raise ValueError(f"empirical=True needs more cases than variables ({p})")
                Z = Z - Z.mean(axis=0)
                L = np.linalg.cholesky(Z.T @ Z / n)
                Z = np.linalg.solve(L, Z.T).T  # sample covariance (divisor N) exactly I
            out.append(mean + Z @ self.chol[g].T)
        return out

    def frame(self, Xs: list[np.ndarray], group: Optional[str],
              labels: Optional[Sequence] = None) -> pd.DataFrame:
        data = pd.DataFrame(np.vstack(Xs), columns=self.ov)
        if self.thresholds is not None:  # categories 1, 2, ... as integers (as lavaan)
            for j in sorted(set().union(*[set(t) for t in self.thresholds])):
                data[self.ov[j]] = data[self.ov[j]].astype(np.int64)
        if group is not None:
            values = np.arange(1, len(Xs) + 1) if labels is None else \
                np.array(list(labels), dtype=object)
            data[group] = np.repeat(values, [len(X) for X in Xs])
        return data


def _sizes(n: Sizes) -> list[int]:
    sizes = [int(n)] if np.isscalar(n) else [int(k) for k in n]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sample sizes must be positive integers, not {n!r}")
    return sizes


def simulate_data(model: str, n: Optional[Sizes] = 500, *, seed=None, group: str = "group",
                  empirical: bool = False, skewness=None, kurtosis=None,
                  meanstructure: bool = False, std_lv: bool = True,
                  cluster_sizes: Union[None, int, Sequence[int]] = None,
                  cluster: str = "cluster") -> pd.DataFrame:
    """Simulate data from a population model in lavaan syntax (lavaan's ``simulateData``).

    ``n`` is a sample size, or one per group (then the rows are stacked and the column
    ``group`` holds 1, 2, ... as in lavaan).  Values not given in the syntax take
    ``simulateData``'s defaults (see :func:`population_moments`).  ``empirical=True`` gives
    samples whose means and covariance matrix (divisor N, the ML estimate) equal the
    population's exactly; ``skewness`` / ``kurtosis`` (excess; one value or one per observed
    variable) use the Vale & Maurelli (1983) method.

    Ordinal variables: thresholds in the syntax (``y1 | -0.5*t1 + 0.5*t2``) cut the
    variable's latent response, which has variance 1 (its residual variance, unless given,
    is 1 minus the explained variance), into categories 1, 2, ... (integers, as lavaan's
    ``simulateData``; fit them with ``sem(..., ordered=[...])``).

    Two-level models (``level: 1`` / ``level: 2`` blocks): ``cluster_sizes`` gives one size
    per cluster (or one size for every cluster, ``n`` rows in all); each row is the sum of a
    within part drawn per row from the level-1 model and a between part drawn per cluster
    from the level-2 model (variables of one level only have no part at the other: they are
    within-only, or constant within clusters), with the cluster ids 1, 2, ... in the column
    ``cluster`` (``n`` may then be None).
    """
    from ..model.levels import has_levels
    if has_levels(model):
        if empirical or skewness is not None or kurtosis is not None:
            raise ValueError("two-level simulation draws normal data: empirical, skewness and "
                             "kurtosis are not available")
        return _simulate_twolevel(model, n, cluster_sizes, seed=seed, cluster=cluster,
                                  std_lv=std_lv)
    if cluster_sizes is not None:
        raise ValueError("cluster_sizes= applies to two-level models (level: blocks)")
    sizes = _sizes(n)
    if empirical and (skewness is not None or kurtosis is not None):
        raise ValueError("empirical=True is only available for normal data")
    pop = _Population(model, len(sizes), meanstructure=meanstructure, std_lv=std_lv)
    if pop.n_groups != len(sizes):
        raise ValueError(f"the population model has {pop.n_groups} groups (c() modifiers) but "
                         f"{len(sizes)} sample size(s) were given")
    gen = _Generator(pop.moments, pop.ov, skewness, kurtosis, pop.thresholds)
    rng = np.random.default_rng(seed)
    return gen.frame(gen.draw(rng, sizes, empirical), group if len(sizes) > 1 else None)


def _cluster_sizes(n, cluster_sizes) -> np.ndarray:
    if cluster_sizes is None:
        raise ValueError("a two-level population model needs cluster_sizes= (one size per "
                         "cluster, or the size of every cluster)")
    if np.isscalar(cluster_sizes):
        size = int(cluster_sizes)
        if n is None or not np.isscalar(n):
            raise ValueError("cluster_sizes= as one number needs the total sample size n")
        if size < 1 or int(n) < 1:
            raise ValueError(f"cluster size and n must be positive, not {size} and {n}")
        k, rest = divmod(int(n), size)
        sizes = np.array([size] * k + ([rest] if rest else []), int)
    else:
        sizes = np.asarray(list(cluster_sizes), int)
        if n is not None and (not np.isscalar(n) or int(n) != int(sizes.sum())):
            raise ValueError(f"the cluster sizes sum to {int(sizes.sum())} rows, not n={n}")
    if len(sizes) < 2 or sizes.min() < 1:
        raise ValueError("cluster_sizes must give at least two clusters of at least one row")
    return sizes


def _simulate_twolevel(model: str, n, cluster_sizes, *, seed, cluster: str,
                       std_lv: bool) -> pd.DataFrame:
    """Two-level normal data: ``y_ij = w_ij + b_j`` with ``w_ij ~ N(mu_W, Sigma_W)`` (level-1
    model) and ``b_j ~ N(mu_B, Sigma_B)`` (level-2 model), the standard two-level SEM
    decomposition (Muthen 1994; Rosseel 2021)."""
    from ..model.levels import parse_twolevel
    sizes = _cluster_sizes(n, cluster_sizes)
    syntax = parse_twolevel(model)
    pops = {}
    for level in (1, 2):
        pop = _Population(syntax.levels[level], 1, meanstructure=True, std_lv=std_lv)
        if pop.n_groups > 1:
            raise ValueError("two-level simulation supports one group (no c() modifiers)")
        if any(pop.thresholds):
            raise ValueError("two-level simulation of ordinal variables is not supported")
        pops[level] = pop
    names = list(dict.fromkeys(pops[1].ov + pops[2].ov))
    rng = np.random.default_rng(seed)
    total = int(sizes.sum())
    Y = np.zeros((total, len(names)))
    cluster_of_row = np.repeat(np.arange(len(sizes)), sizes)
    for level, count in ((1, total), (2, len(sizes))):
        pop = pops[level]
        mean, cov = pop.moments[0]
        part = mean + rng.standard_normal((count, len(mean))) @ np.linalg.cholesky(cov).T
        if level == 2:
            part = part[cluster_of_row]
        Y[:, [names.index(v) for v in pop.ov]] += part
    data = pd.DataFrame(Y, columns=names)
    data[cluster] = cluster_of_row + 1
    return data


def simulate_fit(fit, n: Optional[Sizes] = None, *, seed=None,
                 empirical: bool = False) -> pd.DataFrame:
    """Normal data from a fitted model's implied moments (per group: ``fit.implied()``,
    whose means are the sample means when the model has no mean structure).

    ``n``: None (the fit's group sizes), a total (split in the proportions of the fit's
    groups) or one size per group.  The columns are the fit's observed variables, and its
    group column (with its group labels) for several groups."""
    from ..results import SEMFit
    if type(fit) is not SEMFit:
        raise ValueError(f"simulate() draws continuous single-level data; a "
                         f"{type(fit).__name__} is not supported")
    implied = fit.implied()
    moments = [(implied[k]["mean"].to_numpy(float), implied[k]["cov"].to_numpy(float))
               for k in implied]
    for k, (_, cov) in zip(implied, moments):
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            where = f" of group {k!r}" if k is not None else ""
            raise ValueError(f"the implied covariance matrix{where} is not positive "
                             "definite: cannot simulate from this fit") from None
    nobs = np.asarray(fit.nobs, int)
    if n is None:
        sizes = nobs.tolist()
    elif np.isscalar(n):
        total = int(n)
        if total < len(nobs):
            raise ValueError(f"n={n} is smaller than the number of groups")
        sizes = np.floor(total * nobs / nobs.sum()).astype(int)
        sizes[: total - int(sizes.sum())] += 1  # the rows left over go to the first groups
        sizes = sizes.tolist()
    else:
        sizes = _sizes(n)
        if len(sizes) != len(nobs):
            raise ValueError(f"{len(sizes)} sample sizes for {len(nobs)} groups")
    gen = _Generator(moments, list(fit.data.ov_names))
    group = fit.options.get("group") if fit.n_groups > 1 else None
    Xs = gen.draw(np.random.default_rng(seed), sizes, empirical)
    return gen.frame(Xs, group, fit.group_labels if group is not None else None)


# ------------------------------------------------------------------------------ power
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
    moments, :func:`simulate_data` with ``empirical=True``); with ``F0`` its minimum of the ML
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
