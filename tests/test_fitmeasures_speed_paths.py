"""The fast paths of :mod:`sem_models.inference.fitmeasures`: the complete-data ML baseline
from log-variances (no inverse), the RMR/SRMR/CRMR of all groups in one set of array
operations, the RMSEA with the chi-square functions called directly, and the dispatch to a
subclass' own methods.  Checked against direct implementations of the textbook formulas
(written out below, one group and one element at a time) and against lavaan's numbers in
tests/reference/json."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import sem_models as sm
from sem_models.inference import fitmeasures as fm
from sem_models.inference.distributions import ncx2_cdf, ncx2_noncentrality, ncx2_sf
from sem_models.results import SEMFit

from lavaan_reference import check_measures, fit_reference, load_reference

HS = sm.datasets.load("HolzingerSwineford1939")
CFA = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
REG = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nvisual ~ ageyr + sex\ntextual ~ sex"


def _fresh(fit) -> SEMFit:
    """The same fit without any cached result."""
    return SEMFit(fit.model_syntax, fit._table, fit.variables, fit.model, fit.data, fit.problem,
                  fit.result, fit._graph, fit.options)


@pytest.fixture(scope="module")
def fits():
    return {
        "cfa": sm.cfa(CFA, HS),
        "groups": sm.cfa(CFA, HS, group="school"),
        "groups_equal": sm.cfa(CFA, HS, group="school", group_equal=["loadings", "intercepts"]),
        "meanstructure": sm.cfa(CFA, HS, meanstructure=True),
        "covariates": sm.sem(REG, HS),
        "covariates_free_x": sm.sem(REG, HS, fixed_x=False),
        "covariates_groups": sm.sem(REG, HS, group="school"),
        "mlr": sm.cfa(CFA, HS, estimator="MLR"),
        "sample_cov": sm.cfa(CFA, sample_cov=HS[[f"x{i}" for i in range(1, 10)]].cov(),
                             sample_nobs=301),
    }


# ------------------------------------------------------------------------------ baseline
def _baseline_chisq_direct(fit) -> float:
    """``sum_g N_g (log|D| + tr(S D^-1) - log|S| - p)`` with D the independence model's
    covariance (the covariates' block kept), by an explicit inverse."""
    ov = fit.model.ov_names
    x = [ov.index(v) for v in fit.variables.ov_x]
    total = 0.0
    for loss in fit.problem.losses:
        S = loss.cov
        D = np.diag(np.diag(S))
        if x:
            D[np.ix_(x, x)] = S[np.ix_(x, x)]
        F = (np.linalg.slogdet(D)[1] + np.trace(S @ np.linalg.inv(D))
             - np.linalg.slogdet(S)[1] - S.shape[0])
        total += loss.nobs * F
    return total


@pytest.mark.parametrize("case", ["cfa", "groups", "meanstructure", "covariates",
                                  "covariates_free_x", "covariates_groups", "mlr",
                                  "sample_cov"])
def test_baseline_matches_direct_formula(fits, case):
    fit = _fresh(fits[case])
    base = fm.baseline_statistics(fit)
    assert base["chisq"] == pytest.approx(_baseline_chisq_direct(fit), rel=1e-12)
    assert base["df"] == fit._baseline_df()
    # cached on the fit: SEMFit's own method returns the same numbers
    assert fit._baseline_statistics() == base
    assert fit.measures()["baseline_chisq"] == base["chisq"]
    if case == "mlr":
        assert base["chisq_scaled"] == pytest.approx(base["chisq"] / base["chisq_scaling_factor"])


def test_baseline_without_a_log_determinant_is_nan():
    """A zero variance or a singular covariate block (which the data checks rule out): NaN,
    not an error or an infinite statistic."""
    def stub(cov, ov_x):
        loss = SimpleNamespace(cov=np.asarray(cov, float), nobs=10, logdet_sample=0.0)
        return SimpleNamespace(model=SimpleNamespace(ov_names=["a", "b", "c"]),
                               variables=SimpleNamespace(ov_x=ov_x),
                               problem=SimpleNamespace(losses=[loss]))
    assert math.isnan(fm._ml_baseline_chisq(stub(np.diag([1.0, 0.0, 2.0]), [])))
    singular = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    assert math.isnan(fm._ml_baseline_chisq(stub(singular, ["b", "c"])))
    ok = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.5, 1.0]])
    expected = 10 * (np.log(2.0) + np.log(0.75))
    assert fm._ml_baseline_chisq(stub(ok, ["b", "c"])) == pytest.approx(expected, rel=1e-14)


