"""
The lidar implicit-density problem.

Network, loss, online local data, robot motion, validation, maps.
"""

from __future__ import annotations

import math

from dinno_ros.core.learning.agent import RobotAgent, RobotMotion
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
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.schema import parse_dataclass
from dinno_ros.core.learning.simulation import OfflineSwarm
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import Lidar, LidarConfig
from dinno_ros.core.world.map_io import save_map
from dinno_ros.core.world.planner import plan_route
import networkx as nx
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
    assert problem.validation_set[0].shape == (30 * 12 * 8, 2)
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
    swarm = OfflineSwarm(agents, RoundGraph(2, fixed=nx.path_graph(2)))
    for k in range(40):
        swarm.run_round(k)
        assert np.allclose(agents[0].position, agents[0].motion.pose(k))
    assert len(agents[0].problem) == 5 * 12 * 8  # the window holds the last 5 scans
    final = [problem.evaluate(a.model)['validation_loss'] for a in agents]
    assert max(final) < base_val


def test_motion_plans_only_its_robot_and_validation_waits_for_evaluate(map_yaml):
    problem = DensityProblem(problem_config(map_yaml), num_nodes=2, seed=0)
    assert problem.world.planned_robots == () and not problem.world.has_validation
    motion = problem.motion(1)
    assert problem.world.planned_robots == (1,)  # robot 0's route is never planned
    assert motion.path is problem.world.path(1)  # planned once, then kept
    problem.local_problem(1).add_observation(motion.observe(0))
    assert problem.world.planned_robots == (1,) and not problem.world.has_validation
    problem.evaluate(problem.base_model())
    assert problem.world.has_validation and problem.world.planned_robots == (1,)
    assert problem.validation_set[0].shape == (30 * 12 * 8, 2)


def test_worlds_are_not_cached_between_problems(map_yaml):
    cfg = problem_config(map_yaml)
    a, b = DensityProblem(cfg, 2, seed=0), DensityProblem(cfg, 2, seed=0)
    assert a.world is not b.world and not hasattr(world, '_WORLDS')
    assert np.array_equal(a.world.path(0).xy, b.world.paths[0].xy)
    assert np.array_equal(a.world.val_points, b.world.val_points)


def test_shared_data_is_reused_and_gives_identical_robots(map_yaml):
    first = DensityProblem(problem_config(map_yaml), num_nodes=2, seed=3)
    first.motion(0)
    second = DensityProblem(
        problem_config(map_yaml, train_batch_size=32),
        num_nodes=2,
        seed=3,
        data=first.data,
    )
    alone = DensityProblem(problem_config(map_yaml, train_batch_size=32), num_nodes=2, seed=3)
    assert second.data is first.data and second.world is first.world
    assert second.world.planned_robots == (0,)  # robot 0's path came along
    vec = torch.nn.utils.parameters_to_vector
    for i in range(2):
        shared, own = second.local_problem(i), alone.local_problem(i)
        ms, mo = second.motion(i), alone.motion(i)
        for k in (0, 3, 7):
            os_, oo = ms.observe(k), mo.observe(k)
            assert np.array_equal(os_.samples, oo.samples) and np.array_equal(os_.pose, oo.pose)
            shared.add_observation(os_)
            own.add_observation(oo)
        assert torch.equal(vec(shared.model.parameters()), vec(own.model.parameters()))
        xs, ys = shared.next_batch()
        xo, yo = own.next_batch()
        assert torch.equal(xs, xo) and torch.equal(ys, yo) and len(xs) == 32
    base = second.base_model()
    assert second.evaluate(base) == alone.evaluate(base)
    assert first.world.has_validation  # second's evaluate built it in the shared world
    with pytest.raises(ValueError, match='problem data'):
        DensityProblem(problem_config(map_yaml), num_nodes=2, seed=4, data=first.data)


def test_world_without_validation_section(map_yaml):
    cfg = parse_dataclass(world.MapSection, {'path': map_yaml}, 'map')
    routes = world.RoutesSection(waypoints=[[[0.5, 0.5], [2.5, 3.5]]], robot_radius=0.1)
    w = world.World(cfg, world.LidarSection(), routes, None, 1, 0)
    assert len(w.paths) == 1 and w.planned_robots == (0,)
    with pytest.raises(ValueError, match='robot_id 1'):
        w.path(1)
    with pytest.raises(RuntimeError, match='validation'):
        np.asarray(w.val_points)
    with pytest.raises(ValueError, match='routes.waypoints: 1 routes for 2 robots'):
        world.World(cfg, world.LidarSection(), routes, None, 2, 0)


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
