"""The weighted-least-squares family (GLS, WLS, DWLS, ULS, WLSM, WLSMV, ULSM, ULSMV) and MLMV
against lavaan 0.6-14 (issue 13 item 5; references from tests/reference/cases_wave2_coverage.R,
``w2_cov_hs_*``, and tests/reference/cases_wls_continuous.R, ``w2_wls_*``)."""
import warnings

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from lavaan_reference import (assert_close, check_estimates, fit_reference, load_reference,
                              reference_data, reference_fits)
from sem_models.estimation.optimizer import Problem, optimize
from sem_models.estimation.wls import (MomentStatistics, WLSGroupLoss, WLSHessianGroupLoss,
                                       adf_gamma, make_wls_loss, normal_theory_weight,
                                       vech_index)
from sem_models.inference.lrt import compare

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"

W2_CASES = [f"w2_cov_hs_{e}{r}" for e in ("gls", "wls", "uls", "mlmv")
            for r in ("", "_restricted")]
WLS_CASES = (
    [f"w2_wls_hs_{e}" for e in ("dwls", "wlsm", "wlsmv", "ulsm", "ulsmv", "dwls_mva",
                                 "wls_meanstructure", "gls_meanstructure",
                                 "just_identified_wlsmv", "mcar_wlsmv", "mcar_gls_groups")]
    + [f"w2_wls_hs_{e}_restricted" for e in ("wlsm", "wlsmv", "ulsmv")]
    + [f"w2_wls_hs_groups_{e}" for e in ("gls", "wls", "uls", "wlsmv", "mlmv")]
    + [f"w2_wls_hs_groups_{e}_metric" for e in ("gls", "wlsmv", "mlmv")]
    + [f"w2_wls_cov_{e}" for e in ("gls_fx", "wls_fx", "wls_nofx", "wlsmv_fx", "wlsmv_nofx",
                                   "uls_fx", "ulsmv_nofx", "mlmv_fx")]
)
ALL_CASES = W2_CASES + WLS_CASES
# lavaan fit measures the package does not compute (for any estimator)
NOT_REPORTED = {"cn_05", "cn_01", "gfi", "agfi", "pgfi", "mfi", "ecvi"}
ROBUST_INCREMENTAL = ("cfi_robust", "tli_robust", "nnfi_robust", "rni_robust")


