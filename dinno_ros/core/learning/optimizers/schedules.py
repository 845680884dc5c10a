"""
Per-round step-size schedules and primal optimizers.

The primal optimizers are those DiNNO runs on a flat parameter vector.
"""

from __future__ import annotations

import math

import torch

LR_DECAY_TYPES = ('constant', 'linear', 'log')
PRIMAL_OPTIMIZERS = ('adam', 'adamw', 'sgd')


def lr_at(round_k: int, start: float, finish: float, rounds: int, decay: str) -> float:
    """
    Return the learning rate of round ``round_k`` (0-based).

    It decays from ``start`` to ``finish`` over ``rounds``. Matches the research code's
    ``torch.linspace`` / ``torch.logspace`` tables; rounds past the end keep ``finish``.
    """
    if decay not in LR_DECAY_TYPES:
        raise ValueError(
            f'optimizer_config.lr_decay_type: unknown {decay!r}; allowed: '
            f'{", ".join(LR_DECAY_TYPES)}'
        )
    if decay == 'constant' or rounds <= 1:
        return float(start)
    t = min(max(int(round_k), 0), rounds - 1) / (rounds - 1)
    if decay == 'linear':
        return float(start + (finish - start) * t)
    return float(10.0 ** (math.log10(start) + (math.log10(finish) - math.log10(start)) * t))


def make_primal_optimizer(
    kind: str, flat_vector: torch.Tensor, lr: float
) -> torch.optim.Optimizer:
    """
    Build a torch optimizer over the single flat parameter vector.

    Defaults as ``torch.optim``'s.
    """
    if kind == 'adam':
        return torch.optim.Adam([flat_vector], lr=lr)
    if kind == 'adamw':
        return torch.optim.AdamW([flat_vector], lr=lr)
    if kind == 'sgd':
        return torch.optim.SGD([flat_vector], lr=lr)
    raise ValueError(
        f'optimizer_config.primal_optimizer: unknown {kind!r}; allowed: '
        f'{", ".join(PRIMAL_OPTIMIZERS)}'
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group['lr'] = lr
