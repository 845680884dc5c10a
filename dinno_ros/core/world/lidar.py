"""
A batched 2-D lidar on a :class:`GridMap`, in pixel units.

Conventions:

* A pose is ``(px, py, yaw)``: continuous pixel coordinates (see :mod:`grid`) and the *world* yaw
  (counter-clockwise, y up). A beam at world angle ``a`` has pixel direction ``(cos a, -sin a)``.
* Beam ``i`` has the angle ``angle_min + i * angle_increment`` relative to the yaw (LaserScan).
* Everything outside the image counts as occupied.
* ``ranges`` follow REP 117: a beam that hits nothing within ``range_max`` reports ``+inf``;
  its hit point is then the beam's end point at ``range_max``.

Ray casting is exact: a grid traversal (Amanatides-Woo DDA) returns the entry point into the first
occupied cell. It is accelerated by sphere tracing on a distance transform: in open space a ray
jumps by a lower bound of its distance to the nearest occupied cell and only walks cell by cell
near walls. The numba kernel and the torch kernel run the same float64 arithmetic and give
identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math

import cv2
from dinno_ros.core.world.grid import GridMap
import numba as nb
import numpy as np

logger = logging.getLogger(__name__)

JUMP_MIN = 1.0  # sphere-trace only when the safe step is at least this many pixels
DIST_EPS = 1e-3  # keeps quantised safe steps strictly below the true clearance
BACKENDS = ('auto', 'numba', 'torch')


@dataclass
class LidarConfig:
    """A 2-D lidar. Lengths in pixels; angles in radians."""

    num_beams: int = 20  # beams per scan (paper: 20)
    fov: float = 2 * math.pi  # field of view
    angle_min: float | None = None  # first beam relative to yaw; None: -fov/2
    max_range_px: float | None = None  # range_max in pixels; None: beam_length * max(H, W)
    beam_length: float = 0.2  # range_max as a fraction of max(H, W) (paper: 0.2)
    range_noise_std: float = 0.0  # Gaussian range noise (pixels) on hits
    beam_samps: int = 25  # training samples per beam (paper: 25)
    samp_exponent: float = 1.0  # sample spacing along a beam: t = (k / (S-1)) ** samp_exponent

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f'num_beams must be >= 1, got {self.num_beams}')
        if not 0 < self.fov <= 2 * math.pi + 1e-9:
            raise ValueError(f'fov must be in (0, 2*pi], got {self.fov}')
        if self.beam_samps < 2:
            raise ValueError(f'beam_samps must be >= 2, got {self.beam_samps}')
        if self.max_range_px is not None and not self.max_range_px > 0:
            raise ValueError(f'max_range_px must be > 0, got {self.max_range_px}')
        if self.max_range_px is None and not self.beam_length > 0:
            raise ValueError(f'beam_length must be > 0, got {self.beam_length}')
        if self.range_noise_std < 0:
            raise ValueError(f'range_noise_std must be >= 0, got {self.range_noise_std}')
        if not self.samp_exponent > 0:
            raise ValueError(f'samp_exponent must be > 0, got {self.samp_exponent}')

    @property
    def full_circle(self) -> bool:
        return self.fov >= 2 * math.pi - 1e-9

    @property
    def angle_increment(self) -> float:
        """Full circle: fov / B (no duplicate beam); otherwise the ends are both included."""
        if self.full_circle or self.num_beams == 1:
            return self.fov / self.num_beams
        return self.fov / (self.num_beams - 1)

    def angles(self) -> np.ndarray:
        """Beam angles relative to the yaw, [B] float64."""
        start = -self.fov / 2 if self.angle_min is None else self.angle_min
        return start + self.angle_increment * np.arange(self.num_beams, dtype=np.float64)

    def range_max(self, grid: GridMap) -> float:
        if self.max_range_px is not None:
            return float(self.max_range_px)
        return float(self.beam_length * max(grid.height, grid.width))


@dataclass
class Scan:
    """The result of scanning from N poses with B beams (pixel units)."""

    ranges: np.ndarray  # [N, B] float32; +inf where nothing was hit within range_max
    hit: np.ndarray  # [N, B] bool
    points: (
        np.ndarray
    )  # [N, B, 2] float32 pixel coords of the hit (or of the beam end when no hit)
    angles: np.ndarray  # [B] float32 beam angles relative to the yaw
    range_max: float  # pixels

    @property
    def num_poses(self) -> int:
        return int(self.ranges.shape[0])


def step_map(occupied: np.ndarray) -> np.ndarray:
    """
    Build the ray caster's map: uint8, with a one-cell occupied ring around the image.

    0 marks an occupied cell; a free cell holds ``1 + 2 s`` where ``s`` (a multiple of 0.5, at most
    127) is below the distance from the cell's square to the nearest occupied square. That distance
    is exact: the distance from a lattice point to the nearest box ``q +- 1`` is the Euclidean
    distance transform of the occupancy dilated by a 3x3 square. Image cell ``(r, c)`` is
    ``(r + 1, c + 1)`` here.
    """
    occ = np.pad(np.asarray(occupied, dtype=bool), 1, constant_values=True)
    grown = cv2.dilate(occ.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    edt = cv2.distanceTransform((~grown).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    code = 1.0 + np.clip(np.floor(2.0 * (edt - DIST_EPS)), 0.0, 254.0)
    code[occ] = 0.0
    return np.ascontiguousarray(code.astype(np.uint8))


@nb.njit(cache=True)
def _cast_one(code, x0, y0, dx, dy, rmax):
    """
    Range to the first occupied cell along one ray (see :func:`step_map`).

    Returns (range, hit).
    """
    cx = math.floor(x0)
    cy = math.floor(y0)
    if code[cy + 1, cx + 1] == 0:
        return 0.0, True
    t = 0.0
    inf = math.inf
    while True:
        c = code[cy + 1, cx + 1]
        if c == 0:  # a jump can end exactly on the face of an occupied cell
            return t, True
        s = (c - 1.0) * 0.5
        if s >= JUMP_MIN:  # sphere tracing in open space
            t = t + s
            if t >= rmax:
                return inf, False
            cx = math.floor(x0 + t * dx)
            cy = math.floor(y0 + t * dy)
            continue
        # exact grid traversal from the current point until open space or a hit
        x = x0 + t * dx
        y = y0 + t * dy
        sx = 1
        sy = 1
        tdx = inf
        tdy = inf
        tmx = inf
        tmy = inf
        if dx > 0.0:
            tdx = 1.0 / dx
            tmx = t + (cx + 1.0 - x) / dx
        elif dx < 0.0:
            sx = -1
            tdx = -1.0 / dx
            tmx = t + (cx - x) / dx
        if dy > 0.0:
            tdy = 1.0 / dy
            tmy = t + (cy + 1.0 - y) / dy
        elif dy < 0.0:
            sy = -1
            tdy = -1.0 / dy
            tmy = t + (cy - y) / dy
        while True:
            if tmx < tmy:
                t = tmx
                cx += sx
                tmx += tdx
            else:
                t = tmy
                cy += sy
                tmy += tdy
            if t > rmax:
                return inf, False
            c = code[cy + 1, cx + 1]
            if c == 0:
                return t, True
            if (c - 1.0) * 0.5 >= JUMP_MIN:
                break


@nb.njit(cache=True, parallel=True)
def _cast_batch(code, poses, cos_p, sin_p, cos_b, sin_b, rmax, ranges, hit, points):
    n = poses.shape[0]
    b = cos_b.shape[0]
    for k in nb.prange(n * b):
        i = k // b
        j = k - i * b
        cy_ = cos_p[i]
        sy_ = sin_p[i]
        # direction of world angle yaw + a in pixels: (cos(yaw + a), -sin(yaw + a))
        dx = cy_ * cos_b[j] - sy_ * sin_b[j]
        dy = -(sy_ * cos_b[j] + cy_ * sin_b[j])
        r, h = _cast_one(code, poses[i, 0], poses[i, 1], dx, dy, rmax)
        ranges[i, j] = r
        hit[i, j] = h
        reach = r if h else rmax
        points[i, j, 0] = poses[i, 0] + reach * dx
        points[i, j, 1] = poses[i, 1] + reach * dy


def beam_directions(poses: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel directions (dx, dy) of every beam, [N, B] float64 (the kernels' exact arithmetic)."""
    cy_ = np.cos(poses[:, 2:3].astype(np.float64))
    sy_ = np.sin(poses[:, 2:3].astype(np.float64))
    cb, sb = np.cos(angles)[None, :], np.sin(angles)[None, :]
    return cy_ * cb - sy_ * sb, -(sy_ * cb + cy_ * sb)


