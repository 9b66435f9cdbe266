"""Scaled chi-square difference tests as lavaan's ``lavTestLRT``: Satorra & Bentler (2001),
Satorra & Bentler (2010) and Satorra (2000)."""
from __future__ import annotations

import warnings

import numpy as np

from .distributions import chi2_sf
from .options import _se_information_kind, scaled_test_name
from .sandwich import _block_diag, _evaluator, _h1, _orthogonal_complement
from .scaled import scaled_test

__all__ = ["scaled_difference_test"]



def _values_for(fit_target, fit_source) -> np.ndarray:
    """The source fit's estimates written into the target fit's parameter table."""
    pt_t, pt_s = fit_target._partable, fit_source._partable
    key = lambda pt: list(zip(pt["lhs"], pt["op"], pt["rhs"], pt["group"]))
    source = dict(zip(key(pt_s), fit_source.values))
    values = fit_target.values.copy()
    missing = []
    for i, k in enumerate(key(pt_t)):
        if k in source:
            values[i] = source[k]
        elif pt_t["free"].iat[i] > 0:
            missing.append(k)
    if missing:
        raise ValueError(f"the models are not nested in the same parameter table: "
                         f"{missing[:3]} of the less restricted model are not in the other")
    return values


def scaled_difference_test(fit0, fit1, method: str = "satorra.bentler.2001",
                           scaled_shifted: bool = True) -> dict:
    """Scaled chi-square difference test of nested robust fits (lavaan's ``lavTestLRT``).

    ``fit0`` is the more restricted model (the order is fixed by the degrees of freedom).
    Methods (T = standard statistics, r = df, c = scaling factors, m = r0 - r1):

    * ``"satorra.bentler.2001"`` (Satorra & Bentler 2001): ``cd = (r0 c0 - r1 c1) / m``,
      ``T_d = (T0 - T1) / cd``;
    * ``"satorra.bentler.2010"`` (Satorra & Bentler 2010): c1 replaced by the scaling factor
      of the less restricted model evaluated at the restricted model's estimates (M10);
    * ``"satorra.2000"`` (Satorra 2000): ``cd = tr(U Gamma) / m`` with ``U`` from the
      restrictions ``A`` (delta method: the orthogonal complement of ``Delta1^+ Delta0``),
      ``P^-1 A' (A P^-1 A')^- A P^-1`` in place of the model's projection; complete data.
      By default (``scaled_shifted=True``, as lavTestLRT) the scaled-and-shifted version
      ``a (T0 - T1) + b`` (then ``scaling`` is NaN and ``a``, ``b`` are returned);
      ``scaled_shifted=False`` gives ``(T0 - T1) / cd`` with ``cd = tr(U Gamma) / m``.

    Returns ``{"chisq_diff", "df_diff", "pvalue", "scaling", "method"}``.
    """
    method = {"default": "satorra.bentler.2001"}.get(method, method)
    s0, s1 = fit0._standard_test(), fit1._standard_test()
    if s0["df"] < s1["df"]:
        fit0, fit1, s0, s1 = fit1, fit0, s1, s0
    if scaled_test_name(fit0) is None or scaled_test_name(fit1) is None:
        raise ValueError("scaled difference tests need fits with a scaled test statistic "
                         "(estimator 'MLM' or 'MLR')")
    T0, r0, T1, r1 = s0["chisq"], s0["df"], s1["chisq"], s1["df"]
    m = r0 - r1
    if m == 0:
        return {"chisq_diff": T0 - T1, "df_diff": 0, "pvalue": np.nan, "scaling": np.nan,
                "method": method}
    c0 = fit0._test_statistics().get("chisq_scaling_factor", np.nan)
    c1 = fit1._test_statistics().get("chisq_scaling_factor", np.nan) if r1 > 0 else 1.0
    if method == "satorra.bentler.2001":
        cd = (r0 * c0 - r1 * c1) / m
    elif method == "satorra.bentler.2010":
        if r0 == 0:
            c0 = 1.0
        values = _values_for(fit1, fit0)
        pmap = fit1.problem.pmap
        z10 = pmap.z_from_free(values[pmap.free_rows])
        c10 = scaled_test(fit1, z=z10, df=r1)["scaling"] if r1 > 0 else 1.0
        cd = (r0 * c0 - r1 * c10) / m
    elif method == "satorra.2000":
        res = _satorra_2000(fit0, fit1, m, scaled_shifted)
        if scaled_shifted:
            T = res["a"] * (T0 - T1) + res["b"]
            return {"chisq_diff": float(T), "df_diff": int(m),
                    "pvalue": float(chi2_sf(T, m)), "scaling": np.nan,
                    "method": method, "a": float(res["a"]), "b": float(res["b"])}
        cd = res["cd"]
    else:
        raise ValueError(f"method={method!r}: choose 'satorra.bentler.2001', "
                         "'satorra.bentler.2010' or 'satorra.2000'")
    if not np.isfinite(cd) or cd < 0:
        warnings.warn("the scaling factor of the difference test is negative; the scaled "
                      "difference is not available (try method='satorra.bentler.2010')",
                      UserWarning, stacklevel=2)
        cd = np.nan
    T = (T0 - T1) / cd
    return {"chisq_diff": float(T), "df_diff": int(m),
            "pvalue": float(chi2_sf(T, m)) if np.isfinite(T) else np.nan,
            "scaling": float(cd), "method": method}


