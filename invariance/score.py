"""Score (Lagrange multiplier) tests of equality constraints, as lavaan's ``lavTestScore``.

The constrained model is fitted once.  In the *unconstrained* parameterisation (every free row
of the parameter table its own parameter) the equality constraints are ``R theta = r``: one row
per constraint, ``theta_ref - theta_other = 0`` for every parameter sharing a label with the
first row of that label (the cross-group / cross-occasion equalities), plus the model's own
linear ``==`` constraints.  With ``s`` the per-case gradient of the log-likelihood and ``I`` the
per-case expected information, both at the constrained estimates and in the unconstrained
parameters, the statistic for releasing the constraints *not* in ``R1`` is

    X2 = N s' [ (I  R1')^+ ]_11 s,
              ( R1  0  )

the upper-left block of the (Moore-Penrose) inverse of the bordered information matrix.  The
univariate test of constraint j drops row j from R (``R1 = R[-j]``, one df); the total test
uses ``I^+`` (all constraints released).  (Rao 1948; Aitchison & Silvey 1958; Satorra 1989,
Psychometrika 54(1), 131-151; Bentler 1990 for the multivariate LM test in SEM.)
The expected parameter change of releasing all constraints is ``s' I^+``.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np
import pandas as pd

import scipy.linalg

from sem_models.estimation.threads import single_threaded_blas
from sem_models.inference.distributions import chi2_pvalue
from sem_models.model.constraints import defined_values, numerical_jacobian
from sem_models.model.syntax import compile_expression

__all__ = ["score_tests", "score_test_total", "expected_parameter_changes", "constraint_system",
           "release_tests"]


_GINV_TOL = float(np.sqrt(np.finfo(float).eps))  # as MASS::ginv


def _ginv(a: np.ndarray) -> np.ndarray:
    return np.linalg.pinv(a, rcond=_GINV_TOL, hermitian=True)


def _solve_sym(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^+ b`` for a symmetric ``a``: a direct solve when ``a`` is well conditioned, the
    Moore-Penrose inverse (as lavaan's ``MASS::ginv``) otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
            return scipy.linalg.solve(a, b, assume_a="sym")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning, ValueError):
        return _ginv(a) @ b


def _score_information(fit) -> tuple[np.ndarray, np.ndarray]:
    """Per-case score ``s`` (gradient of logL / N) and expected information, free rows."""
    problem = fit.problem
    values = fit.values
    n_free = len(problem.pmap.free_rows)
    grad = np.zeros(n_free)
    info = np.zeros((n_free, n_free))
    moments = fit._moments
    for g, loss in enumerate(problem.losses):
        pos, d_cov, d_mean = problem.group_jacobian(values, g, moments[g])
        gr, inf = loss.derivatives(moments[g], d_cov, d_mean)
        np.add.at(grad, pos, problem.weights[g] * gr)
        info[np.ix_(pos, pos)] += problem.weights[g] * inf
    # the discrepancy is -logL / N up to a constant: its gradient has the opposite sign
    return -grad, info


def _row_group(fit, r: int):
    pt = fit._partable
    g = int(pt["group"].iat[r])
    if fit.n_groups > 1 and g >= 1:
        return fit.group_labels[g - 1]
    return None


def _label_constraints(free_rows: np.ndarray, labels) -> list[tuple[int, int]]:
    """(reference row, other row) for every free row sharing a label with an earlier one."""
    pairs, first = [], {}
    for r in free_rows:
        lab = labels[r]
        if not lab:
            continue
        if lab not in first:
            first[lab] = int(r)
        else:
            pairs.append((first[lab], int(r)))
    return pairs


def _user_constraints(fit) -> tuple[list[np.ndarray], list[dict]]:
    """Jacobian rows (w.r.t. the free rows) and descriptions of the model's '==' constraints."""
    pt = fit._partable
    free_rows = np.asarray(fit.problem.pmap.free_rows)
    rows, records = [], []
    cons = pt[pt["op"] == "=="]
    values = fit.values
    for _, c in cons.iterrows():
        lhs, rhs = compile_expression(c["lhs"]), compile_expression(c["rhs"])

        def func(theta, lhs=lhs, rhs=rhs):
            vals = values.copy()
            vals[free_rows] = theta
            env = defined_values(pt, vals)
            return np.array([lhs.evaluate(env) - rhs.evaluate(env)])

        jac = numerical_jacobian(func, values[free_rows])[0]
        jac[np.abs(jac) < 1e-9] = 0.0
        rows.append(jac)
        records.append({"lhs": c["lhs"], "op": "==", "rhs": c["rhs"], "group": None,
                        "label": "", "constraint": f"{c['lhs']} == {c['rhs']}",
                        "ref_lhs": "", "ref_op": "", "ref_rhs": "", "ref_group": None,
                        "row": -1, "ref_row": -1})
    return rows, records


