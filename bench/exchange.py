#!/usr/bin/env python3
"""
How fast weights travel: pack/unpack of a dinno_msgs/Weights message and a DDS round trip.

For 100k- and 1M-parameter vectors: the time to pack a message (``codec.weights_msg``) and unpack
it (``codec.values_of``, with validation), beside a plain numpy copy of the same bytes timed in the
same run; and the median round trip to an echo node in a second process over DDS (localhost
discovery, a domain id of its own). Last line:
``pack_unpack_over_copy=<ratio> roundtrip_ms_1M=<ms>`` (ratio for 1M parameters).

    .venv/bin/python bench/exchange.py [--reps 50] [--pings 50]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time

from dinno_ros.core.wire import TensorLayout
import torch

SIZES = {'100k': 100_000, '1M': 1_000_000}


def median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def pack_unpack(numel: int, reps: int) -> tuple[float, float, float]:
    from dinno_ros.ros import codec

    vec = torch.randn(numel)
    layout = TensorLayout.flat(numel)
    msg = codec.weights_msg(vec, layout, sender=0, round_k=0, degree=1)
    assert torch.equal(codec.values_of(msg, layout), vec)
    pack = median_ms(lambda: codec.weights_msg(vec, layout, sender=0, round_k=0, degree=1), reps)
    unpack = median_ms(lambda: codec.values_of(msg, layout), reps)
    arr = vec.numpy()
    copy = median_ms(lambda: arr.copy(), reps)
    return pack, unpack, copy


def echo(numel_max: int) -> None:
    """Run the second process: send every Weights on /bench/ping back on /bench/pong."""
    from dinno_msgs.msg import Weights
    from dinno_ros.ros import qos
    import rclpy

    rclpy.init()
    node = rclpy.create_node('bench_echo')
    pub = node.create_publisher(Weights, '/bench/pong', qos.weights())
    node.create_subscription(Weights, '/bench/ping', pub.publish, qos.weights())
    try:
        _spin_quietly(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _spin_quietly(node) -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        rclpy.spin(node)
    except ExternalShutdownException:
        pass


def roundtrips(sizes: dict[str, int], pings: int) -> dict[str, float]:
    from dinno_msgs.msg import Weights
    from dinno_ros.ros import codec, qos
    import rclpy

    rclpy.init()
    node = rclpy.create_node('bench_ping')
    got = threading.Event()
    node.create_subscription(Weights, '/bench/pong', lambda m: got.set(), qos.weights())
    pub = node.create_publisher(Weights, '/bench/ping', qos.weights())
    spinner = threading.Thread(target=_spin_quietly, args=(node,), daemon=True)
    spinner.start()
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 or node.count_publishers('/bench/pong') == 0:
        if time.monotonic() > deadline:
            raise RuntimeError('the echo process did not appear on DDS within 30 s')
        time.sleep(0.05)
    out = {}
    for label, numel in sizes.items():
        layout = TensorLayout.flat(numel)
        msg = codec.weights_msg(torch.randn(numel), layout, sender=0, round_k=0, degree=1)
        times = []
        for i in range(pings + 3):
            got.clear()
            t0 = time.perf_counter()
            pub.publish(msg)
            if not got.wait(10.0):
                raise RuntimeError(f'no echo of a {label} message within 10 s')
            if i >= 3:  # warm-up
                times.append(time.perf_counter() - t0)
        out[label] = 1e3 * statistics.median(times)
    rclpy.shutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--reps', type=int, default=50)
    parser.add_argument('--pings', type=int, default=50)
    parser.add_argument('--echo', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        echo(max(SIZES.values()))
        return 0
    torch.set_num_threads(1)
    os.environ.setdefault(
        'ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'
    )  # SUBNET only inside a netns of its own
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(101, 200)))
    os.environ.setdefault(
        'FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA'
    )  # as the swarm runner sets it
    ratios = {}
    for label, numel in SIZES.items():
        pack, unpack, copy = pack_unpack(numel, args.reps)
        ratios[label] = (pack + unpack) / copy
        print(
            f'{label:>5} params ({4 * numel / 1e6:.1f} MB): pack {pack:.3f} ms  unpack '
            f'{unpack:.3f} ms  '
            f'numpy copy {copy:.3f} ms  (pack+unpack)/copy {ratios[label]:.1f}'
        )
    echo_proc = subprocess.Popen([sys.executable, __file__, '--echo'], env=os.environ.copy())
    try:
        rtt = roundtrips(SIZES, args.pings)
    finally:
        echo_proc.terminate()
        echo_proc.wait(timeout=10)
    for label, ms in rtt.items():
        print(
            f'{label:>5} params: median DDS round trip to a second process {ms:.2f} ms '
            f'({args.pings} pings, ROS_DOMAIN_ID={os.environ["ROS_DOMAIN_ID"]}, '
            f'discovery range {os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]})'
        )
    print(f'pack_unpack_over_copy={ratios["1M"]:.2f} roundtrip_ms_1M={rtt["1M"]:.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
