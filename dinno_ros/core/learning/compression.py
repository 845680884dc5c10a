"""
Compression operators for what robots send: top-k, random-k, QSGD and identity.

Each operator has its own wire encoding, named arrays that travel as a ``dinno_msgs/Weights``
message's tensors (see ``dinno_ros.core.wire``), and a decoder that validates them as strictly as
a dense vector is validated. The sender's own copy of what it sent is ``decode(encode(x))``, so a
sender and every receiver hold bit-identical values.

- ``top_k``: the k entries of largest magnitude, sent as int32 indices and float32 values.
- ``random_k``: k entries at indices drawn from a generator seeded by (seed, sender, round), which
  the receiver draws too: only the float32 values travel.
- ``qsgd``: stochastic quantisation to ``levels`` levels (Alistarh et al. 2017), scaled by
  1 / (1 + min(d / s^2, sqrt(d) / s)) to a contraction as in the Choco-SGD paper; one float32 norm
  and one code per entry, two codes per byte when 2 * levels + 1 <= 16 (levels 7: 4 bits).
- ``identity``: the float32 vector itself.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Mapping

import numpy as np
import torch

from .schema import spec
from ..wire import WireError

COMPRESSORS = ('identity', 'top_k', 'random_k', 'qsgd')


@dataclass(frozen=True)
class CompressionConfig:
    """Which operator compresses a sent vector, and how hard."""

    kind: str = spec('top_k', choices=COMPRESSORS)
    fraction: float = spec(0.1, gt=0.0, max=1.0)  # top_k, random_k: the share of entries sent
    levels: int = spec(7, min=1, max=127)  # qsgd: s, the levels per sign (7: 4-bit codes)


Arrays = dict[str, np.ndarray]


class Compressor:
    """One operator on flat float32 vectors of ``numel`` entries."""

    def __init__(self, config: CompressionConfig, numel: int, seed: int = 0) -> None:
        self.config = config
        self.numel = int(numel)
        self.seed = int(seed)
        self.k = max(1, min(self.numel, round(config.fraction * self.numel)))

    def generator(self, sender: int, round_k: int) -> torch.Generator:
        """Return the generator that sender and receivers share for one message."""
        state = np.random.SeedSequence([self.seed, int(sender), int(round_k)]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def encode(self, x: torch.Tensor, sender: int, round_k: int) -> Arrays:
        """Return the named arrays that carry ``x`` compressed."""
        x = x.detach().to('cpu', torch.float32).reshape(-1)
        kind = self.config.kind
        if kind == 'identity':
            return {'values': x.numpy().copy()}
        if kind == 'top_k':
            idx = torch.topk(x.abs(), self.k, sorted=False).indices.sort().values
            return {'indices': idx.to(torch.int32).numpy(), 'values': x[idx].numpy()}
        if kind == 'random_k':
            return {'values': x[self._random_indices(sender, round_k)].numpy()}
        return self._qsgd_encode(x, self.generator(sender, round_k))

    def decode(self, arrays: Mapping[str, np.ndarray], sender: int, round_k: int) -> torch.Tensor:
        """Return the dense float32 vector; raise WireError when the arrays are malformed."""
        kind = self.config.kind
        self._check(arrays)
        out = torch.zeros(self.numel, dtype=torch.float32)
        if kind == 'identity':
            out = torch.from_numpy(np.array(arrays['values'], dtype=np.float32))
        elif kind == 'top_k':
            idx = np.asarray(arrays['indices'], dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= self.numel):
                raise WireError(f'top_k indices outside [0, {self.numel})')
            if np.unique(idx).size != idx.size:
                raise WireError('top_k indices repeat')
            out[torch.from_numpy(idx)] = torch.from_numpy(np.array(arrays['values']))
        elif kind == 'random_k':
            out[self._random_indices(sender, round_k)] = torch.from_numpy(
                np.array(arrays['values'])
            )
        else:
            out = self._qsgd_decode(arrays)
        return out

    def compress(self, x: torch.Tensor, sender: int, round_k: int) -> tuple[Arrays, torch.Tensor]:
        """Return the wire arrays of ``x`` and the dense vector every receiver decodes."""
        arrays = self.encode(x, sender, round_k)
        return arrays, self.decode(arrays, sender, round_k).to(x.device)

    def layout(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Return name -> (dtype, shape) of the arrays a message of this operator holds."""
        kind = self.config.kind
        if kind == 'identity':
            return {'values': ('float32', (self.numel,))}
        if kind == 'top_k':
            return {'indices': ('int32', (self.k,)), 'values': ('float32', (self.k,))}
        if kind == 'random_k':
            return {'values': ('float32', (self.k,))}
        return {'norm': ('float32', (1,)), 'codes': ('uint8', (self._code_bytes,))}

    # internals -----------------------------------------------------------------------------------
    def _check(self, arrays: Mapping[str, np.ndarray]) -> None:
        expected = self.layout()
        if list(arrays) != list(expected):
            raise WireError(
                f'{self.config.kind} message holds {sorted(arrays)}, expected {list(expected)}'
            )
        for name, (dtype, shape) in expected.items():
            a = arrays[name]
            if a.dtype.name != dtype or tuple(a.shape) != shape:
                raise WireError(
                    f'{self.config.kind} {name!r} is {a.dtype.name} {tuple(a.shape)}, expected '
                    f'{dtype} {shape}'
                )
            if a.dtype.kind == 'f' and not np.isfinite(a).all():
                raise WireError(f'{self.config.kind} {name!r} holds NaN or infinite values')

    def _random_indices(self, sender: int, round_k: int) -> torch.Tensor:
        gen = self.generator(sender, round_k)
        return torch.randperm(self.numel, generator=gen)[: self.k].sort().values

    @property
    def _nibbles(self) -> bool:
        return 2 * self.config.levels + 1 <= 16

    @property
    def _code_bytes(self) -> int:
        return (self.numel + 1) // 2 if self._nibbles else self.numel

    @property
    def _qsgd_scale(self) -> float:
        d, s = self.numel, self.config.levels
        return 1.0 / (1.0 + min(d / s**2, math.sqrt(d) / s))

    def _qsgd_encode(self, x: torch.Tensor, gen: torch.Generator) -> Arrays:
        s = self.config.levels
        norm = float(torch.linalg.vector_norm(x))
        if norm > 0.0:
            scaled = x.abs() * (s / norm)
            level = scaled.floor()
            level += torch.rand(x.numel(), generator=gen) < (scaled - level)
            signed = torch.sign(x) * level.clamp_(max=s)
        else:
            signed = torch.zeros_like(x)
        codes = (signed + s).to(torch.uint8).numpy()
        if self._nibbles:
            if codes.size % 2:
                codes = np.append(codes, np.uint8(s))
            codes = codes[0::2] | (codes[1::2] << 4)
        return {'norm': np.array([norm], dtype=np.float32), 'codes': codes.astype(np.uint8)}

    def _qsgd_decode(self, arrays: Mapping[str, np.ndarray]) -> torch.Tensor:
        s = self.config.levels
        norm = float(arrays['norm'][0])
        if norm < 0.0:
            raise WireError('qsgd norm is negative')
        codes = np.asarray(arrays['codes'], dtype=np.uint8)
        if self._nibbles:
            codes = np.stack([codes & 0x0F, codes >> 4], axis=1).reshape(-1)[: self.numel]
        if codes.max(initial=0) > 2 * s:
            raise WireError(f'qsgd codes above {2 * s}')
        levels = torch.from_numpy(codes.astype(np.float32)) - s
        return levels * np.float32(norm * self._qsgd_scale / s)
