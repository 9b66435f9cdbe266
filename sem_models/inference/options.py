"""lavaan's inference options (``se``, ``test``, ``information``) resolved per estimator, and
the cluster checks of cluster-robust inference."""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd



__all__ = [
    "ClusterWarning", "ROBUST_SE", "SCALED_TESTS", "check_clusters", "resolve_options",
    "scaled_test_name",
]


ROBUST_SE = ("robust.sem", "robust.huber.white", "robust.cluster", "robust.cluster.sem")
SCALED_TESTS = ("satorra.bentler", "yuan.bentler.mplus")



class ClusterWarning(UserWarning):
    """Few clusters: cluster-robust standard errors and tests are unreliable."""


# ------------------------------------------------------------------------------- options
def resolve_options(estimator: str, missing: str, cluster: Optional[str], se=None, test=None,
                    information=None) -> dict:
    """lavaan's se / test / information settings for an estimator (lavaan 0.6-14 defaults).

    * ML: ``se="standard"``, ``test="standard"``, expected information (observed under FIML);
      with ``cluster``: ``se="robust.cluster"``, ``test=["standard", "yuan.bentler.mplus"]``
      and the test's information from the h1 observed information (lavaan's
      ``observed.information = c("hessian", "h1")``).
    * MLM: ``se="robust.sem"`` (``"robust.cluster.sem"`` with clusters),
      ``test="satorra.bentler"``, expected information; complete data only.
    * MLR: ``se="robust.huber.white"`` (``"robust.cluster"``), ``test="yuan.bentler.mplus"``,
      observed information.
    """
    from .wls_inference import WLS_FAMILY, wls_options
    if estimator in WLS_FAMILY:  # GLS, WLS, DWLS, ULS (+ M / MV variants), MLMV
        return wls_options(estimator, missing, cluster, se=se, test=test,
                           information=information)
    fiml = missing == "fiml"
    if estimator == "MLM":
        d_se = "robust.cluster.sem" if cluster else "robust.sem"
        d_test, d_info = "satorra.bentler", "expected"
    elif estimator == "MLR":
        d_se = "robust.cluster" if cluster else "robust.huber.white"
        d_test, d_info = "yuan.bentler.mplus", "observed"
    else:
        d_se = "robust.cluster" if cluster else "standard"
        d_test = ["standard", "yuan.bentler.mplus"] if cluster else "standard"
        d_info = "observed" if (fiml or cluster) else "expected"
    se = d_se if se is None else se
    test = d_test if test is None else test
    information = d_info if information is None else information
    tests = [test] if isinstance(test, str) else list(test)
    known_se = ("standard", "none") + ROBUST_SE
    if se not in known_se:
        raise ValueError(f"se={se!r} is not supported; choose from {known_se}")
    for t in tests:
        if t not in ("standard", "none") + SCALED_TESTS:
            raise ValueError(f"test={t!r} is not supported; choose from "
                             f"{('standard',) + SCALED_TESTS}")
    if information not in ("expected", "observed"):
        raise ValueError("information must be 'expected' or 'observed'")
    if se.startswith("robust.cluster") and not cluster:
        raise ValueError(f"se={se!r} needs cluster=")
    if fiml and ("satorra.bentler" in tests or se in ("robust.sem", "robust.cluster.sem")):
        raise ValueError("the Satorra-Bentler test and robust.sem standard errors (estimator "
                         "'MLM') need complete data; with missing='fiml' use estimator='MLR'")
    # the test statistic's information: lavaan sets observed.information to "h1" for the
    # tests when estimator = "ML" is combined with cluster=
    test_obs = "h1" if (estimator == "ML" and cluster and information == "observed") else "hessian"
    return {"se": se, "test": test, "information": information,
            "observed_information": ("hessian", test_obs), "h1_information": "structured"}


def scaled_test_name(fit) -> Optional[str]:
    from .wls_inference import WLS_FAMILY, wls_scaled_test
    if fit.options.get("estimator") in WLS_FAMILY:  # also "scaled.shifted", "mean.var.adjusted"
        return wls_scaled_test(fit)
    return first_test(fit, SCALED_TESTS)


def first_test(fit, allowed) -> Optional[str]:
    """The first of the fit's ``test`` options (a name or a list, as lavaan) in ``allowed``."""
    tests = fit.options.get("test", "standard")
    tests = [tests] if isinstance(tests, str) else list(tests)
    return next((t for t in tests if t in allowed), None)


# --------------------------------------------------------------------------------- helpers

def _information_kind(fit, use: str) -> str:
    """The information behind the SEs (``use="se"``) or the test (``use="test"``): expected,
    observed (Hessian) or h1, from lavaan's ``information`` and ``observed.information``."""
    if fit.options.get("information", "expected") == "expected":
        return "expected"
    obs = fit.options.get("observed_information", ("hessian", "hessian"))
    return "h1" if obs[0 if use == "se" else 1] == "h1" else "observed"


def _test_information_kind(fit) -> str:
    return _information_kind(fit, "test")


def _se_information_kind(fit) -> str:
    return _information_kind(fit, "se")


def _cluster_codes(values) -> Optional[np.ndarray]:
    """Cluster ids coded 0..C-1 in order of appearance (any row order)."""
    if values is None:
        return None
    codes, _ = pd.factorize(pd.Series(values), sort=False)
    return codes.astype(int)


def check_clusters(data, cluster: str, npar: int) -> None:
    """Errors for a single cluster; a :class:`ClusterWarning` for few clusters."""
    for gd in data.groups:
        codes = _cluster_codes(gd.cluster)
        n_cl = int(codes.max()) + 1
        where = "" if data.group_var is None else f" in group {gd.label!r}"
        if n_cl < 2:
            raise ValueError(f"the cluster column {cluster!r} has a single cluster{where}: "
                             "cluster-robust standard errors need at least two clusters")
        if n_cl < 30 or n_cl < npar:
            warnings.warn(
                f"only {n_cl} clusters{where} in {cluster!r} for {npar} free parameters: "
                "cluster-robust standard errors and test statistics are unreliable with fewer "
                "than about 30 clusters, and with fewer clusters than free parameters the "
                "robust covariance matrix of the estimates is rank deficient",
                ClusterWarning, stacklevel=4)
