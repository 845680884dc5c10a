"""How many CPU threads a process's kernels use (torch's and numba's parallel loops)."""

from __future__ import annotations

import numba
import torch


def limit_threads(n: int) -> None:
    """
    Use at most ``n`` threads in torch ops and numba ``prange`` loops.

    A swarm runs a process per robot: idle OpenMP workers of one process spin-wait on the cores
    the others train on (measured: 1750 ms per lidar round with numba's default of one worker per
    core, 330 ms with one thread; ``bench/swarm_overhead.py``).
    """
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
