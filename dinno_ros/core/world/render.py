"""
Matplotlib drawings of a map with waypoints, paths and lidar scans (no pyplot state, Agg canvas).

Every ``draw_*`` function draws onto a given ``Axes`` (so the swarm visualiser can compose them) in
either world metres (``units="m"``, y up) or image pixels (``units="px"``, y down).  Waypoints and
paths are given in world metres; scans in pixels, as :mod:`dinno_ros.core.world.lidar` returns
them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from dinno_ros.core.world.grid import GridMap
import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
import numpy as np

UNITS = ('m', 'px')
MAP_COLORS = {
    'free': '#fbf8f1',  # warm paper
    'wall': '#2e3440',  # dark slate
    'unknown': '#d5dae2',  # light blue-grey outside the building
}
SCAN_COLOR = '#e4572e'


def _check_units(units: str) -> None:
    if units not in UNITS:
        raise ValueError(f'units must be one of {list(UNITS)}, got {units!r}')


def map_rgb(grid: GridMap, colors: dict[str, str] | None = None) -> np.ndarray:
    """Return the map as an (H, W, 3) float RGB image: free, wall and unknown colours."""
    from matplotlib.colors import to_rgb

    c = {**MAP_COLORS, **(colors or {})}
    image = np.empty(grid.occupied.shape + (3,), dtype=np.float32)
    image[...] = to_rgb(c['free'])
    image[grid.occupied] = to_rgb(c['wall'])
    if grid.unknown is not None:
        image[grid.unknown] = to_rgb(c['unknown'])
    return image


def extent(grid: GridMap, units: str = 'm') -> tuple[float, float, float, float]:
    """Return the imshow extent of the whole image: (left, right, bottom, top)."""
    _check_units(units)
    if units == 'px':
        return (0.0, float(grid.width), float(grid.height), 0.0)
    ox, oy, _ = grid.origin
    return (ox, ox + grid.width * grid.resolution, oy, oy + grid.height * grid.resolution)


def world_to_axes(grid: GridMap, xy_m: np.ndarray, units: str) -> np.ndarray:
    """World metres -> the axes' units."""
    _check_units(units)
    xy_m = np.asarray(xy_m, dtype=np.float64)
    return xy_m if units == 'm' else grid.world_to_pixel(xy_m)


def pixels_to_axes(grid: GridMap, pxy: np.ndarray, units: str) -> np.ndarray:
    """Pixel coordinates -> the axes' units."""
    _check_units(units)
    pxy = np.asarray(pxy, dtype=np.float64)
    return pxy if units == 'px' else grid.pixel_to_world(pxy)


def draw_map(
    ax: Axes,
    grid: GridMap,
    units: str = 'm',
    colors: dict[str, str] | None = None,
    label_axes: bool = True,
) -> Any:
    """Draw the occupancy grid; returns the AxesImage."""
    im = ax.imshow(
        map_rgb(grid, colors),
        extent=extent(grid, units),
        origin='upper',
        interpolation='nearest',
        zorder=0,
    )
    ax.set_aspect('equal')
    if label_axes:
        unit = 'm' if units == 'm' else 'px'
        ax.set_xlabel(f'x [{unit}]')
        ax.set_ylabel(f'y [{unit}]')
    return im


def _path_xy(path: Any) -> np.ndarray:
    """
    Return a path's (N, 2) xy in metres.

    The path is given as an (N, 2) array or an object with an ``xy`` attribute.
    """
    return np.asarray(getattr(path, 'xy', path), dtype=np.float64)[:, :2]


def draw_paths(
    ax: Axes,
    grid: GridMap,
    paths: Sequence[Any],
    units: str = 'm',
    colors: Sequence[str] | None = None,
    linewidth: float = 1.8,
    labels: bool = True,
) -> None:
    """Draw one polyline per path (world metres), a dot at its start."""
    palette = colors or matplotlib.colormaps['tab10'].colors
    for i, path in enumerate(paths):
        xy = world_to_axes(grid, _path_xy(path), units)
        color = palette[i % len(palette)]
        ax.plot(
            xy[:, 0],
            xy[:, 1],
            color=color,
            lw=linewidth,
            alpha=0.9,
            zorder=3,
            label=f'robot {i}' if labels else None,
            solid_capstyle='round',
        )
        ax.plot(xy[0, 0], xy[0, 1], 'o', color=color, ms=6, mec='white', mew=1.0, zorder=5)


