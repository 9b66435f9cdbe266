"""Permutation tests of measurement invariance across groups (Jorgensen, Kite, Chen & Short
2018; semTools' ``permuteMeasEq``).

Under the null hypothesis that the groups do not differ in the constrained parameters, the
group labels are exchangeable: shuffling them over the cases and refitting both models gives
the distribution of the change in fit (delta chi-square, delta CFI, delta RMSEA, ...) that
constraining the parameters produces when only sampling error is at work.  The p-value of an
observed change is the share of permutations with a change at least as bad: larger for
badness-of-fit indices (chi-square, RMSEA, SRMR, AIC, BIC), smaller for goodness-of-fit
indices (CFI, TLI) -- semTools' rule, with non-converged permutations left out.  For the
first (configural) model the test of the indices themselves is the permutation test of
configural invariance of Jorgensen et al. (2018).

Every permutation refits all models of the comparison (with warm starts, through
:class:`sem_models.resampling.refit.Refitter`) on the execution layer of
:func:`sem_models.resampling.run_replications`: permutation ``r`` is drawn from its own random
stream, so the result does not depend on the executor; a permutation whose models do not all
converge is replaced by the next permutation of its stream (semTools: ``maxNonconv``).

Reference: Jorgensen, T. D., Kite, B. A., Chen, P.-Y., & Short, S. D. (2018). Permutation
randomization methods for testing measurement equivalence and detecting differential item
functioning in multiple-group confirmatory factor analysis. Psychological Methods 23(4),
708-728.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["permutation_test", "PermutationResult", "DEFAULT_INDICES", "is_badness"]

#: fit indices tested by default
DEFAULT_INDICES = ("chisq", "cfi", "tli", "rmsea", "srmr")
_BADNESS = re.compile(r"fmin|chi|aic|bic|rmr|rmsea|cn|sic|hqc", re.IGNORECASE)


def is_badness(index: str) -> bool:
    """Whether larger values of a fit index mean worse fit (semTools' list: fmin, chi-square,
    AIC, BIC, (S)RMR, RMSEA, CN, SIC, HQC)."""
    return bool(_BADNESS.search(index))


def permute_codes(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One permutation of the group codes of the cases."""
    return rng.permutation(codes)


class _PermutationTask:
    """Permutation r: shuffle the group labels, refit every model, record their indices."""

    def __init__(self, refitters: list, X: np.ndarray, codes: np.ndarray, n_groups: int,
                 names: list[str], indices: list[str], max_nonconverged: int):
        self.refitters = refitters
        self.X = X
        self.codes = codes
        self.n_groups = n_groups
        self.names = names
        self.indices = indices
        self.max_nonconverged = max_nonconverged

    def __call__(self, rng: np.random.Generator, r: int) -> dict:
        attempts = 0
        while True:
            attempts += 1
            perm = permute_codes(self.codes, rng)
            Xs = [self.X[perm == g] for g in range(self.n_groups)]
            fits = []
            ok = True
            for refitter in self.refitters:
                try:
                    fit = refitter.fit(Xs)
                except Exception:  # noqa: BLE001 - as non-convergence: draw another permutation
                    ok = False
                    break
                if not fit.converged:
                    ok = False
                    break
                fits.append(fit)
            if ok or attempts > self.max_nonconverged:
                break
        out: dict = {"attempts": attempts, "converged": ok}
        if not ok:
            return out
        for name, fit in zip(self.names, fits):
            m = fit.measures()
            for idx in self.indices:
                out[f"{name}|{idx}"] = float(m[idx]) if idx in m.index else np.nan
        return out


@dataclass
class PermutationResult:
    """Result of :func:`permutation_test`.

    ``table``: one row per comparison (``model`` against ``compared_with``; the first model
    alone: its own indices) and index with the ``observed`` change, the ``p_value`` and the
    number of permutations ``used``; ``distribution``: one row per permutation with every
    model's indices (``model|index``), ``attempts`` and ``converged``; ``observed``: the
    models' indices on the data.
    """

    table: pd.DataFrame
    distribution: pd.DataFrame = field(repr=False)
    observed: pd.DataFrame = field(repr=False)
    names: list = field(default_factory=list)
    indices: list = field(default_factory=list)

    def deltas(self, model: str) -> pd.DataFrame:
        """The permutation distribution of the change in each index from the model before
        ``model`` to ``model`` (its own indices for the first model)."""
        k = self.names.index(model)
        ok = self.distribution["converged"].to_numpy(bool) \
            if "converged" in self.distribution else np.ones(len(self.distribution), bool)
        out = {}
        for idx in self.indices:
            cur = self.distribution.get(f"{model}|{idx}")
            cur = np.full(len(ok), np.nan) if cur is None else cur.to_numpy(float)
            if k > 0:
                prev = self.distribution.get(f"{self.names[k - 1]}|{idx}")
                prev = np.full(len(ok), np.nan) if prev is None else prev.to_numpy(float)
                cur = cur - prev
            out[idx] = np.where(ok, cur, np.nan)
        return pd.DataFrame(out, index=self.distribution.index)

    def pivot(self) -> pd.DataFrame:
        """p-values as a models x indices table."""
        return self.table.pivot(index="model", columns="index", values="p_value").loc[
            self.names, self.indices]


