"""Bundled example data and a generator of realistic alliance-study data.

``load(name)`` reads one of the bundled CSV files (``HolzingerSwineford1939``,
``PoliticalDemocracy`` and ``alliance``; codebook in ``data/README.md``).

``simulate_alliance(...)`` draws data with the design of the reference alliance study
(STUDY.md): schools randomized to group or individual treatment, therapy groups and
therapists, 48 four-point alliance items (child and therapist x mid and end of treatment x bond
and task x 6 items) with a latent state-trait structure, a wording factor and two
non-invariant items, teacher-rated outcomes at baseline and follow-up, and MAR missingness.
Every population value is in :data:`ALLIANCE_TRUTH`.

The data-generating model (all variances in the *latent response metric*, in which a
therapist's state factor has variance 1 at mid-treatment):

* Traits ``T = (c_bond, c_task, t_bond, t_task)`` and the baseline outcomes
  ``(ext_pre, int_pre)`` are jointly normal (means and correlations in ``ALLIANCE_TRUTH``).
* States ``S[i, d, t] = T[i, d] + zeta[i, d, t]`` (latent state-trait theory: Steyer, Ferring
  & Schmitt 1992; Steyer, Schmitt & Eid 1999): second-order loadings all 1, occasion
  residuals ``zeta`` independent over occasions, correlated between bond and task of the same
  informant and occasion.
* Continuous latent responses ``y* = nu_k + lambda_k S + w * W_t + e`` with ``W_t`` the child
  wording factor (child negatively worded items only) and ``e ~ N(0, 1 - lambda_k^2)``; the
  same item parameters for child and therapist (parallel forms, so the two informants' traits
  are commensurate), except the two non-invariant items between formats.
* The 4-point keyed response is ``1 + (y* > -1.9) + (y* > -1.1) + (y* > -0.1)``; negatively
  worded items are stored as the raw response ``5 - keyed`` (reverse them with
  :func:`measurement.reverse_score`).
* Outcomes ``ext_fu``, ``int_fu`` are linear in the baseline, the traits (per trait SD) and,
  for ``int_fu`` in the group format only, the therapist-minus-child bond discrepancy.
"""
from __future__ import annotations

import copy
import math
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

__all__ = ["load", "available", "simulate_alliance", "ALLIANCE_TRUTH", "ALLIANCE_SEED",
           "alliance_item_columns"]

#: Seed used to write the bundled ``data/alliance.csv`` (see ``data/README.md``).
ALLIANCE_SEED = 20240126

_DATASETS = {
    "HolzingerSwineford1939": "HolzingerSwineford1939.csv",
    "PoliticalDemocracy": "PoliticalDemocracy.csv",
    "alliance": "alliance.csv",
    "Demo.twolevel": "Demo.twolevel.csv",
    "Demo.growth": "Demo.growth.csv",
}


def available() -> list[str]:
    """Names accepted by :func:`load`."""
    return list(_DATASETS)


