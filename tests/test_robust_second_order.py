"""The analytic second-order term of the observed information (robust.py) against finite
differences: ``sum_g w_g sum_s (dF_g/dm_s) d^2 m_s / dz dz'`` by central differences of
``Delta(z)' g`` with the h1 gradient g held fixed, and the whole observed information against
central differences of the objective's analytic gradient."""
import warnings

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from lavaan_reference import ROOT
from sem_models.datasets import load
from sem_models.inference.sandwich import RobustEvaluator

HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
COVARIATES = ("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\n"
              "visual ~ ageyr\ntextual ~ ageyr + grade")
POLDEM = """ind60 =~ x1 + x2 + x3
dem60 =~ y1 + y2 + y3 + y4
dem65 =~ y5 + y6 + y7 + y8
dem60 ~ ind60
dem65 ~ ind60 + dem60
y1 ~~ y5
"""
CLUSTERED = "f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6\no1 ~ f1 + f2\no2 ~ f1 + f2"


def _data(name: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / "tests" / "reference" / "data" / name)


CASES = {
    "fiml_one_group": lambda: sm.cfa(HS, _data("hs_mcar.csv"), missing="ml", estimator="MLR"),
    "fiml_groups_equal": lambda: sm.cfa(HS, _data("hs_mcar.csv"), group="school",
                                        group_equal=["loadings", "intercepts"], missing="ml",
                                        estimator="MLR"),
    "mlr_covariates_fixed_x": lambda: sm.sem(COVARIATES, load("HolzingerSwineford1939"),
                                             estimator="MLR"),
    "fiml_covariates_fixed_x": lambda: sm.sem(COVARIATES, _data("hs_mcar.csv"), missing="ml",
                                              estimator="MLR"),
    "latent_regressions_no_means": lambda: sm.sem(POLDEM, load("PoliticalDemocracy"),
                                                  estimator="MLR"),
    "fiml_cluster": lambda: sm.sem(CLUSTERED, _data("sim_clustered.csv"), missing="ml",
                                   estimator="MLR", cluster="school"),
}


@pytest.fixture(scope="module")
def fits():
    cache = {}

    def get(case):
        if case not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[case] = CASES[case]()
        return cache[case]
    return get


def _evaluator_off_optimum(fit) -> RobustEvaluator:
    """An evaluator at parameters moved away from the estimates (larger h1 gradients)."""
    z = fit.result.z + 0.02 * np.random.default_rng(0).normal(size=len(fit.result.z))
    return RobustEvaluator(fit, z)


def _second_order_by_differences(ev: RobustEvaluator, step: float = 1e-5) -> np.ndarray:
    """Central differences of ``sum_g w_g Delta_g(z)' g_g`` with g_g the h1 gradient of
    ``-logL_g / N_g`` at ev.z held fixed."""
    grads = [-ev.h1.coords.gradient(*pat.gradient(*ev.structured(g)))
             for g, pat in enumerate(ev.h1.patterns)]
    n = len(ev.z)
    J = np.zeros((n, n))
    for k in range(n):
        h = step * max(1.0, abs(ev.z[k]))
        cols = []
        for sign in (1.0, -1.0):
            z = ev.z.copy()
            z[k] += sign * h
            deltas = ev._deltas_at(ev.problem.values(z))
            cols.append(sum(w * D.T @ gr for w, D, gr in zip(ev.weights, deltas, grads)))
        J[:, k] = (cols[0] - cols[1]) / (2 * h)
    return (J + J.T) / 2


def _hessian_by_differences(problem, z: np.ndarray, step: float = 1e-5) -> np.ndarray:
    n = len(z)
    H = np.zeros((n, n))
    for k in range(n):
        h = step * max(1.0, abs(z[k]))
        e = np.zeros(n)
        e[k] = h
        H[:, k] = (problem.derivatives(z + e, info=False)[1]
                   - problem.derivatives(z - e, info=False)[1]) / (2 * h)
    return (H + H.T) / 2


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("at_estimates", [True, False])
def test_second_order_term_matches_finite_differences(fits, case, at_estimates):
    fit = fits(case)
    ev = RobustEvaluator(fit) if at_estimates else _evaluator_off_optimum(fit)
    analytic = ev._second_order_term()
    numeric = _second_order_by_differences(ev)
    scale = np.abs(numeric).max()
    assert scale > 1e-2  # the term is not trivially zero in these models
    assert np.abs(analytic - analytic.T).max() < 1e-12 * scale
    assert np.abs(analytic - numeric).max() < 1e-7 * scale


@pytest.mark.parametrize("case", ["fiml_groups_equal", "latent_regressions_no_means",
                                  "fiml_covariates_fixed_x"])
def test_observed_information_is_the_hessian_of_the_objective(fits, case):
    fit = fits(case)
    ev = _evaluator_off_optimum(fit)
    numeric = _hessian_by_differences(fit.problem, ev.z)
    observed = ev.information("observed")
    assert np.abs(observed - numeric).max() < 1e-6 * np.abs(numeric).max()
    # without the second-order term the match fails: the test can detect a wrong term
    assert np.abs(ev.information("h1") - numeric).max() > 1e-3 * np.abs(numeric).max()