def _matrix(free_rows: np.ndarray, pairs, extra: list) -> np.ndarray:
    position = {int(r): k for k, r in enumerate(free_rows)}
    R = np.zeros((len(pairs) + len(extra), len(free_rows)))
    for k, (ref, other) in enumerate(pairs):
        R[k, position[ref]] = 1.0
        R[k, position[other]] = -1.0
    for k, row in enumerate(extra):
        R[len(pairs) + k] = row
    return R


def constraint_system(fit) -> tuple[np.ndarray, pd.DataFrame]:
    """The equality constraints of a fit in the unconstrained parameterisation.

    Returns ``R`` (constraints x free rows) and a table describing each constraint: the
    released row (``row``: position in the parameter table; ``lhs``, ``op``, ``rhs``, ``group``)
    and the reference row it is tied to (``ref_row``, ``ref_lhs``, ...), the shared ``label``
    and the lavaan-style ``constraint`` text (``.p2. == .p38.``).  User ``==`` constraints have
    ``row = -1`` and the constraint expression in lhs / op / rhs.
    """
    pt = fit._partable
    free_rows = np.asarray(fit.problem.pmap.free_rows)
    labels = pt["label"].to_numpy()
    plabels = pt["plabel"].to_numpy()
    pairs = _label_constraints(free_rows, labels)
    records = []
    for ref, r in pairs:
        records.append({
            "lhs": pt["lhs"].iat[r], "op": pt["op"].iat[r], "rhs": pt["rhs"].iat[r],
            "group": _row_group(fit, r), "label": labels[r],
            "constraint": f"{plabels[ref]} == {plabels[r]}",
            "ref_lhs": pt["lhs"].iat[ref], "ref_op": pt["op"].iat[ref],
            "ref_rhs": pt["rhs"].iat[ref], "ref_group": _row_group(fit, ref),
            "row": r, "ref_row": ref})
    user_rows, user_records = _user_constraints(fit)
    return _matrix(free_rows, pairs, user_rows), pd.DataFrame(records + user_records)


