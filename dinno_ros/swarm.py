"""
The pip-only runner: ``dinno-swarm CONFIG`` (or ``python -m dinno_ros.swarm``).

Starts every robot node and the monitor of a swarm config as separate processes over real DDS, with
the same plan as ``launch/swarm.launch.py``; prefixes and forwards their logs; stops them all on
Ctrl-C or when the run ends; exits non-zero if any node failed. DDS discovery stays on this host
unless the user set ``ROS_AUTOMATIC_DISCOVERY_RANGE``, on a domain id of its own unless
``ROS_DOMAIN_ID`` is set.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Sequence

from dinno_ros.core.swarm.domains import DomainLease, lease_domain
from dinno_ros.core.swarm.plan import NodeSpec, parse_robot_ids, plan_swarm
from dinno_ros.core.swarm.shm import remove_stale_segments

logger = logging.getLogger('dinno_swarm')


def swarm_environment(
    base: dict[str, str] | None = None, lease: DomainLease | None = None
) -> dict[str, str]:
    """
    Return the environment for the nodes.

    Localhost discovery and, unless ``ROS_DOMAIN_ID`` is set, the ``lease``'s domain id (one that
    no other swarm on this host holds) or a random one.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if 'ROS_DOMAIN_ID' not in env:
        domain = lease.domain_id if lease else random.SystemRandom().randint(1, 100)
        env['ROS_DOMAIN_ID'] = str(domain)
    env.setdefault('PYTHONUNBUFFERED', '1')
    env.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
    return env


@dataclass
class NodeProcess:
    node: NodeSpec
    process: subprocess.Popen
    forwarder: threading.Thread


def _forward(prefix: str, stream: IO[bytes], out: IO[str], lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b''):
        line = raw.decode(errors='replace').rstrip()
        with lock:
            out.write(f'[{prefix}] {line}\n')
            out.flush()
    stream.close()


def start_node(
    node: NodeSpec, env: dict[str, str], out: IO[str], lock: threading.Lock
) -> NodeProcess:
    """
    Start one node as ``python -m module --ros-args ...``.

    Its output is forwarded under a prefix.
    """
    cmd = [sys.executable, '-m', node.module, *node.ros_args()]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    thread = threading.Thread(
        target=_forward, args=(node.label, proc.stdout, out, lock), daemon=True
    )
    thread.start()
    return NodeProcess(node, proc, thread)


STOP_GRACE_S = 3.5  # SIGINT's grace; then SIGTERM 0.5 s, then SIGKILL: all gone within 5 s
RUNNER_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # stop the swarm like Ctrl-C


class StopRequest(KeyboardInterrupt):
    """SIGTERM or SIGHUP on the runner: stop the swarm as Ctrl-C does."""


def _request_stop(signum: int, _frame) -> None:
    raise StopRequest(signal.Signals(signum).name)


def stop_all(procs: Sequence[NodeProcess], grace: float = STOP_GRACE_S) -> None:
    """SIGINT every node still running, then SIGTERM and SIGKILL those that do not end in time."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 0.5), (signal.SIGKILL, 3.0)):
        alive = [p for p in procs if p.process.poll() is None]
        if not alive:
            return
        for p in alive:
            try:
                os.killpg(p.process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for p in alive:
            try:
                p.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


class Respawner:
    """Restarts robots whose process died, up to ``limit`` times each (``swarm.respawn``)."""

    def __init__(
        self, limit: int, env: dict[str, str], out: IO[str], lock: threading.Lock
    ) -> None:
        self.limit, self.env, self.out, self.lock = limit, env, out, lock
        self.restarts: dict[str, int] = {}

    def check(self, procs: list[NodeProcess]) -> None:
        """Replace, in ``procs``, every robot that died (non-zero exit) and may be restarted."""
        for n, p in enumerate(procs):
            code = p.process.poll()
            label = p.node.label
            if code in (None, 0) or not p.node.robots:
                continue
            if self.restarts.get(label, 0) >= self.limit:
                continue
            self.restarts[label] = self.restarts.get(label, 0) + 1
            logger.warning(
                '%s died (exit %s): restarting it (%d of %d); it rejoins the swarm',
                label,
                code,
                self.restarts[label],
                self.limit,
            )
            p.forwarder.join(timeout=2.0)
            procs[n] = start_node(p.node, self.env, self.out, self.lock)


def supervise(
    procs: list[NodeProcess],
    timeout: float | None,
    monitor_grace: float = 60.0,
    respawner: Respawner | None = None,
) -> bool:
    """
    Wait until every node ended (True) or the timeout passed (False).

    Once every robot process has ended, the others (the monitor) get ``monitor_grace`` s to finish.
    The ``respawner`` restarts robots that die meanwhile.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    robots_gone_at = None
    while any(p.process.poll() is None for p in procs):
        if respawner is not None:
            respawner.check(procs)
        now = time.monotonic()
        if deadline is not None and now > deadline:
            return False
        robots = [p for p in procs if p.node.robots]
        if robots and robots_gone_at is None and all(p.process.poll() is not None for p in robots):
            robots_gone_at = now
        if robots_gone_at is not None and now - robots_gone_at > monitor_grace:
            logger.error(
                'every robot ended %.0f s ago but other nodes still run: stopping them',
                monitor_grace,
            )
            return False
        time.sleep(0.2)
    return True


