"""Residuals of every type lavaan reports (``residuals(fit, type=)`` and ``lavResiduals``).

For group g with sample moments ``(m, S)`` and model-implied moments ``(mu, Sigma)``:

* ``"raw"``: ``S - Sigma`` and ``m - mu``;
* ``"cor.bollen"`` (= ``"cor"``): the difference of the two correlation matrices,
  ``S_ij / sqrt(s_ii s_jj) - Sigma_ij / sqrt(sigma_ii sigma_jj)`` (Bollen 1989, p. 258), means
  divided by the sample standard deviations;
* ``"cor.bentler"``: ``(S - Sigma)_ij / sqrt(s_ii s_jj)``, both matrices scaled by the sample
  standard deviations (Bentler's standardized residuals, EQS; the residuals behind the SRMR);
* ``"normalized"``: raw residual / its standard error as a sample statistic, ``sqrt(diag(Gamma)
  / N_g)`` with Gamma the asymptotic covariance of the sample moments (normal theory at the
  sample moments for ML, ``W^-1`` of the least-squares estimators, the distribution-free Gamma
  with robust standard errors);
* ``"standardized"``: raw residual / its asymptotic standard error as a residual,
  ``ACOV(s - sigma_hat) = Q Gamma Q' / N_g`` with ``Q = I - w_g Delta_g A0^-1 Delta_g' A1_g``
  (Joreskog & Sorbom's standardized residuals; Browne 1984, Ogasawara 2001), A1 the h1
  information at the implied moments, ``A0 = sum_g w_g Delta_g' A1_g Delta_g`` and Delta the
  Jacobian of the moments, as lavaan's ``lav_residuals_acov``.

As lavaan, a residual below 1e-5 in absolute value is divided by 1 (it is reported as it is),
and a scaled element below 1e-5 is not rescaled.

:func:`residual_summary` gives ``lavResiduals``: the residuals, their z statistics (1e-4
rule) and the RMR / SRMR / CRMR summary with its standard error, test of exact fit and the
unbiased estimate with a confidence interval and test of close fit (Maydeu-Olivares 2017,
*Psychometrika* 82, 679-699; Maydeu-Olivares, Shi & Rosseel 2018, *SEM* 25, 389-402).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from ..estimation.h1 import fixed_x_mask, zero_coordinates
from .distributions import norm_ppf, norm_sf

__all__ = ["RESIDUAL_TYPES", "residuals", "residual_summary"]

RESIDUAL_TYPES = ("raw", "cor", "cor.bollen", "cor.bentler", "cor.eqs", "normalized",
                  "standardized")
_ALIASES = {"cor": "cor.bollen", "cor.eqs": "cor.bentler", "rmr": "raw", "srmr": "cor.bentler",
            "crmr": "cor.bollen"}


def _canonical(kind: str) -> str:
    if not isinstance(kind, str):
        raise ValueError(f"type must be a string, got {type(kind).__name__}")
    key = kind.strip().lower().replace("_", ".")
    key = _ALIASES.get(key, key)
    if key not in ("raw", "cor.bollen", "cor.bentler", "normalized", "standardized"):
        raise ValueError(f"unknown residual type {kind!r}; choose from "
                         f"{', '.join(RESIDUAL_TYPES)}")
    return key


class _Group:
    """Moments and h1 coordinates (means first, then the lower triangle) of one group."""

    def __init__(self, fit, g: int):
        self.fit = fit
        self.g = g
        self.p = fit.model.n_ov
        self.meanstructure = bool(fit.model.meanstructure)
        S, m = fit.sample_moments_arrays[g]
        self.S, self.m = np.asarray(S, float), np.asarray(m, float)
        self.Sigma = np.asarray(fit._moments[g].cov, float)
        self.mu = np.asarray(fit._implied_mean(g), float)
        self.cols, self.rows = np.triu_indices(self.p)  # lavaan's vech order (by column)
        self.offset = self.p if self.meanstructure else 0
        self.dim = self.offset + len(self.rows)
        self.nobs = float(fit.problem.losses[g].nobs)
        self.weight = float(fit.problem.weights[g])
        ov = list(fit.model.ov_names)
        fixed_x = fit.options.get("fixed_x", True)
        x_idx = [ov.index(v) for v in fit.variables.ov_x] if fixed_x else []
        self.x_coords = fixed_x_mask(self, x_idx)

    def vector(self, cov: np.ndarray, mean: np.ndarray) -> np.ndarray:
        parts = [mean] if self.meanstructure else []
        return np.concatenate(parts + [cov[self.rows, self.cols]])

    def gamma_nt(self, cov: np.ndarray) -> np.ndarray:
        """Normal-theory asymptotic covariance (per case) of (mean, vech cov):
        ``Cov(s_ij, s_kl) = cov_ik cov_jl + cov_il cov_jk`` and ``Cov(m) = cov``."""
        i, j = self.rows, self.cols
        G = cov[np.ix_(i, i)] * cov[np.ix_(j, j)] + cov[np.ix_(i, j)] * cov[np.ix_(j, i)]
        if not self.meanstructure:
            return G
        out = np.zeros((self.dim, self.dim))
        out[:self.p, :self.p] = cov
        out[self.p:, self.p:] = G
        return out

    def information_nt(self, cov: np.ndarray) -> np.ndarray:
        """Normal-theory (expected) h1 information at ``cov``: ``0.5 D'(A (x) A)D`` and ``A``
        for the means, ``A = cov^-1`` (the inverse of :meth:`gamma_nt`)."""
        A = np.linalg.inv(cov)
        i, j = self.rows, self.cols
        c = np.where(i == j, 1.0, 2.0)
        G = 0.25 * np.outer(c, c) * (A[np.ix_(i, i)] * A[np.ix_(j, j)]
                                     + A[np.ix_(i, j)] * A[np.ix_(j, i)])
        if not self.meanstructure:
            return G
        out = np.zeros((self.dim, self.dim))
        out[:self.p, :self.p] = A
        out[self.p:, self.p:] = G
        return out

    def zero_x(self, M: np.ndarray) -> np.ndarray:
        return zero_coordinates(M, self.x_coords)

    def delta(self, T: np.ndarray) -> np.ndarray:
        """Jacobian of the h1 coordinates w.r.t. the reduced parameters (columns of T)."""
        problem = self.fit.problem
        values = self.fit.values
        pos, d_cov, d_mean = problem.group_jacobian(values, self.g, self.fit._moments[self.g])
        cov_part = d_cov[:, self.rows, self.cols]
        D = np.concatenate([d_mean, cov_part], axis=1).T if self.meanstructure else cov_part.T
        full = np.zeros((self.dim, len(problem.pmap.free_rows)))
        full[:, pos] = D
        return full @ T


#: least-squares estimators whose h1 information is the diagonal of their weight matrix
_DIAGONAL = ("DWLS", "ULS", "WLSM", "WLSMV", "ULSM", "ULSMV")


def _is_wls(fit) -> bool:
    from .wls_inference import WLS_FAMILY
    return fit.options.get("estimator") in WLS_FAMILY and fit.options.get("estimator") != "MLMV"


def _h1_information(fit, grp: _Group) -> np.ndarray:
    """A1: the h1 information lavaan uses for the residuals (structured, at the implied
    moments, for ML; the weight matrix of the least-squares estimators, its diagonal for
    DWLS / ULS)."""
    if _is_wls(fit):
        W = np.asarray(fit.problem.losses[grp.g].weight_matrix, float)
        return np.diag(np.diag(W)) if fit.options["estimator"] in _DIAGONAL else W
    if fit.options.get("information", "expected") == "observed":
        # lavaan: the observed h1 information at the implied moments (MLR's default)
        from .sandwich import _h1
        h1 = _h1(fit)
        mean = grp.mu if grp.meanstructure else grp.m
        info = h1.patterns[grp.g].information(h1.coords, mean, grp.Sigma, "observed")
        perm = _permutation(grp, h1.coords)
        return grp.zero_x(info[np.ix_(perm, perm)])
    return grp.zero_x(grp.information_nt(grp.Sigma))


def _permutation(grp: _Group, coords) -> np.ndarray:
    """Positions of this module's h1 coordinates (vech by column, lavaan's order) among those
    of :class:`~sem_models.estimation.fiml.H1Coordinates` (vech by row)."""
    where = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(coords.rows, coords.cols))}
    perm = np.array([where[(int(r), int(c))] for r, c in zip(grp.rows, grp.cols)], int)
    return np.concatenate([np.arange(grp.offset), grp.offset + perm])


def _acov_observed(fit, grp: _Group) -> np.ndarray:
    """ACOV of the sample statistics, lavaan's ``lav_model_h1_acov`` with the unstructured
    h1 information: ``A1u^-1 / N_g`` (normal theory at the sample moments for ML; ``W^-1``
    for the least-squares estimators), ``A1u^-1 B1 A1u^-1 / N_g`` with robust SEs."""
    from .sandwich import _inverse_nonzero
    if fit.options.get("missing") == "fiml":
        raise ValueError("normalized and standardized residuals are not available for "
                         "missing='fiml' fits (the h1 information of incomplete data); use "
                         "type='raw', 'cor.bollen' or 'cor.bentler'")
    if _is_wls(fit):
        if fit.options["estimator"] in _DIAGONAL:
            raise ValueError(
                f"normalized and standardized residuals are not available for "
                f"estimator={fit.options['estimator']!r}: its h1 information (the diagonal "
                "weight matrix) does not describe the sampling variance of the statistics "
                "(lavaan refuses them too); use type='raw', 'cor.bollen' or 'cor.bentler'")
        W = np.asarray(fit.problem.losses[grp.g].weight_matrix, float)
        inv, _ = _inverse_nonzero(W)
        return inv / grp.nobs
    se = fit.options.get("se", "standard")
    A1u = grp.zero_x(grp.information_nt(grp.S))
    inv, _ = _inverse_nonzero(A1u)
    if se in ("standard", "none"):
        return inv / grp.nobs
    from .sandwich import _h1
    h1 = _h1(fit)
    if h1.coords.meanstructure != grp.meanstructure:
        raise ValueError("robust residual standard errors need the h1 mean structure")
    perm = _permutation(grp, h1.coords)
    B1 = h1.unstructured_first_order[grp.g][np.ix_(perm, perm)]
    return inv @ B1 @ inv / grp.nobs


def _acov_residuals(fit, groups: list) -> list:
    """``Q Gamma Q' `` per group (lavaan's ``lav_residuals_acov``, z.type "standardized")."""
    T, _ = fit._inference_T
    A1 = [_h1_information(fit, grp) for grp in groups]
    deltas = [grp.delta(T) for grp in groups]
    A0 = sum(grp.weight * D.T @ A @ D for grp, D, A in zip(groups, deltas, A1))
    A0_inv = np.linalg.pinv(A0) if A0.size else A0
    out = []
    for grp, D, A in zip(groups, deltas, A1):
        est = grp.weight * D @ A0_inv @ D.T
        Q = np.eye(grp.dim) - est @ A
        out.append(Q @ _acov_observed(fit, grp) @ Q.T)
    return out


def _scaled(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``x * scale`` except where ``|x| < 1e-5`` (lavaan's ``lav_residuals_rescale``)."""
    return np.where(np.abs(x) < 1e-5, x, x * scale)


