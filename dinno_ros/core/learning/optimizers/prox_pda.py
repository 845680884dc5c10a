"""
Prox-PDA: the proximal primal-dual algorithm, one robot's round.

Hong, Hajinezhad and Zhao, "Prox-PDA: The Proximal Primal-Dual Algorithm for Fast Distributed
Nonconvex Optimization and Learning Over Networks", ICML 2017. Consensus is the constraint
``A x = 0`` (A: the graph's incidence matrix, one block row per edge); the primal step, with f
linearised at x^r (one gradient per round, no inner solver), carries the proximal term of the
signless incidence matrix B::

    x^{r+1} = argmin_x <grad f(x^r), x - x^r> + <mu^r, A x> + beta/2 ||A x||^2
                       + beta/2 ||x - x^r||^2_{B^T B}
    mu^{r+1} = mu^r + beta A x^{r+1}

A^T A = L^- = D - Adj and B^T B = L^+ = D + Adj sum to 2D, so the primal step decouples: with
lambda_i = (A^T mu)_i, robot i's share of the optimality condition is
2 beta d_i x_i = beta (d_i x_i^r + sum_j x_j^r) - grad f_i(x_i^r) - lambda_i, and the dual step
is lambda_i += beta (d_i x_i - sum_j x_j) over the neighbours j.

Round k's messages hold x^k, so a round does the dual step with x^k first, then the primal step
from x^k. That is the algorithm above with mu^0 = beta A x^0, which lies in the column space of A
as the paper's analysis asks. A robot without neighbours (d_i = 0: no proximal term, the step is
unbounded) takes a plain gradient step of size 1 / (2 beta) on its own loss, the primal step's
size at degree 1, and keeps its dual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch

from .base import DivergedError, LocalProblem, NeighborMessage, PROFILE_IGNORED, RobotOptimizer
from ..schema import register_optimizer, spec


@dataclass(frozen=True)
class ProxPDAConfig:
    """The ``optimizer_config`` keys for ``alg_name: prox_pda``."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {'profile': PROFILE_IGNORED}

    # penalty and dual step; the primal step is 1 / (2 beta d_i), so beta must exceed the
    # gradient's Lipschitz constant (the paper asks for beta large enough)
    beta: float = spec(50.0, gt=0.0)
    outer_iterations: int = spec(2000, min=1)  # rounds


@register_optimizer('prox_pda')
class ProxPDA(RobotOptimizer):
    """Robot i's Prox-PDA state: its dual lambda_i = (A^T mu)_i."""

    config_cls = ProxPDAConfig

    def __init__(self, config: ProxPDAConfig, problem: LocalProblem) -> None:
        super().__init__(config, problem)
        self.dual = torch.zeros_like(self.params)

    def step(
        self, round_k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        beta = self.config.beta
        vec = self.params
        loss, grad = self.batch_loss_and_grad()  # at x_i^k
        deg = len(neighbors)
        with torch.no_grad():
            if deg:
                x_i = vec.detach().clone()
                x_sum = self.neighbor_vectors(neighbors, 'params', x_i).sum(dim=0)
                # lambda_i += beta (d_i x_i^k - sum_j x_j^k)
                self.dual.add_(deg * x_i - x_sum, alpha=beta)
                # x_i^{k+1} = (beta (d_i x_i^k + sum_j x_j^k) - grad f_i(x_i^k) - lambda_i)
                #             / (2 beta d_i)
                new_x = (beta * (deg * x_i + x_sum) - grad - self.dual) / (2.0 * beta * deg)
                vec.copy_(new_x)
            else:
                vec.add_(grad, alpha=-0.5 / beta)
        return {'train_loss': loss, 'forward_passes': 1.0, 'beta': beta}

    def _diverged(self, what: str) -> DivergedError:
        return DivergedError(
            f'{self.name} diverged: {what}; raise beta (the primal step is 1 / (2 beta d_i))'
        )
