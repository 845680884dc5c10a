"""Per-robot decentralized optimizers (registered by name: dinno, dsgd, dsgt)."""

from __future__ import annotations

from .base import DivergedError, FlatParameters, LocalProblem, NeighborMessage, RobotOptimizer
from .dinno import DiNNO, DiNNOConfig
from .dsgd import DSGD, DSGDConfig
from .dsgt import DSGT, DSGTConfig

__all__ = [
    'DiNNO',
    'DiNNOConfig',
    'DivergedError',
    'DSGD',
    'DSGDConfig',
    'DSGT',
    'DSGTConfig',
    'FlatParameters',
    'LocalProblem',
    'NeighborMessage',
    'RobotOptimizer',
]
