"""Helpers to compare our fits with the committed lavaan reference JSON (tests/reference/json)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import sem_models as sm

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference" / "json"

# fit measures every ML reference is checked on (lavaan names with '.' -> '_')
CORE_MEASURES = [
    "npar", "fmin", "chisq", "df", "pvalue", "baseline_chisq", "baseline_df", "baseline_pvalue",
    "cfi", "tli", "nnfi", "rfi", "nfi", "pnfi", "ifi", "rni", "logl", "unrestricted_logl",
    "aic", "bic", "bic2", "ntotal", "rmsea", "rmsea_ci_lower", "rmsea_ci_upper",
    "rmsea_pvalue", "srmr", "srmr_mplus", "rmr", "crmr",
]


def load_reference(case: str) -> dict:
    with open(REFERENCE / f"{case}.json") as fh:
        return json.load(fh)


def reference_fits(fit_case):
    """``get(case)`` for module-scoped fixtures: ``fit_case(load_reference(case))``, computed
    once per case."""
    cache: dict = {}

    def get(case: str):
        if case not in cache:
            cache[case] = fit_case(load_reference(case))
        return cache[case]
    return get


def reference_data(ref: dict) -> pd.DataFrame:
    return pd.read_csv(ROOT / ref["data"])


def fit_reference(ref: dict, **extra) -> sm.SEMFit:
    call = ref["call"]
    options = dict(call["options"])
    options.update(extra)
    func = sm.cfa if call["function"] == "cfa" else sm.sem
    return func(call["model"], reference_data(ref), **options)


def reference_parameters(ref: dict) -> pd.DataFrame:
    table = pd.DataFrame(ref["parameters"])
    return table[~table["op"].isin(["==", "<", ">"])]


def _key(row, multigroup: bool):
    rhs = "" if row["op"] in ("~1", ":=") else row["rhs"]
    if row["op"] == ":=":
        return (row["lhs"], ":=", "", "")
    return (row["lhs"], row["op"], rhs, row["group"] if multigroup else "")


def merge_estimates(ours: pd.DataFrame, ref: dict, columns=("est", "se")) -> pd.DataFrame:
    """Our rows matched to lavaan's by (lhs, op, rhs, group); fails on unmatched rows."""
    theirs = reference_parameters(ref)
    multigroup = "group" in theirs.columns
    ours = ours.copy()
    if not multigroup:
        ours["group"] = ""
    ours["key"] = [_key(r, multigroup) for _, r in ours.iterrows()]
    theirs = theirs.copy()
    if not multigroup:
        theirs["group"] = ""
    theirs["key"] = [_key(r, multigroup) for _, r in theirs.iterrows()]
    merged = theirs.merge(ours, on="key", how="outer", suffixes=("_ref", ""), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    assert unmatched.empty, f"rows not matched between lavaan and us:\n{unmatched[['key', '_merge']]}"
    return merged


def assert_close(ours, theirs, rtol: float, atol: float, what: str) -> None:
    ours = np.asarray(ours, float)
    theirs = np.asarray(theirs, float)
    both_nan = np.isnan(ours) & np.isnan(theirs)
    ok = both_nan | np.isclose(ours, theirs, rtol=rtol, atol=atol)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise AssertionError(f"{what}: {len(bad)} value(s) differ; first: ours "
                             f"{ours[bad[:5]]} vs lavaan {theirs[bad[:5]]} at {bad[:5]}")


def check_estimates(fit: sm.SEMFit, ref: dict, est_rtol=1e-4, se_rtol=1e-3, se=True) -> None:
    merged = merge_estimates(fit.estimates(), ref)
    assert_close(merged["est"], merged["est_ref"], est_rtol, 1e-5, f"{ref['case']} estimates")
    if se:
        free = merged["free"].fillna(0).to_numpy() > 0
        assert_close(merged.loc[free, "se"], merged.loc[free, "se_ref"], se_rtol, 1e-6,
                     f"{ref['case']} standard errors")


def check_measures(fit: sm.SEMFit, ref: dict, names=CORE_MEASURES, rtol=1e-4) -> None:
    ours = fit.measures()
    for name in names:
        assert name in ours.index, f"fit measure {name} missing"
        assert_close([ours[name]], [ref["fit"][name]], rtol, 1e-6, f"{ref['case']} {name}")
