"""Results of a two-level fit: :class:`TwoLevelSEMFit` (estimates with a ``level`` column,
fit measures against the saturated two-level model, SRMR within and between, ICCs,
standardized solutions per level, MLR), and the helpers it shares with the fitting code in
:mod:`sem_models.multilevel`."""
from __future__ import annotations

import warnings
from functools import cached_property
from typing import Optional

import numpy as np
import pandas as pd

from .errors import ModelError
from .estimation.optimizer import ConvergenceWarning
from .estimation.threads import single_threaded_blas
from .estimation.twolevel import (TwoLevelData)
from .estimation.twolevel_fit import (TwoLevelFit, baseline_free, fit_baseline, loglik_x)
from .inference.distributions import chi2_sf
from .results import SEMFit
from .results_inspect import rsquare_rows, rsquare_series


__all__ = ["TwoLevelSEMFit", "LEVEL_LABELS"]

LEVEL_LABELS = {1: "within", 2: "between"}


def _icc(var_b: float, var_w: float) -> float:
    """``var_b / (var_w + var_b)`` for saturated variances (var_b >= 0), 0 when undefined."""
    total = var_w + var_b
    return float(min(max(var_b / total, 0.0), 1.0)) if total > 0 else 0.0


def _fmt_icc(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 or value == 0 else f"{value:.1e}"


def _join(items) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _warn_scaling(c: float, which: str) -> None:
    """The Yuan-Bentler scaling factor is not a positive number: say why and what to do."""
    warnings.warn(
        f"the Yuan-Bentler scaling factor of the {which} is {c:.3g}, not a positive number, "
        "so the scaled test statistic is not reported (NaN). This happens when the "
        "saturated between-level covariance matrix is on its boundary (a between variance "
        "or direction at 0: see inspect('icc')), where the robust correction is not "
        "defined. Use the standard test (estimator='ML'), or fix the level-2 variances of "
        "variables with ICC near 0 to 0.", ConvergenceWarning, stacklevel=4)


def _single_level_loglik(X: np.ndarray) -> float:
    """Saturated normal log-likelihood of iid rows at the ML estimates (complete rows)."""
    n, p = X.shape
    centred = X - X.mean(axis=0)
    S = centred.T @ centred / n
    return float(-0.5 * n * (p * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + p))


def _loglik_x(d: TwoLevelData, names: list) -> float:
    """Saturated two-level log-likelihood of the covariates (lavaan's ``loglik.x``).  Without
    a covariate at both levels the within-only rows and the between-only cluster values are
    independent iid samples: closed forms; otherwise the saturated two-level fit
    (:func:`~sem_models.estimation.twolevel_fit.loglik_x`)."""
    if not names:
        return 0.0
    idx = [d.names.index(v) for v in names]
    kinds = set(d.kind[idx])
    if "both" in kinds or np.isnan(d.X[:, idx]).any():
        return loglik_x(d, names)
    out = 0.0
    w = [k for k in idx if d.kind[k] == "within"]
    b = [k for k in idx if d.kind[k] == "between"]
    if w:
        out += _single_level_loglik(d.X[:, w])
    if b:
        out += _single_level_loglik(d.ybar[:, b])
    return out


def _h1_count(d: TwoLevelData, x1, x2) -> int:
    """Free moments of the saturated model without the fixed.x blocks."""
    from .inference.twolevel import h1_free_mask
    return int(h1_free_mask(d, x1, x2).sum())


class _LevelProxy:
    """What :func:`sem_models.inference.standardized.standardize_values` reads, for one
    level: the block RAM model, the level's variables and the table seen per block."""

    def __init__(self, fit: "TwoLevelSEMFit", level: int):
        self.model = fit.model.ram
        self.variables = fit.level_variables[level]
        frame = fit._partable.copy()
        frame["group"] = frame["block"]
        self._partable = frame


class TwoLevelSEMFit(SEMFit):
    """A fitted two-level model: :class:`~sem_models.results.SEMFit` with the two-level
    pieces (see :func:`fit_twolevel`).

    Differences: ``estimates()`` and ``standardized()`` have a ``level`` column (1 = within,
    2 = between); ``implied()``, ``sample_moments()`` and ``residuals()`` give one
    ``{"cov", "mean"}`` per level (``"within"``, ``"between"``; keyed by group label first with
    several groups); ``measures()`` has ``srmr``, ``srmr_within`` and ``srmr_between``;
    ``inspect`` knows ``"icc"``, ``"h1"`` (= ``"sampstat"``), ``"implied"``,
    ``"nclusters"``, ``"cluster.size"``.  Attributes: ``datasets`` (one
    :class:`~sem_models.estimation.twolevel.TwoLevelData` per group), ``level_variables``,
    ``kind`` (within / between / both per observed variable), ``nclusters``.
    """

    def _setup(self, tl, datasets, h1, exo):
        self.twolevel_table = tl
        self.level_variables = tl.variables
        self.kind = dict(tl.kind)
        self.datasets = datasets
        self._h1 = h1
        self._exo_names = exo

    # ---------------------------------------------------------------------------- basics
    @property
    def nclusters(self) -> list[int]:
        return [d.nclusters for d in self.datasets]

    def _icc_values(self) -> list:
        """Per group, {level-1 variable: ICC} from the saturated model (see :meth:`icc`)."""
        out = []
        for d, h in zip(self.datasets, self._h1):
            vw = dict(zip(d.level1_names, np.diag(h.moments.sigma_w)))
            vb = dict(zip(d.level2_names, np.diag(h.moments.sigma_b)))
            out.append({v: _icc(vb.get(v, 0.0), vw[v]) for v in d.level1_names})
        return out

    def _improper_groups(self) -> list:
        """Groups whose model log-likelihood exceeds the saturated one (by more than 1e-6):
        the model's implied between covariance matrix is then not positive semi-definite,
        outside the saturated model's parameter space, and lavaan's rule sets the group's
        chi-square to 0.  Pairs (group index, excess)."""
        L = self._logliks
        return [(g, m - h) for g, (h, m) in enumerate(zip(L["h1"], L["model"]))
                if m - h > 1e-6]

    def _warn_heywood(self) -> None:
        """HeywoodWarning for negative variance estimates, with what to do: at level 2 they
        are the usual result of (near) zero between-cluster variance, so the message gives
        each variable's ICC and the fixes; also when the model's between covariance matrix
        is not positive semi-definite, so that its log-likelihood exceeds the saturated
        model's (the chi-square is then set to 0, as lavaan does)."""
        from .api import HeywoodWarning
        pt = self._table
        values = self.values
        var = (pt["op"] == "~~") & (pt["lhs"] == pt["rhs"]) & (pt["group"] > 0) & (values < 0)
        rows = np.flatnonzero(var)
        improper = self._improper_groups()
        if not len(rows) and not improper:
            return
        iccs = self._icc_values()
        lv_names = set(self.variables.lv)
        glab = (lambda g: f" in group {self.group_labels[g]!r}") if self.n_groups > 1 \
            else (lambda g: "")
        parts = []
        for lev in (1, 2):
            sel = [r for r in rows if pt["level"][r] == lev]
            if not sel:
                continue
            items = []
            for r in sel:
                g = int(pt["group"][r]) - 1
                name = pt["lhs"][r]
                extra = ""
                if lev == 2 and name in iccs[g]:
                    extra = f"; ICC {_fmt_icc(iccs[g][name])}"
                items.append(f"{name} ({values[r]:.3g}{extra}){glab(g)}")
            label = "level 1 (within)" if lev == 1 else "level 2 (between)"
            parts.append(f"negative variance estimate(s) at {label} for {_join(items)}")
        msg = "Heywood case: " + "; ".join(parts) + "." if parts else ""
        neg2 = [r for r in rows if pt["level"][r] == 2]
        ov2 = list(dict.fromkeys(pt["lhs"][r] for r in neg2 if pt["lhs"][r] not in lv_names))
        lv2 = list(dict.fromkeys(pt["lhs"][r] for r in neg2 if pt["lhs"][r] in lv_names))
        if ov2:
            ex = ov2[0]
            msg += (f" The between-cluster variance of {_join(ov2)} is near zero (few "
                    f"clusters: {_join(map(str, sorted(set(self.nclusters))))}, or little "
                    "variation between them): fix the level-2 residual variance to 0 in the "
                    f"level-2 block (e.g. '{ex} ~~ 0*{ex}'), or drop the variable from "
                    "level 2.")
        if lv2:
            # are the indicators' level-2 residual variances already fixed (e.g. to 0)?
            lev2 = pt["level"] == 2
            inds = set(pt["rhs"][lev2 & (pt["op"] == "=~") & np.isin(pt["lhs"], lv2)])
            resid = lev2 & (pt["op"] == "~~") & (pt["lhs"] == pt["rhs"]) \
                & np.isin(pt["lhs"], list(inds))
            fixed = bool(resid.any()) and not bool((pt["free"][resid] > 0).any())
            msg += (f" A between-level factor with a negative variance ({_join(lv2)}) has "
                    "indicators that hardly covary between clusters: "
                    + ("" if fixed else "fix the level-2 residual variances of its "
                       "indicators to 0, ")
                    + "give the factor a fixed variance (std_lv=True), or replace it by a "
                    "saturated between level (all level-2 variances and covariances free).")
        if any(pt["level"][r] == 1 for r in rows):
            msg += (" A negative within-level variance points to a misspecified or "
                    "empirically under-identified within model: inspect the estimates.")
        if improper:
            ex = ", ".join(f"{e:.3g}" + glab(g) for g, e in improper)
            msg += (" The model's between-level covariance matrix is not positive "
                    "semi-definite, so its log-likelihood exceeds the saturated model's "
                    f"(whose Sigma_B is kept positive semi-definite) by {ex}: the chi-square "
                    "is set to 0 there, as lavaan does; the fixes above give a proper "
                    "solution.")
        warnings.warn(msg.strip(), HeywoodWarning, stacklevel=3)

    def _convergence_advice(self) -> str:
        """What to try when a two-level fit did not converge: the level-2 variables with
        ICC below 0.05 (from the saturated model) and the fixes that usually help."""
        low, names = [], []
        for g, ic in enumerate(self._icc_values()):
            names2 = set(self.datasets[g].level2_names)
            for v, value in ic.items():
                if v in names2 and value < 0.05:
                    names.append(v)
                    low.append(f"{v} {_fmt_icc(value)}"
                               + (f" (group {self.group_labels[g]!r})" if self.n_groups > 1
                                  else ""))
        ex = names[0] if names else next(iter(self.datasets[0].level2_names), "y")
        clusters = _join(map(str, sorted(set(self.nclusters))))
        text = ""
        if low:
            text += (f" The between-level variation is small (ICC {_join(low)}; "
                     f"{clusters} clusters), so the between-level model may have no proper "
                     "maximum.")
        return text + (" Try: fix the level-2 residual variances of low-ICC variables "
                       f"to 0 in the level-2 block (e.g. '{ex} ~~ 0*{ex}'); give between "
                       "factors a fixed variance instead of a marker loading (std_lv=True); "
                       "or fit a one-level model with cluster-robust standard errors "
                       f"(estimator='MLR', cluster={self.options.get('cluster')!r}).")

    def _param_names(self) -> list[str]:
        """lavaan's names: ``lhs op rhs`` (or the label), ``.g2`` in later groups, ``.l2`` at
        level 2 (``fb=~y2.l2``, ``fb=~y2.g2.l2``)."""
        pt = self._table
        names = []
        for r in self.problem.pmap.free_rows:
            lab = pt["label"][r]
            if lab and not lab.startswith("."):
                names.append(lab)
                continue
            name = f"{pt['lhs'][r]}{pt['op'][r]}{pt['rhs'][r]}"
            if pt["group"][r] > 1:
                name += f".g{pt['group'][r]}"
            if pt["level"][r] > 1:
                name += f".l{pt['level'][r]}"
            names.append(name)
        return names

    # ---------------------------------------------------------------------------- inference
    @cached_property
    def _hessian_z(self) -> np.ndarray:
        """Observed Hessian of the objective in z: analytic for complete data
        (:mod:`~.estimation.twolevel_hessian`), else central differences of the gradient."""
        from .inference.twolevel import objective_hessian
        return objective_hessian(self.problem, self.result.z, central=True)

    @cached_property
    def _scores_z(self) -> list:
        from .inference.twolevel import cluster_scores_z
        return cluster_scores_z(self.problem, self.values)

    @cached_property
    def _vcov_free(self) -> np.ndarray:
        """Observed (default) or expected information inverse; MLR: the cluster-robust
        sandwich (:mod:`sem_models.inference.twolevel`)."""
        from .inference.wald import constrained_inverse
        names = self._param_names()
        se = self.options.get("se", "standard")
        T = self.problem.pmap.T
        if se == "none":
            return np.full((T.shape[0], T.shape[0]), np.nan)
        info = self._hessian_z if self.options.get("information") == "observed" \
            else self._info_z
        active = self.result.active
        keep = ~active if active is not None and active.any() else np.ones(info.shape[0], bool)
        info = info[np.ix_(keep, keep)]
        T = T[:, keep]
        if se == "standard":
            return constrained_inverse(info, T, float(self.ntotal), names)
        # robust.huber.white: A^-1 B A^-1 in z, A the total information
        bread = constrained_inverse(info, np.eye(info.shape[0]), float(self.ntotal),
                                    names)
        S = np.vstack(self._scores_z)[:, keep]
        Vz = bread @ (S.T @ S) @ bread
        return T @ Vz @ T.T

    # ---------------------------------------------------------------------------- tables
    def estimates(self, level: Optional[float] = None, rsquare: bool = False) -> pd.DataFrame:
        """Parameter estimates with a ``level`` column (1 within, 2 between; None for
        defined parameters); otherwise as :meth:`SEMFit.estimates`."""
        if rsquare:
            table = self.estimates(level)
            return pd.concat([table, self._rsquare_rows()[list(table.columns)]],
                             ignore_index=True)
        table = super().estimates(level)
        op = self._table["op"]
        keep = ~((op == "==") | (op == "<") | (op == ">"))
        lev = [int(v) if v > 0 else None for v in self._table["level"][keep].tolist()]
        table.insert(list(table.columns).index("rhs") + 1
                     + (1 if "group" in table.columns else 0), "level", lev)
        return table

    @cached_property
    def _rsquare(self) -> list:
        """R-squared per block (group 1 within, group 1 between, ...)."""
        std_all = self._standardized_values("all")
        block = self._table["block"]
        return [rsquare_series(self._table, block == b, std_all)
                for b in range(1, 2 * self.n_groups + 1)]

    def _rsquare_rows(self) -> pd.DataFrame:
        n_blocks = len(self._rsquare)
        groups = [self.group_labels[b // 2] if self.n_groups > 1 else None
                  for b in range(n_blocks)]
        return rsquare_rows(self._rsquare, groups, {"level": [b % 2 + 1 for b in range(n_blocks)]})

    def _standardized_values(self, kind: str, values: Optional[np.ndarray] = None) -> np.ndarray:
        """std_lv / std_all / std_nox of every row, each level standardized by its own
        implied variances (lavaan's per-block standardization).  Rows that need a variance
        that is zero or negative (a Heywood case at level 2) are NaN: not defined."""
        from .inference.standardized import standardize_values
        values = self.values if values is None else values
        out = values.copy()
        level = self._table["level"]
        for lev in (1, 2):
            proxy = self.__dict__.setdefault(f"_proxy{lev}", _LevelProxy(self, lev))
            with np.errstate(divide="ignore", invalid="ignore"):
                std = standardize_values(proxy, values, kind)
            std[~np.isfinite(std)] = np.nan
            out[level == lev] = std[level == lev]
        defined = np.flatnonzero(self._table["op"] == ":=")
        if len(defined):
            from .model.constraints import defined_values
            pt = self._partable
            env = defined_values(pt, out)
            for r in defined:
                out[r] = env[pt["lhs"].iat[r]]
        return out

    @single_threaded_blas
    def standardized(self, se: bool = True) -> pd.DataFrame:
        """Standardized solution per level: std_lv, std_all, std_nox (and se_std_all by the
        delta method), each level scaled by its own model-implied variances."""
        from .inference.standardized import standardized_table
        return standardized_table(self, self.values,
                                  lambda values, kind: self._standardized_values(kind, values), se)

    # ---------------------------------------------------------------------------- moments
    def _level_frames(self, moments: list) -> dict:
        """Per group {"within": {"cov", "mean"}, "between": {...}} in lavaan's variable order
        of each level; one group: the inner dict."""
        out = {}
        for g, (d, m) in enumerate(zip(self.datasets, moments)):
            item = {}
            for lev, names, cov, mean in ((1, d.level1_names, m.sigma_w, m.mu_w),
                                          (2, d.level2_names, m.sigma_b, m.mu_b)):
                order = [v for v in self.level_variables[lev].ov if v in names]
                idx = [names.index(v) for v in order]
                item[LEVEL_LABELS[lev]] = {
                    "cov": pd.DataFrame(cov[np.ix_(idx, idx)], index=order, columns=order),
                    "mean": pd.Series(mean[idx], index=order)}
            out[self.group_labels[g] if self.n_groups > 1 else g] = item
        return out if self.n_groups > 1 else out[0]

    @cached_property
    def _level_implied(self) -> list:
        return [m.tl for m in self._moments]

    def implied(self) -> dict:
        """Model-implied within and between moments (``{"within": {"cov", "mean"},
        "between": {...}}``; keyed by group label first with several groups).  The within
        means of variables at both levels are 0 unless the model gives them a within part
        (e.g. through covariates with non-zero means): their means live at level 2."""
        return self._level_frames(self._level_implied)

    def sample_moments(self) -> dict:
        """The saturated two-level model's within and between moments (lavaan's ``h1`` /
        ``sampstat`` for two-level data: ML estimates, not raw sample moments)."""
        return self._level_frames([h.moments for h in self._h1])

    @property
    def sample_moments_arrays(self):  # one-level layout: not meaningful here
        raise ModelError("two-level fits have within and between moments: use "
                         "sample_moments() or inspect('h1')")

    def residuals(self) -> dict:
        """Saturated minus model-implied moments, per level."""
        s, i = self.sample_moments(), self.implied()

        def diff(a, b):
            return {lev: {k: a[lev][k] - b[lev][k] for k in ("cov", "mean")} for lev in a}

        if self.n_groups == 1:
            return diff(s, i)
        return {k: diff(s[k], i[k]) for k in s}

    def icc(self) -> pd.Series | pd.DataFrame:
        """Intraclass correlations of the level-1 variables from the saturated model:
        ``sigma_B / (sigma_W + sigma_B)`` (0 for within-only variables), lavaan's
        ``lavInspect(fit, "icc")``; several groups: one column per group.  The saturated
        ``Sigma_B`` is positive semi-definite (:func:`~.estimation.twolevel_fit.fit_h1`), so
        every ICC is in [0, 1)."""
        cols = []
        for d, ic in zip(self.datasets, self._icc_values()):
            order = [v for v in self.level_variables[1].ov if v in d.level1_names]
            cols.append(pd.Series([ic[v] for v in order], index=order, name="icc",
                                  dtype=float))
        if self.n_groups == 1:
            return cols[0]
        return pd.DataFrame(dict(zip(self.group_labels, cols)))

    def factor_scores(self):
        raise ModelError("factor scores are not available for two-level models yet")

    def modindices(self, *args, **kwargs):
        raise ModelError("modification indices are not available for two-level models yet")

    def plot(self, **options):
        raise ModelError("path diagrams are not available for two-level models yet")

    # ---------------------------------------------------------------------------- tests
    @cached_property
    def _logliks(self) -> dict:
        """Joint log-likelihoods per group of the model, h1 and loglik_x (fixed.x)."""
        ll = [loss.loglik(mom) for loss, mom in zip(self.problem.losses, self._moments)]
        h1 = [h.loglik for h in self._h1]
        lx = [_loglik_x(d, self._exo_all(x1, x2)) for d, (x1, x2) in
              zip(self.datasets, self._exo_names)]
        return {"model": ll, "h1": h1, "x": lx}

    def _exo_all(self, x1, x2) -> list:
        """The covariates of the whole model: exogenous at every level they appear at (as
        lavaan's ``loglik.x``: a variable that is a level-1 covariate but an outcome at level 2
        is not one)."""
        lev = self.level_variables
        return [v for v in self.variables.ov
                if (v in x1 or v not in lev[1].ov) and (v in x2 or v not in lev[2].ov)
                and (v in x1 or v in x2)]

    def _loglik(self) -> dict:
        """lavaan's logl and unrestricted_logl: with fixed.x the joint log-likelihood minus
        the saturated two-level log-likelihood of the covariates (``loglik.x``)."""
        L = self._logliks
        return {"logl": float(sum(a - x for a, x in zip(L["model"], L["x"]))),
                "unrestricted_logl": float(sum(a - x for a, x in zip(L["h1"], L["x"])))}

    def _n_moments(self) -> int:
        return sum(_h1_count(d, x1, x2) for d, (x1, x2) in zip(self.datasets, self._exo_names))

    def _standard_test(self) -> dict:
        L = self._logliks
        # per group, negative values (a model outside the saturated model's space: an
        # indefinite implied Sigma_B, see _warn_heywood) set to 0 as lavaan does
        chisq = float(sum(max(2 * (h - m), 0.0) for h, m in zip(L["h1"], L["model"])))
        df = self._n_moments() - self.npar
        # lavaan's fmin: sum_g (N_g / N) * (-(logL_g + c_g) / N)
        N = float(self.ntotal)
        fmin = sum((loss.nobs / N) * (-(ll + loss.log2pi_const) / N)
                   for loss, ll in zip(self.problem.losses, L["model"]))
        return {"npar": self.npar, "fmin": float(fmin), "chisq": chisq, "df": df,
                "pvalue": float(chi2_sf(chisq, df)) if df > 0 else np.nan}

    def _scaled(self) -> bool:
        from .inference.options import scaled_test_name
        return scaled_test_name(self) is not None

    @cached_property
    def _h0_trace(self) -> float:
        """tr(A0^-1 B0) of the model (observed information, cluster scores)."""
        A = self._hessian_z * self.ntotal if self.options.get("information") == "observed" \
            else self._info_z * self.ntotal
        S = np.vstack(self._scores_z)
        return float(np.trace(np.linalg.solve(A, S.T @ S)))

    @cached_property
    def _h1_trace(self) -> tuple[float, int]:
        """tr(A1^-1 B1) of the saturated model at its estimates (lavaan 0.6-14 evaluates the
        two-level h1 information at the saturated moments) and its number of moments."""
        from .inference.twolevel import yb_traces_h1
        return yb_traces_h1(self, [h.moments for h in self._h1],
                            self.options.get("information", "observed"))

    def _test_statistics(self) -> dict:
        if "_tests" in self.__dict__:
            return dict(self.__dict__["_tests"])
        out = self._standard_test()
        if self._scaled():
            tr1, n1 = self._h1_trace
            tr0 = self._h0_trace
            df = out["df"]
            c = (tr1 - tr0) / df if df > 0 else np.nan
            if df > 0 and not (np.isfinite(c) and c > 0):
                _warn_scaling(c, "user model")
                c = np.nan
            scaled = out["chisq"] / c if df > 0 else out["chisq"]
            out.update({"chisq_scaled": scaled, "df_scaled": df,
                        "pvalue_scaled": float(chi2_sf(scaled, df)) if df > 0 and
                        np.isfinite(scaled) else np.nan,
                        "chisq_scaling_factor": c, "trace_ugamma": tr1 - tr0,
                        "scaling_factor_h1": tr1 / n1 if n1 else np.nan,
                        "scaling_factor_h0": tr0 / self.npar if self.npar else np.nan})
        self.__dict__["_tests"] = out
        return dict(out)

    @cached_property
    def _baseline_fits(self) -> list:
        """The independence model per group; one that fails or does not converge gives a
        warning (the incremental fit indices are then NaN or unreliable), not an error."""
        out = []
        for g, (d, h, (x1, x2)) in enumerate(zip(self.datasets, self._h1, self._exo_names)):
            where = f" in group {self.group_labels[g]!r}" if self.n_groups > 1 else ""
            try:
                with np.errstate(all="ignore"):
                    b = fit_baseline(d, exo_within=x1, exo_between=x2, h1=h.moments)
            except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
                warnings.warn(f"the two-level baseline (independence) model{where} could not "
                              f"be fitted ({exc}): CFI, TLI and the other incremental fit "
                              "indices are not available (NaN)", ConvergenceWarning,
                              stacklevel=4)
                b = TwoLevelFit(h.moments, float("nan"), 0, False, "failed",
                                baseline_free(d, x1, x2))
            else:
                if not b.converged:
                    warnings.warn(f"the two-level baseline (independence) model{where} did "
                                  "not converge: CFI, TLI and the other incremental fit "
                                  "indices may be off", ConvergenceWarning, stacklevel=4)
            out.append(b)
        return out

    def _baseline_df(self) -> int:
        return self._n_moments() - sum(b.npar() for b in self._baseline_fits)

    def _baseline_statistics(self) -> dict:
        """lavaan's two-level independence model: diagonal within and between covariance
        matrices with free means; the fixed.x blocks at their saturated values
        (:func:`~sem_models.estimation.twolevel_fit.fit_baseline`)."""
        if "_baseline" in self.__dict__:
            return dict(self.__dict__["_baseline"])
        chisq = float(2 * sum(h.loglik - b.loglik for h, b in zip(self._h1,
                                                                   self._baseline_fits)))
        df = self._baseline_df()
        out = {"chisq": chisq, "df": df, "pvalue": float(chi2_sf(chisq, df))}
        if self._scaled():
            from .inference.twolevel import h1_free_mask, moment_model_trace
            info = self.options.get("information", "observed")
            tr1, _ = self._h1_trace
            tr0 = sum(moment_model_trace(d, b.moments, b.free & h1_free_mask(d, x1, x2), info)
                      for d, b, (x1, x2) in zip(self.datasets, self._baseline_fits,
                                                self._exo_names))
            c = (tr1 - tr0) / df
            if not (np.isfinite(c) and c > 0):
                _warn_scaling(c, "baseline model")
                c = np.nan
            out.update({"chisq_scaled": chisq / c, "chisq_scaling_factor": c,
                        "pvalue_scaled": float(chi2_sf(chisq / c, df)) if np.isfinite(c)
                        else np.nan})
        self.__dict__["_baseline"] = out
        return dict(out)

    def _robust_pieces(self) -> dict:
        stats = self._test_statistics()
        base = self._baseline_statistics()
        nan = np.nan
        return {"X2": stats["chisq"], "df": stats["df"],
                "c": stats.get("chisq_scaling_factor", nan),
                "X2_scaled": stats.get("chisq_scaled", nan), "X2_null": base["chisq"],
                "df_null": base["df"], "c_null": base.get("chisq_scaling_factor", nan)}

    def _robust_incremental(self) -> dict:
        if not self._scaled():
            return {k: np.nan for k in ("cfi_robust", "tli_robust", "nnfi_robust",
                                        "rni_robust")}
        return super()._robust_incremental()

    def _robust_rmsea(self, c=None) -> dict:
        if not self._scaled():
            return {k: np.nan for k in ("rmsea_robust", "rmsea_ci_lower_robust",
                                        "rmsea_ci_upper_robust", "rmsea_pvalue_robust",
                                        "rmsea_notclose_pvalue_robust")}
        return super()._robust_rmsea(c)

    def _residual_measures(self) -> dict:
        """SRMR per level (lavaan's ``srmr_within``, ``srmr_between``; ``srmr`` their sum):
        the root mean square of the correlation residuals of the level's covariances and of
        its standardized mean residuals (saturated vs implied moments), weighted by
        ``N_g / N`` over groups."""
        from .inference.twolevel import level_srmr
        w = b = 0.0
        for g, (d, h, m) in enumerate(zip(self.datasets, self._h1, self._level_implied)):
            sw, sb = level_srmr(d, h.moments, m)
            w += self.problem.weights[g] * sw
            b += self.problem.weights[g] * sb
        return {"srmr": w + b, "srmr_within": w, "srmr_between": b}

    # ---------------------------------------------------------------------------- inspect
    _TWOLEVEL_KEYS = {"icc": "icc", "h1": "h1", "sampstat": "h1", "sample.statistics": "h1",
                      "obs": "h1", "implied": "implied", "fitted": "implied",
                      "nclusters": "nclusters", "cluster.size": "cluster.size",
                      "cluster.sizes": "cluster.size", "nlevels": "nlevels"}

    def inspect(self, what: str = "free"):
        """lavaan's ``lavInspect`` for two-level fits: ``"icc"``, ``"h1"`` / ``"sampstat"``
        (saturated within and between moments), ``"implied"``, ``"nclusters"``,
        ``"cluster.size"`` (a Series per group: cluster label -> size), ``"nlevels"`` and the
        scalar / parameter keys of :meth:`SEMFit.inspect` (``nobs``, ``ntotal``,
        ``converged``, ``iterations``, ``npar``, ``coef``, ``vcov``, ``fit``, ``r2``,
        ``information``).  The LISREL-matrix keys (``est``, ``std``, ``free``, ...) are not
        available: use :meth:`estimates` / :meth:`standardized`."""
        if not isinstance(what, str):
            raise ValueError(f"inspect() takes a key (a string), not {type(what).__name__}")
        k = what.strip().lower().replace("_", ".").replace("-", ".")
        key = self._TWOLEVEL_KEYS.get(k)
        if key == "icc":
            return self.icc()
        if key == "h1":
            return self.sample_moments()
        if key == "implied":
            return self.implied()
        if key == "nclusters":
            return self.nclusters[0] if self.n_groups == 1 else \
                pd.Series(self.nclusters, index=self.group_labels, name="nclusters")
        if key == "nlevels":
            return 2
        if key == "cluster.size":
            out = [pd.Series(d.cluster_size, index=list(d.cluster_labels), name="size")
                   for d in self.datasets]
            return out[0] if self.n_groups == 1 else dict(zip(self.group_labels, out))
        if k in ("r2", "rsquare", "r.squared"):
            out = {}
            for b, s in enumerate(self._rsquare):
                g, lev = b // 2, LEVEL_LABELS[b % 2 + 1]
                out[(self.group_labels[g], lev) if self.n_groups > 1 else lev] = s.copy()
            return out
        if k.startswith("information"):
            kind = self.options.get("information", "observed") if k == "information" \
                else k.split(".")[1]
            info = self._hessian_z if kind == "observed" else self._info_z
            names = [f"z{j + 1}" for j in range(info.shape[0])] \
                if not self.problem.pmap.is_identity else self._param_names()
            return pd.DataFrame(info, index=names, columns=names)
        canonical = self.INSPECT_KEYS.get(k)
        if canonical in ("free", "partable", "start", "est", "se", "std", "std.lv", "std.nox",
                         "cov.lv", "cor.lv"):
            raise ModelError(f"inspect({what!r}) (a LISREL matrix) is not available for "
                             "two-level models; use estimates() or standardized()")
        return super().inspect(what)

    def summary(self, standardized: bool = True, fit_measures: bool = True,
                rsquare: bool = True) -> str:
        """A lavaan-like text summary with one block per level (and group)."""
        from .inference.twolevel import twolevel_summary
        return twolevel_summary(self, standardized=standardized, fit_measures=fit_measures)

    def __repr__(self) -> str:
        m = self._test_statistics()
        status = "converged" if self.converged else "NOT converged"
        return (f"<TwoLevelSEMFit {self.options.get('estimator', 'ML')} {status}: "
                f"N={self.ntotal}, clusters={sum(self.nclusters)}, groups={self.n_groups}, "
                f"npar={m['npar']}, chisq={m['chisq']:.3f}, df={m['df']}>")
