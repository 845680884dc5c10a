"""
Adam on a gradient-tracked estimate of the swarm's mean gradient (DiNNO ``primal_step: tracked``).

Each robot keeps a tracker y_i of the swarm's mean gradient (gradient tracking, as in DSGT): every
round it is mixed with the neighbours' (Metropolis weights) and moved by the change of the robot's
own round-mean gradient, so the trackers' mean is always the robots' mean gradient. A primal step
feeds Adam ``g_i + y_i - gbar_i`` (the fresh local gradient, corrected by what the swarm's mean
differed from this robot's at the last round) and normalises it by the second moment of the
swarm's pooled batch, estimated as ``(1 - 1/N) y_i^2 + (g_i + y_i - gbar_i)^2 / N``: the noise
of one robot's batch counts 1/N, as it does in a centralised batch N times larger. The mean of the
robots' Adam steps is then a centralised Adam's step, and on a deterministic problem the fixed
point is the centralised optimum (with each robot's own Adam it is not: see README, "Quality").
"""

from __future__ import annotations

from typing import Mapping

import torch

from .base import NeighborMessage
from .dsgd import mix

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults


class TrackedAdam:
    """One robot's tracker of the swarm's mean gradient and the Adam moments stepped on it."""

    def __init__(self, first_grad: torch.Tensor) -> None:
        self.tracker = first_grad.clone()  # y_i: its mean over robots is the mean gradient
        self.round_grad = first_grad.clone()  # gbar_i: this robot's share of the tracker
        self.swarm_size = 1
        self.reset_moments()

    def reset_moments(self) -> None:
        """Start Adam afresh (``persistant_primal_opt: false``: every round)."""
        self.exp_avg = torch.zeros_like(self.tracker)
        self.exp_avg_sq = torch.zeros_like(self.tracker)
        self.steps = 0

    def begin_round(
        self, neighbors: Mapping[int, NeighborMessage], degree: int, swarm_size: int
    ) -> None:
        """Mix the tracker with the neighbours' (their round-start ``tracker`` vectors)."""
        self.swarm_size = max(1, int(swarm_size))
        self.tracker = mix(self.tracker, neighbors, 'tracker', degree)
        self._correction = self.tracker - self.round_grad
        self._pooled = self.tracker * self.tracker * (1.0 - 1.0 / self.swarm_size)
        self._grad_sum = torch.zeros_like(self.tracker)
        self._grads = 0

    def step(self, params: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        """One Adam step of ``params`` (in place) on the tracked gradient at this minibatch."""
        self._grad_sum.add_(grad)
        self._grads += 1
        tracked = grad + self._correction
        self.steps += 1
        self.exp_avg.mul_(BETA1).add_(tracked, alpha=1.0 - BETA1)
        pooled_sq = self._pooled + tracked * tracked / self.swarm_size
        self.exp_avg_sq.mul_(BETA2).add_(pooled_sq, alpha=1.0 - BETA2)
        denom = (self.exp_avg_sq / (1.0 - BETA2**self.steps)).sqrt_().add_(EPS)
        with torch.no_grad():
            params.addcdiv_(self.exp_avg, denom, value=-lr / (1.0 - BETA1**self.steps))

    def end_round(self) -> None:
        """Move the tracker by the change of this robot's round-mean gradient."""
        if not self._grads:
            return
        new = self._grad_sum / self._grads
        self.tracker.add_(new - self.round_grad)
        self.round_grad = new
