"""Path diagrams of fitted models: estimates on the arrows, no arrow through a node.

:func:`path_diagram` (also ``fit.plot()``) draws a fit with matplotlib and returns the
Figure; :func:`diagram_layout` computes where the nodes and edges go, so the geometry can be
inspected (and tested) without drawing.

Two layout engines:

* ``"dot"`` (used when Graphviz's ``dot`` program is on PATH): the structural variables
  (latent variables and observed variables in regressions) share one rank, so regressions run
  left to right as flat edges, and the indicators form the rank above; Graphviz's
  hierarchical layout (Gansner, Koutsofios, North & Vo 1993, "A technique for drawing directed
  graphs", IEEE TSE 19) orders the nodes to reduce crossings and routes every edge as a spline
  around the nodes.
* ``"layered"`` (pure Python): the same two layers.  The structural variables sit in one row,
  ordered left to right by their longest regression path from an exogenous variable (the
  layering step of Sugiyama, Tagawa & Toda 1981); each factor's indicators sit in a row above
  it, centred on it, in a band of their own.  Arrows between neighbours in the row are
  straight; arrows between non-neighbours, and covariances, are arcs below the row (above the
  indicator row for indicators), so no arrow crosses a node; the gap between the rows is
  chosen so that every straight arrow between the rows enters its boxes through their facing
  sides.

Numbers on the arrows: standardized (``std_all``, default) or unstandardized estimates; solid
arrows for p < .05, dashed otherwise, red for negative values.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["path_diagram", "diagram_layout", "DiagramLayout", "Node", "Edge"]

#: sizes in inches
OBS_HEIGHT = 0.42
LAT_HEIGHT = 0.62
BOX_GAP = 0.22  # between neighbouring indicator boxes
BLOCK_GAP = 0.55  # between the bands of neighbouring structural variables
CHAR_WIDTH = 0.095  # of a 10-point character


@dataclass
class Node:
    """A variable: centre (x, y), size (inches) and shape (``"ellipse"`` for latent
    variables, ``"box"`` for observed ones)."""

    name: str
    x: float
    y: float
    width: float
    height: float
    shape: str
    role: str  # "latent", "indicator", "structural"

    def contains(self, px: np.ndarray, py: np.ndarray, shrink: float = 0.0) -> np.ndarray:
        """Whether the points lie strictly inside the node (shrunk by ``shrink`` inches)."""
        a = self.width / 2 - shrink
        b = self.height / 2 - shrink
        dx, dy = np.abs(px - self.x), np.abs(py - self.y)
        if self.shape == "ellipse":
            return (dx / a) ** 2 + (dy / b) ** 2 < 1.0
        return (dx < a) & (dy < b)

    def boundary(self, dx: float, dy: float) -> tuple[float, float]:
        """The point where a ray from the centre in direction (dx, dy) leaves the node."""
        norm = np.hypot(dx, dy)
        if norm == 0:
            return self.x, self.y
        dx, dy = dx / norm, dy / norm
        a, b = self.width / 2, self.height / 2
        if self.shape == "ellipse":
            t = 1.0 / np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
        else:
            t = min(a / abs(dx) if dx else np.inf, b / abs(dy) if dy else np.inf)
        return self.x + t * dx, self.y + t * dy


@dataclass
class Edge:
    """A path (``"loading"``, ``"regression"``) or a covariance (``"covariance"``, drawn
    with two heads) as a polyline ``points`` (n x 2, from the tail's boundary to the head's)."""

    tail: str
    head: str
    kind: str
    points: np.ndarray
    label: Optional[str] = None
    label_pos: Optional[tuple] = None
    value: float = np.nan
    pvalue: float = np.nan


@dataclass
class DiagramLayout:
    """Nodes and edges of a path diagram in inches, and the engine that placed them."""

    nodes: dict
    edges: list
    engine: str
    width: float = 0.0
    height: float = 0.0
    bounds: tuple = field(default=(0.0, 0.0, 0.0, 0.0))  # xmin, xmax, ymin, ymax


# ------------------------------------------------------------------------------ model
def _model_parts(fit, group) -> dict:
    """Variables, roles, paths and covariances of one group, with the numbers to print."""
    pt = fit._partable
    labels = fit.group_labels
    g = 1 if group is None else (labels.index(group) + 1 if group in labels else None)
    if g is None:
        raise ValueError(f"group {group!r} is not one of the fit's groups {labels}")
    rows = pt[(pt["group"] == g)]
    est = fit.estimates()
    std = fit.standardized(se=False)
    if fit.n_groups > 1:
        keep = (est["group"] == labels[g - 1]).to_numpy()
        est, std = est[keep], std[keep]
    lv = list(fit.variables.lv)
    ov = list(fit.model.ov_names)
    loadings = rows[rows["op"] == "=~"]
    regressions = rows[rows["op"] == "~"]
    parent: dict = {}
    for f, v in zip(loadings["lhs"], loadings["rhs"]):
        if v not in lv:
            parent.setdefault(v, f)
    structural = lv + [v for v in ov if v not in parent]
    paths = [(f, v, "loading") for f, v in zip(loadings["lhs"], loadings["rhs"])]
    paths += [(x, y, "regression") for y, x in zip(regressions["lhs"], regressions["rhs"])]
    covs = rows[(rows["op"] == "~~") & (rows["lhs"] != rows["rhs"]) & (rows["exo"] == 0)]
    covariances = list(zip(covs["lhs"], covs["rhs"]))
    values = {}
    for table, column in ((est, "est"), (std, "std_all")):
        for lhs, op, rhs, value in zip(table["lhs"], table["op"], table["rhs"], table[column]):
            values[(lhs, op, rhs, column)] = value
    pvalues = {(lhs, op, rhs): p for lhs, op, rhs, p in
               zip(est["lhs"], est["op"], est["rhs"], est["pvalue"])}
    return {"lv": lv, "ov": ov, "parent": parent, "structural": structural, "paths": paths,
            "covariances": covariances, "values": values, "pvalues": pvalues}


def _key(tail: str, head: str, kind: str) -> tuple:
    if kind == "loading":
        return tail, "=~", head
    if kind == "regression":
        return head, "~", tail
    return tail, "~~", head


def _node_size(name: str, latent: bool) -> tuple[float, float]:
    if latent:
        return max(1.0, CHAR_WIDTH * len(name) + 0.5), LAT_HEIGHT
    return max(0.7, CHAR_WIDTH * len(name) + 0.3), OBS_HEIGHT


def _structural_order(parts: dict) -> list:
    """Structural variables ordered by their longest regression path from an exogenous
    variable (ties: model order); feedback loops are broken at the strongly connected
    components."""
    import networkx as nx

    nodes = parts["structural"]
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((t, h) for t, h, kind in parts["paths"]
                         if t in graph and h in graph)
    condensed = nx.condensation(graph)
    rank = {}
    for c in nx.topological_sort(condensed):
        preds = list(condensed.predecessors(c))
        rank[c] = 1 + max(rank[p] for p in preds) if preds else 0
    member = condensed.graph["mapping"]
    position = {v: k for k, v in enumerate(nodes)}
    return sorted(nodes, key=lambda v: (rank[member[v]], position[v]))


# ------------------------------------------------------------------------------ layered
def _arc(p0: tuple, p1: tuple, depth: float, n: int = 41) -> np.ndarray:
    """Quadratic Bezier from p0 to p1 whose middle lies ``depth`` below (negative: above)
    the lower (higher) of the two end points."""
    (x0, y0), (x1, y1) = p0, p1
    base = min(y0, y1) if depth > 0 else max(y0, y1)
    control = ((x0 + x1) / 2, base - 2 * depth)
    t = np.linspace(0, 1, n)[:, None]
    return ((1 - t) ** 2 * np.array(p0) + 2 * t * (1 - t) * np.array(control)
            + t ** 2 * np.array(p1))


def _straight(a: Node, b: Node) -> np.ndarray:
    start = a.boundary(b.x - a.x, b.y - a.y)
    end = b.boundary(a.x - b.x, a.y - b.y)
    return np.array([start, end])


def _layered(parts: dict) -> tuple[dict, list]:
    order = _structural_order(parts)
    lv = set(parts["lv"])
    children = {v: [c for c, p in parts["parent"].items() if p == v] for v in order}
    nodes: dict = {}
    x = 0.0
    max_offset = 0.0
    for v in order:
        w, h = _node_size(v, v in lv)
        kids = children[v]
        sizes = [_node_size(c, False) for c in kids]
        row = sum(s[0] for s in sizes) + BOX_GAP * max(len(kids) - 1, 0)
        band = max(w, row)
        centre = x + band / 2
        nodes[v] = Node(v, centre, 0.0, w, h, "ellipse" if v in lv else "box",
                        "latent" if v in lv else "structural")
        left = centre - row / 2
        for c, (cw, ch) in zip(kids, sizes):
            nodes[c] = Node(c, left + cw / 2, np.nan, cw, ch, "box", "indicator")
            max_offset = max(max_offset, abs(left + cw / 2 - centre))
            left += cw + BOX_GAP
        x += band + BLOCK_GAP
    # rows: steep enough that a loading enters its box through the bottom side
    gap = max(1.6, 1.15 * max_offset * OBS_HEIGHT / 0.7 + LAT_HEIGHT)
    for n in nodes.values():
        if n.role == "indicator":
            n.y = gap
    for _ in range(12):  # cross-band straight edges: raise the indicator row until clear
        edges = _layered_edges(parts, nodes, order)
        if not _crossings(nodes, edges):
            break
        gap *= 1.35
        for n in nodes.values():
            if n.role == "indicator":
                n.y = gap
    return nodes, edges


def _layered_edges(parts: dict, nodes: dict, order: list) -> list:
    position = {v: k for k, v in enumerate(order)}
    edges = []
    pairs = [(t, h, kind) for t, h, kind in parts["paths"]]
    pairs += [(a, b, "covariance") for a, b in parts["covariances"]]
    for tail, head, kind in pairs:
        if tail not in nodes or head not in nodes:
            continue
        a, b = nodes[tail], nodes[head]
        same_row = (a.role == "indicator") == (b.role == "indicator")
        if same_row and a.role != "indicator":
            adjacent = abs(position[tail] - position[head]) == 1
            if adjacent and kind != "covariance":
                points = _straight(a, b)
            else:
                edges.append(_row_arc(parts, a, b, kind))
                continue
        elif same_row:
            edges.append(_row_arc(parts, a, b, kind))
            continue
        else:
            points = _straight(a, b)
        t = 0.62 if kind == "loading" else 0.5
        edges.append(_label_edge(parts, tail, head, kind, points, t))
    return edges


def _point_at(points: np.ndarray, t: float) -> tuple:
    seg = np.hypot(*np.diff(points, axis=0).T)
    total = seg.sum()
    if total == 0:
        return tuple(points[0])
    target = t * total
    k = int(np.searchsorted(np.cumsum(seg), target))
    k = min(k, len(seg) - 1)
    before = np.cumsum(seg)[k] - seg[k]
    frac = (target - before) / seg[k] if seg[k] else 0.0
    return tuple(points[k] + frac * (points[k + 1] - points[k]))


def _label_edge(parts: dict, tail: str, head: str, kind: str, points: np.ndarray,
                t: float = 0.5, label_pos=None) -> Edge:
    key = _key(tail, head, kind)
    if key + ("est",) not in parts["values"] and kind == "covariance":
        key = (head, "~~", tail)
    edge = Edge(tail, head, kind, np.asarray(points, float))
    edge.value = parts["values"].get(key + (parts["column"],), np.nan)
    edge.pvalue = parts["pvalues"].get(key, np.nan)
    if parts["digits"] is not None and np.isfinite(edge.value):
        edge.label = f"{edge.value:.{parts['digits']}f}"
        edge.label_pos = label_pos if label_pos is not None else _point_at(edge.points, t)
    return edge


def _crossings(nodes: dict, edges: list, samples: int = 60) -> list:
    """(edge, node) pairs where the edge's polyline passes inside a node other than its ends."""
    out = []
    for e in edges:
        pts = e.points
        t = np.linspace(0, 1, samples)[:, None]
        dense = np.concatenate([p0 + t * (p1 - p0) for p0, p1 in zip(pts[:-1], pts[1:])])
        for n in nodes.values():
            if n.name in (e.tail, e.head):
                continue
            if n.contains(dense[:, 0], dense[:, 1], shrink=0.01).any():
                out.append((e, n))
    return out


