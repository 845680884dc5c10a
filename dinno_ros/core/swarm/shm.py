"""
Shared-memory files that Fast DDS processes leave behind when they are killed.

Every Fast DDS participant maps a segment (``/dev/shm/fastdds_<16 hex>``) and opens ports
(``fastdds_port<n>``), each with a lock file (``_el`` or ``_sl``) that it holds while alive. A
robot killed with SIGKILL (a fault test, an out-of-memory kill) never removes them, and they add
up: 4,800 such files held 750 MB of this machine's memory before the runner cleaned them. A file
is stale when nobody holds its lock, the rule of ``fastdds shm clean``.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
import re
import time

logger = logging.getLogger(__name__)

SHM_DIR = Path('/dev/shm')
_SEGMENT_LOCK = re.compile(r'^fastdds_[0-9a-z]{16}_el$')
_PORT_LOCK = re.compile(r'^fastdds_port\d{1,5}_(el|sl)$')
MIN_AGE_S = 30.0  # younger files may belong to a participant that is still starting


def _locked(path: Path) -> bool:
    try:
        with open(path, 'ab') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


def _stale(path: Path, now: float, min_age_s: float) -> bool:
    try:
        if now - path.stat().st_mtime < min_age_s:
            return False
    except OSError:
        return False
    return not _locked(path)


def _files_of(base: str) -> tuple[list[str], list[str]]:
    """Return the lock files and all files of the segment or port ``base``."""
    if base.startswith('fastdds_port'):
        locks = [f'{base}_el', f'{base}_sl']
        return locks, [*locks, base, f'sem.{base}_mutex']
    return [f'{base}_el'], [f'{base}_el', base]


def remove_stale_segments(shm_dir: Path = SHM_DIR, min_age_s: float = MIN_AGE_S) -> int:
    """Remove the Fast DDS segments and ports whose owner is gone; return how many files went."""
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return 0
    now, removed = time.time(), 0
    present = set(names)
    bases = {n[:-3] for n in names if _SEGMENT_LOCK.match(n) or _PORT_LOCK.match(n)}
    for base in sorted(bases):
        locks, files = _files_of(base)
        if not all(_stale(shm_dir / lock, now, min_age_s) for lock in locks if lock in present):
            continue
        for stale in (f for f in files if f in present):
            try:
                os.remove(shm_dir / stale)
                removed += 1
            except OSError:
                pass
    if removed:
        logger.info('removed %d shared-memory files of Fast DDS processes that are gone', removed)
    return removed
