"""Bootstrap of a fitted model: ordinary, Bollen-Stine, parametric and cluster resampling.

:func:`bootstrap` refits the model (:func:`sem_models.sem`, warm-started from the original
estimates) on ``R`` bootstrap samples drawn within groups, as lavaan's ``bootstrapLavaan``:

* ``"ordinary"``: rows resampled with replacement within each group (Efron & Tibshirani 1993,
  ch. 6); with ``cluster`` whole clusters are resampled within each group (Davison & Hinkley
  1997, sec. 3.8, the first stage of their two-stage scheme);
* ``"bollen_stine"``: the same on data transformed so that the model holds exactly
  (Bollen & Stine 1992, eq. 9): ``Z = (Y - 1 ybar') S^-1/2 Sigma^1/2 + 1 mu'`` per group, with
  ``S`` the sample covariance (divisor N), ``Sigma``, ``mu`` the fitted moments (``mu = 0``
  without a mean structure, as lavaan); the bootstrap p-value of the chi-square test is the share of
  bootstrap statistics at least as large as the observed one;
* ``"parametric"``: samples of the same sizes from N(mu, Sigma) with the fitted moments.

Intervals (:meth:`BootstrapResult.estimates`): percentile, normal (bias-corrected, as lavaan's
``"norm"``), basic, and BCa with the jackknife acceleration (Efron 1987, eqs. 6.6-6.8;
Efron & Tibshirani 1993, eqs. 14.9-14.15), leaving out one case (one cluster with
``cluster``) at a time.  Quantiles use the normal-scale interpolation of the order statistics
of Davison & Hinkley (1997, eq. 5.8), as R's ``boot`` and lavaan.

References: Bollen, K. A., & Stine, R. A. (1992). Bootstrapping goodness-of-fit measures in
structural equation models. Sociological Methods & Research 21, 205-229.  Davison, A. C., &
Hinkley, D. V. (1997). Bootstrap methods and their application. Cambridge UP.  Efron, B.
(1987). Better bootstrap confidence intervals. JASA 82, 171-185.  Efron, B., & Tibshirani,
R. J. (1993). An introduction to the bootstrap. Chapman & Hall.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from .executor import run_replications
from .intervals import METHODS as CI_METHODS
from .intervals import (_norm_cdf, acceleration, bca_interval, interval,  # noqa: F401
                        percentile_interval)
from .refit import Refitter
from .refit import refit_options as _refit_options  # noqa: F401  (used by the tests)
from .units import _cluster_units, _jackknife_units, _Sampler  # noqa: F401

__all__ = ["bootstrap", "BootstrapResult", "bca_interval", "percentile_interval",
           "BOOTSTRAP_KINDS", "CI_METHODS", "check_bootstrap_options"]

BOOTSTRAP_KINDS = ("ordinary", "bollen_stine", "parametric")
#: lavaan's boot.ci.type names
_LAVAAN_CI = {"perc": "percentile", "norm": "normal", "bca.simple": "bca_simple"}


# ------------------------------------------------------------------------------ refits
def _sqrtm_sym(matrix: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Symmetric (inverse) square root by the eigendecomposition."""
    vals, vecs = np.linalg.eigh(matrix)
    if np.any(vals <= 0):
        raise np.linalg.LinAlgError("matrix is not positive definite")
    power = -0.5 if inverse else 0.5
    return (vecs * vals ** power) @ vecs.T