def _fit(ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # listwise deletion notes, Heywood cases
        return fit_reference(ref), ref


@pytest.fixture(scope="module")
def fits():
    return reference_fits(_fit)


@pytest.mark.parametrize("case", ALL_CASES)
def test_estimates_and_se(fits, case):
    """Estimates to 1e-4 and standard errors to 1e-3 (standard: (Delta' W Delta)^-1 / (N - G);
    robust.sem sandwich for the M / MV variants; ML machinery for MLMV)."""
    fit, ref = fits(case)
    assert fit.converged
    check_estimates(fit, ref)


@pytest.mark.parametrize("case", ALL_CASES)
def test_fit_measures(fits, case):
    """Every fit measure lavaan reports (except cn / gfi / mfi / ecvi, which the package
    computes for no estimator) to 1e-4: chisq = 2 N fmin with lavaan's (N - 1) / N scaling,
    no p-value for ULS, baselines fitted by the same estimator, scaled and robust indices,
    RMSEA with N - G for the least-squares estimators, SRMR from the N - 1 covariance."""
    fit, ref = fits(case)
    ours = fit.measures()
    missing = set(ref["fit"]) - set(ours.index)
    assert missing <= NOT_REPORTED, f"fit measures missing: {sorted(missing - NOT_REPORTED)}"
    dwls_mv = fit.options["estimator"] == "WLSMV"
    for name, value in ref["fit"].items():
        if name in NOT_REPORTED:
            continue
        value = np.nan if value is None else value
        if dwls_mv and name in ROBUST_INCREMENTAL and not np.isclose(ours[name], value,
                                                                      rtol=1e-4):
            # continuous WLSMV: the baseline's c.hat is 1 in exact arithmetic; lavaan's
            # rounding sometimes gives exactly 1 and then it reports the standard index
            # (see wls_inference._robust_incremental)
            standard = name.replace("_robust", "")
            assert value == pytest.approx(ref["fit"][standard], rel=1e-10), name
            continue
        assert_close([ours[name]], [value], 1e-4, 1e-6, f"{case} {name}")


@pytest.mark.parametrize("case", [c for c in ALL_CASES if "gls" not in c])
def test_test_statistics(fits, case):
    """lavInspect(fit, "test"): statistic, df, p-value, tr(U Gamma), tr((U Gamma)^2), scaling
    factor and shift of the robust test."""
    fit, ref = fits(case)
    stats = fit._test_statistics()
    for name, test in ref["tests"].items():
        if name == "standard":
            assert_close([stats["chisq"], stats["df"]], [test["stat"], test["df"]], 1e-4, 1e-6,
                         f"{case} standard test")
            if test["pvalue"] is None:
                assert np.isnan(stats["pvalue"])
            continue
        assert stats["scaled_test"] == name
        pairs = [("chisq_scaled", "stat"), ("df_scaled", "df"), ("pvalue_scaled", "pvalue"),
                 ("chisq_scaling_factor", "scaling.factor"),
                 ("chisq_shift_parameter", "shift.parameter"),
                 ("trace_ugamma", "trace.UGamma"), ("trace_ugamma2", "trace.UGamma2")]
        for ours, theirs in pairs:
            if theirs in test and (ours in stats or test[theirs] is not None):
                value = np.nan if test[theirs] is None else test[theirs]
                assert_close([stats[ours]], [value], 1e-4, 1e-7, f"{case} {theirs}")


@pytest.mark.parametrize("case", ALL_CASES)
def test_vcov(fits, case):
    """The covariance matrix of the estimates, matched to lavaan's rows by (lhs, op, rhs,
    group)."""
    fit, ref = fits(case)
    v = ref["vcov"]
    pt = fit._table
    labels = [""] if fit.n_groups == 1 else list(fit.group_labels)
    ours_keys = {}
    for k, r in enumerate(fit.problem.pmap.free_rows):
        g = labels[0] if fit.n_groups == 1 else labels[pt["group"][r] - 1]
        ours_keys.setdefault((pt["lhs"][r], pt["op"][r], pt["rhs"][r], g), k)
    idx = [ours_keys[(a, b, c, d)] for a, b, c, d in zip(v["lhs"], v["op"], v["rhs"],
                                                           v["group"])]
    ours = fit.vcov().to_numpy()[np.ix_(idx, idx)]
    theirs = np.array(v["matrix"], float)
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= 1e-3 * scale


LRT_PAIRS = [
    ("w2_cov_hs_gls", "w2_cov_hs_gls_restricted", "full", "restricted"),
    ("w2_cov_hs_wls", "w2_cov_hs_wls_restricted", "full", "restricted"),
    ("w2_cov_hs_uls", "w2_cov_hs_uls_restricted", "full", "restricted"),
    ("w2_cov_hs_mlmv", "w2_cov_hs_mlmv_restricted", "full", "restricted"),
    ("w2_wls_hs_wlsm", "w2_wls_hs_wlsm_restricted", "full", "restricted"),
    ("w2_wls_hs_wlsmv", "w2_wls_hs_wlsmv_restricted", "full", "restricted"),
    ("w2_wls_hs_ulsmv", "w2_wls_hs_ulsmv_restricted", "full", "restricted"),
    ("w2_wls_hs_groups_gls", "w2_wls_hs_groups_gls_metric", "configural", "metric"),
    ("w2_wls_hs_groups_wlsmv", "w2_wls_hs_groups_wlsmv_metric", "configural", "metric"),
    ("w2_wls_hs_groups_mlmv", "w2_wls_hs_groups_mlmv_metric", "configural", "metric"),
]


@pytest.mark.parametrize("pair", LRT_PAIRS, ids=[p[1] for p in LRT_PAIRS])
def test_compare(fits, pair):
    """compare() = lavTestLRT: plain differences for the standard tests (with lavaan's RMSEA
    of the difference), Satorra (2000) scaled-shifted by default for WLSMV / ULSMV / MLMV,
    Satorra-Bentler 2001 by default for WLSM, and every method on request."""
    a, b, name_a, name_b = pair
    full, _ = fits(a)
    restricted, ref = fits(b)
    for block in ref["lrt"]:
        table = compare(**{name_a: full, name_b: restricted}, method=block["method"])
        row, theirs = table.loc[name_b], block["table"][1]
        assert row["df_diff"] == theirs["Df_diff"]
        assert_close([row["chisq_diff"], row["pvalue"]], [theirs["Chisq_diff"],
                     theirs["Pr_Chisq"]], 1e-4, 1e-8, f"{b} {block['method']}")
        if theirs.get("RMSEA") is not None:
            assert_close([row["rmsea"]], [theirs["RMSEA"]], 1e-4, 1e-8, f"{b} RMSEA")
        if "satorra.2000" in block["heading"]:
            assert row["method"] == "satorra.2000"


@pytest.mark.parametrize("case", ["w2_wls_hs_wlsmv", "w2_wls_hs_wls_meanstructure",
                                  "w2_wls_hs_gls_meanstructure", "w2_wls_hs_groups_wls",
                                  "w2_wls_cov_wls_fx", "w2_wls_cov_wls_nofx"])
def test_statistics_weights_gamma(fits, case):
    """The loss's sample statistics, weight matrix and Gamma equal lavaan's lavInspect
    "wls.obs", "wls.v" and "gamma" (same order: means, then vech column by column)."""
    fit, ref = fits(case)
    for g, piece in enumerate(ref["wls_pieces"]):
        loss = fit.problem.losses[g]
        assert_close(loss.statistics, piece["wls_obs"], 1e-10, 1e-12, "wls.obs")
        assert_close(loss.weight_matrix.ravel(), np.array(piece["wls_v"]).ravel(), 1e-8, 1e-10,
                     "wls.v")
        if loss.gamma is not None:
            assert_close(loss.gamma.ravel(), np.array(piece["gamma"]).ravel(), 1e-8, 1e-12, "gamma")


@pytest.mark.parametrize("case", ["w2_cov_hs_gls", "w2_cov_hs_wls", "w2_cov_hs_uls",
                                  "w2_cov_hs_mlmv"])
def test_modification_indices(fits, case):
    """Score tests with lavaan's information for these estimators (Delta' W Delta)."""
    fit, ref = fits(case)
    ours = fit.modindices().head(20).reset_index(drop=True)
    theirs = pd.DataFrame(ref["modindices_all"]).head(20)
    assert list(zip(ours.lhs, ours.op, ours.rhs)) == list(zip(theirs.lhs, theirs.op, theirs.rhs))
    for col in ("mi", "epc", "sepc_lv", "sepc_all"):
        assert_close(ours[col], theirs[col], 1e-3, 1e-5, f"{case} {col}")


# ------------------------------------------------------------------------------- the loss
def _hs():
    return reference_data(load_reference("w2_cov_hs_wls"))


def test_hessian_and_gradient_match_finite_differences():
    """The analytic gradient and Hessian of the WLS loss (with a mean structure) against
    central differences of the objective."""
    fit = sm.cfa(HS_MODEL, _hs(), estimator="WLS", meanstructure=True)
    problem = fit.problem
    z = fit.result.z + 0.05 * np.sin(np.arange(problem.pmap.n_z))
    f0, grad, _ = problem.derivatives(z)
    _, _, hess = problem.derivatives(z, info=False, hessian=True)
    h = 1e-6
    eye = np.eye(len(z))
    num_grad = np.array([(problem.objective(z + h * e) - problem.objective(z - h * e)) / (2 * h)
                         for e in eye])
    num_hess = np.array([(problem.derivatives(z + h * e)[1] - problem.derivatives(z - h * e)[1])
                         / (2 * h) for e in eye])
    assert np.allclose(grad, num_grad, rtol=1e-5, atol=1e-8)
    assert np.allclose(hess, num_hess, rtol=1e-5, atol=1e-7)


class _NoSecondOrder:
    """A statistics map without second-order terms (as a nonlinear ordinal map may be)."""

    def __init__(self, inner):
        self.inner = inner

    def value(self, mom):
        return self.inner.value(mom)

    def jacobian(self, mom, d_cov, d_mean):
        return self.inner.jacobian(mom, d_cov, d_mean)


def test_plug_in_statistics_map():
    """The loss takes any statistics map, weight and Gamma: the same pieces through a map
    without second-order terms give a plain WLSGroupLoss (the optimizer then uses BFGS) and
    the same estimates; a diagonal weight is given as a vector."""
    fit = sm.cfa(HS_MODEL, _hs(), estimator="DWLS")
    loss = fit.problem.losses[0]
    assert isinstance(loss, WLSHessianGroupLoss) and loss.diagonal
    plain = make_wls_loss(loss.statistics, loss.weight, _NoSecondOrder(loss.statistics_map),
                          loss.nobs, cov=loss.cov, mean=loss.mean, meanstructure=False,
                          gamma=loss.gamma, estimator="DWLS")
    assert type(plain) is WLSGroupLoss
    old = fit.problem
    problem = Problem(old.model, [plain], old.pmap, old.base_values)
    result = optimize(problem, old.pmap.z_from_free(old.base_values[old.pmap.free_rows]))
    assert result.converged
    assert np.allclose(result.z, fit.result.z, atol=1e-6)
    assert result.fmin == pytest.approx(fit.result.fmin, rel=1e-8)


def test_weight_matrix_shape_is_checked():
    smap = MomentStatistics(2, False)
    with pytest.raises(ValueError, match="3 statistics"):
        WLSGroupLoss(np.zeros(3), np.eye(2), smap, 10, cov=np.eye(2), mean=np.zeros(2),
                     meanstructure=False)


def test_normal_theory_weight_is_inverse_of_normal_gamma():
    """GLS weights = the inverse of the normal-theory Gamma 2 D^+ (S (x) S) D^+' (Browne 1974),
    and the ADF Gamma of normal data approaches it."""
    rng = np.random.default_rng(1)
    S = np.array([[2.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 1.5]])
    W = normal_theory_weight(S, meanstructure=True)
    rows, cols = vech_index(3)
    gamma_nt = S[rows[:, None], rows[None, :]] * S[cols[:, None], cols[None, :]] \
        + S[rows[:, None], cols[None, :]] * S[cols[:, None], rows[None, :]]
    full = np.zeros((9, 9))
    full[:3, :3] = S
    full[3:, 3:] = gamma_nt
    assert np.allclose(W @ full, np.eye(9), atol=1e-12)
    X = rng.multivariate_normal(np.zeros(3), S, size=200_000)
    assert np.allclose(adf_gamma(X, True), full, rtol=0.05, atol=0.05)


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("options, match", [
    ({"estimator": "WLSMV", "missing": "fiml"}, "missing='fiml'"),
    ({"estimator": "MLMV", "missing": "fiml"}, "missing='fiml'"),
    ({"estimator": "ULS", "cluster": "school"}, "cluster="),
    ({"estimator": "GLS", "se": "robust.sem"}, "se='robust.sem'"),
    ({"estimator": "WLS", "test": "scaled.shifted"}, "test='scaled.shifted'"),
    ({"estimator": "DWLS", "information": "observed"}, "expected information"),
    ({"estimator": "WLSMVX"}, "ULSMV"),
])
def test_refused_options(options, match):
    with pytest.raises(ValueError, match=match):
        sm.cfa(HS_MODEL, _hs(), **options)


def test_wls_needs_more_cases_than_statistics():
    with pytest.raises(sm.estimation.data.DataError, match="more cases than sample statistics"):
        sm.cfa(HS_MODEL, _hs().head(40), estimator="WLS")


def test_compare_refuses_mixed_families():
    data = _hs()
    with pytest.raises(ValueError, match="same family"):
        compare(sm.cfa(HS_MODEL, data), sm.cfa(HS_MODEL, data, estimator="GLS"))


def test_user_test_option_on_dwls():
    """test= on DWLS: the mean-and-variance adjusted test (lavaan's w2_wls_hs_dwls_mva) and
    the plain standard test with robust SEs."""
    ref = load_reference("w2_wls_hs_dwls_mva")
    fit = fit_reference(ref)
    t = ref["tests"]["mean.var.adjusted"]
    stats = fit._test_statistics()
    assert_close([stats["chisq_scaled"], stats["df_scaled"]], [t["stat"], t["df"]], 1e-4, 1e-8,
                 "mean.var.adjusted")
    plain = sm.cfa(HS_MODEL, _hs(), estimator="WLSMV", test="standard")
    assert "chisq_scaled" not in plain.measures().index
    assert np.allclose(plain.estimates()["se"], fit.estimates()["se"])
