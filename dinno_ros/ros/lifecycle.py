"""
How every dinno_ros node process runs: work on the main thread, the executor in its own thread.

``run_node`` starts rclpy without its signal handlers, spins the node's executor in a background
thread (subscriptions keep arriving whatever the work does) and calls the node's ``work()`` on the
main thread; ``run_nodes`` does the same for several nodes in one process (one executor, each
node's ``work()`` on a thread of its own: ``swarm.robots_per_process``). SIGINT and SIGTERM
(Ctrl-C, ``ros2 launch`` shutting down) ask the node to stop: ``close()`` wakes whatever it
waits on, ``work()`` returns at its next step, and the process exits 0 within a few seconds. A
node whose work failed, or that ended without finishing, exits 1; one that cannot start
(``NodeStartError``) says why in one line, without a traceback, and exits 1.
Every node spins :func:`make_executor`'s executor (rclpy's events executor where it exists).
The process ends with ``os._exit`` once its logs are flushed (the OS releases the node and its DDS
participant).
Started by ``dinno-swarm`` (``DINNO_PARENT_PID`` set), a node also stops when the runner dies,
even SIGKILLed: the kernel sends it ``orphan_signal`` (Linux ``PR_SET_PDEATHSIG``): SIGTERM, a
graceful stop (the monitor saves its results), or SIGKILL for robots, which have nothing to save.
Once asked to stop, a process ends within ``STOP_DEADLINE_S`` (``ORPHAN_DEADLINE_S`` when the
runner is gone) whatever hangs: the kernel ends it with SIGALRM (``signal.alarm``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from typing import Callable, NoReturn, Protocol

import rclpy
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PARENT_ENV = 'DINNO_PARENT_PID'  # set by dinno-swarm: the runner's pid
PR_SET_PDEATHSIG = 1
SPIN_PERIOD_S = 0.1  # longest wait of the executor thread before it checks for a stop
SPIN_JOIN_S = 3.0  # how long teardown waits for the executor thread
EXECUTOR_ENV = 'DINNO_EXECUTOR'  # events (default, where rclpy has it) | single
EXECUTORS = ('events', 'single')
STOP_DEADLINE_S = 10  # a stopping process ends by then (SIGALRM): ros2 launch SIGKILLs after 10 s
ORPHAN_DEADLINE_S = 5  # the same when the runner is gone (nobody waits for a graceful end)


class NodeStartError(RuntimeError):
    """A node cannot start, for a reason its message says in one line (no traceback)."""


class WorkingNode(Protocol):
    """What ``run_node`` needs of a node besides being an rclpy ``Node``."""

    def work(self, stop: threading.Event) -> bool:
        """
        Do the node's job on the main thread.

        Return True when it finished, False when it fell short.
        """
        ...

    def close(self) -> None:
        """Wake whatever ``work`` waits on (called from a signal handler: quick, no blocking)."""
        ...


def make_executor() -> Executor:
    """
    Return the executor a node process spins (``DINNO_EXECUTOR``: events | single).

    ``events``, the default where rclpy has it (``rclpy.experimental.EventsExecutor``, new in
    Kilted; elsewhere ``single``): messages are taken as they arrive, in C++. rclpy's
    SingleThreadedExecutor rebuilds its wait set from every subscription, in Python, at each
    wake-up: 16 robots in one process of a 32-robot swarm (992 subscriptions) spent 59% of
    their CPU there (``bench/swarm_scale.py``: 2,635 against 2,116 ms a round). rclpy's
    MultiThreadedExecutor is not used: it busy-polled its futures here (880 ms rounds, not 170).
    Spin it with short ``spin_once`` waits (as ``_spin`` does): the events executor's ``spin()``,
    called on a background thread, never let the main thread run again here.
    """
    choice = os.environ.get(EXECUTOR_ENV, 'events')
    if choice not in EXECUTORS:
        raise NodeStartError(
            f'{EXECUTOR_ENV}: {choice!r} not allowed; allowed: {", ".join(EXECUTORS)}'
        )
    if choice == 'events':
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:  # before Kilted: not there
            pass
        else:
            return EventsExecutor()
    return SingleThreadedExecutor()


def run_node(
    name: str,
    make_node: Callable[[], Node],
    args: list[str] | None = None,
    orphan_signal: int = signal.SIGTERM,
) -> NoReturn:
    """Run one node process; exit 0 when its work finished or a stop signal came, else 1."""
    run_nodes(name, lambda: [make_node()], args, orphan_signal)


def run_nodes(
    name: str,
    make_nodes: Callable[[], list[Node]],
    args: list[str] | None = None,
    orphan_signal: int = signal.SIGTERM,
) -> NoReturn:
    """
    Run several nodes in one process (one executor; each node's ``work`` on a thread of its own).

    Exit 0 when every node's work finished or a stop signal came, else 1. ``orphan_signal``: what
    the kernel sends when the ``dinno-swarm`` runner dies.
    """
    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger(name)
    stop = threading.Event()
    nodes: list = []

    def on_signal(signum: int, _frame) -> None:
        if not stop.is_set():
            log.info('%s: %s, stopping', name, signal.Signals(signum).name)
            arm_stop_deadline(ORPHAN_DEADLINE_S if orphaned() else STOP_DEADLINE_S)
        stop.set()
        for node in nodes:
            node.close()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    _stop_with_parent(orphan_signal, log)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    executor = spinner = None
    code = 0
    try:
        nodes.extend(make_nodes())
        executor = make_executor()
        log.info('%s: spinning %s', name, type(executor).__name__)
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(
            target=_spin, args=(executor, stop, log), name='spin', daemon=True
        )
        spinner.start()
        finished = _work_all(nodes, stop, log)
        code = 0 if finished or stop.is_set() else 1
    except NodeStartError as exc:
        log.error('%s cannot start: %s', name, exc)
        code = 1
    except Exception as exc:  # a failed node says why and exits non-zero
        log.exception('%s failed: %s', name, exc)
        code = 1
    finally:
        arm_stop_deadline(STOP_DEADLINE_S)
        stop.set()
        for node in nodes:
            node.close()
        _teardown(executor, spinner, log)
    _exit_now(code)


def _work_all(nodes: list, stop: threading.Event, log: logging.Logger) -> bool:
    """Run every node's ``work``, the first on this thread; whether all of them finished."""
    results: dict[int, bool] = {}

    def work(i: int) -> None:
        try:
            results[i] = bool(nodes[i].work(stop))
        except Exception as exc:  # one robot's failure is its own: the others go on
            log.exception('%s failed: %s', nodes[i].get_fully_qualified_name(), exc)
            results[i] = False

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, len(nodes))]
    for thread in threads:
        thread.start()
    if nodes:
        results[0] = bool(nodes[0].work(stop))
    for thread in threads:
        thread.join()
    return all(results.get(i, False) for i in range(len(nodes)))


