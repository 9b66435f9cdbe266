"""The model as a directed graph (networkx): variable roles, paths and structural checks.

Nodes are variables with attributes ``latent`` (bool), ``exogenous`` (bool) and ``observed``;
edges are directed paths (``factor -> indicator`` for loadings, ``predictor -> outcome`` for
regressions) with attribute ``op``.  Covariances are kept as an undirected edge list in
``graph.graph["covariances"]``.  networkx is imported lazily so that importing sem_models
stays fast.
"""
from __future__ import annotations

import warnings

import pandas as pd

from .partable import ModelVariables

__all__ = ["model_graph", "check_model_graph", "ModelStructureWarning"]


class ModelStructureWarning(UserWarning):
    """A structural feature that is legal but often a mistake (feedback loop, 1-indicator factor)."""


def model_graph(partable: pd.DataFrame, variables: ModelVariables):
    """A :class:`networkx.DiGraph` of the model (first group's parameters)."""
    import networkx as nx

    rows = partable[partable["group"] == 1]
    graph = nx.DiGraph()
    endogenous = set()
    for _, r in rows.iterrows():
        if r["op"] == "=~":
            endogenous.add(r["rhs"])
        elif r["op"] == "~":
            endogenous.add(r["lhs"])
    for name in variables.ov + variables.lv:
        graph.add_node(name, latent=name in variables.lv, observed=name in variables.ov,
                       exogenous=name not in endogenous)
    for _, r in rows.iterrows():
        if r["op"] == "=~":
            graph.add_edge(r["lhs"], r["rhs"], op="=~")
        elif r["op"] == "~":
            graph.add_edge(r["rhs"], r["lhs"], op="~")
    graph.graph["covariances"] = [(r["lhs"], r["rhs"]) for _, r in rows.iterrows()
                                  if r["op"] == "~~" and r["lhs"] != r["rhs"]]
    return graph


def check_model_graph(partable: pd.DataFrame, variables: ModelVariables):
    """Build the graph and warn about feedback loops and factors with a single indicator."""
    import networkx as nx

    graph = model_graph(partable, variables)
    cycles = list(nx.simple_cycles(graph))
    if cycles:
        loop = " -> ".join(cycles[0] + [cycles[0][0]])
        warnings.warn(f"the model is non-recursive (feedback loop {loop}); such models need "
                      "extra identification conditions", ModelStructureWarning, stacklevel=4)
    rows = partable[partable["group"] == 1]
    for lv, inds in variables.indicators.items():
        if len(inds) != 1:
            continue
        predictors = graph.in_degree(lv)
        resid = rows[(rows["lhs"] == inds[0]) & (rows["op"] == "~~") & (rows["rhs"] == inds[0])]
        resid_fixed = len(resid) == 1 and resid["free"].iat[0] == 0
        if not resid_fixed and predictors == 0:
            warnings.warn(
                f"factor {lv!r} has a single indicator ({inds[0]!r}) whose residual variance is "
                "free: the factor is not identified; fix the residual variance (e.g. "
                f"'{inds[0]} ~~ 0*{inds[0]}') or add indicators", ModelStructureWarning,
                stacklevel=4)
    return graph
