"""
The per-robot optimizer interface.

One robot's state, one synchronous round from neighbour messages.

Parameters travel as flat 1-D float32 vectors in ``parameters_to_vector(model.parameters())``
order. ``FlatParameters`` turns a model's parameters into views of one contiguous vector so the
optimizers update the model with whole-vector torch ops (no Python loop over parameter tensors in
the hot path).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
import logging
import math
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import torch

from ..schema import OPTIMIZERS

logger = logging.getLogger(__name__)

# why the research code's optimizer key ``profile`` is accepted and has no effect
PROFILE_IGNORED = "the research code's profiler switch; time runs with the bench/ scripts"


class DivergedError(FloatingPointError):
    """The parameters stopped being finite numbers (a step size too large for the problem)."""


@dataclass(frozen=True)
class NeighborMessage:
    """What one neighbour sent for a round."""

    vectors: Mapping[str, torch.Tensor]  # vector name ("params", "tracker") -> flat values
    degree: int  # the neighbour's degree this round (for Metropolis weights)
    round_k: int | None = None  # the round it was sent for (an earlier one when it came late)


@runtime_checkable
class LocalProblem(Protocol):
    """One robot's share of a problem: its model and its own minibatch stream."""

    model: torch.nn.Module  # lives on the robot's device

    def next_batch(self) -> Any:
        """Return a fresh minibatch from this robot's data, drawn from its own seeded generator."""
        ...

    def loss(self, batch: Any) -> torch.Tensor:
        """Scalar training loss of ``self.model`` on ``batch``."""
        ...


class FlatParameters:
    """
    A model's trainable parameters as views into one contiguous flat vector.

    ``vec`` is the live parameter vector: writing into it changes the model. If someone replaces a
    parameter's storage (``vector_to_parameters``, ``model.to(...)``), ``rebind`` re-packs the
    views.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError('the model has no trainable parameters')
        self.vec = torch.nn.utils.parameters_to_vector(self.params).detach().clone()
        self._bind()

    def _bind(self) -> None:
        offset = 0
        with torch.no_grad():
            for p in self.params:
                end = offset + p.numel()
                p.data = self.vec[offset:end].view_as(p)
                offset = end
        self._ptrs = [p.data_ptr() for p in self.params]

    def rebind(self) -> torch.Tensor:
        """
        Make sure the parameters are still views of ``vec`` (re-pack if not).

        Returns ``vec``.
        """
        if [p.data_ptr() for p in self.params] != self._ptrs:
            vec = torch.nn.utils.parameters_to_vector(self.params).detach().clone()
            self.vec = vec
            self._bind()
        return self.vec

    @property
    def numel(self) -> int:
        return self.vec.numel()

    def grad(self, loss: torch.Tensor) -> torch.Tensor:
        """Flat gradient of ``loss`` with respect to the parameters."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, self.params)
            ]
        )


@OPTIMIZERS.set_base
class RobotOptimizer(ABC):
    """
    One robot's decentralized optimizer.

    All state is this robot's; a round sees only neighbour messages.

    Round k: every robot publishes ``outgoing()``; then every robot calls ``step(k, messages)``
    with the neighbours' round-k messages. ``step`` updates ``problem.model``'s parameters in
    place.
    """

    name: ClassVar[str]
    config_cls: ClassVar[type]
    vectors: ClassVar[tuple[str, ...]] = ('params',)  # the names of the vectors outgoing() sends

    def __init__(self, config: Any, problem: LocalProblem) -> None:
        self.config = config
        self.problem = problem
        self.flat = FlatParameters(problem.model)
        self.forward_passes = 0  # minibatch losses evaluated so far (all rounds)
        self.robot_id = 0  # set by RobotAgent (compressors seed shared draws with it)
        self.swarm_size = 1  # robots in the whole swarm: set by build_agent

    @property
    def params(self) -> torch.Tensor:
        """Return the live flat parameter vector (a view of the model's parameters)."""
        return self.flat.rebind()

    def outgoing(self) -> dict[str, torch.Tensor]:
        """Flat vectors to send to the neighbours for the current round (detached copies)."""
        return {'params': self.params.detach().clone()}

    def resume(self, round_k: int, params: torch.Tensor | None) -> None:
        """
        Rejoin a running swarm at round ``round_k`` (a restarted robot).

        Start from ``params`` (the neighbours' mean; None: keep the initial model) with fresh
        optimizer state; subclasses also move their schedules on to ``round_k``.
        """
        if params is not None:
            with torch.no_grad():
                self.params.copy_(params.to(self.params))

    def compressor_of(self, vector: str) -> Any:
        """Return the Compressor that encodes ``vector`` on the wire; None: dense float32."""
        return None

    def wire_arrays(self, vector: str) -> dict[str, Any] | None:
        """Return the compressed wire arrays of this round's ``vector``; None: dense float32."""
        return None

    @abstractmethod
    def step(
        self, round_k: int, neighbors: Mapping[int, NeighborMessage], degree: int
    ) -> dict[str, float]:
        """
        One synchronous round.

        ``neighbors`` holds the messages the robot steps with; ``degree`` is its degree this round
        (the neighbours it waited for, as it sent with its vectors: Metropolis weights use it).
        Returns info such as ``{"train_loss": ..., "forward_passes": ...}``.
        """

    def batch_loss_and_grad(self) -> tuple[float, torch.Tensor]:
        """Loss on a fresh minibatch at the current parameters and its flat gradient."""
        vec = self.flat.rebind()
        bad = int((~torch.isfinite(vec)).sum())
        if bad:
            raise self._diverged(f'{bad} of {vec.numel()} parameters are NaN or infinite')
        try:
            loss = self.problem.loss(self.problem.next_batch())
        except FloatingPointError as err:
            raise self._diverged(str(err)) from None
        value = float(loss.detach())
        if not math.isfinite(value):
            raise self._diverged(f'the loss is {value}')
        self.forward_passes += 1
        return value, self.flat.grad(loss)

    def _diverged(self, what: str) -> DivergedError:
        return DivergedError(
            f'{self.name} diverged: {what}; lower the step size (primal_lr / primal_lr_start, '
            'alpha) or rho'
        )

    @staticmethod
    def neighbor_vectors(
        neighbors: Mapping[int, NeighborMessage], vector: str, like: torch.Tensor
    ) -> torch.Tensor:
        """
        Return the neighbours' ``vector`` vectors stacked (rows in sorted id order).

        On ``like``'s device and dtype.
        """
        if not neighbors:
            return like.new_zeros((0, like.numel()))
        rows = []
        for j in sorted(neighbors):
            vec = neighbors[j].vectors.get(vector)
            if vec is None:
                raise KeyError(
                    f"neighbour {j} sent no '{vector}' vector (got {sorted(neighbors[j].vectors)})"
                )
            if vec.numel() != like.numel():
                raise ValueError(
                    f"neighbour {j} sent a '{vector}' vector of {vec.numel()} values, expected "
                    f'{like.numel()}'
                )
            rows.append(vec.reshape(-1))
        return torch.stack(rows).to(device=like.device, dtype=like.dtype)
