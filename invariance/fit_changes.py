"""The columns of an invariance table: the fit indices of one level and the changes between two.

:func:`_measures` reads a fit's indices under lavaan's names (for robust estimators also the
scaled statistic and the robust CFI / TLI / RMSEA; for ordinal items also the robust indices of
the (D)WLS statistic, :mod:`invariance.ordinal`); :func:`_changes` compares two nested levels:
the chi-square difference test (Satorra & Bentler 2001 scaled difference for robust
estimators, Satorra 2000 for WLSMV, through :func:`sem_models.compare`) and the changes in
CFI, TLI, RMSEA and SRMR of the index family chosen for the decisions (Cheung & Rensvold 2002;
Chen 2007).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

import sem_models as sm

ROBUST = ("MLM", "MLR", "MLMV", "MLMVS", "WLSMV", "WLSM", "ULSMV", "ULSM")
_INDEX_COLUMNS = ["npar", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "aic", "bic"]
#: columns of an ordinal sequence's table (lavaan's names; ``*_robust`` are lavaan's catML
#: indices, NaN once thresholds are constrained; ``*_robust_wls`` are defined at every step,
#: see :mod:`invariance.ordinal`)
_ORDINAL_COLUMNS = ["npar", "chisq", "df", "pvalue", "chisq_scaled", "df_scaled",
                    "pvalue_scaled", "cfi", "tli", "rmsea", "cfi_scaled", "tli_scaled",
                    "rmsea_scaled", "cfi_robust", "tli_robust", "rmsea_robust",
                    "cfi_robust_wls", "tli_robust_wls", "rmsea_robust_wls", "srmr"]
FIT_INDEX_FAMILIES = ("robust", "robust_wls", "scaled", "standard")


_ROBUST_COLUMNS = ["chisq_scaled", "pvalue_scaled", "cfi_robust", "tli_robust", "rmsea_robust"]
_DIFFERENCE_TESTS = {"standard": "likelihood ratio (chi-square difference)",
                     "satorra.bentler.2001": "Satorra-Bentler 2001 scaled difference",
                     "satorra.bentler.2010": "Satorra-Bentler 2010 scaled difference",
                     "satorra.2000": "Satorra 2000 scaled difference"}


def _is_ordinal(fit) -> bool:
    return bool(fit.options.get("ordered"))


def _measures(fit) -> dict:
    """Fit indices for the table under lavaan's names: the standard ones, and for robust
    estimators also ``chisq_scaled``, ``pvalue_scaled`` and the robust CFI, TLI, RMSEA.
    Ordinal fits: :data:`_ORDINAL_COLUMNS` (scaled, lavaan's robust and the robust indices of
    the (D)WLS statistic, :func:`invariance.ordinal.robust_wls_measures`)."""
    series = fit.measures()  # as a dict: the look-ups below without pandas indexing (read
    m = dict(zip(series.index.tolist(), series.tolist()))  # in two lists: to_dict's third)
    if _is_ordinal(fit):
        from .ordinal import robust_wls_measures
        out = {k: float(m[k]) if k in m else np.nan for k in _ORDINAL_COLUMNS}
        out.update(robust_wls_measures(fit))
        return out
    out = {k: float(m[k]) if k in m else np.nan for k in _INDEX_COLUMNS}
    est = str(fit.options.get("estimator", "ML")).upper()
    if est in ROBUST and "chisq_scaled" in m:
        out["chisq_scaled"] = float(m["chisq_scaled"])
        out["pvalue_scaled"] = float(m.get("pvalue_scaled", np.nan))
        for k in ("cfi", "tli", "rmsea"):
            val = np.nan
            for cand in (f"{k}_robust", f"{k}_scaled"):
                if cand in m and np.isfinite(m[cand]):
                    val = float(m[cand])
                    break
            out[f"{k}_robust"] = val
    return out


def _index(m: Mapping, k: str, family: str = "robust") -> float:
    """Index ``k`` (cfi, tli, rmsea) of the family used for the decisions: ``"robust"`` (the
    robust version when there is one, else the standard one; continuous data),
    ``"robust_wls"`` (ordinal data: the robust indices of the (D)WLS statistic),
    ``"scaled"`` or ``"standard"``."""
    def get(name):
        v = m.get(name, np.nan)
        return float(v) if v is not None and np.isfinite(v) else np.nan

    if family == "robust_wls":
        return get(f"{k}_robust_wls")
    if family == "scaled":
        return get(f"{k}_scaled")
    if family == "standard":
        return get(k)
    v = get(f"{k}_robust")
    if np.isfinite(v) or "cfi_robust_wls" in m:  # ordinal: no fallback to the standard one
        return v
    return get(k)


def _changes(prev, cur, prev_m: dict, cur_m: dict, family: str = "robust") -> dict:
    out = {}
    try:
        standard = _standard_difference(prev, cur, prev_m, cur_m)
        if standard is not None:
            out.update(standard)
        else:
            lrt = sm.compare(prev, cur)
            row = lrt.iloc[-1]
            out.update(delta_chisq=float(row["chisq_diff"]), delta_df=float(row["df_diff"]),
                       delta_pvalue=float(row["pvalue"]),
                       difference_test=_DIFFERENCE_TESTS.get(
                           str(row.get("method", "standard")), str(row.get("method", ""))))
    except (ValueError, NotImplementedError, ImportError) as exc:  # pragma: no cover
        out.update(delta_chisq=np.nan, delta_df=cur_m["df"] - prev_m["df"],
                   delta_pvalue=np.nan, difference_test="", note=str(exc))
    for k in ("cfi", "tli", "rmsea"):
        out[f"delta_{k}"] = _index(cur_m, k, family) - _index(prev_m, k, family)
    out["delta_srmr"] = cur_m["srmr"] - prev_m["srmr"]
    return out


def _standard_difference(prev, cur, prev_m: dict, cur_m: dict):
    """The chi-square difference test of two fits with standard tests only (no scaled
    statistic, not a least-squares / MLMV / ordinal fit), from their measures, as
    :func:`sem_models.compare` computes it (lavaan's ``lavTestLRT``): the fit with more
    degrees of freedom is the restricted one, ``chisq_1 - chisq_0`` on ``df_1 - df_0``
    degrees of freedom, the upper chi-square tail as p-value.  Without :func:`compare`'s
    table (issue 18: its pandas cost per level).  None when another test applies or the
    fits have different numbers of cases (:func:`compare` then decides or raises)."""
    from sem_models.inference.distributions import chi2_sf
    from sem_models.inference.options import scaled_test_name
    from sem_models.inference.wls_inference import WLS_FAMILY
    for fit in (prev, cur):
        if (_is_ordinal(fit) or fit.options.get("estimator") in WLS_FAMILY
                or scaled_test_name(fit) is not None):
            return None
    if prev.ntotal != cur.ntotal:
        return None
    first, last = (prev_m, cur_m) if cur_m["df"] >= prev_m["df"] else (cur_m, prev_m)
    ddf = last["df"] - first["df"]
    diff = last["chisq"] - first["chisq"]
    return {"delta_chisq": float(diff), "delta_df": float(ddf),
            "delta_pvalue": float(chi2_sf(diff, ddf)) if ddf > 0 else np.nan,
            "difference_test": _DIFFERENCE_TESTS["standard"]}
