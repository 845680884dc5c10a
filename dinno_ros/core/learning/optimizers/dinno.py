"""
DiNNO (consensus ADMM) as one robot's round.

Rho scaling, dual step, primal steps on the midpoint regulariser: on the whole augmented
Lagrangian (the paper), or the data loss's optimizer step followed by the exact consensus prox
(``preconditioned``: the robot's own Adam; ``tracked``: Adam on a gradient-tracked swarm mean, see
tracked_adam.py).
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from typing import ClassVar, Mapping

import torch

from .base import LocalProblem, NeighborMessage, PROFILE_IGNORED, RobotOptimizer
from .schedules import lr_at, LR_DECAY_TYPES, make_primal_optimizer, PRIMAL_OPTIMIZERS, set_lr
from .tracked_adam import TrackedAdam
from ..schema import register_optimizer, spec

logger = logging.getLogger(__name__)

PRIMAL_STEPS = ('full', 'preconditioned', 'tracked')


@dataclass(frozen=True)
class DiNNOConfig:
    """The research code's ``optimizer_config`` keys for ``alg_name: dinno``."""

    IGNORED_KEYS: ClassVar[dict[str, str]] = {'profile': PROFILE_IGNORED}

    rho_init: float = spec(0.5, min=0.0)  # initial ADMM penalty
    rho_scaling: float = spec(1.0003, gt=0.0)  # rho <- rho * rho_scaling once per round
    outer_iterations: int = spec(2000, min=1)  # rounds (the lr schedule spans them)
    primal_iterations: int = spec(
        2, min=1
    )  # primal optimizer steps per round, each on a fresh minibatch
    primal_optimizer: str = spec('adam', choices=PRIMAL_OPTIMIZERS)
    primal_lr: float | None = spec(
        None, gt=0.0
    )  # the research code's single constant lr (excludes start/finish)
    primal_lr_start: float | None = spec(None, gt=0.0)  # default 0.005 when no primal_lr
    primal_lr_finish: float | None = spec(None, gt=0.0)  # default 0.0005 when no primal_lr
    lr_decay_type: str = spec('log', choices=LR_DECAY_TYPES)  # constant | linear | log
    persistant_primal_opt: bool = (
        False  # keep one primal optimizer (and its moments) across rounds
    )
    # dual ascent step as a fraction of rho: p_i += dual_step * rho * sum_j (th_i - th_j)
    # (1.0: the paper; below 1 the duals integrate less of the minibatch noise)
    dual_step: float = spec(1.0, gt=0.0, max=1.0)
    # full: the paper; the primal optimizer steps on the gradient of the whole augmented
    # Lagrangian. preconditioned: it steps on the data loss alone, then the dual and penalty
    # terms are solved exactly in the optimizer's units (rho: the pull toward the midpoints per
    # step, a much smaller number than the paper's rho); see DiNNO._consensus_prox. tracked: as
    # preconditioned, but Adam steps on a gradient-tracked estimate of the swarm's mean gradient
    # (robots also send a 'tracker' vector: twice the bytes); see tracked_adam.py
    primal_step: str = spec('full', choices=PRIMAL_STEPS)

    def validate(self, section: str = 'optimizer_config') -> None:
        if self.primal_lr is not None and (
            self.primal_lr_start is not None or self.primal_lr_finish is not None
        ):
            raise ValueError(
                f'{section}.primal_lr: give either primal_lr or primal_lr_start/primal_lr_finish, '
                'not both'
            )
        if self.primal_step == 'tracked' and self.primal_optimizer != 'adam':
            raise ValueError(
                f'{section}.primal_optimizer: {self.primal_optimizer!r} cannot run with '
                "primal_step 'tracked' (it steps its own Adam on the tracked gradient); allowed: "
                'adam'
            )

    def lr(self, round_k: int) -> float:
        """Return the primal learning rate of round ``round_k``."""
        if self.primal_lr is not None:
            return self.primal_lr
        start = 0.005 if self.primal_lr_start is None else self.primal_lr_start
        finish = 0.0005 if self.primal_lr_finish is None else self.primal_lr_finish
        return lr_at(round_k, start, finish, self.outer_iterations, self.lr_decay_type)


