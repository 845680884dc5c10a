"""
DSGT: decentralized stochastic gradient tracking.

Robots send their parameters and their tracker y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch

from .base import LocalProblem, NeighborMessage, PROFILE_IGNORED, RobotOptimizer
from .dsgd import mix
from ..schema import register_optimizer, spec


@dataclass(frozen=True)
class DSGTConfig:
    """The research code's ``optimizer_config`` keys for ``alg_name: dsgt``."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {'profile': PROFILE_IGNORED}

    alpha: float = spec(0.005, gt=0.0)  # step size
    init_grads: bool = (
        True  # start y and the last gradient at the first local gradient (else zeros)
    )
    outer_iterations: int = spec(2000, min=1)  # rounds


@register_optimizer('dsgt')
class DSGT(RobotOptimizer):
    """Robot i's DSGT state: tracker y_i and its last local gradient g_i."""

    config_cls = DSGTConfig
    vectors = ('params', 'tracker')

    def __init__(self, config: DSGTConfig, problem: LocalProblem) -> None:
        super().__init__(config, problem)
        self._init_tracker()

    def resume(self, round_k: int, params: torch.Tensor | None) -> None:
        """Rejoin at ``round_k``: the neighbours' mean, the tracker started there afresh."""
        super().resume(round_k, params)
        self._init_tracker()

    def _init_tracker(self) -> None:
        if self.config.init_grads:
            _, grad = self.batch_loss_and_grad()
            self.tracker = grad.clone()
            self.last_grad = grad
        else:
            self.tracker = torch.zeros_like(self.params)
            self.last_grad = torch.zeros_like(self.params)

    def outgoing(self) -> dict[str, torch.Tensor]:
        return {'params': self.params.detach().clone(), 'tracker': self.tracker.clone()}

    def step(
        self, round_k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        alpha = self.config.alpha
        vec = self.params
        with torch.no_grad():
            if neighbors:
                th_j = self.neighbor_vectors(neighbors, 'params', vec)
                y_j = self.neighbor_vectors(neighbors, 'tracker', vec)
                stepped = th_j - alpha * y_j
            else:
                y_j = stepped = None
            new_th = mix(vec - alpha * self.tracker, neighbors, 'params', degree, stepped)
            mixed_y = mix(self.tracker, neighbors, 'tracker', degree, y_j)
            vec.copy_(new_th)
        loss, grad = self.batch_loss_and_grad()
        self.tracker = mixed_y + grad - self.last_grad
        self.last_grad = grad
        return {'train_loss': loss, 'forward_passes': 1.0, 'alpha': alpha}
