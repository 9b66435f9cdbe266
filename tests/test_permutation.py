"""Permutation tests of measurement invariance (invariance.permutation_test).

Reference: tests/reference/json/permutation.json (tests/reference/cases_permutation.R:
semTools 0.5-6 permuteMeasEq on lavaan 0.6-14 refits of HS39 by school, on the permutations
our seeded streams draw, written by tests/reference/make_permutation_inputs.py).
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import invariance
import sem_models as sm
from invariance.permutation import is_badness, permutation_test

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "tests" / "reference" / "json" / "permutation.json").read_text())
sys.path.insert(0, str(ROOT / "tests" / "reference"))
import make_permutation_inputs as inputs  # noqa: E402

HS = pd.read_csv(ROOT / "data" / "HolzingerSwineford1939.csv")


@pytest.fixture(scope="module")
def hs_fits():
    return inputs.fits()


@pytest.fixture(scope="module")
def hs_result(hs_fits):
    return permutation_test(hs_fits, inputs.REPS, seed=inputs.SEED, indices=inputs.INDICES,
                            executor="serial", progress=False)


def test_permutations_are_the_stored_ones():
    stored = pd.read_csv(ROOT / "tests" / "reference" / "data" / "permutation_hs_codes.csv")
    fresh = inputs.codes()
    assert fresh.equals(stored), "numpy's permutation stream changed: rerun " \
        "make_permutation_inputs.py and cases_permutation.R"


@pytest.mark.parametrize("model", ["configural", "metric", "scalar"])
def test_distribution_observed_and_pvalues_match_semtools(hs_result, model):
    ref = REF[model]
    table = hs_result.table[hs_result.table["model"] == model].set_index("index")
    deltas = hs_result.deltas(model)
    for idx in inputs.INDICES:
        # per permutation: the change in the index (the configural model: the index itself)
        np.testing.assert_allclose(deltas[idx].to_numpy(), ref["dist"][idx], rtol=1e-4,
                                   atol=1e-6, err_msg=f"{model} {idx}")
        # a change is a difference of two statistics, each within lavaan's convergence
        # tolerance: absolute tolerance
        np.testing.assert_allclose(table.loc[idx, "observed"], ref["observed"][idx],
                                   rtol=1e-4, atol=1e-6)
        assert table.loc[idx, "p_value"] == pytest.approx(ref["pvalue"][idx], abs=1e-12), \
            (model, idx)
        assert table.loc[idx, "used"] == REF["n_permutations"]


def test_pvalues_follow_the_badness_rule(hs_result):
    assert is_badness("chisq") and is_badness("rmsea") and is_badness("srmr")
    assert is_badness("bic") and not is_badness("cfi") and not is_badness("tli")
    deltas = hs_result.deltas("metric")
    row = hs_result.table.set_index(["model", "index"]).loc[("metric", "cfi")]
    assert row["p_value"] == np.mean(deltas["cfi"] <= row["observed"])
    row = hs_result.table.set_index(["model", "index"]).loc[("metric", "chisq")]
    assert row["p_value"] == np.mean(deltas["chisq"] >= row["observed"])
    # scalar invariance fails clearly: no permutation changes the fit as much
    assert hs_result.pivot().loc["scalar"].max() == 0.0
    assert hs_result.pivot().loc["metric"].min() > 0.3


def test_sequence_pair_and_executors_agree(hs_fits):
    """An invariance sequence (std.lv identification), a pair of fits, and the same run on
    two processes and a dask cluster give the same permutations and p-values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq = invariance.sequence(inputs.MODEL, HS, "school",
                                  levels=["configural", "metric"])
    by_seq = permutation_test(seq, 12, seed=9, progress=False, executor="serial")
    pair = permutation_test((hs_fits["configural"], hs_fits["metric"]), 12, seed=9,
                            progress=False, executor="serial")
    # same models (other identification): same fit, same changes, same p-values
    np.testing.assert_allclose(by_seq.table["observed"], pair.table["observed"], rtol=1e-6)
    np.testing.assert_allclose(by_seq.table["p_value"], pair.table["p_value"])
    assert list(by_seq.table["model"].unique()) == ["configural", "metric"]
    two = permutation_test((hs_fits["configural"], hs_fits["metric"]), 12, seed=9,
                           progress=False, executor=2)
    pd.testing.assert_frame_equal(two.table, pair.table)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = permutation_test((hs_fits["configural"], hs_fits["metric"]), 12, seed=9,
                                progress=False, executor=client, batch_size=5)
    pd.testing.assert_frame_equal(dask.table, pair.table)


def test_permutation_with_missing_data_and_robust_indices():
    mcar = pd.read_csv(ROOT / "tests" / "reference" / "data" / "hs_mcar.csv")
    data = mcar.assign(school=HS["school"].to_numpy()[:len(mcar)])
    fits = [sm.cfa(inputs.MODEL, data, group="school", missing="fiml", estimator="MLR",
                   group_equal=eq) for eq in ([], ["loadings"])]
    res = permutation_test(fits, 6, seed=2, indices=["chisq", "cfi_robust"],
                           progress=False, executor="serial")
    assert res.distribution["converged"].all()
    assert res.table["p_value"].between(0, 1).all()
    obs = res.table.set_index(["model", "index"]).loc[("model2", "cfi_robust"), "observed"]
    assert obs == pytest.approx(fits[1].measures()["cfi_robust"]
                                - fits[0].measures()["cfi_robust"])


def test_permutation_errors(hs_fits):
    with pytest.raises(ValueError, match="multi-group"):
        permutation_test(sm.cfa(inputs.MODEL, HS), 5, seed=1)
    with pytest.raises(ValueError, match="unknown fit index"):
        permutation_test(hs_fits["configural"], 5, seed=1, indices=["nope"])
    with pytest.raises(ValueError, match="same data"):
        other = sm.cfa(inputs.MODEL, HS.iloc[:250], group="school")
        permutation_test((hs_fits["configural"], other), 5, seed=1)
    with pytest.raises(ValueError, match="reps"):
        permutation_test(hs_fits["configural"], 0, seed=1)
    with pytest.raises(TypeError, match="invariance sequence"):
        permutation_test(["not a fit"], 5, seed=1)
