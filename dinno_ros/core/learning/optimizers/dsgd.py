"""
DSGD: Metropolis mixing of the neighbours' round-k parameters.

Then a local stochastic gradient step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch

from .base import LocalProblem, NeighborMessage, PROFILE_IGNORED, RobotOptimizer
from ..graphs import metropolis_weights
from ..schema import register_optimizer, spec


@dataclass(frozen=True)
class DSGDConfig:
    """The research code's ``optimizer_config`` keys for ``alg_name: dsgd``."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {'profile': PROFILE_IGNORED}

    alpha0: float = spec(0.005, gt=0.0)  # initial step size
    mu: float = spec(0.001, min=0.0)  # alpha <- alpha * (1 - mu * alpha) after every round
    outer_iterations: int = spec(2000, min=1)  # rounds


def mix(
    own: torch.Tensor,
    neighbors: Mapping[int, NeighborMessage],
    vector: str,
    own_degree: int,
    stacked: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    sum_j W_ij v_j over {i} and its neighbours.

    With Metropolis weights from the messages' degrees.
    """
    if not neighbors:
        return own.clone()
    w_ii, w = metropolis_weights(own_degree, {j: m.degree for j, m in neighbors.items()})
    if stacked is None:
        stacked = RobotOptimizer.neighbor_vectors(neighbors, vector, own)
    weights = torch.tensor([w[j] for j in sorted(neighbors)], dtype=own.dtype, device=own.device)
    return w_ii * own + weights @ stacked


@register_optimizer('dsgd')
class DSGD(RobotOptimizer):
    """Robot i's DSGD state: its step size alpha."""

    config_cls = DSGDConfig

    def __init__(self, config: DSGDConfig, problem: LocalProblem) -> None:
        super().__init__(config, problem)
        self.alpha = float(config.alpha0)

    def step(
        self, round_k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        vec = self.params
        with torch.no_grad():
            vec.copy_(mix(vec, neighbors, 'params', degree))
        loss, grad = self.batch_loss_and_grad()  # at the mixed point, as the research code
        alpha = self.alpha
        with torch.no_grad():
            vec.add_(grad, alpha=-alpha)
        self.alpha = alpha * (1.0 - self.config.mu * alpha)
        return {'train_loss': loss, 'forward_passes': 1.0, 'alpha': alpha}