def _raw_parts(grp: _Group, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(cov, mean) residuals of type raw / cor.bollen / cor.bentler."""
    if kind == "raw":
        return grp.S - grp.Sigma, grp.m - grp.mu
    with np.errstate(divide="ignore", invalid="ignore"):
        sd_obs = np.sqrt(np.where(np.diag(grp.S) > np.finfo(float).eps, np.diag(grp.S),
                                  np.nan))
        sd_est = np.sqrt(np.where(np.diag(grp.Sigma) > np.finfo(float).eps,
                                  np.diag(grp.Sigma), np.nan))
    obs_cov = _scaled(grp.S, np.outer(1 / sd_obs, 1 / sd_obs))
    obs_mean = _scaled(grp.m, 1 / sd_obs)
    est_sd = sd_est if kind == "cor.bollen" else sd_obs
    est_cov = _scaled(grp.Sigma, np.outer(1 / est_sd, 1 / est_sd))
    est_mean = _scaled(grp.mu, 1 / sd_obs)
    return obs_cov - est_cov, obs_mean - est_mean


def _correlation_jacobian(grp: _Group, kind: str) -> np.ndarray:
    """Jacobian of the (mean, vech) residual of type ``kind`` w.r.t. the raw one at the sample
    moments (lavaan: ``GG`` for cor.bentler, ``lav_deriv_cov2corB`` for cor.bollen)."""
    S = grp.S
    inv_sd = 1 / np.sqrt(np.diag(S))
    i, j = grp.rows, grp.cols
    n = len(i)
    if kind == "cor.bentler":
        F = np.diag(inv_sd[i] * inv_sd[j])
    else:  # d vech(R) / d vech(S): 1/sqrt(s_ii s_jj) on itself, -R_ij/(2 s_kk) on s_kk
        R = S * np.outer(inv_sd, inv_sd)
        F = np.zeros((n, n))
        off = np.flatnonzero(i != j)
        F[off, off] = inv_sd[i[off]] * inv_sd[j[off]]
        diag_pos = np.zeros(grp.p, int)
        diag_pos[i[i == j]] = np.flatnonzero(i == j)
        r_off = R[i[off], j[off]]
        np.add.at(F, (off, diag_pos[i[off]]), -0.5 * r_off / S[i[off], i[off]])
        np.add.at(F, (off, diag_pos[j[off]]), -0.5 * r_off / S[j[off], j[off]])
    if not grp.meanstructure:
        return F
    out = np.zeros((grp.dim, grp.dim))
    out[:grp.p, :grp.p] = np.diag(inv_sd)
    out[grp.p:, grp.p:] = F
    return out


def _unvech(grp: _Group, v: np.ndarray) -> np.ndarray:
    M = np.zeros((grp.p, grp.p))
    M[grp.rows, grp.cols] = v
    M[grp.cols, grp.rows] = v
    return M


def _split(grp: _Group, v: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
    mean = v[:grp.p] if grp.meanstructure else None
    return _unvech(grp, v[grp.offset:]), mean


def _z(values: np.ndarray, se: np.ndarray, threshold: float) -> np.ndarray:
    se = np.where(np.abs(values) < threshold, 1.0, se)
    with np.errstate(divide="ignore", invalid="ignore"):
        return values / se


def _groups(fit) -> list:
    return [_Group(fit, g) for g in range(fit.n_groups)]


def _frames(fit, grp: _Group, cov: np.ndarray, mean: Optional[np.ndarray]) -> dict:
    ov = list(fit.model.ov_names)
    out = {"cov": pd.DataFrame(cov, index=ov, columns=ov)}
    out["mean"] = pd.Series(mean if mean is not None else np.zeros(grp.p), index=ov)
    return out


def _se_vector(acov: np.ndarray) -> np.ndarray:
    d = np.diag(acov).copy()
    d[~np.isfinite(d) | (d < 0)] = np.nan
    return np.sqrt(d)


def residuals(fit, kind: str = "raw") -> dict:
    """Residuals of type ``kind`` per group: ``{key: {"cov": DataFrame, "mean": Series}}``
    (key None for one group, else the group label); see the module docstring.  Without a
    mean structure the mean residuals are 0 (the model reproduces the sample means)."""
    kind = _canonical(kind)
    groups = _groups(fit)
    out = {}
    if kind in ("raw", "cor.bollen", "cor.bentler"):
        for grp in groups:
            cov, mean = _raw_parts(grp, kind)
            out[fit.group_labels[grp.g] if fit.n_groups > 1 else None] = _frames(
                fit, grp, cov, mean if grp.meanstructure else None)
        return out
    acovs = ([_acov_observed(fit, grp) for grp in groups] if kind == "normalized"
             else _acov_residuals(fit, groups))
    for grp, acov in zip(groups, acovs):
        cov, mean = _raw_parts(grp, "raw")
        z = _z(grp.vector(cov, mean), _se_vector(acov), 1e-5)
        zc, zm = _split(grp, z)
        out[fit.group_labels[grp.g] if fit.n_groups > 1 else None] = _frames(fit, grp, zc, zm)
    return out


def _rms(stats: np.ndarray, acov: Optional[np.ndarray], pstar: int, level: float = 0.90,
         test_value: float = 0.05) -> dict:
    """lavaan's ``lav_residuals_summary_rms`` (Maydeu-Olivares 2017, eqs. 14-21): the RMS of
    the residuals, its SE and exact-fit z test, and the unbiased RMS with its SE, interval and
    close-fit test."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _rms_terms(stats, acov, pstar, level, test_value)


def _rms_terms(stats, acov, pstar, level, test_value) -> dict:
    rms = float(np.sqrt(np.sum(stats * stats) / pstar)) if len(stats) else 0.0
    out = {"rms": rms}
    if not len(stats):
        return {**out, "se": np.nan, "z": np.nan, "pvalue": np.nan, "urms": np.nan,
                "urms_se": np.nan, "ci_lower": np.nan, "ci_upper": np.nan,
                "h0": test_value, "close_z": np.nan, "close_pvalue": np.nan}
    tr1 = np.float64(np.trace(acov))  # numpy scalars: 0/0 is NaN (lavaan's NA), not an error
    tr2 = np.float64(np.sum(acov * acov.T))
    avar = tr2 / (tr1 * 2 * pstar)
    se = np.sqrt(avar) if np.isfinite(avar) and avar >= np.finfo(float).eps else np.nan
    e_rms = np.sqrt(tr1 / pstar) * (4 * tr1 * tr1 - tr2) / (4 * tr1 * tr1)
    z = max(rms - e_rms, 0.0) / se
    t_cov = np.float64(stats @ stats)
    eve = np.float64(stats @ acov @ stats)
    k = 1 - (tr2 + 2 * eve) / (4 * t_cov * t_cov)
    urms = 1 / k * np.sqrt(max(t_cov - tr1, 0.0) / pstar)
    uavar = 1 / (k * k) * (tr2 + 2 * eve) / (2 * pstar * t_cov)
    use = np.sqrt(uavar) if np.isfinite(uavar) and uavar >= np.finfo(float).eps else np.nan
    crit = norm_ppf(1 - (1 - level) / 2)
    uz = (urms - test_value) / use
    return {**out, "se": se, "z": z, "pvalue": float(norm_sf(z)), "urms": urms,
            "urms_se": use, "ci_lower": urms - crit * use, "ci_upper": urms + crit * use,
            "h0": test_value, "close_z": uz, "close_pvalue": float(norm_sf(uz))}


_SUMMARY_NAMES = {"raw": "rmr", "cor.bentler": "srmr", "cor.bollen": "crmr"}


def residual_summary(fit, kind: str = "cor.bentler") -> dict:
    """lavaan's ``lavResiduals(fit, type)``: per group (key None for one group) a dict with
    ``cov``, ``cov_z`` (and ``mean``, ``mean_z`` with a mean structure) and ``summary``, a
    DataFrame indexed like lavaan's (``srmr``, ``srmr.se``, ``srmr.exactfit.z``,
    ``srmr.exactfit.pvalue``, ``usrmr``, ``usrmr.se``, ``usrmr.ci.lower``, ``usrmr.ci.upper``,
    ``usrmr.closefit.h0.value``, ``usrmr.closefit.z``, ``usrmr.closefit.pvalue``; ``rmr`` /
    ``crmr`` for ``kind`` "raw" / "cor.bollen") with columns ``cov`` (and ``mean``, ``total``).
    """
    kind = _canonical(kind)
    if kind not in _SUMMARY_NAMES:
        raise ValueError("lav_residuals() summarises residuals of type 'raw', 'cor.bentler' "
                         f"or 'cor.bollen', not {kind!r}")
    groups = _groups(fit)
    acovs = _acov_residuals(fit, groups)
    name = _SUMMARY_NAMES[kind]
    u = "u" + name
    index = [name, f"{name}.se", f"{name}.exactfit.z", f"{name}.exactfit.pvalue", u,
             f"{u}.se", f"{u}.ci.lower", f"{u}.ci.upper", f"{u}.closefit.h0.value",
             f"{u}.closefit.z", f"{u}.closefit.pvalue"]
    out = {}
    for grp, acov in zip(groups, acovs):
        if kind != "raw":
            J = _correlation_jacobian(grp, kind)
            acov = J @ acov @ J.T
        cov, mean = _raw_parts(grp, kind)
        vec = grp.vector(cov, mean)
        z = _z(vec, _se_vector(acov), 1e-4)
        zc, zm = _split(grp, z)
        ov = list(fit.model.ov_names)
        item = {"type": kind, "cov": pd.DataFrame(cov, index=ov, columns=ov),
                "cov_z": pd.DataFrame(zc, index=ov, columns=ov)}
        if grp.meanstructure:
            item["mean"] = pd.Series(mean, index=ov)
            item["mean_z"] = pd.Series(zm, index=ov)
        cov_stats = cov[grp.rows, grp.cols]
        off = len(cov_stats) - (grp.p if kind == "cor.bollen" else 0)
        if kind == "cor.bollen":
            keep = grp.rows != grp.cols
            blocks = {"cov": (cov_stats[keep], acov[grp.offset:, grp.offset:][np.ix_(keep, keep)],
                              off)}
        else:
            blocks = {"cov": (cov_stats, acov[grp.offset:, grp.offset:], off)}
        if grp.meanstructure:
            blocks["mean"] = (mean, acov[:grp.p, :grp.p], grp.p)
            if kind == "cor.bollen":
                keep_all = np.concatenate([np.ones(grp.p, bool), grp.rows != grp.cols])
                blocks["total"] = (vec[keep_all], acov[np.ix_(keep_all, keep_all)],
                                   grp.p + off)
            else:
                blocks["total"] = (vec, acov, grp.p + off)
        table = {}
        for col, (stats, a, pstar) in blocks.items():
            r = _rms(np.asarray(stats, float), a, pstar)
            table[col] = [r["rms"], r["se"], r["z"], r["pvalue"], r["urms"], r["urms_se"],
                          r["ci_lower"], r["ci_upper"], r["h0"], r["close_z"],
                          r["close_pvalue"]]
        item["summary"] = pd.DataFrame(table, index=index)
        out[fit.group_labels[grp.g] if fit.n_groups > 1 else None] = item
    return out