def _exit_now(code: int) -> NoReturn:
    """
    End the process with ``code`` once every log line is out, without destroying the node.

    rclpy's ``Node.destroy_node`` once spun at full CPU, holding the GIL, after a robot's last
    round (a clean-clone CI run: the robot outlived its 300 s timeout); the operating system
    releases the node and its DDS participant as the process ends.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        ctypes.CDLL(None).fflush(None)  # rcutils logs through C stdio: flush its buffers too
    except (OSError, AttributeError):
        pass
    os._exit(code)


def orphaned() -> bool:
    """Whether this node was started by ``dinno-swarm`` and the runner is gone."""
    parent = os.environ.get(PARENT_ENV, '')
    return parent.isdigit() and os.getppid() != int(parent)


def arm_stop_deadline(seconds: int) -> None:
    """
    Have the kernel end this process (SIGALRM) ``seconds`` from now, unless already armed.

    The last word on a stop: a teardown or a callback that hangs, even holding the interpreter
    lock, cannot keep the process alive past it.
    """
    if signal.getitimer(signal.ITIMER_REAL)[0] == 0.0:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(seconds)


def _stop_with_parent(orphan_signal: int, log: logging.Logger) -> None:
    """Under ``dinno-swarm``: have the kernel send ``orphan_signal`` when the runner dies."""
    parent = os.environ.get(PARENT_ENV, '')
    if not parent.isdigit() or not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(orphan_signal), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), 'prctl(PR_SET_PDEATHSIG) failed')
    except (OSError, AttributeError) as exc:
        log.warning('cannot follow the runner (%s): this node outlives it if it dies', exc)
        return
    if os.getppid() != int(parent):  # the runner died before we asked
        os.kill(os.getpid(), orphan_signal)


def _teardown(executor, spinner, log: logging.Logger) -> None:
    """
    Stop spinning, then shut the executor down (the process then ends: see ``_exit_now``).

    In that order: the executor thread must not be in a callback when the process ends.
    """
    # a stop request from here on (a launch's shutdown) must not kill the process while the
    # interpreter finalizes: SIGINT is ignored (Python resets handlers, not SIG_IGN, to SIG_DFL);
    # SIGTERM keeps its default, the last word of whoever waits on us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if spinner is not None:
        spinner.join(timeout=SPIN_JOIN_S)
        if spinner.is_alive():
            log.warning('the executor thread did not stop in %.0f s: leaving it', SPIN_JOIN_S)
            return
    if executor is not None:
        executor.shutdown(timeout_sec=SPIN_JOIN_S)


def _spin(executor: Executor, stop: threading.Event, log: logging.Logger) -> None:
    """Run callbacks until ``stop``; each wait is short, so the thread ends soon after it."""
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except Exception as exc:
        if not stop.is_set():
            log.exception('executor stopped: %s', exc)