def cast_rays_numba(code, poses, angles, rmax) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Exact ranges [N, B] (float64, inf = no hit), hit flags and hit points.

    Hit points are [N, B, 2] (float32).
    """
    poses = np.ascontiguousarray(poses, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    shape = (poses.shape[0], angles.shape[0])
    ranges = np.empty(shape, dtype=np.float64)
    hit = np.empty(shape, dtype=np.bool_)
    points = np.empty(shape + (2,), dtype=np.float32)
    _cast_batch(
        code,
        poses,
        np.cos(poses[:, 2]),
        np.sin(poses[:, 2]),
        np.cos(angles),
        np.sin(angles),
        float(rmax),
        ranges,
        hit,
        points,
    )
    return ranges, hit, points


def end_points(
    poses: np.ndarray, angles: np.ndarray, ranges: np.ndarray, hit: np.ndarray, rmax: float
):
    """Hit points (or beam ends at ``rmax``), [N, B, 2] float32, with the kernels' arithmetic."""
    dx, dy = beam_directions(poses, angles)
    reach = np.where(hit, ranges, rmax)
    return np.stack([poses[:, 0:1] + reach * dx, poses[:, 1:2] + reach * dy], axis=-1).astype(
        np.float32
    )


def cast_rays_torch(code, poses, angles, rmax, device='cpu', check_every: int = 8, code_t=None):
    """
    Run the same traversal as :func:`cast_rays_numba`, vectorised over all rays with torch.

    The arithmetic is float64. Every ``check_every`` iterations the finished rays are dropped from
    the working set. ``code_t``: the flattened step map already on ``device`` as float64 (built
    from ``code`` when None).
    """
    import torch

    dev = torch.device(device)
    f64 = torch.float64
    w = code.shape[1]
    if code_t is None:
        code_t = torch.as_tensor(code.reshape(-1), device=dev).to(f64)
    occ_t = code_t == 0
    safe_t = (code_t - 1.0) * 0.5
    poses = np.asarray(poses, dtype=np.float64)
    dx, dy = beam_directions(poses, np.asarray(angles, dtype=np.float64))
    shape = dx.shape
    inf = math.inf
    st = {
        'x0': torch.as_tensor(
            np.repeat(poses[:, 0:1], shape[1], 1).reshape(-1), device=dev, dtype=f64
        ),
        'y0': torch.as_tensor(
            np.repeat(poses[:, 1:2], shape[1], 1).reshape(-1), device=dev, dtype=f64
        ),
        'dx': torch.as_tensor(dx.reshape(-1), device=dev, dtype=f64),
        'dy': torch.as_tensor(dy.reshape(-1), device=dev, dtype=f64),
    }
    m = st['x0'].numel()
    st['idx'] = torch.arange(m, device=dev)
    st['cx'] = torch.floor(st['x0']).long()
    st['cy'] = torch.floor(st['y0']).long()
    st['t'] = torch.zeros(m, dtype=f64, device=dev)
    st['dda'] = torch.zeros(m, dtype=torch.bool, device=dev)  # False: the "check / jump" state
    st['sx'] = torch.where(st['dx'] < 0, -1, 1).long()
    st['sy'] = torch.where(st['dy'] < 0, -1, 1).long()
    st['tdx'] = torch.where(st['dx'] != 0, 1.0 / st['dx'].abs(), torch.full_like(st['dx'], inf))
    st['tdy'] = torch.where(st['dy'] != 0, 1.0 / st['dy'].abs(), torch.full_like(st['dy'], inf))
    st['tmx'] = torch.full((m,), inf, dtype=f64, device=dev)
    st['tmy'] = torch.full((m,), inf, dtype=f64, device=dev)
    st['active'] = torch.ones(m, dtype=torch.bool, device=dev)
    rng = torch.full((m,), inf, dtype=f64, device=dev)
    hit = torch.zeros(m, dtype=torch.bool, device=dev)

    it = 0
    while True:
        if it % check_every == 0:
            keep = st['active']
            n_keep = int(keep.sum())
            if n_keep == 0:
                break
            if n_keep < keep.numel():
                st = {k: v[keep] for k, v in st.items()}
        it += 1
        _torch_step(st, occ_t, safe_t, w, rmax, rng, hit)
    return rng.reshape(shape).cpu().numpy(), hit.reshape(shape).cpu().numpy()


