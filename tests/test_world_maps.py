"""Map files, floorplan conversion, the map generator, rendering and the dinno-map CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
from dinno_ros.core.world.floorplan import load_floorplan
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.map_io import load_map, save_map
from dinno_ros.core.world.mapgen import generate_floorplan, generate_layout
from dinno_ros.core.world.render import render_map_png
from dinno_ros.tools.map_cli import main as map_cli
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FLOORPLANS = REPO.parent / 'shared' / 'data' / 'floorplans'

# free pixels of the converted real plans, bounds read off the plans:
# F1_scaled: 71.2 m^2 apartment at ~1.05 cm/px (~650k px) plus balcony and stair landing;
# F1_original_small: the flat inside the 535x445 px outer walls minus walls and the closet;
# dinno_32_walls: the mask's free space (2.36M px) less the image frame.
REAL_PLANS = {
    'cubicasa_F1_scaled.png': ('scan', 600_000, 850_000),
    'cubicasa_F1_original_small.png': ('scan', 140_000, 210_000),
    'dinno_32_walls.png': ('mask', 2_200_000, 2_400_000),
}


def components(free: np.ndarray) -> int:
    return cv2.connectedComponents(free.astype(np.uint8), connectivity=4)[0] - 1


def reaches_free_from_corner(grid: GridMap) -> bool:
    """
    Flood fill the outside from a corner over unknown/occupied-but-not-wall space.

    Does it touch free?
    """
    outside = grid.unknown.astype(np.uint8)
    n, labels = cv2.connectedComponents(outside, connectivity=8)
    corner = labels[0, 0]
    region = labels == corner
    touching = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return bool((touching & grid.free).any())


def assert_outside_not_free(grid: GridMap) -> None:
    for border in (grid.free[0], grid.free[-1], grid.free[:, 0], grid.free[:, -1]):
        assert not border.any()
    assert grid.unknown is not None and grid.unknown[0, 0]
    assert not (grid.unknown & grid.free).any()
    assert not reaches_free_from_corner(grid)


# --- map files ----------------------------------------------------------------------------------


@pytest.mark.parametrize('fmt', ['png', 'pgm'])
def test_map_yaml_round_trip(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    occupied = rng.random((37, 53)) < 0.3
    unknown = occupied & (rng.random(occupied.shape) < 0.5)
    grid = GridMap(occupied, resolution=0.025, origin=(-1.5, 2.25, 0.1), unknown=unknown)
    image_path = save_map(grid, tmp_path / 'sub' / 'm.yaml', image_format=fmt)
    assert image_path == tmp_path / 'sub' / f'm.{fmt}'
    meta = yaml.safe_load((tmp_path / 'sub' / 'm.yaml').read_text())
    assert meta['image'] == f'm.{fmt}' and meta['mode'] == 'trinary'
    back = load_map(tmp_path / 'sub' / 'm.yaml')
    assert np.array_equal(back.occupied, grid.occupied)
    assert np.array_equal(back.unknown, grid.unknown)
    assert back.resolution == grid.resolution and back.origin == grid.origin and back.name == 'm'
    assert set(np.unique(cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED))) <= {0, 205, 254}


def write_map(tmp_path: Path, pixels: np.ndarray, **meta) -> Path:
    cv2.imwrite(str(tmp_path / 'img.png'), pixels)
    content = {
        'image': 'img.png',
        'resolution': 0.05,
        'origin': [0.0, 0.0, 0.0],
        'negate': 0,
        'occupied_thresh': 0.65,
        'free_thresh': 0.196,
        **meta,
    }
    path = tmp_path / 'map.yaml'
    path.write_text(yaml.safe_dump(content))
    return path


def test_thresholds_and_negate(tmp_path: Path) -> None:
    values = np.array([[0, 50, 100, 150, 205, 230, 254, 255]], dtype=np.uint8)
    grid = load_map(write_map(tmp_path, values))  # p = 1 - v/255: 1.0 .80 .61 .41 .196 .098 .004 0
    assert grid.occupied.tolist() == [[True, True, True, True, True, False, False, False]]
    assert grid.unknown.tolist() == [[False, False, True, True, True, False, False, False]]
    neg = load_map(write_map(tmp_path, values, negate=1))  # p = v/255
    assert neg.occupied.tolist() == [[False, True, True, True, True, True, True, True]]
    assert neg.unknown.tolist() == [[False, True, True, True, False, False, False, False]]
    loose = load_map(write_map(tmp_path, values, occupied_thresh=0.5, free_thresh=0.45))
    assert loose.occupied.tolist() == [[True, True, True, False, False, False, False, False]]
    raw = load_map(write_map(tmp_path, np.array([[0, 100, 255]], np.uint8), mode='raw'))
    assert raw.occupied.tolist() == [[False, True, True]] and raw.unknown.tolist() == [
        [False, False, True]
    ]


@pytest.mark.parametrize(
    'meta, key',
    [
        ({'resolution': -1}, 'resolution'),
        ({'origin': [0, 0]}, 'origin'),
        ({'mode': 'ternary'}, 'mode'),
        ({'negate': 2}, 'negate'),
        ({'free_thresh': 0.9}, 'free_thresh'),
        ({'occupied_thresh': 'high'}, 'occupied_thresh'),
        ({'image': None}, 'image'),
    ],
)
def test_bad_yaml_names_the_key(tmp_path: Path, meta: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        load_map(write_map(tmp_path, np.zeros((4, 4), np.uint8), **meta))


def test_missing_key_and_image(tmp_path: Path) -> None:
    path = tmp_path / 'm.yaml'
    path.write_text(yaml.safe_dump({'image': 'x.png', 'origin': [0, 0, 0]}))
    with pytest.raises(ValueError, match='resolution'):
        load_map(path)
    path.write_text(yaml.safe_dump({'image': 'nope.png', 'resolution': 0.05, 'origin': [0, 0, 0]}))
    with pytest.raises(ValueError, match='image'):
        load_map(path)


# --- real floorplans ----------------------------------------------------------------------------


@pytest.mark.parametrize('file_name', sorted(REAL_PLANS))
def test_real_floorplan_conversion(file_name: str) -> None:
    path = FLOORPLANS / file_name
    if not path.exists():
        pytest.skip(f'{path} not present')
    kind, lo, hi = REAL_PLANS[file_name]
    grid = load_floorplan(path, resolution=0.015)
    raw = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert grid.occupied.shape == raw.shape
    assert components(grid.free) == 1
    assert lo <= grid.free.sum() <= hi, grid.free.sum()
    assert_outside_not_free(grid)
    assert load_floorplan(path, kind=kind).free.sum() == grid.free.sum()  # auto detected the kind


def test_scan_text_is_not_wall() -> None:
    """The big '3H+K 71,2 m2' label in the hallway of F1_scaled must not turn into walls."""
    path = FLOORPLANS / 'cubicasa_F1_scaled.png'
    if not path.exists():
        pytest.skip(f'{path} not present')
    grid = load_floorplan(path)
    label = grid.free[930:1010, 755:800]  # the text block, between the hallway walls
    assert label.mean() > 0.9


# --- generated maps -----------------------------------------------------------------------------


@pytest.mark.parametrize('kind', ['apartment', 'office'])
def test_generated_maps(kind: str) -> None:
    for seed in range(4):
        grid = generate_floorplan(kind, seed=seed)
        again = generate_floorplan(kind, seed=seed)
        assert np.array_equal(grid.occupied, again.occupied)
        assert np.array_equal(grid.unknown, again.unknown)
        assert components(grid.free) == 1
        assert_outside_not_free(grid)
        layout = generate_layout(kind, seed=seed)
        assert len(layout.rooms) >= 4
        # closing the doors (erode free space by half a door) splits it into separate rooms
        closed = cv2.erode(grid.free.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
        assert components(closed) >= 4
    assert not np.array_equal(
        generate_floorplan(kind, seed=0).occupied, generate_floorplan(kind, seed=1).occupied
    )


def test_generated_benchmark_size() -> None:
    grid = generate_floorplan('office', seed=0, size_px=(2167, 1608))
    assert grid.occupied.shape == (1608, 2167)
    assert components(grid.free) == 1
    with pytest.raises(ValueError, match='kind'):
        generate_floorplan('castle')
    with pytest.raises(ValueError, match='size_m'):
        generate_floorplan('apartment', size_m=(4.0, 4.0))


def test_shipped_maps_load() -> None:
    yamls = sorted((REPO / 'maps').glob('*.yaml'))
    assert len(yamls) >= 3
    for path in yamls:
        grid = load_map(path)
        assert components(grid.free) == 1
        assert_outside_not_free(grid)


# --- rendering and CLI --------------------------------------------------------------------------


def test_render_and_cli(tmp_path: Path) -> None:
    grid = generate_floorplan('apartment', seed=1)
    wps = [[(3.0, 3.0), (8.0, 6.0)]]
    path = np.array([[3.0, 3.0], [5.0, 4.0], [8.0, 6.0]])
    points = grid.world_to_pixel(np.array([[[3.0, 5.0], [4.0, 3.0]]]))
    pose = np.concatenate([grid.world_to_pixel(np.array([[3.0, 3.0]])), [[0.0]]], axis=1)
    for units in ('m', 'px'):
        out = render_map_png(
            grid,
            tmp_path / f'r_{units}.png',
            waypoints=wps,
            paths=[path],
            scan=(pose, points),
            units=units,
        )
        assert cv2.imread(str(out)) is not None

    assert map_cli(['generate', '--kind', 'office', '--seed', '2', '--out', str(tmp_path)]) == 0
    assert load_map(tmp_path / 'office_2.yaml').occupied.shape == (440, 640)
    assert (
        map_cli(
            ['show', str(tmp_path / 'office_2.yaml'), '--scan', '--out', str(tmp_path / 's.png')]
        )
        == 0
    )
    assert cv2.imread(str(tmp_path / 's.png')) is not None
    shown = [
        'show',
        str(REPO / 'maps' / 'apartment_small.yaml'),
        '--paths',
        '--scan',
        '--robots',
        '2',
        '--out',
        str(tmp_path / 'p.png'),
    ]
    assert map_cli(shown) == 0 and cv2.imread(str(tmp_path / 'p.png')) is not None
    plan = FLOORPLANS / 'cubicasa_F1_original_small.png'
    if plan.exists():
        assert (
            map_cli(
                ['convert', str(plan), '--out', str(tmp_path), '--name', 'f1', '--format', 'pgm']
            )
            == 0
        )
        assert load_map(tmp_path / 'f1.yaml').free.sum() > 0
    assert map_cli(['show', str(tmp_path / 'missing.yaml'), '--out', str(tmp_path / 'x.png')]) == 2