def bollen_stine_transform(X: np.ndarray, sigma: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Bollen & Stine (1992, eq. 9): data whose sample covariance (divisor N) is ``sigma`` and
    whose means are ``mu``: ``(X - xbar) S^-1/2 sigma^1/2 + mu``."""
    mean = X.mean(axis=0)
    centred = X - mean
    S = centred.T @ centred / X.shape[0]
    return centred @ _sqrtm_sym(S, inverse=True) @ _sqrtm_sym(sigma) + mu


def _check_resamplable(fit) -> None:
    import re
    if re.search(r"(^|[\n;])\s*level\s*:", fit.model_syntax):
        raise ValueError("the bootstrap of multilevel models (level: blocks) is not supported "
                         "yet; bootstrap a single-level model with cluster= instead")
    if any(getattr(g, "X", None) is None for g in fit.data.groups):
        raise ValueError("the bootstrap needs the raw data: this model was fitted to sample "
                         "moments")


class _Refit:
    """Refits one model on new data (:class:`~.refit.Refitter`) and extracts the drawn
    quantities (picklable: it holds the parameter table, options and arrays, never the fitted
    object)."""

    def __init__(self, fit, Xs: list[np.ndarray]):
        table = fit._partable  # without estimates and SEs (se="bootstrap" SEs come from here)
        self.refitter = Refitter(fit)
        self.ov = self.refitter.ov
        self.Xs = Xs
        self.start = self.refitter.start
        op = table["op"].to_numpy()
        free = table["free"].to_numpy() > 0
        self.rows = np.flatnonzero(free)  # drawn rows: free parameters, then := rows
        self.defined = [(str(lhs), str(rhs)) for lhs, rhs in
                        zip(table["lhs"][op == ":="], table["rhs"][op == ":="])]
        group = table["group"].to_numpy()
        labels = table["label"].astype(str).to_numpy()
        plabels = table["plabel"].astype(str).to_numpy() if "plabel" in table else labels
        env_rows: dict[str, int] = {}
        for r in np.flatnonzero(group > 0):
            env_rows[plabels[r]] = int(r)
            if labels[r] and labels[r] not in env_rows:
                env_rows[labels[r]] = int(r)
        self.env_rows = env_rows
        self.names = param_names(table)
        self._compiled = None
        self._kernel = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_compiled"] = None  # compiled expressions are rebuilt where they are used
        state["_kernel"] = None  # and the kernel
        return state

    def _expressions(self):
        if self._compiled is None:
            from ..model.syntax import compile_expression
            self._compiled = [(name, compile_expression(text)) for name, text in self.defined]
        return self._compiled

    def frame(self, Xs: list[np.ndarray]) -> pd.DataFrame:
        return self.refitter.frame(Xs)

    def fit(self, Xs: list[np.ndarray]):
        """The model refitted to ``Xs`` (one array per group), warm-started at the original
        estimates."""
        return self.refitter.fit(Xs)

    def defined_at(self, free_values: np.ndarray,
                   base: Optional[np.ndarray] = None) -> np.ndarray:
        """The ``:=`` quantities at given values of the free parameters (the other rows from
        ``base``, default the original estimates)."""
        values = (self.start if base is None else np.asarray(base, float)).copy()
        values[self.rows] = free_values
        return np.array(list(self._defined_row(values).values()))

    def _defined_row(self, values: np.ndarray) -> dict:
        out = {}
        env = {name: values[r] for name, r in self.env_rows.items()}
        for name, expr in self._expressions():
            try:
                env[name] = float(expr.evaluate(env))
            except (ZeroDivisionError, OverflowError, ValueError):
                env[name] = np.nan
            out[name] = env[name]
        return out

    def extract(self, refit) -> dict:
        values = np.asarray(refit.values, float)
        out = dict(zip(self.names[:len(self.rows)], values[self.rows].tolist()))
        if self.defined:
            out.update(self._defined_row(values))
        # ML and FIML refits: the statistic is 2 N F at the minimum (no test machinery)
        out["chisq"] = 2.0 * refit.ntotal * float(refit.result.fmin) \
            if self.refitter.fast else _chisq(refit)
        out["converged"] = bool(refit.converged)
        return out

    # ------------------------------------------------------------------ batched refits
    @property
    def kernel(self):
        """The vectorised refit kernel (:class:`~.batched.MLKernel`) or None where it does not
        apply (built once per process)."""
        if self._kernel is None:
            from .batched import MLKernel
            self._kernel = MLKernel.build(self.refitter) or False
        return self._kernel or None

    @property
    def chunk_size(self) -> Optional[int]:
        """Replicates per canonical chunk of the kernel (None: one replicate at a time).
        Replicates go one by one through :meth:`fit` when it is overridden (a subclass or a
        patched method): then every replicate must see it."""
        kernel = self.kernel
        if kernel is None or type(self).fit is not _REFIT_FIT:
            return None
        return kernel.chunk_size()

    def fit_many(self, samples: list) -> list:
        """Refit and extract many data sets (one list of per-group arrays each): the kernel
        fits them together, those it does not finish (and all, without a kernel) go through
        :meth:`fit`.  One dict of drawn quantities, or the exception, per data set."""
        out: list = [None] * len(samples)
        todo = list(range(len(samples)))
        if samples and self.chunk_size is not None:
            from .batched import sample_moments
            kernel = self.kernel
            covs, means, nobs, usable = sample_moments(samples, kernel.G, kernel.p)
            res = kernel.fit(covs, means, nobs, usable)
            names = self.names[:len(self.rows)]
            drawn = res.values[:, self.rows]
            defined = self._defined_many(res.values) if self.defined else None
            chisq = 2.0 * res.ntotal * res.fmin
            todo = []
            for k in range(len(samples)):
                if not res.ok[k]:
                    todo.append(k)
                    continue
                row = dict(zip(names, drawn[k].tolist()))
                if defined is not None:
                    row.update(defined[k])
                row["chisq"] = float(chisq[k])
                row["converged"] = True
                out[k] = row
        for k in todo:
            try:
                out[k] = self.extract(self.fit(samples[k]))
            except Exception as exc:  # noqa: BLE001 - recorded in the replicate's row
                out[k] = exc
        return out

    def _defined_many(self, values: np.ndarray) -> list[dict]:
        """The := quantities of many value vectors: the expressions evaluated elementwise over
        the data sets (the evaluator's numpy ufuncs take arrays), else one data set at a
        time."""
        try:
            env = {name: values[:, r] for name, r in self.env_rows.items()}
            cols = {}
            for name, expr in self._expressions():
                result = np.broadcast_to(np.asarray(expr.evaluate(env), float),
                                         (len(values),))
                env[name] = cols[name] = result
            return [{name: float(col[k]) for name, col in cols.items()}
                    for k in range(len(values))]
        except Exception:  # noqa: BLE001 - the scalar path records NaN per data set
            return [self._defined_row(v) for v in values]


#: the refit every replicate goes through unless overridden (see :attr:`_Refit.chunk_size`)
_REFIT_FIT = _Refit.fit


def _chisq(refit) -> float:
    stats = getattr(refit, "_test_statistics", None)
    if stats is not None:
        return float(stats()["chisq"])
    return float(refit.measures()["chisq"])  # pragma: no cover - older results classes


def param_names(table: pd.DataFrame) -> list[str]:
    """Names of the drawn quantities: ``lhs op rhs`` of the free rows (``.gK`` for group K > 1,
    as lavaan's ``coef()``), then the ``:=`` names."""
    op = table["op"].to_numpy()
    free = table["free"].to_numpy() > 0
    names = []
    for lhs, o, rhs, g in zip(table["lhs"][free], op[free], table["rhs"][free],
                              table["group"][free]):
        name = f"{lhs}{o}{rhs}"
        names.append(name if int(g) <= 1 else f"{name}.g{int(g)}")
    names += [str(lhs) for lhs in table["lhs"][op == ":="]]
    return names


class _BootTask:
    """One bootstrap replication: draw a sample, refit, extract."""

    def __init__(self, refit: _Refit, sampler: _Sampler):
        self.refit = refit
        self.sampler = sampler

    def __call__(self, rng: np.random.Generator, r: int) -> dict:
        return self.refit.extract(self.refit.fit(self.sampler(rng)))

    @property
    def chunk_size(self) -> Optional[int]:
        return self.refit.chunk_size

    def run_chunk(self, rngs: list, reps: list) -> list:
        """A canonical chunk of replications (:func:`~.executor.run_replications`): draw
        each sample from its own generator, refit them together."""
        return _run_samples(self.refit, [lambda rng=rng: self.sampler(rng) for rng in rngs])


def _run_samples(refit: "_Refit", makers: list) -> list:
    """Draw the samples (an exception stays with its replicate), refit the drawn ones."""
    out: list = [None] * len(makers)
    samples, where = [], []
    for k, make in enumerate(makers):
        try:
            samples.append(make())
            where.append(k)
        except Exception as exc:  # noqa: BLE001 - recorded in the replicate's row
            out[k] = exc
    for k, res in zip(where, refit.fit_many(samples)):
        out[k] = res
    return out


class _JackknifeTask:
    """Replication r of the jackknife: the fit without unit r (a case, or a cluster)."""

    def __init__(self, refit: _Refit, units: list[tuple[int, np.ndarray]]):
        self.refit = refit
        self.units = units  # (group, rows of the unit)

    def sample(self, r: int) -> list[np.ndarray]:
        g, rows = self.units[r]
        Xs = list(self.refit.Xs)
        Xs[g] = np.delete(Xs[g], rows, axis=0)
        return Xs

    def __call__(self, rng: np.random.Generator, r: int) -> dict:
        return self.refit.extract(self.refit.fit(self.sample(r)))

    @property
    def chunk_size(self) -> Optional[int]:
        return self.refit.chunk_size

    def run_chunk(self, rngs: list, reps: list) -> list:
        return _run_samples(self.refit, [lambda r=r: self.sample(r) for r in reps])


# ------------------------------------------------------------------------------ the result
class BootstrapResult:
    """Bootstrap draws of a fitted model and the intervals and tests built from them.

    Attributes: ``draws`` (one row per replicate: the free parameters and ``:=`` quantities,
    ``chisq``, ``converged``, ``error``), ``kind``, ``R``, ``seed``, ``fit``, ``n_valid``.
    """

    def __init__(self, fit, draws: pd.DataFrame, kind: str, seed: int, names: list[str],
                 refit: _Refit, jack_units: list, executor, progress: bool):
        self.fit = fit
        self.draws = draws
        self.kind = kind
        self.R = len(draws)
        self.seed = seed
        self.names = names
        self._refit = refit
        self._jack_units = jack_units
        self._executor = executor
        self._progress = progress
        self._jackknife: Optional[pd.DataFrame] = None

    @classmethod
    def from_draws(cls, fit, draws: pd.DataFrame, kind: str = "ordinary", *,
                   cluster=None, data: Optional[pd.DataFrame] = None, executor=None,
                   progress: bool = True) -> "BootstrapResult":
        """Summaries of draws made elsewhere (e.g. read back from a checkpoint folder): one row
        per replicate with the columns of :attr:`draws` (``chisq`` may be absent unless
        ``kind="bollen_stine"``; ``converged`` and ``error`` default to True / None)."""
        if kind not in BOOTSTRAP_KINDS:
            raise ValueError(f"kind must be one of {BOOTSTRAP_KINDS}, not {kind!r}")
        original = [np.asarray(g.X, float) for g in fit.data.groups]
        refit = _Refit(fit, original)
        missing = [name for name in refit.names if name not in draws.columns]
        if missing:
            raise ValueError(f"draws lack the column(s) {missing}")
        draws = draws.copy()
        if "converged" not in draws.columns:
            draws["converged"] = True
        if "error" not in draws.columns:
            draws["error"] = None
        if "chisq" not in draws.columns:
            draws["chisq"] = np.nan
        clusters = _cluster_ids(fit, cluster, data)
        return cls(fit, draws, kind, draws.attrs.get("seed"), refit.names, refit,
                   _jackknife_units(original, clusters), executor, progress)

    @property
    def valid(self) -> np.ndarray:
        """Replicates that ran without error and converged (those used for inference)."""
        conv = self.draws["converged"].to_numpy(object)
        known = pd.notna(conv)
        ok = np.zeros(len(conv), bool)
        ok[known] = conv[known].astype(bool)
        return ok & self.draws["error"].isna().to_numpy()

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    def _matrix(self) -> np.ndarray:
        return self.draws.loc[self.valid, self.names].to_numpy(float)

    @property
    def bollen_stine_pvalue(self) -> float:
        """Share of bootstrap chi-squares at least as large as the observed one (Bollen & Stine
        1992), over converged replicates; only for ``kind="bollen_stine"``."""
        if self.kind != "bollen_stine":
            raise ValueError(f"the Bollen-Stine p-value needs kind='bollen_stine' (this "
                             f"bootstrap is {self.kind!r})")
        observed = float(self.fit.measures()["chisq"])
        stats = self.draws.loc[self.valid, "chisq"].to_numpy(float)
        stats = stats[np.isfinite(stats)]
        return float(np.mean(stats >= observed)) if len(stats) else np.nan

    def jackknife(self, executor=None) -> pd.DataFrame:
        """Leave-one-out refits (cases, or clusters) for the BCa acceleration (cached)."""
        if self._jackknife is None:
            task = _JackknifeTask(self._refit, self._jack_units)
            self._jackknife = run_replications(
                task, len(self._jack_units), seed=0,
                executor=executor if executor is not None else self._executor,
                progress=self._progress, desc="jackknife")
        return self._jackknife

    def vcov(self, defined: bool = True) -> pd.DataFrame:
        """Bootstrap covariance matrix of the drawn quantities (converged replicates): the
        free parameters and (``defined=True``) the ``:=`` quantities."""
        names = self.names if defined else self.names[:len(self._refit.rows)]
        values = self.draws.loc[self.valid, names].to_numpy(float)
        return pd.DataFrame(np.atleast_2d(np.cov(values, rowvar=False, ddof=1)), index=names,
                            columns=names)

    def estimates(self, ci: str = "percentile", level: Optional[float] = None, *,
                  interpolation: str = "normal") -> pd.DataFrame:
        """Like ``fit.estimates()`` with bootstrap SEs (SD of the draws, divisor B - 1), z and
        p from them, and bootstrap intervals: ``ci`` is ``"percentile"``, ``"bca"`` (runs
        the jackknife once), ``"bca_simple"`` (no acceleration, lavaan's ``"bca.simple"``),
        ``"normal"`` (``est - bias +- z se`` with bias = mean of the draws minus the estimate;
        for ``:=`` rows the quantity at the mean of the drawn free parameters minus the
        estimate, as lavaan's ``"norm"``) or ``"basic"`` (``2 est - percentile bounds``).
        Fixed rows: SE 0 and the interval collapsed to the estimate, as
        ``fit.estimates()``."""
        ci = _LAVAAN_CI.get(ci, ci)
        if ci not in CI_METHODS:
            raise ValueError(f"ci must be one of {CI_METHODS}, not {ci!r}")
        level = self.fit.options.get("level", 0.95) if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, not {level}")
        # the table of fit.estimates() (its point estimates; the SEs are replaced)
        table = getattr(self.fit, "_estimates_table", self.fit.estimates)(level=level)
        pt = self.fit._partable
        keep = ~pt["op"].isin(["==", "<", ">"]).to_numpy()
        rows = np.flatnonzero(keep)  # estimates() row i <- parameter-table row rows[i]
        position = {int(r): i for i, r in enumerate(rows)}
        free = np.flatnonzero(pt["free"].to_numpy() > 0)
        defined = np.flatnonzero(pt["op"].to_numpy() == ":=")
        targets = [position[int(r)] for r in np.concatenate([free, defined])]
        draws = self._matrix()
        jack = None
        if ci == "bca":
            jk = self.jackknife()
            conv = jk["converged"].to_numpy(object)
            ok = jk["error"].isna().to_numpy() & pd.notna(conv)
            ok[ok] = conv[ok].astype(bool)
            jack = jk.loc[ok, self.names].to_numpy(float)
        est = table["est"].to_numpy(float).copy()
        se = table["se"].to_numpy(float).copy()
        lower = table["ci_lower"].to_numpy(float).copy()
        upper = table["ci_upper"].to_numpy(float).copy()
        n_free = len(self._refit.rows)
        centres = np.full(len(targets), np.nan)
        if ci == "normal" and len(targets) > n_free:
            # := rows: the quantity at the mean of the drawn free parameters (lavaan's "norm")
            mean_free = np.nanmean(draws[:, :n_free], axis=0) if len(draws) else \
                np.full(n_free, np.nan)
            centres[n_free:] = self._refit.defined_at(mean_free)
        for j, i in enumerate(targets):
            col = draws[:, j]
            col = col[np.isfinite(col)]
            if len(col) < 2:
                se[i] = lower[i] = upper[i] = np.nan
                continue
            se[i] = np.std(col, ddof=1)
            lower[i], upper[i] = interval(
                col, est[i], ci, level, jackknife=jack[:, j] if jack is not None else None,
                centre=centres[j] if np.isfinite(centres[j]) else None,
                interpolation=interpolation)
        out = table.copy()
        out["se"] = se
        with np.errstate(divide="ignore", invalid="ignore"):
            z = est / se
        drawn = np.zeros(len(out), bool)
        drawn[targets] = True
        out["z"] = np.where(drawn, z, out["z"].to_numpy(float))
        out["pvalue"] = np.where(drawn, 2 * _norm_cdf(-np.abs(z)), out["pvalue"].to_numpy(float))
        out["ci_lower"] = lower
        out["ci_upper"] = upper
        out.attrs.update({"ci": ci, "level": level, "R": self.R, "n_valid": self.n_valid,
                          "kind": self.kind})
        return out

    def __repr__(self) -> str:
        return (f"<BootstrapResult {self.kind}: R={self.R}, converged={self.n_valid}, "
                f"seed={self.seed}>")


# ------------------------------------------------------------------------------ entry point
def check_bootstrap_options(R, seed, moments_input: bool = False) -> None:
    """The options of ``sem(..., se="bootstrap", bootstrap=R, iseed=seed)`` (a
    :class:`~sem_models.errors.ModelError` naming the bad one)."""
    from ..errors import ModelError
    if isinstance(R, (bool, np.bool_)) or not isinstance(R, (int, np.integer)) or R < 2:
        raise ModelError(f"bootstrap= must be a number of replicates >= 2, got {R!r}")
    if seed is not None and (isinstance(seed, (bool, np.bool_))
                             or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ModelError(f"iseed= must be a non-negative integer or None, got {seed!r}")
    if moments_input:
        raise ModelError('se="bootstrap" resamples cases: it needs the raw data, not '
                         "sample_cov")


def _cluster_ids(fit, cluster, data) -> Optional[list[np.ndarray]]:
    groups = fit.data.groups
    if cluster is False:
        return None
    if cluster is None:
        if fit.options.get("cluster") is None:
            return None
        return [np.asarray(g.cluster) for g in groups]
    if isinstance(cluster, str):
        if cluster == fit.options.get("cluster"):
            return [np.asarray(g.cluster) for g in groups]
        if data is None:
            raise ValueError(f"cluster={cluster!r} is not the fit's cluster variable: pass the "
                             "data the model was fitted to as data= to read that column")
        if cluster not in data.columns:
            from ..estimation.data import DataError
            raise DataError(f"cluster column {cluster!r} is not in the data")
        ids = data[cluster].to_numpy()
    else:
        ids = np.asarray(cluster)
    n_rows = fit.data.n_rows_input
    if len(ids) != n_rows:
        raise ValueError(f"cluster has {len(ids)} values but the fitted data have {n_rows} "
                         "rows")
    out = [ids[np.asarray(g.row_index)] for g in groups]
    for g, ids_g in zip(groups, out):
        if pd.isna(ids_g).any():
            from ..estimation.data import DataError
            raise DataError(f"cluster has missing values among the analysed rows of group "
                            f"{g.label!r}")
    return out


def _fingerprint(fit, kind, clusters, Xs) -> str:
    h = hashlib.sha256()
    h.update(repr((fit.model_syntax, sorted(_refit_options(fit).items()),
                   fit.options.get("group"), [str(lab) for lab in fit.group_labels],
                   kind)).encode())
    for X in Xs:
        h.update(np.ascontiguousarray(X).tobytes())
    for c in clusters or []:
        h.update(pd.factorize(c)[0].tobytes())
    return f"bootstrap-{kind}-{h.hexdigest()[:16]}"


def bootstrap(fit, R: int = 1000, kind: str = "ordinary", *, seed=None,
              cluster: Union[None, bool, str, Sequence] = None,
              data: Optional[pd.DataFrame] = None, executor=None,
              batch_size: Optional[int] = None, progress: bool = True,
              checkpoint=None) -> BootstrapResult:
    """Bootstrap a fitted model (lavaan's ``bootstrapLavaan``; see the module docstring).

    Parameters
    ----------
    fit
        A :class:`~sem_models.results.SEMFit`.
    R
        Number of bootstrap replicates.
    kind
        ``"ordinary"``, ``"bollen_stine"`` (complete data only) or ``"parametric"``.
    seed
        Root seed (replicate r uses ``SeedSequence(entropy=seed, spawn_key=(r,))``, so the
        draws do not depend on ``executor`` or ``batch_size``).
    cluster
        ``None``: the fit's ``cluster`` variable if it has one (whole clusters are resampled
        within groups), else cases; ``False``: cases; a column name (of ``data`` unless it is the
        fit's cluster variable) or one cluster id per row of the fitted data.
    executor, batch_size, progress, checkpoint
        As :func:`~sem_models.resampling.run_replications`.

    Each replicate is refitted with the model's syntax and options (ML point estimates,
    started from the original estimates); failed or non-converged replicates stay in
    ``draws`` and are left out of the summaries.  Complete-data ML fits (single- or
    multi-group, linear equality constraints, no bounds) are refitted a chunk of replicates
    at a time by the vectorised kernel of :mod:`.batched` (same estimates to the optimizer's
    tolerance, bitwise the same draws for every executor and batch size); replicates it does
    not finish, and all other fits, go through :class:`~.refit.Refitter` one by one.
    """
    if kind not in BOOTSTRAP_KINDS:
        raise ValueError(f"kind must be one of {BOOTSTRAP_KINDS}, not {kind!r}")
    R = int(R)
    if R < 1:
        raise ValueError(f"R must be a positive number of replicates, not {R}")
    _check_resamplable(fit)
    Xs = [np.asarray(g.X, float) for g in fit.data.groups]
    clusters = _cluster_ids(fit, cluster, data)
    if clusters is not None and kind == "parametric":
        raise ValueError("cluster= resamples observed clusters; it cannot be combined with "
                         "kind='parametric'")
    missing = any(np.isnan(X).any() for X in Xs)
    implied = fit.implied()
    keys = list(implied)
    moments = [(implied[k]["mean"].to_numpy(float), implied[k]["cov"].to_numpy(float))
               for k in keys]
    if kind == "bollen_stine":
        if missing:
            raise ValueError("the Bollen-Stine bootstrap needs complete data (lavaan's "
                             "restriction); use kind='ordinary' or 'parametric' with missing "
                             "values")
        # without a mean structure the transformed data are centred (as lavaan's)
        Xs = [bollen_stine_transform(X, cov, mean if fit.model.meanstructure else 0.0 * mean)
              for X, (mean, cov) in zip(Xs, moments)]
    refit = _Refit(fit, Xs)
    chol = None
    if kind == "parametric":
        chol = [(mean, np.linalg.cholesky(cov)) for mean, cov in moments]
    sampler = _Sampler(kind, Xs, clusters, chol)
    task = _BootTask(refit, sampler)
    draws = run_replications(task, R, seed=seed, executor=executor, batch_size=batch_size,
                             progress=progress, checkpoint=checkpoint,
                             fingerprint=_fingerprint(fit, kind, clusters, Xs),
                             desc=f"bootstrap ({kind})")
    # the jackknife (BCa) leaves out the original cases or clusters, never transformed ones
    original = [np.asarray(g.X, float) for g in fit.data.groups]
    jack_refit = _Refit(fit, original)
    result = BootstrapResult(fit, draws, kind, draws.attrs["seed"], refit.names, jack_refit,
                             _jackknife_units(original, clusters), executor, progress)
    n_bad = R - result.n_valid
    if n_bad:
        warnings.warn(f"{n_bad} of {R} bootstrap replicates failed or did not converge; they "
                      "are left out of the bootstrap summaries", RuntimeWarning, stacklevel=2)
    return result
