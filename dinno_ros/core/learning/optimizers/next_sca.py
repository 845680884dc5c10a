"""
NEXT-L: in-network successive convex approximation with gradient tracking, one robot's round.

Di Lorenzo and Scutari, "NEXT: In-Network Nonconvex Optimization", IEEE TSIPN 2016 (Algorithm 1,
no regulariser G, no constraint set K), with the linearised surrogate. Iteration n of agent i::

    x~_i^n = argmin_x <grad f_i(x_i^n) + pi~_i^n, x - x_i^n> + tau_i/2 ||x - x_i^n||^2
           = x_i^n - (I / tau_i) y_i^n           (pi~_i^n = I y_i^n - grad f_i(x_i^n))
    z_i^n = x_i^n + alpha^n (x~_i^n - x_i^n)                  (S.2, local SCA step)
    x_i^{n+1} = sum_j w_ij z_j^n                              (S.3, consensus)
    y_i^{n+1} = sum_j w_ij y_j^n + grad f_i(x_i^{n+1}) - grad f_i(x_i^n)   (S.4, tracking)
    alpha^{n+1} = alpha^n (1 - mu alpha^n)

with y_i^0 = grad f_i(x_i^0) and W the Metropolis weights (doubly stochastic, as the paper
needs). The number of agents I enters only through I / tau_i, and the optimizer is not told I
(it is built from its config and its local problem alone), so ``tau`` here is the paper's
tau_i / I: x~_i = x_i - y_i / tau. The paper's other surrogates (f_i itself plus the proximal
term) need I on their own and are not implemented.

Reordered into our rounds (send, then step with the neighbours' round-k vectors): the robot's
parameters between rounds are z_i (what S.3 mixes), sent as 'params' with its tracker y_i as
'tracker'; round k finishes iteration k - 1 (S.3, S.4) and does iteration k's S.2::

    x_i^k = sum_j w_ij z_j^{k-1};  g = grad f_i(x_i^k)
    y_i^k = sum_j w_ij y_j^{k-1} + g - g_prev;  z_i^k = x_i^k - alpha^k y_i^k / tau

Starting from z_i^{-1} = the initial parameters and y_i^{-1} = g_prev = 0, round 0 makes
x_i^0 = sum_j w_ij z_j^{-1} (the common start when the robots start alike) and
y_i^0 = grad f_i(x_i^0): the paper's initialisation. A robot without neighbours keeps
y_i = grad f_i(x_i): gradient descent with step alpha^k / tau.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import torch

from .base import DivergedError, LocalProblem, NeighborMessage, PROFILE_IGNORED, RobotOptimizer
from .dsgd import mix
from ..schema import register_optimizer, spec


@dataclass(frozen=True)
class NEXTConfig:
    """The ``optimizer_config`` keys for ``alg_name: next``."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {'profile': PROFILE_IGNORED}

    alpha0: float = spec(0.5, gt=0.0, max=1.0)  # initial step alpha^0 toward the SCA point
    mu: float = spec(0.001, min=0.0)  # alpha <- alpha * (1 - mu * alpha) after every round
    # proximal weight of the linearised surrogate, the paper's tau_i / I: the SCA point is
    # x - y / tau, so the step on the tracked gradient is alpha / tau
    tau: float = spec(100.0, gt=0.0)
    outer_iterations: int = spec(2000, min=1)  # rounds

    def validate(self, section: str = 'optimizer_config') -> None:
        if not self.mu * self.alpha0 < 1.0:
            raise ValueError(
                f'{section}.mu: {self.mu!r} out of range; allowed: < 1 / alpha0 = '
                f'{1.0 / self.alpha0:g} (the step must stay positive)'
            )


@register_optimizer('next')
class NEXT(RobotOptimizer):
    """Robot i's NEXT state: tracker y_i, its last local gradient and the step alpha."""

    config_cls = NEXTConfig
    vectors = ('params', 'tracker')

    def __init__(self, config: NEXTConfig, problem: LocalProblem) -> None:
        super().__init__(config, problem)
        self.tracker = torch.zeros_like(self.params)
        self.last_grad = torch.zeros_like(self.params)
        self.alpha = float(config.alpha0)

    def outgoing(self) -> dict[str, torch.Tensor]:
        return {'params': self.params.detach().clone(), 'tracker': self.tracker.clone()}

    def step(
        self, round_k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        vec = self.params
        with torch.no_grad():
            vec.copy_(mix(vec, neighbors, 'params', degree))  # x_i^k
            mixed_y = mix(self.tracker, neighbors, 'tracker', degree)
        loss, grad = self.batch_loss_and_grad()
        self.tracker = mixed_y + grad - self.last_grad  # y_i^k
        self.last_grad = grad
        alpha = self.alpha
        with torch.no_grad():
            vec.add_(self.tracker, alpha=-alpha / self.config.tau)  # z_i^k
        self.alpha = alpha * (1.0 - self.config.mu * alpha)
        return {'train_loss': loss, 'forward_passes': 1.0, 'alpha': alpha}

    def _diverged(self, what: str) -> DivergedError:
        return DivergedError(
            f'{self.name} diverged: {what}; lower alpha0 or raise tau (the step is alpha / tau)'
        )
