"""Vectorised standard bivariate normal distribution and density.

``pbinorm(h, k, rho)`` is the lower orthant probability P(X <= h, Y <= k) of a standard
bivariate normal with correlation ``rho``. It follows Genz (2004), "Numerical computation of
rectangular bivariate and trivariate normal and t probabilities", Statistics and Computing
14:251-260: for |rho| < 0.925 Drezner & Wesolowsky's (1990) one-dimensional integral over
arcsin(rho) (from Plackett's identity), integrated with 6, 12 or 20 point Gauss-Legendre
rules for |rho| < 0.3, < 0.75 and < 0.925; for |rho| >= 0.925 Genz's transformed integral
with the singular part taken out in closed form. Accuracy is about 1e-15 absolute; it is
the algorithm of the Fortran code in R's ``pbivnorm`` that lavaan calls.

All functions broadcast their arguments and never loop over elements.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.special import ndtr

__all__ = ["pbinorm", "pbinorm_grid", "dbinorm", "rectangle_prob"]

_TWOPI = 2.0 * np.pi

# Gauss-Legendre rules on [-1, 1] (all nodes; the integrands below use x and -x alike)
_GL = {n: np.polynomial.legendre.leggauss(n) for n in (6, 12, 20)}


def _upper_finite(h: np.ndarray, k: np.ndarray, r: np.ndarray) -> np.ndarray:
    """P(X > h, Y > k) for finite h, k and |r| < 1 (1-d arrays of equal length)."""
    out = np.empty_like(h)
    ar = np.abs(r)
    hk = h * k

    # --- |r| < 0.925: integral over asin(r) (Drezner & Wesolowsky 1990; Genz 2004) --------
    for lo, hi, n in ((0.0, 0.3, 6), (0.3, 0.75, 12), (0.75, 0.925, 20)):
        sel = (ar >= lo) & (ar < hi)
        if not np.any(sel):
            continue
        x, w = _GL[n]
        hs = 0.5 * (h[sel] * h[sel] + k[sel] * k[sel])
        asr = np.arcsin(r[sel])
        sn = np.sin(asr[:, None] * (x[None, :] + 1.0) * 0.5)
        val = np.exp((sn * hk[sel][:, None] - hs[:, None]) / (1.0 - sn * sn)) @ w
        out[sel] = val * asr / (2.0 * _TWOPI) + ndtr(-h[sel]) * ndtr(-k[sel])

    # --- |r| >= 0.925: Genz's transformed integral ---------------------------------------
    sel = ar >= 0.925
    if np.any(sel):
        x, w = _GL[20]
        hh = h[sel]
        kk = k[sel]
        rr = r[sel]
        neg = rr < 0
        kk = np.where(neg, -kk, kk)
        hk2 = hh * kk
        a_s = (1.0 - rr) * (1.0 + rr)
        a = np.sqrt(a_s)
        bs = (hh - kk) ** 2
        c = (4.0 - hk2) / 8.0
        d = (12.0 - hk2) / 16.0
        asr = -(bs / a_s + hk2) / 2.0
        bvn = np.where(
            asr > -100.0,
            a * np.exp(np.maximum(asr, -100.0))
            * (1.0 - c * (bs - a_s) * (1.0 - d * bs / 5.0) / 3.0 + c * d * a_s * a_s / 5.0),
            0.0,
        )
        b = np.sqrt(bs)
        term = (np.exp(-np.maximum(hk2, -100.0) / 2.0) * np.sqrt(_TWOPI) * ndtr(-b / a) * b
                * (1.0 - c * bs * (1.0 - d * bs / 5.0) / 3.0))
        bvn = bvn - np.where(hk2 > -100.0, term, 0.0)
        a2 = a / 2.0
        xs = (a2[:, None] * (x[None, :] + 1.0)) ** 2
        rs = np.sqrt(1.0 - xs)
        asr2 = -(bs[:, None] / xs + hk2[:, None]) / 2.0
        ok = asr2 > -100.0
        asr2 = np.where(ok, asr2, -100.0)
        expo = asr2 - hk2[:, None] * (1.0 - rs) / (2.0 * (1.0 + rs))
        inner = (np.exp(np.minimum(expo, 700.0)) / rs
                 - np.exp(asr2) * (1.0 + c[:, None] * xs * (1.0 + d[:, None] * xs)))
        bvn = bvn + a2 * (np.where(ok, inner, 0.0) @ w)
        bvn = -bvn / _TWOPI
        pos_val = bvn + ndtr(-np.maximum(hh, kk))
        # r < 0: P(X > h, Y > k) = P(X > h) - P(X > h, -Y >= -k) ... (Genz's final step)
        lval = np.where(hh < 0, ndtr(kk) - ndtr(hh), ndtr(-hh) - ndtr(-kk))
        neg_val = np.where(kk > hh, lval - bvn, -bvn)
        out[sel] = np.where(neg, neg_val, pos_val)
    return out


def pbinorm_grid(h: np.ndarray, k: np.ndarray, r: np.ndarray,
                 base: Optional[np.ndarray] = None) -> np.ndarray:
    """P(X <= h[p, m], Y <= k[p, m]; r[p]): many finite points per correlation.

    ``h``, ``k``: (P, M) finite limits, ``r``: (P,) correlations with ``|r| < 1``;
    ``base`` (optional, (P, M)): Phi(h) Phi(k), if the caller has it already. The same
    integral as :func:`pbinorm` (Drezner & Wesolowsky 1990; Genz 2004), but the nodes
    sin(asin(r) (x + 1) / 2) of the Gauss-Legendre rule are computed once per correlation
    instead of once per point (the threshold grid of a pair of ordinal variables shares
    one rho).
    """
    h = -np.asarray(h, float)                    # lower orthant = upper orthant of (-h, -k)
    k = -np.asarray(k, float)
    r = np.asarray(r, float)
    out = np.empty(h.shape)
    if base is None:
        base = ndtr(-h) * ndtr(-k)
    ar = np.abs(r)
    hk = h * k
    hs = 0.5 * (h * h + k * k)
    for lo, hi, n in ((0.0, 0.3, 6), (0.3, 0.75, 12), (0.75, 0.925, 20)):
        sel = np.flatnonzero((ar >= lo) & (ar < hi))
        if sel.size == 0:
            continue
        x, w = _GL[n]
        asr = np.arcsin(r[sel])
        sn = np.sin(asr[:, None] * (x[None, :] + 1.0) * 0.5)          # (S, n)
        inv = 1.0 / (1.0 - sn * sn)
        if sel.size == r.size:
            hk_s, hs_s, base_s = hk, hs, base
        else:
            hk_s, hs_s, base_s = hk[sel], hs[sel], base[sel]
        e = np.exp((sn[:, None, :] * hk_s[:, :, None] - hs_s[:, :, None]) * inv[:, None, :])
        out[sel] = (e @ w) * (asr / (2.0 * _TWOPI))[:, None] + base_s
    high = np.flatnonzero(ar >= 0.925)
    if high.size:
        M = h.shape[1]
        out[high] = _upper_finite(h[high].ravel(), k[high].ravel(),
                                  np.repeat(r[high], M)).reshape(-1, M)
    return np.clip(out, 0.0, 1.0)


def pbinorm(h, k, rho) -> np.ndarray:
    """Standard bivariate normal CDF P(X <= h, Y <= k; rho), vectorised (Genz 2004).

    ``h``, ``k`` and ``rho`` broadcast; infinite limits are allowed; ``|rho| <= 1``.
    """
    h, k, r = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float),
                                  np.asarray(rho, float))
    shape = h.shape
    h = h.ravel()
    k = k.ravel()
    r = r.ravel()
    out = np.zeros(h.shape)
    fin = np.isfinite(h) & np.isfinite(k)
    # infinite limits: marginals or 0
    hinf_hi = np.isposinf(h)
    kinf_hi = np.isposinf(k)
    anyneg = np.isneginf(h) | np.isneginf(k)
    out[hinf_hi & ~anyneg] = ndtr(k[hinf_hi & ~anyneg])
    m = kinf_hi & ~hinf_hi & ~anyneg
    out[m] = ndtr(h[m])
    out[anyneg] = 0.0
    if np.any(fin):
        hf = h[fin]
        kf = k[fin]
        rf = r[fin]
        res = np.empty(hf.shape)
        # |rho| == 1 exactly: degenerate distribution
        one = rf >= 1.0
        mone = rf <= -1.0
        mid = ~(one | mone)
        res[one] = ndtr(np.minimum(hf[one], kf[one]))
        res[mone] = np.maximum(ndtr(hf[mone]) - ndtr(-kf[mone]), 0.0)
        if np.any(mid):
            # lower orthant = upper orthant of (-h, -k)
            res[mid] = _upper_finite(-hf[mid], -kf[mid], rf[mid])
        out[fin] = np.clip(res, 0.0, 1.0)
    return out.reshape(shape)


def dbinorm(u, v, rho) -> np.ndarray:
    """Standard bivariate normal density phi2(u, v; rho); 0 at infinite arguments."""
    u, v, r = np.broadcast_arrays(np.asarray(u, float), np.asarray(v, float),
                                  np.asarray(rho, float))
    fin = np.isfinite(u) & np.isfinite(v)
    uu = np.where(fin, u, 0.0)
    vv = np.where(fin, v, 0.0)
    om = 1.0 - r * r
    q = (uu * uu - 2.0 * r * uu * vv + vv * vv) / om
    dens = np.exp(-0.5 * q) / (_TWOPI * np.sqrt(om))
    return np.where(fin, dens, 0.0)


def rectangle_prob(z1a, z2a, z1b, z2b, rho) -> np.ndarray:
    """P(z2a < X <= z1a, z2b < Y <= z1b; rho) by inclusion-exclusion of four CDFs."""
    return (pbinorm(z1a, z1b, rho) - pbinorm(z2a, z1b, rho)
            - pbinorm(z1a, z2b, rho) + pbinorm(z2a, z2b, rho))
