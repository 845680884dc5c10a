"""
The lidar implicit-density map (the paper's mapping problem).

Robots learn occupancy from their own scans.

* Network: the paper's FourierNet: ``sin(scale * (W x + b))`` first layer (weights uniform in
  ``+-sqrt(6 / out)``), ReLU hidden layers, Sigmoid output; input ``(x, y)`` in centred pixel
  units.
* Loss: BCE on the sample points along the beams (label 1 at a hit, 0 before it).
* Data arrives as a robot drives: each round its lidar scans once and the scan's samples join a
  sliding window of its last ``dataset.window`` scans
  (:class:`~dinno_ros.core.world.datasets.OnlineScanDataset`).
* Validation (the paper's number): the sum over validation batches of the batch-mean BCE on scans
  from ``validation.num_scans`` random free poses of the whole map.

Everything is built from (config, num_nodes, seed): the map, the robots' routes (one route set for
all robots), the validation scans, and per robot its path, lidar noise stream and minibatch
generator. The problem's data is its :class:`~.world.World`, shareable between problems; a robot's
path is planned when its motion is asked for, the validation scans when first evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import math
from typing import Any, ClassVar

from dinno_ros.core.world.datasets import map_quality, OnlineScanDataset, SeenMask
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import Lidar
import numpy as np
import torch
from torch import nn

from .base import Problem, robot_generator, robot_seed
from .world import (
    LidarSection,
    MapSection,
    NOISE_STREAM,
    push_hits_into_walls,
    RoutesSection,
    ValidationSection,
    World,
)
from ..agent import RobotMotion
from ..metrics import mesh_grid_density
from ..schema import register_problem, spec

logger = logging.getLogger(__name__)

MAP_IOU_COLUMNS = (
    'miou_seen',
    'iou_occupied_seen',
    'iou_free_seen',
    'miou_map',
    'iou_occupied_map',
    'iou_free_map',
)


@dataclass(frozen=True)
class DensityModelConfig:
    """The YAML ``model:`` section of a lidar experiment."""

    shape: list[int] = spec([2, 256, 64, 64, 64, 1])  # layer widths, input 2 and output 1
    scale: float = spec(0.05, gt=0.0)  # first-layer sine frequency scale

    def validate(self, section: str = 'model') -> None:
        if len(self.shape) < 2 or self.shape[0] != 2 or self.shape[-1] != 1 or min(self.shape) < 1:
            raise ValueError(
                f'{section}.shape: {self.shape!r} not allowed; allowed: [2, ..., 1] positive '
                'widths'
            )


@dataclass(frozen=True)
class DatasetSection:
    """The YAML ``dataset:`` section."""

    window: int = spec(800, min=1)  # scans in each robot's sliding window (paper: 800)


@dataclass(frozen=True)
class DensityConfig:
    """Keys of a lidar experiment's ``experiment:`` section and a pair's batch sizes."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {
        'data_dir': 'MNIST data; the density problem learns from its own scans',
        'data_split_type': 'MNIST data; each robot learns from its own scans',
    }

    map: MapSection = field(default_factory=MapSection)  # noqa: A003 (the research YAML's key)
    model: DensityModelConfig = field(default_factory=DensityModelConfig)
    loss: str = spec('BCE', choices=('BCE',))
    lidar: LidarSection = field(default_factory=LidarSection)
    routes: RoutesSection = field(default_factory=RoutesSection)
    dataset: DatasetSection = field(default_factory=DatasetSection)
    validation: ValidationSection = field(default_factory=ValidationSection)
    mesh_stride: int = spec(8, min=1)  # pixels between mesh_grid_density points
    train_batch_size: int = spec(12500, min=1)
    val_batch_size: int = spec(10000, min=1)


class SirenLayer(nn.Module):
    """``sin(scale * (W x + b))`` with the SIREN uniform init of W."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = float(scale)
        bound = math.sqrt(6.0 / out_features)
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.scale * self.linear(x))


class DensityNet(nn.Module):
    """
    The paper's implicit density network.

    Sine first layer, ReLU hidden layers, Sigmoid output.
    """

    def __init__(
        self, shape: list[int] | tuple[int, ...] = (2, 256, 64, 64, 64, 1), scale: float = 0.05
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [SirenLayer(shape[0], shape[1], scale)]
        for i in range(1, len(shape) - 1):
            layers += [nn.ReLU(), nn.Linear(shape[i], shape[i + 1])]
        layers.append(nn.Sigmoid())
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


def bce_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean BCE of the predicted occupancy; FloatingPointError when the model outputs NaN."""
    points, labels = batch
    pred = model(points).reshape(-1)
    if not bool(torch.isfinite(pred).all()):
        raise FloatingPointError('the model outputs NaN: its activations overflowed')
    return nn.functional.binary_cross_entropy(pred, labels.reshape(-1))


