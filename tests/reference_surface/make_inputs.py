"""Write the inputs of the lavaan response-surface reference (run from the repo root).

    python tests/reference_surface/make_inputs.py
    Rscript tests/reference_surface/make_surface_reference.R

Writes ``data/rsa_sim.csv`` (simulated alliance-like data, two formats) and
``syntax/<case>.lav`` (model syntax produced by ``sem_models.surface.polynomial_syntax``).
``tests/test_surface_lavaan.py`` checks that the syntax files still equal the generator's
output and compares the module's computations with lavaan's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sem_models.surface import polynomial_syntax

HERE = Path(__file__).resolve().parent
OUTCOME, X, Y, CONTROLS = "int_fu", "t_bond", "c_bond", ("int_pre",)
GROUPS = ("group", "individual")  # lavaan's order = order of first appearance in the data

#: case -> (model, multi-group, define stationary point / axes)
CASES: dict[str, tuple[str, bool, bool]] = {
    "rsa_full": ("full", False, True),
    "rsa_SRR": ("SRR", False, False),
    "rsa_RR": ("RR", False, False),
    "rsa_SSQD": ("SSQD", False, False),
    "rsa_SQD": ("SQD", False, False),
    "rsa_interaction": ("interaction", False, True),
    "rsa_additive": ("additive", False, False),
    "rsa_null": ("null", False, False),
    "rsa_full_groups": ("full", True, True),
    "rsa_SQD_groups": ("SQD", True, False),
}


def case_syntax(case: str) -> str:
    model, groups, stationary = CASES[case]
    return polynomial_syntax(OUTCOME, X, Y, controls=CONTROLS, model=model,
                             group_labels=GROUPS if groups else None, stationary=stationary)


def simulate(seed: int = 20261125, n_per_group: int = 200) -> pd.DataFrame:
    """Therapist (t_bond) and child (c_bond) bond on a 1..4 scale (means of 6 items), a
    baseline and a follow-up internalizing T-score; disagreement matters in groups only."""
    rng = np.random.default_rng(seed)
    frames = []
    for fmt in GROUPS:
        n = n_per_group
        trait = rng.normal(size=n)
        t = np.clip(np.round((2.9 + 0.45 * trait + 0.4 * rng.normal(size=n)) * 6) / 6, 1, 4)
        c = np.clip(np.round((3.1 + 0.45 * trait + 0.45 * rng.normal(size=n)) * 6) / 6, 1, 4)
        pre = 60 + 8 * rng.normal(size=n)
        tc, cc = t - 2.5, c - 2.5
        disc = 2.0 * (tc - cc) ** 2 if fmt == "group" else 0.3 * (tc - cc) ** 2
        fu = 20 + 0.5 * pre - 2.0 * (tc + cc) + disc + 7 * rng.normal(size=n)
        frames.append(pd.DataFrame({"format": fmt, "t_bond": t, "c_bond": c,
                                    "int_pre": pre, "int_fu": fu}))
    df = pd.concat(frames, ignore_index=True)
    # interleave the formats (first row is "group", so lavaan's group order is GROUPS)
    order = np.argsort(np.r_[np.arange(n_per_group) * 2, np.arange(n_per_group) * 2 + 1],
                       kind="stable")
    return df.iloc[order].reset_index(drop=True)


def main() -> None:
    (HERE / "data").mkdir(exist_ok=True)
    (HERE / "syntax").mkdir(exist_ok=True)
    simulate().to_csv(HERE / "data" / "rsa_sim.csv", index=False, float_format=None)
    for case in CASES:
        (HERE / "syntax" / f"{case}.lav").write_text(case_syntax(case))


if __name__ == "__main__":
    main()