# ----------------------------------------------------------------------------- residuals
def _residuals_direct(S, m, Sig, mu, meanstructure: bool) -> dict:
    """lavaan's RMR / SRMR (Bentler, Mplus) / CRMR of one group, element by element."""
    p = len(m)
    sd_s, sd_m = np.sqrt(np.diag(S)), np.sqrt(np.diag(Sig))
    kinds = {"rmr": [], "srmr_bentler": [], "srmr_mplus": [], "crmr": []}
    for i in range(p):
        for j in range(i, p):
            raw = S[i, j] - Sig[i, j]
            corr = S[i, j] / (sd_s[i] * sd_s[j]) - Sig[i, j] / (sd_m[i] * sd_m[j])
            kinds["rmr"].append(raw)
            kinds["srmr_bentler"].append(raw / (sd_s[i] * sd_s[j]))
            kinds["srmr_mplus"].append((S[i, i] - Sig[i, i]) / S[i, i] if i == j else corr)
            if i != j:
                kinds["crmr"].append(corr)
    means = {"rmr": m - mu, "srmr_bentler": (m - mu) / sd_s,
             "srmr_mplus": m / sd_s - mu / sd_m, "crmr": (m - mu) / sd_s}
    out = {}
    for key, values in kinds.items():
        v = np.array(values)
        out[f"{key}_nomean"] = float(np.sqrt(np.mean(v ** 2))) if len(v) else 0.0
        if meanstructure:
            both = np.concatenate([v, means[key]])
            out[key] = float(np.sqrt(np.mean(both ** 2)))
        else:
            out[key] = out[f"{key}_nomean"]
    out["srmr"] = out["srmr_bentler"]
    return out


def _random_moments(rng, G, p):
    covs, implied, means, implied_means = [], [], [], []
    for _ in range(G):
        A = rng.normal(size=(50, p))
        S = A.T @ A / 50
        E = rng.normal(scale=0.1, size=(p, p))
        covs.append(S)
        implied.append(S + (E + E.T) / 2 * 0.1 + np.eye(p) * 0.05)
        means.append(rng.normal(size=p))
        implied_means.append(means[-1] + rng.normal(scale=0.1, size=p))
    return covs, means, implied, implied_means


@pytest.mark.parametrize("G,p,meanstructure", [(1, 6, True), (1, 6, False), (3, 4, True),
                                               (2, 1, True), (2, 2, False)])