@register_optimizer('dinno', aliases=('cadmm',))  # cadmm: the research code's name
class DiNNO(RobotOptimizer):
    """
    Robot i's DiNNO state.

    Its dual p_i, its rho, and (optionally) a persistent primal optimizer.
    """

    config_cls = DiNNOConfig

    def __init__(self, config: DiNNOConfig, problem: LocalProblem) -> None:
        super().__init__(config, problem)
        self.rho = float(config.rho_init)
        self.dual = torch.zeros_like(self.params)
        self._opt: torch.optim.Optimizer | None = None
        self._opt_vec: torch.Tensor | None = None
        self.tracked: TrackedAdam | None = None
        if config.primal_step == 'tracked':
            self.vectors = ('params', 'tracker')
            self._start_tracking()

    def _start_tracking(self) -> None:
        """Start the tracker at a first local gradient (as DSGT's ``init_grads``)."""
        _, grad = self.batch_loss_and_grad()
        self.tracked = TrackedAdam(grad)

    def outgoing(self) -> dict[str, torch.Tensor]:
        out = super().outgoing()
        if self.tracked is not None:
            out['tracker'] = self.tracked.tracker.clone()
        return out

    def resume(self, round_k: int, params: torch.Tensor | None) -> None:
        """Rejoin at ``round_k``: the neighbours' mean, zero dual, rho as it is by then."""
        super().resume(round_k, params)
        self.rho = float(self.config.rho_init) * float(self.config.rho_scaling) ** round_k
        self.dual.zero_()
        self._opt = None
        if self.tracked is not None:
            self._start_tracking()

    def _primal_optimizer(self, vec: torch.Tensor, lr: float) -> torch.optim.Optimizer:
        if self.config.persistant_primal_opt and self._opt is not None and self._opt_vec is vec:
            set_lr(self._opt, lr)
            return self._opt
        if self.config.persistant_primal_opt and self._opt is not None:
            logger.warning(
                'model parameters were replaced from outside; the persistent primal optimizer '
                'restarts'
            )
        self._opt = make_primal_optimizer(self.config.primal_optimizer, vec, lr)
        self._opt_vec = vec
        return self._opt

    def _consensus_prox(
        self, vec: torch.Tensor, lr: float, deg: int, mid_sum: torch.Tensor
    ) -> None:
        """
        Move the data step's result z onto the exact minimiser of the consensus terms around it.

        ``primal_step: preconditioned``: th = argmin lr <th, p_i> + rho sum_j ||th - m_ij||^2 +
        ||th - z||^2 / 2 = (z - lr p_i + 2 rho sum_j m_ij) / (1 + 2 rho deg). The optimizer's step
        (Adam's per-coordinate scaling) carries the data term alone; the penalty pulls every
        coordinate the same fraction toward the midpoints, so it can neither swamp Adam's
        normalisation nor outrun its bounded step.
        """
        with torch.no_grad():
            vec.sub_(self.dual, alpha=lr)
            if deg:
                vec.add_(mid_sum, alpha=2.0 * self.rho)
                vec.div_(1.0 + 2.0 * self.rho * deg)

    def step(
        self, round_k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        cfg = self.config
        vec = self.params
        th_i = vec.detach().clone()  # fixed at the round start
        deg = len(neighbors)
        lr = cfg.lr(round_k)
        preconditioned = cfg.primal_step != 'full'
        self.rho *= cfg.rho_scaling
        mid_sum = th_i  # unused without neighbours
        if deg:
            th_sum = self.neighbor_vectors(neighbors, 'params', th_i).sum(dim=0)
            # p_i += dual_step * rho * sum_j (th_i - th_j)   (preconditioned: in units of lr)
            step = cfg.dual_step * self.rho / (lr if preconditioned else 1.0)
            self.dual.add_(deg * th_i - th_sum, alpha=step)
            mid_sum = 0.5 * (deg * th_i + th_sum)  # sum_j (th_i + th_j) / 2
        if self.tracked is not None:
            losses = self._tracked_steps(vec, lr, deg, mid_sum, neighbors, degree)
        else:
            losses = self._optimizer_steps(vec, lr, deg, mid_sum, preconditioned)
        return {
            'train_loss': sum(losses) / len(losses),
            'forward_passes': float(cfg.primal_iterations),
            'rho': self.rho,
            'lr': lr,
        }

    def _tracked_steps(
        self,
        vec: torch.Tensor,
        lr: float,
        deg: int,
        mid_sum: torch.Tensor,
        neighbors: Mapping[int, NeighborMessage],
        degree: int,
    ) -> list[float]:
        """``primal_step: tracked``: Adam on the tracked gradient, each step then the prox."""
        tracked = self.tracked
        if not self.config.persistant_primal_opt:
            tracked.reset_moments()
        tracked.begin_round(neighbors, degree, self.swarm_size)
        losses = []
        for _ in range(self.config.primal_iterations):
            loss, grad = self.batch_loss_and_grad()
            tracked.step(vec, grad, lr)
            self._consensus_prox(vec, lr, deg, mid_sum)
            losses.append(loss)
        tracked.end_round()
        return losses

    def _optimizer_steps(
        self, vec: torch.Tensor, lr: float, deg: int, mid_sum: torch.Tensor, preconditioned: bool
    ) -> list[float]:
        """``full`` and ``preconditioned``: the configured torch optimizer's steps."""
        cfg = self.config
        opt = self._primal_optimizer(vec, lr)
        losses = []
        for _ in range(cfg.primal_iterations):
            loss, grad = self.batch_loss_and_grad()
            if not preconditioned:
                # gradient of <th, p_i> + rho * sum_j ||th - m_ij||^2 = p_i + 2 rho (deg th -
                # sum_j m_ij)
                grad.add_(self.dual)
                if deg:
                    grad.add_(deg * vec.detach() - mid_sum, alpha=2.0 * self.rho)
            vec.grad = grad
            opt.step()
            vec.grad = None
            if preconditioned:
                self._consensus_prox(vec, lr, deg, mid_sum)
            losses.append(loss)
        return losses