# ------------------------------------------------------------------------------ graphviz
def _bezier(points: np.ndarray, n: int = 16) -> np.ndarray:
    """Sample a piecewise cubic Bezier curve (3k + 1 control points) as a polyline."""
    out = [points[:1]]
    t = np.linspace(0, 1, n)[1:, None]
    for k in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[k:k + 4]
        out.append((1 - t) ** 3 * p0 + 3 * t * (1 - t) ** 2 * p1 + 3 * t ** 2 * (1 - t) * p2
                   + t ** 3 * p3)
    return np.concatenate(out)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(parts: dict, program: str) -> tuple[dict, list]:
    order = _structural_order(parts)
    lv = set(parts["lv"])
    indicators = [v for v in parts["parent"]]
    ids = {v: f"n{k}" for k, v in enumerate(order + indicators)}
    lines = ["digraph sem {",
             "  graph [rankdir=BT, nodesep=0.22, ranksep=1.3, splines=true, outputorder=edgesfirst];",
             "  node [fontsize=10, fixedsize=true];", "  edge [fontsize=9, arrowsize=0.7];"]
    for v in order + indicators:
        w, h = _node_size(v, v in lv)
        shape = "ellipse" if v in lv else "box"
        lines.append(f"  {ids[v]} [label={_quote(v)}, shape={shape}, width={w:.3f}, "
                     f"height={h:.3f}];")
    lines.append("  { rank=same; " + " ".join(ids[v] for v in order) + " }")
    if indicators:
        lines.append("  { rank=same; " + " ".join(ids[v] for v in indicators) + " }")
    # keep the structural row in its left-to-right order (invisible flat edges)
    for a, b in zip(order[:-1], order[1:]):
        lines.append(f"  {ids[a]} -> {ids[b]} [style=invis, weight=5];")
    pairs = [(t, h, kind) for t, h, kind in parts["paths"]]
    # covariances within a row are drawn as arcs outside the rows (below), not by dot
    in_row = [(a, b) for a, b in parts["covariances"]
              if (a in parts["parent"]) == (b in parts["parent"])]
    pairs += [(a, b, "covariance") for a, b in parts["covariances"] if (a, b) not in in_row]
    pairs = [p for p in pairs if p[0] in ids and p[1] in ids]
    for k, (tail, head, kind) in enumerate(pairs):
        attrs = [f"id=e{k}"]
        edge = _label_edge(parts, tail, head, kind, np.zeros((2, 2)))
        if edge.label is not None:
            attrs.append(f"label={_quote(edge.label)}")
        if kind == "covariance":
            attrs.append("dir=both, constraint=false")
        elif kind == "regression" and (tail in parts["parent"]) != (head in parts["parent"]):
            attrs.append("constraint=false")
        lines.append(f"  {ids[tail]} -> {ids[head]} [{', '.join(attrs)}];")
    lines.append("}")
    result = subprocess.run([program, "-Tjson"], input="\n".join(lines), capture_output=True,
                            text=True, timeout=60, check=True)
    data = json.loads(result.stdout)
    names = {ids[v]: v for v in ids}
    nodes = {}
    for obj in data.get("objects", []):
        if obj.get("name") not in names:
            continue
        v = names[obj["name"]]
        x, y = (float(c) / 72.0 for c in obj["pos"].split(","))
        nodes[v] = Node(v, x, y, float(obj["width"]), float(obj["height"]),
                        "ellipse" if v in lv else "box",
                        "latent" if v in lv else ("indicator" if v in parts["parent"]
                                                  else "structural"))
    by_id = {}
    for e in data.get("edges", []):
        if str(e.get("id", "")).startswith("e"):
            by_id[int(e["id"][1:])] = e
    edges = []
    for k, (tail, head, kind) in enumerate(pairs):
        e = by_id.get(k)
        if e is None or "pos" not in e:
            continue
        start = end = None
        spline = []
        for token in e["pos"].split():
            fields = token.split(",")
            if fields[0] == "s":
                start = (float(fields[1]) / 72, float(fields[2]) / 72)
            elif fields[0] == "e":
                end = (float(fields[1]) / 72, float(fields[2]) / 72)
            else:
                spline.append((float(fields[0]) / 72, float(fields[1]) / 72))
        points = _bezier(np.array(spline))
        if start is not None:  # arrowhead at the tail: extend to its tip
            points = np.vstack([start, points])
        if end is not None:
            points = np.vstack([points, end])
        label_pos = None
        if "lp" in e:
            label_pos = tuple(float(c) / 72 for c in e["lp"].split(","))
        edges.append(_label_edge(parts, tail, head, kind, points, label_pos=label_pos))
    for a, b in in_row:
        edges.append(_row_arc(parts, nodes[a], nodes[b], "covariance"))
    return nodes, edges


