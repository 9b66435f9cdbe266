"""Inference for two-level ML fits: observed information, cluster-robust (MLR) standard errors
and the Yuan-Bentler scaled test, the two-level baseline model.

* Standard errors (lavaan's default for two-level ML, ``information = "observed"``): the
  inverse of the observed information ``N H(z)``, ``H`` the Hessian of the fitting function
  ``f(z) = -(logL + c) / N``: in closed form for complete data
  (:mod:`~sem_models.estimation.twolevel_hessian`), by central differences of the analytic
  gradient with missing values (lavaan's ``lav_model_hessian`` differentiates the analytic
  gradient numerically in both cases; the two agree to the differences' truncation error).
* MLR (``se = "robust.huber.white"``): ``V = A^-1 B A^-1`` with ``A = N H`` and ``B`` the sum
  over clusters of the outer products of the clusterwise scores (Huber 1967, White 1982;
  for two-level models Yuan & Bentler 2002, Muthen & Satorra 1995), the scores chained from
  moment coordinates (:func:`~sem_models.estimation.twolevel.twolevel_scores` with
  ``lavaan_compat=True``, as lavaan 0.6-14) through the model Jacobian.
* Yuan-Bentler test (``yuan.bentler.mplus``; Yuan & Bentler 2000, Asparouhov & Muthen 2005):
  ``c = (tr(A1^-1 B1) - tr(A0^-1 B0)) / df``, the h1 traces over the free coordinates of the
  saturated two-level model (without the fixed.x blocks) with both matrices evaluated at the
  saturated estimates (what lavaan 0.6-14 does for two-level data, whatever
  ``h1.information``), the h0 traces in the model parameters; ``chisq_scaled = chisq / c``.
  The baseline's scaling factor likewise, with the baseline model's traces in its free
  moment coordinates.
"""
from __future__ import annotations

import numpy as np

from ..estimation.twolevel import (TwoLevelData, TwoLevelMoments, _vech_idx, twolevel_information_observed, twolevel_scores)
from ..estimation.twolevel_fit import (saturated_free)
from ..estimation.twolevel_hessian import twolevel_hessian

__all__ = ["objective_hessian", "numerical_hessian", "cluster_scores_z", "robust_vcov_z",
           "h1_free_mask", "yb_traces_h1", "moment_model_trace"]


def objective_hessian(problem, z: np.ndarray, central: bool = False,
                      analytic: bool = True) -> np.ndarray:
    """Hessian of the fitting function in z: the analytic one where every group's loss has it
    (complete data: :class:`~sem_models.estimation.twolevel_loss.TwoLevelHessianLoss`) and
    ``analytic``, else :func:`numerical_hessian` (``central`` applies to that one)."""
    if analytic:
        from ..estimation.optimizer import observed_hessian
        H = observed_hessian(problem, z)
        if H is not None and np.all(np.isfinite(H)):
            return (H + H.T) / 2
    return numerical_hessian(problem, z, central)


def numerical_hessian(problem, z: np.ndarray, central: bool = False) -> np.ndarray:
    """Hessian of the fitting function in z by differences of the analytic gradient,
    symmetrised: forward differences with step ``1e-6 max(1, |z_k|)`` (error about 1e-6
    relative), or central ones with step ``1e-5 max(1, |z_k|)`` (error about 1e-10 relative:
    what two-level fits use, whose Hessian can be ill-conditioned -- condition numbers of
    1e7 and more with between variances near 0 -- so that forward-difference errors show in
    the standard errors).  A step that leaves the region where the implied covariances are
    positive definite is replaced by the one-sided difference on the other side."""
    z = np.asarray(z, float)
    q = len(z)
    H = np.zeros((q, q))
    g0 = None if central else problem.derivatives(z, info=False)[1]
    for k in range(q):
        step = (1e-5 if central else 1e-6) * max(1.0, abs(z[k]))
        zp = z.copy()
        zp[k] += step
        gp = problem.derivatives(zp, info=False)[1]
        if central:
            zm = z.copy()
            zm[k] -= step
            gm = problem.derivatives(zm, info=False)[1]
            if np.all(np.isfinite(gp)) and np.all(np.isfinite(gm)):
                H[:, k] = (gp - gm) / (2 * step)
            else:   # one side left the domain: the one-sided difference of the other
                if g0 is None:
                    g0 = problem.derivatives(z, info=False)[1]
                H[:, k] = (gp - g0) / step if np.all(np.isfinite(gp)) else (g0 - gm) / step
        else:
            if not np.all(np.isfinite(gp)):
                # the forward step left the domain (an estimate at the edge of the region
                # where the implied covariances are positive definite): step backwards
                zp[k] = z[k] - step
                gp = -problem.derivatives(zp, info=False)[1] + 2 * g0
            H[:, k] = (gp - g0) / step
    return (H + H.T) / 2


