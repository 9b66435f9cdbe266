"""Outcome models: regressions of follow-up outcomes on (trait) factors, baseline and covariates.

A measurement model (lavaan syntax, e.g. from :func:`measurement.trait_model`) is extended by

    ext_fu ~ b*t_bond + b*t_task + ext_pre + covariates

for each outcome, fitted in one group or by group (e.g. treatment format) with any of the
engine's options (``estimator="MLR"``, ``missing="fiml"``, ``cluster="school"``). Every path
of an outcome on a predictor carries a label (one per group), so that format moderation can be
tested path by path, by a Wald test of equal labelled paths (``lavTestWald``) and by a
likelihood-ratio test of the model with that path constrained equal across groups against the
free model (``lavTestLRT``, scaled for robust estimators).

lavaan does not correlate exogenous latent variables with exogenous observed covariates
(``auto.cov.lv.x`` covers latent variables only), which would force the factors to be
uncorrelated with the baseline; :func:`outcome_syntax` therefore adds ``factor ~~ covariate``
for each latent predictor and covariate (``correlate=True``) and :func:`fit_outcomes` fits with
``fixed_x=False`` so that the covariates' variances and means are model parameters (also
needed for FIML).

Nothing here prints; warnings use :mod:`warnings`.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from ..model.syntax import parse_model

__all__ = ["FewClustersWarning", "path_label", "wald_equal", "outcome_syntax", "OutcomeFit", "fit_outcomes",
           "MIN_CLUSTERS"]

#: Fewer clusters than this get a :class:`FewClustersWarning` (cluster-robust standard errors
#: are biased downwards with few clusters; 30-50 is the usual minimum, e.g. McNeish 2017).
MIN_CLUSTERS = 30


class FewClustersWarning(UserWarning):
    """Cluster-robust standard errors with few clusters are unreliable."""


def _suffix(group: Any) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", str(group))
    return s if re.match(r"^[A-Za-z]", s) else f"g{s}"


def path_label(outcome: str, predictor: str, group: Any = None) -> str:
    """Label of the path ``outcome ~ predictor`` (in ``group``): ``b_{outcome}_{predictor}[_{group}]``."""
    lab = re.sub(r"[^0-9A-Za-z_]", "_", f"b_{outcome}_{predictor}")
    return lab if group is None else f"{lab}_{_suffix(group)}"


def wald_equal(fit: Any, equalities: Sequence[tuple[str, str]]) -> pd.Series:
    """Wald test of linear equalities ``label_a == label_b`` between labelled free parameters.

    The same statistic as ``fit.wald("a == b; ...")`` (lavaan's ``lavTestWald``) for linear
    constraints, computed directly from ``fit.vcov()``: ``d = L theta``,
    ``stat = d' (L V L')^+ d`` with ``df = rank(L V L')``.
    """
    from ..inference.distributions import chi2_pvalue  # no scipy.stats import

    V = fit.vcov()
    vals = fit.label_values()
    names = list(V.index)
    L = np.zeros((len(equalities), len(names)))
    d = np.zeros(len(equalities))
    for k, (a, b) in enumerate(equalities):
        for lab, sign in ((a, 1.0), (b, -1.0)):
            if lab not in names:
                raise ValueError(f"label {lab!r} is not a free parameter of the fit")
            L[k, names.index(lab)] += sign
        d[k] = float(vals[a]) - float(vals[b])
    S = L @ V.to_numpy() @ L.T
    rank = int(np.linalg.matrix_rank(S, tol=1e-10 * max(1.0, np.abs(S).max())))
    stat = float(d @ np.linalg.pinv(S, rcond=1e-10) @ d)
    return pd.Series({"stat": stat, "df": rank,
                      "pvalue": chi2_pvalue(stat, rank)})


def _as_outcome_map(outcomes: Union[str, Sequence[str], Mapping[str, Sequence[str]]],
                    baseline: Optional[Mapping[str, Union[str, Sequence[str]]]]
                    ) -> dict[str, list[str]]:
    if isinstance(outcomes, str):
        outcomes = [outcomes]
    if isinstance(outcomes, Mapping):
        out = {k: ([v] if isinstance(v, str) else list(v)) for k, v in outcomes.items()}
    else:
        out = {k: [] for k in outcomes}
    for k, v in (baseline or {}).items():
        if k not in out:
            raise ValueError(f"baseline given for {k!r}, which is not an outcome {list(out)}")
        out[k] += [v] if isinstance(v, str) else list(v)
    if not out:
        raise ValueError("no outcomes given")
    return out


def outcome_syntax(measurement: str, outcomes: Union[str, Sequence[str], Mapping[str, Sequence[str]]],
                   predictors: Sequence[str], *, baseline: Optional[Mapping[str, Any]] = None,
                   covariates: Sequence[str] = (), group_labels: Optional[Sequence[Any]] = None,
                   equal: Union[bool, Sequence[tuple[str, str]]] = False,
                   correlate: bool = True, residual_covariances: bool = True) -> str:
    """lavaan syntax: the measurement model plus one regression per outcome.

    Parameters
    ----------
    measurement
        lavaan syntax of the measurement model (may be empty for observed predictors).
    outcomes
        Outcome names, or ``{outcome: [its own baseline / covariates]}`` (e.g.
        ``{"ext_fu": ["ext_pre"], "int_fu": ["int_pre"]}``).
    predictors
        Predictors of every outcome (factors of the measurement model or observed columns);
        each path is labelled by :func:`path_label`, per group if ``group_labels`` is given
        (``c(b_ext_fu_t_bond_group, b_ext_fu_t_bond_individual)*t_bond``).
    baseline
        ``{outcome: column(s)}``, added to that outcome's own covariates.
    covariates
        Covariates of every outcome (unlabelled).
    group_labels
        Group labels in the engine's order (``None``: one group).
    equal
        ``True``: every labelled path equal across groups (one label); or a list of
        ``(outcome, predictor)`` pairs constrained equal with ``==`` statements.
    correlate
        Add ``factor ~~ covariate`` for every latent predictor and covariate (lavaan leaves
        them uncorrelated otherwise).
    residual_covariances
        Correlate the residuals of the outcomes (lavaan's ``sem()`` does this by default for
        observed outcomes; written out here for clarity).
    """
    omap = _as_outcome_map(outcomes, baseline)
    predictors = list(predictors)
    if not predictors:
        raise ValueError("no predictors given")
    latent: set[str] = set()
    if measurement.strip():
        for st in parse_model(measurement).statements:
            if st.op == "=~":
                latent.add(st.lhs)
    groups = list(group_labels) if group_labels is not None else None
    pairs = [] if equal is True or equal is False else [tuple(p) for p in equal]
    lines = [measurement.rstrip(), "", "# outcome regressions"]
    all_cov: list[str] = []
    for y, own in omap.items():
        terms = []
        for p in predictors:
            if groups is None or equal is True:
                terms.append(f"{path_label(y, p)}*{p}")
            else:
                labs = ", ".join(path_label(y, p, g) for g in groups)
                terms.append(f"c({labs})*{p}")
        cov = list(dict.fromkeys(own + list(covariates)))
        all_cov += [c for c in cov if c not in all_cov]
        lines.append(f"{y} ~ " + " + ".join(terms + cov))
    if pairs:
        if groups is None or len(groups) < 2:
            raise ValueError("equal=[...] needs two or more groups")
        lines += ["", "# paths constrained equal across groups"]
        for y, p in pairs:
            if y not in omap or p not in predictors:
                raise ValueError(f"({y!r}, {p!r}) is not an outcome-predictor path")
            first = path_label(y, p, groups[0])
            lines += [f"{first} == {path_label(y, p, g)}" for g in groups[1:]]
    lat_pred = [p for p in predictors if p in latent]
    if correlate and lat_pred and all_cov:
        lines += ["", "# latent predictors correlated with the observed covariates"]
        lines += [f"{p} ~~ " + " + ".join(all_cov) for p in lat_pred]
    if correlate and lat_pred and len(all_cov) > 1:
        # written out: lavaan drops the covariances of exogenous covariates that are
        # correlated with latent variables unless they are given explicitly
        lines += ["", "# covariances of the observed covariates"]
        lines += [f"{all_cov[a]} ~~ " + " + ".join(all_cov[a + 1:])
                  for a in range(len(all_cov) - 1)]
    ys = list(omap)
    if residual_covariances and len(ys) > 1:
        lines += ["", "# residual covariances of the outcomes"]
        for a in range(len(ys)):
            for b in range(a + 1, len(ys)):
                lines.append(f"{ys[a]} ~~ {ys[b]}")
    return "\n".join(lines) + "\n"


@dataclass
class OutcomeFit:
    """A fitted outcome model (see :func:`fit_outcomes`).

    Attributes: ``fit`` (the :class:`~sem_models.results.SEMFit`), ``syntax``, ``outcomes``
    (``{outcome: covariates}``), ``predictors``, ``group_labels`` (``None`` for one group),
    ``options`` (the engine options, for refits).
    """

    fit: Any
    syntax: str
    outcomes: dict
    predictors: list
    group_labels: Optional[list]
    options: dict
    spec: dict = field(repr=False, default_factory=dict)
    _data: Any = field(repr=False, default=None)

    def paths(self, standardized: bool = True) -> pd.DataFrame:
        """Regression rows of the outcomes (est, se, z, pvalue, CI; ``std_all`` and its SE).

        ``std_all`` is the fully standardized effect; for a trait predictor it is the change in
        outcome SDs per SD of the trait.
        """
        est = self.fit.estimates()
        rows = est[(est["op"] == "~") & est["lhs"].isin(list(self.outcomes))].copy()
        if standardized:
            try:
                std = self.fit.standardized()
            except Exception as exc:  # noqa: BLE001 - keep the unstandardized table
                warnings.warn(f"standardized solution failed ({exc}); std columns omitted",
                              RuntimeWarning, stacklevel=2)
            else:
                keep = [c for c in ("std_all", "se_std_all") if c in std.columns]
                key = ["lhs", "op", "rhs"] + (["group"] if "group" in rows.columns else [])
                rows = rows.merge(std[key + keep], on=key, how="left")
        rows["predictor_type"] = np.where(rows["rhs"].isin(self.predictors), "predictor",
                                          "covariate")
        return rows.reset_index(drop=True)

    def moderation(self, paths: Optional[Sequence[tuple[str, str]]] = None,
                   lr: bool = True, joint: bool = True) -> pd.DataFrame:
        """Tests of format (group) moderation of each outcome-predictor path.

        For each ``(outcome, predictor)`` (default: all): the Wald test that the path is equal
        in all groups (``lavTestWald``) and, with ``lr=True``, the likelihood-ratio test of the
        model with that path constrained equal against the free model (``lavTestLRT``; scaled
        for robust estimators). ``joint=True`` adds a row ``("all", "all")`` testing all
        paths at once. Columns: ``outcome, predictor, wald_stat, wald_df, wald_pvalue,
        lr_chisq, lr_df, lr_pvalue``.
        """
        if not self.group_labels or len(self.group_labels) < 2:
            raise ValueError("moderation tests need a multi-group fit (group=...)")
        if paths is None:
            paths = [(y, p) for y in self.outcomes for p in self.predictors]
        paths = [tuple(p) for p in paths]
        todo = list(paths) + ([("all", "all")] if joint and len(paths) > 1 else [])
        out = []
        for y, p in todo:
            pp = paths if (y, p) == ("all", "all") else [(y, p)]
            cons = []
            for yy, pr in pp:
                first = path_label(yy, pr, self.group_labels[0])
                cons += [(first, path_label(yy, pr, g)) for g in self.group_labels[1:]]
            w = wald_equal(self.fit, cons)
            row = {"outcome": y, "predictor": p, "wald_stat": float(w["stat"]),
                   "wald_df": int(w["df"]), "wald_pvalue": float(w["pvalue"])}
            if lr:
                con = self.refit(equal=pp)
                from ..inference.lrt import compare
                tab = compare(free=self.fit, constrained=con.fit)
                last = tab.iloc[-1]
                row.update({"lr_chisq": float(last["chisq_diff"]), "lr_df": int(last["df_diff"]),
                            "lr_pvalue": float(last["pvalue"])})
            out.append(row)
        return pd.DataFrame(out)

    def refit(self, data: Optional[pd.DataFrame] = None, **changes) -> "OutcomeFit":
        """Fit again with changed builder arguments (e.g. ``equal=[...]``) or options."""
        spec = dict(self.spec)
        opts = dict(self.options)
        for k, v in changes.items():
            (spec if k in spec or k in ("equal", "correlate", "residual_covariances")
             else opts)[k] = v
        return fit_outcomes(data=self._data if data is None else data, **spec, **opts)

    def summary(self) -> str:
        """Text summary: the fit's summary and the outcome paths."""
        tab = self.paths()
        cols = [c for c in ("lhs", "rhs", "group", "est", "se", "pvalue", "std_all")
                if c in tab.columns]
        return self.fit.summary() + "\n\nOutcome paths\n" + tab[cols].to_string(index=False)


def _group_order(data: pd.DataFrame, group: str, group_labels: Optional[Sequence]) -> list:
    if group_labels is not None:
        return list(group_labels)
    # the engine (like lavaan) orders groups by first appearance
    return list(pd.unique(data[group].dropna()))


def fit_outcomes(measurement: str, data: pd.DataFrame,
                 outcomes: Union[str, Sequence[str], Mapping[str, Sequence[str]]],
                 predictors: Sequence[str], *, baseline: Optional[Mapping[str, Any]] = None,
                 covariates: Sequence[str] = (), group: Optional[str] = None,
                 equal: Union[bool, Sequence[tuple[str, str]]] = False, correlate: bool = True,
                 residual_covariances: bool = True, estimator: str = "ML",
                 missing: str = "listwise", cluster: Optional[str] = None,
                 group_labels: Optional[Sequence] = None, **options) -> OutcomeFit:
    """Build (:func:`outcome_syntax`) and fit an outcome model; returns an :class:`OutcomeFit`.

    ``group`` fits by group with group-specific labelled paths; ``estimator``, ``missing`` and
    ``cluster`` are passed to :func:`sem_models.sem` (``fixed_x=False`` unless given). With
    ``cluster`` and fewer than :data:`MIN_CLUSTERS` clusters a :class:`FewClustersWarning`
    is issued.
    """
    from ..api import sem

    labels = _group_order(data, group, group_labels) if group else None
    syntax = outcome_syntax(measurement, outcomes, predictors, baseline=baseline,
                            covariates=covariates, group_labels=labels, equal=equal,
                            correlate=correlate, residual_covariances=residual_covariances)
    if cluster is not None:
        n_cl = int(data[cluster].nunique())
        if n_cl < MIN_CLUSTERS:
            warnings.warn(
                f"only {n_cl} clusters in {cluster!r}: cluster-robust standard errors are "
                f"biased downwards with fewer than about {MIN_CLUSTERS}-50 clusters; interpret "
                "them with caution (consider a small-sample correction or a multilevel model)",
                FewClustersWarning, stacklevel=2)
    options.setdefault("fixed_x", False)
    fit = sem(syntax, data, group=group, estimator=estimator, missing=missing, cluster=cluster,
              group_labels=labels, **options)
    spec = dict(measurement=measurement, outcomes=outcomes, predictors=list(predictors),
                baseline=baseline, covariates=list(covariates), group=group, equal=equal,
                correlate=correlate, residual_covariances=residual_covariances,
                group_labels=labels)
    opts = dict(estimator=estimator, missing=missing, cluster=cluster, **options)
    return OutcomeFit(fit=fit, syntax=syntax, outcomes=_as_outcome_map(outcomes, baseline),
                      predictors=list(predictors), group_labels=labels, options=opts, spec=spec,
                      _data=data)
