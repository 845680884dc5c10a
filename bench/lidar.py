"""
Lidar throughput: the numba ray caster vs a spline-per-beam reference.

The reference is in the style of the paper's code.

Map: the 2167x1608 DiNNO plan in ../shared/data (or a generated map of that size when absent). 1000
random free poses x 360 beams, beam length 0.2 * max(H, W). The reference evaluates a scipy
RectBivariateSpline of the image beam by beam in Python (coarse samples, fine samples around the
first hit, then the training samples: the paper's ``Lidar2D.scan``); it is timed on a subset of the
same beams.

    .venv/bin/python bench/lidar.py [--poses 1000] [--beams 360] [--repeats 7] [--ref-beams 2000]

Last line: ``rays_per_s=<n> speedup_vs_reference=<ratio>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dinno_ros.core.world.grid import GridMap  # noqa: E402, I100 (after the sys.path insert)
from dinno_ros.core.world.lidar import Lidar, LidarConfig, random_free_poses  # noqa: E402

PLAN = ROOT.parent / 'shared' / 'data' / 'floorplans' / 'dinno_32_walls.png'


def fallback_map(height: int, width: int, seed: int = 0) -> np.ndarray:
    """
    Generate a simple building (rooms with doors).

    Used when neither the plan nor the map generator exist.
    """
    rng = np.random.default_rng(seed)
    occ = np.zeros((height, width), dtype=np.uint8)
    occ[:8], occ[-8:], occ[:, :8], occ[:, -8:] = 1, 1, 1, 1
    xs = np.sort(rng.choice(np.arange(150, width - 150), 5, replace=False))
    ys = np.sort(rng.choice(np.arange(150, height - 150), 4, replace=False))
    for x in xs:
        wall = slice(x - 4, x + 4)
        occ[:, wall] = 1
        for y0, y1 in zip(np.r_[0, ys], np.r_[ys, height]):
            d = rng.integers(y0 + 20, max(y0 + 21, y1 - 40))
            occ[slice(d, d + 18), wall] = 0
    for y in ys:
        wall = slice(y - 4, y + 4)
        occ[wall, :] = 1
        for x0, x1 in zip(np.r_[0, xs], np.r_[xs, width]):
            d = rng.integers(x0 + 20, max(x0 + 21, x1 - 40))
            occ[wall, slice(d, d + 18)] = 0
    return occ.astype(bool)


def load_bench_map(height: int = 1608, width: int = 2167) -> tuple[GridMap, str]:
    """
    Load the real plan when present, else a generated map.

    The plan goes through the floorplan loader if available.
    """
    if PLAN.exists():
        try:
            from dinno_ros.core.world.floorplan import load_floorplan

            return load_floorplan(
                PLAN, resolution=0.05, kind='mask'
            ), f'{PLAN.name} (load_floorplan)'
        except ImportError:
            img = cv2.imread(str(PLAN), cv2.IMREAD_GRAYSCALE)
            return GridMap(img > 127, resolution=0.05, name=PLAN.stem), f'{PLAN.name} (threshold)'
    try:
        from dinno_ros.core.world.mapgen import generate_floorplan

        grid = generate_floorplan(kind='office', seed=0, size_px=(width, height))
        return grid, 'generated (mapgen office, seed 0)'
    except ImportError:
        return GridMap(
            fallback_map(height, width), resolution=0.05
        ), 'generated (bench fallback rooms)'


def spline_reference_scan(
    density, pos, angles, beam_len, beam_samps=25, collision_samps=50, fine_samps=3
):
    """
    Run the paper's per-beam spline lidar for one pose.

    Centred pixel coordinates, image y down.
    """
    out = []
    for a in angles:
        beam_vec = beam_len * np.array([np.cos(a), np.sin(a)]).reshape(1, -1)
        t = np.linspace(0.0, 1.0, collision_samps).reshape(-1, 1)
        coarse = pos + t * beam_vec
        vals = density.ev(coarse[:, 0], coarse[:, 1])
        k = int(np.argmax(vals >= 0.5))
        if k == 0:
            pts = pos + np.linspace(0.0, 1.0, beam_samps).reshape(-1, 1) * beam_vec
        else:
            tf = np.linspace(0.0, 1.0, fine_samps).reshape(-1, 1)
            fine = coarse[k - 1] + tf * (coarse[k] - coarse[k - 1])
            kf = int(np.argmax(density.ev(fine[:, 0], fine[:, 1]) >= 0.5))
            pts = pos + np.linspace(0.0, 1.0, beam_samps).reshape(-1, 1) * (fine[kf] - pos)
        out.append(np.concatenate([pts, density.ev(pts[:, 0], pts[:, 1]).reshape(-1, 1)], axis=1))
    return np.vstack(out)


def time_reference(
    grid: GridMap, poses: np.ndarray, angles: np.ndarray, beam_len: float, max_beams: int
):
    """Per-ray seconds of the spline reference on the first poses of the same set."""
    from scipy.interpolate import RectBivariateSpline

    img = grid.occupied.astype(float)
    ny, nx = img.shape
    xs = nx * np.linspace(-0.5, 0.5, nx)
    ys = ny * np.linspace(-0.5, 0.5, ny)
    density = RectBivariateSpline(xs, ys, img.T)
    n_poses = max(1, max_beams // len(angles))
    centred = poses[:n_poses, :2] - np.array([nx / 2, ny / 2])
    t0 = time.perf_counter()
    for i in range(n_poses):
        spline_reference_scan(density, centred[slice(i, i + 1)], -(poses[i, 2] + angles), beam_len)
    return (time.perf_counter() - t0) / (n_poses * len(angles)), n_poses * len(angles)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument('--poses', type=int, default=1000)
    ap.add_argument('--beams', type=int, default=360)
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument(
        '--ref-beams', type=int, default=2160, help='beams timed for the spline reference'
    )
    ap.add_argument(
        '--torch', action='store_true', help='also time the torch kernel on CPU (slow)'
    )
    args = ap.parse_args(argv)

    grid, source = load_bench_map()
    lidar = Lidar(grid, LidarConfig(num_beams=args.beams, beam_length=0.2))
    poses = random_free_poses(grid, args.poses, 0)
    n_rays = args.poses * args.beams
    print(f'map: {source}, {grid.width}x{grid.height} px, free {100 * grid.free.mean():.1f}%')
    print(f'{args.poses} poses x {args.beams} beams, range_max {lidar.range_max:.1f} px')

    lidar.scan(poses[:2])  # compile / load the numba cache
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        scan = lidar.scan(poses)
        times.append(time.perf_counter() - t0)
    t_med = float(np.median(times))
    rays_per_s = n_rays / t_med
    hit = scan.hit
    print(
        'numba scan (ranges, hits, hit points): '
        f'median {1e3 * t_med:.1f} ms over {args.repeats} runs '
        f'(min {1e3 * min(times):.1f}, max {1e3 * max(times):.1f}) '
        f'-> {rays_per_s / 1e6:.2f} M rays/s; '
        f'hits {100 * hit.mean():.1f}%, mean hit range {scan.ranges[hit].mean():.1f} px'
    )
    t0 = time.perf_counter()
    pts, _ = lidar.samples(poses, scan=scan)
    print(
        f'training samples from that scan ({len(pts)} points, {lidar.cfg.beam_samps}/beam): '
        f'{1e3 * (time.perf_counter() - t0):.1f} ms'
    )
    if args.torch:
        tl = Lidar(grid, lidar.cfg, device='cpu', backend='torch')
        sub = poses[: max(1, args.poses // 10)]
        t0 = time.perf_counter()
        tl.cast(sub)
        dt = time.perf_counter() - t0
        print(
            f'torch (cpu) cast: {len(sub) * args.beams / dt / 1e6:.2f} M rays/s '
            f'on {len(sub)} poses'
        )

    per_ray, n_ref = time_reference(grid, poses, lidar.angles, lidar.range_max, args.ref_beams)
    ref_rays_per_s = 1.0 / per_ray
    print(
        f'spline-per-beam reference: {n_ref} beams, {1e6 * per_ray:.1f} us/beam -> '
        f'{ref_rays_per_s:.0f} rays/s ({1e3 * per_ray * 20:.2f} ms per 20-beam scan)'
    )
    print(f'rays_per_s={rays_per_s:.0f} speedup_vs_reference={rays_per_s / ref_rays_per_s:.0f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
