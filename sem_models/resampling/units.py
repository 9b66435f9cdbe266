"""Resampling units: rows or whole clusters, drawn with replacement within groups (strata),
and the leave-one-unit-out sets of the jackknife.

With clusters, whole clusters are drawn with replacement within each group, as many as the
group has (Davison & Hinkley 1997, sec. 3.8: the first stage of their two-stage scheme, the
recommended one when the clusters are few); the jackknife then leaves out one cluster at a
time.  Every bootstrap of the package (fitted models, response surfaces, any statistic) draws
its samples here.

Reference: Davison, A. C., & Hinkley, D. V. (1997). Bootstrap methods and their application.
Cambridge UP.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["Units", "cluster_units"]


def cluster_units(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions sorted by cluster, each cluster's first place in that order and its size."""
    _, codes = np.unique(np.asarray(ids), return_inverse=True)
    codes = codes.ravel()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges ``starts[i] .. starts[i] + counts[i] - 1`` (no Python loop)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, int)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return offsets + np.arange(total)


class Units:
    """The resampling units of each group (stratum): its rows, or its clusters.

    ``sizes[g]`` rows in group ``g``; ``clusters[g]`` (optional) one cluster id per row.
    """

    def __init__(self, sizes: Sequence[int], clusters: Optional[Sequence] = None):
        self.sizes = [int(n) for n in sizes]
        if clusters is None:
            clusters = [None] * len(self.sizes)
        if len(clusters) != len(self.sizes):
            raise ValueError(f"{len(clusters)} cluster arrays for {len(self.sizes)} groups")
        self.clusters = [None if c is None else cluster_units(c) for c in clusters]
        for n, c in zip(self.sizes, clusters):
            if c is not None and len(c) != n:
                raise ValueError(f"{len(c)} cluster ids for {n} rows")

    def draw(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Positions (within each group) of one bootstrap sample: ``n_g`` rows drawn with
        replacement, or as many clusters as the group has, drawn with replacement."""
        out = []
        for n, units in zip(self.sizes, self.clusters):
            if units is None:
                out.append(rng.integers(0, n, n))
            else:
                order, starts, counts = units
                picked = rng.integers(0, len(starts), len(starts))
                out.append(order[_expand(starts[picked], counts[picked])])
        return out

    def jackknife(self) -> list[tuple[int, np.ndarray]]:
        """``(group, positions)`` of every unit: the rows left out by one jackknife value."""
        units: list[tuple[int, np.ndarray]] = []
        for g, (n, cl) in enumerate(zip(self.sizes, self.clusters)):
            if cl is None:
                units.extend((g, np.array([i])) for i in range(n))
            else:
                order, starts, counts = cl
                units.extend((g, order[s:s + c]) for s, c in zip(starts, counts))
        return units


# ------------------------------------------------------------------------ model bootstrap
class _Sampler:
    """Draws one bootstrap sample (one array per group) of a fitted model's data: rows or
    clusters (``kind`` ordinary or bollen_stine, on the data given) or normal data from the
    fitted moments (``kind="parametric"``, ``moments`` = (mean, Cholesky factor) per group)."""

    def __init__(self, kind: str, Xs: list[np.ndarray], clusters: Optional[list],
                 moments: Optional[list]):
        self.kind = kind
        self.Xs = Xs
        self.units = Units([X.shape[0] for X in Xs], clusters)
        self.moments = moments

    def indices(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Row positions (within each group) of one nonparametric bootstrap sample."""
        return self.units.draw(rng)

    def __call__(self, rng: np.random.Generator) -> list[np.ndarray]:
        if self.kind == "parametric":
            return [mean + rng.standard_normal((X.shape[0], len(mean))) @ chol.T
                    for X, (mean, chol) in zip(self.Xs, self.moments)]
        return [X[idx] for X, idx in zip(self.Xs, self.indices(rng))]


def _jackknife_units(Xs: list[np.ndarray], clusters: Optional[list]) -> list:
    return Units([X.shape[0] for X in Xs], clusters).jackknife()


_cluster_units = cluster_units  # the name the tests import
