"""
The robots' losses in one call: every robot's model on its own minibatch, from stacked parameters.

A :class:`StackedLoss` maps the parameter vectors ``[R, P]`` (in ``FlatParameters`` order) and
the robots' minibatches (each tensor ``[R, B, ...]``) to the R minibatch losses. The MNIST network
with the NLL loss has a hand-written one (:class:`MNISTStackedLoss`); any other model of a
:class:`~..problems.base.TensorLocalProblem` goes through ``torch.func.functional_call`` under
``torch.func.vmap`` (:class:`VmapStackedLoss`), if its loss runs there.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from typing import Any, Callable, Sequence

import torch
from torch.func import functional_call, vmap
import torch.nn.functional as F

from .layers import conv2d, linear, max_pool2
from ..problems.base import TensorLocalProblem
from ..problems.mnist import MNISTConvNet, nll_loss

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, ...]
StackedLoss = Callable[[torch.Tensor, Batch], torch.Tensor]


class Unsupported(Exception):
    """The batched runner cannot run these robots (the message says why)."""


@dataclass(frozen=True)
class ParamLayout:
    """Where each named parameter lies in the flat vector."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, model: torch.nn.Module) -> ParamLayout:
        """Return the layout of ``model``'s trainable parameters (``FlatParameters`` order)."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return cls(
            tuple(n for n, _ in named),
            tuple(p.shape for _, p in named),
            tuple(p.numel() for _, p in named),
        )

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the named views of ``flat`` (any leading dims: [..., P] -> [..., *shape])."""
        lead = flat.shape[:-1]
        parts = torch.split(flat, self.sizes, dim=-1)
        return {n: t.view(*lead, *s) for n, t, s in zip(self.names, parts, self.shapes)}


class MNISTStackedLoss:
    """:class:`MNISTConvNet` with the NLL loss, all robots at once."""

    def __init__(self, layout: ParamLayout) -> None:
        self.layout = layout

    def __call__(self, params: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Return each robot's mean NLL on its minibatch ([R, B, 1, 28, 28] digits, [R, B])."""
        p = self.layout.split(params)
        x, y = batch
        out = conv2d(x, p['conv.weight'], p['conv.bias'])
        out = max_pool2(out).relu().flatten(2)  # relu(max) = max(relu), on fewer values
        out = linear(out, p['fc1.weight'], p['fc1.bias']).relu()
        log_p = F.log_softmax(linear(out, p['fc2.weight'], p['fc2.bias']), dim=-1)
        return -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(dim=1)


class _Bound:
    """A module called with given parameters (what a robot's ``loss_fn`` calls as its model)."""

    def __init__(self, module: torch.nn.Module, params: dict[str, torch.Tensor]) -> None:
        self.module, self.params = module, params

    def __call__(self, *args: Any) -> torch.Tensor:
        return functional_call(self.module, self.params, args)


class VmapStackedLoss:
    """Any model and loss: ``functional_call`` of robot 0's module under ``vmap``."""

    def __init__(self, module: torch.nn.Module, loss_fn: Callable, layout: ParamLayout) -> None:
        self.module, self.loss_fn, self.layout = module, loss_fn, layout

    def _one(self, flat: torch.Tensor, *batch: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(_Bound(self.module, self.layout.split(flat)), batch)

    def __call__(self, params: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Return each robot's loss on its minibatch."""
        return vmap(self._one)(params, *batch)


def stacked_loss(problems: Sequence[Any]) -> StackedLoss:
    """Return the robots' stacked loss; :class:`Unsupported` when they cannot be stacked."""
    first = check_problems(problems)
    layout = ParamLayout.of(first.model)
    if type(first.model) is MNISTConvNet and first.loss_fn is nll_loss:
        return MNISTStackedLoss(layout)
    loss = VmapStackedLoss(first.model, first.loss_fn, layout)
    probe(loss, first)
    return loss


def check_problems(problems: Sequence[Any]) -> TensorLocalProblem:
    """Check the robots hold alike tensor problems; return the first."""
    first = problems[0]
    for local in problems:
        if not isinstance(local, TensorLocalProblem):
            raise Unsupported(f'{type(local).__name__} is not a TensorLocalProblem')
        if local.batch_size != first.batch_size or local.loss_fn is not first.loss_fn:
            raise Unsupported('the robots differ in batch size or loss')
        if type(local.model) is not type(first.model) or list(local.model.buffers()):
            raise Unsupported('the robots differ in model type, or a model holds buffers')
        if ParamLayout.of(local.model) != ParamLayout.of(first.model):
            raise Unsupported('the robots differ in model shape')
        if any(p.dtype != torch.float32 for p in local.model.parameters()):
            raise Unsupported('a model is not float32 (the wire rounds to float32)')
    return first


def probe(loss: VmapStackedLoss, local: TensorLocalProblem) -> None:
    """Run the loss once under vmap on the robot's first samples (its generator untouched)."""
    params = torch.nn.utils.parameters_to_vector(local.model.parameters()).detach()
    batch = tuple(t[: local.batch_size].unsqueeze(0) for t in local.data)
    try:
        loss(params.unsqueeze(0), batch)
    except Exception as exc:  # noqa: BLE001 (any failure means: not under vmap)
        raise Unsupported(f'the loss does not run under torch.func.vmap ({exc})') from None
