"""
One robot of the swarm as a ROS 2 node (namespace ``robot_<i>``).

Messages in, core calls, messages out. Each round k (synchronous, see
``dinno_ros.core.learning.round``): drive and scan (``RobotAgent.begin_round``), publish ``state``
and the optimizer's ``weights``, wait for the neighbours' round-k weights (or the timeout), step
the optimizer (``RobotAgent.finish_round``). Training runs on the main thread and the executor
receives on its own thread, so a step never blocks receiving.

Topics (relative to the namespace): ``weights`` (dinno_msgs/Weights), ``params`` (the same type,
for the monitor, only when the optimizer's vectors do not carry the parameters), ``state``
(dinno_msgs/RobotState), ``scan`` (sensor_msgs/LaserScan), ``pose`` (geometry_msgs/PoseStamped),
``path`` (nav_msgs/Path), ``markers`` (visualization_msgs/MarkerArray); it subscribes to
``/robot_<j>/weights`` and ``/robot_<j>/state``.
"""

from __future__ import annotations

import signal
import threading
import time

from dinno_msgs.msg import ResendRequest, RobotState, SwarmMetrics, Weights
from dinno_ros.core.learning.agent import Observation
from dinno_ros.core.learning.round import KEEP_PARAMS, StateReport
from dinno_ros.core.swarm.auth import swarm_gate
from dinno_ros.core.swarm.plan import robot_namespace
from dinno_ros.core.swarm.results import write_robot_final
from dinno_ros.core.swarm.rounds import RobotRounds
from dinno_ros.core.swarm.spec import default_swarm_id, load_swarm
from dinno_ros.core.threads import limit_threads
from dinno_ros.core.weights_cdr import WeightsFrame
from dinno_ros.core.wire import max_message_bytes, PackedTensors, WireError
from dinno_ros.ros import codec, inbound, qos, viz_msgs
from dinno_ros.ros.lifecycle import run_node
from rclpy.node import Node
from rclpy.parameter import Parameter

MONITOR_GONE_S = 3.0  # a finished robot waits this long for a monitor that no longer publishes


