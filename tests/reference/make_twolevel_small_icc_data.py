"""Write the bundled simulated alliance study as CSV for cases_twolevel_small_icc.R.

Run from the repository root (before the R script):

    python tests/reference/make_twolevel_small_icc_data.py

``sem_models.datasets.load("alliance")`` exported unchanged (pandas writes floats with
round-trip precision) to ``tests/reference/data/twolevel_small_icc_alliance.csv``.
"""
from pathlib import Path

from sem_models.datasets import load

OUT = Path(__file__).parent / "data" / "twolevel_small_icc_alliance.csv"

if __name__ == "__main__":
    load("alliance").to_csv(OUT, index=False)
    print(f"wrote {OUT}")
