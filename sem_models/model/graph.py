"""The model as a directed graph (networkx): variable roles, paths and structural checks.

Nodes are variables with attributes ``latent`` (bool), ``exogenous`` (bool) and ``observed``;
edges are directed paths (``factor -> indicator`` for loadings, ``predictor -> outcome`` for
regressions) with attribute ``op``.  Covariances are kept as an undirected edge list in
``graph.graph["covariances"]``.  networkx is imported lazily so that importing sem_models
stays fast.
"""
from __future__ import annotations

import warnings

import numpy as np

from .partable import ModelVariables, ParTable

__all__ = ["model_graph", "check_model_graph", "ModelStructureWarning"]


class ModelStructureWarning(UserWarning):
    """A structural feature that is legal but often a mistake (feedback loop, 1-indicator factor)."""


def model_graph(partable: ParTable, variables: ModelVariables):
    """A :class:`networkx.DiGraph` of the model (first group's parameters)."""
    import networkx as nx

    first = partable["group"] == 1
    triples = list(zip(partable["lhs"][first], partable["op"][first],
                       partable["rhs"][first]))
    graph = nx.DiGraph()
    endogenous = {rhs if op == "=~" else lhs for lhs, op, rhs in triples if op in ("=~", "~")}
    for name in variables.ov + variables.lv:
        graph.add_node(name, latent=name in variables.lv, observed=name in variables.ov,
                       exogenous=name not in endogenous)
    for lhs, op, rhs in triples:
        if op == "=~":
            graph.add_edge(lhs, rhs, op="=~")
        elif op == "~":
            graph.add_edge(rhs, lhs, op="~")
    graph.graph["covariances"] = [(lhs, rhs) for lhs, op, rhs in triples
                                  if op == "~~" and lhs != rhs]
    return graph


def check_model_graph(partable: ParTable, variables: ModelVariables):
    """Warn about feedback loops and factors with a single indicator.

    Returns the graph, or None when the model has neither regressions nor single-indicator
    factors (then there is nothing to check and the graph is built on demand)."""
    import networkx as nx

    has_paths = "~" in partable["op"].tolist()
    single = any(len(inds) == 1 for inds in variables.indicators.values())
    if not (has_paths or single):
        return None
    graph = model_graph(partable, variables)
    cycles = list(nx.simple_cycles(graph))
    if cycles:
        loop = " -> ".join(cycles[0] + [cycles[0][0]])
        warnings.warn(f"the model is non-recursive (feedback loop {loop}); such models need "
                      "extra identification conditions", ModelStructureWarning, stacklevel=4)
    for lv, inds in variables.indicators.items():
        if len(inds) != 1:
            continue
        resid = np.flatnonzero((partable["group"] == 1)
                               & (partable["lhs"] == inds[0])
                               & (partable["op"] == "~~")
                               & (partable["rhs"] == inds[0]))
        resid_fixed = len(resid) == 1 and partable["free"][resid[0]] == 0
        if not resid_fixed and graph.in_degree(lv) == 0:
            warnings.warn(
                f"factor {lv!r} has a single indicator ({inds[0]!r}) whose residual variance is "
                "free: the factor is not identified; fix the residual variance (e.g. "
                f"'{inds[0]} ~~ 0*{inds[0]}') or add indicators", ModelStructureWarning,
                stacklevel=4)
    return graph