def _data_file(filename: str):
    """The bundled file, from the installed package or (source checkout) from ``data/``."""
    try:
        return resources.files("sem_models.bundled_data").joinpath(filename)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "data" / filename


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a new DataFrame (a fresh copy on every call).

    ``name`` is one of ``"HolzingerSwineford1939"``, ``"PoliticalDemocracy"``,
    ``"Demo.twolevel"``, ``"Demo.growth"`` (all as in lavaan; ``school`` of
    HolzingerSwineford1939 is a string column) or ``"alliance"`` (the
    simulated alliance study, made by :func:`simulate_alliance` with seed
    :data:`ALLIANCE_SEED`). Raises ``ValueError`` for an unknown name.
    """
    if name not in _DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; available datasets: {', '.join(_DATASETS)}")
    source = _data_file(_DATASETS[name])
    dtype: dict[str, Any] = {}
    if name == "HolzingerSwineford1939":
        dtype = {"school": str}
    elif name == "alliance":
        dtype = {"school": str, "format": str, "therapy_group": str, "therapist": str,
                 "sex": str}
    with source.open("r", encoding="utf-8") as handle:
        df = pd.read_csv(handle, dtype=dtype)
    unnamed = [c for c in df.columns if c == "" or str(c).startswith("Unnamed: ")]
    if unnamed:  # a written-out R/pandas row index
        df = df.drop(columns=unnamed)
    if name == "alliance":  # same dtypes as simulate_alliance()
        measures = ["ext_pre", "int_pre", "ext_fu", "int_fu"] + alliance_item_columns()
        df[measures] = df[measures].astype(float)
    return df


# ---------------------------------------------------------------------------------------------
# Population values of the simulated alliance study
# ---------------------------------------------------------------------------------------------

_INFORMANTS = ("c", "t")
_OCCASIONS = ("mid", "end")
_DIMENSIONS = ("bond", "task")
_N_ITEMS = 6
_TRAITS = ("c_bond", "c_task", "t_bond", "t_task")


def alliance_item_columns(informants=_INFORMANTS, occasions=_OCCASIONS,
                          dimensions=_DIMENSIONS, items=range(1, _N_ITEMS + 1)) -> list[str]:
    """Alliance item column names ``{informant}_{occasion}_{dimension}{item}`` in file order."""
    return [f"{i}_{o}_{d}{k}" for i in informants for o in occasions for d in dimensions
            for k in items]


ALLIANCE_TRUTH: dict[str, Any] = {
    "description": (
        "Population values of simulate_alliance(). Latent variances are in the latent "
        "response metric (a therapist state factor has variance 1 at mid-treatment); "
        "outcome effects are T-score points per population SD of a trait unless noted."),
    "design": {
        "informants": {"c": "child", "t": "therapist"},
        "occasions": {"mid": "mid-treatment", "end": "end of treatment"},
        "dimensions": {"bond": "bond", "task": "task collaboration"},
        "items_per_subscale": 6,
        "pattern": "{informant}_{occasion}_{dimension}{item}",
        "scale": (1, 4),
        "reverse_keyed": [2, 4, 6],
        "formats": ("group", "individual"),
        "group_size_range": (4, 7),
        "therapists_per_school": {"group": "1 if the school has <= 2 therapy groups, else 2 "
                                           "(groups alternate between them)",
                                  "individual": "2 or 3 (children alternate between them)"},
    },
    "items": {
        # loadings of item 1..6 on its state factor (continuous latent response y*)
        "loadings": {"bond": [0.80, 0.70, 0.75, 0.65, 0.75, 0.70],
                     "task": [0.80, 0.70, 0.75, 0.65, 0.70, 0.75]},
        # intercepts of y* (before the informant and format mean differences)
        "intercepts": {"bond": [0.00, 0.10, -0.10, 0.15, 0.00, -0.15],
                       "task": [0.00, -0.10, 0.10, 0.15, -0.05, 0.00]},
        # unique variance of y*: 1 - loading^2
        "residual_variances": {"bond": [0.36, 0.51, 0.4375, 0.5775, 0.4375, 0.51],
                               "task": [0.36, 0.51, 0.4375, 0.5775, 0.51, 0.4375]},
        # the 4-point keyed response is 1 + number of thresholds below y*
        "thresholds": [-1.9, -1.1, -0.1],
        "invariant_over_time": True,
        "invariant_over_informants": True,
    },
    "wording": {
        "informants": ["c"],
        "items": [2, 4, 6],
        "loading": 0.45,
        "variance": 1.0,
        "occasion_correlation": 0.6,
        "note": ("one wording factor per child occasion (W_mid, W_end), loading 0.45 on the "
                 "keyed response of child items 2, 4, 6 of both subscales, uncorrelated with "
                 "the traits and states"),
    },
    "noninvariance": [
        {"item": "c_{occasion}_task3", "parameter": "intercept", "occasions": ["mid", "end"],
         "individual": 0.10, "group": 0.60,
         "note": "child task item 3 is endorsed more easily in the group format (+0.5)"},
        {"item": "t_{occasion}_bond5", "parameter": "loading", "occasions": ["mid", "end"],
         "individual": 0.75, "group": 0.45,
         "note": "therapist bond item 5 loads less in the group format (residual variance "
                 "unchanged, 0.4375)"},
    ],
    "traits": {
        "order": list(_TRAITS),
        "variances": {"c_bond": 0.60, "c_task": 0.60, "t_bond": 0.70, "t_task": 0.70},
        "correlations": {
            ("c_bond", "c_task"): 0.70, ("t_bond", "t_task"): 0.75,
            ("c_bond", "t_bond"): 0.30, ("c_task", "t_task"): 0.30,
            ("c_bond", "t_task"): 0.25, ("c_task", "t_bond"): 0.25,
        },
        # means in the latent response metric. Children rate 0.45 higher than therapists
        # (observed scale-mean d about 0.35). Finding 1: individual-format children have a
        # child-rated trait task mean 0.3 trait SD higher (0.3 * sqrt(0.60) = 0.2324),
        # placed symmetrically around 0.45 so both formats together keep the 0.45 gap.
        "means": {
            "group": {"c_bond": 0.45, "c_task": 0.45 - 0.15 * math.sqrt(0.60),
                      "t_bond": 0.0, "t_task": 0.0},
            "individual": {"c_bond": 0.45, "c_task": 0.45 + 0.15 * math.sqrt(0.60),
                           "t_bond": 0.0, "t_task": 0.0},
        },
    },
    "states": {
        # occasion-specific residual variances Var(zeta_t) per informant
        "residual_variances": {"c": {"mid": 0.40, "end": 0.35},
                               "t": {"mid": 0.30, "end": 0.25}},
        "residual_means": {"mid": 0.0, "end": 0.10},
        # corr(zeta bond, zeta task) within the same informant and occasion
        "residual_correlation_bond_task": 0.40,
    },
    "baseline": {
        "means": {"ext_pre": 64.0, "int_pre": 57.0},
        "sds": {"ext_pre": 8.0, "int_pre": 9.0},
        "correlations": {
            ("ext_pre", "int_pre"): 0.40,
            ("ext_pre", "c_bond"): -0.05, ("ext_pre", "c_task"): -0.05,
            ("ext_pre", "t_bond"): -0.20, ("ext_pre", "t_task"): -0.20,
            ("int_pre", "c_bond"): 0.0, ("int_pre", "c_task"): 0.0,
            ("int_pre", "t_bond"): 0.0, ("int_pre", "t_task"): 0.0,
        },
    },
    "outcomes": {
        # y_fu = intercept + baseline * y_pre + sum(effect_k * T_k / SD(T_k))
        #        [+ discrepancy * 1(group) * (D - E[D])] + u_school + e
        "ext_fu": {
            "intercept": 21.8, "baseline": 0.55, "residual_sd": 6.5,
            "per_trait_sd": {"c_bond": 0.0, "c_task": 0.0, "t_bond": -1.5, "t_task": -1.5},
        },
        "int_fu": {
            "intercept": 26.0, "baseline": 0.50, "residual_sd": 7.0,
            "per_trait_sd": {"c_bond": 0.0, "c_task": -1.5, "t_bond": -1.0, "t_task": -1.5},
            # finding 3: D = T_t_bond - T_c_bond in the common latent response metric,
            # centred at its population mean E[D] = -0.45; effect per unit of D
            "discrepancy": {"definition": "t_bond - c_bond", "centre": -0.45,
                            "group": 3.0, "individual": 0.0},
        },
    },
    "clustering": {
        # shares of the variance of (traits, ext_pre, int_pre); the rest is child level.
        # In the individual format the therapy_group share is child-level variance.
        "school": 0.08, "therapist": 0.04, "therapy_group": 0.04,
        # share of the follow-up residual variance at the school level
        "outcome_school": 0.06,
        "note": "clustering=False draws every component at the child level: same marginal "
                "population values, no intra-class correlation",
    },
    "missingness": {
        # P(missing) = expit(a + sum(slope * z)), z = (baseline - mean) / sd with the
        # population mean and SD; a is solved so that the marginal rate is 'rate'
        "c_end": {"rate": 0.18, "slopes": {"ext_pre": 0.5}, "what": "all child end items"},
        "t_end": {"rate": 0.10, "slopes": {"ext_pre": 0.4}, "what": "all therapist end items"},
        "followup": {"rate": 0.15, "slopes": {"ext_pre": 0.5, "int_pre": 0.3},
                     "what": "ext_fu and int_fu"},
        "item": {"rate": 0.01, "what": "single alliance item responses (MCAR) in the "
                                       "remaining observed blocks"},
    },
    "covariates": {"age": "9, 10 or 11 with equal probability, no effects",
                   "sex": "boy with probability 0.7, no effects"},
    "findings": {
        "1": "child-rated trait task mean is 0.3 trait SD higher in the individual format",
        "2": ("therapist-rated trait bond and task predict lower ext_fu (-1.5 T points per "
              "SD each, ext_pre controlled); child task (-1.5), therapist task (-1.5) and "
              "therapist bond (-1.0) predict lower int_fu (int_pre controlled)"),
        "3": ("in the group format only, the therapist-minus-child bond discrepancy raises "
              "int_fu by 3.0 T points per unit of D (latent response metric; SD(D) = 0.95)"),
    },
}


def _derive(truth: Mapping[str, Any]) -> dict[str, Any]:
    """Population quantities implied by ``truth`` (added under ``truth['derived']``)."""
    tr = truth["traits"]
    sd = {k: math.sqrt(tr["variances"][k]) for k in _TRAITS}
    out: dict[str, Any] = {"trait_sd": sd}
    # latent state-trait coefficients per indicator (individual format, invariant items)
    wording = truth["wording"]
    lst = {}
    for i in _INFORMANTS:
        for o in _OCCASIONS:
            for d in _DIMENSIONS:
                for k in range(1, _N_ITEMS + 1):
                    lam = truth["items"]["loadings"][d][k - 1]
                    theta = truth["items"]["residual_variances"][d][k - 1]
                    var_t = tr["variances"][f"{i}_{d}"]
                    var_z = truth["states"]["residual_variances"][i][o]
                    var_m = (wording["loading"] ** 2 * wording["variance"]
                             if i in wording["informants"] and k in wording["items"] else 0.0)
                    total = lam ** 2 * (var_t + var_z) + var_m + theta
                    con, spe, msp = lam ** 2 * var_t / total, lam ** 2 * var_z / total, \
                        var_m / total
                    lst[f"{i}_{o}_{d}{k}"] = {"consistency": con, "occasion_specificity": spe,
                                              "method_specificity": msp,
                                              "reliability": con + spe + msp}
    out["lst_coefficients"] = lst
    # outcome effects per latent response unit
    per_unit = {}
    for y in ("ext_fu", "int_fu"):
        per_unit[y] = {k: v / sd[k] for k, v in truth["outcomes"][y]["per_trait_sd"].items()}
    out["outcome_effects_per_unit"] = per_unit
    # SD of the bond discrepancy and the latent congruence coefficients for int_fu:
    # with M = (t + c)/2 and D = t - c, b_t t + b_c c = (b_t + b_c) M + (b_t - b_c)/2 D
    r = tr["correlations"][("c_bond", "t_bond")]
    var_d = tr["variances"]["t_bond"] + tr["variances"]["c_bond"] - 2 * r * sd["t_bond"] * \
        sd["c_bond"]
    out["sd_bond_discrepancy"] = math.sqrt(var_d)
    gd = truth["outcomes"]["int_fu"]["discrepancy"]
    lcm = {}
    for fmt in ("group", "individual"):
        b_t = per_unit["int_fu"]["t_bond"] + gd[fmt]
        b_c = per_unit["int_fu"]["c_bond"] - gd[fmt]
        lcm[fmt] = {"M": b_t + b_c, "D": (b_t - b_c) / 2, "t_bond": b_t, "c_bond": b_c}
    out["int_fu_bond_congruence_per_unit"] = lcm
    out["finding1_latent_mean_difference"] = (
        tr["means"]["individual"]["c_task"] - tr["means"]["group"]["c_task"]) / sd["c_task"]
    return out


ALLIANCE_TRUTH["derived"] = _derive(ALLIANCE_TRUTH)


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------

def _exogenous_cov(truth: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
    """Covariance matrix of (traits, ext_pre, int_pre)."""
    names = list(_TRAITS) + ["ext_pre", "int_pre"]
    sds = np.array([math.sqrt(truth["traits"]["variances"][k]) for k in _TRAITS]
                   + [truth["baseline"]["sds"]["ext_pre"], truth["baseline"]["sds"]["int_pre"]])
    corr = np.eye(len(names))
    pairs = dict(truth["traits"]["correlations"])
    pairs.update(truth["baseline"]["correlations"])
    for (a, b), r in pairs.items():
        i, j = names.index(a), names.index(b)
        corr[i, j] = corr[j, i] = r
    cov = corr * np.outer(sds, sds)
    if np.linalg.eigvalsh(cov).min() <= 0:
        raise ValueError("the trait/baseline correlations in truth are not positive definite")
    return names, cov


def _logit_intercept(rate: float, scale: float) -> float:
    """Intercept a with E[expit(a + scale * Z)] = rate for Z ~ N(0, 1)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()

    def gap(a: float) -> float:
        return float(np.sum(weights * expit(a + scale * nodes)) - rate)

    return float(brentq(gap, -30.0, 30.0))