def _torch_step(st, occ_t, safe_t, w, rmax, rng, hit) -> None:
    """One iteration of the ray state machine on the working set ``st`` (updated in place)."""
    import torch

    inf = math.inf
    x0, y0, ddx, ddy, t, cx, cy = (
        st['x0'],
        st['y0'],
        st['dx'],
        st['dy'],
        st['t'],
        st['cx'],
        st['cy'],
    )
    active, in_dda, idx = st['active'], st['dda'], st['idx']

    def finish(mask, at):
        rng[idx[mask]] = at[mask]
        hit[idx[mask]] = True

    # state "check": a hit when a jump ended on an occupied face; jump in open space; or start a
    # traversal
    chk = active & ~in_dda
    cell = (cy + 1) * w + cx + 1
    landed = chk & occ_t[cell]
    finish(landed, t)
    active = active & ~landed
    chk = chk & ~landed
    s = safe_t[cell]
    jump = chk & (s >= JUMP_MIN)
    t = torch.where(jump, t + s, t)
    over = jump & (t >= rmax)
    active = active & ~over
    jump = jump & ~over
    cx = torch.where(jump, torch.floor(x0 + t * ddx).long(), cx)
    cy = torch.where(jump, torch.floor(y0 + t * ddy).long(), cy)
    start = chk & (s < JUMP_MIN)
    x = x0 + t * ddx
    y = y0 + t * ddy
    cxf = cx.to(torch.float64)
    cyf = cy.to(torch.float64)
    nx = torch.where(ddx > 0, t + (cxf + 1.0 - x) / ddx, t + (cxf - x) / ddx)
    ny = torch.where(ddy > 0, t + (cyf + 1.0 - y) / ddy, t + (cyf - y) / ddy)
    tmx = torch.where(start, torch.where(ddx != 0, nx, torch.full_like(nx, inf)), st['tmx'])
    tmy = torch.where(start, torch.where(ddy != 0, ny, torch.full_like(ny, inf)), st['tmy'])
    in_dda = in_dda | start
    # state "traverse": one cell step (rays that just started step in the same iteration, as in
    # numba)
    stp = active & in_dda
    xs = stp & (tmx < tmy)
    ys = stp & ~(tmx < tmy)
    t = torch.where(xs, tmx, torch.where(ys, tmy, t))
    cx = torch.where(xs, cx + st['sx'], cx)
    cy = torch.where(ys, cy + st['sy'], cy)
    tmx = torch.where(xs, tmx + st['tdx'], tmx)
    tmy = torch.where(ys, tmy + st['tdy'], tmy)
    far = stp & (t > rmax)
    active = active & ~far
    stp = stp & ~far
    cell = (cy + 1) * w + cx + 1
    got = stp & occ_t[cell]
    finish(got, t)
    active = active & ~got
    stp = stp & ~got
    in_dda = in_dda & ~(stp & (safe_t[cell] >= JUMP_MIN))
    st.update(t=t, cx=cx, cy=cy, tmx=tmx, tmy=tmy, dda=in_dda, active=active)


