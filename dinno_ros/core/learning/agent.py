"""
One robot: its motion along a planned path, its lidar, its local problem and its optimizer.

The same object runs inside the offline loop (:mod:`simulation`) and inside a ROS robot node. A
round::

    obs = agent.begin_round(k)            # drive to the round-k pose, scan, feed the local dataset
    msg = agent.outgoing()                # what the optimizer sends this round
    # one optimizer step with round-k messages and the robot's degree:
    info = agent.finish_round(k, {j: NeighborMessage(...)}, degree)

:mod:`dinno_ros.core.learning.round` decides the neighbours, the messages and the degree.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from typing import Mapping

from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import beam_samples, Lidar
from dinno_ros.core.world.planner import Path
import numpy as np
import torch

from .optimizers.base import DivergedError, LocalProblem, NeighborMessage, RobotOptimizer

logger = logging.getLogger(__name__)


@dataclass
class Observation:
    """
    One lidar scan of one robot at one round.

    Pixel units as the lidar's, world metres beside.
    """

    round_k: int
    pose: np.ndarray  # (x, y, yaw) world metres
    pose_px: np.ndarray  # (px, py, yaw) pixel coordinates
    ranges: np.ndarray  # [B] float32 pixels; +inf where nothing was hit
    hit: np.ndarray  # [B] bool
    points: np.ndarray  # [B, 2] float32 hit (or beam end) points, pixel coordinates
    angles: np.ndarray  # [B] float32 beam angles relative to the yaw
    range_max: float  # pixels
    samples: np.ndarray  # [B*S, 2] float32 training points, centred pixel units
    labels: np.ndarray  # [B*S] float32 occupancy labels

    def ranges_m(self, resolution: float) -> np.ndarray:
        """Ranges in metres (LaserScan semantics: +inf = no return)."""
        return self.ranges * float(resolution)

    def points_world(self, grid: GridMap) -> np.ndarray:
        """Hit points in world metres, [B, 2]."""
        return grid.pixel_to_world(self.points).astype(np.float32)


@dataclass
class RobotView:
    """
    What the metrics need of one robot.

    Taken from a live agent offline, rebuilt from its messages in the monitor.
    """

    robot_id: int
    model: torch.nn.Module
    params: torch.Tensor  # the flat parameter vector
    forward_passes: int = 0
    current_epoch: float = 0.0
    position: np.ndarray | None = None  # (x, y, yaw) world metres
    bytes_sent: int | None = None  # optimizer messages as DDS carries them, all rounds so far
    bytes_received: int | None = None  # the neighbours' messages its steps used, so far


class RobotMotion:
    """
    A robot driving a planned :class:`Path` in simulated time and scanning with its lidar.

    Round k is time ``k * dt``; past the path's end the robot goes on as the path's ``end_mode``
    says (pingpong, loop or stop). ``rng`` draws the range noise (used only when the lidar has
    noise).
    """

    def __init__(
        self, path: Path, lidar: Lidar, dt: float = 0.2, rng: np.random.Generator | None = None
    ) -> None:
        if not dt > 0:
            raise ValueError(f'routes.dt: {dt!r} out of range; allowed: > 0')
        self.path = path
        self.lidar = lidar
        self.dt = float(dt)
        self.rng = rng

    @property
    def grid(self) -> GridMap:
        return self.lidar.grid

    def pose(self, k: int) -> np.ndarray:
        """World (x, y, yaw) pose at round ``k`` (time ``k * dt``)."""
        return np.asarray(self.path.pose_at(int(k) * self.dt), dtype=np.float64)

    def observe(self, k: int) -> Observation:
        """Move to the round-k pose and scan."""
        pose = self.pose(k)
        pix = self.grid.world_to_pixel(pose[None, :2])[0]
        pose_px = np.array([pix[0], pix[1], pose[2]])
        scan = self.lidar.scan(pose_px[None, :], self.rng)
        pts, labels = beam_samples(
            pose_px[None, :], scan, self.lidar.cfg, self.grid.width, self.grid.height
        )
        return Observation(
            round_k=int(k),
            pose=pose,
            pose_px=pose_px,
            ranges=scan.ranges[0],
            hit=scan.hit[0],
            points=scan.points[0],
            angles=scan.angles,
            range_max=float(scan.range_max),
            samples=pts,
            labels=labels,
        )


class RobotAgent:
    """One robot's round: move and scan (if it moves), publish the optimizer's vectors, step."""

    def __init__(
        self,
        robot_id: int,
        problem: LocalProblem,
        optimizer: RobotOptimizer,
        motion: RobotMotion | None = None,
    ) -> None:
        self.robot_id = int(robot_id)
        self.problem = problem
        self.optimizer = optimizer
        optimizer.robot_id = self.robot_id
        self.motion = motion
        self.position: np.ndarray | None = None if motion is None else motion.pose(0)
        self.last_info: dict[str, float] = {}
        self.bytes_sent = 0  # counted by its RobotRound
        self.bytes_received = 0

    @property
    def model(self) -> torch.nn.Module:
        return self.problem.model

    def begin_round(self, k: int) -> Observation | None:
        """
        Move to the round-k pose (time k*dt) and scan.

        Adds the scan's samples to the local dataset.
        """
        if self.motion is None:
            return None
        obs = self.motion.observe(k)
        self.position = obs.pose
        add = getattr(self.problem, 'add_observation', None)
        if add is not None:
            add(obs)
        return obs

    def outgoing(self) -> dict[str, torch.Tensor]:
        """Return the flat vectors this robot sends to its neighbours for the current round."""
        return self.optimizer.outgoing()

    def finish_round(
        self, k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        """
        Take one optimizer step with the neighbours' round-k messages.

        ``degree`` is the robot's degree this round (the neighbours it waited for). Returns the
        optimizer's info.
        """
        try:
            self.last_info = dict(self.optimizer.step(k, neighbors, degree))
        except DivergedError as err:
            raise DivergedError(f'robot {self.robot_id}, round {k}: {err}') from None
        return self.last_info

    @property
    def dataset_size(self) -> int:
        """Return the samples in the robot's local dataset."""
        return len(self.problem) if hasattr(self.problem, '__len__') else 0

    def view(self) -> RobotView:
        """Return what the metrics need of this robot (a copy of its parameters)."""
        return RobotView(
            self.robot_id,
            self.model,
            self.params(),
            int(self.optimizer.forward_passes),
            float(getattr(self.problem, 'current_epoch', 0.0)),
            self.position,
            self.bytes_sent,
            self.bytes_received,
        )

    def params(self) -> torch.Tensor:
        """Return the current flat parameter vector (detached copy)."""
        return self.optimizer.params.detach().clone()
