"""
The batched offline runner: all robots of a pair in one stacked model (issue 9).

:func:`make_swarm` returns it when the optimizer (dinno, dsgd, dsgt) and the problem (tensor data,
alike float32 models) allow, else the per-robot :class:`~..simulation.OfflineSwarm`.
"""

from __future__ import annotations

from .swarm import BatchedSwarm, check_runner, make_swarm, RUNNERS

__all__ = ['BatchedSwarm', 'check_runner', 'make_swarm', 'RUNNERS']
