"""Per-robot decentralized optimizers by name: choco, dinno, dsgd, dsgt, next, prox_pda."""

from __future__ import annotations

from .base import DivergedError, FlatParameters, LocalProblem, NeighborMessage, RobotOptimizer
from .choco import ChocoConfig, ChocoSGD
from .dinno import DiNNO, DiNNOConfig
from .dsgd import DSGD, DSGDConfig
from .dsgt import DSGT, DSGTConfig
from .next_sca import NEXT, NEXTConfig
from .prox_pda import ProxPDA, ProxPDAConfig

__all__ = [
    'ChocoConfig',
    'ChocoSGD',
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
    'NEXT',
    'NEXTConfig',
    'ProxPDA',
    'ProxPDAConfig',
    'RobotOptimizer',
]
