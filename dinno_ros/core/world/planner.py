"""
Collision-free waypoint paths.

A* on the inflated grid, line-of-sight smoothing, resampling into poses.

* :func:`inflate` marks a cell free when its centre is at least ``robot_radius + sqrt(1/2)`` pixels
  from every occupied cell centre, so a robot disk centred anywhere in a free cell keeps clear of
  walls.
* :func:`astar` finds shortest 8-connected paths with the octile heuristic and no corner cutting (a
  diagonal move needs both orthogonal neighbours free). It is jump point search (Harabor &
  Grastien, in the variant without corner cutting) in numba: it expands only jump points, scanning
  the straight and diagonal runs between them, then fills in the cells. It breaks ties in f towards
  the goal and reuses its per-node buffers across queries on grids of the same shape. (The plain
  cell-by-cell A* it is checked against lives with the tests: ``tests/reference_astar.py``.)
* :func:`plan_route` chains waypoints (metres) into one :class:`Path`; each leg is smoothed by
  line-of-sight shortcuts whose cells (a supercover walk) are all free on the inflated grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import math
import threading

import cv2
from dinno_ros.core.world.grid import GridMap
import numba as nb
import numpy as np

logger = logging.getLogger(__name__)

SQRT2 = math.sqrt(2.0)
END_MODES = ('pingpong', 'loop', 'stop')


class NoPathError(ValueError):
    """No 8-connected (no corner cutting) path joins the two cells."""


def inflate(grid: GridMap, robot_radius_m: float) -> np.ndarray:
    """
    Free mask [H, W] of cells whose centre keeps a disk clear of every wall.

    The disk has radius ``robot_radius_m``.
    """
    if robot_radius_m < 0:
        raise ValueError(f'robot_radius_m must be >= 0, got {robot_radius_m}')
    free = np.pad(grid.free, 1).astype(np.uint8)  # the image border counts as a wall
    edt = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    return edt >= robot_radius_m / grid.resolution + math.sqrt(0.5)


NODE_BITS = 26  # grids up to 2**26 cells (padded)
TIE_SCALE = 2.0**20  # JPS keys: f and h rounded to 1e-6 px, so equal-length paths tie exactly


@nb.njit(cache=True)
def _before(kf, kh, a, b):
    """
    Node ``a`` pops before node ``b``.

    Smaller f, then (f ties) smaller h, i.e. nearer the goal.
    """
    return kf[a] < kf[b] or (kf[a] == kf[b] and kh[a] < kh[b])


@nb.njit(cache=True)
def _sift_up_nodes(heap, pos, kf, kh, i, node):
    """Move ``node`` up from slot ``i`` of an indexed min-heap of nodes keyed by (kf, kh)."""
    while i > 0:
        parent = (i - 1) >> 1
        above = heap[parent]
        if not _before(kf, kh, node, above):
            break
        heap[i] = above
        pos[above] = i
        i = parent
    heap[i] = node
    pos[node] = i


@nb.njit(cache=True)
def _pop_node(heap, pos, kf, kh, size):
    """Remove and return the first of ``size`` nodes."""
    top = heap[0]
    size -= 1
    if size == 0:
        return top
    node = heap[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        c = heap[child]
        if child + 1 < size and _before(kf, kh, heap[child + 1], c):
            child += 1
            c = heap[child]
        if not _before(kf, kh, c, node):
            break
        heap[i] = c
        pos[c] = i
        i = child
    heap[i] = node
    pos[node] = i
    return top


@nb.njit(cache=True)
def _octile(r, c, gr, gc):
    dr = abs(r - gr)
    dc = abs(c - gc)
    return (dr + dc) + (SQRT2 - 2.0) * min(dr, dc)


@nb.njit(cache=True)
def _jump_straight(grid, x, d, p, goal):
    """
    First jump point moving from cell ``x`` by offset ``d``, -1 if none.

    ``p``: the perpendicular offset. A cell is a jump point when it is the goal or has a forced
    neighbour: a free side cell whose cell behind (towards ``x``) is blocked, so no diagonal move
    from the previous cell reaches it.
    """
    side_a = grid[x + p]  # the side cells of the previous cell
    side_b = grid[x - p]
    while True:
        x += d
        if grid[x] == 0:
            return -1
        if x == goal:
            return x
        a = grid[x + p]
        b = grid[x - p]
        if (a & ~side_a) | (b & ~side_b):
            return x
        side_a = a
        side_b = b


@nb.njit(cache=True)
def _jump_diagonal(grid, x, dv, dh, goal):
    """
    First jump point moving diagonally from ``x``, -1 if none.

    The move is ``dv`` (+-row stride) plus ``dh`` (+-1). Diagonal moves need both orthogonal
    neighbours free, so they have no forced neighbours; a cell is a jump point when it is the goal
    or a straight jump along either component finds one.
    """
    pv = abs(dv)
    while True:
        if grid[x + dv] == 0 or grid[x + dh] == 0 or grid[x + dv + dh] == 0:
            return -1
        x += dv + dh
        if x == goal:
            return x
        if _jump_straight(grid, x, dh, pv, goal) >= 0 or _jump_straight(grid, x, dv, 1, goal) >= 0:
            return x


@nb.njit(cache=True)
def _sign(v):
    return 1 if v > 0 else (-1 if v < 0 else 0)


@nb.njit(cache=True)
def _trace(parent, start, goal, w):
    """
    Unpadded (row, col) cells from start to goal.

    Fills the straight runs between jump points.
    """
    count = 1
    cur = goal
    while cur != start:
        prev = parent[cur]
        count += max(abs(cur // w - prev // w), abs(cur % w - prev % w))
        cur = prev
    out = np.empty((count, 2), dtype=np.int64)
    i = count - 1
    cur = goal
    r = cur // w
    c = cur % w
    out[i, 0] = r - 1
    out[i, 1] = c - 1
    while cur != start:
        prev = parent[cur]
        pr = prev // w
        pc = prev % w
        sr = _sign(pr - r)
        sc = _sign(pc - c)
        while r != pr or c != pc:
            r += sr
            c += sc
            i -= 1
            out[i, 0] = r - 1
            out[i, 1] = c - 1
        cur = prev
    return out


@nb.njit(cache=True)
def _jps_kernel(grid, w, g, parent, seen, state, pos, heap, kf, kh, gen, start, goal):
    """
    Jump point search without corner cutting on the padded flat ``grid``.

    ``grid``: 1 free, 0 blocked, stride ``w``. The per-node buffers are reused across calls: a
    node's ``g``/``parent``/``state`` are valid only when ``seen[node] == gen``. Returns the (row,
    col) cells of a shortest path, empty when unreachable.
    """
    gr = goal // w
    gc = goal % w
    seen[start] = gen
    g[start] = 0.0
    parent[start] = start
    state[start] = 1  # 1 open, 2 closed
    hq = np.int64(_octile(start // w, start % w, gr, gc) * TIE_SCALE + 0.5)
    kf[start] = hq
    kh[start] = hq
    _sift_up_nodes(heap, pos, kf, kh, 0, start)
    size = 1
    cand_r = np.empty(8, dtype=np.int64)
    cand_c = np.empty(8, dtype=np.int64)
    found = False
    while size > 0:
        cur = np.int64(_pop_node(heap, pos, kf, kh, size))
        size -= 1
        if cur == goal:
            found = True
            break
        state[cur] = 2
        rcur = cur // w
        ccur = cur - rcur * w
        # successor directions: all 8 at the start, else the natural and forced ones for the
        # arrival direction
        m = 0
        if cur == start:
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    if dr != 0 or dc != 0:
                        cand_r[m] = dr
                        cand_c[m] = dc
                        m += 1
        else:
            par = parent[cur]
            pr = par // w
            pc = par - pr * w
            dr = _sign(rcur - pr)
            dc = _sign(ccur - pc)
            cand_r[0] = dr
            cand_c[0] = dc
            m = 1
            if dr != 0 and dc != 0:
                cand_r[1] = dr
                cand_c[1] = 0
                cand_r[2] = 0
                cand_c[2] = dc
                m = 3
            elif dr == 0:  # moving along a row: forced neighbours above and below
                for s in (-1, 1):
                    if grid[cur + s * w] != 0 and grid[cur + s * w - dc] == 0:
                        cand_r[m] = s
                        cand_c[m] = 0
                        cand_r[m + 1] = s
                        cand_c[m + 1] = dc
                        m += 2
            else:  # moving along a column: forced neighbours left and right
                for s in (-1, 1):
                    if grid[cur + s] != 0 and grid[cur + s - dr * w] == 0:
                        cand_r[m] = 0
                        cand_c[m] = s
                        cand_r[m + 1] = dr
                        cand_c[m + 1] = s
                        m += 2
        gcur = g[cur]
        for k in range(m):
            dr = cand_r[k]
            dc = cand_c[k]
            if dr != 0 and dc != 0:
                nxt = _jump_diagonal(grid, cur, dr * w, dc, goal)
            elif dr == 0:
                nxt = _jump_straight(grid, cur, dc, w, goal)
            else:
                nxt = _jump_straight(grid, cur, dr * w, 1, goal)
            if nxt < 0:
                continue
            fresh = seen[nxt] != gen
            if not fresh and state[nxt] == 2:
                continue
            rn = nxt // w
            cn = nxt - rn * w
            steps = max(abs(rn - rcur), abs(cn - ccur))
            ng = gcur + (steps * SQRT2 if dr != 0 and dc != 0 else float(steps))
            if not fresh and ng >= g[nxt]:
                continue
            g[nxt] = ng
            parent[nxt] = cur
            h = _octile(rn, cn, gr, gc)
            kf[nxt] = np.int64((ng + h) * TIE_SCALE + 0.5)
            kh[nxt] = np.int64(h * TIE_SCALE + 0.5)
            if fresh:
                seen[nxt] = gen
                state[nxt] = 1
                _sift_up_nodes(heap, pos, kf, kh, size, nxt)
                size += 1
            else:  # decrease-key
                _sift_up_nodes(heap, pos, kf, kh, pos[nxt], nxt)
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return _trace(parent, start, goal, w)


class _SearchBuffers:
    """
    Per-node arrays for one grid shape, reused by every query on that shape.

    No per-call allocation.
    """

    def __init__(self, h: int, w: int) -> None:
        n = (h + 2) * (w + 2)
        self.grid = np.zeros(n, dtype=np.uint8)  # padded free mask; the border stays blocked
        self.inner = self.grid.reshape(h + 2, w + 2)[1:-1, 1:-1]
        self.g = np.empty(n, dtype=np.float64)
        self.parent = np.empty(n, dtype=np.int32)
        self.seen = np.zeros(
            n, dtype=np.int32
        )  # generation stamp: the node's g/parent/state are current
        self.state = np.empty(n, dtype=np.uint8)
        self.pos = np.empty(n, dtype=np.int32)
        self.heap = np.empty(n, dtype=np.int32)  # open nodes (JPS: an indexed heap of node ids)
        self.kf = np.empty(n, dtype=np.int64)  # heap keys: f, then h, in fixed point
        self.kh = np.empty(n, dtype=np.int64)
        self.gen = 0

    def next_generation(self) -> int:
        self.gen += 1
        if self.gen >= 2**31 - 1:
            self.seen[:] = 0
            self.gen = 1
        return self.gen


_BUFFERS = threading.local()  # per thread: {shape: _SearchBuffers}, at most _MAX_SHAPES of them
_MAX_SHAPES = 2  # ~42 bytes per cell each (pages are committed only where a search writes)


def _buffers(shape: tuple[int, int]) -> _SearchBuffers:
    cache = getattr(_BUFFERS, 'by_shape', None)
    if cache is None:
        cache = _BUFFERS.by_shape = {}
    buf = cache.pop(shape, None)
    if buf is None:
        buf = _SearchBuffers(*shape)
        while len(cache) >= _MAX_SHAPES:
            cache.pop(next(iter(cache)))  # the least recently used shape
    cache[shape] = buf  # most recently used last
    return buf


def astar(
    free_mask: np.ndarray, start_rc: tuple[int, int], goal_rc: tuple[int, int]
) -> np.ndarray:
    """
    Shortest 8-connected path (no corner cutting) as [K, 2] (row, col) cells.

    Start and goal are included. Jump point search, with the cells between the jump points filled
    in; the path is octile-optimal. Raises ValueError when start or goal is outside the grid or not
    free, and :class:`NoPathError` (a ValueError) when the goal is unreachable.
    """
    free = np.asarray(free_mask)
    if free.ndim != 2:
        raise ValueError(f'free_mask must be a 2-D array, got shape {free.shape}')
    h, w = free.shape
    if (h + 2) * (w + 2) >= 2**NODE_BITS:
        raise ValueError(f'grid {h}x{w} too large for the planner (at most {2**NODE_BITS} cells)')
    for name, (r, c) in (('start', start_rc), ('goal', goal_rc)):
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f'{name} cell {(r, c)} is outside the {h}x{w} grid')
        if not free[r, c]:
            raise ValueError(f'{name} cell {(r, c)} is not free')
    sr, sc, gr, gc = int(start_rc[0]), int(start_rc[1]), int(goal_rc[0]), int(goal_rc[1])
    buf = _buffers((h, w))
    np.not_equal(free, 0, out=buf.inner.view(np.bool_))
    stride = w + 2
    path = _jps_kernel(
        buf.grid,
        stride,
        buf.g,
        buf.parent,
        buf.seen,
        buf.state,
        buf.pos,
        buf.heap,
        buf.kf,
        buf.kh,
        buf.next_generation(),
        (sr + 1) * stride + sc + 1,
        (gr + 1) * stride + gc + 1,
    )
    if len(path) == 0:
        raise NoPathError(f'no path from cell {tuple(start_rc)} to cell {tuple(goal_rc)}')
    return path


@nb.njit(cache=True)
def line_is_free(free, r0, c0, r1, c1):
    """
    Return True when every cell the segment between the two cell centres touches is free.

    The cells are the segment's supercover.
    """
    dc = c1 - c0
    dr = r1 - r0
    nx = abs(dc)
    ny = abs(dr)
    sx = 1 if dc > 0 else -1
    sy = 1 if dr > 0 else -1
    r = r0
    c = c0
    if not free[r, c]:
        return False
    ix = 0
    iy = 0
    while ix < nx or iy < ny:
        decision = (1 + 2 * ix) * ny - (1 + 2 * iy) * nx
        if decision == 0:  # through a cell corner: both side cells are touched
            if not free[r, c + sx] or not free[r + sy, c]:
                return False
            c += sx
            r += sy
            ix += 1
            iy += 1
        elif decision < 0:
            c += sx
            ix += 1
        else:
            r += sy
            iy += 1
        if not free[r, c]:
            return False
    return True


@nb.njit(cache=True)
def _shortcut(free, cells):
    """Greedy line-of-sight smoothing: indices of the cells kept (first and last always)."""
    n = cells.shape[0]
    keep = np.empty(n, dtype=np.int64)
    keep[0] = 0
    k = 1
    i = 0
    while i < n - 1:
        j = i + 1
        while j + 1 < n and line_is_free(
            free, cells[i, 0], cells[i, 1], cells[j + 1, 0], cells[j + 1, 1]
        ):
            j += 1
        keep[k] = j
        k += 1
        i = j
    return keep[:k]


def smooth(free_mask: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Shortcut a cell path [K, 2] through straight lines that stay on free cells."""
    if len(cells) <= 2:
        return cells
    free = np.ascontiguousarray(free_mask, dtype=np.bool_)
    return cells[_shortcut(free, np.ascontiguousarray(cells, dtype=np.int64))]