def _mvn(rng: np.random.Generator, n: int, cov: np.ndarray) -> np.ndarray:
    """n draws from N(0, cov) through the Cholesky factor (platform-stable)."""
    return rng.standard_normal((n, cov.shape[0])) @ np.linalg.cholesky(cov).T


def _school_sizes(n: Optional[int], n_schools: int, children_per_school: int) -> np.ndarray:
    if n is None:
        return np.full(n_schools, children_per_school, dtype=int)
    base, extra = divmod(int(n), n_schools)
    sizes = np.full(n_schools, base, dtype=int)
    sizes[:extra] += 1
    return sizes


def _partition(m: int, rng: np.random.Generator, lo: int = 4, hi: int = 7) -> np.ndarray:
    """Random sizes of therapy groups (each lo..hi) summing to m."""
    g_min, g_max = math.ceil(m / hi), m // lo
    if g_min > g_max:
        raise ValueError(f"a group-format school with {m} children cannot be split into "
                         f"therapy groups of {lo}-{hi}")
    g = int(rng.integers(g_min, g_max + 1))
    sizes = np.full(g, lo, dtype=int)
    for _ in range(m - lo * g):  # at most (hi - lo) * g steps: distribute the remainder
        open_groups = np.flatnonzero(sizes < hi)
        sizes[rng.choice(open_groups)] += 1
    return sizes


