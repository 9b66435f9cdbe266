"""Stage 2 of Muthen's (1984) estimator: two-step ML correlations with the stage-1
parameters fixed, vectorised over all pairs of variables.

* polychoric (ordinal x ordinal): the two-step estimator of Olsson (1979, Psychometrika
  44:443-460): thresholds from the margins, then rho maximising
  sum_ij n_ij log pi_ij(rho), with pi_ij the standard bivariate normal probability of the
  rectangle (tau_{i-1}, tau_i] x (tau_{j-1}, tau_j]. With covariates the casewise
  rectangles (tau - x'b_1) x (tau - x'b_2) (Muthen 1984, Psychometrika 49:115-132,
  stage 2). 2x2 tables follow lavaan's rules (lav_bvord.R): one empty cell gets 0.5 added
  with both margins kept, two empty cells give rho = +-1, ad = bc gives 0 and two 50/50
  margins give -cos(2 pi n11 / n) (the closed form of Brown & Benedetti 1977). Larger
  tables get no correction. rho is restricted to [-0.999, 0.999].
* polyserial (continuous x ordinal): the two-step ML estimator of Olsson, Drasgow & Dorans
  (1982, Psychometrika 47:337-347): log f(y) + log[Phi(u_j) - Phi(u_{j-1})] with
  u_j = (tau_j - rho z) / sqrt(1 - rho^2) and z the standardised continuous value;
  rho in [-0.995, 0.995].
* Pearson (continuous x continuous): the correlation of the (residual) values; with missing
  values the bivariate normal ML of rho given the stage-1 means and variances.

Each routine returns rho, the casewise scores d l_i / d rho (N x P) and, per pair,
G_v = sum_i (d l_i / d rho)(d l_i / d theta_v) for the univariate parameters theta_v of both
variables: the outer-product form of the cross information A21 of Muthen (1984) / Muthen &
Satorra (1995), as lavaan computes it.

Parameter order of theta_v: ordinal [tau_1..tau_{K-1} (padded to the largest K), beta];
continuous [mu, beta, sigma^2].
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from scipy.special import ndtr

from .categorical_bvn import _TWOPI, dbinorm, pbinorm, pbinorm_grid
from .categorical_uni import norm_pdf

__all__ = ["newton_rho", "polychoric_tables", "polychoric_casewise", "polyserial",
           "pearson", "SQRT_EPS"]

SQRT_EPS = np.sqrt(np.finfo(float).eps)
EPS = np.finfo(float).eps


# ---------------------------------------------------------------------------------------
# vectorised safeguarded Newton for P one-dimensional maximisations
# ---------------------------------------------------------------------------------------
def newton_rho(fgh: Callable[[np.ndarray, np.ndarray], tuple], rho0: np.ndarray,
               lo: float, hi: float, *, tol: float = 1e-11, maxit: int = 100,
               final_step: float = 1e-6):
    """Maximise P one-dimensional log-likelihoods on [lo, hi] together.

    ``fgh(rho, idx)`` returns the log-likelihood, its first and second derivative for the
    pairs ``idx`` at ``rho``. Newton steps (gradient steps where the second derivative is
    not negative), clipped to the bounds, with step halving until the log-likelihood does
    not decrease, as a bounded Newton method such as nlminb does; a maximum on a bound is
    returned as the bound. A Newton step (negative second derivative) shorter than
    ``final_step`` is taken without evaluating the function again and ends the iteration
    of that pair: Newton's method converges quadratically, so the error after it is of
    the order of its square (far below ``tol``). Returns (rho, converged mask,
    iterations).
    """
    P = rho0.shape[0]
    x = np.clip(np.asarray(rho0, float).copy(), lo, hi)
    conv = np.zeros(P, bool)
    if P == 0:
        return x, conv, 0
    act = np.arange(P)
    f, g, h = fgh(x, act)
    f = f.copy()
    g = g.copy()
    h = h.copy()
    it = 0
    for it in range(1, maxit + 1):
        if act.size == 0:
            break
        fa, ga, ha = f[act], g[act], h[act]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(ha < 0, -ga / ha, np.sign(ga) * 0.05)
        step = np.clip(np.where(np.isfinite(step), step, 0.0), -0.5, 0.5)
        xa = x[act]
        xn = np.clip(xa + step, lo, hi)
        last = (ha < 0) & (np.abs(xn - xa) < final_step)
        if np.any(last):
            x[act[last]] = xn[last]
            conv[act[last]] = True
            keep = ~last
            act, fa, ga, ha, xa, xn = act[keep], fa[keep], ga[keep], ha[keep], xa[keep], xn[keep]
            if act.size == 0:
                break
        acc = np.zeros(act.size, bool)
        fn = np.full(act.size, -np.inf)
        gn = np.zeros(act.size)
        hn = np.zeros(act.size)
        todo = np.arange(act.size)
        for _ in range(50):
            if todo.size == 0:
                break
            ft, gt, ht = fgh(xn[todo], act[todo])
            ok = np.isfinite(ft) & (ft >= fa[todo] - 1e-13 * np.abs(fa[todo]))
            sel = todo[ok]
            acc[sel] = True
            fn[sel], gn[sel], hn[sel] = ft[ok], gt[ok], ht[ok]
            todo = todo[~ok]
            xn[todo] = xa[todo] + 0.5 * (xn[todo] - xa[todo])
        moved = np.abs(xn - xa)
        upd = act[acc]
        x[upd] = xn[acc]
        f[upd], g[upd], h[upd] = fn[acc], gn[acc], hn[acc]
        done = ~acc | (moved < tol) | (ga == 0)
        conv[act[done]] = True
        conv[act[~acc]] = np.abs(ga[~acc]) < 1e-6 * np.maximum(1.0, np.abs(fa[~acc]))
        act = act[~done]
    return x, conv, it


def _guv(u, v, rho):
    """d log phi2(u, v; rho) / d rho times (1 - rho^2)^2 / (1 - rho^2)^2 (lavaan's guv)."""
    R = 1.0 - rho * rho
    return (u * v * R - rho * (u * u - 2.0 * rho * u * v + v * v) + rho * R) / (R * R)


def _fin(z):
    return np.where(np.isfinite(z), z, 0.0)


def _rect_terms(z1a, z2a, z1b, z2b, rho, second: bool = True):
    """Rectangle probability, its rho-derivative and second derivative (arrays)."""
    lik = (pbinorm(z1a, z1b, rho) - pbinorm(z2a, z1b, rho)
           - pbinorm(z1a, z2b, rho) + pbinorm(z2a, z2b, rho))
    d11 = dbinorm(z1a, z1b, rho)
    d21 = dbinorm(z2a, z1b, rho)
    d12 = dbinorm(z1a, z2b, rho)
    d22 = dbinorm(z2a, z2b, rho)
    phi = d11 - d21 - d12 + d22
    if not second:
        return lik, phi, None
    f1a, f2a, f1b, f2b = _fin(z1a), _fin(z2a), _fin(z1b), _fin(z2b)
    gn = (d11 * _guv(f1a, f1b, rho) - d21 * _guv(f2a, f1b, rho)
          - d12 * _guv(f1a, f2b, rho) + d22 * _guv(f2a, f2b, rho))
    return lik, phi, gn


def _th_terms(z1a, z2a, z1b, z2b, rho):
    """d lik / d z1a and -d lik / d z2a (Z1a, Z2a of lavaan's scores)."""
    R = np.sqrt(1.0 - rho * rho)
    f1a, f2a = _fin(z1a), _fin(z2a)
    Z1 = norm_pdf(z1a) * (ndtr((z1b - rho * f1a) / R) - ndtr((z2b - rho * f1a) / R))
    Z2 = norm_pdf(z2a) * (ndtr((z1b - rho * f2a) / R) - ndtr((z2b - rho * f2a) / R))
    Z1 = np.where(np.isfinite(z1a), Z1, 0.0)
    Z2 = np.where(np.isfinite(z2a), Z2, 0.0)
    return Z1, Z2


def _code_cor(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Pearson correlations of the category codes (pairwise complete), lavaan's start
    value of rho; 0 where undefined."""
    both = (ca >= 0) & (cb >= 0)
    return _pairwise_cor(np.where(both, ca, 0).astype(float),
                         np.where(both, cb, 0).astype(float), both)


def _pairwise_cor(x: np.ndarray, y: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column pair of ``x`` and ``y`` over the rows where
    ``both`` (entries outside it are 0 in x and y); 0 where undefined or ``|r| >= 1``."""
    n = both.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = x.sum(axis=0) / n
        my = y.sum(axis=0) / n
        dx = np.where(both, x - mx, 0.0)
        dy = np.where(both, y - my, 0.0)
        r = (dx * dy).sum(axis=0) / np.sqrt((dx * dx).sum(axis=0) * (dy * dy).sum(axis=0))
    return np.where(np.isfinite(r) & (np.abs(r) < 1), r, 0.0)


def _th_G(codes: np.ndarray, w1: np.ndarray, w2: np.ndarray, tmax: int) -> np.ndarray:
    """G[p, t] = sum_{i: c_ip = t} w1_ip - sum_{i: c_ip = t+1} w2_ip (codes -1 = missing)."""
    P = codes.shape[1]
    if tmax == 0:
        return np.zeros((P, 0))
    nb = tmax + 2
    obs = codes >= 0
    idx = (np.arange(P)[None, :] * nb + np.where(obs, codes, 0)).ravel()
    s1 = np.bincount(idx, weights=np.where(obs, w1, 0.0).ravel(), minlength=P * nb)
    s2 = np.bincount(idx, weights=np.where(obs, w2, 0.0).ravel(), minlength=P * nb)
    s1 = s1.reshape(P, nb)
    s2 = s2.reshape(P, nb)
    return s1[:, :tmax] - s2[:, 1:tmax + 1]


# ---------------------------------------------------------------------------------------
# polychoric, no covariates: contingency tables
# ---------------------------------------------------------------------------------------
def _cell_index(codes: np.ndarray, ia: np.ndarray, ib: np.ndarray, kmax: int) -> np.ndarray:
    """N x P index of each case's cell in the stacked P x kmax x kmax tables of the pairs
    (ia[p], ib[p]): p kmax^2 + code_a kmax + code_b, or P kmax^2 (one past the tables)
    where a code is missing. It gives the tables (one ``bincount``) and gathers the
    casewise scores from the cell scores. The cell codes are formed in the smallest integer
    type that holds them (the N x P index arrays dominate the cost)."""
    P = ia.shape[0]
    k2 = kmax * kmax
    small = np.int8 if k2 <= 127 else np.int16 if k2 <= 32767 else np.int64
    c = codes.astype(small)
    idx = c[:, ia] * small(kmax)
    idx += c[:, ib]
    flat = np.add(idx, np.arange(P, dtype=np.intp) * k2, dtype=np.intp)
    if np.any(codes < 0):
        flat[(c[:, ia] < 0) | (c[:, ib] < 0)] = P * k2
    return flat


class _CornerGrid:
    """The (kmax+1) x (kmax+1) grid of threshold corners of every pair's table.

    A cell probability is a second difference of the bivariate normal CDF over this grid
    (the four corners of the rectangle), so the CDF, the density and its rho-derivative
    are evaluated once per distinct corner and iteration, not four times per cell.
    Corners with an infinite coordinate do not depend on rho: the CDF there is 0 or a
    univariate normal margin, the density 0; only the inner corners (finite thresholds
    of both variables, the (K_a - 1) x (K_b - 1) grid) need the bivariate integral, done
    for all of a pair's inner corners at once (:func:`pbinorm_grid`; Genz 2004).
    """

    def __init__(self, ea: np.ndarray, eb: np.ndarray):
        P, G = ea.shape
        A = np.broadcast_to(ea[:, :, None], (P, G, G))
        B = np.broadcast_to(eb[:, None, :], (P, G, G))
        with np.errstate(invalid="ignore"):
            c0 = np.where(np.isposinf(A), ndtr(B), np.where(np.isposinf(B), ndtr(A), 0.0))
        c0[np.isneginf(A) | np.isneginf(B)] = 0.0
        m = G - 2                                    # inner corners: thresholds 1..kmax-1
        ai = ea[:, 1:G - 1]
        bi = eb[:, 1:G - 1]
        fin = (np.isfinite(ai)[:, :, None] & np.isfinite(bi)[:, None, :]).reshape(P, m * m)
        self.m = m
        self.fin = fin
        self.all_fin = bool(fin.all())
        self.h = np.where(fin, np.broadcast_to(ai[:, :, None], (P, m, m)).reshape(P, m * m), 0.0)
        self.k = np.where(fin, np.broadcast_to(bi[:, None, :], (P, m, m)).reshape(P, m * m), 0.0)
        self.base = ndtr(self.h) * ndtr(self.k)
        self.q2 = self.h * self.h + self.k * self.k
        self.hk = self.h * self.k
        self.c0 = c0
        self.c0_in = c0[:, 1:G - 1, 1:G - 1].reshape(P, m * m)

    def terms(self, rho: np.ndarray, idx: np.ndarray, second: bool = True):
        """Cell probabilities and their first (and second) rho-derivatives of the pairs
        ``idx`` at ``rho`` (Olsson 1979, eqs. 8-9 via the density and its derivative)."""
        m = self.m
        G = m + 2
        h = self.h[idx]
        k = self.k[idx]
        cin = pbinorm_grid(h, k, rho, base=self.base[idx])
        r = rho[:, None]
        om = 1.0 - r * r
        hk = self.hk[idx]
        dens = np.exp(-0.5 * (self.q2[idx] - 2.0 * r * hk) / om) / (_TWOPI * np.sqrt(om))
        if not self.all_fin:
            fin = self.fin[idx]
            cin = np.where(fin, cin, self.c0_in[idx])
            dens = np.where(fin, dens, 0.0)
        C = self.c0[idx]
        C[:, 1:G - 1, 1:G - 1] = cin.reshape(-1, m, m)
        D = np.zeros(C.shape)
        D[:, 1:G - 1, 1:G - 1] = dens.reshape(-1, m, m)
        gn = None
        if second:
            E = np.zeros(C.shape)
            E[:, 1:G - 1, 1:G - 1] = (dens * _guv(h, k, r)).reshape(-1, m, m)
            gn = _corners(E)
        return _corners(C), _corners(D), gn


def _corners(M: np.ndarray) -> np.ndarray:
    """Second differences over the last two axes (rectangle masses from corner values)."""
    return M[:, 1:, 1:] - M[:, :-1, 1:] - M[:, 1:, :-1] + M[:, :-1, :-1]


def polychoric_tables(codes: np.ndarray, K: np.ndarray, th: list, ia: np.ndarray,
                      ib: np.ndarray, *, names: Optional[list] = None, lo: float = -0.999,
                      hi: float = 0.999, warn: Optional[Callable[[str], None]] = None):
    """Polychoric correlations of the ordinal pairs (ia[p], ib[p]) without covariates.

    ``codes`` N x p ordinal codes (-1 missing), ``K`` categories, ``th`` thresholds per
    variable. Returns dict(rho, s_rho (N x P), Ga, Gb (P x (kmax-1)), zero_cells (bool P),
    converged).

    Everything but the casewise scores works on the P contingency tables: the
    log-likelihood sum_ij n_ij log pi_ij(rho) and its derivatives (Olsson 1979) from the
    CDF and density on each pair's corner grid (:class:`_CornerGrid`), the scores of a
    case are those of its cell, gathered at the end.
    """
    N = codes.shape[0]
    P = ia.shape[0]
    kmax = int(K.max()) if K.size else 2
    tmax = kmax - 1
    out = dict(rho=np.zeros(P), Ga=np.zeros((P, tmax)), Gb=np.zeros((P, tmax)),
               zero_cells=np.zeros(P, bool), converged=np.ones(P, bool))
    if P == 0:
        out["s_rho"] = np.zeros((N, 0))
        return out
    flat = _cell_index(codes, ia, ib, kmax)
    k2 = kmax * kmax
    freq_raw = np.bincount(flat.ravel(), minlength=P * k2 + 1)[:P * k2].reshape(
        P, kmax, kmax).astype(float)
    ext = np.full((len(th), kmax + 1), np.inf)
    ext[:, 0] = -np.inf
    for v, t in enumerate(th):
        ext[v, 1:len(t) + 1] = t
    ea = ext[ia]                                  # P x (kmax+1)
    eb = ext[ib]
    r = np.arange(kmax)
    valid = (r[None, :, None] < K[ia][:, None, None]) & (r[None, None, :] < K[ib][:, None, None])

    freq = freq_raw.copy()
    out["zero_cells"] = np.any((freq_raw == 0) & valid, axis=(1, 2))
    fixed = np.full(P, np.nan)
    two = np.flatnonzero((K[ia] == 2) & (K[ib] == 2))
    for p in two:                                  # cheap: only 2x2 tables
        f = freq[p, :2, :2]
        nz = int(np.sum(f == 0))
        lab = (f"{names[ia[p]]} x {names[ib[p]]}" if names is not None else "")
        if nz == 2:
            if warn is not None:
                warn(f"two empty cells in the 2x2 table of {lab}; correlation set to "
                     f"{'+1' if f[0, 0] > 0 else '-1'}")
            fixed[p] = 1.0 if f[0, 0] > 0 else -1.0
            continue
        if nz == 1:
            diag_zero = f[0, 0] == 0 or f[1, 1] == 0
            s = 0.5 if diag_zero else -0.5
            f[0, 0] += s
            f[1, 1] += s
            f[0, 1] -= s
            f[1, 0] -= s
        if f[0, 0] * f[1, 1] == f[0, 1] * f[1, 0]:
            fixed[p] = 0.0
        elif th[ia[p]][0] == 0 and th[ib[p]][0] == 0:
            fixed[p] = -np.cos(2.0 * np.pi * f[0, 0] / f.sum())

    grid = _CornerGrid(ea, eb)

    def fgh(rho, idx):
        lik, phi, gn = grid.terms(rho, idx)
        fr = freq[idx]
        ok = valid[idx] & (lik > SQRT_EPS)
        L = np.where(ok, lik, 1.0)
        f = np.sum(np.where(valid[idx], fr * np.log(np.maximum(lik, SQRT_EPS)), 0.0),
                   axis=(1, 2))
        w = np.where(ok, fr, 0.0) / L
        wphi = w * phi
        g = np.sum(wphi, axis=(1, 2))
        h = np.sum(w * gn - wphi * phi / L, axis=(1, 2))
        return f, g, h

    # start: the Pearson correlation r of the codes (lavaan's start) corrected for the
    # coarse categories by the ratio sd(codes) / sum_k phi(tau_k) of each variable (the ad
    # hoc polyserial estimator of Olsson, Drasgow & Dorans 1982, applied to both): a few
    # 1e-3 from the polychoric estimate where r is often 0.05 off, so Newton needs two
    # steps fewer
    n_tab = freq_raw.sum(axis=(1, 2))
    ra = np.arange(kmax, dtype=float)[None, :, None]
    sb = np.arange(kmax, dtype=float)[None, None, :]
    mr = (freq_raw * ra).sum(axis=(1, 2)) / n_tab
    ms = (freq_raw * sb).sum(axis=(1, 2)) / n_tab
    dr = ra - mr[:, None, None]
    ds = sb - ms[:, None, None]
    var_r = (freq_raw * dr * dr).sum(axis=(1, 2))
    var_s = (freq_raw * ds * ds).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        start = (freq_raw * dr * ds).sum(axis=(1, 2)) / np.sqrt(var_r * var_s)
        phi_a = np.sum(norm_pdf(ea[:, 1:-1]), axis=1)
        phi_b = np.sum(norm_pdf(eb[:, 1:-1]), axis=1)
        ratio = start * np.sqrt(var_r * var_s) / n_tab / (phi_a * phi_b)
    start = np.where(np.isfinite(start) & (np.abs(start) < 1), start, 0.0)
    start = np.where(np.isfinite(ratio) & (np.abs(ratio) < 0.95), ratio, start)
    free = np.flatnonzero(np.isnan(fixed))
    rho = fixed.copy()
    if free.size:
        rf, conv, _ = newton_rho(lambda x, i: fgh(x, free[i]), start[free], lo, hi)
        rho[free] = rf
        out["converged"][free] = conv
    out["rho"] = rho

    # scores at the estimate: per cell, then gathered casewise
    fine = np.abs(rho) < 1.0
    rr = np.where(fine, rho, 0.0)
    lik, phi, _ = grid.terms(rr, np.arange(P), second=False)
    ok = valid & (lik > SQRT_EPS)
    L = np.where(ok, lik, 1.0)
    srho_cell = np.where(ok, phi / L, 0.0)
    srho_cell[~fine] = np.nan                    # rho = +-1: scores undefined
    # d pi_ij / d tau: phi(tau_a) [Phi((tau_b - rho tau_a) / R)] differenced over b (and
    # the same with a and b exchanged), on the corner grid
    R = np.sqrt(1.0 - rr * rr)[:, None, None]
    r3 = rr[:, None, None]
    fa = np.isfinite(ea)
    fb = np.isfinite(eb)
    eaf = np.where(fa, ea, 0.0)
    ebf = np.where(fb, eb, 0.0)
    Fa = (np.where(fa, norm_pdf(eaf), 0.0)[:, :, None]
          * ndtr((eb[:, None, :] - r3 * eaf[:, :, None]) / R))
    Fb = (np.where(fb, norm_pdf(ebf), 0.0)[:, None, :]
          * ndtr((ea[:, :, None] - r3 * ebf[:, None, :]) / R))
    dFa = Fa[:, :, 1:] - Fa[:, :, :-1]           # P x (kmax+1) x kmax
    dFb = Fb[:, 1:, :] - Fb[:, :-1, :]           # P x kmax x (kmax+1)
    wr = np.where(ok, freq_raw * srho_cell / L, 0.0)
    u1a = np.sum(wr * dFa[:, 1:, :], axis=2)      # P x kmax (by code of a)
    u2a = np.sum(wr * dFa[:, :-1, :], axis=2)
    u1b = np.sum(wr * dFb[:, :, 1:], axis=1)
    u2b = np.sum(wr * dFb[:, :, :-1], axis=1)
    out["Ga"] = u1a[:, :tmax] - u2a[:, 1:]
    out["Gb"] = u1b[:, :tmax] - u2b[:, 1:]
    out["s_rho"] = np.append(srho_cell.ravel(), 0.0)[flat]
    return out


# ---------------------------------------------------------------------------------------
# polychoric with covariates: casewise rectangles
# ---------------------------------------------------------------------------------------
def polychoric_casewise(z1: np.ndarray, z2: np.ndarray, codes: np.ndarray, K: np.ndarray,
                        X: np.ndarray, ia: np.ndarray, ib: np.ndarray, *,
                        lo: float = -0.999, hi: float = 0.999):
    """Polychoric correlations given covariates (casewise limits ``z1``, ``z2``: N x p)."""
    N = z1.shape[0]
    P = ia.shape[0]
    kmax = int(K.max()) if K.size else 2
    tmax = kmax - 1
    q = X.shape[1]
    out = dict(rho=np.zeros(P), s_rho=np.zeros((N, P)), Ga=np.zeros((P, tmax + q)),
               Gb=np.zeros((P, tmax + q)), zero_cells=np.zeros(P, bool),
               converged=np.ones(P, bool))
    if P == 0:
        return out
    both = (codes[:, ia] >= 0) & (codes[:, ib] >= 0)
    Z1A = np.where(both, z1[:, ia], 0.0)
    Z2A = np.where(both, z2[:, ia], 0.0)
    Z1B = np.where(both, z1[:, ib], 0.0)
    Z2B = np.where(both, z2[:, ib], 0.0)

    def fgh(rho, idx):
        lik, phi, gn = _rect_terms(Z1A[:, idx], Z2A[:, idx], Z1B[:, idx], Z2B[:, idx],
                                   rho[None, :])
        ok = both[:, idx] & (lik >= SQRT_EPS)
        L = np.where(ok, lik, 1.0)
        f = np.sum(np.log(L), axis=0)
        g = np.sum(np.where(ok, phi / L, 0.0), axis=0)
        h = np.sum(np.where(ok, gn / L - (phi / L) ** 2, 0.0), axis=0)
        return f, g, h

    rho0 = _code_cor(codes[:, ia], codes[:, ib])
    rho, conv, _ = newton_rho(fgh, rho0, lo, hi)
    out["rho"] = rho
    out["converged"] = conv

    rr = rho[None, :]
    lik, phi, _ = _rect_terms(Z1A, Z2A, Z1B, Z2B, rr, second=False)
    ok = both & (lik > SQRT_EPS)
    L = np.where(ok, lik, 1.0)
    s_rho = np.where(ok, phi / L, 0.0)
    out["s_rho"] = s_rho
    Z1a, Z2a = _th_terms(Z1A, Z2A, Z1B, Z2B, rr)
    Z1b, Z2b = _th_terms(Z1B, Z2B, Z1A, Z2A, rr)
    w = np.where(ok, s_rho / L, 0.0)
    ca = np.where(ok, codes[:, ia], -1)
    cb = np.where(ok, codes[:, ib], -1)
    out["Ga"][:, :tmax] = _th_G(ca, w * Z1a, w * Z2a, tmax)
    out["Gb"][:, :tmax] = _th_G(cb, w * Z1b, w * Z2b, tmax)
    if q:
        out["Ga"][:, tmax:] = -(w * (Z1a - Z2a)).T @ X
        out["Gb"][:, tmax:] = -(w * (Z1b - Z2b)).T @ X
    return out


# ---------------------------------------------------------------------------------------
# polyserial
# ---------------------------------------------------------------------------------------
def polyserial(Zc: np.ndarray, sd: np.ndarray, z1: np.ndarray, z2: np.ndarray,
               codes: np.ndarray, K: np.ndarray, X: Optional[np.ndarray], ia: np.ndarray,
               ib: np.ndarray, *, lo: float = -0.995, hi: float = 0.995,
               start: Optional[np.ndarray] = None):
    """Polyserial correlations of continuous ``ia[p]`` with ordinal ``ib[p]``.

    ``Zc`` N x p_num standardised (residual) values (nan missing), ``sd`` their ML SDs;
    ``z1``, ``z2`` N x p_ord casewise threshold limits of the ordinal variables.
    """
    N = Zc.shape[0]
    P = ia.shape[0]
    kmax = int(K.max()) if K.size else 2
    tmax = kmax - 1
    q = 0 if X is None else X.shape[1]
    out = dict(rho=np.zeros(P), s_rho=np.zeros((N, P)), Ga=np.zeros((P, 2 + q)),
               Gb=np.zeros((P, tmax + q)), converged=np.ones(P, bool))
    if P == 0:
        return out
    both = ~np.isnan(Zc[:, ia]) & (codes[:, ib] >= 0)
    Z = np.where(both, Zc[:, ia], 0.0)
    A1 = np.where(both, z1[:, ib], 0.0)
    A2 = np.where(both, z2[:, ib], 0.0)
    f1 = np.isfinite(A1)
    f2 = np.isfinite(A2)
    A1f = np.where(f1, A1, 0.0)
    A2f = np.where(f2, A2, 0.0)
    py1 = norm_pdf(Z) / sd[ia][None, :]

    def fgh(rho, idx):
        rr = rho[None, :]
        Zi = Z[:, idx]
        R, u1, u2, p, d1, d2 = parts_idx(rr, idx)
        R3 = R ** 3
        a1 = A1f[:, idx]
        a2 = A2f[:, idx]
        du1 = (rr * a1 - Zi) / R3
        du2 = (rr * a2 - Zi) / R3
        dd1 = a1 / R3 + 3.0 * rr * (rr * a1 - Zi) / R3 / (R * R)
        dd2 = a2 / R3 + 3.0 * rr * (rr * a2 - Zi) / R3 / (R * R)
        u1f = np.where(f1[:, idx], u1, 0.0)
        u2f = np.where(f2[:, idx], u2, 0.0)
        dp = d1 * du1 - d2 * du2
        d2p = d1 * (dd1 - u1f * du1 * du1) - d2 * (dd2 - u2f * du2 * du2)
        lik = py1[:, idx] * p
        ok = both[:, idx] & (lik >= SQRT_EPS)
        f = np.sum(np.log(np.where(ok, lik, 1.0)), axis=0)
        g = np.sum(np.where(ok, dp / p, 0.0), axis=0)
        h = np.sum(np.where(ok, d2p / p - (dp / p) ** 2, 0.0), axis=0)
        return f, g, h

    def parts_idx(rr, idx):
        R2 = 1.0 - rr * rr
        R = np.sqrt(R2)
        u1 = (A1[:, idx] - rr * Z[:, idx]) / R
        u2 = (A2[:, idx] - rr * Z[:, idx]) / R
        p = np.maximum(ndtr(u1) - ndtr(u2), EPS)
        d1 = np.where(f1[:, idx], norm_pdf(u1), 0.0)
        d2 = np.where(f2[:, idx], norm_pdf(u2), 0.0)
        return R, u1, u2, p, d1, d2

    rho0 = np.zeros(P) if start is None else np.clip(start, lo, hi)
    rho, conv, _ = newton_rho(fgh, rho0, lo, hi)
    out["rho"] = rho
    out["converged"] = conv

    rr = rho[None, :]
    R, u1, u2, p, d1, d2 = parts_idx(rr, np.arange(P))
    inv = np.where(both, 1.0 / p, 0.0)
    dd = d1 - d2
    sdv = sd[ia][None, :]
    s_rho = inv / R ** 3 * (d1 * (rr * A1f - Z) - d2 * (rr * A2f - Z))
    s_rho = np.where(both, s_rho, 0.0)
    dmu = np.where(both, (Z + inv * (rr / R) * dd) / sdv, 0.0)
    dvar = np.where(both, ((Z * Z - 1.0) + inv * rr * Z / R * dd) / (2.0 * sdv * sdv), 0.0)
    out["s_rho"] = s_rho
    out["Ga"][:, 0] = np.sum(s_rho * dmu, axis=0)
    out["Ga"][:, -1] = np.sum(s_rho * dvar, axis=0)
    w = s_rho * inv / R
    cb = np.where(both, codes[:, ib], -1)
    out["Gb"][:, :tmax] = _th_G(cb, w * d1, w * d2, tmax)
    if q:
        out["Ga"][:, 1:1 + q] = (s_rho * dmu).T @ X
        out["Gb"][:, tmax:] = (w * (d2 - d1)).T @ X
    return out


# ---------------------------------------------------------------------------------------
# Pearson
# ---------------------------------------------------------------------------------------
def pearson(E: np.ndarray, var: np.ndarray, X: Optional[np.ndarray], ia: np.ndarray,
            ib: np.ndarray, *, any_missing: np.ndarray, lo: float = -0.999,
            hi: float = 0.999):
    """Pearson correlations of continuous (residual) values ``E`` (N x p_num, nan missing).

    Pairs whose two variables have no missing value get the sample correlation of the
    residuals; otherwise the bivariate normal ML of rho with the stage-1 means and
    variances fixed (lavaan's lav_bvreg).
    """
    N = E.shape[0]
    P = ia.shape[0]
    q = 0 if X is None else X.shape[1]
    out = dict(rho=np.zeros(P), s_rho=np.zeros((N, P)), Ga=np.zeros((P, 2 + q)),
               Gb=np.zeros((P, 2 + q)), converged=np.ones(P, bool))
    if P == 0:
        return out
    both = ~np.isnan(E[:, ia]) & ~np.isnan(E[:, ib])
    e1 = np.where(both, E[:, ia], 0.0)
    e2 = np.where(both, E[:, ib], 0.0)
    v1 = var[ia][None, :]
    v2 = var[ib][None, :]
    s1 = np.sqrt(v1)
    s2 = np.sqrt(v2)
    # sample correlation of the pairwise complete residuals
    r0 = _pairwise_cor(e1, e2, both)
    rho = r0.copy()
    ml = any_missing[ia] | any_missing[ib]
    a = e1 * e1 / v1
    b = e2 * e2 / v2
    c = e1 * e2 / (s1 * s2)
    if np.any(ml):
        idx_ml = np.flatnonzero(ml)
        logc = -np.log(2.0 * np.pi) - 0.5 * np.log(v1 * v2)

        def fgh(r, i):
            j = idx_ml[i]
            rr = r[None, :]
            D = 1.0 - rr * rr
            Q = a[:, j] - 2.0 * rr * c[:, j] + b[:, j]
            logl = logc[:, j] - 0.5 * np.log(D) - Q / (2.0 * D)
            ok = both[:, j] & (np.exp(logl) >= SQRT_EPS)
            g = (rr + c[:, j]) / D - rr * Q / (D * D)
            h = ((D + 2.0 * rr * (rr + c[:, j])) / (D * D) - (Q - 2.0 * rr * c[:, j]) / (D * D)
                 - 4.0 * rr * rr * Q / D ** 3)
            return (np.sum(np.where(ok, logl, 0.0), axis=0),
                    np.sum(np.where(ok, g, 0.0), axis=0),
                    np.sum(np.where(ok, h, 0.0), axis=0))

        rml, conv, _ = newton_rho(fgh, r0[idx_ml], lo, hi)
        rho[idx_ml] = rml
        out["converged"][idx_ml] = conv
    out["rho"] = rho
    rr = rho[None, :]
    D = 1.0 - rr * rr
    Q = a - 2.0 * rr * c + b
    s_rho = np.where(both, rr / D + c / D - Q * rr / (D * D), 0.0)
    dmu1 = np.where(both, (e1 / v1 - rr * e2 / (s1 * s2)) / D, 0.0)
    dmu2 = np.where(both, (e2 / v2 - rr * e1 / (s1 * s2)) / D, 0.0)
    dv1 = np.where(both, -(0.5 / v1 - (e1 * e1 / (v1 * v1) - rr * e1 * e2 / (v1 * s1 * s2))
                          / (2.0 * D)), 0.0)
    dv2 = np.where(both, -(0.5 / v2 - (e2 * e2 / (v2 * v2) - rr * e1 * e2 / (v2 * s1 * s2))
                          / (2.0 * D)), 0.0)
    out["s_rho"] = s_rho
    out["Ga"][:, 0] = np.sum(s_rho * dmu1, axis=0)
    out["Gb"][:, 0] = np.sum(s_rho * dmu2, axis=0)
    out["Ga"][:, -1] = np.sum(s_rho * dv1, axis=0)
    out["Gb"][:, -1] = np.sum(s_rho * dv2, axis=0)
    if q:
        out["Ga"][:, 1:1 + q] = (s_rho * dmu1).T @ X
        out["Gb"][:, 1:1 + q] = (s_rho * dmu2).T @ X
    return out
