"""Results of a fit: estimates, standard errors, fit measures and everything derived from them.

Stage 5 of the pipeline.  :class:`SEMFit` is lazy (each quantity computed on first use and
cached) and pandas-labelled, in the spirit of statsmodels' results classes.  All tables are
written against the parameter table (:mod:`sem_models.model.partable`).  lavaan's
``lavInspect`` (:meth:`SEMFit.inspect`) is in :mod:`sem_models.results_inspect`, a mixin.
"""
from __future__ import annotations

from functools import cached_property
from typing import Optional

import numpy as np
import pandas as pd

from .errors import validate_level
from .model.constraints import defined_values
from .inference.distributions import chi2_sf
from .inference.fitmeasures import LOG_2PI
from .estimation.data import labels_index
from .estimation.threads import single_threaded_blas
from .inference.wald import constrained_inverse, delta_method, wald_test, z_table
from .results_inspect import InspectMixin

__all__ = ["SEMFit"]

#: estimators whose SEs, tests and fit measures come from :mod:`.inference.wls_inference`
from .inference.wls_inference import WLS_FAMILY as _WLS_FAMILY  # noqa: E402


def _text_columns(columns: dict) -> dict:
    """Equal-length lists of strings as arrays of pandas' default string dtype (``str``),
    converted in one call (pandas converts each string column separately at a cost of tens
    of microseconds, a tenth of a small model's fit).  With pyarrow storage (pyarrow
    installed) the array is built by pyarrow and wrapped (``pandas.arrays.ArrowStringArray``):
    the same dtype and values at a third of the cost of pandas' checked conversion."""
    n = len(next(iter(columns.values())))
    texts = [text for values in columns.values() for text in values]
    try:
        dtype = pd.StringDtype(na_value=np.nan)  # pandas' "str" with its default storage
    except TypeError:  # pandas before 2.3: its own conversion
        dtype = "str"
    if getattr(dtype, "storage", None) == "pyarrow":
        import pyarrow

        joined = pd.arrays.ArrowStringArray(pyarrow.array(texts, type=pyarrow.large_string()),
                                            dtype=dtype)
    else:
        joined = pd.array(texts, dtype=dtype)
    return {name: joined[k * n:(k + 1) * n] for k, name in enumerate(columns)}


def _frame(columns: dict) -> pd.DataFrame:
    """A DataFrame of equal-length columns (arrays or lists) with a default index.  pandas'
    own constructor from already-built arrays is used when present: the public one checks
    and re-infers every column, which costs as much as a small model's fit."""
    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if from_arrays is not None:
        n = len(next(iter(columns.values())))
        arrays = [pd.Series(v).array if isinstance(v, list) else v  # lists: inferred
                  for v in columns.values()]
        try:
            return from_arrays(arrays, columns=labels_index(tuple(columns)),
                               index=pd.RangeIndex(n), verify_integrity=False)
        except TypeError:  # a pandas without this signature
            pass
    return pd.DataFrame(columns, copy=False)


