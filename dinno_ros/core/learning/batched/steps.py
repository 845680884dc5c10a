"""
DiNNO, DSGD and DSGT rounds of all robots at once, on stacked state ``[R, P]``.

Each stepper adopts the robots' freshly built optimizers (their parameters, duals, trackers and
step sizes) and does what their ``step`` does, row for row; after each round it writes the state
back, so the robots' optimizers and models read as after a per-robot round. DiNNO's persistent
primal optimizer lives here only (the robots' ``_opt`` stays unset).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import torch

from .hood import Neighbourhood
from .model import StackedLoss, Unsupported
from ..optimizers.base import DivergedError, RobotOptimizer
from ..optimizers.dinno import DiNNO
from ..optimizers.dsgd import DSGD
from ..optimizers.dsgt import DSGT
from ..optimizers.schedules import make_primal_optimizer, set_lr

logger = logging.getLogger(__name__)

Infos = list[dict[str, float]]
BATCHED_PRIMAL_STEPS = ('full', 'preconditioned')  # DiNNO's; 'tracked' runs per robot


def uniform(values: Sequence[float], what: str) -> float:
    """Return the one value all robots share; :class:`Unsupported` when they differ."""
    if any(v != values[0] for v in values):
        raise Unsupported(f'the robots differ in {what}')
    return values[0]


class Stepper:
    """What every batched optimizer shares: the stacked parameters and the minibatch step."""

    def __init__(self, optimizers: Sequence[RobotOptimizer], loss: StackedLoss) -> None:
        self.opts = list(optimizers)
        self.config = uniform([o.config for o in self.opts], 'optimizer config')
        self.loss = loss
        self.params = torch.stack([o.params.detach() for o in self.opts]).clone()

    def stack(self, name: str) -> torch.Tensor:
        """Return the robots' state tensor ``name`` stacked, [R, P]."""
        return torch.stack([getattr(o, name) for o in self.opts]).clone()

    def loss_and_grad(self, round_k: int) -> tuple[list[float], torch.Tensor]:
        """Every robot's loss on a fresh minibatch of its own and its gradient, as robots do."""
        bad = (~torch.isfinite(self.params)).sum(dim=1)
        if bool(bad.any()):
            r = int(bad.nonzero()[0, 0])
            what = f'{int(bad[r])} of {self.params.shape[1]} parameters are NaN or infinite'
            self._diverged(round_k, r, what)
        batches = [o.problem.next_batch() for o in self.opts]
        batch = tuple(torch.stack(parts) for parts in zip(*batches))
        leaf = self.params.detach().requires_grad_()
        losses = self.loss(leaf, batch)
        values = losses.detach().tolist()
        for r, value in enumerate(values):
            if not math.isfinite(value):
                self._diverged(round_k, r, f'the loss is {value}')
        (grad,) = torch.autograd.grad(losses.sum(), leaf)
        for o in self.opts:
            o.forward_passes += 1
        return values, grad

    def _diverged(self, round_k: int, row: int, what: str) -> None:
        """Raise robot ``row``'s DivergedError, worded as its own step would."""
        opt = self.opts[row]
        raise DivergedError(f'robot {opt.robot_id}, round {round_k}: {opt._diverged(what)}')

    def step(self, round_k: int, hood: Neighbourhood) -> Infos:
        """Run round ``round_k`` on every robot; return their step infos."""
        raise NotImplementedError

    def write_back(self) -> None:
        """Put the stacked state back into the robots' optimizers."""
        with torch.no_grad():
            for o, row in zip(self.opts, self.params):
                o.params.copy_(row)


