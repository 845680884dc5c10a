"""
An adversary on a swarm's domain, as a process of its own: ``python tests/rogue.py MODE CONFIG``.

Publishes forged weights and states as robot 1, on robot 1's own topics, until SIGTERM; then
prints one JSON line: messages sent, their rate, whether the big message was acknowledged.

``forge``: noise N(0, 10) and 1e30 values, unsigned, first with no swarm id, then with the swarm
id it reads off robot 0's traffic (which is not secret); about 50 messages a second. ``bounds``:
the same as sender 999 and as robot 1 in round 2^32 - 1. ``flood``: NaN vectors with the swarm
id, ``FLOOD_RATE`` a second. ``big``: one message of ``BIG_BYTES`` at once (on a transient-local
writer of its own: every robot receives it when it subscribes).
Run with the swarm's environment (its transports: a 200 MB message needs them).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from dinno_msgs.msg import RobotState, Weights
from dinno_ros.core.learning.build import build_problem
from dinno_ros.core.swarm.spec import load_swarm
from dinno_ros.core.wire import TensorLayout
from dinno_ros.ros import codec, qos
import rclpy
from rclpy.executors import SingleThreadedExecutor
import torch

BIG_BYTES = 200_000_000
FLOOD_RATE = 2000.0  # messages a second (the flood: 1,000)


class Rogue:
    """Forged messages on robot 1's topics (see the module docstring)."""

    def __init__(self, layout: TensorLayout, mode: str) -> None:
        self.layout, self.mode, self.stop = layout, mode, threading.Event()
        self.node = rclpy.create_node('rogue')
        self.swarm = ''
        self.sent = 0
        self.flooding = False
        self.weights = self.node.create_publisher(Weights, '/robot_1/weights', qos.weights())
        self.state = self.node.create_publisher(RobotState, '/robot_1/state', qos.state())
        self.big = self.node.create_publisher(Weights, '/robot_1/weights', qos.weights())
        self.node.create_subscription(Weights, '/robot_0/weights', self._learn, 10)
        self.started = time.monotonic()

    def _learn(self, msg) -> None:
        self.swarm = msg.swarm

    def run(self) -> None:
        executor = SingleThreadedExecutor()
        executor.add_node(self.node)
        gen = torch.Generator().manual_seed(0)
        while not self.stop.is_set():
            executor.spin_once(timeout_sec=0.0 if self.mode == 'flood' else 0.5)
            if self.mode == 'forge':
                self._forge(gen, 1, range(12))
            elif self.mode == 'bounds':
                self._forge(gen, 999, range(12))
                self._forge(gen, 1, (2**32 - 1,))
            elif self.mode == 'flood' and self.swarm:
                self._flood()
            else:
                time.sleep(0.01)

    def _forge(self, gen: torch.Generator, sender: int, rounds) -> None:
        for round_k in rounds:
            noise = 10.0 * torch.randn(self.layout.numel, generator=gen)
            if round_k % 3 == 0:
                noise[0] = 1e30
            msg = codec.weights_msg(noise, self.layout, sender=sender, round_k=round_k, degree=2)
            msg.swarm = self.swarm
            self.weights.publish(msg)
            state = RobotState(robot_id=sender, round=round_k, swarm=self.swarm)
            state.pose.position.x = 1e3
            self.state.publish(state)
            self.sent += 2

    def send_big(self) -> None:
        """Publish the ``BIG_BYTES`` message; its writer keeps it for readers that match later."""
        big = Weights(sender=1, round=5)
        big.data = bytes(BIG_BYTES)
        self.big.publish(big)

    def _flood(self) -> None:
        if not self.flooding:
            self.flooding, self.started, self.sent = True, time.monotonic(), 0
        nan = torch.full((self.layout.numel,), float('nan'))
        msg = codec.weights_msg(nan, self.layout, sender=1, round_k=0, degree=2)
        msg.swarm = self.swarm
        for round_k in range(1, 13):
            msg.round = round_k
            self.weights.publish(msg)
            self.sent += 1
        ahead = self.sent / FLOOD_RATE - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)

    def report(self) -> dict:
        rate = self.sent / max(time.monotonic() - self.started, 1e-9)
        seconds = time.monotonic() - self.started
        return {
            'sent': self.sent,
            'rate': rate,
            'seconds': seconds,
            'swarm': self.swarm,
        }


def main(argv: list[str]) -> int:
    mode, config = argv
    spec = load_swarm(config)
    layout = TensorLayout.from_model(build_problem(spec.experiment, spec.pair_key).base_model())
    rclpy.init()
    rogue = Rogue(layout, mode)
    if mode == 'big':
        rogue.send_big()  # transient local: every robot gets it when it subscribes
    signal.signal(signal.SIGTERM, lambda *_: rogue.stop.set())
    print('rogue ready', flush=True)
    rogue.run()
    print(json.dumps(rogue.report()), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
