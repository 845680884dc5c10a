"""
Seeded procedural floorplans in the style of CubiCasa5k: apartments and offices.

* ``apartment``: a rectangular or L-shaped footprint cut into rooms of several sizes by recursive
  binary space partitioning; every split gets one door between a room on each side, so all rooms
  are connected (by induction over the split tree).
* ``office``: corridors between rows of rooms, spines (vertical corridors) joining the corridors,
  one door from every room to its corridor, now and then an open-plan room.

Interior walls are 0.15-0.2 m thick, outer walls thicker, doors 0.8-1 m wide; a few furniture
blocks keep 0.9 m from every wall so they never block a door. The outside of the building is
occupied and flagged unknown. Everything is generated in metres in image orientation (``u`` right,
``v`` down) and rasterised at ``resolution``; a seed gives the same map every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging

import cv2
from dinno_ros.core.world.floorplan import largest_component
from dinno_ros.core.world.grid import GridMap
import numpy as np

logger = logging.getLogger(__name__)

MAP_KINDS = ('apartment', 'office')
DEFAULT_SIZE_M = {'apartment': (16.0, 12.0), 'office': (32.0, 22.0)}
Rect = tuple[float, float, float, float]  # (u0, v0, u1, v1) metres, image orientation


@dataclass
class MapGenConfig:
    """Generator parameters (metres)."""

    wall_m: tuple[float, float] = (0.15, 0.2)  # interior wall thickness range (one value per map)
    outer_wall_m: float = 0.25  # outer wall thickness
    door_m: tuple[float, float] = (0.8, 1.0)  # door width range (per door)
    min_room_m: float = 2.6  # smallest room side
    max_room_m: float = 6.5  # rooms larger than this keep being split (apartments)
    stop_prob: float = 0.5  # chance to stop splitting a room that is already small enough
    margin_m: float = 0.6  # outside space between the building and the image border
    notch_prob: float = 0.6  # chance of an L-shaped apartment footprint
    corridor_m: tuple[float, float] = (1.6, 2.2)  # office corridor width range
    office_row_m: float = 6.0  # deepest office room row
    spine_every_m: float = 30.0  # one more office spine corridor per this much building width
    open_plan_prob: float = 0.15  # chance that an office room is a double-width open plan
    furniture_prob: float = 0.5  # chance of furniture in a room with space for it
    furniture_clear_m: float = 0.9  # furniture keeps this distance from walls and from each other


@dataclass
class Layout:
    """A generated building: rectangles in metres (image orientation)."""

    size_m: tuple[float, float]
    footprint: list[Rect]
    rooms: list[Rect]
    corridors: list[Rect] = field(default_factory=list)
    doors: list[Rect] = field(default_factory=list)  # carved wall openings
    furniture: list[Rect] = field(default_factory=list)
    wall_m: float = 0.18
    outer_wall_m: float = 0.25


def generate_floorplan(
    kind: str = 'apartment',
    seed: int = 0,
    size_m: tuple[float, float] | None = None,
    resolution: float = 0.05,
    size_px: tuple[int, int] | None = None,
    config: MapGenConfig | None = None,
    name: str | None = None,
) -> GridMap:
    """
    Generate a floorplan :class:`GridMap`.

    ``size_px=(W, H)`` overrides ``size_m`` (e.g. (2167, 1608)).
    """
    if not resolution > 0:
        raise ValueError(f'resolution must be > 0 metres per pixel, got {resolution}')
    if size_px is not None:
        size_m = (size_px[0] * resolution, size_px[1] * resolution)
    layout = generate_layout(kind=kind, seed=seed, size_m=size_m, config=config)
    grid = rasterize(layout, resolution)
    grid.name = name or f'{kind}_{seed}'
    return grid


def generate_layout(
    kind: str = 'apartment',
    seed: int = 0,
    size_m: tuple[float, float] | None = None,
    config: MapGenConfig | None = None,
) -> Layout:
    """Generate the rectangles of a building (no rasterising)."""
    if kind not in MAP_KINDS:
        raise ValueError(f'kind must be one of {list(MAP_KINDS)}, got {kind!r}')
    cfg = config or MapGenConfig()
    size_m = tuple(float(s) for s in (size_m or DEFAULT_SIZE_M[kind]))
    inner = min(size_m) - 2 * cfg.margin_m
    smallest = 2 * cfg.min_room_m + (cfg.corridor_m[1] if kind == 'office' else 0.0)
    if inner < smallest:
        raise ValueError(
            f'size_m {size_m} too small for a {kind}: the short side needs >= '
            f'{smallest + 2 * cfg.margin_m:.1f} m'
        )
    rng = np.random.default_rng(seed)
    wall = float(rng.uniform(*cfg.wall_m))
    builder = _apartment if kind == 'apartment' else _office
    layout = builder(size_m, rng, cfg, wall)
    layout.furniture = _furniture(layout.rooms, rng, cfg)
    logger.info(
        'generated %s seed %d: %d rooms, %d corridors, %d doors',
        kind,
        seed,
        len(layout.rooms),
        len(layout.corridors),
        len(layout.doors),
    )
    return layout


def rasterize(layout: Layout, resolution: float) -> GridMap:
    """Draw a layout into an occupancy grid (origin (0, 0, 0) at the lower-left image corner)."""
    w_px = int(round(layout.size_m[0] / resolution))
    h_px = int(round(layout.size_m[1] / resolution))
    free = np.zeros((h_px, w_px), dtype=bool)
    inside = np.zeros_like(free)

    def paint(mask: np.ndarray, rect: Rect, value: bool, shrink: float = 0.0) -> None:
        u0, v0, u1, v1 = rect
        c0, c1 = (int(round((u + s) / resolution)) for u, s in ((u0, shrink), (u1, -shrink)))
        r0, r1 = (int(round((v + s) / resolution)) for v, s in ((v0, shrink), (v1, -shrink)))
        rows, cols = slice(max(r0, 0), max(r1, 0)), slice(max(c0, 0), max(c1, 0))
        mask[rows, cols] = value

    for rect in layout.footprint:
        paint(inside, rect, True)
    for rect in layout.rooms + layout.corridors:
        paint(free, rect, True, shrink=layout.wall_m / 2)
    for rect in layout.doors:
        paint(free, rect, True)
    for rect in layout.furniture:
        paint(free, rect, False)
    free &= _shrink(inside, int(round(layout.outer_wall_m / resolution)))
    connected = largest_component(free)
    if (lost := int(free.sum() - connected.sum())) > 0:
        logger.warning('rasterised map lost %d free pixels outside the main region', lost)
    return GridMap(occupied=~connected, resolution=resolution, unknown=~inside)


def _shrink(mask: np.ndarray, px: int) -> np.ndarray:
    """Erode a union of axis-aligned rectangles by ``px`` pixels (square structuring element)."""
    if px <= 0:
        return mask
    padded = np.pad(mask.astype(np.uint8), px)
    eroded = cv2.erode(padded, np.ones((2 * px + 1, 2 * px + 1), np.uint8))
    return eroded[px:-px, px:-px] > 0


# --- apartments ---------------------------------------------------------------------------------


def _apartment(
    size_m: tuple[float, float], rng: np.random.Generator, cfg: MapGenConfig, wall: float
) -> Layout:
    m = cfg.margin_m
    box = (m, m, size_m[0] - m, size_m[1] - m)
    parts = _footprint_parts(box, rng, cfg)
    rooms: list[Rect] = []
    doors: list[Rect] = []
    groups = [_bsp(part, rng, cfg, wall, rooms, doors) for part in parts]
    if len(groups) == 2:
        _connect(groups[0], groups[1], rooms, rng, cfg, wall, doors)
    return Layout(
        size_m=size_m,
        footprint=parts,
        rooms=rooms,
        doors=doors,
        wall_m=wall,
        outer_wall_m=cfg.outer_wall_m,
    )


def _footprint_parts(box: Rect, rng: np.random.Generator, cfg: MapGenConfig) -> list[Rect]:
    """One rectangle, or two that form an L (a corner notch cut out of the box)."""
    u0, v0, u1, v1 = box
    w, h = u1 - u0, v1 - v0
    nw, nh = w * rng.uniform(0.25, 0.45), h * rng.uniform(0.25, 0.45)
    min_side = 2 * cfg.min_room_m
    if (
        rng.random() >= cfg.notch_prob
        or min(w - nw, h - nh, nw, nh) < cfg.min_room_m
        or min(w, h) < min_side
    ):
        return [box]
    top = rng.random() < 0.5
    left = rng.random() < 0.5
    # the full-width strip away from the notch, and the shorter strip beside the notch
    if top:
        full, short_v = (u0, v0 + nh, u1, v1), (v0, v0 + nh)
    else:
        full, short_v = (u0, v0, u1, v1 - nh), (v1 - nh, v1)
    short_u = (u0 + nw, u1) if left else (u0, u1 - nw)
    return [full, (short_u[0], short_v[0], short_u[1], short_v[1])]


def _bsp(
    rect: Rect,
    rng: np.random.Generator,
    cfg: MapGenConfig,
    wall: float,
    rooms: list[Rect],
    doors: list[Rect],
) -> list[int]:
    """Split ``rect`` recursively into rooms; returns the indices of the rooms it produced."""
    u0, v0, u1, v1 = rect
    w, h = u1 - u0, v1 - v0
    can_u, can_v = w >= 2 * cfg.min_room_m, h >= 2 * cfg.min_room_m
    small = max(w, h) <= cfg.max_room_m
    if not (can_u or can_v) or (small and rng.random() < cfg.stop_prob):
        rooms.append(rect)
        return [len(rooms) - 1]
    if can_u and can_v:
        split_u = w > h * 1.2 or (h <= w * 1.2 and rng.random() < 0.5)
    else:
        split_u = can_u
    lo, hi = (u0, u1) if split_u else (v0, v1)
    cut = float(rng.uniform(lo + cfg.min_room_m, hi - cfg.min_room_m))
    first, second = (
        ((u0, v0, cut, v1), (cut, v0, u1, v1))
        if split_u
        else ((u0, v0, u1, cut), (u0, cut, u1, v1))
    )
    a = _bsp(first, rng, cfg, wall, rooms, doors)
    b = _bsp(second, rng, cfg, wall, rooms, doors)
    _connect(a, b, rooms, rng, cfg, wall, doors)
    return a + b


def _connect(
    a: list[int],
    b: list[int],
    rects: list[Rect],
    rng: np.random.Generator,
    cfg: MapGenConfig,
    wall: float,
    doors: list[Rect],
    width: float | None = None,
) -> None:
    """
    Carve one door between some rect of ``a`` and a touching rect of ``b``.

    ``width=None`` draws a door width; ``width=inf`` opens the whole shared wall (corridor
    junctions).
    """
    clear = wall / 2 + 0.1
    options = []
    for i in a:
        for j in b:
            shared = _shared_edge(rects[i], rects[j])
            if shared is None:
                continue
            axis, pos, lo, hi = shared
            options.append((axis, pos, lo + clear, hi - clear))
    if not options:
        raise RuntimeError('generator bug: the two groups to connect do not touch')
    door = float(rng.uniform(*cfg.door_m)) if width is None else width
    fitting = [o for o in options if o[3] - o[2] >= door]
    if fitting:
        axis, pos, lo, hi = fitting[int(rng.integers(len(fitting)))]
    else:  # no shared wall is long enough: the widest one gets a narrower door
        axis, pos, lo, hi = options[int(np.argmax([o[3] - o[2] for o in options]))]
    door = min(door, hi - lo)
    centre = float(rng.uniform(lo + door / 2, hi - door / 2)) if hi - lo > door else (lo + hi) / 2
    half_t = wall / 2 + 0.02
    if axis == 'u':  # wall at u = pos, door spans v
        doors.append((pos - half_t, centre - door / 2, pos + half_t, centre + door / 2))
    else:
        doors.append((centre - door / 2, pos - half_t, centre + door / 2, pos + half_t))


def _shared_edge(p: Rect, q: Rect, eps: float = 1e-6) -> tuple[str, float, float, float] | None:
    """(axis, position, lo, hi) of the wall segment two rectangles share, or None."""
    for axis, (a0, a1, b0, b1), (ca0, ca1, cb0, cb1) in (
        ('u', (p[0], p[2], q[0], q[2]), (p[1], p[3], q[1], q[3])),
        ('v', (p[1], p[3], q[1], q[3]), (p[0], p[2], q[0], q[2])),
    ):
        for pos, other in ((a1, b0), (a0, b1)):
            if abs(pos - other) < eps:
                lo, hi = max(ca0, cb0), min(ca1, cb1)
                if hi - lo > eps:
                    return axis, pos, lo, hi
    return None


# --- offices ------------------------------------------------------------------------------------


def _office(
    size_m: tuple[float, float], rng: np.random.Generator, cfg: MapGenConfig, wall: float
) -> Layout:
    """
    Rows of rooms along horizontal corridors; vertical spines join the corridors.

    W >= H assumed.
    """
    transpose = size_m[1] > size_m[0]
    w_m, h_m = (size_m[1], size_m[0]) if transpose else size_m
    m = cfg.margin_m
    u0, v0, u1, v1 = m, m, w_m - m, h_m - m
    cw = float(rng.uniform(*cfg.corridor_m))
    n_spines = 1 + int((u1 - u0) // cfg.spine_every_m)
    spine_u = [u0] if n_spines == 1 else list(np.linspace(u0, u1 - cw, n_spines))
    spines = [(su, v0, su + cw, v1) for su in spine_u]
    segments = [(su + cw, nxt) for su, nxt in zip(spine_u, spine_u[1:] + [u1])]
    if n_spines > 1:
        segments = segments[:-1]
    n_corr = max(1, int(np.ceil((v1 - v0) / (2 * cfg.office_row_m + cw))))
    depth = ((v1 - v0) - n_corr * cw) / (2 * n_corr)
    if depth < cfg.min_room_m:
        n_corr = max(1, n_corr - 1)
        depth = ((v1 - v0) - n_corr * cw) / (2 * n_corr)

    rects: list[Rect] = list(spines)
    rooms: list[Rect] = []
    corridors: list[Rect] = list(spines)
    doors: list[Rect] = []
    spine_ids = list(range(len(spines)))
    for k in range(n_corr):
        top = v0 + k * (2 * depth + cw)
        rows = [(top, top + depth), (top + depth + cw, top + 2 * depth + cw)]
        corr_v = (top + depth, top + depth + cw)
        for s0, s1 in segments:
            corr = (s0, corr_v[0], s1, corr_v[1])
            rects.append(corr)
            corridors.append(corr)
            cid = len(rects) - 1
            touching = [i for i in spine_ids if _shared_edge(rects[i], corr) is not None]
            for sid in touching:
                _connect([sid], [cid], rects, rng, cfg, wall, doors, width=float('inf'))
            for r0, r1 in rows:
                for a, b in _row_cuts(s0, s1, rng, cfg):
                    rects.append((a, r0, b, r1))
                    rooms.append(rects[-1])
                    _connect([len(rects) - 1], [cid], rects, rng, cfg, wall, doors)
    layout = Layout(
        size_m=(w_m, h_m),
        footprint=[(u0, v0, u1, v1)],
        rooms=rooms,
        corridors=corridors,
        doors=doors,
        wall_m=wall,
        outer_wall_m=cfg.outer_wall_m,
    )
    return _transposed(layout) if transpose else layout


def _row_cuts(
    s0: float, s1: float, rng: np.random.Generator, cfg: MapGenConfig
) -> list[tuple[float, float]]:
    """
    Split [s0, s1] into room widths between min_room_m and max_room_m.

    Now and then an open plan.
    """
    cuts = [s0]
    while s1 - cuts[-1] > 2 * cfg.min_room_m + 0.5:
        hi = cfg.max_room_m * (2.0 if rng.random() < cfg.open_plan_prob else 1.0)
        width = float(rng.uniform(cfg.min_room_m + 0.4, hi))
        if s1 - (cuts[-1] + width) < cfg.min_room_m:
            break
        cuts.append(cuts[-1] + width)
    cuts.append(s1)
    return list(zip(cuts[:-1], cuts[1:]))


def _transposed(layout: Layout) -> Layout:
    def t(r: Rect) -> Rect:
        return (r[1], r[0], r[3], r[2])

    return Layout(
        size_m=(layout.size_m[1], layout.size_m[0]),
        footprint=[t(r) for r in layout.footprint],
        rooms=[t(r) for r in layout.rooms],
        corridors=[t(r) for r in layout.corridors],
        doors=[t(r) for r in layout.doors],
        furniture=[t(r) for r in layout.furniture],
        wall_m=layout.wall_m,
        outer_wall_m=layout.outer_wall_m,
    )


# --- furniture ----------------------------------------------------------------------------------


def _furniture(rooms: list[Rect], rng: np.random.Generator, cfg: MapGenConfig) -> list[Rect]:
    """0-2 blocks per room, each ``furniture_clear_m`` away from the walls and from each other."""
    c = cfg.furniture_clear_m
    blocks: list[Rect] = []
    for u0, v0, u1, v1 in rooms:
        iu0, iv0, iu1, iv1 = u0 + c, v0 + c, u1 - c, v1 - c
        if iu1 - iu0 < 0.5 or iv1 - iv0 < 0.5 or rng.random() >= cfg.furniture_prob:
            continue
        placed: list[Rect] = []
        for _ in range(int(rng.integers(1, 3))):
            bw = float(rng.uniform(0.5, min(1.8, iu1 - iu0)))
            bh = float(rng.uniform(0.5, min(1.8, iv1 - iv0)))
            bu = float(rng.uniform(iu0, iu1 - bw))
            bv = float(rng.uniform(iv0, iv1 - bh))
            block = (bu, bv, bu + bw, bv + bh)
            if all(_gap(block, other) >= c for other in placed):
                placed.append(block)
        blocks += placed
    return blocks


def _gap(p: Rect, q: Rect) -> float:
    """Chebyshev-style clearance between two rectangles (0 when they overlap)."""
    du = max(q[0] - p[2], p[0] - q[2], 0.0)
    dv = max(q[1] - p[3], p[1] - q[3], 0.0)
    return max(du, dv)
