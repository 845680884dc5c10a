"""
Problems: the base model, per-robot local problems and validation.

All are built from (config, seed, robot_id). A ROS process holding one robot and the offline loop
holding all robots build bit-identical state:
``Problem(config, num_nodes, seed).local_problem(robot_id)`` depends on nothing else. A problem's
heavy shared data (``Problem.data``) is built once and can be handed to the next problem of the
same config (``data=``) instead of being rebuilt; there are no process-wide caches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import copy
import dataclasses
from functools import cached_property
import logging
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import torch

from ..optimizers.base import LocalProblem
from ..schema import parse_dataclass, PROBLEMS

logger = logging.getLogger(__name__)

__all__ = ['LocalProblem', 'Problem', 'TensorLocalProblem', 'robot_seed', 'robot_generator']


def robot_seed(seed: int, robot_id: int, stream: int = 0) -> int:
    """
    Return a 63-bit seed for robot ``robot_id``'s own random stream.

    Independent of the other robots.
    """
    state = np.random.SeedSequence([int(seed), int(robot_id) + 1, int(stream)]).generate_state(
        2, dtype=np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1]))


def robot_generator(seed: int, robot_id: int, stream: int = 0) -> torch.Generator:
    """Return a CPU ``torch.Generator`` seeded from (seed, robot_id, stream)."""
    gen = torch.Generator(device='cpu')
    gen.manual_seed(robot_seed(seed, robot_id, stream))
    return gen


class TensorLocalProblem:
    """
    A robot's data held as tensors; minibatches from shuffled epochs of its own generator.

    ``loss_fn(model, batch) -> scalar``; ``batch`` is a tuple of tensors indexed along dim 0.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data: tuple[torch.Tensor, ...],
        batch_size: int,
        generator: torch.Generator,
        loss_fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    ) -> None:
        if not data or len(data[0]) == 0:
            raise ValueError('a local problem needs at least one sample')
        self.model = model
        self.data = data
        self.batch_size = int(min(batch_size, len(data[0])))
        self.generator = generator
        self.loss_fn = loss_fn
        self.epoch = 0  # completed passes over the local data
        self._order = torch.randperm(len(data[0]), generator=generator)
        self._cursor = 0

    def __len__(self) -> int:
        return len(self.data[0])

    def next_batch(self) -> tuple[torch.Tensor, ...]:
        """
        Return the next minibatch of a shuffled epoch.

        A new shuffle after each full pass (last short batch dropped).
        """
        if self._cursor + self.batch_size > len(self._order):
            self.epoch += 1
            self._order = torch.randperm(len(self.data[0]), generator=self.generator)
            self._cursor = 0
        start, end = self._cursor, self._cursor + self.batch_size
        idx = self._order[start:end]
        self._cursor = end
        idx = idx.to(self.data[0].device)
        return tuple(t.index_select(0, idx) for t in self.data)

    @property
    def current_epoch(self) -> float:
        """Return the passes over the local data so far (fractional)."""
        return self.epoch + self._cursor / len(self._order)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


@PROBLEMS.set_base
class Problem(ABC):
    """
    A distributed learning problem: base model, per-robot ``LocalProblem``s and validation.

    Subclasses set ``config_cls`` (a dataclass) and are registered with
    ``@register_problem(name)``.

    ``data`` is the problem's heavy shared data (a map and its routes, a loaded data set: each
    subclass says what), held as ``self.data``. Left None it is built by :meth:`build_data`
    (lazily where it can be: a robot process builds only what its robot needs). Given, typically
    ``other.data`` of a problem built from the same config (batch sizes aside), num_nodes and
    seed, it is reused instead of rebuilt: the experiment runner builds the data of its
    (problem, optimizer) pairs once this way. Data built for anything else raises ValueError
    (see :meth:`data_key`).
    """

    name: ClassVar[str]
    config_cls: ClassVar[type]
    metric_names: ClassVar[tuple[str, ...]] = ()  # problem-specific metrics it can evaluate

    def __init__(
        self,
        config: Any,
        num_nodes: int,
        seed: int = 0,
        device: str | torch.device = 'cpu',
        data: Any = None,
    ) -> None:
        if isinstance(config, Mapping):
            config = parse_dataclass(self.config_cls, config, 'problem')
        if int(num_nodes) < 1:
            raise ValueError(f'graph.num_nodes: {num_nodes!r} out of range; allowed: >= 1')
        self.config = config
        self.num_nodes = int(num_nodes)
        self.seed = int(seed)
        self.device = torch.device(device)
        self._base: torch.nn.Module | None = None  # built once, on the CPU
        if data is None:
            data = self.build_data()
        else:
            key, expected = getattr(data, 'key', None), self.data_key()
            if key != expected:
                raise ValueError(f'problem data: built for {key!r}, not for {expected!r}')
        self.data = data

    def build_data(self) -> Any:
        """
        Build this problem's heavy shared data (see ``data`` in the class docstring).

        None by default: a problem without shared data.
        """
        return None

    def data_key(self) -> Any:
        """
        Return what this problem's data is built from (compared with a given ``data.key``).

        None by default; subclasses with data return the config parts, num_nodes and seed it
        depends on.
        """
        return None

    @classmethod
    def config_keys(cls) -> list[str]:
        """
        Return the config keys this problem understands.

        For picking them out of the YAML sections.
        """
        return [f.name for f in dataclasses.fields(cls.config_cls)] + list(
            getattr(cls.config_cls, 'IGNORED_KEYS', ())
        )

    @classmethod
    def config_from_sections(cls, *sections: Mapping[str, Any]) -> Any:
        """
        Build a typed config from the keys it knows in the given YAML sections.

        Later sections win.
        """
        keys = set(cls.config_keys())
        merged: dict[str, Any] = {}
        for section in sections:
            merged.update({k: v for k, v in section.items() if k in keys})
        return parse_dataclass(cls.config_cls, merged, 'problem')

    @abstractmethod
    def make_model(self) -> torch.nn.Module:
        """
        Return a freshly initialised model.

        Uses the global torch RNG; ``base_model`` seeds it.
        """

    def base_model(self) -> torch.nn.Module:
        """
        Return the model with the base weights.

        They are shared by every robot and every (problem, optimizer) pair.
        """
        if self._base is None:
            with torch.random.fork_rng(devices=[]):  # leaves the global RNG untouched
                torch.manual_seed(self.seed)
                self._base = self.make_model()
        return copy.deepcopy(self._base).to(self.device)

    @abstractmethod
    def local_problem(self, robot_id: int) -> LocalProblem:
        """
        Robot ``robot_id``'s share.

        A model with the base weights and its own seeded minibatch stream.
        """

    def validation_cpu(self) -> tuple[torch.Tensor, ...]:
        """Return the validation tensors on the CPU (made when first asked for)."""
        raise NotImplementedError(f'{type(self).__name__} has no validation data')

    @cached_property
    def validation_set(self) -> tuple[torch.Tensor, ...]:
        """Return the validation tensors on the problem's device (moved there once)."""
        return tuple(t.to(self.device) for t in self.validation_cpu())

    @abstractmethod
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Return validation metrics of one model (e.g. ``validation_loss``, ``top1_accuracy``)."""

    def check_robot(self, robot_id: int) -> None:
        if not 0 <= int(robot_id) < self.num_nodes:
            raise ValueError(f'robot_id {robot_id} out of range; allowed: 0..{self.num_nodes - 1}')
