"""How every dinno_ros node process runs: init, spin until the node is done, exit code, clean shutdown."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Protocol

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node


class FinishingNode(Protocol):
    done: bool  # the node's work is over
    error: BaseException | None  # what made its work fail, if anything

    def close(self) -> None: ...  # wake whatever the node waits on (shutdown)


def run_node(
    name: str,
    make_node: Callable[[], Node],
    make_executor: Callable[[], Executor],
    args: list[str] | None = None,
) -> int:
    """Spin the node until it is done; 0 on success or Ctrl-C/SIGTERM, 1 when it failed (logged)."""
    logging.basicConfig(level=logging.INFO)
    rclpy.init(args=args)
    node = executor = None
    code = 0
    try:
        node = make_node()
        executor = make_executor()
        executor.add_node(node)
        while rclpy.ok() and not node.done:
            executor.spin_once(timeout_sec=0.2)
        if node.error is not None:
            raise node.error
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # a failed node says why and exits non-zero
        logging.getLogger(name).exception('%s failed: %s', name, exc)
        code = 1
    finally:
        if node is not None:
            node.close()
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)  # no callback may still run when the node goes away
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        exit_watchdog(code)
    return code


def exit_watchdog(code: int, grace_s: float = 15.0) -> None:
    """Make sure the process ends: if a stuck executor thread keeps the interpreter from exiting after
    ``grace_s`` seconds, leave anyway with ``code`` (the runner must never wait on a finished node)."""

    def leave() -> None:
        time.sleep(grace_s)
        logging.getLogger('lifecycle').warning(
            'threads still running %.0f s after shutdown: exiting', grace_s
        )
        os._exit(code)

    threading.Thread(target=leave, daemon=True).start()
