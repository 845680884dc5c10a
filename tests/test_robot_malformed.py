"""A robot node fed malformed weights logs a warning, ignores them and keeps running."""

from __future__ import annotations

import copy
import subprocess
import sys
import threading
import time

from conftest import CONFIGS
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from dinno_msgs.msg import RobotState, Weights  # noqa: E402, I100
from dinno_ros.ros import qos  # noqa: E402

pytestmark = pytest.mark.dds  # a robot process and a fake robot over DDS


def corruptions(good: Weights) -> dict[str, Weights]:
    out = {}
    m = copy.deepcopy(good)
    m.data = bytes(good.data)[:-4]
    out['wrong byte count'] = m
    m = copy.deepcopy(good)
    m.dtypes = ['float128x'] + list(good.dtypes[1:])
    out['unknown dtype'] = m
    m = copy.deepcopy(good)
    shapes = list(good.shapes)
    shapes[0], shapes[1] = shapes[1], shapes[0]
    m.shapes = shapes
    out['mismatched shapes'] = m
    m = copy.deepcopy(good)
    m.data = np.full(len(good.data) // 4, np.nan, dtype=np.float32).tobytes()
    out['NaN'] = m
    for msg in out.values():
        msg.sender = 1
    return out


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.fault('malformed messages')
def test_malformed_weights_are_ignored(ros_env):
    cmd = [
        sys.executable,
        '-m',
        'dinno_ros.ros.robot_node',
        '--ros-args',
        '-r',
        '__node:=robot',
        '-r',
        '__ns:=/robot_0',
        '-p',
        f'config:={CONFIGS / "tiny_swarm.yaml"}',
        '-p',
        'robot_id:=0',
        '-p',
        'num_robots:=2',
        '-p',
        'rounds:=3',
    ]
    proc = subprocess.Popen(
        cmd, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, '')), daemon=True
    )
    reader.start()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('fake_robot_1', context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    own: list[Weights] = []
    states: list[int] = []
    node.create_subscription(Weights, '/robot_0/weights', own.append, qos.weights())
    node.create_subscription(
        RobotState, '/robot_0/state', lambda m: states.append(m.round), qos.state()
    )
    pub = node.create_publisher(Weights, '/robot_1/weights', qos.weights())
    # a peer has a state topic, as every robot does (robot_0 starts once it hears one)
    node.create_publisher(RobotState, '/robot_1/state', qos.state())
    spin = lambda: executor.spin_once(timeout_sec=0.05) or False  # noqa: E731
    try:
        assert wait_for(lambda: spin() or own, 90), (
            'robot_0 never sent its round-0 weights\n' + ''.join(lines)
        )
        warned = lambda: sum('ignored weights' in line for line in lines)  # noqa: E731
        for n, (name, bad) in enumerate(corruptions(own[0]).items(), start=1):
            pub.publish(bad)
            assert wait_for(lambda: spin() or warned() >= n, 20), (
                f'no warning for {name}\n' + ''.join(lines)
            )
        assert proc.poll() is None, 'the robot died on malformed weights'
        assert 1 not in states, 'robot_0 stepped on malformed weights'
        good = copy.deepcopy(own[0])
        good.sender = 1
        pub.publish(good)  # a valid round-0 message: robot_0 goes on to round 1
        assert wait_for(lambda: spin() or 1 in states, 30), ''.join(lines)
        warnings = [line for line in lines if 'ignored weights' in line]
        for expected in ('bytes', 'unknown dtype', 'shape', 'non-finite'):
            assert any(expected in w for w in warnings), (expected, warnings)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        node.destroy_node()
        rclpy.shutdown(context=context)
