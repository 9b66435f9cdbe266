"""A power curve from one simulation: the sample size varies continuously across
replications and a binary regression of rejection on n gives power at every n.

Each replication draws its total sample size from a log-uniform distribution on
``[n_min, n_max]`` (from its own random stream, so the result does not depend on the
executor), simulates data of that size from the population model, fits the analysis model
and records whether the test rejects.  A generalised linear model of the rejections on a
transform of n, fitted by maximum likelihood (Fisher scoring), is the curve -- the idea of
simsem's ``continuousPower`` (Schoemann, Miller, Pornprasertmanit & Wu 2014; simsem fits a
logistic regression on the varying n itself).

The default, a probit regression on ``sqrt(n)``, follows from the asymptotics of a test of
one parameter: the Wald z statistic (and the signed root of the LR statistic) is approximately
normal with mean proportional to ``sqrt(n)`` (noncentrality ``lambda = n F0``; Satorra & Saris
1985), so power ``= Phi(sqrt(lambda) - z_{1-alpha/2}) + Phi(-sqrt(lambda) - z_{1-alpha/2})``
is almost exactly ``Phi(a + b sqrt(n))`` (for the example of the tests: within 0.0005 of the
noncentral chi-square power between n = 50 and 800, where a logistic curve on log n is up to
0.07 off).  ``link="logit"`` with ``scale="log"`` or ``"linear"`` give the logistic
variants.

References: Satorra, A., & Saris, W. E. (1985). Power of the likelihood ratio test in
covariance structure analysis. Psychometrika 50, 83-90.  Schoemann, A. M., Miller, P.,
Pornprasertmanit, S., & Wu, W. (2014). Using Monte Carlo simulations to determine power and
sample size for planned missing designs. IJBD 38, 471-479.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from .executor import run_replications

__all__ = ["power_curve", "PowerCurve", "fit_binary_curve"]

LINKS = ("probit", "logit")
SCALES = ("sqrt", "log", "linear")


def _transform(n, scale: str) -> np.ndarray:
    n = np.asarray(n, float)
    return np.sqrt(n) if scale == "sqrt" else np.log(n) if scale == "log" else n


def _inverse_link(eta: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    """Probability and its derivative with respect to the linear predictor."""
    from scipy.special import expit, ndtr
    if link == "logit":
        mu = expit(eta)
        return mu, mu * (1 - mu)
    return ndtr(eta), np.exp(-0.5 * eta ** 2) / np.sqrt(2 * np.pi)


def _link(p: np.ndarray, link: str) -> np.ndarray:
    from scipy.special import logit, ndtri
    return logit(p) if link == "logit" else ndtri(p)


def fit_binary_curve(x: np.ndarray, y: np.ndarray, link: str = "probit",
                     max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Maximum likelihood ``(intercept, slope)`` of ``P(y = 1) = F(a + b x)`` and their
    covariance matrix (inverse Fisher information), by Fisher scoring (McCullagh & Nelder
    1989, sec. 4.4).  NaN when the rejections do not vary."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    X = np.column_stack([np.ones(len(x)), x])
    if len(y) < 3 or y.min() == y.max():
        return np.full(2, np.nan), np.full((2, 2), np.nan)
    # start: least squares on the link scale of a smoothed response
    beta = np.linalg.lstsq(X, _link((y + 0.5) / 2, link), rcond=None)[0]
    for _ in range(max_iter):
        mu, d = _inverse_link(X @ beta, link)
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        w = d ** 2 / (mu * (1 - mu))
        info = X.T @ (w[:, None] * X)
        score = X.T @ (d / (mu * (1 - mu)) * (y - mu))
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            return np.full(2, np.nan), np.full((2, 2), np.nan)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10 * (1 + np.max(np.abs(beta))):
            break
    mu, d = _inverse_link(X @ beta, link)
    mu = np.clip(mu, 1e-12, 1 - 1e-12)
    info = X.T @ ((d ** 2 / (mu * (1 - mu)))[:, None] * X)
    try:
        cov = np.linalg.inv(info)  # 2 x 2
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.nan)
    return beta, cov


@dataclass
class PowerCurve:
    """Power as a function of the total sample size, per parameter.

    ``table``: power (with a ``level`` interval from the curve's standard errors) on a grid
    of n per parameter; ``coef``: intercept, slope and their covariance per parameter;
    ``replications``: one row per replication (its n in ``n``); :meth:`power` evaluates the
    curve, :meth:`n_for` inverts it.
    """

    table: pd.DataFrame
    coef: pd.DataFrame
    replications: pd.DataFrame = field(repr=False)
    link: str = "probit"
    scale: str = "sqrt"
    n_range: tuple = (0, 0)
    alpha: float = 0.05

    def _beta(self, parameter: Optional[str]) -> np.ndarray:
        names = list(self.coef.index)
        if parameter is None:
            if len(names) != 1:
                raise ValueError(f"several parameters: name one of {names}")
            parameter = names[0]
        if parameter not in self.coef.index:
            raise ValueError(f"no curve for {parameter!r}; parameters: {names}")
        return self.coef.loc[parameter, ["intercept", "slope"]].to_numpy(float)

    def power(self, n, parameter: Optional[str] = None) -> np.ndarray:
        """Power at total sample size(s) ``n`` (the fitted curve)."""
        a, b = self._beta(parameter)
        mu, _ = _inverse_link(a + b * _transform(n, self.scale), self.link)
        return mu

    def n_for(self, power: float = 0.8, parameter: Optional[str] = None) -> float:
        """The (fractional) total sample size at which the curve reaches ``power``
        (NaN when it does not rise, or would need n outside the simulated range: the curve is
        not extrapolated)."""
        a, b = self._beta(parameter)
        if not (np.isfinite(b) and b > 0 and 0 < power < 1):
            return np.nan
        t = (_link(np.array([power]), self.link)[0] - a) / b
        n = t ** 2 if self.scale == "sqrt" else np.exp(t) if self.scale == "log" else t
        if self.scale == "sqrt" and t < 0:
            return np.nan
        lo, hi = self.n_range
        return float(n) if lo <= n <= hi else np.nan

    __call__ = power


def power_curve(population: str, model: str, n_range: tuple = (50, 500), reps: int = 1000,
                parameters: Union[None, str, Sequence[str]] = None, *, alpha: float = 0.05,
                test: str = "wald", link: str = "probit", scale: str = "sqrt",
                group_shares: Optional[Sequence[float]] = None, seed=None, executor=None,
                batch_size: Optional[int] = None, progress: bool = True, checkpoint=None,
                skewness=None, kurtosis=None, grid: int = 25, level: float = 0.95,
                **fit_options) -> PowerCurve:
    """Power curve over a continuous range of sample sizes from one simulation (see the
    module docstring).

    ``population``, ``model``, ``parameters``, ``alpha``, ``test`` and ``fit_options`` as
    :func:`~sem_models.resampling.power_analysis.power`; ``n_range = (n_min, n_max)`` the range of
    the total sample size (drawn per replication, log-uniform); ``group_shares`` the split of
    n over the groups of a multi-group population (default equal).  ``link`` (``"probit"``
    or ``"logit"``) and ``scale`` (``"sqrt"``, ``"log"`` or ``"linear"`` n) define the curve;
    ``grid`` points of n in ``table``.  Non-converged replications are left out of the curve
    (power over converged runs).
    """
    from .power_analysis import _is_true, _power_task

    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, not {link!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    if test not in ("wald", "lrt"):
        raise ValueError(f"test must be 'wald' or 'lrt', not {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    try:
        lo, hi = (int(v) for v in n_range)
    except (TypeError, ValueError):
        raise ValueError(f"n_range must be (n_min, n_max), not {n_range!r}") from None
    if not 2 <= lo < hi:
        raise ValueError(f"n_range must satisfy 2 <= n_min < n_max, not {n_range!r}")
    reps = int(reps)
    if reps < 10:
        raise ValueError(f"reps must be at least 10 for a curve, not {reps}")
    from .simulate import _Population
    n_groups = _Population(population).n_groups
    if group_shares is None:
        shares = np.full(n_groups, 1.0 / n_groups)
    else:
        shares = np.asarray(group_shares, float)
        if len(shares) != n_groups or np.any(shares <= 0):
            raise ValueError(f"group_shares must give {n_groups} positive share(s)")
        shares = shares / shares.sum()
    if np.floor(lo * shares).min() < 2:
        raise ValueError(f"n_min={lo} leaves fewer than 2 cases in a group")
    pilot_n = [max(2, int(round(hi * s))) for s in shares]
    task = _power_task(population, model, n_groups, pilot_n, parameters, test, fit_options,
                       skewness, kurtosis)
    task.n_range = (lo, hi, shares)
    reps_table = run_replications(task, reps, seed=seed, executor=executor,
                                  batch_size=batch_size, progress=progress,
                                  checkpoint=checkpoint, desc="power curve")
    reps_table = reps_table.rename(columns={"condition": "n"})
    ok = reps_table["error"].isna().to_numpy().copy()
    if "converged" in reps_table:
        ok &= _is_true(reps_table["converged"])
    n_values = reps_table["n"].to_numpy(float) if "n" in reps_table else np.full(reps, np.nan)
    grid_n = np.unique(np.round(np.exp(np.linspace(np.log(lo), np.log(hi), int(grid)))))
    from scipy.special import ndtri
    crit = float(ndtri(0.5 + level / 2))
    coef_rows, table_rows = [], []
    for name, _ in task.params:
        key = f"{name}|p_lrt" if test == "lrt" else f"{name}|p_wald"
        used = ok.copy()
        if test == "lrt" and f"{name}|converged_lrt" in reps_table:
            used &= _is_true(reps_table[f"{name}|converged_lrt"])
        pvals = reps_table[key].to_numpy(float) if key in reps_table else np.full(reps, np.nan)
        used &= np.isfinite(pvals)
        y = (pvals[used] < alpha).astype(float)
        beta, cov = fit_binary_curve(_transform(n_values[used], scale), y, link)
        coef_rows.append({"parameter": name, "intercept": beta[0], "slope": beta[1],
                          "var_intercept": cov[0, 0], "cov": cov[0, 1],
                          "var_slope": cov[1, 1], "used": int(used.sum())})
        x = _transform(grid_n, scale)
        eta = beta[0] + beta[1] * x
        se_eta = np.sqrt(np.clip(cov[0, 0] + 2 * x * cov[0, 1] + x ** 2 * cov[1, 1], 0, None))
        p, _ = _inverse_link(eta, link)
        p_lo, _ = _inverse_link(eta - crit * se_eta, link)
        p_hi, _ = _inverse_link(eta + crit * se_eta, link)
        for k, n in enumerate(grid_n):
            table_rows.append({"n": int(n), "parameter": name, "power": p[k],
                               "ci_lower": p_lo[k], "ci_upper": p_hi[k]})
    coef = pd.DataFrame(coef_rows).set_index("parameter")
    table = pd.DataFrame(table_rows)
    table.attrs.update({"alpha": alpha, "test": test, "link": link, "scale": scale,
                        "reps": reps})
    return PowerCurve(table, coef, reps_table, link, scale, (lo, hi), alpha)