def _row_arc(parts: dict, a: Node, b: Node, kind: str) -> Edge:
    """An arc between two nodes of one row: above the indicator row, below the others."""
    span = abs(a.x - b.x)
    # the ends leave the nodes the more sideways the shorter the arc, so that nested arcs
    # do not share their ends
    side = 1.1 / (1.0 + 0.35 * span)
    up = 1.0 if a.role == "indicator" else -1.0
    direction = 1.0 if b.x >= a.x else -1.0
    start = a.boundary(direction * side * a.width, up * a.height)
    end = b.boundary(-direction * side * b.width, up * b.height)
    depth = (0.25 + 0.1 * span) if a.role == "indicator" else (0.3 + 0.12 * span)
    points = _arc(start, end, -depth if up > 0 else depth)
    return _label_edge(parts, a.name, b.name, kind, points)


# ------------------------------------------------------------------------------ public
def diagram_layout(fit, *, values: Optional[str] = "std", group=None, layout: str = "auto",
                   covariances: bool = True, digits: int = 2,
                   dot_program: Optional[str] = None) -> DiagramLayout:
    """Where the nodes and arrows of the path diagram of ``fit`` go (inches).

    ``values``: ``"std"`` (standardized estimates, ``std_all``), ``"est"`` (estimates) or
    None (no numbers); ``group``: the group whose estimates are shown (default: the first);
    ``layout``: ``"auto"`` (Graphviz ``dot`` when it is on PATH, else ``"layered"``),
    ``"dot"`` or ``"layered"``; ``covariances``: draw covariances (latent and residual) as
    two-headed arcs.
    """
    if values not in ("std", "est", None):
        raise ValueError(f"values must be 'std', 'est' or None, not {values!r}")
    if layout not in ("auto", "dot", "layered"):
        raise ValueError(f"layout must be 'auto', 'dot' or 'layered', not {layout!r}")
    parts = _model_parts(fit, group)
    parts["column"] = "est" if values == "est" else "std_all"
    parts["digits"] = None if values is None else int(digits)
    if not covariances:
        parts["covariances"] = []
    program = dot_program or shutil.which("dot")
    engine = layout
    if layout == "auto":
        engine = "dot" if program else "layered"
    if engine == "dot":
        if not program:
            raise ValueError("layout='dot' needs Graphviz's dot program on PATH")
        try:
            nodes, edges = _dot(parts, program)
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            if layout == "dot":
                raise ValueError(f"Graphviz dot failed: {exc}") from exc
            engine = "layered"
    if engine == "layered":
        nodes, edges = _layered(parts)
    xs = [v for n in nodes.values() for v in (n.x - n.width / 2, n.x + n.width / 2)]
    ys = [v for n in nodes.values() for v in (n.y - n.height / 2, n.y + n.height / 2)]
    for e in edges:
        xs += list(e.points[:, 0])
        ys += list(e.points[:, 1])
        if e.label_pos is not None:
            xs.append(e.label_pos[0])
            ys.append(e.label_pos[1])
    bounds = (min(xs) - 0.3, max(xs) + 0.3, min(ys) - 0.3, max(ys) + 0.3)
    return DiagramLayout(nodes, edges, engine, bounds[1] - bounds[0], bounds[3] - bounds[2],
                         bounds)


