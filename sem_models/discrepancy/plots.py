"""Figures for response surface analysis: 3-D surface and contour plot.

matplotlib is imported inside the functions only, so ``import sem_models`` does not import
it. The figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so
they work with any backend, including Agg on headless machines; save them with
``fig.savefig(path)``.

Both plots draw the line of congruence (X = Y) and the line of incongruence (X = -Y), the
lines along which the surface parameters a1..a4 are defined (Edwards & Parry, 1993;
Shanock et al., 2010), and optionally the principal axes (Edwards, 2002). See
:mod:`sem_models.discrepancy` for the formulas and references.

With ``points`` (the observed predictor pairs) the surface is drawn only over the convex hull
of the data (a polynomial fitted to the data says nothing outside it), the data are shown
(projected on the floor of the 3-D plot) and the hull outlined; ``zlim`` puts several plots
(e.g. one per group) on one outcome scale: the same z axis, colour scale and contour levels.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .surface import B_NAMES, _coef_vector, nonlinear_quantities

__all__ = ["surface_grid", "plot_surface", "plot_contour", "data_hull", "surface_zrange"]


def data_hull(points: Any) -> Any:
    """The convex hull of the observed (x, y) pairs as a closed ``matplotlib.path.Path``
    (``None`` when the points span no area)."""
    from matplotlib.path import Path as MplPath

    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(np.unique(pts, axis=0)) < 3:
        return None
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):
        return None
    verts = pts[hull.vertices]
    return MplPath(np.vstack([verts, verts[:1]]), closed=True)


def _mask_outside(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, hull: Any) -> np.ndarray:
    if hull is None:
        return Z
    inside = hull.contains_points(np.column_stack([X.ravel(), Y.ravel()]), radius=1e-9)
    # keep grid cells that touch the hull: widen by half a grid step
    step = max(float(np.ptp(X)) / max(X.shape[1] - 1, 1), float(np.ptp(Y)) / max(X.shape[0] - 1,
                                                                                   1))
    near = hull.contains_points(np.column_stack([X.ravel(), Y.ravel()]), radius=step * 0.75)
    Z = Z.copy()
    Z[~(inside | near).reshape(Z.shape)] = np.nan
    return Z


def surface_zrange(b: Any, x_range: Sequence[float], y_range: Sequence[float],
                   points: Any = None, b0: float | None = None,
                   names: Sequence[str] = B_NAMES, n_grid: int = 61) -> tuple[float, float]:
    """Smallest and largest predicted value over the plotted region (the data's hull when
    ``points`` are given), to put several surfaces on one z scale."""
    X, Y, Z = surface_grid(b, x_range, y_range, n_grid=n_grid, b0=b0, names=names)
    if points is not None:
        Z = _mask_outside(X, Y, Z, data_hull(points))
    return float(np.nanmin(Z)), float(np.nanmax(Z))


def _coefs(b: Any, names: Sequence[str], b0: float | None) -> tuple[float, np.ndarray]:
    bv = _coef_vector(b, names)
    if b0 is None:
        b0 = 0.0
        if hasattr(b, "keys") and "b0" in b.keys():
            b0 = float(b["b0"])
    return float(b0), bv


def surface_grid(
    b: Any,
    x_range: Sequence[float] = (-2.0, 2.0),
    y_range: Sequence[float] = (-2.0, 2.0),
    n_grid: int = 41,
    b0: float | None = None,
    names: Sequence[str] = B_NAMES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted surface ``Z = b0 + b1 X + b2 Y + b3 X^2 + b4 XY + b5 Y^2`` on a grid.

    Returns ``(X, Y, Z)`` as ``n_grid x n_grid`` arrays (``numpy.meshgrid`` layout). ``b0``
    defaults to ``b["b0"]`` when ``b`` is a mapping holding it, else 0.
    """
    c0, (b1, b2, b3, b4, b5) = _coefs(b, names, b0)
    xs = np.linspace(float(x_range[0]), float(x_range[1]), int(n_grid))
    ys = np.linspace(float(y_range[0]), float(y_range[1]), int(n_grid))
    X, Y = np.meshgrid(xs, ys)
    Z = c0 + b1 * X + b2 * Y + b3 * X**2 + b4 * X * Y + b5 * Y**2
    return X, Y, Z