def _score_information_mask(fit, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """Per-case score and expected information (as :func:`_score_information`) for the
    parameter-table rows selected by ``mask``: the free rows and fixed rows taken as free at
    their fixed values (the parameters a release would add).  Returns ``(s, info, rows)``."""
    problem, model = fit.problem, fit.model
    rows_all = np.flatnonzero(mask)
    pos_of = np.full(len(mask), -1)
    pos_of[rows_all] = np.arange(len(rows_all))
    n = len(rows_all)
    grad = np.zeros(n)
    info = np.zeros((n, n))
    moments = fit._moments
    for g, loss in enumerate(problem.losses):
        cells = model.free_rows(g, mask)
        rows, d_cov, d_mean = model.jacobian(moments[g], cells)
        gr, inf = loss.derivatives(moments[g], d_cov, d_mean)
        pos = pos_of[np.asarray(rows, int)]
        np.add.at(grad, pos, problem.weights[g] * gr)
        info[np.ix_(pos, pos)] += problem.weights[g] * inf
    return -grad, info, rows_all


@single_threaded_blas
def release_tests(fit, candidates: Sequence[Sequence[int]],
                  df: Optional[Sequence[int]] = None,
                  free: Optional[Sequence[Sequence[int]]] = None) -> pd.DataFrame:
    """Score tests of releasing *sets* of parameters: each candidate is a list of
    parameter-table rows; the rows sharing a label get a new label of their own (so they
    stay equal among themselves, e.g. one group's intercept at every occasion), rows with
    different labels are released together (e.g. all thresholds of an ordinal item in one
    group).  A single row is lavaan's univariate test of that row's constraint.

    ``free``: per candidate, fixed rows the release makes free parameters (an ordinal item's
    intercept fixed to 0 in every group under Wu & Estabrook's scalar model is freed in the
    released group); they enter the score test as parameters fixed at their values in the
    fitted model (lavaan's ``lavTestScore(add=)``).

    ``df``: the degrees of freedom of each release (``None`` entries: computed); by default
    the number of directions the
    release adds to the model, ``rank(I | R1) - rank(I | R)`` (the rank of the information
    restricted to the null space of the constraints): the number of labels released, unless
    the released parameters trade against parameters that are already free (an ordinal
    item's thresholds against its free intercept and scale: Wu & Estabrook 2016).  The
    statistic is Satorra's (1989) score test of the model with the candidate's constraints
    released and every other parameter as it is (identification constraints the release
    re-imposes are left free: the released parameters span their directions); the bordered
    information is solved by the Moore-Penrose inverse when it is singular, as lavaan's
    ``lavTestScore``.

    Returns a DataFrame with ``rows`` (the candidate), ``X2``, ``df``, ``pvalue``.
    """
    _check(fit)
    pt = fit._partable
    free_rows = np.asarray(fit.problem.pmap.free_rows)
    free = [list(map(int, f)) for f in free] if free is not None else [[] for _ in candidates]
    extra = sorted({r for f in free for r in f} - set(free_rows.tolist()))
    if extra:
        mask = np.zeros(len(pt), bool)
        mask[free_rows] = True
        mask[extra] = True
        s, info, rows_all = _score_information_mask(fit, mask)
    else:
        s, info = _score_information(fit)
        rows_all = free_rows
    base = pt["label"].to_numpy().astype(object)
    for r in extra:  # an added parameter is tied to nothing
        base[r] = ""
    user_rows, _ = _user_constraints(fit)
    if extra and user_rows:
        pos = {int(r): k for k, r in enumerate(rows_all)}
        padded = []
        for row in user_rows:
            full = np.zeros(len(rows_all))
            full[[pos[int(r)] for r in free_rows]] = row
            padded.append(full)
        user_rows = padded
    position = {int(r): k for k, r in enumerate(rows_all)}

    def fixings(rows) -> list:
        out = []
        for r in rows:
            e = np.zeros(len(rows_all))
            e[position[r]] = 1.0
            out.append(e)
        return out

    N = float(fit.ntotal)
    out = []
    rank0 = None
    dfs = [None] * len(candidates) if df is None else list(df)
    if any(d is None for d in dfs):
        rank0 = _restricted_rank(info, _matrix(rows_all, _label_constraints(rows_all, base),
                                               user_rows + fixings(extra)))
    for k, rows in enumerate(candidates):
        rows = [int(r) for r in rows]
        labels = base.copy()
        names = list(dict.fromkeys(labels[r] for r in rows if labels[r]))
        if not names and not free[k]:
            raise ValueError("a release candidate must be rows with labels (equality "
                             "constraints) or rows to free")
        for j, name in enumerate(names):
            sel = [r for r in rows if labels[r] == name]
            labels[sel] = f"{name}#release{k}.{j}"
        kept = [r for r in extra if r not in set(free[k])]
        R1 = _matrix(rows_all, _label_constraints(rows_all, labels), user_rows + fixings(kept))
        stat = N * _quadratic(info, R1, s)
        d = _restricted_rank(info, R1) - rank0 if dfs[k] is None else int(dfs[k])
        out.append({"rows": rows, "X2": stat, "df": d,
                    "pvalue": chi2_pvalue(stat, d)})
    return pd.DataFrame(out, columns=["rows", "X2", "df", "pvalue"])


def _restricted_rank(info: np.ndarray, R: np.ndarray) -> int:
    """Rank of the information restricted to the null space of the constraints ``R``: the
    number of identified free directions of the constrained model."""
    if R.shape[0]:
        basis = scipy.linalg.null_space(R)
        M = basis.T @ info @ basis
    else:
        M = info
    if M.size == 0:
        return 0
    ev = np.linalg.eigvalsh((M + M.T) / 2)
    top = float(np.max(np.abs(ev)))
    return int(np.sum(ev > 1e-9 * top)) if top > 0 else 0


def _quadratic(info: np.ndarray, R1: np.ndarray, s: np.ndarray) -> float:
    """``s' [Z1^+]_11 s`` with ``Z1`` the information bordered by the constraints ``R1``."""
    n, m = info.shape[0], R1.shape[0]
    if m == 0:
        return float(s @ _solve_sym(info, s))
    Z = np.block([[info, R1.T], [R1, np.zeros((m, m))]])
    rhs = np.concatenate([s, np.zeros(m)])
    return float(s @ _solve_sym(Z, rhs)[:n])


def _check(fit) -> None:
    if not fit.converged:
        raise ValueError("score tests need a converged fit")
    pt = fit._partable
    if pt["op"].isin(["<", ">"]).any():
        raise ValueError("score tests are not available for models with inequality constraints "
                         "('<', '>'), as in lavaan's lavTestScore")


@single_threaded_blas
def score_test_total(fit) -> pd.Series:
    """Multivariate score test of all equality constraints (lavTestScore's ``$test``)."""
    _check(fit)
    R, _ = constraint_system(fit)
    if R.shape[0] == 0:
        raise ValueError("the model has no equality constraints to test")
    s, info = _score_information(fit)
    stat = fit.ntotal * _quadratic(info, R[:0], s)
    df = R.shape[0]
    return pd.Series({"X2": stat, "df": df, "pvalue": chi2_pvalue(stat, df)})


@single_threaded_blas
def score_tests(fit, cumulative: bool = False, epc: bool = False,
                sort: bool = True) -> pd.DataFrame:
    """Univariate score tests of every equality constraint of ``fit`` (lavTestScore ``$uni``).

    One row per constraint ``theta_ref == theta_other``: ``lhs, op, rhs, group`` name the
    parameter that would be released (for cross-group constraints the parameter of ``group``;
    for longitudinal ones the later occasion's), followed by ``X2``, ``df`` (1), ``pvalue``,
    the shared ``label``, the lavaan-style ``constraint`` (plabels), the reference parameter
    (``ref_lhs``, ``ref_op``, ``ref_rhs``, ``ref_group``) and the parameter-table positions
    ``row`` / ``ref_row``.  Sorted by ``X2``, largest first (``sort=False``: constraint order).

    ``epc=True`` adds ``epc``: the expected change of the released parameter when all
    constraints are released (lavTestScore's ``epc``).  ``cumulative=True`` adds
    ``X2_cumulative``, ``df_cumulative``, ``pvalue_cumulative``: releasing the constraints one
    after another in the order of their univariate X2 (lavTestScore's ``$cumulative``).
    The total test is in ``.attrs["total"]``.

    Satorra (1989); Bentler (1990); lavaan uses the expected information and the standard
    (not robust) statistic also for robust estimators, as here.
    """
    _check(fit)
    estimator = str(fit.options.get("estimator", "ML")).upper()
    if estimator != "ML":
        warnings.warn(f"score tests for estimator={estimator} use the standard (not robust) "
                      "statistic with the expected information, as lavaan's lavTestScore",
                      UserWarning, stacklevel=2)
    R, table = constraint_system(fit)
    if R.shape[0] == 0:
        raise ValueError("the model has no equality constraints (no shared labels or '==') to "
                         "test; fit a model with equality constraints, e.g. a metric or scalar "
                         "invariance model")
    s, info = _score_information(fit)
    N = float(fit.ntotal)
    m = R.shape[0]
    stats = np.empty(m)
    for j in range(m):
        stats[j] = N * _quadratic(info, np.delete(R, j, axis=0), s)
    table = table.copy()
    table.insert(4, "X2", stats)
    table.insert(5, "df", 1)
    table.insert(6, "pvalue", chi2_pvalue(stats, 1))
    if fit.n_groups <= 1:
        table = table.drop(columns=["group", "ref_group"])
    if epc:
        change = _solve_sym(info, s)
        rows = fit.problem.pmap.free_rows
        pos = {int(r): k for k, r in enumerate(rows)}
        table["epc"] = [change[pos[r]] if r >= 0 else np.nan for r in table["row"]]
    if cumulative:
        order = np.argsort(-stats, kind="stable")
        cum = np.empty(m)
        for n in range(1, m + 1):
            keep = np.setdiff1d(np.arange(m), order[:n])
            cum[order[n - 1]] = N * _quadratic(info, R[keep], s)
        dfc = np.empty(m, int)
        dfc[order] = np.arange(1, m + 1)
        table["X2_cumulative"] = cum
        table["df_cumulative"] = dfc
        table["pvalue_cumulative"] = chi2_pvalue(cum, dfc)
    total = N * _quadratic(info, R[:0], s)
    if sort:
        table = table.sort_values("X2", ascending=False, kind="stable")
    table = table.reset_index(drop=True)
    table.attrs["total"] = {"X2": total, "df": m, "pvalue": chi2_pvalue(total, m)}
    return table


@single_threaded_blas
def expected_parameter_changes(fit) -> pd.DataFrame:
    """Expected change of every free parameter when all equality constraints are released
    (lavTestScore(epc = TRUE)'s ``epc`` and ``epv = est + epc``)."""
    _check(fit)
    s, info = _score_information(fit)
    change = _solve_sym(info, s)
    pt = fit._partable
    rows = np.asarray(fit.problem.pmap.free_rows)
    out = pd.DataFrame({"lhs": pt["lhs"].to_numpy()[rows], "op": pt["op"].to_numpy()[rows],
                        "rhs": pt["rhs"].to_numpy()[rows]})
    if fit.n_groups > 1:
        out["group"] = [_row_group(fit, int(r)) for r in rows]
    out["label"] = pt["label"].to_numpy()[rows]
    out["est"] = fit.values[rows]
    out["epc"] = change
    out["epv"] = out["est"] + out["epc"]
    return out
