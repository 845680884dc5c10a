"""
RViz without RViz: renders the swarm to PNG frames and an animated GIF with matplotlib.

``dinno-swarm CONFIG --viz OUT_DIR`` starts it beside the swarm. It listens to the same topics as
``rviz/swarm.rviz`` (the true and learned maps, every robot's pose, path and scan hits, the
metrics) and draws a frame every ``frame_period`` seconds: the floorplan with the robots, their
paths and current scans on the left, the learned map on the right, the consensus error curve below.
When the monitor reports the last round it writes ``swarm.gif`` and exits.
"""

from __future__ import annotations

import math
from pathlib import Path
import threading

from dinno_msgs.msg import SwarmMetrics
from dinno_ros.ros import qos
from dinno_ros.ros.lifecycle import run_node
from geometry_msgs.msg import PoseStamped
from matplotlib.figure import Figure
from nav_msgs.msg import OccupancyGrid
from nav_msgs.msg import Path as PathMsg
import numpy as np
from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

PALETTE = ['#e41a1c', '#377eb8', '#4daf4a', '#984ea3', '#ff7f00', '#a65628', '#f781bf', '#666666']


def grid_image(msg: OccupancyGrid) -> tuple[np.ndarray, list[float]]:
    """Return an OccupancyGrid as an image (row 0 at the top) and its extent in metres."""
    info = msg.info
    img = np.asarray(msg.data, dtype=np.int16).reshape(info.height, info.width)[::-1]
    x0, y0 = info.origin.position.x, info.origin.position.y
    return img, [x0, x0 + info.width * info.resolution, y0, y0 + info.height * info.resolution]