def test_group_residual_measures_match_elementwise_definitions(G, p, meanstructure):
    rng = np.random.default_rng(G * 10 + p)
    covs, means, implied, implied_means = _random_moments(rng, G, p)
    weights = rng.dirichlet(np.ones(G))
    got = fm.group_residual_measures(covs, means, implied, implied_means, meanstructure,
                                     weights)
    per_group = [_residuals_direct(*args, meanstructure)
                 for args in zip(covs, means, implied, implied_means)]
    # the names in lavaan's order of fitMeasures (as before the vectorised version)
    assert list(got) == ["rmr_nomean", "srmr_bentler_nomean", "srmr_mplus_nomean",
                         "crmr_nomean", "rmr", "srmr_bentler", "srmr_mplus", "crmr", "srmr"]
    for name in got:
        expected = sum(w * d[name] for w, d in zip(weights, per_group))
        assert got[name] == pytest.approx(expected, rel=1e-12, abs=1e-15), name
    if p == 1:  # no off-diagonal correlation: CRMR without means is 0
        assert got["crmr_nomean"] == 0.0
    single = fm.residual_measures(covs[0], means[0], implied[0], implied_means[0],
                                  meanstructure)
    assert single == pytest.approx(per_group[0], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("case", ["cfa", "groups", "meanstructure", "covariates_groups"])
def test_fit_residual_measures_per_group_weighting(fits, case):
    fit = fits[case]
    expected: dict = {}
    for g, (cov, mean) in enumerate(fit.sample_moments_arrays):
        one = _residuals_direct(cov, mean, fit._moments[g].cov, fit._implied_mean(g),
                                fit.model.meanstructure)
        for name, value in one.items():
            expected[name] = expected.get(name, 0.0) + fit.problem.weights[g] * value
    got = fm.fit_residual_measures(fit)
    assert got == pytest.approx(expected, rel=1e-12)


# -------------------------------------------------------------------------------- RMSEA
@pytest.mark.parametrize("chisq,df,n,G,c_hat", [
    (85.3, 24, 301, 1, 1.0),    # both interval ends positive
    (30.0, 24, 301, 2, 1.0),    # lower end 0
    (5.0, 24, 301, 1, 1.0),     # both ends 0
    (85.3, 24, 301, 1, 1.13),   # robust scaling factor
    (np.nan, 24, 301, 1, 1.0),  # undefined statistic
])
def test_rmsea_matches_distribution_helpers(chisq, df, n, G, c_hat):
    """The RMSEA and its interval / p-values as written with :mod:`.distributions`."""
    got = fm.rmsea_measures(chisq, df, n, G, c_hat=c_hat)
    lam_lo = ncx2_noncentrality(chisq, df, 0.95)
    lam_hi = ncx2_noncentrality(chisq, df, 0.05)
    with np.errstate(invalid="ignore"):
        expected = {
            "rmsea": np.sqrt(max(chisq / (n * df) - c_hat / n, 0.0)) * np.sqrt(G),
            "rmsea_ci_lower": np.sqrt(c_hat * lam_lo / (n * df)) * np.sqrt(G),
            "rmsea_ci_upper": np.sqrt(c_hat * lam_hi / (n * df)) * np.sqrt(G),
            "rmsea_ci_level": 0.90,
            "rmsea_pvalue": float(ncx2_sf(chisq, df, n * df * 0.05 ** 2 / (c_hat * G))),
            "rmsea_close_h0": 0.05,
            "rmsea_notclose_pvalue": float(ncx2_cdf(chisq, df, n * df * 0.08 ** 2 / (c_hat * G))),
            "rmsea_notclose_h0": 0.08}
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-14, nan_ok=True), name
    if chisq < df:
        assert got["rmsea"] == 0.0
    zero_df = fm.rmsea_measures(chisq, 0, n, G)
    assert zero_df["rmsea"] == 0.0 and np.isnan(zero_df["rmsea_pvalue"])


# ----------------------------------------------------------------------------- dispatch
def test_subclass_overrides_are_used(fits):
    """A fit class with its own baseline / residual methods (as the two-level fit) gets
    those, not the complete-data fast paths."""
    class Custom(SEMFit):
        def _baseline_statistics(self):
            return {"chisq": 1234.5, "df": 30, "pvalue": 0.0}

        def _residual_measures(self):
            return dict.fromkeys(fm._RESIDUAL_NAMES + ("srmr",), 0.125)

    f = fits["cfa"]
    custom = Custom(f.model_syntax, f._table, f.variables, f.model, f.data, f.problem,
                    f.result, f._graph, f.options)
    m = custom.measures()
    assert m["baseline_chisq"] == 1234.5 and m["srmr"] == 0.125 and m["crmr_nomean"] == 0.125
    plain = _fresh(f).measures()
    assert list(m.index) == list(plain.index)
    assert m["chisq"] == plain["chisq"]


def test_measures_series_none_is_nan():
    s = fm.measures_series({"a": 1, "b": None, "c": np.float64(2.5)})
    assert list(s.index) == ["a", "b", "c"] and s.dtype == float
    assert s["a"] == 1.0 and np.isnan(s["b"]) and s["c"] == 2.5


# ------------------------------------------------------------------------ lavaan anchors
@pytest.mark.parametrize("case", ["hs_cfa", "hs_cfa_meanstructure", "hs_covariates",
                                  "hs_covariates_fixedx_false", "hs_configural"])
def test_fast_paths_against_lavaan(case):
    ref = load_reference(case)
    check_measures(fit_reference(ref), ref,
                   names=["baseline_chisq", "baseline_pvalue", "cfi", "tli", "rmsea",
                          "rmsea_ci_lower", "rmsea_ci_upper", "rmsea_pvalue", "srmr",
                          "srmr_mplus", "rmr", "crmr", "logl", "bic"])