def _satorra_2000(fit0, fit1, m: int, scaled_shifted: bool = True) -> dict:
    """Satorra (2000) with the delta-method restriction matrix, as lavaan's
    ``lav_test_diff_Satorra2000(H1 = TRUE)``: ``U = V Delta1 P^-1 A' (A P^-1 A')^- A P^-1
    Delta1' V`` (V the expected h1 information, P the fit's information, Gamma the
    distribution-free one), ``tr(U Gamma)`` weighted by ``N_g / N``.  ``scaled_shifted``
    (lavTestLRT's default) gives ``a = sqrt(m / tr((U Gamma)^2))``, ``b = m - a tr(U Gamma)``
    and ``T_d = a (T0 - T1) + b`` (Asparouhov & Muthen 2010); otherwise ``cd = tr(U Gamma) / m``.
    """
    ev1 = _evaluator(fit1)
    ev0 = _evaluator(fit0)
    return satorra_2000_traces(ev1.deltas, ev0.deltas, ev1.structured_expected,
                               ev1.information(_se_information_kind(fit1)), _h1(fit1).gamma,
                               fit1.problem.weights, m, scaled_shifted)


def satorra_2000_traces(deltas1: list, deltas0: list, V: list, P: np.ndarray, gamma: list,
                        w: np.ndarray, m: int, scaled_shifted: bool = True) -> dict:
    """The traces of :func:`_satorra_2000` from its pieces (any loss family): per group the
    Jacobians ``Delta1_g``, ``Delta0_g`` of the two models' statistics in their own parameters,
    the weight ``V_g`` (ML: expected h1 information; WLS: the weight matrix), the
    information ``P`` of the less restricted model, ``Gamma_g`` and ``w_g = N_g / N``."""
    Pinv = np.linalg.inv(P)
    D1 = np.vstack(deltas1)
    D0 = np.vstack(deltas0)
    H = np.linalg.pinv(D1) @ D0
    A = _orthogonal_complement(H).T
    APA = A @ Pinv @ A.T
    PAAPAAP = Pinv @ A.T @ np.linalg.pinv(APA) @ A @ Pinv
    trace = 0.0
    for wg, D, Vg, Gg in zip(w, deltas1, V, gamma):
        trace += wg * np.trace(Vg @ Gg @ Vg @ D @ PAAPAAP @ D.T)
    if not scaled_shifted:
        return {"cd": trace / m}
    V_all = _block_diag(*V)
    G_all = _block_diag(*[wg * Gg for wg, Gg in zip(w, gamma)])
    U = V_all @ D1 @ PAAPAAP @ D1.T @ V_all
    UG = U @ G_all
    trace2 = float(np.sum(UG * UG.T))
    a = np.sqrt(m / trace2)
    return {"a": a, "b": m - a * trace, "trace": trace, "trace2": trace2}
