"""Inputs of the issue-6 lavaan references (outcome models, latent congruence model).

Run from the repository root: ``PYTHONPATH=. python tests/reference/make_issue6_inputs.py``,
then ``Rscript tests/reference/cases_issue6.R``. Writes
``tests/reference/data/issue6_sim.csv`` (simulate_alliance(seed=606), items reverse-scored,
only the columns used), ``issue6_alliance_bond.csv`` (the bundled data/alliance.csv,
reverse-scored bond items; the study's latent congruence model by format) and the model syntax ``tests/reference/syntax_issue6/*.lav`` made by
the package's builders, so that lavaan fits exactly what the builders write.
"""
from pathlib import Path

from measurement import Design, reverse_score, trait_model
from sem_models.congruence import congruence_items, congruence_starts, congruence_syntax
from sem_models.datasets import simulate_alliance
from sem_models.outcomes import outcome_syntax

ROOT = Path(__file__).resolve().parent
OUTCOMES = {"ext_fu": ["ext_pre"], "int_fu": ["int_pre"]}
PREDICTORS = ["t_bond", "t_task"]


def design():
    return Design(informants=["t", "c"], occasions=["mid", "end"], dimensions=["bond", "task"],
                  items=[1, 2, 3, 4], pattern="{informant}_{occasion}_{dimension}{item}",
                  reverse=[2, 4])


def measurement_syntax():
    d = Design(informants=["t"], occasions=["mid", "end"], dimensions=["bond", "task"],
               items=[1, 2, 3], pattern="{informant}_{occasion}_{dimension}{item}", reverse=[2])
    return trait_model(d)


def lcm_items():
    return congruence_items(design(), "bond", occasions=["mid"])


def lcm_design():
    from sem_models.study import alliance_design
    return alliance_design()


def lcm_data():
    """The bundled data/alliance.csv, reverse-scored: bond items, int_pre, int_fu, format."""
    from sem_models.datasets import load
    df = reverse_score(load("alliance"), lcm_design())
    cols = ["child_id", "school", "format", "int_pre", "int_fu"]
    return df[cols + lcm_design().columns(dimension="bond")]


def lcm_study_items():
    """The study's latent congruence model: bond items of both occasions, same-item residuals
    correlated over time."""
    return congruence_items(lcm_design(), "bond", raters=("t", "c"))


def data():
    df = simulate_alliance(seed=606)
    df = reverse_score(df, design())
    cols = ["child_id", "school", "format", "ext_pre", "int_pre", "ext_fu", "int_fu"]
    cols += design().columns()
    return df[cols]


def syntaxes(df):
    GROUPS = list(df["format"].drop_duplicates())   # lavaan's order: first appearance
    meas = measurement_syntax()
    out = {
        "out_single": outcome_syntax(meas, OUTCOMES, PREDICTORS),
        "out_free": outcome_syntax(meas, OUTCOMES, PREDICTORS, group_labels=GROUPS),
        "out_equal_one": outcome_syntax(meas, OUTCOMES, PREDICTORS, group_labels=GROUPS,
                                        equal=[("ext_fu", "t_bond")]),
        "out_equal_all": outcome_syntax(meas, OUTCOMES, PREDICTORS, group_labels=GROUPS,
                                        equal=[(y, p) for y in OUTCOMES for p in PREDICTORS]),
    }
    t, c, _ = lcm_items()
    starts = congruence_starts(df, t[0], c[0])
    out["lcm_single"] = congruence_syntax(t, c, "int_fu", ["int_pre"], dimension="bond",
                                          starts=starts)
    out["lcm_single_second"] = congruence_syntax(t, c, "int_fu", ["int_pre"], dimension="bond",
                                                 starts=starts, parameterization="second-order")
    ld = lcm_data()
    t, c, pairs = lcm_study_items()
    out["lcm_groups"] = congruence_syntax(
        t, c, "int_fu", ["int_pre"], dimension="bond", residual_pairs=pairs,
        starts=congruence_starts(ld, t[0], c[0]),
        group_labels=list(ld["format"].drop_duplicates()))
    return out


if __name__ == "__main__":
    df = data()
    df.to_csv(ROOT / "data" / "issue6_sim.csv", index=False, float_format="%.0f")
    lcm_data().to_csv(ROOT / "data" / "issue6_alliance_bond.csv", index=False,
                      float_format="%.0f")
    for name, text in syntaxes(df).items():
        (ROOT / "syntax_issue6" / f"{name}.lav").write_text(text)
    print("wrote", ROOT / "data" / "issue6_sim.csv", "and", len(syntaxes(df)), "syntax files")
