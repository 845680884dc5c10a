"""
Shared test set-up: DDS stays on this host, on a domain id of each test's own.

Every process a test starts carries ``DINNO_TEST_TAG`` in its environment; after the test, any
process still running with that tag is killed and the test fails. ``Processes`` starts commands
with a hard timeout that kills them and fails with their last log lines.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
from pathlib import Path
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Sequence

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
CONFIGS = Path(__file__).resolve().parent / 'configs'

# Anything that starts rclpy in the test process itself stays on this host too.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
_DOMAINS = itertools.count(random.SystemRandom().randrange(0, 100))


def next_domain_id() -> int:
    """Return a domain id for one test (1..200), different from its neighbours in the same run."""
    return 1 + (os.getpid() % 50 + next(_DOMAINS) * 7) % 200


TAG = 'DINNO_TEST_TAG'
_TAGS = itertools.count()


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``DINNO_TEST_TAG=tag``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(TAG) == tag:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def kill_tagged(tag: str) -> list[str]:
    """SIGKILL every process of this tag; their command lines, for the failure message."""
    procs = tagged_processes(tag)
    names = []
    for proc in procs:
        try:
            names.append(' '.join(proc.cmdline())[:160])
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=5)
    return names


@pytest.fixture
def ros_env(request):
    """
    Yield the environment for node processes: localhost discovery and a domain of this test's own.

    The test must be marked ``dds`` (``-m "not dds"`` leaves such tests out). After the test, no
    process started with this environment may still run.
    """
    if request.node.get_closest_marker('dds') is None:
        pytest.fail(
            f'{request.node.nodeid} starts DDS processes (ros_env) but is not marked dds: add '
            '@pytest.mark.dds, or pytestmark = pytest.mark.dds to its module',
            pytrace=False,
        )
    env = dict(os.environ)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(next_domain_id())
    env['PYTHONUNBUFFERED'] = '1'
    from dinno_ros.core.swarm.plan import dds_env

    env.update(dds_env(env))  # the package's Fast DDS profile, as the runner and launch file set
    env[TAG] = f'{os.getpid()}-{next(_TAGS)}'
    yield env
    deadline = time.monotonic() + 10.0  # processes that are on their way out get a moment
    while tagged_processes(env[TAG]) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = kill_tagged(env[TAG])
    assert not left, 'processes left running after the test (killed now):\n' + '\n'.join(left)


class Processes:
    """Commands started for one test; each with its output collected and a hard timeout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[tuple[subprocess.Popen, list[str]]] = []

    def start(
        self, cmd: Sequence[str], cwd: Path | None = None
    ) -> tuple[subprocess.Popen, list[str]]:
        """
        Start ``cmd`` in a process group of its own.

        Its merged output lines collect in a list.
        """
        proc = subprocess.Popen(
            list(map(str, cmd)),
            env=self.env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        threading.Thread(
            target=lambda: lines.extend(iter(proc.stdout.readline, '')), daemon=True
        ).start()
        self.started.append((proc, lines))
        return proc, lines

    def wait(self, proc: subprocess.Popen, lines: list[str], timeout: float) -> int:
        """
        Return its exit code.

        Past ``timeout`` s everything of this test is killed and the test fails.
        """
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tagged(self.env[TAG])
            proc.kill()
            pytest.fail(f'still running after {timeout:.0f} s; last lines:\n{tail(lines)}')
        time.sleep(0.2)  # let the reader take the last lines
        return code

    def run(self, cmd: Sequence[str], timeout: float, cwd: Path | None = None) -> tuple[int, str]:
        """Start ``cmd`` and wait for it: (exit code, whole output)."""
        proc, lines = self.start(cmd, cwd)
        code = self.wait(proc, lines, timeout)
        return code, ''.join(lines)

    def stop_all(self, grace: float = 10.0) -> None:
        """Ctrl-C every started command still running; SIGKILL what outlives ``grace`` s."""
        running = [proc for proc, _ in self.started if proc.poll() is None]
        for proc in running:
            self.interrupt(proc)
        for proc in running:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def interrupt(self, proc: subprocess.Popen) -> None:
        """Ctrl-C as a terminal sends it: SIGINT to the process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)


def tail(lines: list[str], n: int = 60) -> str:
    return ''.join(collections.deque(lines, maxlen=n))


def wait_for_line(lines: list[str], pattern: str, proc, timeout: float) -> None:
    """Wait until a line of ``proc``'s output matches ``pattern``; fail if it ends or times out."""
    deadline = time.monotonic() + timeout
    while not any(re.search(pattern, line) for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f'no line matching {pattern!r}; last lines:\n{tail(lines)}')
        time.sleep(0.2)


@pytest.fixture
def processes(ros_env):
    """Start commands for this test; whatever still runs at its end gets Ctrl-C, then SIGKILL."""
    procs = Processes(ros_env)
    yield procs
    procs.stop_all()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f'shared data absent: {SHARED_DATA}')
    return SHARED_DATA


LAUNCH_STACK_HINT = (
    'the ROS 2 launch stack is not installed: run `make setup` with '
    '../shared/vendor/ros2-launch present (or DINNO_ROS2_LAUNCH=/path/to/it), '
    'or source a ROS 2 install that has launch_ros, launch_pytest and ros2cli'
)


def ros2_cli() -> list[str]:
    """
    Return the ``ros2`` command of this environment, or skip.

    The one beside this Python, else the one on PATH.
    """
    pytest.importorskip('ros2cli', reason=LAUNCH_STACK_HINT)
    pytest.importorskip('launch_ros', reason=LAUNCH_STACK_HINT)
    beside = Path(sys.executable).parent / 'ros2'
    found = str(beside) if beside.is_file() else shutil.which('ros2')
    if found is None:
        pytest.skip(LAUNCH_STACK_HINT)
    return [found]


def pytest_collection_modifyitems(items) -> None:
    """Name each ``fault`` test's fault kind in the JUnit report (``bench/faults.py`` reads it)."""
    for item in items:
        marker = item.get_closest_marker('fault')
        if marker is not None:
            item.user_properties.append(('fault', marker.args[0]))
