"""
Evaluation metrics with the research code's names.

All take plain tensors so the ROS monitor can use them too.

Names: forward_pass_count, validation_loss, consensus_error, top1_accuracy, current_epoch,
train_loss_moving_average, mesh_grid_density, current_position, current_graph; and map_iou (the
learned map against the true one, where the robots' lidars have looked and over the whole map) and
validation_nll (MNIST: the mean NLL per digit, beside the research code's validation_loss).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Sequence

import torch

logger = logging.getLogger(__name__)

METRIC_NAMES = (
    'forward_pass_count',
    'validation_loss',
    'consensus_error',
    'top1_accuracy',
    'current_epoch',
    'train_loss_moving_average',
    'mesh_grid_density',
    'current_position',
    'current_graph',
    'map_iou',
    'validation_nll',
    'wire_bytes',
)


def consensus_error(vectors: Sequence[torch.Tensor]) -> dict[str, torch.Tensor | float]:
    """
    Disagreement of the robots' parameter vectors, each first normalised to unit length.

    Returns ``pairwise`` (N x N distances), ``to_mean`` (N distances to the mean of the unit
    vectors), ``average`` (N: each robot's mean distance to the others) and its ``min`` / ``max``
    (the research code's printout).
    """
    stacked = torch.stack([v.detach().reshape(-1).double().cpu() for v in vectors])
    unit = stacked / stacked.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pairwise = torch.cdist(unit, unit)
    n = len(vectors)
    average = pairwise.sum(dim=1) / max(n - 1, 1)
    to_mean = (unit - unit.mean(dim=0, keepdim=True)).norm(dim=1)
    return {
        'pairwise': pairwise.float(),
        'to_mean': to_mean.float(),
        'average': average.float(),
        'min': float(average.min()),
        'max': float(average.max()),
    }


@contextlib.contextmanager
def parameters_loaded(model: torch.nn.Module, vector: torch.Tensor) -> Iterator[torch.nn.Module]:
    """Temporarily copy a flat parameter vector into ``model`` (restored afterwards)."""
    params = list(model.parameters())
    saved = torch.nn.utils.parameters_to_vector(params).detach().clone()
    try:
        _copy_into(params, vector)
        yield model
    finally:
        _copy_into(params, saved)


@torch.no_grad()
def _copy_into(params: list[torch.Tensor], vector: torch.Tensor) -> None:
    vector = vector.reshape(-1)
    if vector.numel() != sum(p.numel() for p in params):
        raise ValueError(
            f'vector of {vector.numel()} values for a model of {sum(p.numel() for p in params)}'
        )
    offset = 0
    for p in params:  # copy_ keeps each parameter's storage (flat views of optimizers stay valid)
        end = offset + p.numel()
        p.copy_(vector[offset:end].view_as(p))
        offset = end


class MovingAverage:
    """Exponential moving average of the training loss (the research code's ``tloss_decay``)."""

    def __init__(self, decay: float = 0.95) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'tloss_decay: {decay} out of range; allowed: [0, 1)')
        self.decay = decay
        self.value: float | None = None

    def update(self, x: float) -> float:
        self.value = (
            float(x)
            if self.value is None
            else self.decay * self.value + (1.0 - self.decay) * float(x)
        )
        return self.value


@torch.no_grad()
def mesh_grid_density(
    model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor, batch_size: int = 65536
) -> torch.Tensor:
    """
    Evaluate the model on the grid ``xs`` x ``ys`` (1-D coordinate tensors).

    Returns (len(ys), len(xs)) on CPU.
    """
    device = next(model.parameters()).device
    gy, gx = torch.meshgrid(ys.float(), xs.float(), indexing='ij')
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device)
    out = torch.cat(
        [
            model(points[slice(s, s + batch_size)]).reshape(-1)
            for s in range(0, len(points), batch_size)
        ]
    )
    return out.reshape(len(ys), len(xs)).cpu()