def draw_waypoints(
    ax: Axes,
    grid: GridMap,
    waypoints: Sequence[Sequence[Sequence[float]]],
    units: str = 'm',
    colors: Sequence[str] | None = None,
    numbered: bool = True,
) -> None:
    """Draw waypoint sets (one list of (x, y) metres per robot) as numbered diamonds."""
    palette = colors or matplotlib.colormaps['tab10'].colors
    for i, wps in enumerate(waypoints):
        xy = world_to_axes(grid, np.asarray(wps, dtype=np.float64).reshape(-1, 2), units)
        color = palette[i % len(palette)]
        ax.scatter(
            xy[:, 0], xy[:, 1], marker='D', s=28, color=color, edgecolor='black', lw=0.6, zorder=6
        )
        if numbered:
            for k, (x, y) in enumerate(xy):
                ax.annotate(
                    str(k),
                    (x, y),
                    xytext=(3, 3),
                    textcoords='offset points',
                    fontsize=6,
                    color='black',
                    zorder=7,
                )


def draw_scan(
    ax: Axes,
    grid: GridMap,
    poses_px: np.ndarray,
    points_px: np.ndarray,
    hit: np.ndarray | None = None,
    units: str = 'm',
    color: str = SCAN_COLOR,
    rays: bool = True,
) -> None:
    """
    Draw lidar scans: rays from each pose to its end points, dots where a beam hit a wall.

    ``poses_px`` [N, >=2] pixel poses; ``points_px`` [N, B, 2] pixel end points (a lidar
    ``Scan.points``).
    """
    poses = np.atleast_2d(np.asarray(poses_px, dtype=np.float64))[:, :2]
    points = np.asarray(points_px, dtype=np.float64).reshape(poses.shape[0], -1, 2)
    shape = points.shape[:2]
    hit = np.ones(shape, dtype=bool) if hit is None else np.asarray(hit, dtype=bool).reshape(shape)
    p = pixels_to_axes(grid, poses, units)
    q = pixels_to_axes(grid, points, units)
    if rays:
        from matplotlib.collections import LineCollection

        segs = np.stack([np.broadcast_to(p[:, None, :], q.shape), q], axis=2).reshape(-1, 2, 2)
        ax.add_collection(LineCollection(segs, colors=color, linewidths=0.5, alpha=0.35, zorder=2))
    ax.scatter(q[hit][:, 0], q[hit][:, 1], s=5, color=color, zorder=4, lw=0)
    ax.scatter(
        p[:, 0], p[:, 1], marker='^', s=40, color=color, edgecolor='black', lw=0.6, zorder=6
    )


def render_map_png(
    grid: GridMap,
    out_png: str | Path,
    waypoints: Sequence | None = None,
    paths: Sequence | None = None,
    scan: tuple[np.ndarray, Any] | None = None,
    title: str | None = None,
    units: str = 'm',
    width_in: float = 8.0,
    dpi: int = 150,
) -> Path:
    """Draw a map (with optional waypoints, paths and ``scan = (poses_px, Scan)``) into a PNG."""
    _check_units(units)
    aspect = grid.height / grid.width
    fig = Figure(
        figsize=(width_in, max(2.5, width_in * aspect * 0.92 + 0.6))
    )  # no pyplot: any backend
    ax = fig.subplots()
    draw_map(ax, grid, units=units)
    if paths:
        draw_paths(ax, grid, paths, units=units)
    if waypoints:
        draw_waypoints(ax, grid, waypoints, units=units)
    if scan is not None:
        poses_px, result = scan
        draw_scan(
            ax,
            grid,
            poses_px,
            getattr(result, 'points', result),
            getattr(result, 'hit', None),
            units=units,
        )
    ext = extent(grid, units)
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_title(
        title or f'{grid.name}  ({grid.width}x{grid.height} px, {grid.resolution:g} m/px)',
        fontsize=10,
    )
    if paths:
        ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png
