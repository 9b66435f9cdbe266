"""Modification indices and expected parameter changes (lavaan's ``modindices``).

For every parameter not in the model -- cross-loadings ``factor =~ indicator`` and residual
covariances ``x ~~ y`` among observed endogenous variables, per group -- the univariate score
(Lagrange multiplier) test at the current estimates (Sorbom 1989; Saris, Satorra & Sorbom 1987):

    MI  = N g_j^2 / (I_jj - I_jz (T' I T)^-1 I_zj)
    EPC = -g_j / (I_jj - I_jz (T' I T)^-1 I_zj)

with ``g_j`` the gradient of the fitting function for the added parameter, ``I`` the expected
information per case and ``T`` the constraint map of the model's free parameters.
Standardized EPCs as lavaan's ``sepc.lv``, ``sepc.all`` and ``sepc.nox``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..model.matrices import Cells

__all__ = ["modification_indices", "candidate_parameters"]


def candidate_parameters(fit, g: int) -> list[tuple[str, str, str]]:
    """Parameters that could be added in group ``g``: cross-loadings and residual covariances."""
    pt = fit._partable
    rows = pt[pt["group"] == g + 1]
    present = set(zip(rows["lhs"], rows["op"], rows["rhs"]))
    ov = [v for v in fit.model.ov_names if v not in fit.variables.ov_x]
    out = []
    for lv in fit.variables.lv:
        for v in ov:
            if (lv, "=~", v) not in present:
                out.append((lv, "=~", v))
    for i, a in enumerate(ov):
        for b in ov[i + 1:]:
            if (a, "~~", b) not in present and (b, "~~", a) not in present:
                out.append((a, "~~", b))
    return out


def modification_indices(fit, sort: bool = True, minimum_value: float = 0.0) -> pd.DataFrame:
    """Modification indices with EPCs for all candidate parameters, per group."""
    problem = fit.problem
    model = fit.model
    values = fit.values
    index = {name: k for k, name in enumerate(model.var_names)}
    T = problem.pmap.T
    n_free = T.shape[0]
    records = []
    blocks = []  # per group: (candidates, grad_new, info_new_new, info_new_free)
    for g, loss in enumerate(problem.losses):
        cands = candidate_parameters(fit, g)
        if not cands:
            continue
        mom = fit._moments[g]
        ids = np.arange(len(cands))
        a_ids = [k for k, c in enumerate(cands) if c[1] == "=~"]
        s_ids = [k for k, c in enumerate(cands) if c[1] == "~~"]
        cells = Cells(
            (ids[a_ids], np.array([index[cands[k][2]] for k in a_ids], int),
             np.array([index[cands[k][0]] for k in a_ids], int)),
            (ids[s_ids], np.array([index[cands[k][0]] for k in s_ids], int),
             np.array([index[cands[k][2]] for k in s_ids], int)),
            (np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)))
        order, d_cov_new, d_mean_new = model.jacobian(mom, cells)
        pos, d_cov, d_mean = problem.group_jacobian(values, g, mom)
        both_cov = np.concatenate([d_cov_new, d_cov])
        both_mean = np.concatenate([d_mean_new, d_mean])
        grad, info = loss.derivatives(mom, both_cov, both_mean)
        q = len(order)
        w = problem.weights[g]
        info_nf = np.zeros((q, n_free))
        np.add.at(info_nf.T, pos, (w * info[:q, q:]).T)
        blocks.append(([cands[k] for k in order], w * grad[:q], w * np.diag(info[:q, :q]),
                       info_nf, g))
    info_z = fit._info_z
    V = np.linalg.pinv(info_z)
    N = float(fit.ntotal)
    for cands, grad, info_nn, info_nf, g in blocks:
        info_nz = info_nf @ T
        schur = info_nn - np.einsum("ij,jk,ik->i", info_nz, V, info_nz)
        with np.errstate(divide="ignore", invalid="ignore"):
            mi = N * grad ** 2 / schur
            epc = -grad / schur
        mom = fit._moments[g]
        _, S, _ = model.matrices(values, g)
        total_sd = np.sqrt(np.clip(np.diag(mom.full_cov), 0, None))
        for (lhs, op, rhs), m, e in zip(cands, mi, epc):
            if op == "=~":
                sepc_lv = e * total_sd[index[lhs]]
                sepc_all = sepc_lv / total_sd[index[rhs]]
            else:
                sepc_lv = e
                sepc_all = e / np.sqrt(S[index[lhs], index[lhs]] * S[index[rhs], index[rhs]])
            rec = {"lhs": lhs, "op": op, "rhs": rhs}
            if fit.n_groups > 1:
                rec["group"] = fit.group_labels[g]
            rec.update({"mi": m, "epc": e, "sepc_lv": sepc_lv, "sepc_all": sepc_all,
                        "sepc_nox": sepc_all})
            records.append(rec)
    table = pd.DataFrame(records)
    if table.empty:
        return table
    table = table[table["mi"] >= minimum_value]
    if sort:
        table = table.sort_values("mi", ascending=False, kind="stable")
    return table.reset_index(drop=True)
