"""
Plain cell-by-cell A*: the test oracle (and bench baseline) for the planner's jump point search.

8-connected, octile heuristic, no corner cutting, like :func:`dinno_ros.core.world.planner.astar`;
it expands cell by cell with an indexed binary heap of packed (key, node) int64 entries. The
product never runs it.
"""

from __future__ import annotations

from dinno_ros.core.world.planner import _octile, _trace, NODE_BITS, NoPathError, SQRT2
import numba as nb
import numpy as np

KEY_SCALE = 2.0**16  # key resolution 1.5e-5 px, keys up to 2**21 px


def reference_astar(
    free_mask: np.ndarray, start_rc: tuple[int, int], goal_rc: tuple[int, int]
) -> np.ndarray:
    """
    Return a shortest 8-connected path (no corner cutting) as [K, 2] (row, col) cells.

    Start and goal included; raises :class:`NoPathError` when the goal is unreachable.
    """
    free = np.ascontiguousarray(free_mask, dtype=np.bool_)
    h, w = free.shape
    if (h + 2) * (w + 2) >= 2**NODE_BITS:
        raise ValueError(f'grid {h}x{w} too large (at most {2**NODE_BITS} cells)')
    for name, (r, c) in (('start', start_rc), ('goal', goal_rc)):
        if not (0 <= r < h and 0 <= c < w) or not free[r, c]:
            raise ValueError(f'{name} cell {(r, c)} is outside the grid or not free')
    sr, sc, gr, gc = int(start_rc[0]), int(start_rc[1]), int(goal_rc[0]), int(goal_rc[1])
    path = _astar_kernel(free, sr, sc, gr, gc)
    if len(path) == 0:
        raise NoPathError(f'no path from cell {tuple(start_rc)} to cell {tuple(goal_rc)}')
    return path


@nb.njit(cache=True)
def _pack(key, node):
    """One int64 heap entry ordered by key: the key in fixed point, then the node index."""
    return (np.int64(key * KEY_SCALE) << NODE_BITS) | np.int64(node)


@nb.njit(cache=True)
def _sift_up(heap, pos, i, item, mask):
    """
    Move ``item`` up from slot ``i`` of an indexed binary min-heap.

    ``pos`` maps node -> slot.
    """
    while i > 0:
        parent = (i - 1) >> 1
        above = heap[parent]
        if above <= item:
            break
        heap[i] = above
        pos[above & mask] = i
        i = parent
    heap[i] = item
    pos[item & mask] = i


@nb.njit(cache=True)
def _heap_pop(heap, pos, size, mask):
    """Remove and return the smallest of ``size`` entries."""
    top = heap[0]
    size -= 1
    if size == 0:
        return top
    item = heap[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        c = heap[child]
        if child + 1 < size:
            c2 = heap[child + 1]
            if c2 < c:
                child += 1
                c = c2
        if c >= item:
            break
        heap[i] = c
        pos[c & mask] = i
        i = child
    heap[i] = item
    pos[item & mask] = i
    return top


@nb.njit(cache=True)
def _astar_kernel(free, sr, sc, gr, gc):
    """
    Cells of a shortest path (rows, cols) from start to goal by plain A*; empty when unreachable.

    The reference for the planner's jump point search: expands cell by cell on the grid padded by
    one blocked cell (flat indices, no bounds checks) with an indexed binary heap of packed
    (key, node) int64 entries.
    """
    h0, w0 = free.shape
    w = w0 + 2
    n = (h0 + 2) * w
    state = np.zeros(n, dtype=np.uint8)  # 0 blocked, 1 free (unseen), 2 closed, 3 open
    for r in range(h0):
        for c in range(w0):
            if free[r, c]:
                state[(r + 1) * w + c + 1] = 1
    g = np.full(n, np.inf, dtype=np.float64)
    parent = np.empty(n, dtype=np.int32)
    pos = np.empty(n, dtype=np.int32)  # heap slot of an open node (valid while state == 3)
    heap = np.empty(n, dtype=np.int64)
    # neighbour offsets: 4 orthogonal, then diagonals with the two orthogonals they need free
    off = np.array([-w, w, -1, 1, -w - 1, -w + 1, w - 1, w + 1])
    side_a = np.array([0, 0, 0, 0, -w, -w, w, w])
    side_b = np.array([0, 0, 0, 0, -1, 1, -1, 1])
    drs = np.array([-1, 1, 0, 0, -1, -1, 1, 1])
    dcs = np.array([0, 0, -1, 1, -1, 1, -1, 1])
    gr1 = gr + 1
    gc1 = gc + 1
    start = (sr + 1) * w + sc + 1
    goal = gr1 * w + gc1
    g[start] = 0.0
    parent[start] = start
    mask = np.int64((1 << NODE_BITS) - 1)
    _sift_up(heap, pos, 0, _pack(_octile(sr + 1, sc + 1, gr1, gc1), start), mask)
    state[start] = 3
    size = 1
    found = False
    while size > 0:
        cur = np.int64(_heap_pop(heap, pos, size, mask) & mask)
        size -= 1
        if cur == goal:
            found = True
            break
        state[cur] = 2
        gcur = g[cur]
        rcur = cur // w
        ccur = cur - rcur * w
        for k in range(8):
            nb_ = cur + off[k]
            st = state[nb_]
            if st == 0 or st == 2:  # blocked or closed
                continue
            if k >= 4:
                if state[cur + side_a[k]] == 0 or state[cur + side_b[k]] == 0:  # no corner cutting
                    continue
                ng = gcur + SQRT2
            else:
                ng = gcur + 1.0
            if ng >= g[nb_]:
                continue
            g[nb_] = ng
            parent[nb_] = cur
            item = _pack(ng + _octile(rcur + drs[k], ccur + dcs[k], gr1, gc1), nb_)
            if st == 1:
                state[nb_] = 3
                _sift_up(heap, pos, size, item, mask)
                size += 1
            else:  # decrease-key
                _sift_up(heap, pos, pos[nb_], item, mask)
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return _trace(parent, start, goal, w)
