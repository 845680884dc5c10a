"""
The lidar implicit-density problem.

Network, loss, online local data, robot motion, validation, maps.
"""

from __future__ import annotations

import math

from dinno_ros.core.learning.agent import RobotAgent, RobotMotion
from dinno_ros.core.learning.optimizers.base import NeighborMessage
from dinno_ros.core.learning.problems import world
from dinno_ros.core.learning.problems.density import (
    bce_loss,
    DensityLocalProblem,
    DensityNet,
    DensityProblem,
    summed_batch_bce,
)
from dinno_ros.core.learning.problems.world import load_world_map
from dinno_ros.core.learning.registry import build_optimizer
from dinno_ros.core.learning.schema import parse_dataclass
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import Lidar, LidarConfig
from dinno_ros.core.world.map_io import save_map
from dinno_ros.core.world.planner import plan_route
import numpy as np
import pytest
import torch


def box_grid() -> GridMap:
    """Build a 60 x 40 px room (0.1 m/px) with a wall stub in the middle."""
    occ = np.zeros((40, 60), dtype=bool)
    occ[:2, :] = occ[-2:, :] = True
    occ[:, :2] = occ[:, -2:] = True
    occ[10:30, 29:31] = True
    return GridMap(occ, resolution=0.1, name='box')


def problem_config(map_path: str, **over) -> dict:
    cfg = {
        'map': {'path': map_path},
        'model': {'shape': [2, 32, 16, 1], 'scale': 1.0},
        'lidar': {'num_beams': 12, 'beam_samps': 8, 'beam_length': 0.4},
        'routes': {
            'waypoints': [[[0.5, 0.5], [2.5, 3.5]], [[5.5, 3.5], [3.5, 0.5]]],
            'speed': 1.0,
            'dt': 0.2,
            'robot_radius': 0.1,
        },
        'dataset': {'window': 5},
        'validation': {'num_scans': 30},
        'mesh_stride': 4,
        'train_batch_size': 64,
        'val_batch_size': 100,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(autouse=True)
def _fresh_worlds():
    world._WORLDS.clear()
    yield
    world._WORLDS.clear()


@pytest.fixture
def map_yaml(tmp_path):
    path = tmp_path / 'box.yaml'
    save_map(box_grid(), path)
    return str(path)


def test_paper_network_shape_init_and_output():
    torch.manual_seed(0)
    net = DensityNet([2, 256, 64, 64, 64, 1], scale=0.05)
    assert sum(p.numel() for p in net.parameters()) == 25601
    first = net.seq[0]
    assert first.scale == 0.05 and first.linear.weight.abs().max() <= math.sqrt(6 / 256)
    y = net(torch.randn(100, 2) * 500)
    assert y.shape == (100, 1) and bool(((y > 0) & (y < 1)).all())
    # sine first layer: sin(scale * (W x + b))
    x = torch.randn(5, 2)
    assert torch.allclose(
        first(x), torch.sin(0.05 * (x @ first.linear.weight.T + first.linear.bias))
    )
    assert [type(m).__name__ for m in net.seq][1::2] == ['ReLU', 'ReLU', 'ReLU', 'ReLU', 'Sigmoid']


def test_validation_loss_is_the_sum_of_batch_means():
    torch.manual_seed(0)
    net = DensityNet([2, 8, 1], scale=1.0)
    x, y = torch.randn(25, 2), (torch.rand(25) > 0.7).float()
    with torch.no_grad():
        expected = sum(
            float(bce_loss(net, (x[s:e], y[s:e]))) for s, e in ((0, 10), (10, 20), (20, 30))
        )
    assert summed_batch_bce(net, x, y, 10) == pytest.approx(expected, rel=1e-6)


def test_local_problem_window_and_seeded_batches():
    def local(seed):
        torch.manual_seed(0)
        return DensityLocalProblem(
            DensityNet([2, 8, 1]),
            window=3,
            batch_size=16,
            generator=torch.Generator().manual_seed(seed),
            samples_per_scan=4,
        )

    a, b = local(5), local(5)
    with pytest.raises(RuntimeError, match='no scans yet'):
        a.next_batch()
    for k in range(5):
        pts, lab = np.full((4, 2), k, np.float32), np.array([0, 0, 0, 1], np.float32)
        a.add_samples(pts, lab)
        b.add_samples(pts, lab)
    assert len(a) == 12  # the window keeps the last 3 scans
    xa, ya = a.next_batch()
    xb, yb = b.next_batch()
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and xa.shape == (16, 2)
    assert set(xa[:, 0].tolist()) <= {2.0, 3.0, 4.0}
    assert float(a.loss((xa, ya)).detach()) > 0


def test_motion_follows_the_path_and_scans_its_pose():
    grid = box_grid()
    lidar = Lidar(grid, LidarConfig(num_beams=12, beam_samps=8))
    path = plan_route(grid, [(0.5, 0.5), (2.5, 3.5)], robot_radius_m=0.1, speed_m_s=1.0)
    motion = RobotMotion(path, lidar, dt=0.2)
    for k in (0, 3, 11):
        assert np.allclose(motion.pose(k), path.pose_at(k * 0.2))
    obs = motion.observe(3)
    assert obs.samples.shape == (12 * 8, 2) and set(np.unique(obs.labels)) <= {0.0, 1.0}
    hits = obs.points[obs.hit]
    assert len(hits) > 0
    # hit points lie on occupied cells (the entry point of the first occupied cell)
    assert (
        grid.is_free_pixel(
            hits
            + 0.01
            * (hits - obs.pose_px[:2])
            / np.linalg.norm(hits - obs.pose_px[:2], axis=1, keepdims=True)
        ).sum()
        == 0
    )
    assert np.allclose(grid.pixel_to_world(obs.pose_px[None, :2])[0], obs.pose[:2])
    with pytest.raises(ValueError, match='routes.dt'):
        RobotMotion(path, lidar, dt=0.0)


def test_problem_from_a_map_yaml(map_yaml):
    cfg = problem_config(map_yaml)
    problem = DensityProblem(cfg, num_nodes=2, seed=0)
    assert problem.grid.width == 60 and problem.grid.height == 40
    assert problem.val_points.shape == (30 * 12 * 8, 2)
    base = problem.base_model()
    again = DensityProblem(cfg, num_nodes=2, seed=0).base_model()
    assert all(torch.equal(p, q) for p, q in zip(base.parameters(), again.parameters()))
    val = problem.evaluate(base)['validation_loss']
    assert val == pytest.approx(problem.evaluate(again)['validation_loss'])
    mesh = problem.mesh_grid_density(base)
    assert mesh.shape == problem.true_mesh().shape == (10, 15)
    assert torch.equal(
        problem.true_mesh(),
        torch.as_tensor(problem.grid.occupied[2::4, 2::4], dtype=torch.float32),
    )
    assert bool((problem.true_mesh()[2:7, 7] == 1).all())  # the wall stub
    with pytest.raises(ValueError, match='robot_id 2'):
        problem.local_problem(2)


def test_agents_learn_the_map_with_dinno(map_yaml):
    problem = DensityProblem(problem_config(map_yaml), num_nodes=2, seed=0)
    agents = []
    for i in range(2):
        local = problem.local_problem(i)
        opt = build_optimizer(
            {
                'alg_name': 'dinno',
                'rho_init': 0.1,
                'outer_iterations': 40,
                'primal_iterations': 2,
                'primal_lr': 0.01,
            },
            local,
        )
        agents.append(RobotAgent(i, local, opt, problem.motion(i)))
    base_val = problem.evaluate(problem.base_model())['validation_loss']
    for k in range(40):
        obs = [a.begin_round(k) for a in agents]
        assert obs[0].round_k == k and np.allclose(agents[0].position, obs[0].pose)
        out = [a.outgoing() for a in agents]
        for i, a in enumerate(agents):
            a.finish_round(k, {1 - i: NeighborMessage(out[1 - i], 1)})
    assert len(agents[0].problem) == 5 * 12 * 8  # the window holds the last 5 scans
    final = [problem.evaluate(a.model)['validation_loss'] for a in agents]
    assert max(final) < base_val


@pytest.mark.parametrize(
    'section, expected',
    [
        ({'resolution': 0.05}, 'map.path'),
        ({'path': 'a.png', 'generate': 'office'}, 'map.path'),
        ({'generate': 'castle'}, 'map.generate'),
        ({'generate': 'office', 'size_m': [1.0]}, 'map.size_m'),
    ],
)
def test_bad_map_sections(section, expected):
    with pytest.raises(ValueError, match=expected):
        parse_dataclass(world.MapSection, section, 'map')


def test_missing_map_file_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match='map.path'):
        load_world_map(world.MapSection(path=str(tmp_path / 'nope.yaml')))


def test_hit_samples_are_pushed_inside_the_walls():
    grid = box_grid()
    lidar = Lidar(grid, LidarConfig(num_beams=16, beam_samps=6))
    poses = np.array([[15.3, 20.7, 0.3], [45.5, 8.2, -1.0]])
    pts, labels = lidar.samples(poses)
    pushed = world.push_hits_into_walls(pts, labels, 6, 0.5)
    assert pushed.shape == pts.shape
    moved = np.linalg.norm(pushed - pts, axis=1)
    assert np.allclose(moved[labels == 1], 0.5, atol=1e-4) and np.all(moved[labels == 0] == 0)
    centred = np.array([grid.width / 2, grid.height / 2])
    assert not grid.is_free_pixel(
        pushed[labels == 1] + centred
    ).any()  # every hit sample inside a wall
    assert grid.is_free_pixel(pushed[labels == 0] + centred).all()
