"""Inputs for tests/reference/cases_resampling.R (run from the repository root, before it).

Writes, from our seeded bootstrap streams:

* ``data/resampling_boot_idx.csv``: for a few cases the rows (1-based positions in the data
  file) of some bootstrap samples; R refits lavaan on exactly these samples;
* ``data/resampling_boot_draws.csv``: 200 bootstrap draws of the HS39 CFA with ``ab := a*b``;
  R recomputes lavaan's bootstrap intervals (perc, basic, norm, bca.simple) from them.

The tests regenerate both from the seeds and compare (so a change of numpy's streams shows).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "reference" / "data"

HS_MODEL = """
visual  =~ x1 + x2 + a*x3
textual =~ x4 + x5 + b*x6
speed   =~ x7 + x8 + x9
ab := a*b
"""
HS_PLAIN = """
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"""

#: case -> (data file, model, options, R, seed)
CASES = {
    "hs_ord": ("HolzingerSwineford1939.csv", HS_MODEL, {}, 20, 11),
    "hs_mg": ("HolzingerSwineford1939.csv", HS_PLAIN,
              {"group": "school", "group_equal": ["loadings"]}, 5, 12),
    "hs_fiml": ("hs_mcar.csv", HS_PLAIN, {"missing": "fiml"}, 5, 13),
}
DRAWS_CASE = ("HolzingerSwineford1939.csv", HS_MODEL, {}, 200, 2024)


def data_path(name: str) -> Path:
    return ROOT / "data" / name if (ROOT / "data" / name).exists() else DATA / name


def case_fit(name: str):
    import sem_models as sm
    file, model, opts, R, seed = CASES[name] if name in CASES else DRAWS_CASE
    data = pd.read_csv(data_path(file))
    return sm.sem(model, data, **opts), data, R, seed


def case_indices(name: str) -> pd.DataFrame:
    """Rows (1-based, in the data file) of bootstrap samples 0 .. R-1 of a case."""
    from sem_models.resampling.boot import _Sampler
    from sem_models.resampling.executor import replication_rng
    fit, _, R, seed = case_fit(name)
    Xs = [g.X for g in fit.data.groups]
    sampler = _Sampler("ordinary", Xs, None, None)
    rows = []
    for r in range(R):
        for g, idx in enumerate(sampler.indices(replication_rng(seed, r))):
            pos = np.asarray(fit.data.groups[g].row_index)[idx] + 1
            rows.append(pd.DataFrame({"case": name, "rep": r, "row": pos}))
    return pd.concat(rows, ignore_index=True)


def draws() -> pd.DataFrame:
    import sem_models as sm
    from sem_models.resampling import bootstrap
    file, model, opts, R, seed = DRAWS_CASE
    fit = sm.sem(model, pd.read_csv(data_path(file)), **opts)
    res = bootstrap(fit, R, seed=seed, executor="serial", progress=False)
    return res.draws[res.names]


def main() -> None:
    idx = pd.concat([case_indices(name) for name in CASES], ignore_index=True)
    idx.to_csv(DATA / "resampling_boot_idx.csv", index=False)
    draws().to_csv(DATA / "resampling_boot_draws.csv", index=False, float_format="%.17g")
    print("wrote", DATA / "resampling_boot_idx.csv", DATA / "resampling_boot_draws.csv",
          file=sys.stderr)


if __name__ == "__main__":
    main()