def cluster_scores_z(problem, values: np.ndarray) -> list:
    """Per group, the clusterwise scores of the log-likelihood in z (``J_g x n_z``)."""
    model = problem.model
    n_free = len(problem.pmap.free_rows)
    T = problem.pmap.T
    out = []
    for g, loss in enumerate(problem.losses):
        mom = model.moments(values, g)
        cells = problem._cells[g]
        delta = model.delta(g, mom, cells)
        S_mom = twolevel_scores(loss.data, mom.tl, lavaan_compat=True)
        S = np.zeros((S_mom.shape[0], n_free))
        S[:, problem._positions[g]] += S_mom @ delta
        out.append(S @ T)
    return out


def robust_vcov_z(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A^-1 B A^-1`` (A the total observed information, B the score cross-products)."""
    Ainv = np.linalg.inv(A)
    return Ainv @ B @ Ainv


def h1_free_mask(data: TwoLevelData, exo_within=(), exo_between=()) -> np.ndarray:
    """Free coordinates of the saturated model without the fixed.x blocks (covariances and
    means of the exogenous covariates of each level)."""
    free = saturated_free(data).copy()
    lay = data.layout
    x1 = np.isin(data.level1_names, list(exo_within))
    x2 = np.isin(data.level2_names, list(exo_between))
    r, c = _vech_idx(data.p1)
    free[lay.sigma_w.start + np.flatnonzero(x1[r] & x1[c])] = False
    free[lay.mu_w.start + np.flatnonzero(x1)] = False
    r, c = _vech_idx(data.p2)
    free[lay.sigma_b.start + np.flatnonzero(x2[r] & x2[c])] = False
    free[lay.mu_b.start + np.flatnonzero(x2)] = False
    return free


def moment_model_trace(data: TwoLevelData, m: TwoLevelMoments, free: np.ndarray,
                       information: str = "observed") -> float:
    """``tr(A^-1 B)`` of a model whose parameters are the ``free`` moment coordinates (the
    saturated or the baseline model), A the observed (or expected) information and B the
    clusterwise score cross-products, both at the moments ``m``."""
    if information == "observed":
        A = (twolevel_information_observed(data, m) if data.has_missing
             else twolevel_hessian(data, m))[np.ix_(free, free)]
    else:
        from ..estimation.twolevel_loss import expected_information_sizes
        A = expected_information_sizes(data, m)[np.ix_(free, free)]
    S = twolevel_scores(data, m, lavaan_compat=True)[:, free]
    B = S.T @ S
    return float(np.trace(np.linalg.solve(A, B)))


def yb_traces_h1(fit, moments: list, information: str = "observed") -> tuple[float, int]:
    """Sum over groups of the h1 traces at the given level moments, and the number of h1
    coordinates (without fixed.x blocks)."""
    tr, n = 0.0, 0
    for d, m, (x1, x2) in zip(fit.datasets, moments, fit._exo_names):
        free = h1_free_mask(d, x1, x2)
        tr += moment_model_trace(d, m, free, information)
        n += int(free.sum())
    return tr, n


def _cor_srmr(S: np.ndarray, Sigma: np.ndarray) -> float:
    """Root mean square over the non-duplicated elements (diagonal included, where the
    residual is 0) of the correlation residuals ``cor(S) - cor(Sigma)``; NaN when a variance
    is not positive (a correlation is then not defined)."""
    dS, dM = np.diag(S), np.diag(Sigma)
    if not (np.all(dS > 0) and np.all(dM > 0)):
        return float("nan")
    ds, dm = np.sqrt(dS), np.sqrt(dM)
    R = S / np.outer(ds, ds) - Sigma / np.outer(dm, dm)
    np.fill_diagonal(R, 0.0)
    r, c = np.tril_indices(len(S))
    return float(np.sqrt(np.mean(R[r, c] ** 2)))


def _force_pd(S: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Eigenvalues below ``tol`` times |largest eigenvalue| raised to that floor,
    as lavaan does for the implied between matrix of its SRMR (``lav_matrix_symmetric_
    force_pd``): a model with negative between variances has an indefinite ``Sigma_B``."""
    if S.shape[0] == 1:
        return np.maximum(S, tol)
    w, U = np.linalg.eigh((S + S.T) / 2)
    top = abs(float(w.max())) if w.size else 0.0
    if top == 0.0:
        return S
    w = np.where(w / top < tol, tol * top, w)
    return (U * w) @ U.T


def level_srmr(data: TwoLevelData, h1: TwoLevelMoments, implied: TwoLevelMoments
               ) -> tuple[float, float]:
    """SRMR of the within and the between level as lavaan reports them for two-level models
    (``srmr_within``, ``srmr_between``): per level, the root mean square of the residual
    correlations (saturated minus implied; the zero diagonal counted, means not), i.e. the
    correlation-metric SRMR of Bentler (1995) per level (Hsu, Kwok, Lin & Acosta 2015 on
    level-specific SRMR).  As lavaan, the implied between matrix is first made positive
    definite (:func:`_force_pd`); a between SRMR that needs a zero or negative variance
    (a saturated between variance at 0) is NaN, as lavaan's."""
    return (_cor_srmr(h1.sigma_w, implied.sigma_w),
            _cor_srmr(h1.sigma_b, _force_pd(implied.sigma_b)))


_SECTIONS = (("=~", "Latent Variables"), ("~", "Regressions"), ("~~cov", "Covariances"),
             ("~1", "Intercepts"), ("~~var", "Variances"))


def twolevel_summary(fit, standardized: bool = True, fit_measures: bool = True) -> str:
    """A lavaan-like text summary of a two-level fit: the test, fit measures and one block of
    parameter estimates per level (and group)."""
    m = fit.measures()
    est = fit.standardized(se=False) if standardized else fit.estimates()
    lines = [f"sem-models two-level fit ({fit.options.get('estimator', 'ML')}): "
             f"{'converged' if fit.converged else 'NOT converged'} after "
             f"{fit.result.iterations} iterations", ""]
    w = 40
    lines.append(f"  {'Number of free parameters':<{w}}{int(m['npar']):>10}")
    for g, lab in enumerate(fit.group_labels):
        tag = f" [{lab}]" if fit.n_groups > 1 else ""
        lines.append(f"  {'Number of observations' + tag:<{w}}{fit.nobs[g]:>10}")
        lines.append(f"  {'Number of clusters [' + str(fit.options['cluster']) + ']' + tag:<{w}}"
                     f"{fit.nclusters[g]:>10}")
    lines += ["", "Model Test User Model:", f"  {'Test statistic':<{w}}{m['chisq']:>10.3f}",
              f"  {'Degrees of freedom':<{w}}{int(m['df']):>10}",
              f"  {'P-value (Chi-square)':<{w}}{m['pvalue']:>10.3f}"]
    if "chisq_scaled" in m:
        lines += [f"  {'Scaled test statistic (Yuan-Bentler)':<{w}}{m['chisq_scaled']:>10.3f}",
                  f"  {'Scaling correction factor':<{w}}{m['chisq_scaling_factor']:>10.3f}"]
    if fit_measures:
        lines.append("")
        for key, label in (("cfi", "CFI"), ("tli", "TLI"), ("logl", "Loglikelihood user model"),
                           ("unrestricted_logl", "Loglikelihood unrestricted model"),
                           ("aic", "AIC"), ("bic", "BIC"), ("rmsea", "RMSEA"),
                           ("srmr_within", "SRMR (within covariance matrix)"),
                           ("srmr_between", "SRMR (between covariance matrix)")):
            lines.append(f"  {label:<{w}}{m[key]:>10.3f}")
    cols = ["est", "se", "z", "pvalue"] + (["std_lv", "std_all"] if standardized else [])
    heads = ["Estimate", "Std.Err", "z-value", "P(>|z|)"] + (
        ["Std.lv", "Std.all"] if standardized else [])
    lines += ["", "Parameter Estimates:"]
    for g, lab in enumerate(fit.group_labels):
        for level in (1, 2):
            sel = est["level"] == level
            if fit.n_groups > 1:
                sel &= est["group"] == lab
            block = est[sel]
            title = f"Level {level} [{'within' if level == 1 else fit.options['cluster']}]:"
            if fit.n_groups > 1:
                title = f"Group {g + 1} [{lab}], " + title
            lines += ["", title]
            for key, name in _SECTIONS:
                op = key[:2] if key.startswith("~~") else key
                part = block[block["op"] == op]
                if key == "~~cov":
                    part = part[part["lhs"] != part["rhs"]]
                elif key == "~~var":
                    part = part[part["lhs"] == part["rhs"]]
                if part.empty:
                    continue
                lines += ["", f"{name}:", " " * 22 + "".join(f"{h:>10}" for h in heads)]
                for _, row in part.iterrows():
                    label = f"{row['lhs']} {row['op']} {row['rhs']}".strip()
                    cells = []
                    for c in cols:
                        v = row[c]
                        cells.append("" if v is None or (isinstance(v, float) and np.isnan(v))
                                     or (c in ("se", "z", "pvalue") and row["se"] == 0)
                                     else f"{v:.3f}")
                    lines.append(f"    {label:<18}" + "".join(f"{c:>10}" for c in cells))
    defined = est[est["op"] == ":="]
    if len(defined):
        lines += ["", "Defined Parameters:"]
        for _, row in defined.iterrows():
            lines.append(f"    {row['lhs']:<18}{row['est']:>10.3f}{row['se']:>10.3f}")
    return "\n".join(lines) + "\n"