@dataclass
class Path:
    """
    A polyline in world metres, driven at a constant speed.

    ``pose_at`` keeps going past the end.
    """

    xy: np.ndarray  # [K, 2] metres
    speed_m_s: float = 0.5  # driving speed for pose_at
    end_mode: str = 'pingpong'  # after the end: "pingpong" (drive back), "loop" (restart), "stop"
    waypoint_index: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )  # rows of xy

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        if len(self.xy) == 0:
            raise ValueError('a Path needs at least one point')
        if self.end_mode not in END_MODES:
            raise ValueError(f'end_mode must be one of {list(END_MODES)}, got {self.end_mode!r}')
        if not self.speed_m_s > 0:
            raise ValueError(f'speed_m_s must be > 0, got {self.speed_m_s}')
        seg = np.linalg.norm(np.diff(self.xy, axis=0), axis=1)
        self._s = np.concatenate([[0.0], np.cumsum(seg)])

    @property
    def length_m(self) -> float:
        return float(self._s[-1])

    @property
    def duration_s(self) -> float:
        """Time for one pass at ``speed_m_s``."""
        return self.length_m / self.speed_m_s

    def at_distance(self, s: np.ndarray) -> np.ndarray:
        """
        Poses (x, y, yaw) [N, 3] at arc lengths ``s`` (clipped to the path).

        Yaw along the segment.
        """
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length_m)
        if len(self.xy) == 1 or self.length_m == 0:
            return np.column_stack([np.repeat(self.xy[:1], s.size, 0), np.zeros(s.size)])
        k = np.clip(np.searchsorted(self._s, s, side='right') - 1, 0, len(self.xy) - 2)
        # skip zero-length segments for the heading
        d = self.xy[k + 1] - self.xy[k]
        seg = self._s[k + 1] - self._s[k]
        frac = np.where(seg > 0, (s - self._s[k]) / np.where(seg > 0, seg, 1.0), 0.0)
        xy = self.xy[k] + frac[:, None] * d
        return np.column_stack([xy, np.arctan2(d[:, 1], d[:, 0])])

    def poses(self, speed_m_s: float | None = None, dt_s: float = 0.1) -> np.ndarray:
        """
        One pass resampled every ``speed * dt`` metres.

        [N, 3] (x, y, yaw), the end point included.
        """
        return resample(self, self.speed_m_s if speed_m_s is None else speed_m_s, dt_s)

    def pose_at(self, t_s: float) -> np.ndarray:
        """
        Pose (x, y, yaw) after driving ``t_s`` seconds from the start.

        Continuing per ``end_mode``.
        """
        s = self.speed_m_s * max(float(t_s), 0.0)
        length = self.length_m
        if length == 0 or self.end_mode == 'stop':
            return self.at_distance(np.array([s]))[0]
        if self.end_mode == 'loop':
            return self.at_distance(np.array([s % length]))[0]
        s = s % (2 * length)
        if s <= length:
            return self.at_distance(np.array([s]))[0]
        pose = self.at_distance(np.array([2 * length - s]))[0]
        pose[2] = math.atan2(math.sin(pose[2] + math.pi), math.cos(pose[2] + math.pi))
        return pose

    def pixel_poses(
        self, grid: GridMap, speed_m_s: float | None = None, dt_s: float = 0.1
    ) -> np.ndarray:
        """:meth:`poses` as lidar pixel poses (px, py, yaw)."""
        return world_to_pixel_poses(grid, self.poses(speed_m_s, dt_s))


