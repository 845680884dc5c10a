"""
The swarm's monitor as a ROS 2 node: consensus error, validation metrics, the learned map.

Subscribes to every robot's ``weights`` and ``state`` (an executor thread receives while the main
thread evaluates, so receipt never waits on an evaluation); each round (once every live robot's
vector is in) computes the consensus error, every evaluation round the validation metrics, with the
learning core's ``Evaluator`` (``dinno_ros.core.swarm.monitor``). Publishes ``/swarm/metrics``
(dinno_msgs/SwarmMetrics), ``/map`` (the true map, latched) and ``/swarm/learned_map``
(nav_msgs/OccupancyGrid); logs a line per round. Its results folder is made when it starts (a
``results_dir`` it cannot write is a one-line error then, before any round); after every
evaluation the results so far are on disk (``ResultsWriter``: a monitor killed at any point leaves
every evaluated round), before the round's log line; at the end it writes the results like the
experiment runner, plus plots, and exits.
"""

from __future__ import annotations

import math
import os
import threading
import time

from dinno_msgs.msg import ResendRequest, RobotState, SwarmMetrics, Weights
from dinno_ros.core.swarm.auth import swarm_gate
from dinno_ros.core.swarm.monitor import fmt_report, RoundReport, SwarmMonitor
from dinno_ros.core.swarm.results import ResultsDirError, ResultsWriter
from dinno_ros.core.swarm.spec import default_swarm_id, load_swarm
from dinno_ros.core.threads import limit_threads
from dinno_ros.core.weights_cdr import WeightsFrame
from dinno_ros.core.wire import max_message_bytes, TensorLayout, WireError
from dinno_ros.core.world.datasets import map_quality
from dinno_ros.ros import codec, inbound, maps, qos
from dinno_ros.ros.lifecycle import NodeStartError, orphaned, run_node
import numpy as np
from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

NAN = float('nan')
ASK_AGAIN_S = 0.5  # how often the monitor asks again for vectors that never came
EVAL_DELAY_ENV = 'DINNO_MONITOR_EVAL_DELAY_S'  # seconds added to every evaluation (tests)