class SEMFit(InspectMixin):
    """A fitted structural equation model.

    Main methods: :meth:`estimates`, :meth:`measures`, :meth:`standardized`,
    :meth:`modindices`, :meth:`wald`, :meth:`summary`, :meth:`implied`, :meth:`residuals`,
    :meth:`factor_scores`, :meth:`vcov`.  Attributes: ``converged``, ``nobs`` (per group),
    ``ntotal``, ``group_labels``, ``n_dropped``, ``partable``, ``graph``, ``options``.
    """

    def __init__(self, model_syntax, table, variables, model, data, problem, result, graph,
                 options):
        self.model_syntax = model_syntax
        self._table = table  # the parameter table's columns (:class:`~.partable.ParTable`)
        self.variables = variables
        self.model = model
        self.data = data
        self.problem = problem
        self.result = result
        self._graph = graph
        self.options = options
        self.converged = bool(result.converged)

    # ---------------------------------------------------------------------------- basics
    @property
    def graph(self):
        """The model as a networkx DiGraph (see :mod:`sem_models.model.graph`)."""
        if self._graph is None:
            from .model.graph import model_graph
            self._graph = model_graph(self._table, self.variables)
        return self._graph

    @cached_property
    def _partable(self) -> pd.DataFrame:
        """The parameter table as a DataFrame (without estimates; shared, do not modify)."""
        return self._table.to_frame()

    @property
    def group_labels(self) -> list:
        return self.data.group_labels

    @property
    def n_groups(self) -> int:
        return len(self.data.groups)

    @property
    def nobs(self) -> list[int]:
        return self.data.nobs

    @property
    def ntotal(self) -> int:
        return self.data.ntotal

    @property
    def n_dropped(self) -> int:
        return self.data.n_dropped

    @property
    def npar(self) -> int:
        """Free parameters as lavaan counts them: z plus the active inequality constraints
        (lavaan does not count those in df; :mod:`.estimation.constrained`)."""
        return self.problem.pmap.n_z + self.problem.pmap.npar_extra

    @cached_property
    def values(self) -> np.ndarray:
        """Estimates of every parameter-table row (fixed rows: their fixed value)."""
        return self.problem.values(self.result.z)

    @cached_property
    def _moments(self):
        return self.problem.moments(self.values)

    @cached_property
    def _info_z(self) -> np.ndarray:
        """Per-case expected information in the reduced parameters z (the optimizer's, when
        it computed it at the solution)."""
        info = getattr(self.result, "information", None)
        if info is not None:
            return info.to_dense() if hasattr(info, "to_dense") else info
        return self.problem.derivatives(self.result.z)[2]

    @property
    def _inference_T(self) -> tuple[np.ndarray, np.ndarray]:
        """Constraint map and information without coordinates held at an active bound
        (those get standard error 0, as in lavaan)."""
        T = self.problem.pmap.T
        info = self._info_z
        active = self.result.active
        if active is not None and active.any():
            keep = ~active
            return T[:, keep], info[np.ix_(keep, keep)]
        return T, info

    def _param_names(self) -> list[str]:
        """Names of the free parameters: the label, else ``lhs op rhs`` (with ``.g2``, ...
        for groups after the first)."""
        pt = self._table
        rows = self.problem.pmap.free_rows
        several = self.n_groups > 1
        names = []
        for lab, lhs, op, rhs, g in zip(pt["label"][rows].tolist(), pt["lhs"][rows].tolist(),
                                        pt["op"][rows].tolist(), pt["rhs"][rows].tolist(),
                                        pt["group"][rows].tolist()):
            if lab and not lab.startswith("."):
                names.append(lab)
            else:
                names.append(f"{lhs}{op}{rhs}.g{g}" if several and g > 1 else f"{lhs}{op}{rhs}")
        return names

    @cached_property
    def _vcov_free(self) -> np.ndarray:
        """Expected-information inverse (lavaan's default for complete-data ML); observed
        information and robust sandwich estimators (``se``, ``information`` options:
        FIML, MLM, MLR, cluster) in :mod:`sem_models.inference.sandwich`; with
        ``se="bootstrap"`` the covariance matrix of the bootstrap draws."""
        if self.options.get("se") == "bootstrap":
            return self.bootstrap_result.vcov(defined=False).to_numpy()
        if self.options.get("estimator") in _WLS_FAMILY:  # GLS, WLS, DWLS, ULS, MLMV, ...
            from .inference.wls_inference import wls_vcov
            return wls_vcov(self, self._param_names())
        if (self.options.get("se", "standard") != "standard"
                or self.options.get("information", "expected") != "expected"):
            from .inference.sandwich import robust_vcov
            return robust_vcov(self, self._param_names())
        T, info = self._inference_T
        pmap = self.problem.pmap
        return constrained_inverse(info, T, float(self.ntotal), self._param_names(),
                                   pmap.selection if T is pmap.T else None)

    def _variances_free(self) -> np.ndarray:
        """The diagonal of :attr:`_vcov_free`.  Expected information of a multi-group model
        with block-arrow structure: without the dense inverse (linear in the number of
        groups; :func:`~.inference.wald.constrained_variances`), unless the full matrix is
        already there; :meth:`vcov` still gives the full matrix when asked (issue 18)."""
        if ("_vcov_free" not in self.__dict__ and type(self)._vcov_free is SEMFit._vcov_free
                and self.options.get("se", "standard") == "standard"
                and self.options.get("information", "expected") == "expected"
                and self.options.get("estimator") not in _WLS_FAMILY
                and (self.result.active is None or not self.result.active.any())
                and self.problem.block_layout() is not None):
            from .inference.wald import constrained_variances
            info = getattr(self.result, "information", None)
            if not hasattr(info, "to_dense"):  # not the optimizer's structured information
                info = self.problem.derivatives(self.result.z, structured=True)[2]
            var = constrained_variances(info, self.problem.pmap.T, float(self.ntotal),
                                        self.problem.pmap.selection)
            if var is not None:
                return var
        return np.diag(self._vcov_free)

    @single_threaded_blas
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the free parameters (labelled ``lhs op rhs`` or by label)."""
        names = self._param_names()
        return pd.DataFrame(self._vcov_free, index=names, columns=names)

    # ---------------------------------------------------------------------------- tables
    @cached_property
    def _est_se(self) -> tuple[np.ndarray, np.ndarray]:
        """Estimate and standard error of every parameter-table row (defined parameters by
        the delta method; NaN for constraint rows)."""
        op = self._table["op"]
        est = self.values.copy()
        se = np.zeros(len(est))
        se[self.problem.pmap.free_rows] = np.sqrt(np.clip(self._variances_free(), 0, None))
        defined = op == ":="
        if defined.any():
            est[defined], se[defined] = self._defined_estimates()
        cons = (op == "==") | (op == "<") | (op == ">")
        est[cons] = np.nan
        se[cons] = np.nan
        return est, se

    @cached_property
    def partable(self) -> pd.DataFrame:
        """The parameter table with ``est`` and ``se`` columns."""
        est, se = self._est_se
        return self._table.to_frame(est=est, se=se)

    def _free_function(self, func):
        """Wrap ``values -> vector`` as a function of the free-row estimates."""
        rows = self.problem.pmap.free_rows

        def wrapped(theta_free):
            vals = self.values.copy()
            vals[rows] = theta_free
            return func(vals)
        return wrapped

    def _defined_estimates(self) -> tuple[np.ndarray, np.ndarray]:
        pt = self._partable
        names = pt.loc[pt["op"] == ":=", "lhs"].tolist()

        def func(vals):
            env = defined_values(pt, vals)
            return np.array([env[n] for n in names], float)

        theta = self.values[self.problem.pmap.free_rows]
        value, cov = delta_method(self._free_function(func), theta, self._vcov_free)
        return value, np.sqrt(np.clip(np.diag(cov), 0, None))

    @single_threaded_blas
    def estimates(self, level: Optional[float] = None, rsquare: bool = False,
                  boot_ci_type: str = "percentile") -> pd.DataFrame:
        """Parameter estimates (lavaan's ``parameterEstimates``).

        Columns: lhs, op, rhs, (group), label, est, se, z, pvalue, ci_lower, ci_upper.
        ``group`` holds the group's value from the data and is present for multiple groups.
        ``rsquare=True`` appends one row per endogenous variable and group with op ``r2``
        and its R-squared in ``est`` (lavaan's ``parameterEstimates(rsquare = TRUE)``; see
        :meth:`inspect` ``"r2"``).  With ``se="bootstrap"`` the SEs are the SDs of the
        bootstrap draws and the intervals of type ``boot_ci_type`` (lavaan's
        ``boot.ci.type``: ``"percentile"`` (lavaan's default ``"perc"``), ``"normal"``,
        ``"basic"``, ``"bca_simple"`` or ``"bca"``).
        """
        if rsquare:
            table = self.estimates(level, boot_ci_type=boot_ci_type)
            return pd.concat([table, self._rsquare_rows()[list(table.columns)]],
                             ignore_index=True)
        if self.options.get("se") == "bootstrap":
            return self.bootstrap_result.estimates(
                boot_ci_type, None if level is None else validate_level(level))
        return self._estimates_table(level)

    def _estimates_table(self, level: Optional[float] = None) -> pd.DataFrame:
        """The estimates table with the fit's standard errors (see :meth:`estimates`)."""
        level = self.options.get("level", 0.95) if level is None else validate_level(level)
        table = self._table
        op = table["op"]
        keep = ~((op == "==") | (op == "<") | (op == ">"))
        est, se = (column[keep] for column in self._est_se)
        out = _text_columns({
            "lhs": table["lhs"][keep].tolist(), "op": table["op"][keep].tolist(),
            "rhs": table["rhs"][keep].tolist(),
            "label": [lab if not lab.startswith(".") else ""
                      for lab in table["label"][keep].tolist()]})
        if self.n_groups > 1:
            labels = {k + 1: lab for k, lab in enumerate(self.group_labels)}
            groups = [labels.get(g) for g in table["group"][keep].tolist()]  # None: := rows
            out = {**{k: out[k] for k in ("lhs", "op", "rhs")}, "group": groups,
                   "label": out["label"]}
        fixed = (table["free"][keep] == 0) & (op[keep] != ":=")
        stats = z_table(est, se, level)
        out["est"] = est
        out["se"] = np.where(fixed, 0.0, se)
        for col, vals in stats.items():
            out[col] = np.where(fixed, np.nan if col in ("z", "pvalue") else est, vals)
        return _frame(out)

    # ---------------------------------------------------------------------------- moments
    def implied(self) -> dict:
        """Model-implied covariance matrix and mean vector per group (key None: one group)."""
        out = {}
        ov = self.model.ov_names
        for g, mom in enumerate(self._moments):
            key = self.group_labels[g] if self.n_groups > 1 else None
            out[key] = {"cov": pd.DataFrame(mom.cov, index=ov, columns=ov),
                        "mean": pd.Series(self._implied_mean(g), index=ov)}
        return out

    def _implied_mean(self, g: int) -> np.ndarray:
        """Model-implied means of group g; without a mean structure the sample means, which
        such a model reproduces exactly (as lavaan's ``fitted()``)."""
        if self.model.meanstructure:
            return self._moments[g].mean
        return self.sample_moments_arrays[g][1]

    @cached_property
    def sample_moments_arrays(self) -> list:
        """(cov, mean) per group as arrays: the sample moments (EM estimates under FIML)."""
        return [loss.saturated_moments() if hasattr(loss, "saturated_moments") else
                (loss.cov, loss.mean) for loss in self.problem.losses]

    def sample_moments(self) -> dict:
        """Sample covariance (divisor N) and means per group (EM estimates under FIML)."""
        out = {}
        ov = self.model.ov_names
        for g, (cov, mean) in enumerate(self.sample_moments_arrays):
            key = self.group_labels[g] if self.n_groups > 1 else None
            out[key] = {"cov": pd.DataFrame(cov, index=ov, columns=ov),
                        "mean": pd.Series(mean, index=ov)}
        return out

    def residuals(self, type: str = "raw") -> dict:
        """Residuals per group (key None for one group, else the group label), each
        ``{"cov": DataFrame, "mean": Series}`` (lavaan's ``residuals(fit, type=)``):
        ``"raw"`` (sample minus implied), ``"cor"`` = ``"cor.bollen"`` (difference of the
        correlation matrices), ``"cor.bentler"`` (raw residuals scaled by the sample standard
        deviations), ``"normalized"`` and ``"standardized"`` (z statistics; see
        :mod:`sem_models.inference.residuals`)."""
        if type == "raw":
            sample = self.sample_moments()
            implied = self.implied()
            return {k: {"cov": sample[k]["cov"] - implied[k]["cov"],
                        "mean": sample[k]["mean"] - implied[k]["mean"]} for k in sample}
        from .inference.residuals import residuals
        return residuals(self, type)

    def lav_residuals(self, type: str = "cor.bentler") -> dict:
        """lavaan's ``lavResiduals(fit, type)``: per group the residuals, their z statistics
        and the RMR / SRMR / CRMR summary with standard error, exact-fit test and unbiased
        estimate with interval and close-fit test (Maydeu-Olivares 2017;
        :func:`sem_models.inference.residuals.residual_summary`)."""
        from .inference.residuals import residual_summary
        return residual_summary(self, type)

    def factor_scores(self, method: str = "regression") -> pd.DataFrame:
        """Factor scores for the analysed rows (lavaan's ``lavPredict``).

        ``method="regression"`` (Thurstone): ``E[eta | y] = mu_eta + Cov(eta, y) Sigma^-1
        (y - mu_y)``; ``method="bartlett"``: Bartlett's weighted least-squares scores
        (:func:`sem_models.inference.factor_scores.bartlett_scores`).  Under FIML each row
        uses its observed variables only.
        """
        kind = method.lower() if isinstance(method, str) else method
        if kind == "bartlett":
            from .inference.factor_scores import bartlett_scores
            return bartlett_scores(self)
        if kind != "regression":
            raise ValueError(f"method={method!r}: factor scores by 'regression' or "
                             "'bartlett'")
        from .inference.factor_scores import scores_by_pattern
        p = self.model.n_ov
        lv_idx = np.arange(p, self.model.n_var)

        def group_weights(g, mom, gd):
            cov_ey = mom.full_cov[np.ix_(lv_idx, np.arange(p))]

            def weights(pat):  # Sigma_oo^-1 Cov(y_o, eta)
                obs = np.flatnonzero(pat)
                return obs, np.linalg.solve(mom.cov[np.ix_(obs, obs)], cov_ey[:, obs].T)
            return weights

        return scores_by_pattern(self, group_weights)

    # ---------------------------------------------------------------------------- tests
    def _loglik(self) -> dict:
        """Log-likelihood of the model and of the saturated model.

        With ``fixed_x`` the marginal likelihood of the exogenous covariates is left out
        (lavaan reports the likelihood conditional on them)."""
        logl = unres = 0.0
        ov = self.model.ov_names
        x_idx = [ov.index(v) for v in self.variables.ov_x] if self.options.get("fixed_x") else []
        for g, loss in enumerate(self.problem.losses):
            n, p = loss.nobs, loss.p
            if hasattr(loss, "saturated_loglik"):  # FIML: the EM saturated model
                saturated = loss.saturated_loglik
            else:
                saturated = -n * (p * LOG_2PI + loss.logdet_sample + p) / 2
            if x_idx:
                cov_x = self.sample_moments_arrays[g][0][np.ix_(x_idx, x_idx)]
                px = len(x_idx)
                saturated -= -n * (px * LOG_2PI + np.linalg.slogdet(cov_x)[1] + px) / 2
            logl += saturated - n * loss.value(self._moments[g])
            unres += saturated
        return {"logl": logl, "unrestricted_logl": unres}

    def _n_moments(self) -> int:
        """Sample moments the model reproduces (those of fixed exogenous covariates excluded)."""
        p = self.model.n_ov
        per_group = p * (p + 1) // 2 + (p if self.model.meanstructure else 0)
        px = len(self.variables.ov_x) if self.options.get("fixed_x", True) else 0
        per_group -= px * (px + 1) // 2 + (px if self.model.meanstructure else 0)
        return per_group * self.n_groups

    def _standard_test(self) -> dict:
        chisq = 2.0 * self.ntotal * self.result.fmin
        df = self._n_moments() - self.npar
        return {"npar": self.npar, "fmin": self.result.fmin, "chisq": chisq, "df": df,
                "pvalue": float(chi2_sf(chisq, df)) if df > 0 else np.nan}

    def _test_statistics(self) -> dict:
        """The standard test plus, with a scaled test (``test`` option: MLM's Satorra-Bentler,
        MLR's Yuan-Bentler), ``chisq_scaled = chisq / c`` and its pieces (:mod:`.robust`)."""
        if "_tests" in self.__dict__:
            return dict(self.__dict__["_tests"])
        if self.options.get("estimator") in _WLS_FAMILY:
            from .inference.wls_inference import wls_test_statistics
            self.__dict__["_tests"] = wls_test_statistics(self)
            return dict(self.__dict__["_tests"])
        out = self._standard_test()
        from .inference.scaled import scaled_test
        from .inference.options import scaled_test_name
        if scaled_test_name(self) is not None:
            st = scaled_test(self)
            c = st["scaling"]
            df = out["df"]
            scaled = out["chisq"] / c if df > 0 and np.isfinite(c) else out["chisq"]
            out.update({"chisq_scaled": scaled, "df_scaled": df,
                        "pvalue_scaled": float(chi2_sf(scaled, df)) if df > 0 else np.nan,
                        "chisq_scaling_factor": c, "trace_ugamma": st["trace_ugamma"]})
            for key in ("scaling_factor_h1", "scaling_factor_h0"):
                if key in st:
                    out[key] = st[key]
        self.__dict__["_tests"] = out
        return dict(out)

    def _baseline_df(self) -> int:
        p = self.model.n_ov
        px = len(self.variables.ov_x)
        return (p * (p + 1) // 2 - px * (px + 1) // 2 - (p - px)) * self.n_groups

    def _baseline_statistics(self) -> dict:
        """Independence model's test (:func:`~.inference.fitmeasures.baseline_statistics`)."""
        from .inference.fitmeasures import baseline_statistics
        return baseline_statistics(self)

    def _robust_pieces(self) -> dict:
        """(T, c, Tb, cb, T / c) behind the robust CFI/TLI/RMSEA: the statistics and scaling
        factors of the model and the baseline, or lavaan's FIML-corrected ones under FIML."""
        if "_robust_pieces_" not in self.__dict__:
            if self.options.get("missing") == "fiml":
                from .inference.scaled import fiml_corrected
                fc = fiml_corrected(self)
                out = {"X2": fc["XX3"], "df": fc["df3"], "c": fc["c_hat3"],
                       "X2_scaled": fc["XX3_scaled"], "X2_null": fc["XX3_null"],
                       "df_null": fc["df3_null"], "c_null": fc["c_hat3_null"]}
            else:
                stats = self._test_statistics()
                base = self._baseline_statistics()
                out = {"X2": stats["chisq"], "df": stats["df"],
                       "c": stats["chisq_scaling_factor"], "X2_scaled": stats["chisq_scaled"],
                       "X2_null": base["chisq"], "df_null": base["df"],
                       "c_null": base["chisq_scaling_factor"]}
            self.__dict__["_robust_pieces_"] = out
        return dict(self.__dict__["_robust_pieces_"])

    def _robust_incremental(self) -> dict:
        """cfi_robust, tli_robust (= nnfi_robust), rni_robust (Brosseau-Liard & Savalei 2014)."""
        from .inference.fitmeasures import robust_incremental_measures
        r = self._robust_pieces()
        return robust_incremental_measures(r["X2"], r["df"], r["c"], r["X2_null"],
                                           r["df_null"], r["c_null"])

    def _robust_rmsea(self, c: Optional[float] = None) -> dict:
        """rmsea_robust, its interval and p-values (Brosseau-Liard, Savalei & Li 2012): the
        point estimate from T and c, the interval and p-values from T / c (as lavaan)."""
        from .inference.fitmeasures import rmsea_measures
        r = self._robust_pieces()
        G = self.n_groups
        n = self.ntotal
        point = rmsea_measures(r["X2"], r["df"], n, G, c_hat=r["c"])
        interval = rmsea_measures(r["X2_scaled"], r["df"], n, G, c_hat=r["c"])
        return {"rmsea_robust": point["rmsea"],
                "rmsea_ci_lower_robust": interval["rmsea_ci_lower"],
                "rmsea_ci_upper_robust": interval["rmsea_ci_upper"],
                "rmsea_pvalue_robust": interval["rmsea_pvalue"],
                "rmsea_notclose_pvalue_robust": interval["rmsea_notclose_pvalue"]}

    def _residual_measures(self) -> dict:
        """RMR/SRMR/CRMR combined over groups weighted by N_g / N
        (:func:`~.inference.fitmeasures.fit_residual_measures`)."""
        from .inference.fitmeasures import fit_residual_measures
        return fit_residual_measures(self)

    @single_threaded_blas
    def measures(self) -> pd.Series:
        """Fit measures (lavaan's ``fitMeasures`` names with ``.`` replaced by ``_``)."""
        if self.options.get("estimator") in _WLS_FAMILY:
            from .inference.wls_inference import wls_fit_measures as fit_measures
        else:
            from .inference.fitmeasures import fit_measures
        if "_measures" not in self.__dict__:
            self.__dict__["_measures"] = fit_measures(self)
        return self.__dict__["_measures"].copy()

    def wald(self, constraints: str) -> pd.Series:
        """Wald test of equality constraints among labels, e.g. ``"a1 == a2; b1 == b2"``."""
        pt = self._partable

        def factory(exprs):
            def func(vals):
                env = defined_values(pt, vals)
                try:
                    return np.array([lhs.evaluate(env) - rhs.evaluate(env) for lhs, rhs in exprs],
                                    float)
                except KeyError as exc:
                    raise ValueError(f"unknown label {exc.args[0]!r} in the Wald constraints; "
                                     f"labels are: {sorted(k for k in env if not k.startswith('.'))}") from None
            return self._free_function(func)

        theta = self.values[self.problem.pmap.free_rows]
        res = wald_test(constraints, factory, theta, self._vcov_free)
        return pd.Series({"stat": res["stat"], "df": res["df"], "pvalue": res["p_value"]})

    # ---------------------------------------------------------------------------- resampling
    @cached_property
    def bootstrap_result(self):
        """The bootstrap behind ``se="bootstrap"`` (``bootstrap`` replicates, seed ``iseed``;
        :class:`~sem_models.resampling.boot.BootstrapResult`), run on first use."""
        if self.options.get("se") != "bootstrap":
            raise ValueError('bootstrap_result needs a fit with se="bootstrap"; for any fit '
                             "use fit.bootstrap(R)")
        from .resampling.boot import bootstrap
        return bootstrap(self, int(self.options.get("bootstrap", 1000)),
                         seed=self.options.get("iseed"))

    def bootstrap(self, R: int = 1000, kind: str = "ordinary", *, seed=None, cluster=None,
                  executor=None, progress: bool = True, **options):
        """Bootstrap this fit (lavaan's ``bootstrapLavaan``): ``kind`` ``"ordinary"``,
        ``"bollen_stine"`` or ``"parametric"``, whole clusters with ``cluster``; returns a
        :class:`~sem_models.resampling.boot.BootstrapResult` (``.estimates(ci=...)``,
        ``.draws``, ``.bollen_stine_pvalue``).  See :func:`sem_models.bootstrap`."""
        from .resampling.boot import bootstrap
        return bootstrap(self, R, kind, seed=seed, cluster=cluster, executor=executor,
                         progress=progress, **options)

    def simulate(self, n=None, seed=None, **options) -> pd.DataFrame:
        """Data simulated from the fitted model (lavaan's ``simulateData`` of a fit's
        parameter table): normal data with each group's implied means and covariances;
        ``n`` the total sample size (split as the fit's groups), one size per group, or
        None (the fit's sizes).  See :func:`sem_models.resampling.simulate.simulate_fit`."""
        from .resampling.simulate import simulate_fit
        return simulate_fit(self, n, seed=seed, **options)

    # ---------------------------------------------------------------------------- derived
    @single_threaded_blas
    def standardized(self, se: bool = True) -> pd.DataFrame:
        """Standardized solution: columns std_lv, std_all, std_nox (and se_std_all)."""
        from .inference.standardized import standardized_solution
        return standardized_solution(self, se=se)

    @single_threaded_blas
    def modindices(self, sort: bool = True, minimum_value: float = 0.0) -> pd.DataFrame:
        """Modification indices with expected parameter changes (lavaan's ``modindices``)."""
        from .inference.modindices import modification_indices
        return modification_indices(self, sort=sort, minimum_value=minimum_value)

    def summary(self, standardized: bool = True, fit_measures: bool = True,
                rsquare: bool = True) -> str:
        """lavaan's ``summary(fit, fit.measures = TRUE, standardized = TRUE, rsquare = TRUE)``.

        Returns a :class:`~sem_models.summary.Summary`: a ``str`` (print it, search it) laid
        out as lavaan's, which renders as HTML tables in notebooks (``_repr_html_``).
        ``standardized`` adds the Std.lv / Std.all columns, ``fit_measures`` the baseline
        model, CFI/TLI, log-likelihood and information criteria, RMSEA and SRMR sections,
        ``rsquare`` the R-Square section.
        """
        from .summary import build_summary
        return build_summary(self, standardized=standardized, fit_measures=fit_measures,
                             rsquare=rsquare)

    def plot(self, **options):
        """Path diagram of the model with its estimates on the arrows (a matplotlib Figure).

        See :func:`sem_models.diagram.path_diagram` for the options (``values``, ``group``,
        ``layout``, ``covariances``, ``title``, ``ax``, ...)."""
        from .diagram import path_diagram
        return path_diagram(self, **options)

    def __repr__(self) -> str:
        m = self._test_statistics()
        status = "converged" if self.converged else "NOT converged"
        return (f"<SEMFit {self.options.get('estimator', 'ML')} {status}: N={self.ntotal}, "
                f"groups={self.n_groups}, npar={m['npar']}, chisq={m['chisq']:.3f}, "
                f"df={m['df']}>")

    def label_values(self) -> dict:
        """Estimates by label (user labels, automatic ``.pN.`` labels and ``:=`` names)."""
        return defined_values(self._partable, self.values)
