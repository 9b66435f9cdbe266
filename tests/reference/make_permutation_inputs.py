"""Inputs for tests/reference/cases_permutation.R (run from the repository root, before it).

Writes ``data/permutation_hs_codes.csv``: the group permutations our seeded streams draw for
the permutation test of HS39 by school (``invariance.permutation_test(..., seed=SEED)``):
one column ``p<r>`` per permutation r, one row per case in the stacked-by-group order of the
fitted data (lavaan's ``lavInspect(fit, "data")``: the Pasteur rows, then the Grant-White
rows, each in file order), holding the permuted group number (1 = Pasteur, 2 = Grant-White).
R replaces semTools' own shuffle by these (``permuteMeasEq(..., datafun=)``), so both
programs refit the same permuted data sets.  The test regenerates the columns from the seed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "reference" / "data"

MODEL = """
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"""
#: levels: name -> group_equal
LEVELS = {"configural": [], "metric": ["loadings"], "scalar": ["loadings", "intercepts"]}
INDICES = ["chisq", "cfi", "tli", "rmsea", "srmr", "aic", "bic"]
SEED = 4321
REPS = 60


def fits():
    import sem_models as sm
    data = pd.read_csv(ROOT / "data" / "HolzingerSwineford1939.csv")
    return {name: sm.cfa(MODEL, data, group="school", group_equal=eq)
            for name, eq in LEVELS.items()}


def codes() -> pd.DataFrame:
    """The permuted group numbers (1-based) of every permutation r = 0 .. REPS - 1."""
    from invariance.permutation import permute_codes
    from sem_models.resampling import replication_rng
    fit = fits()["configural"]
    base = np.repeat(np.arange(fit.n_groups), [g.X.shape[0] for g in fit.data.groups])
    return pd.DataFrame({f"p{r}": permute_codes(base, replication_rng(SEED, r)) + 1
                         for r in range(REPS)})


def main() -> None:
    codes().to_csv(DATA / "permutation_hs_codes.csv", index=False)
    print("wrote", DATA / "permutation_hs_codes.csv", file=sys.stderr)


if __name__ == "__main__":
    main()