class VizNode(Node):
    """Renders the swarm to PNG frames and an animated GIF with matplotlib."""

    def __init__(self) -> None:
        super().__init__('viz')
        self.num_robots = int(self.declare_parameter('num_robots', 1).value)
        self.out_dir = Path(self.declare_parameter('out_dir', 'swarm_viz').value)
        self.period = float(self.declare_parameter('frame_period', 2.0).value)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.true_map: OccupancyGrid | None = None
        self.learned: OccupancyGrid | None = None
        self.poses: dict[int, tuple[float, float, float]] = {}
        self.paths: dict[int, np.ndarray] = {}
        self.hits: dict[int, np.ndarray] = {}
        self.curve: list[tuple[int, float, float]] = []
        self.last_round = 0
        self.rounds_total: int | None = None
        self.frames: list[Path] = []
        self.finished = False
        self.create_subscription(
            OccupancyGrid, '/map', lambda m: setattr(self, 'true_map', m), qos.latched()
        )
        self.create_subscription(
            OccupancyGrid,
            '/swarm/learned_map',
            lambda m: setattr(self, 'learned', m),
            qos.latched(),
        )
        self.create_subscription(SwarmMetrics, '/swarm/metrics', self._on_metrics, qos.metrics())
        for i in range(self.num_robots):
            self.create_subscription(
                PoseStamped, f'/robot_{i}/pose', lambda m, i=i: self._on_pose(i, m), 10
            )
            self.create_subscription(
                PathMsg, f'/robot_{i}/path', lambda m, i=i: self._on_path(i, m), qos.latched()
            )
            self.create_subscription(
                MarkerArray, f'/robot_{i}/markers', lambda m, i=i: self._on_markers(i, m), 10
            )
        self.rounds_total = int(self.declare_parameter('rounds', 0).value) or None
        self.create_timer(self.period, self.render)

    def _on_pose(self, i: int, m: PoseStamped) -> None:
        q = m.pose.orientation
        self.poses[i] = (m.pose.position.x, m.pose.position.y, 2 * math.atan2(q.z, q.w))

    def _on_path(self, i: int, m: PathMsg) -> None:
        self.paths[i] = np.array(
            [[p.pose.position.x, p.pose.position.y] for p in m.poses]
        ).reshape(-1, 2)

    def _on_markers(self, i: int, m: MarkerArray) -> None:
        for marker in m.markers:
            if marker.ns == 'scan_hits':
                self.hits[i] = np.array([[p.x, p.y] for p in marker.points]).reshape(-1, 2)

    def _on_metrics(self, m: SwarmMetrics) -> None:
        with self.lock:
            self.curve.append(
                (int(m.round), float(m.consensus_error_min), float(m.consensus_error_max))
            )
            self.last_round = max(self.last_round, int(m.round))
        if self.rounds_total is not None and m.round >= self.rounds_total:
            self.render()
            self.finish()

    def render(self) -> None:
        if self.finished or self.true_map is None:
            return
        with self.lock:
            curve = list(self.curve)
        fig = Figure(figsize=(12, 7.5))  # no pyplot: frames render off the main thread
        gs = fig.add_gridspec(2, 2, height_ratios=[3, 1])
        ax_map, ax_learned, ax_curve = (
            fig.add_subplot(gs[0, 0]),
            fig.add_subplot(gs[0, 1]),
            fig.add_subplot(gs[1, :]),
        )
        img, extent = grid_image(self.true_map)
        shown = np.where(img < 0, 0.75, np.where(img > 50, 0.15, 1.0))
        ax_map.imshow(shown, cmap='gray', vmin=0, vmax=1, extent=extent, interpolation='nearest')
        for i in range(self.num_robots):
            colour = PALETTE[i % len(PALETTE)]
            if i in self.paths and len(self.paths[i]):
                ax_map.plot(
                    self.paths[i][:, 0], self.paths[i][:, 1], color=colour, lw=1, alpha=0.5
                )
            if i in self.hits and len(self.hits[i]):
                ax_map.scatter(self.hits[i][:, 0], self.hits[i][:, 1], s=4, color=colour)
            if i in self.poses:
                x, y, yaw = self.poses[i]
                ax_map.plot(x, y, 'o', color=colour, ms=8, mec='k')
                ax_map.arrow(
                    x, y, 0.6 * math.cos(yaw), 0.6 * math.sin(yaw), color=colour, width=0.05
                )
        ax_map.set_title(f'robots, paths and scans (round {self.last_round})')
        ax_map.set_xlabel('x [m]')
        ax_map.set_ylabel('y [m]')
        if self.learned is not None:
            limg, lext = grid_image(self.learned)
            ax_learned.imshow(
                limg / 100.0, cmap='magma_r', vmin=0, vmax=1, extent=lext, interpolation='nearest'
            )
        ax_learned.set_xlim(extent[0], extent[1])
        ax_learned.set_ylim(extent[2], extent[3])
        ax_learned.set_title("learned occupancy (monitor, robot 0's model)")
        r = np.array(curve).reshape(-1, 3)
        r = r[r[:, 2] > 0]  # round 0 is exact consensus (same base weights): not on a log axis
        if len(r):
            ax_curve.semilogy(r[:, 0], r[:, 2], label='consensus error (max)')
            ax_curve.semilogy(
                r[:, 0], np.where(r[:, 1] > 0, r[:, 1], np.nan), label='consensus error (min)'
            )
            ax_curve.legend(loc='upper right')
            ax_curve.grid(alpha=0.3, which='both')
        ax_curve.set_xlabel('round')
        fig.tight_layout()
        path = self.out_dir / f'frame_{len(self.frames):04d}.png'
        fig.savefig(path, dpi=80)
        self.frames.append(path)

    def work(self, stop: threading.Event) -> bool:
        """Render frames (timer, executor thread) until the last round or a stop; write the GIF."""
        while not stop.is_set() and not self.finished:
            stop.wait(0.2)
        self.finish()
        return True

    def close(self) -> None:
        pass

    def finish(self) -> None:
        with self.lock:
            if self.finished:
                return
            self.finished = True
        if self.frames:
            write_gif(self.frames, self.out_dir / 'swarm.gif')
            self.get_logger().info(
                f'wrote {len(self.frames)} frames and {self.out_dir / "swarm.gif"}'
            )


def write_gif(frames: list[Path], out: Path, ms_per_frame: int = 300) -> None:
    from PIL import Image

    images = [Image.open(f).convert('P', palette=Image.ADAPTIVE) for f in frames]
    images[0].save(out, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)


def main(args: list[str] | None = None) -> int:
    return run_node('viz_node', VizNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