def simulate_alliance(seed: Optional[int] = ALLIANCE_SEED, n_schools: int = 20,
                      children_per_school: int = 18, *, n: Optional[int] = None,
                      missing: bool = True, clustering: bool = True,
                      continuous: bool = False,
                      truth: Optional[Mapping[str, Any]] = None,
                      return_truth: bool = False):
    """Simulate one alliance study (STUDY.md design) with the population values in ``truth``.

    Parameters
    ----------
    seed : seed of ``numpy.random.default_rng``; the same seed and arguments give the same data.
    n_schools : schools, randomized half to ``"group"`` and half to ``"individual"`` format
        (with an odd number the extra school is individual).
    children_per_school : children per school (default 18, so 360 children).
    n : total number of children instead (spread as evenly as possible over the schools).
    missing : ``False`` gives complete data (no MAR block missingness, no item missingness).
    clustering : ``False`` draws all school, therapist and therapy-group components at the
        child level (same marginal population values, independent children).
    continuous : ``True`` returns the continuous latent responses ``y*`` of the items in keyed
        direction (nothing to reverse) and unrounded outcomes, for recovery checks.
    truth : population values (default :data:`ALLIANCE_TRUTH`; pass a modified deep copy).
    return_truth : also return the population values used (a copy, with ``"derived"``
        quantities recomputed).

    Returns
    -------
    DataFrame with ``child_id, school, format, therapy_group, therapist, age, sex, ext_pre,
    int_pre``, the 48 items ``{c,t}_{mid,end}_{bond,task}{1..6}`` and ``ext_fu, int_fu``
    (``df.attrs["simulate_alliance"]`` records the arguments); with ``return_truth=True`` the
    tuple ``(df, truth)``.
    """
    truth_arg = truth
    truth = copy.deepcopy(ALLIANCE_TRUTH if truth is None else dict(truth))
    truth["derived"] = _derive(truth)
    rng = np.random.default_rng(seed)
    if n_schools < 2:
        raise ValueError("n_schools must be at least 2 (half are randomized to each format)")
    sizes = _school_sizes(n, n_schools, children_per_school)
    n_total = int(sizes.sum())
    if n_total < 1:
        raise ValueError("the number of children must be positive")

    # --- design: schools, formats, therapy groups, therapists (loops over schools only) ---
    n_group_schools = n_schools // 2
    school_is_group = np.zeros(n_schools, dtype=bool)
    school_is_group[rng.permutation(n_schools)[:n_group_schools]] = True
    school = np.repeat(np.arange(n_schools), sizes)
    is_group = school_is_group[school]
    group_id = np.full(n_total, -1, dtype=int)
    therapist_id = np.empty(n_total, dtype=int)
    next_group = next_therapist = 0
    start = 0
    for s in range(n_schools):
        m = int(sizes[s])
        idx = np.arange(start, start + m)
        start += m
        if m == 0:
            continue
        order = rng.permutation(idx)
        if school_is_group[s]:
            gs = _partition(m, rng)
            local = np.repeat(np.arange(len(gs)), gs)
            group_id[order] = next_group + local
            n_ther = 1 if len(gs) <= 2 else 2
            therapist_id[order] = next_therapist + local % n_ther
            next_group += len(gs)
        else:
            n_ther = int(rng.integers(2, 4))
            therapist_id[order] = next_therapist + np.arange(m) % n_ther
        next_therapist += n_ther
    n_groups, n_therapists = next_group, next_therapist

    # --- exogenous variables: traits and baseline outcomes, with clustering ---
    names, cov = _exogenous_cov(truth)
    n_ex = len(names)
    mean = np.empty((n_total, n_ex))
    for fmt, mask in (("group", is_group), ("individual", ~is_group)):
        mean[mask] = [truth["traits"]["means"][fmt][k] for k in _TRAITS] + [
            truth["baseline"]["means"]["ext_pre"], truth["baseline"]["means"]["int_pre"]]
    cl = truth["clustering"]
    chol = np.linalg.cholesky(cov)

    def draw(k: int, share: float) -> np.ndarray:
        return rng.standard_normal((k, n_ex)) @ chol.T * math.sqrt(share)

    if clustering:
        u_school = draw(n_schools, cl["school"])[school]
        u_ther = draw(n_therapists, cl["therapist"])[therapist_id]
        u_grp = np.zeros((n_total, n_ex))
        if n_groups:
            u_grp[is_group] = draw(n_groups, cl["therapy_group"])[group_id[is_group]]
        child_share = 1.0 - cl["school"] - cl["therapist"] - cl["therapy_group"]
        e = draw(n_total, child_share)
        e[~is_group] += draw(int((~is_group).sum()), cl["therapy_group"])
        exo = mean + u_school + u_ther + u_grp + e
    else:
        exo = mean + draw(n_total, 1.0)
    T = exo[:, :4]
    ext_pre, int_pre = exo[:, 4], exo[:, 5]

    # --- states: S[i, d, t] = T[i, d] + zeta ---
    st = truth["states"]
    r_z = st["residual_correlation_bond_task"]
    state_keys = [(i, o, d) for i in _INFORMANTS for o in _OCCASIONS for d in _DIMENSIONS]
    S = np.empty((n_total, len(state_keys)))
    for i_idx, i in enumerate(_INFORMANTS):
        for o in _OCCASIONS:
            v = st["residual_variances"][i][o]
            z = (_mvn(rng, n_total, v * np.array([[1.0, r_z], [r_z, 1.0]]))
                 + st["residual_means"][o])
            for d_idx, d in enumerate(_DIMENSIONS):
                S[:, state_keys.index((i, o, d))] = T[:, 2 * i_idx + d_idx] + z[:, d_idx]

    # --- items: continuous latent responses, thresholds, raw reverse-keyed responses ---
    it = truth["items"]
    cols = alliance_item_columns()
    n_cols = len(cols)
    col_state = np.empty(n_cols, dtype=int)
    lam = np.empty(n_cols)
    nu = np.empty(n_cols)
    theta = np.empty(n_cols)
    wording_occ = np.full(n_cols, -1, dtype=int)
    keyed_neg = np.zeros(n_cols, dtype=bool)
    d_nu_group = np.zeros(n_cols)
    d_lam_group = np.zeros(n_cols)
    reverse = set(truth["design"]["reverse_keyed"])
    for c, (i, o, d, k) in enumerate((i, o, d, k) for i in _INFORMANTS for o in _OCCASIONS
                                     for d in _DIMENSIONS for k in range(1, _N_ITEMS + 1)):
        col_state[c] = state_keys.index((i, o, d))
        lam[c] = it["loadings"][d][k - 1]
        nu[c] = it["intercepts"][d][k - 1]
        theta[c] = it["residual_variances"][d][k - 1]
        keyed_neg[c] = k in reverse
        if i in truth["wording"]["informants"] and k in truth["wording"]["items"]:
            wording_occ[c] = _OCCASIONS.index(o)
    for spec in truth["noninvariance"]:
        for o in spec["occasions"]:
            c = cols.index(spec["item"].format(occasion=o))
            if spec["parameter"] == "intercept":
                nu[c] = spec["individual"]
                d_nu_group[c] = spec["group"] - spec["individual"]
            elif spec["parameter"] == "loading":
                lam[c] = spec["individual"]
                d_lam_group[c] = spec["group"] - spec["individual"]
            else:
                raise ValueError(f"unknown non-invariant parameter {spec['parameter']!r}")
    wd = truth["wording"]
    rw = wd["occasion_correlation"]
    W = _mvn(rng, n_total, wd["variance"] * np.array([[1.0, rw], [rw, 1.0]]))
    g = is_group[:, None].astype(float)
    loadings = lam[None, :] + g * d_lam_group[None, :]
    ystar = (nu[None, :] + g * d_nu_group[None, :] + loadings * S[:, col_state]
             + rng.standard_normal((n_total, n_cols)) * np.sqrt(theta)[None, :])
    has_w = wording_occ >= 0
    ystar[:, has_w] += wd["loading"] * W[:, wording_occ[has_w]]
    if continuous:
        items = ystar
    else:
        tau = np.asarray(it["thresholds"], dtype=float)
        keyed = 1.0 + (ystar[:, :, None] > tau[None, None, :]).sum(axis=2)
        items = np.where(keyed_neg[None, :], 5.0 - keyed, keyed)

    # --- follow-up outcomes ---
    out = truth["outcomes"]
    sd_tr = truth["derived"]["trait_sd"]
    u_fu = (rng.standard_normal((n_schools, 2))[school] if clustering
            else rng.standard_normal((n_total, 2)))
    e_fu = rng.standard_normal((n_total, 2))
    fu = {}
    for j, (y, pre) in enumerate((("ext_fu", ext_pre), ("int_fu", int_pre))):
        spec = out[y]
        val = spec["intercept"] + spec["baseline"] * pre
        for t_idx, k in enumerate(_TRAITS):
            val = val + spec["per_trait_sd"][k] * T[:, t_idx] / sd_tr[k]
        disc = spec.get("discrepancy")
        if disc:
            a, b = disc["definition"].replace(" ", "").split("-")
            dval = T[:, _TRAITS.index(a)] - T[:, _TRAITS.index(b)] - disc["centre"]
            val = val + np.where(is_group, disc["group"], disc["individual"]) * dval
        res_sd = spec["residual_sd"]
        share = cl["outcome_school"]
        val = val + res_sd * (math.sqrt(share) * u_fu[:, j] + math.sqrt(1 - share) * e_fu[:, j])
        fu[y] = val
    ext_fu, int_fu = fu["ext_fu"], fu["int_fu"]
    if not continuous:
        ext_pre, int_pre = np.round(ext_pre), np.round(int_pre)
        ext_fu, int_fu = np.round(ext_fu), np.round(int_fu)

    # --- covariates without effects ---
    age = rng.integers(9, 12, size=n_total)
    sex = np.where(rng.random(n_total) < 0.7, "boy", "girl")

    # --- MAR missingness given the (observed) baseline ---
    if missing:
        from scipy.special import expit

        mi = truth["missingness"]
        bl = truth["baseline"]
        zb = {"ext_pre": (ext_pre - bl["means"]["ext_pre"]) / bl["sds"]["ext_pre"],
              "int_pre": (int_pre - bl["means"]["int_pre"]) / bl["sds"]["int_pre"]}
        r_b = bl["correlations"][("ext_pre", "int_pre")]

        def block(spec: Mapping[str, Any]) -> np.ndarray:
            sl = spec["slopes"]
            b_e, b_i = sl.get("ext_pre", 0.0), sl.get("int_pre", 0.0)
            scale = math.sqrt(b_e ** 2 + b_i ** 2 + 2 * b_e * b_i * r_b)
            a = _logit_intercept(spec["rate"], scale)
            p = expit(a + b_e * zb["ext_pre"] + b_i * zb["int_pre"])
            return rng.random(n_total) < p

        items = items.copy()
        for key, inf in (("c_end", "c"), ("t_end", "t")):
            miss = block(mi[key])
            sel = np.array([col.startswith(f"{inf}_end_") for col in cols])
            items[np.ix_(miss, sel)] = np.nan
        miss_fu = block(mi["followup"])
        ext_fu = np.where(miss_fu, np.nan, ext_fu)
        int_fu = np.where(miss_fu, np.nan, int_fu)
        items[rng.random(items.shape) < mi["item"]["rate"]] = np.nan

    # --- assemble ---
    w_s = max(2, len(str(n_schools)))
    w_t = max(2, len(str(n_therapists)))
    w_g = max(2, len(str(max(n_groups, 1))))
    school_labels = np.array([f"S{s + 1:0{w_s}d}" for s in range(n_schools)], dtype=object)
    therapist_labels = np.array([f"T{t + 1:0{w_t}d}" for t in range(n_therapists)],
                                dtype=object)
    group_labels = np.array([f"G{g_ + 1:0{w_g}d}" for g_ in range(n_groups)] + [None],
                            dtype=object)  # index -1 -> None (individual format)
    data: dict[str, Any] = {
        "child_id": np.arange(1, n_total + 1),
        "school": school_labels[school],
        "format": np.where(is_group, "group", "individual"),
        "therapy_group": group_labels[group_id],
        "therapist": therapist_labels[therapist_id],
        "age": age,
        "sex": sex,
        "ext_pre": ext_pre,
        "int_pre": int_pre,
    }
    df = pd.DataFrame(data)
    df = pd.concat([df, pd.DataFrame(items, columns=cols),
                    pd.DataFrame({"ext_fu": ext_fu, "int_fu": int_fu})], axis=1)
    df.attrs["simulate_alliance"] = {
        "seed": seed, "n_schools": n_schools, "children_per_school": children_per_school,
        "n": n, "missing": missing, "clustering": clustering, "continuous": continuous,
        "truth": "default" if truth_arg is None else "custom"}
    return (df, truth) if return_truth else df