def run_swarm(
    nodes: Sequence[NodeSpec],
    env: dict[str, str],
    timeout: float | None = None,
    out: IO[str] = sys.stdout,
    respawn: int = 0,
) -> dict[str, int]:
    """
    Start the nodes, wait for them, stop them on Ctrl-C or timeout.

    Robots that die are restarted up to ``respawn`` times each. Return each node's exit code (a
    restarted robot's: its last process's).
    """
    lock = threading.Lock()
    procs: list[NodeProcess] = []
    interrupted = False
    env = {**env, 'DINNO_PARENT_PID': str(os.getpid())}  # nodes stop if the runner dies
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _request_stop) for sig in RUNNER_SIGNALS}
    remove_stale_segments()  # of killed nodes of earlier runs: they hold memory
    try:
        for node in nodes:
            procs.append(start_node(node, env, out, lock))
        respawner = Respawner(respawn, env, out, lock) if respawn else None
        if not supervise(procs, timeout, respawner=respawner):
            logger.error('the swarm did not end normally (timeout %s s): stopping it', timeout)
            interrupted = True
    except KeyboardInterrupt as exc:
        logger.info('%s: stopping the swarm', exc.args[0] if exc.args else 'Ctrl-C')
        interrupted = True
    finally:
        for sig in previous:  # a second signal during the stop must not cut it short
            signal.signal(sig, signal.SIG_IGN)
        stop_all(procs)
        for p in procs:
            p.forwarder.join(timeout=5.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = {p.node.label: p.process.returncode for p in procs}
    if interrupted:
        codes['<runner>'] = 130
    return codes


def _robot_list(text: str) -> list[int]:
    try:
        return parse_robot_ids(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'{exc}, got {text!r}') from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='dinno-swarm', description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument(
        'config', help="swarm config: a path, or a name under the package's share/config"
    )
    parser.add_argument('--num-robots', type=int, help='override the number of robots')
    parser.add_argument('--rounds', type=int, help='override the number of rounds')
    parser.add_argument('--robots', type=_robot_list, help='start only these robots (e.g. 0,1,2)')
    parser.add_argument(
        '--no-monitor', action='store_true', help='do not start the monitor on this host'
    )
    parser.add_argument(
        '--results-dir', type=Path, help="write the monitor's results here (default: the config's)"
    )
    parser.add_argument(
        '--timeout', type=float, help='stop the swarm after this many seconds (exit non-zero)'
    )
    parser.add_argument(
        '--viz',
        type=Path,
        metavar='OUT_DIR',
        help='render the swarm to PNG frames and an animation',
    )
    parser.add_argument(
        '--dry-run', action='store_true', help='validate the config and print the plan only'
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format='[dinno-swarm] %(message)s')
    args = build_parser().parse_args(argv)
    try:
        plan = plan_swarm(
            args.config,
            num_robots=args.num_robots,
            rounds=args.rounds,
            robots=args.robots,
            monitor=not args.no_monitor,
            results_dir=args.results_dir.resolve() if args.results_dir else None,
        )
    except (ValueError, FileNotFoundError) as exc:
        logger.error('bad config: %s', exc)
        return 2
    nodes = list(plan.nodes)
    if args.viz:
        nodes.append(plan_viz_node(plan, args.viz))
    lease = None if 'ROS_DOMAIN_ID' in os.environ or args.dry_run else lease_domain()
    env = {**swarm_environment(lease=lease), **plan.env}
    logger.info(
        '%s: %d robots, %d rounds, ROS_DOMAIN_ID=%s, discovery %s, swarm %s',
        plan.spec.path.name,
        plan.spec.num_robots,
        plan.spec.rounds,
        env['ROS_DOMAIN_ID'],
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'],
        env.get('DINNO_SWARM_ID', '?'),
    )
    if args.dry_run:
        for node in nodes:
            print(node.label, ' '.join(node.ros_args()))
        return 0
    codes = run_swarm(nodes, env, timeout=args.timeout, respawn=plan.spec.section.respawn)
    failed = {label: code for label, code in codes.items() if code != 0}
    if failed:
        logger.error('failed: %s', ', '.join(f'{k} (exit {v})' for k, v in failed.items()))
        return 1
    logger.info('all %d nodes exited 0', len(codes))
    return 0


def plan_viz_node(plan, out_dir: Path) -> NodeSpec:
    """
    Return the matplotlib viewer node that renders the swarm to PNG frames.

    See dinno_ros.ros.viz_node.
    """
    params = {
        'num_robots': plan.spec.num_robots,
        'rounds': plan.spec.rounds,
        'out_dir': str(out_dir.resolve()),
    }
    return NodeSpec('viz_node', 'dinno_ros.ros.viz_node', 'viz', '', params)


if __name__ == '__main__':
    raise SystemExit(main())