class Lidar:
    """Batched lidar scans and the paper's training samples along the beams."""

    def __init__(
        self,
        grid: GridMap,
        cfg: LidarConfig | None = None,
        device: str = 'cpu',
        backend: str = 'auto',
    ):
        """
        ``backend``: "numba" (CPU), "torch" (on ``device``), or "auto".

        "auto": numba on "cpu", torch elsewhere.
        """
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {list(BACKENDS)}, got {backend!r}')
        self.grid = grid
        self.cfg = cfg or LidarConfig()
        self.device = str(device)
        if backend == 'auto':
            backend = 'numba' if self.device == 'cpu' else 'torch'
        if backend == 'numba' and self.device != 'cpu':
            raise ValueError(f"the numba backend runs on device 'cpu', got {self.device!r}")
        self.backend = backend
        self.range_max = self.cfg.range_max(grid)
        self.angles = self.cfg.angles()
        self._code = step_map(grid.occupied)
        self._code_t = None  # the step map on the torch device, made on first use

    def cast(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free float64 ranges (inf = no hit) and hit flags, [N, B]."""
        ranges, hit, _ = self._cast(poses)
        return ranges, hit

    def _cast(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
        if poses.ndim != 2 or poses.shape[1] != 3:
            raise ValueError(f'poses must be [N, 3] (px, py, yaw), got shape {poses.shape}')
        if self.backend == 'numba':
            return cast_rays_numba(self._code, poses, self.angles, self.range_max)
        if self._code_t is None:
            import torch

            self._code_t = torch.as_tensor(self._code.reshape(-1), device=self.device).to(
                torch.float64
            )
        ranges, hit = cast_rays_torch(
            self._code, poses, self.angles, self.range_max, self.device, code_t=self._code_t
        )
        return ranges, hit, end_points(poses, self.angles, ranges, hit, self.range_max)

    def scan(self, poses: np.ndarray, rng: np.random.Generator | None = None) -> Scan:
        """
        Scan from N poses.

        Range noise (if configured) needs ``rng``; noisy hits stay in [0, range_max].
        """
        poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
        ranges, hit, points = self._cast(poses)
        if self.cfg.range_noise_std > 0:
            rng = rng if rng is not None else np.random.default_rng()
            noise = rng.normal(0.0, self.cfg.range_noise_std, size=ranges.shape)
            ranges = np.where(hit, np.clip(ranges + noise, 0.0, self.range_max), ranges)
            points = end_points(poses, self.angles, ranges, hit, self.range_max)
        return Scan(
            ranges.astype(np.float32), hit, points, self.angles.astype(np.float32), self.range_max
        )

    def samples(
        self, poses: np.ndarray, rng: np.random.Generator | None = None, scan: Scan | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """
        Return the paper's training samples.

        ``beam_samps`` points per beam, [N*B*S, 2] and labels [N*B*S]. Points are in centred pixel
        units ``(px - W/2, py - H/2)``, ordered pose, beam, sample. On a beam that hits,
        ``t_k = (k / (S-1)) ** samp_exponent`` of the way from the pose to the hit (labels 0, the
        last one, at the hit, 1); on a beam that hits nothing, uniform over the whole beam (all 0).
        """
        poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
        scan = scan if scan is not None else self.scan(poses, rng)
        return beam_samples(poses, scan, self.cfg, self.grid.width, self.grid.height)


def beam_samples(poses: np.ndarray, scan: Scan, cfg: LidarConfig, width: int, height: int):
    """Sample points and labels along the beams of ``scan`` (see :meth:`Lidar.samples`)."""
    s = cfg.beam_samps
    frac = np.linspace(0.0, 1.0, s)
    hit = scan.hit
    t_hit = frac**cfg.samp_exponent
    length = np.where(hit, scan.ranges, scan.range_max).astype(np.float64)  # [N, B]
    t = np.where(hit[..., None], t_hit[None, None, :], frac[None, None, :]) * length[..., None]
    a = poses[:, 2:3] + scan.angles.astype(np.float64)[None, :]
    px = poses[:, 0, None, None] + t * np.cos(a)[..., None] - width / 2.0
    py = poses[:, 1, None, None] - t * np.sin(a)[..., None] - height / 2.0
    pts = np.stack([px, py], axis=-1).reshape(-1, 2).astype(np.float32)
    labels = np.zeros(t.shape, dtype=np.float32)
    labels[..., -1] = hit
    return pts, labels.reshape(-1)


def random_free_poses(
    grid: GridMap, n: int, rng: np.random.Generator | int | None = None, clearance_px: float = 0.0
) -> np.ndarray:
    """N random poses (px, py, yaw) uniformly in free cells (optionally this far from walls)."""
    rng = np.random.default_rng(rng)
    free = grid.free
    if clearance_px > 0:
        edt = cv2.distanceTransform(
            np.pad(free, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
        )
        free = free & (edt[1:-1, 1:-1] > clearance_px)
    rows, cols = np.nonzero(free)
    if rows.size == 0:
        raise ValueError(f'map {grid.name!r} has no free cell (clearance_px={clearance_px})')
    k = rng.integers(0, rows.size, size=n)
    px = cols[k] + rng.uniform(0.0, 1.0, size=n)
    py = rows[k] + rng.uniform(0.0, 1.0, size=n)
    yaw = rng.uniform(-math.pi, math.pi, size=n)
    return np.stack([px, py, yaw], axis=1)
