"""Likelihood-ratio (chi-square difference) tests of nested models (lavaan's ``lavTestLRT``).

Models are sorted by their degrees of freedom; each is tested against the previous (less
restricted) one: ``chisq_diff = X2_1 - X2_0`` on ``df_1 - df_0`` degrees of freedom, with the
RMSEA of the difference ``sqrt(G) sqrt(max(chisq_diff - df_diff, 0) / (N df_diff))``
(Savalei, Brace & Fouladi 2023 discuss its use).  For robust estimators (MLM, MLR) the scaled
difference test of Satorra & Bentler (2001; 2010 by option) from :mod:`sem_models.inference.sandwich`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .distributions import chi2_sf

__all__ = ["compare"]

def compare(*fits, method: str = "default", **named_fits) -> pd.DataFrame:
    """Compare nested fits: ``compare(fit0, fit1)`` or ``compare(configural=f0, metric=f1)``.

    Returns a DataFrame indexed by model name with columns df, npar, aic, bic, chisq,
    chisq_diff, df_diff, rmsea, pvalue (and ``method``); ``method`` chooses the scaled
    difference test for robust fits: ``"satorra.bentler.2001"`` (default) or
    ``"satorra.bentler.2010"``; for WLSMV / ULSMV / MLMV fits the default is lavaan's
    ``"satorra.2000"`` (scaled and shifted; :func:`.wls_inference.wls_difference_test`).
    """
    items = [(f"fit{k + 1}", f) for k, f in enumerate(fits)] + list(named_fits.items())
    if len(items) < 2:
        raise ValueError("compare() needs at least two fitted models")
    for name, fit in items:
        if not hasattr(fit, "measures"):
            raise TypeError(f"{name} is not a fitted model (got {type(fit).__name__})")
    ntotals = {fit.ntotal for _, fit in items}
    if len(ntotals) > 1:
        raise ValueError(f"the models were fitted to different numbers of cases {sorted(ntotals)}; "
                         "nested-model tests need the same data")
    rows = []
    for name, fit in items:
        m = fit.measures()
        rows.append({"model": name, "df": m["df"], "npar": m["npar"],
                     "aic": m.get("aic", np.nan), "bic": m.get("bic", np.nan),
                     "chisq": m["chisq"], "fit": fit})
    rows.sort(key=lambda row: row["df"])  # stable: ties keep the order given
    from .options import scaled_test_name
    from .wls_inference import WLS_FAMILY, wls_scaled_test
    # GLS / WLS / DWLS / ULS (and their M / MV variants) and MLMV: :mod:`.wls_inference`
    in_wls = [row["fit"].options.get("estimator") in WLS_FAMILY for row in rows]
    if any(in_wls) and not all(in_wls):
        raise ValueError("compare() needs fits by the same family of estimators (least-squares "
                         "or MLMV fits cannot be compared with ML / MLM / MLR fits)")
    wls = all(in_wls)
    # a scaled difference test when the fits have a scaled statistic (MLM, MLR, ML + cluster)
    robust = all((wls_scaled_test if wls else scaled_test_name)(row["fit"]) is not None
                 for row in rows)
    if robust and method == "default" and not wls:
        method = "satorra.bentler.2001"
    rows[0].update(chisq_diff=np.nan, df_diff=np.nan, rmsea=np.nan, pvalue=np.nan)
    for prev, row in zip(rows, rows[1:]):
        f0, f1 = prev["fit"], row["fit"]
        ddf = row["df"] - prev["df"]
        if robust and wls:  # default: Satorra (2000) scaled and shifted, as lavTestLRT
            from .wls_inference import wls_difference_test
            res = wls_difference_test(f1, f0, method)
            diff, ddf, method = res["chisq_diff"], res["df_diff"], res["method"]
        elif robust:
            from .difference import scaled_difference_test
            res = scaled_difference_test(f1, f0, method)
            diff, ddf = res["chisq_diff"], res["df_diff"]
        else:
            diff = row["chisq"] - prev["chisq"]
        n, G = f1.ntotal, f1.n_groups
        rmsea = np.sqrt(G) * np.sqrt(max(diff - ddf, 0.0) / (n * ddf)) if ddf > 0 else np.nan
        row.update(chisq_diff=diff, df_diff=ddf, rmsea=rmsea,
                   pvalue=float(chi2_sf(diff, ddf)) if ddf > 0 else np.nan)
    for row in rows:
        del row["fit"]
        row["method"] = method if robust else "standard"
    return pd.DataFrame(rows).set_index("model")
