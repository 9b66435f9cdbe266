"""Path diagrams (``fit.plot()``, :mod:`sem_models.diagram`): estimates on the arrows and no
arrow through a node, with Graphviz's dot layout and with the pure-Python layered layout."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import sem_models as sm
from sem_models.datasets import load
from sem_models.diagram import diagram_layout

HAS_DOT = shutil.which("dot") is not None
ENGINES = ["layered", pytest.param("dot", marks=pytest.mark.skipif(
    not HAS_DOT, reason="Graphviz's dot program is not installed"))]

HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
PD = """ind60 =~ x1 + x2 + x3
dem60 =~ y1 + y2 + y3 + y4
dem65 =~ y5 + y6 + y7 + y8
dem60 ~ ind60
dem65 ~ ind60 + dem60
y1 ~~ y5
y2 ~~ y4 + y6
y3 ~~ y7
y4 ~~ y8
y6 ~~ y8"""


def _outcome_data(n: int = 400, seed: int = 11) -> pd.DataFrame:
    """Four correlated traits with two parcels each, two baseline scores and two outcomes
    (the shape of the study's pooled outcome model)."""
    rng = np.random.default_rng(seed)
    traits = rng.multivariate_normal(np.zeros(4), 0.5 * np.eye(4) + 0.5, size=n)
    data = {}
    for k, name in enumerate(["cb", "ct", "tb", "tt"]):
        for occ in ("mid", "end"):
            data[f"{name}_{occ}"] = traits[:, k] + rng.normal(scale=0.7, size=n)
    pre = rng.normal(size=(n, 2))
    data["ext_pre"], data["int_pre"] = pre[:, 0], pre[:, 1]
    data["ext_fu"] = 0.4 * traits[:, 0] - 0.2 * traits[:, 3] + 0.5 * pre[:, 0] + rng.normal(size=n)
    data["int_fu"] = 0.3 * traits[:, 1] + 0.5 * pre[:, 1] + rng.normal(size=n)
    return pd.DataFrame(data)


OUTCOME_MODEL = """cb =~ 1*cb_mid + 1*cb_end
ct =~ 1*ct_mid + 1*ct_end
tb =~ 1*tb_mid + 1*tb_end
tt =~ 1*tt_mid + 1*tt_end
cb_mid ~~ ct_mid
tb_end ~~ tt_end
ext_fu ~ cb + ct + tb + tt + ext_pre
int_fu ~ cb + ct + tb + tt + int_pre
cb ~~ ext_pre + int_pre
tt ~~ ext_pre + int_pre
ext_pre ~~ int_pre
ext_fu ~~ int_fu"""


def _fit(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "hs":
            return sm.cfa(HS, load("HolzingerSwineford1939"))
        if name == "hs_groups":
            return sm.cfa(HS, load("HolzingerSwineford1939"), group="school")
        if name == "pd":
            return sm.sem(PD, load("PoliticalDemocracy"))
        if name == "mixed":  # observed regressions, fixed covariates, a latent outcome
            return sm.sem("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\n"
                          "textual ~ visual + grade + sex\nx7 ~ textual + x9\nx8 ~ x7",
                          load("HolzingerSwineford1939"))
        if name == "paths":  # no latent variables
            return sm.sem("x7 ~ x8 + x9\nx1 ~ x7 + x9", load("HolzingerSwineford1939"))
        if name == "cross":  # a cross-loading
            return sm.cfa(HS.replace("x1 + x2 + x3", "x1 + x2 + x3 + x9"),
                          load("HolzingerSwineford1939"))
        if name == "second_order":
            return sm.cfa(HS + "\ng =~ visual + textual + speed", load("HolzingerSwineford1939"))
        if name == "outcomes":
            return sm.sem(OUTCOME_MODEL, _outcome_data(), fixed_x=False)
    raise KeyError(name)


MODELS = ["hs", "hs_groups", "pd", "mixed", "paths", "cross", "second_order", "outcomes"]


@pytest.fixture(scope="module")
def fits():
    cache: dict = {}

    def get(name):
        if name not in cache:
            cache[name] = _fit(name)
        return cache[name]
    return get


def _inside(node, x: np.ndarray, y: np.ndarray, margin: float = 0.01) -> np.ndarray:
    """Points strictly inside the node's shape (independent of the module's own check)."""
    a, b = node.width / 2 - margin, node.height / 2 - margin
    u, v = (x - node.x) / a, (y - node.y) / b
    if node.shape == "ellipse":
        return u * u + v * v < 1
    return (np.abs(u) < 1) & (np.abs(v) < 1)


def _radius(node, x: float, y: float) -> float:
    """1 on the node's boundary, < 1 inside, > 1 outside."""
    u, v = (x - node.x) / (node.width / 2), (y - node.y) / (node.height / 2)
    return float(np.hypot(u, v) if node.shape == "ellipse" else max(abs(u), abs(v)))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", MODELS)
def test_no_arrow_passes_through_a_node(fits, model, engine):
    fit = fits(model)
    lay = diagram_layout(fit, layout=engine)
    assert lay.engine == engine
    assert set(lay.nodes) == set(fit.model.var_names)
    paths = {(t, h) for t, h, kind in
             [(e.tail, e.head, e.kind) for e in lay.edges] if kind != "covariance"}
    pt = fit.partable[fit.partable["group"] == 1]
    expected = {(r.lhs, r.rhs) for r in pt.itertuples() if r.op == "=~"}
    expected |= {(r.rhs, r.lhs) for r in pt.itertuples() if r.op == "~"}
    assert paths == expected
    for e in lay.edges:
        pts = np.asarray(e.points, float)
        assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 2
        t = np.linspace(0.0, 1.0, 200)[:, None]
        dense = np.concatenate([p + t * (q - p) for p, q in zip(pts[:-1], pts[1:])])
        for node in lay.nodes.values():
            if node.name in (e.tail, e.head):
                continue
            hit = _inside(node, dense[:, 0], dense[:, 1])
            assert not hit.any(), f"{e.kind} {e.tail} -> {e.head} passes through {node.name}"
        # the arrow runs from the tail's boundary to the head's (arrow tip on the boundary)
        assert 0.85 < _radius(lay.nodes[e.tail], *pts[0]) < 1.35, (e.tail, e.head)
        assert 0.85 < _radius(lay.nodes[e.head], *pts[-1]) < 1.35, (e.tail, e.head)
    # nodes do not overlap
    nodes = list(lay.nodes.values())
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            assert (abs(a.x - b.x) >= (a.width + b.width) / 2 - 1e-6
                    or abs(a.y - b.y) >= (a.height + b.height) / 2 - 1e-6), (a.name, b.name)


@pytest.mark.parametrize("engine", ENGINES)
def test_layers_and_direction(fits, engine):
    """Latent factors share one layer, indicators another (above); regressions run left to
    right."""
    fit = fits("pd")
    lay = diagram_layout(fit, layout=engine)
    n = lay.nodes
    factor_y = {round(n[v].y, 6) for v in ("ind60", "dem60", "dem65")}
    indicator_y = {round(n[v].y, 6) for v in fit.model.ov_names}
    assert len(factor_y) == 1 and len(indicator_y) == 1
    assert indicator_y.pop() > factor_y.pop()
    assert n["ind60"].x < n["dem60"].x < n["dem65"].x


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", ["pd", "mixed", "hs_groups"])
def test_figure_shows_names_and_estimates(fits, model, engine):
    from matplotlib.figure import Figure

    fit = fits(model)
    fig = fit.plot(layout=engine, title="a title")
    assert isinstance(fig, Figure)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    for v in fit.model.var_names:
        assert v in texts
    std = fit.standardized(se=False)
    if fit.n_groups > 1:  # the first group's estimates by default
        std = std[std["group"] == fit.group_labels[0]]
    for r in std[std["op"].isin(["=~", "~"])].itertuples():
        assert f"{r.std_all:.2f}" in texts, (r.lhs, r.op, r.rhs)
    cov = std[(std["op"] == "~~") & (std["lhs"] != std["rhs"])]
    exo = fit.partable.loc[std.index, "exo"] if len(std) == len(fit.partable) else None
    for r in cov.itertuples():
        if exo is None or not exo[r.Index]:
            assert f"{r.std_all:.2f}" in texts
    assert any("standardized" in t.get_text() for t in fig.texts)
    fig.savefig(__import__("io").BytesIO(), format="svg")  # draws without errors


def test_values_group_and_options(fits):
    fit = fits("hs_groups")
    est = fit.estimates()
    gw = est[(est["group"] == "Grant-White") & (est["op"] == "=~") & (est["se"] > 0)]
    lay = diagram_layout(fit, values="est", group="Grant-White", layout="layered", digits=3)
    labels = {e.label for e in lay.edges}
    assert {f"{v:.3f}" for v in gw["est"]} <= labels
    bare = diagram_layout(fit, values=None, layout="layered", covariances=False)
    assert all(e.label is None for e in bare.edges)
    assert not any(e.kind == "covariance" for e in bare.edges)
    with pytest.raises(ValueError, match="group 'nowhere'"):
        diagram_layout(fit, group="nowhere")
    with pytest.raises(ValueError, match="layout must be"):
        diagram_layout(fit, layout="circle")
    with pytest.raises(ValueError, match="values must be"):
        diagram_layout(fit, values="z")


def test_auto_layout_falls_back_without_graphviz(fits, monkeypatch):
    fit = fits("pd")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert diagram_layout(fit).engine == "layered"
    with pytest.raises(ValueError, match="dot program"):
        diagram_layout(fit, layout="dot")


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_auto_layout_uses_graphviz_when_present(fits):
    assert diagram_layout(fits("hs")).engine == "dot"


def test_report_uses_the_same_drawing(fits):
    from sem_models.study.report import plot_path_diagram

    fit = fits("outcomes")
    fig = plot_path_diagram(fit, "pooled")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    std = fit.standardized(se=False)
    for r in std[std["op"] == "~"].itertuples():
        assert f"{r.std_all:.2f}" in texts
    assert fig._suptitle.get_text() == "pooled"