def resample(path: Path, speed_m_s: float, dt_s: float) -> np.ndarray:
    """
    Poses (x, y, yaw) [N, 3] every ``speed_m_s * dt_s`` metres along the path.

    The end point included.
    """
    if not speed_m_s > 0 or not dt_s > 0:
        raise ValueError(f'speed_m_s and dt_s must be > 0, got {speed_m_s}, {dt_s}')
    step = speed_m_s * dt_s
    s = np.arange(0.0, path.length_m, step)
    if len(s) == 0 or path.length_m - s[-1] > 1e-9:
        s = np.append(s, path.length_m)
    return path.at_distance(s)


def world_to_pixel_poses(grid: GridMap, poses: np.ndarray) -> np.ndarray:
    """World poses (x, y, yaw) -> lidar pixel poses (px, py, yaw); the yaw is the world yaw."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    pxy = grid.world_to_pixel(poses[:, :2])
    return np.column_stack([pxy, poses[:, 2]])


def waypoint_cell(grid: GridMap, xy: tuple[float, float]) -> tuple[int, int]:
    """Return the (row, col) cell holding a world point (may be outside the grid)."""
    px, py = grid.world_to_pixel(np.asarray(xy, dtype=np.float64))
    return int(math.floor(py)), int(math.floor(px))


def plan_route(
    grid: GridMap,
    waypoints_m: list[tuple[float, float]],
    robot_radius_m: float = 0.2,
    smooth_path: bool = True,
    closed: bool = False,
    speed_m_s: float = 0.5,
    end_mode: str = 'pingpong',
    free_mask: np.ndarray | None = None,
) -> Path:
    """
    Chain waypoints (metres) into one collision-free :class:`Path` through their cell centres.

    ``closed`` also plans back from the last waypoint to the first (use with ``end_mode="loop"``).
    A waypoint outside the map, in an (inflated) obstacle or unreachable raises ValueError naming
    it.
    """
    wps = [tuple(map(float, w)) for w in waypoints_m]
    if not wps:
        raise ValueError('plan_route needs at least one waypoint')
    free = inflate(grid, robot_radius_m) if free_mask is None else free_mask
    cells = [waypoint_cell(grid, w) for w in wps]
    h, w_ = free.shape
    for i, ((r, c), xy) in enumerate(zip(cells, wps)):
        if not (0 <= r < h and 0 <= c < w_):
            raise ValueError(
                f'waypoint {i} at ({xy[0]:.3f}, {xy[1]:.3f}) m is outside the map {grid.name!r}'
            )
        if not free[r, c]:
            raise ValueError(
                f'waypoint {i} at ({xy[0]:.3f}, {xy[1]:.3f}) m is in an obstacle or closer than '
                f'the robot radius {robot_radius_m} m to a wall'
            )
    _, labels = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
    for i in range(1, len(cells)):
        if labels[cells[i]] != labels[cells[0]]:
            xy, xy0 = wps[i], wps[0]
            raise ValueError(
                f'waypoint {i} at ({xy[0]:.3f}, {xy[1]:.3f}) m is unreachable from waypoint 0 '
                f'at ({xy0[0]:.3f}, {xy0[1]:.3f}) m for a robot of radius {robot_radius_m} m'
            )
    order = cells + [cells[0]] if closed and len(cells) > 1 else cells
    legs = [np.array([order[0]], dtype=np.int64)]
    index = [0]
    for a, b in zip(order[:-1], order[1:]):
        leg = astar(free, a, b) if a != b else np.array([a], dtype=np.int64)
        if smooth_path:
            leg = smooth(free, leg)
        legs.append(leg[1:])
        index.append(index[-1] + len(leg) - 1)
    rc = np.concatenate(legs)
    xy = grid.pixel_to_world(np.column_stack([rc[:, 1] + 0.5, rc[:, 0] + 0.5]))
    logger.debug('route of %d waypoints: %d cells', len(wps), len(rc))
    return Path(
        xy,
        speed_m_s=speed_m_s,
        end_mode=end_mode,
        waypoint_index=np.asarray(index, dtype=np.int64),
    )
