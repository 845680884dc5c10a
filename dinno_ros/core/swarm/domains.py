"""
A ROS domain id of a swarm's own: no two swarms that ``dinno-swarm`` starts on a host share one.

Each run holds an exclusive ``flock`` on ``<tmp>/dinno_ros-domains/<id>.lock`` for as long as it
runs (the kernel drops it when the process ends, even when killed), and picks, in random order, an
id whose lock is free. A ``ROS_DOMAIN_ID`` the user set is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
import fcntl
import os
from pathlib import Path
import random
import tempfile
from typing import IO, Sequence

LOCK_DIR = Path(tempfile.gettempdir()) / 'dinno_ros-domains'
DOMAIN_IDS = range(1, 101)  # 0 is everyone's default; above 101 the default ports overflow


@dataclass
class DomainLease:
    """An exclusive hold on one domain id for this process."""

    domain_id: int
    handle: IO[str]

    def release(self) -> None:
        self.handle.close()


def lease_domain(
    candidates: Sequence[int] = DOMAIN_IDS, lock_dir: Path = LOCK_DIR
) -> DomainLease:
    """Return a lease on a free domain id; RuntimeError when every candidate is taken."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    order = list(candidates)
    random.SystemRandom().shuffle(order)
    for domain_id in order:
        handle = open(lock_dir / f'{domain_id}.lock', 'a+')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f'{os.getpid()}\n')
        handle.flush()
        return DomainLease(domain_id, handle)
    raise RuntimeError(
        f'every ROS domain id in {candidates[0]}..{candidates[-1]} is held by another swarm on '
        f'this host (locks in {lock_dir}); set ROS_DOMAIN_ID to share one knowingly'
    )