def _line_in_box(
    intercept: float, slope: float, x_range: Sequence[float], y_range: Sequence[float],
    n: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Points of ``Y = intercept + slope X`` inside the plotting rectangle."""
    (x0, x1), (y0, y1) = sorted(map(float, x_range)), sorted(map(float, y_range))
    if abs(slope) <= 1.0:
        xs = np.linspace(x0, x1, n)
        ys = intercept + slope * xs
    else:
        ys = np.linspace(y0, y1, n)
        xs = (ys - intercept) / slope
    keep = (xs >= x0 - 1e-12) & (xs <= x1 + 1e-12) & (ys >= y0 - 1e-12) & (ys <= y1 + 1e-12)
    return xs[keep], ys[keep]


def _z(c0: float, bv: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    b1, b2, b3, b4, b5 = bv
    return c0 + b1 * xs + b2 * ys + b3 * xs**2 + b4 * xs * ys + b5 * ys**2


def _lines(
    bv: np.ndarray, x_range: Sequence[float], y_range: Sequence[float], axes: Sequence[int]
) -> list[tuple[str, dict[str, Any], np.ndarray, np.ndarray]]:
    """(label, style, xs, ys) for LOC, LOIC and the requested principal axes."""
    out = []
    styles = {
        "loc": {"color": "black", "linestyle": "-", "linewidth": 2.0},
        "loic": {"color": "black", "linestyle": "--", "linewidth": 2.0},
        1: {"color": "tab:red", "linestyle": "-", "linewidth": 1.8},
        2: {"color": "tab:red", "linestyle": ":", "linewidth": 1.8},
    }
    xs, ys = _line_in_box(0.0, 1.0, x_range, y_range)
    out.append(("line of congruence (X = Y)", styles["loc"], xs, ys))
    xs, ys = _line_in_box(0.0, -1.0, x_range, y_range)
    out.append(("line of incongruence (X = -Y)", styles["loic"], xs, ys))
    if axes:
        nl = nonlinear_quantities(bv, warn=False)
        for k in axes:
            p0, p1 = nl[f"p{k}0"], nl[f"p{k}1"]
            if np.isfinite(p0) and np.isfinite(p1):
                xs, ys = _line_in_box(p0, p1, x_range, y_range)
                if xs.size:
                    name = "first" if k == 1 else "second"
                    out.append((f"{name} principal axis", styles[k], xs, ys))
    return out


def _axes_list(principal_axis: bool | int | Sequence[int]) -> list[int]:
    if principal_axis is True:
        return [1]
    if principal_axis is False or principal_axis is None:
        return []
    if isinstance(principal_axis, int):
        return [principal_axis]
    return [int(k) for k in principal_axis]


def _grid_and_hull(c0, bv, x_range, y_range, n_grid, points, clip_to_hull):
    """The surface on the grid (:func:`surface_grid`) and the convex hull of ``points`` (or
    None); with ``clip_to_hull`` the surface is NaN outside the hull."""
    X, Y, Z = surface_grid(bv, x_range, y_range, n_grid=n_grid, b0=c0)
    hull = data_hull(points) if points is not None else None
    if clip_to_hull and hull is not None:
        Z = _mask_outside(X, Y, Z, hull)
    return X, Y, Z, hull


def _finite_points(points: Any) -> np.ndarray:
    """Observed (x, y) pairs as an (n, 2) array without the rows with a missing value."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    return pts[np.isfinite(pts).all(axis=1)]


def plot_surface(
    b: Any,
    x_range: Sequence[float] = (-2.0, 2.0),
    y_range: Sequence[float] = (-2.0, 2.0),
    ax: Any = None,
    *,
    b0: float | None = None,
    names: Sequence[str] = B_NAMES,
    n_grid: int = 41,
    principal_axis: bool | int | Sequence[int] = False,
    labels: Sequence[str] = ("X", "Y", "Z"),
    title: str | None = None,
    cmap: str = "viridis",
    alpha: float = 0.75,
    elev: float = 25.0,
    azim: float = -60.0,
    legend: bool = True,
    figsize: tuple[float, float] = (6.5, 5.5),
    points: Any = None,
    zlim: Sequence[float] | None = None,
    clip_to_hull: bool = True,
) -> Any:
    """3-D response surface with the lines of congruence and incongruence drawn on it.

    Parameters
    ----------
    b
        b1..b5 (array in order, or a mapping / Series labelled ``names``; ``b0`` is taken from
        it when present).
    x_range, y_range
        Plotting ranges of the (centered) predictors; use the observed range of the data.
    ax
        An existing 3-D axes (``projection="3d"``); a new figure is made if ``None``.
    b0
        Intercept (default ``b["b0"]`` or 0).
    principal_axis
        ``True`` draws the first principal axis; ``2`` or ``(1, 2)`` choose axes explicitly.
        Undefined axes (``D = 0`` or ``b4 = 0``) are skipped.
    labels
        Axis labels for X, Y and Z.
    title, cmap, alpha, elev, azim, legend, figsize
        Appearance.
    points
        Observed (x, y) pairs (n x 2): the surface is drawn over their convex hull only
        (``clip_to_hull``), and they are shown on the floor of the plot with the hull outline.
    zlim
        (low, high) of the z axis and of the colour scale (one scale for several plots).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    c0, bv = _coefs(b, names, b0)
    if ax is None:
        fig = Figure(figsize=figsize)
        ax = fig.add_subplot(projection="3d")
    else:
        if not hasattr(ax, "plot_surface"):
            raise TypeError("ax must be a 3-D axes (created with projection='3d')")
        fig = ax.figure
    X, Y, Z, hull = _grid_and_hull(c0, bv, x_range, y_range, n_grid, points, clip_to_hull)
    lo, hi = (float(np.nanmin(Z)), float(np.nanmax(Z))) if zlim is None else map(float, zlim)
    ax.plot_surface(X, Y, Z, cmap=cmap, alpha=alpha, linewidth=0.2, edgecolor="grey",
                    antialiased=True, vmin=lo, vmax=hi)
    for label, style, xs, ys in _lines(bv, x_range, y_range, _axes_list(principal_axis)):
        zs = _z(c0, bv, xs, ys)
        if clip_to_hull and hull is not None:
            keep = hull.contains_points(np.column_stack([xs, ys]), radius=1e-9)
            xs, ys, zs = xs[keep], ys[keep], zs[keep]
        ax.plot(xs, ys, zs, label=label, zorder=10, **style)
    if points is not None:
        pts = _finite_points(points)
        ax.scatter(pts[:, 0], pts[:, 1], np.full(len(pts), lo), s=4, color="0.35", alpha=0.5,
                   depthshade=False, label="data (on the floor)")
        if hull is not None:
            v = hull.vertices
            ax.plot(v[:, 0], v[:, 1], np.full(len(v), lo), color="0.35", lw=0.8, ls="--")
    if zlim is not None or points is not None:
        ax.set_zlim(lo, hi)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_zlabel(labels[2])
    ax.view_init(elev=elev, azim=azim)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_contour(
    b: Any,
    x_range: Sequence[float] = (-2.0, 2.0),
    y_range: Sequence[float] = (-2.0, 2.0),
    ax: Any = None,
    *,
    b0: float | None = None,
    names: Sequence[str] = B_NAMES,
    n_grid: int = 101,
    levels: int | Sequence[float] = 15,
    principal_axis: bool | int | Sequence[int] = (1, 2),
    stationary: bool = True,
    filled: bool = True,
    labels: Sequence[str] = ("X", "Y"),
    title: str | None = None,
    cmap: str = "viridis",
    colorbar: bool = True,
    zlabel: str = "Z",
    legend: bool = True,
    figsize: tuple[float, float] = (6.0, 5.0),
    points: Any = None,
    zlim: Sequence[float] | None = None,
    clip_to_hull: bool = True,
) -> Any:
    """Contour plot of the response surface with the lines of congruence and incongruence.

    The principal axes (default: both) and the stationary point (if it exists and lies in
    the plotted region) are added. Equal axis scaling is used, because the predictors are
    commensurate. Parameters as in :func:`plot_surface`, plus ``levels`` (number or values of
    contour levels), ``filled`` (filled contours with contour lines on top), ``colorbar``
    and ``zlabel`` (colorbar label); ``points`` (observed (x, y) pairs: drawn, with the
    surface clipped to their convex hull) and ``zlim`` (one colour scale and the same contour
    levels for several plots) as in :func:`plot_surface`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    c0, bv = _coefs(b, names, b0)
    if ax is None:
        fig = Figure(figsize=figsize)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    X, Y, Z, hull = _grid_and_hull(c0, bv, x_range, y_range, n_grid, points, clip_to_hull)
    if zlim is not None and isinstance(levels, (int, np.integer)):
        from matplotlib.ticker import MaxNLocator
        levels = MaxNLocator(nbins=int(levels)).tick_values(float(zlim[0]), float(zlim[1]))
    flat = np.nanmax(Z) - np.nanmin(Z) <= 1e-12 * max(1.0, float(np.nanmax(np.abs(Z))))
    if flat:
        ax.pcolormesh(X, Y, Z, cmap=cmap, shading="auto")
    else:
        if filled:
            cf = ax.contourf(X, Y, Z, levels=levels, cmap=cmap, extend="neither")
            ax.contour(X, Y, Z, levels=cf.levels, colors="k", linewidths=0.4, alpha=0.5)
            if colorbar:
                fig.colorbar(cf, ax=ax, label=zlabel)
        else:
            cs = ax.contour(X, Y, Z, levels=levels, cmap=cmap)
            ax.clabel(cs, fontsize="x-small")
    if points is not None:
        pts = _finite_points(points)
        ax.scatter(pts[:, 0], pts[:, 1], s=5, color="white", edgecolors="0.2", linewidths=0.3,
                   alpha=0.7, zorder=5, label="data")
        if hull is not None:
            v = hull.vertices
            ax.plot(v[:, 0], v[:, 1], color="0.2", lw=0.8, ls="--", zorder=5)
    for label, style, xs, ys in _lines(bv, x_range, y_range, _axes_list(principal_axis)):
        ax.plot(xs, ys, label=label, **style)
    if stationary:
        nl = nonlinear_quantities(bv, warn=False)
        x0, y0 = nl["X0"], nl["Y0"]
        (xa, xb), (ya, yb) = sorted(map(float, x_range)), sorted(map(float, y_range))
        if np.isfinite(x0) and np.isfinite(y0) and xa <= x0 <= xb and ya <= y0 <= yb:
            ax.plot([x0], [y0], marker="o", color="tab:red", markeredgecolor="white",
                    linestyle="none", markersize=7, label="stationary point")
    ax.set_xlim(sorted(map(float, x_range)))
    ax.set_ylim(sorted(map(float, y_range)))
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper left", fontsize="x-small", framealpha=0.8)
    return fig