class RobotNode(Node):
    """One robot of the swarm as a ROS 2 node (namespace ``robot_<i>``)."""

    def __init__(self, robot_id: int | None = None) -> None:
        """
        Make the node; ``robot_id`` (several robots in one process) also sets its namespace.

        Without it, the ``robot_id`` parameter says which robot this is and the namespace comes
        from the command line (``__ns``), as ``ros2 run`` and a launch ``Node`` give it.
        """
        if robot_id is None:
            super().__init__('robot')
        else:
            super().__init__(
                'robot',
                namespace=robot_namespace(robot_id),
                parameter_overrides=[Parameter('robot_id', Parameter.Type.INTEGER, robot_id)],
            )
        config = self.declare_parameter('config', '').value
        robot_id = int(self.declare_parameter('robot_id', 0).value)
        num_robots = int(self.declare_parameter('num_robots', 0).value) or None
        rounds = int(self.declare_parameter('rounds', 0).value) or None
        self.wait_for_monitor = bool(self.declare_parameter('wait_for_monitor', False).value)
        self.results_dir = self.declare_parameter('results_dir', '').value or None
        self.spec = load_swarm(config, num_robots=num_robots, rounds=rounds)
        limit_threads(self.spec.section.torch_threads)
        self.rounds = RobotRounds(self.spec, robot_id, link=self, log=self.get_logger())
        self.robot_id = robot_id
        self.gate = swarm_gate(
            self.spec.num_robots,
            self.spec.rounds,
            default_swarm_id(self.spec),
            self.get_logger().warning,
        )
        self.credentials = self.gate.credentials
        self._make_topics()

    # topics --------------------------------------------------------------------------------------
    def _make_topics(self) -> None:
        self.weights_pub = self.create_publisher(Weights, 'weights', qos.weights())
        self.params_pub = None  # only when the optimizer sends no parameters (for the monitor)
        if 'params' not in self.rounds.inbox.vectors:
            self.params_pub = self.create_publisher(Weights, 'params', qos.weights())
        self.state_pub = self.create_publisher(RobotState, 'state', qos.state())
        motion = self.rounds.agent.motion
        self.viz = None
        if self.spec.section.publish_scans and motion is not None:
            self.viz = viz_msgs.RobotViz(self, self.robot_id, motion)
        self.monitor_round = -1
        self.monitor_seen = threading.Event()
        if self.wait_for_monitor:
            self.create_subscription(
                SwarmMetrics, '/swarm/metrics', self._on_metrics, qos.metrics()
            )
            self.create_subscription(
                ResendRequest, '/swarm/resend', self._on_resend, qos.requests()
            )
        inbound.subscribe_robots(
            self,
            self.rounds.others,
            self.gate,
            qos.weights(),
            max_message_bytes(self.rounds.round.wire.layout),
            self._on_weights,
            self._on_state,
        )

    def _on_weights(self, msg: WeightsFrame, topic_robot: int) -> None:
        sender, round_k = int(msg.sender), int(msg.round)
        header = codec.weights_header(msg)
        own = self.rounds.window_round
        if self.gate.admit(
            'weights', msg.swarm, sender, topic_robot, round_k, own, header, msg.data, msg.mac
        ):
            return
        try:
            packed = codec.packed_of(msg)
            self.rounds.round.receive(sender, round_k, msg.vector, packed, int(msg.degree))
        except WireError as exc:
            self.gate.malformed('weights', sender, round_k, exc)

    def _on_resend(self, msg: ResendRequest) -> None:
        """Send the vectors the monitor asks for again (its request signed with the swarm key)."""
        if int(msg.robot) != self.robot_id or msg.swarm != self.credentials.swarm_id:
            return
        if not self.credentials.verify(codec.resend_header(msg), b'', bytes(msg.mac)):
            self.gate.log.warn('resend', 'dropped a request to send vectors again: bad MAC')
            return
        self.rounds.round.resend_params(list(msg.rounds)[:KEEP_PARAMS])

    def _on_metrics(self, msg: SwarmMetrics) -> None:
        self.monitor_round = max(self.monitor_round, int(msg.round))
        if self.monitor_round >= self.spec.rounds:
            self.monitor_seen.set()

    def _on_state(self, msg: RobotState, topic_robot: int) -> None:
        sender, round_k = int(msg.robot_id), int(msg.round)
        header = codec.state_header(msg)
        own = self.rounds.window_round
        if self.gate.admit(
            'state', msg.swarm, sender, topic_robot, round_k, own, header, b'', msg.mac
        ):
            return
        p = msg.pose.position
        self.rounds.positions.put(
            int(msg.robot_id), int(msg.round), (p.x, p.y), bool(msg.finished)
        )

    # RobotLink: what RobotRounds sends -------------------------------------------------------
    def send_weights(self, round_k: int, vector: str, packed: PackedTensors, degree: int) -> None:
        """Publish one optimizer vector on ``weights`` (nothing once the node shuts down)."""
        if not self.context.ok():
            return
        stamp = self.get_clock().now().to_msg()
        raw = codec.weights_bytes(
            packed,
            sender=self.robot_id,
            round_k=round_k,
            degree=degree,
            vector=vector,
            stamp=stamp,
            credentials=self.credentials,
        )
        self.weights_pub.publish(raw)

    def send_params(self, round_k: int, packed: PackedTensors) -> None:
        """Publish the parameters on ``params``, which only the monitor reads."""
        if self.params_pub is None:
            self.params_pub = self.create_publisher(Weights, 'params', qos.weights())
        stamp = self.get_clock().now().to_msg()
        raw = codec.weights_bytes(
            packed,
            sender=self.robot_id,
            round_k=round_k,
            degree=0,
            stamp=stamp,
            credentials=self.credentials,
        )
        self.params_pub.publish(raw)

    def send_state(self, state: StateReport) -> None:
        """Publish the robot's state on ``state``."""
        stamp = self.get_clock().now().to_msg()
        self.state_pub.publish(codec.state_msg(self.robot_id, state, stamp, self.credentials))

    def show_observation(self, observation: Observation) -> None:
        """Publish the scan, pose, path and markers for RViz (when ``publish_scans``)."""
        if self.viz is not None:
            self.viz.publish(observation, self.get_clock().now().to_msg())

    # training ------------------------------------------------------------------------------------
    def work(self, stop: threading.Event) -> bool:
        """Run every round on the main thread; True when the last one is done."""
        self._wait_for_subscribers()
        self.rounds.run()
        if self.rounds.stopped:
            return False
        if self.wait_for_monitor and not self._wait_for_monitor():
            out = write_robot_final(
                self.spec,
                self.robot_id,
                self.rounds.agent.params(),
                self.rounds.summary(),
                self.credentials.swarm_id,
                self.results_dir,
            )
            self.get_logger().warning(
                f'the monitor did not report the last round: final weights and summary in {out}'
            )
        return True

    def _wait_for_monitor(self) -> bool:
        """
        Wait until the monitor reported the last round; False when it did not.

        The monitor may still need our last vectors (transient local lives as long as we do). Waits
        up to ``startup_timeout``, less once the monitor is gone (no publisher of its metrics).
        """
        deadline = time.monotonic() + self.spec.section.startup_timeout
        gone_since = None
        while not self.monitor_seen.wait(timeout=0.5):
            now = time.monotonic()
            if self.count_publishers('/swarm/metrics') == 0:
                gone_since = gone_since or now
            else:
                gone_since = None
            if now > deadline or (gone_since is not None and now - gone_since > MONITOR_GONE_S):
                return False
        return True

    def _wait_for_subscribers(self) -> None:
        """
        Before round 0, wait until every other robot listens to our weights and state.

        The monitor too, when one is planned (and to our ``params``, when we publish them): a
        monitor that matched our state late would report round 0 without our pose. And until we
        hear every other robot's ``state`` publisher: a restarted robot then listens for the
        swarm's rounds (``RobotRounds.join``, 1 s) with its own subscriptions matched.
        """
        expected = self.spec.num_robots - 1 + (1 if self.wait_for_monitor else 0)
        monitor_params = 1 if self.wait_for_monitor and self.params_pub is not None else 0
        state_topics = [f'/{robot_namespace(j)}/state' for j in self.rounds.others]

        def listening() -> bool:
            params = self.params_pub.get_subscription_count() if self.params_pub else 0
            return (
                self.weights_pub.get_subscription_count() >= expected
                and self.state_pub.get_subscription_count() >= expected
                and params >= monitor_params
                and all(self.count_publishers(topic) for topic in state_topics)
            )

        deadline = time.monotonic() + self.spec.section.startup_timeout
        while not listening() and time.monotonic() < deadline:
            if self.rounds.stopped:
                return
            time.sleep(0.05)
        got = self.weights_pub.get_subscription_count()
        if not listening():
            self.get_logger().warning(
                f'starting with {got} of {expected} listeners after '
                f'{self.spec.section.startup_timeout:.0f} s'
            )

    def close(self) -> None:
        self.rounds.stop()
        self.monitor_seen.set()


def main(args: list[str] | None = None) -> int:
    # training runs on the main thread; one executor thread receives (never blocked by a step:
    # the callbacks only decode and file); lifecycle.make_executor says which executor. A robot
    # whose runner died has nothing to save: the kernel SIGKILLs it
    return run_node('robot_node', RobotNode, args, orphan_signal=signal.SIGKILL)


if __name__ == '__main__':
    raise SystemExit(main())
