"""Input of tests/reference/cases_study_twolevel.R (run from the repository root, before it).

Writes ``data/study_twolevel_trait.csv``: the group format of the bundled alliance data
(``sem_models.datasets.load("alliance")``, items 2, 4, 6 reverse-scored), the therapy-group
id and the four trait scale scores (mean of the available items of both occasions, at least
half of them), as ``sem_models.study.twolevel_step.twolevel_data`` builds them for the
study's two-level sensitivity step. Written with round-trip float digits; the test rebuilds
the frame and checks it equals this file.
"""
from __future__ import annotations

from pathlib import Path

from measurement import reverse_score

import sem_models as sm
from sem_models.study.pipeline import alliance_design
from sem_models.study.twolevel_step import twolevel_data

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "reference" / "data" / "study_twolevel_trait.csv"


def build():
    design = alliance_design()
    df = reverse_score(sm.datasets.load("alliance"), design)
    data, _ = twolevel_data(df, design, "format", "group")
    return data


if __name__ == "__main__":
    build().to_csv(OUT, index=False, float_format="%.17g")
    print(f"wrote {OUT}")