def _models(models) -> tuple[list[str], list]:
    from sem_models.results import SEMFit
    if hasattr(models, "fits") and hasattr(models, "levels"):  # an InvarianceSequence
        if models.group is None:
            raise ValueError("a permutation test permutes group labels: this invariance "
                             "sequence has no groups (longitudinal); permute occasions is not "
                             "supported")
        names = [lv for lv in models.levels if lv in models.fits]
        return names, [models.fits[lv] for lv in names]
    if isinstance(models, SEMFit):
        return ["model1"], [models]
    if isinstance(models, Mapping):
        return [str(k) for k in models], list(models.values())
    fits = list(models)
    if not fits or not all(isinstance(f, SEMFit) for f in fits):
        raise TypeError("permutation_test takes an invariance sequence, a fitted model, or a "
                        "list / tuple / dict of fitted models (least constrained first)")
    return [f"model{k + 1}" for k in range(len(fits))], fits


def _pooled_data(fits: list) -> tuple[np.ndarray, np.ndarray]:
    """The cases of all groups stacked, and their group codes (the same for every model)."""
    first = fits[0]
    if first.n_groups < 2:
        raise ValueError("a permutation test of invariance needs a multi-group model (group=)")
    for f in fits[1:]:
        same = (f.group_labels == first.group_labels
                and list(f.data.ov_names) == list(first.data.ov_names)
                and all(np.array_equal(a.X, b.X, equal_nan=True)
                        for a, b in zip(f.data.groups, first.data.groups)))
        if not same:
            raise ValueError("the models must be fitted to the same data, variables and groups")
    if any(getattr(g, "X", None) is None for g in first.data.groups):
        raise ValueError("a permutation test needs the raw data: the models were fitted to "
                         "sample moments")
    X = np.vstack([g.X for g in first.data.groups])
    codes = np.repeat(np.arange(first.n_groups), [g.X.shape[0] for g in first.data.groups])
    return X, codes


def permutation_test(models, reps: int = 1000, *, seed=None,
                     indices: Sequence[str] = DEFAULT_INDICES, executor=None,
                     batch_size: Optional[int] = None, progress: bool = True,
                     checkpoint=None, max_nonconverged: int = 10) -> PermutationResult:
    """Permutation p-values for the changes in fit between nested multi-group models
    (Jorgensen et al. 2018; semTools' ``permuteMeasEq``; see the module docstring).

    Parameters
    ----------
    models
        An :class:`~invariance.InvarianceSequence` (its cumulative levels, e.g. configural,
        metric, scalar, strict; partial models are not used), a pair ``(fit0, fit1)`` of
        multi-group fits of the same data (less constrained first; semTools' ``uncon`` and
        ``con``), a longer list or a dict name -> fit, or one fit (the test of its own
        indices: configural invariance).
    reps
        Number of permutations.
    seed, executor, batch_size, progress, checkpoint
        As :func:`sem_models.resampling.run_replications`.
    indices
        Names of :meth:`~sem_models.SEMFit.measures` (e.g. ``"chisq"``, ``"cfi"``,
        ``"rmsea"``, ``"srmr"``, ``"aic"``, ``"bic"``, ``"cfi_robust"``).
    max_nonconverged
        Further permutations tried per replication when a model does not converge.

    Returns a :class:`PermutationResult`: observed change (model minus the model before it)
    and p-value per comparison and index.
    """
    from sem_models.resampling import run_replications
    from sem_models.resampling.refit import Refitter

    reps = int(reps)
    if reps < 1:
        raise ValueError(f"reps must be a positive number of permutations, not {reps}")
    indices = [indices] if isinstance(indices, str) else list(indices)
    if not indices:
        raise ValueError("give at least one fit index")
    names, fits = _models(models)
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique: {names}")
    observed_m = [f.measures() for f in fits]
    unknown = [idx for idx in indices if idx not in observed_m[0].index]
    if unknown:
        raise ValueError(f"unknown fit index(es) {unknown}; available: "
                         f"{', '.join(observed_m[0].index)}")
    if any(f.options.get("cluster") is not None for f in fits):
        raise ValueError("the models have cluster-robust inference (cluster=): permuting the "
                         "group labels of single cases ignores the clusters; fit the models "
                         "without cluster= (or permute whole clusters: not supported)")
    X, codes = _pooled_data(fits)
    refitters = [Refitter(f, inference=True) for f in fits]
    task = _PermutationTask(refitters, X, codes, fits[0].n_groups, names, indices,
                            int(max_nonconverged))
    dist = run_replications(task, reps, seed=seed, executor=executor, batch_size=batch_size,
                            progress=progress, checkpoint=checkpoint,
                            desc="permutations")
    if "converged" in dist:
        conv = dist["converged"].to_numpy(object)
        dist["converged"] = pd.notna(conv) & (conv == True)  # noqa: E712 - object column
    else:
        dist["converged"] = False
    observed = pd.DataFrame([[float(m[idx]) for idx in indices] for m in observed_m],
                            index=pd.Index(names, name="model"), columns=indices)
    result = PermutationResult(pd.DataFrame(), dist, observed, names, indices)
    rows = []
    for k, name in enumerate(names):
        perm = result.deltas(name)
        for idx in indices:
            obs = observed.loc[name, idx] - (observed.loc[names[k - 1], idx] if k else 0.0)
            values = perm[idx].to_numpy(float)
            values = values[np.isfinite(values)]
            if len(values) and np.isfinite(obs):
                p = float(np.mean(values >= obs) if is_badness(idx) else np.mean(values <= obs))
            else:
                p = np.nan
            rows.append({"model": name, "compared_with": names[k - 1] if k else "",
                         "index": idx, "observed": obs, "p_value": p, "used": len(values)})
    result.table = pd.DataFrame(rows)
    result.table.attrs.update({"reps": reps, "seed": dist.attrs.get("seed")})
    return result