class MonitorNode(Node):
    """The swarm's monitor as a ROS 2 node."""

    def __init__(self) -> None:
        super().__init__('monitor')
        config = self.declare_parameter('config', '').value
        num_robots = int(self.declare_parameter('num_robots', 0).value) or None
        rounds = int(self.declare_parameter('rounds', 0).value) or None
        self.results_dir = self.declare_parameter('results_dir', '').value or None
        self.spec = load_swarm(config, num_robots=num_robots, rounds=rounds)
        self.writer = None  # writeout: false writes nothing
        if self.spec.section.monitor.writeout:  # before anything else: a bad folder fails now
            self.writer = ResultsWriter(self.spec, self.results_dir)
            try:
                out = self.writer.start()
            except ResultsDirError as exc:
                raise NodeStartError(str(exc)) from None
            self.get_logger().info(f'results go to {out}')
        limit_threads(self.spec.section.torch_threads)
        self.monitor = SwarmMonitor(self.spec)
        self.layout = TensorLayout.from_model(self.monitor.problem.base_model())
        self.gate = swarm_gate(
            self.spec.num_robots,
            self.spec.rounds,
            default_swarm_id(self.spec),
            self.get_logger().warning,
        )
        self.credentials = self.gate.credentials
        self.metrics_pub = self.create_publisher(SwarmMetrics, '/swarm/metrics', qos.metrics())
        self.resend_pub = self.create_publisher(ResendRequest, '/swarm/resend', qos.requests())
        self.asked_at = 0.0
        self.map_pub = self.create_publisher(maps.OccupancyGrid, '/map', qos.latched())
        self.learned_pub = self.create_publisher(
            maps.OccupancyGrid, '/swarm/learned_map', qos.latched()
        )
        self.text_pub = self.create_publisher(MarkerArray, '/swarm/markers', 10)
        grid = getattr(self.monitor.problem, 'grid', None)
        if grid is not None:
            self.map_pub.publish(maps.occupancy_msg(grid, self.get_clock().now().to_msg()))
        inbound.subscribe_robots(  # params: robots whose optimizer sends none on weights
            self,
            range(self.spec.num_robots),
            self.gate,
            qos.monitor_inbox(),
            max_message_bytes(self.layout),
            self._on_weights,
            self._on_state,
            weights_topics=('weights', 'params'),
        )
        self.arrived = threading.Event()  # set by the receiving thread: something new to process
        self.eval_delay = float(os.environ.get(EVAL_DELAY_ENV, '0') or 0)  # tests: a slow monitor
        self.stop = threading.Event()  # work()'s stop flag
        self.get_logger().info(
            f'monitoring {self.spec.num_robots} robots, '
            f'{self.spec.rounds} rounds of {self.spec.pair.alg_name}'
        )

    def _admit(self, what: str, msg, sender: int, topic_robot: int, header, payload) -> bool:
        """Whether the gate takes the message (any round of the run: the monitor may lag)."""
        return not self.gate.admit(
            what, msg.swarm, sender, topic_robot, int(msg.round), None, header, payload, msg.mac
        )

    def _on_weights(self, msg: WeightsFrame, topic_robot: int) -> None:
        if msg.vector != Weights.VECTOR_PARAMS:
            return
        header = codec.weights_header(msg)
        if not self._admit('weights', msg, int(msg.sender), topic_robot, header, msg.data):
            return
        try:
            vector = codec.values_of(msg, self.layout, max_abs=self.spec.section.max_abs_value)
        except WireError as exc:
            self.gate.malformed('weights', int(msg.sender), int(msg.round), exc)
            return
        self.monitor.put_vector(int(msg.sender), int(msg.round), vector)
        self.arrived.set()

    def _on_state(self, msg: RobotState, topic_robot: int) -> None:
        header = codec.state_header(msg)
        if not self._admit('state', msg, int(msg.robot_id), topic_robot, header, b''):
            return
        p, q = msg.pose.position, msg.pose.orientation
        yaw = 2.0 * math.atan2(q.z, q.w)
        self.monitor.put_state(
            int(msg.robot_id),
            int(msg.round),
            np.array([p.x, p.y, yaw]),
            int(msg.forward_passes),
            bool(msg.finished),
            (int(msg.bytes_sent), int(msg.bytes_received)),
        )
        self.arrived.set()

    def work(self, stop: threading.Event) -> bool:
        """Report every round as it completes (main thread; receipt goes on meanwhile)."""
        self.stop = stop
        while not stop.is_set():
            self.monitor.update_lost()
            self._ask_again()
            # one round at a time: a stop (Ctrl-C, the runner gone) never waits on a backlog
            reports = self.monitor.process(limit=1)
            for report in reports:
                self._save(report)  # on disk before the round is announced
                self._publish(report)
            if self.monitor.done():
                break
            if not reports:
                self.arrived.wait(0.05)
                self.arrived.clear()
        return self._finish(interrupted=stop.is_set())

    def _save(self, r: RoundReport) -> None:
        """After an evaluation round: the results so far to disk (a failed write is logged)."""
        if self.writer is None or r.evaluation is None:
            return
        try:
            self.writer.update(self.monitor.results())
        except (OSError, RuntimeError) as exc:  # a full disk must not end the run
            self.get_logger().error(f'results of round {r.round_k} not saved: {exc}')

    def _ask_again(self) -> None:
        """Ask robots for the vectors that never came (at most every ``ASK_AGAIN_S`` s)."""
        now = time.monotonic()
        if now - self.asked_at < ASK_AGAIN_S:
            return
        self.asked_at = now
        for robot, rounds in self.monitor.wanted().items():
            stamp = self.get_clock().now().to_msg()
            self.resend_pub.publish(codec.resend_msg(robot, rounds, stamp, self.credentials))

    def _publish(self, r: RoundReport) -> None:
        if r.evaluation is not None and self.eval_delay > 0:
            self.stop.wait(self.eval_delay)  # as slow as on a loaded machine (tests)
        self.get_logger().info(fmt_report(r))
        msg = SwarmMetrics()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.round = r.round_k
        msg.consensus_error_min, msg.consensus_error_max = (
            float(r.consensus['min']),
            float(r.consensus['max']),
        )
        ev = r.evaluation or {}
        msg.validation_loss = float(ev.get('validation_loss_mean', NAN))
        msg.top1_accuracy = float(ev.get('top1_accuracy_mean', NAN))
        msg.map_accuracy, msg.map_iou = NAN, NAN
        msg.robot_ids = [int(i) for i in r.robots]
        msg.robot_consensus_error = [float(v) for v in r.consensus['average']]
        msg.robot_validation_loss = r.per_robot.get('validation_loss', [])
        msg.robot_top1_accuracy = r.per_robot.get('top1_accuracy', [])
        msg.lost_robots = [int(i) for i in r.lost]
        msg.robot_bytes_sent = [int(s) for s, _ in r.wire_bytes]
        msg.robot_bytes_received = [int(v) for _, v in r.wire_bytes]
        msg.megabytes_sent = sum(msg.robot_bytes_sent) / 1e6
        if r.evaluation is not None and hasattr(self.monitor.problem, 'mesh_grid_density'):
            quality = self._publish_learned_map(r)
            msg.map_accuracy, msg.map_iou = quality.get('accuracy', NAN), quality.get('iou', NAN)
        self.metrics_pub.publish(msg)
        self.text_pub.publish(
            maps.metrics_text(
                fmt_report(r), getattr(self.monitor.problem, 'grid', None), msg.header.stamp
            )
        )

    def _publish_learned_map(self, r: RoundReport) -> dict[str, float]:
        problem = self.monitor.problem
        robot = self.monitor.robots[r.robots[0]]
        density = problem.mesh_grid_density(robot.model).numpy()
        stamp = self.get_clock().now().to_msg()
        self.learned_pub.publish(
            maps.density_msg(density, problem.grid, problem.config.mesh_stride, stamp)
        )
        return map_quality(density, problem.true_mesh().numpy() > 0.5)

    def _finish(self, interrupted: bool) -> bool:
        """Log how the run ended, write the results; True when every robot did every round."""
        m, log = self.monitor, self.get_logger()
        shortfall = m.shortfall()
        if interrupted:
            log.warning(f'interrupted after {m.rounds_reported} of {self.spec.rounds} rounds')
        else:
            for line in shortfall:
                log.error(f'incomplete run: {line}')
        if self.writer is not None:
            try:
                # a runner that died leaves nobody to wait for the plots: results only, at once
                results = {**m.results(), 'interrupted': interrupted}
                out = self.writer.finish(results, plot=not orphaned())
            except (OSError, RuntimeError) as exc:
                log.error(f'final results not saved: {exc}')
                return False
            log.info(f'results written to {out}')
        log.info(f'monitor done: {m.rounds_reported} of {self.spec.rounds} rounds reported')
        time.sleep(0.5)  # let the last metrics message go out
        return not shortfall

    def close(self) -> None:
        self.arrived.set()


def main(args: list[str] | None = None) -> int:
    # evaluations run on the main thread, one executor thread receives meanwhile (never starved)
    return run_node('monitor_node', MonitorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
