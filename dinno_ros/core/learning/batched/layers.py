"""
Layers over R robots at once: each robot's input through its own weights, stacked on dim 0.

Weights are ``[R, ...]`` views of the stacked parameter vectors; inputs are ``[R, B, ...]``. On a
CPU a grouped convolution over all robots is slower than one convolution per robot, so the
convolution loops over the robots (NNPACK's forward, oneDNN's filter gradient); the 2x2 max pool
is a few whole-swarm ops with its own backward (``max_pool2d`` is slow on small images).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn.functional as F

WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))  # a 2x2 window's cells in max_pool2d's scan order


@contextmanager
def native_cpu_conv(device: torch.device) -> Iterator[None]:
    """Let CPU convolutions skip oneDNN (NNPACK's forward is about 2x faster on small images)."""
    if device.type != 'cpu' or not torch.backends.nnpack.is_available():
        yield
        return
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


class StackedConv2d(torch.autograd.Function):
    """Stride-1, unpadded 2-D convolution of each robot's images with its own filters."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        """Convolve x [R, B, Cin, H, W] with ``weight`` [R, C, Cin, k, k]; [R, B, C, H', W']."""
        ctx.save_for_backward(x, weight)
        with native_cpu_conv(x.device):
            return torch.stack([F.conv2d(x[r], weight[r], bias[r]) for r in range(len(x))])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        """Return the filters' and biases' gradients (the images are data: none)."""
        x, weight = ctx.saved_tensors
        d_weight = torch.stack(
            [torch.nn.grad.conv2d_weight(x[r], weight.shape[1:], grad[r]) for r in range(len(x))]
        )
        return None, d_weight, grad.sum(dim=(1, 3, 4))


class MaxPool2(torch.autograd.Function):
    """``max_pool2d(x, 2)`` on the last two dims; the gradient goes to each window's first max."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        """Return the maxima of the 2x2 windows (an odd last row or column is dropped)."""
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        a, b, c, d = (x[..., i:h:2, j:w:2] for i, j in WINDOW)
        top, bottom = torch.maximum(a, b), torch.maximum(c, d)
        lower = bottom > top  # strictly: ties keep the first cell, as max_pool2d does
        right = (lower & (d > c)) | (~lower & (b > a))
        rows, cols = torch.meshgrid(
            torch.arange(0, h, 2, device=x.device),
            torch.arange(0, w, 2, device=x.device),
            indexing='ij',
        )
        corner = (rows * x.shape[-1] + cols).reshape(-1)
        ctx.where = corner + lower.flatten(-2) * x.shape[-1] + right.flatten(-2)
        ctx.shape = x.shape
        return torch.maximum(top, bottom)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        """Put each window's gradient where its maximum was."""
        out = grad.new_zeros(ctx.shape).flatten(-2)
        out.scatter_(-1, ctx.where, grad.flatten(-2))
        return out.view(ctx.shape)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Return ``x @ weight.T + bias`` of each robot: x [R, B, in], weight [R, out, in]."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Return each robot's stride-1 unpadded convolution, [R, B, C, H', W']."""
    return StackedConv2d.apply(x, weight, bias)


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """Return ``max_pool2d(x, 2)`` over the last two dims, any leading dims."""
    return MaxPool2.apply(x)