@torch.no_grad()
def summed_batch_bce(
    model: nn.Module, points: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> float:
    """Return the paper's validation loss: sum over batches of the batch-mean BCE."""
    total = 0.0
    for s in range(0, len(labels), batch_size):
        e = s + batch_size
        total += float(bce_loss(model, (points[s:e], labels[s:e])))
    return total


class DensityLocalProblem:
    """
    One robot's share: its model and the sliding window of its scans.

    Minibatches come from its own generator.
    """

    def __init__(
        self,
        model: nn.Module,
        window: int,
        batch_size: int,
        generator: torch.Generator,
        samples_per_scan: int,
        beam_samps: int = 1,
        hit_depth: float = 0.0,
    ) -> None:
        self.model = model
        self.dataset = OnlineScanDataset(window=window)
        self.batch_size = int(batch_size)
        self.generator = generator
        self.samples_per_scan = int(samples_per_scan)
        self.beam_samps = int(beam_samps)
        self.hit_depth = float(hit_depth)
        self.device = next(model.parameters()).device
        self.samples_seen = 0  # training samples drawn so far

    def add_observation(self, obs: Any) -> None:
        """
        Add one scan's training samples.

        ``obs`` is an :class:`~dinno_ros.core.learning.agent.Observation`.
        """
        self.dataset.add(
            push_hits_into_walls(obs.samples, obs.labels, self.beam_samps, self.hit_depth),
            obs.labels,
        )

    def add_samples(self, points: np.ndarray, labels: np.ndarray) -> None:
        self.dataset.add(points, labels)

    def __len__(self) -> int:
        return len(self.dataset)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` samples drawn uniformly (with replacement) from the current window."""
        n = len(self.dataset)
        if n == 0:
            raise RuntimeError(
                'no scans yet: call add_observation (RobotAgent.begin_round) before training'
            )
        points, labels = self.dataset.sample(self.batch_size, self.generator)
        self.samples_seen += self.batch_size
        return points.to(self.device), labels.to(self.device)

    @property
    def current_epoch(self) -> float:
        """Return the samples drawn so far over the window's size (passes over its data)."""
        return self.samples_seen / max(len(self.dataset), 1)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return bce_loss(self.model, batch)


@register_problem('density')
class DensityProblem(Problem):
    """Distributed lidar mapping: robots drive their own routes through one floorplan."""

    config_cls = DensityConfig
    metric_names = (
        'validation_loss',
        'current_epoch',
        'mesh_grid_density',
        'current_position',
        'map_iou',
    )

    def __init__(
        self, config, num_nodes: int, seed: int = 0, device='cpu', data: World | None = None
    ) -> None:
        super().__init__(config, num_nodes, seed, device, data)
        cfg = self.config
        self.grid: GridMap = self.world.grid
        self.lidar: Lidar = self.world.lidar
        self.mesh_xs, self.mesh_ys = mesh_axes(self.grid, cfg.mesh_stride)
        self.samples_per_scan = cfg.lidar.num_beams * cfg.lidar.beam_samps

    def data_key(self) -> tuple:
        cfg = self.config
        return (cfg.map, cfg.lidar, cfg.routes, cfg.validation, self.num_nodes, self.seed)

    def build_data(self) -> World:
        """Build the problem's data: its :class:`~.world.World` (paths, validation: lazily)."""
        return World(*self.data_key())

    @property
    def world(self) -> World:
        """Return the problem's map, routes and validation scans: its ``data``."""
        return self.data

    def validation_cpu(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the validation samples and labels (the scans are rendered on first use)."""
        return torch.as_tensor(self.world.val_points), torch.as_tensor(self.world.val_labels)

    def make_model(self) -> nn.Module:
        return DensityNet(self.config.model.shape, self.config.model.scale)

    def local_problem(self, robot_id: int) -> DensityLocalProblem:
        self.check_robot(robot_id)
        return DensityLocalProblem(
            self.base_model(),
            self.config.dataset.window,
            self.config.train_batch_size,
            robot_generator(self.seed, robot_id),
            self.samples_per_scan,
            self.config.lidar.beam_samps,
            self.config.lidar.hit_depth,
        )

    def central_problem(self, window: int | None = None) -> DensityLocalProblem:
        """
        One learner fed with every robot's scans (the centralised reference).

        ``window`` defaults to N x window.
        """
        window = self.num_nodes * self.config.dataset.window if window is None else window
        return DensityLocalProblem(
            self.base_model(),
            window,
            self.config.train_batch_size,
            robot_generator(self.seed, -1),
            self.samples_per_scan,
            self.config.lidar.beam_samps,
            self.config.lidar.hit_depth,
        )

    def motion(self, robot_id: int):
        """
        Robot ``robot_id``'s :class:`~dinno_ros.core.learning.agent.RobotMotion`.

        Its path (planned now if not yet; no other robot's), lidar and noise stream.
        """
        self.check_robot(robot_id)
        rng = np.random.default_rng(robot_seed(self.seed, robot_id, NOISE_STREAM))
        return RobotMotion(self.world.path(robot_id), self.lidar, self.config.routes.dt, rng)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return {
            'validation_loss': summed_batch_bce(
                model, *self.validation_set, self.config.val_batch_size
            )
        }

    def mesh_grid_density(self, model: nn.Module) -> torch.Tensor:
        """
        Return the learned map on the mesh, CPU float32.

        Rows = image rows every ``mesh_stride`` pixels.
        """
        return mesh_grid_density(model, self.mesh_xs, self.mesh_ys)

    def true_mesh(self) -> torch.Tensor:
        """Return the true occupancy (0/1) at the mesh points."""
        s = self.config.mesh_stride
        h = s // 2
        rows, cols = len(self.mesh_ys), len(self.mesh_xs)
        return torch.as_tensor(
            self.grid.occupied[h::s, h::s][:rows, :cols],
            dtype=torch.float32,
        )

    def coverage(self) -> SeenMask:
        """Return an empty record of the mesh cells the robots' lidars have seen."""
        return SeenMask(self.grid, self.lidar, step_px=self.config.mesh_stride, num_beams=360)

    def add_coverage(self, coverage: SeenMask, poses: np.ndarray) -> None:
        """Mark what the lidar sees from these world (x, y, yaw) poses."""
        poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
        if len(poses):
            pixels = self.grid.world_to_pixel(poses[:, :2])
            coverage.add(np.column_stack([pixels, poses[:, 2]]))

    def map_iou(self, density: np.ndarray, seen: np.ndarray) -> torch.Tensor:
        """
        Return a learned map's IoUs against the true map, thresholded at 0.5, on the mesh.

        ``density`` is :meth:`mesh_grid_density`'s. ``[mIoU, IoU occupied, IoU free]`` inside
        ``seen``, then the same over the whole map (:data:`MAP_IOU_COLUMNS`).
        """
        truth = self.true_mesh().numpy() > 0.5
        values = []
        for mask in (seen, None):
            q = map_quality(density, truth, mask)
            values += [q['miou'], q['iou_occupied'], q['iou_free']]
        return torch.tensor(values, dtype=torch.float64)

    def results_extras(self) -> dict[str, Any]:
        """
        Return what a results file needs to draw the learned map.

        Mesh axes, true map, resolution.
        """
        return {
            'mesh_xs': self.mesh_xs.clone(),
            'mesh_ys': self.mesh_ys.clone(),
            'true_mesh': self.true_mesh(),
            'map_resolution': float(self.grid.resolution),
            'map_size_px': [self.grid.width, self.grid.height],
            'map_iou_columns': list(MAP_IOU_COLUMNS),
        }


def mesh_axes(grid: GridMap, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred pixel coordinates of the mesh: cell centres every ``stride`` pixels."""
    xs = (
        torch.arange(stride // 2, grid.width, stride, dtype=torch.float32) + 0.5 - grid.width / 2.0
    )
    ys = (
        torch.arange(stride // 2, grid.height, stride, dtype=torch.float32)
        + 0.5
        - grid.height / 2.0
    )
    return xs, ys