def path_diagram(fit, *, values: Optional[str] = "std", group=None, layout: str = "auto",
                 covariances: bool = True, digits: int = 2, title: Optional[str] = None,
                 figsize: Optional[tuple] = None, ax: Any = None, legend: bool = True) -> Any:
    """Draw the path diagram of a fitted model (matplotlib) and return its Figure.

    Latent variables are ellipses, observed variables boxes; loadings and regressions are
    arrows labelled with their standardized (``values="std"``, default) or unstandardized
    (``values="est"``) estimates, solid when p < .05 and dashed otherwise, red when
    negative; covariances are two-headed arcs.  Layout options: :func:`diagram_layout`.
    With ``ax`` the diagram is drawn into that axes.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, FancyArrowPatch, Rectangle
    from matplotlib.path import Path as MplPath

    lay = diagram_layout(fit, values=values, group=group, layout=layout,
                         covariances=covariances, digits=digits)
    xmin, xmax, ymin, ymax = lay.bounds
    if ax is None:
        if figsize is None:
            scale = min(1.0, 16.0 / max(lay.width, 1e-9), 11.0 / max(lay.height, 1e-9))
            figsize = (max(lay.width * scale, 3.0),
                       max(lay.height * scale, 2.0) + (0.4 if title else 0) + (0.3 if legend else 0))
        fig = Figure(figsize=figsize)
        ax = fig.add_axes([0.01, 0.06 if legend else 0.01, 0.98,
                           (0.86 if title else 0.93) if legend else (0.9 if title else 0.98)])
    else:
        fig = ax.figure
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal", adjustable="box")
    ax.axis("off")
    for n in lay.nodes.values():
        if n.shape == "ellipse":
            patch = Ellipse((n.x, n.y), n.width, n.height, facecolor="#dbe9f6",
                            edgecolor="#1f4e79", lw=1.3, zorder=3)
        else:
            fc = "#fdf0d5" if n.role == "structural" else "white"
            patch = Rectangle((n.x - n.width / 2, n.y - n.height / 2), n.width, n.height,
                              facecolor=fc, edgecolor="#444444", lw=1.0, zorder=3)
        ax.add_patch(patch)
        ax.text(n.x, n.y, n.name, ha="center", va="center", fontsize=9, zorder=4)
    for e in lay.edges:
        negative = np.isfinite(e.value) and e.value < 0
        significant = np.isfinite(e.pvalue) and e.pvalue < 0.05
        colour = "#b22222" if negative else ("#555555" if e.kind == "covariance" else
                                             "#1f4e79" if e.kind == "loading" else "#1f6f3f")
        style = "<|-|>" if e.kind == "covariance" else "-|>"
        path = MplPath(e.points)
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle=style, mutation_scale=9,
                                     color=colour, lw=1.4 if significant else 0.9,
                                     linestyle="-" if significant or not np.isfinite(e.pvalue)
                                     else "--", shrinkA=0, shrinkB=0, zorder=2))
        if e.label is not None and e.label_pos is not None:
            ax.text(e.label_pos[0], e.label_pos[1], e.label, fontsize=7.5, color=colour,
                    ha="center", va="center", zorder=5,
                    bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.9))
    if legend:
        kind = "standardized (std_all)" if values == "std" else (
            "unstandardized" if values == "est" else "")
        text = "solid: p < .05, dashed: p >= .05; red: negative"
        if kind:
            text = f"numbers: {kind} estimates; " + text
        fig.text(0.01, 0.01, text, fontsize=7, color="#555555")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
