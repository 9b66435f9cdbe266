"""Data simulation from lavaan syntax: population models and their samples.

* :func:`population_moments` -- the implied covariance matrix and means of a population model
  whose parameters are given numerically in lavaan syntax, with the defaults of lavaan's
  ``simulateData`` for everything left unspecified: latent variances fixed to 1 (``std.lv``),
  first loadings free, unspecified loadings 1, variances 1, regressions, covariances,
  intercepts and means 0 (``auto.fix.first = FALSE``, ``fixed.x = FALSE``, ``int.lv.free =
  FALSE``);
* :func:`simulate_data` -- multivariate normal samples from those moments (lavaan's
  ``simulateData``), optionally with exact sample moments (``empirical``) or with given
  univariate skewness and excess kurtosis by the Vale & Maurelli (1983) method (Fleishman 1978
  power polynomials with intermediate correlations), and two-level data;
* :func:`simulate_fit` -- data from a fitted model's implied moments (normal; ordinal items cut
  at the fitted thresholds; two-level data with the fit's cluster sizes).

Power analysis on top of these generators (:func:`power`, :func:`analytic_power`) is in
:mod:`sem_models.resampling.power_analysis`.

References: Fleishman, A. I. (1978). A method for simulating non-normal distributions.
Psychometrika 43, 521-532.  Vale, C. D., & Maurelli, V. A. (1983). Simulating multivariate
nonnormal distributions. Psychometrika 48, 465-471.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

__all__ = ["population_moments", "simulate_data", "simulate_fit"]

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
    """Data from a fitted model's implied moments (per group: ``fit.implied()``, whose means
    are the sample means when the model has no mean structure): normal data; for ordinal
    fits the latent responses cut at the fitted thresholds into the categories of the fitted
    data; for two-level fits within and between parts (see :func:`_simulate_twolevel_fit`).

    ``n``: None (the fit's group sizes), a total (split in the proportions of the fit's
    groups) or one size per group.  The columns are the fit's observed variables, and its
    group column (with its group labels) for several groups."""
    from ..estimation.ordinal import OrdinalFit
    from ..multilevel_results import TwoLevelSEMFit
    from ..results import SEMFit
    if isinstance(fit, TwoLevelSEMFit):
        if empirical:
            raise ValueError("empirical=True is not available for two-level fits")
        return _simulate_twolevel_fit(fit, n, seed)
    if type(fit) not in (SEMFit, OrdinalFit):
        raise ValueError(f"simulate() is not supported for a {type(fit).__name__}")
    implied = fit.implied()
    thresholds = None
    if isinstance(fit, OrdinalFit):
        if empirical:
            raise ValueError("empirical=True is only available for continuous data")
        moments, thresholds = _ordinal_population(fit, implied)
    else:
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
    names = list(implied[next(iter(implied))]["cov"].index) if thresholds is not None \
        else list(fit.data.ov_names)
    gen = _Generator(moments, names, thresholds=thresholds)
    group = fit.options.get("group") if fit.n_groups > 1 else None
    Xs = gen.draw(np.random.default_rng(seed), sizes, empirical)
    data = gen.frame(Xs, group, fit.group_labels if group is not None else None)
    if thresholds is not None:  # the categories of the fitted data, not 1, 2, ...
        levels = fit.categorical[0].levels
        for j, name in enumerate(names):
            if levels[j] is not None:
                values = np.asarray(levels[j])
                if values.dtype.kind == "f" and np.all(values == np.round(values)):
                    values = values.astype(np.int64)
                data[name] = values[data[name].to_numpy() - 1]
    return data


def _ordinal_population(fit, implied: dict) -> tuple[list, list]:
    """Per group the latent responses' moments and each ordered item's thresholds from an
    ordinal fit (delta parameterization: the implied correlations of the latent responses,
    their means and the implied thresholds; lavaan's ``fitted()``), as :class:`_Generator`
    takes them.  Models with exogenous covariates (conditional moments) are not supported."""
    if any("res_cov" in item for item in implied.values()):
        raise ValueError("simulate() of ordinal fits with exogenous covariates is not "
                         "supported; fit the model without them or simulate with "
                         "simulate_data() from population syntax")
    moments, thresholds = [], []
    for item in implied.values():
        names = list(item["cov"].index)
        moments.append((item["mean"].to_numpy(float), item["cov"].to_numpy(float)))
        cuts = {}
        for label, value in item["th"].items():
            cuts.setdefault(names.index(label.split("|")[0]), []).append(float(value))
        thresholds.append({j: np.sort(v) for j, v in cuts.items()})
    return moments, thresholds


def _simulate_twolevel_fit(fit, n, seed) -> pd.DataFrame:
    """Two-level data from a fitted two-level model: the decomposition of
    :func:`_simulate_twolevel` with the fit's implied within and between moments and, by
    default, its cluster sizes (``n`` None), or ``n`` rows in clusters of the fit's mean
    cluster size (rounded; the last cluster takes the remainder).  One group only."""
    if fit.n_groups > 1:
        raise ValueError("simulate() of multi-group two-level fits is not supported")
    implied = fit.implied()
    ids = np.concatenate([np.asarray(g.cluster) for g in fit.data.groups])
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    sizes = counts[np.argsort(first)]
    if n is not None:
        if not np.isscalar(n) or int(n) < 2:
            raise ValueError(f"n must be a total number of rows (at least 2), not {n!r}")
        sizes = _cluster_sizes(int(n), max(1, int(round(sizes.mean()))))
    levels = [(implied["within"], int(sizes.sum())), (implied["between"], len(sizes))]
    names = list(dict.fromkeys(list(implied["within"]["cov"].index)
                               + list(implied["between"]["cov"].index)))
    rng = np.random.default_rng(seed)
    Y = np.zeros((int(sizes.sum()), len(names)))
    cluster_of_row = np.repeat(np.arange(len(sizes)), sizes)
    for k, (item, count) in enumerate(levels):
        mean = item["mean"].to_numpy(float)
        cov = item["cov"].to_numpy(float)
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError(f"the implied {'within' if k == 0 else 'between'} covariance "
                             "matrix is not positive definite: cannot simulate from this "
                             "fit") from None
        part = mean + rng.standard_normal((count, len(mean))) @ chol.T
        if k == 1:
            part = part[cluster_of_row]
        Y[:, [names.index(v) for v in item["cov"].index]] += part
    data = pd.DataFrame(Y, columns=names)
    data[fit.options.get("cluster") or "cluster"] = cluster_of_row + 1
    return data
