#!/usr/bin/env python3
"""
How fast weights travel: pack/unpack of a dinno_msgs/Weights message and a DDS round trip.

For 100k- and 1M-parameter vectors: the time to pack a vector into the bytes a robot publishes
(``pack_vector`` + ``codec.weights_bytes``) and to unpack taken bytes (``decode_weights`` +
``codec.values_of``, with validation), beside a plain numpy copy of the same bytes timed in the
same run; and the median round trip through an echo node in a second process over DDS (localhost
discovery, a domain id of its own, the package's Fast DDS profile and malloc settings as the
runner sets them). Last line:
``pack_unpack_over_copy=<ratio> roundtrip_ms_1M=<ms>`` (ratio for 1M parameters).

    .venv/bin/python bench/exchange.py [--reps 300] [--pings 50]
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

from dinno_ros.core.swarm.plan import dds_env
from dinno_ros.core.wire import pack_vector, TensorLayout
import torch

SIZES = {'100k': 100_000, '1M': 1_000_000}
MAX_ABS = 1e6  # swarm.max_abs_value's default
WARMUP = 40  # pings before timing: more than the QoS history depth (32), whose slots fill first


def median_ms(fns: list, reps: int) -> list[float]:
    """Return each function's median time in ms, the functions called in turn (interleaved)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, spent in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return [1e3 * statistics.median(spent) for spent in times]


def pack_unpack(numel: int, reps: int) -> tuple[float, float, float]:
    """
    Time what a robot does to a vector.

    Pack it into the message bytes it publishes; unpack and validate (finite, within the swarm's
    default ``max_abs_value``) the bytes it takes.
    """
    from dinno_ros.core.weights_cdr import decode_weights
    from dinno_ros.ros import codec

    vec = torch.randn(numel)  # an optimizer's outgoing() vector: a fresh copy, handed over
    layout = TensorLayout.flat(numel)

    def pack() -> bytes:
        packed = pack_vector(vec, layout, copy=False)
        return codec.weights_bytes(packed, sender=0, round_k=0, degree=1)

    def unpack(raw: bytes) -> torch.Tensor:
        return codec.values_of(decode_weights(raw), layout, max_abs=MAX_ABS)

    raw = pack()
    assert torch.equal(unpack(raw), vec)
    arr = vec.numpy()
    pack_ms, unpack_ms, copy_ms = median_ms([pack, lambda: unpack(raw), arr.copy], reps)
    return pack_ms, unpack_ms, copy_ms


def echo(numel_max: int) -> None:
    """Run the second process: relay every message on /bench/ping back on /bench/pong as taken."""
    from dinno_msgs.msg import Weights
    from dinno_ros.ros import qos
    import rclpy

    rclpy.init()
    node = rclpy.create_node('bench_echo')
    pub = node.create_publisher(Weights, '/bench/pong', qos.weights())
    node.create_subscription(Weights, '/bench/ping', pub.publish, qos.weights(), raw=True)
    try:
        _spin_quietly(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _spin_quietly(node) -> None:
    """Spin ``node`` until shutdown as robots spin (``lifecycle.make_executor``, short waits)."""
    from dinno_ros.ros.lifecycle import make_executor, SPIN_PERIOD_S
    import rclpy
    from rclpy.executors import ExternalShutdownException

    executor = make_executor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        pass


def roundtrips(sizes: dict[str, int], pings: int) -> dict[str, tuple[float, float]]:
    """
    Return, per size, the median round trip in ms after the warm-up and during it.

    Each ping packs a vector and publishes it as a robot does; the echo relays the bytes; the
    answer is taken, parsed and validated on the node's spin thread, which wakes the waiting main
    thread (as a robot's inbox does).
    """
    from dinno_msgs.msg import Weights
    from dinno_ros.core.weights_cdr import decode_weights
    from dinno_ros.ros import codec, qos
    import rclpy

    rclpy.init()
    node = rclpy.create_node('bench_ping')
    got = threading.Event()

    def take(raw: bytes) -> None:
        codec.values_of(decode_weights(raw), None, max_abs=MAX_ABS)
        got.set()

    node.create_subscription(Weights, '/bench/pong', take, qos.weights(), raw=True)
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
        vec = torch.randn(numel)
        times = []
        for _ in range(WARMUP + pings):
            got.clear()
            t0 = time.perf_counter()
            packed = pack_vector(vec, layout, copy=False)
            pub.publish(codec.weights_bytes(packed, sender=0, round_k=0, degree=1))
            if not got.wait(10.0):
                raise RuntimeError(f'no echo of a {label} message within 10 s')
            times.append(time.perf_counter() - t0)
        warm, cold = times[WARMUP:], times[:WARMUP]
        out[label] = (1e3 * statistics.median(warm), 1e3 * statistics.median(cold))
    rclpy.shutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--reps', type=int, default=300)
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
    missing = dds_env()  # the package's Fast DDS profile and malloc settings, as the runner sets
    if missing:  # glibc reads its settings at process start: start again with them
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **missing})
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
        try:
            echo_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # seen once in about 20 runs: report, do not hang
            print('the echo process did not stop within 10 s of SIGTERM: killed', file=sys.stderr)
            echo_proc.kill()
            echo_proc.wait()
    for label, (ms, cold) in rtt.items():
        print(
            f'{label:>5} params: median DDS round trip to a second process {ms:.2f} ms '
            f'({args.pings} pings after {WARMUP}; {cold:.2f} ms during those), '
            f'ROS_DOMAIN_ID={os.environ["ROS_DOMAIN_ID"]}, '
            f'discovery range {os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]}'
        )
    print(f'pack_unpack_over_copy={ratios["1M"]:.2f} roundtrip_ms_1M={rtt["1M"][0]:.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