class DiNNOStepper(Stepper):
    """:class:`DiNNO` of every robot: duals [R, P], one rho, one primal optimizer over [R, P]."""

    def __init__(self, optimizers: Sequence[DiNNO], loss: StackedLoss) -> None:
        super().__init__(optimizers, loss)
        if any(o._opt is not None for o in self.opts):
            raise Unsupported('a primal optimizer already has state')
        if self.config.primal_step not in BATCHED_PRIMAL_STEPS:
            raise Unsupported(
                f'primal_step {self.config.primal_step!r} '
                f'(batched: {", ".join(BATCHED_PRIMAL_STEPS)})'
            )
        self.rho = uniform([o.rho for o in self.opts], 'rho')
        self.dual = self.stack('dual')
        self._opt: torch.optim.Optimizer | None = None

    def _primal_optimizer(self, lr: float) -> torch.optim.Optimizer:
        if self.config.persistant_primal_opt and self._opt is not None:
            set_lr(self._opt, lr)
        else:  # elementwise, so one optimizer over [R, P] is R robots' own
            self._opt = make_primal_optimizer(self.config.primal_optimizer, self.params, lr)
        return self._opt

    def step(self, round_k: int, hood: Neighbourhood) -> Infos:
        cfg, vec, deg = self.config, self.params, hood.degree
        th = vec.detach().clone()
        lr = cfg.lr(round_k)
        preconditioned = cfg.primal_step == 'preconditioned'
        self.rho *= cfg.rho_scaling
        th_sum = hood.total(th)
        step = cfg.dual_step * self.rho / (lr if preconditioned else 1.0)
        self.dual.add_(deg * th - th_sum, alpha=step)  # + 0 where a robot has no neighbours
        mid_sum = 0.5 * (deg * th + th_sum)
        opt = self._primal_optimizer(lr)
        losses = []
        for _ in range(cfg.primal_iterations):
            loss, grad = self.loss_and_grad(round_k)
            if not preconditioned:
                grad.add_(self.dual)
                grad.add_(deg * vec.detach() - mid_sum, alpha=2.0 * self.rho)
            vec.grad = grad
            opt.step()
            vec.grad = None
            if preconditioned:
                self._consensus_prox(lr, hood, mid_sum)
            losses.append(loss)
        info = {'forward_passes': float(cfg.primal_iterations), 'rho': self.rho, 'lr': lr}
        return [{'train_loss': sum(ls) / len(ls), **info} for ls in zip(*losses)]

    def _consensus_prox(self, lr: float, hood: Neighbourhood, mid_sum: torch.Tensor) -> None:
        """:meth:`DiNNO._consensus_prox` of every robot (a no-op term where no neighbours)."""
        scale = [1.0 + 2.0 * self.rho * len(n) for n in hood.neighbors]
        with torch.no_grad():
            self.params.sub_(self.dual, alpha=lr)
            self.params.add_(mid_sum, alpha=2.0 * self.rho)
            self.params.div_(torch.tensor(scale, dtype=self.params.dtype).unsqueeze(1))

    def write_back(self) -> None:
        super().write_back()
        for o, row in zip(self.opts, self.dual):
            o.rho = self.rho
            o.dual.copy_(row)


class DSGDStepper(Stepper):
    """:class:`DSGD` of every robot: Metropolis mixing, then a gradient step; one alpha."""

    def __init__(self, optimizers: Sequence[DSGD], loss: StackedLoss) -> None:
        super().__init__(optimizers, loss)
        self.alpha = uniform([o.alpha for o in self.opts], 'alpha')

    def step(self, round_k: int, hood: Neighbourhood) -> Infos:
        vec = self.params
        with torch.no_grad():
            vec.copy_(hood.mix(vec, hood.gather(vec)))
        losses, grad = self.loss_and_grad(round_k)
        alpha = self.alpha
        with torch.no_grad():
            vec.add_(grad, alpha=-alpha)
        self.alpha = alpha * (1.0 - self.config.mu * alpha)
        return [{'train_loss': loss, 'forward_passes': 1.0, 'alpha': alpha} for loss in losses]

    def write_back(self) -> None:
        super().write_back()
        for o in self.opts:
            o.alpha = self.alpha


class DSGTStepper(Stepper):
    """:class:`DSGT` of every robot: trackers and last gradients [R, P]."""

    def __init__(self, optimizers: Sequence[DSGT], loss: StackedLoss) -> None:
        super().__init__(optimizers, loss)
        self.tracker = self.stack('tracker')
        self.last_grad = self.stack('last_grad')

    def step(self, round_k: int, hood: Neighbourhood) -> Infos:
        alpha, vec = self.config.alpha, self.params
        with torch.no_grad():
            y_j = hood.gather(self.tracker)
            stepped = hood.gather(vec) - alpha * y_j
            new_th = hood.mix(vec - alpha * self.tracker, stepped)
            mixed_y = hood.mix(self.tracker, y_j)
            vec.copy_(new_th)
        losses, grad = self.loss_and_grad(round_k)
        self.tracker = mixed_y + grad - self.last_grad
        self.last_grad = grad
        return [{'train_loss': loss, 'forward_passes': 1.0, 'alpha': alpha} for loss in losses]

    def write_back(self) -> None:
        super().write_back()
        for o, y, g in zip(self.opts, self.tracker, self.last_grad):
            o.tracker, o.last_grad = y.clone(), g.clone()


STEPPERS: dict[type, type[Stepper]] = {
    DiNNO: DiNNOStepper,
    DSGD: DSGDStepper,
    DSGT: DSGTStepper,
}


def stepper_for(optimizers: Sequence[Any], loss: StackedLoss) -> Stepper:
    """Return the batched stepper of these robots' optimizers; :class:`Unsupported` if none."""
    kinds = {type(o) for o in optimizers}
    if len(kinds) != 1 or next(iter(kinds)) not in STEPPERS:
        names = ', '.join(sorted(getattr(k, 'name', k.__name__) for k in kinds))
        raise Unsupported(f'no batched {names} (batched: dinno, dsgd, dsgt)')
    return STEPPERS[kinds.pop()](optimizers, loss)
