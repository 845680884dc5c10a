"""
Tensors on the wire: raw bytes plus names, dtypes and shapes. Never pickle.

This is where a tensor becomes bytes (``pack_vector``) and bytes become a tensor again
(``unpack_vector``, which validates everything a neighbour sent before it touches the optimizer).
``dinno_ros.ros.codec`` copies these fields into and out of ``dinno_msgs/Weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
import math
import os
from typing import Iterable, Mapping, Sequence
import warnings

import numpy as np
import torch

#: dtypes a receiver accepts (numpy names, little-endian on the wire)
WIRE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder('<')
    for name in (
        'float16',
        'float32',
        'float64',
        'int8',
        'int16',
        'int32',
        'int64',
        'uint8',
        'bool',
    )
}
_TORCH_TO_NUMPY = {torch.float16: 'float16', torch.float32: 'float32', torch.float64: 'float64'}


class WireError(ValueError):
    """
    A tensor message that does not describe what its bytes hold.

    Or one that does not describe what the receiver expects.
    """


@dataclass(frozen=True)
class TensorLayout:
    """Names, dtypes and shapes of the tensors that make up one flat vector, in order."""

    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> 'TensorLayout':
        """Return the layout of ``parameters_to_vector(model.parameters())``."""
        named = list(model.named_parameters())
        return cls(
            names=tuple(n for n, _ in named),
            dtypes=tuple(
                _TORCH_TO_NUMPY.get(p.dtype, str(p.dtype).removeprefix('torch.')) for _, p in named
            ),
            shapes=tuple(tuple(p.shape) for _, p in named),
        )

    @classmethod
    def flat(cls, numel: int, dtype: str = 'float32', name: str = 'vector') -> 'TensorLayout':
        return cls(names=(name,), dtypes=(dtype,), shapes=((numel,),))

    @cached_property
    def numels(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    @cached_property
    def numel(self) -> int:
        return sum(self.numels)

    @cached_property
    def nbytes(self) -> int:
        return sum(n * WIRE_DTYPES[d].itemsize for n, d in zip(self.numels, self.dtypes))

    @cached_property
    def fields(self) -> tuple[list[str], list[str], list[int], list[int]]:
        """Return the wire's names, dtypes, ndims and shapes fields that describe this layout."""
        return (
            list(self.names),
            list(self.dtypes),
            [len(s) for s in self.shapes],
            [d for s in self.shapes for d in s],
        )

    @cached_property
    def one_dtype(self) -> bool:
        """Whether every tensor has the same dtype (the vector is one array on the wire)."""
        return len(set(self.dtypes)) == 1

    def described_by(self, packed: PackedTensors) -> bool:
        """Whether ``packed``'s descriptive fields are exactly this layout's (a fast check)."""
        names, dtypes, ndims, shapes = self.fields
        return (
            packed.names == names
            and packed.dtypes == dtypes
            and packed.ndims == ndims
            and packed.shapes == shapes
        )


@dataclass
class PackedTensors:
    """The wire fields of ``dinno_msgs/Weights`` that describe tensors (see the .msg file)."""

    names: list[str]
    dtypes: list[str]
    ndims: list[int]
    shapes: list[int]
    data: bytes | bytearray | memoryview | Sequence[int]

    def layout(self) -> TensorLayout:
        """Parse and check the descriptive fields; raise WireError when they disagree."""
        n = len(self.names)
        if len(self.dtypes) != n or len(self.ndims) != n:
            raise WireError(
                'names, dtypes and ndims must have one entry per tensor, '
                f'got {n}, {len(self.dtypes)}, {len(self.ndims)}'
            )
        if sum(self.ndims) != len(self.shapes):
            raise WireError(
                f'shapes holds {len(self.shapes)} dims but ndims add up to {sum(self.ndims)}'
            )
        unknown = [d for d in self.dtypes if d not in WIRE_DTYPES]
        if unknown:
            raise WireError(f'unknown dtype {unknown[0]!r}; allowed: {", ".join(WIRE_DTYPES)}')
        shapes, pos = [], 0
        for nd in self.ndims:
            end = pos + nd
            shapes.append(tuple(int(s) for s in self.shapes[pos:end]))
            pos = end
        return TensorLayout(tuple(self.names), tuple(self.dtypes), tuple(shapes))


def pack_vector(
    vector: torch.Tensor | np.ndarray, layout: TensorLayout, copy: bool = True
) -> PackedTensors:
    """
    Pack one flat vector, described as the tensors of ``layout``, into wire fields.

    One copy, no pickle; none with ``copy=False`` where the vector's memory already holds the wire
    bytes (the caller then hands the vector over: nothing may write to it afterwards).
    """
    arr = vector.detach().cpu().numpy() if isinstance(vector, torch.Tensor) else np.asarray(vector)
    if arr.ndim != 1 or arr.size != layout.numel:
        raise WireError(
            f"vector of shape {arr.shape} does not match the layout's {layout.numel} elements"
        )
    names, dtypes, ndims, shapes = layout.fields
    if layout.one_dtype:
        wire = np.ascontiguousarray(arr, dtype=WIRE_DTYPES[dtypes[0]])
        data = wire.tobytes() if copy else memoryview(wire).cast('B')
    else:
        parts, pos = [], 0
        for n, d in zip(layout.numels, layout.dtypes):
            end = pos + n
            parts.append(np.ascontiguousarray(arr[pos:end], dtype=WIRE_DTYPES[d]).tobytes())
            pos = end
        data = b''.join(parts)
    return PackedTensors(list(names), list(dtypes), list(ndims), list(shapes), data)


def pack_tensors(tensors: Mapping[str, torch.Tensor | np.ndarray]) -> PackedTensors:
    """Named tensors of any supported dtype into wire fields."""
    arrays = {
        k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
        for k, v in tensors.items()
    }
    for name, a in arrays.items():
        if a.dtype.name not in WIRE_DTYPES:
            raise WireError(
                f'tensor {name!r} has dtype {a.dtype.name}; allowed: {", ".join(WIRE_DTYPES)}'
            )
    return PackedTensors(
        names=list(arrays),
        dtypes=[a.dtype.name for a in arrays.values()],
        ndims=[a.ndim for a in arrays.values()],
        shapes=[d for a in arrays.values() for d in a.shape],
        data=b''.join(
            np.ascontiguousarray(a, dtype=WIRE_DTYPES[a.dtype.name]).tobytes()
            for a in arrays.values()
        ),
    )


def _check_expected(got: TensorLayout, expected: TensorLayout) -> None:
    if got.names != expected.names:
        raise WireError(
            'tensor names differ from the expected layout '
            f'(got {len(got.names)} tensors, e.g. {got.names[:2]})'
        )
    if got.dtypes != expected.dtypes:
        raise WireError(f'dtypes {got.dtypes} differ from the expected {expected.dtypes}')
    for name, g, e in zip(got.names, got.shapes, expected.shapes):
        if g != e:
            raise WireError(f'tensor {name!r} has shape {g}, expected {e}')


def _split(packed: PackedTensors, layout: TensorLayout) -> Iterable[np.ndarray]:
    buf = (
        memoryview(packed.data).cast('B')
        if not isinstance(packed.data, (list, tuple))
        else bytes(packed.data)
    )
    if len(buf) != layout.nbytes:
        raise WireError(f'data holds {len(buf)} bytes but the tensors need {layout.nbytes}')
    pos = 0
    for n, d in zip(layout.numels, layout.dtypes):
        dt = WIRE_DTYPES[d]
        yield np.frombuffer(buf, dtype=dt, count=n, offset=pos)
        pos += n * dt.itemsize


def unpack_tensors(
    packed: PackedTensors, expected: TensorLayout | None = None
) -> dict[str, np.ndarray]:
    """Wire fields -> named arrays (views on the received bytes), validated."""
    layout = packed.layout()
    if expected is not None:
        _check_expected(layout, expected)
    return {
        name: a.reshape(shape)
        for name, a, shape in zip(layout.names, _split(packed, layout), layout.shapes)
    }


def unpack_vector(
    packed: PackedTensors,
    expected: TensorLayout | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = 'cpu',
    require_finite: bool = True,
    max_abs: float | None = None,
) -> torch.Tensor:
    """
    Wire fields -> one flat tensor on ``device``.

    Raises WireError on any inconsistency, non-finite value or entry beyond ``max_abs``.
    """
    if expected is not None and expected.described_by(packed):
        layout = expected  # a robot's every message: no need to parse the fields again
    else:
        layout = packed.layout()
        if expected is not None:
            _check_expected(layout, expected)
    parts = list(_split(packed, layout))
    flat = (
        parts[0]
        if len(parts) == 1
        else np.concatenate([p.astype(np.float64, copy=False) for p in parts])
    )
    if flat.dtype.kind == 'f':
        _check_values(flat, require_finite, max_abs)
    tensor = _as_tensor(flat)
    if tensor.dtype == dtype and device == 'cpu':
        return tensor
    return tensor.to(device=device, dtype=dtype)


_READ_ONLY_SEEN = False  # torch has given its one warning about a read-only array


def _as_tensor(flat: np.ndarray) -> torch.Tensor:
    """
    Return a tensor on ``flat``'s memory, also when that is the received, read-only buffer.

    Nothing writes into a received vector: the optimizers stack neighbour vectors (a copy) before
    any arithmetic, so the bytes DDS delivered are never copied to be read.
    """
    global _READ_ONLY_SEEN
    if flat.flags.writeable or _READ_ONLY_SEEN:
        return torch.from_numpy(flat)
    with warnings.catch_warnings():  # torch warns once per process: the array is not writable
        warnings.simplefilter('ignore', UserWarning)
        tensor = torch.from_numpy(flat)
    _READ_ONLY_SEEN = True
    return tensor


def _check_values(values: np.ndarray, finite: bool, max_abs: float | None) -> None:
    """
    Raise WireError for NaN or inf (when ``finite``) or an entry beyond ``max_abs``.

    One pass for the common case (``_plainly_within``); only a vector that fails it is searched
    entry by entry.
    """
    if (not finite and max_abs is None) or _plainly_within(values, max_abs):
        return
    tensor = _as_tensor(values)
    if finite:
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise WireError(f'vector holds {bad} non-finite values (NaN or inf)')
    if max_abs is not None:
        _check_peak(tensor, max_abs)


MESSAGE_SLACK = 64 * 1024  # bytes a message may hold beyond its tensors (names, header, MAC)
STATE_MAX_BYTES = 64 * 1024  # a RobotState is a few hundred bytes


def max_message_bytes(layout: TensorLayout) -> int:
    """
    Return the largest serialised Weights message a receiver takes for a model of ``layout``.

    8 bytes per parameter (float64 values, or float32 values with int32 indices: any encoding the
    optimizers use) plus ``MESSAGE_SLACK``; anything longer is dropped before it is decoded.
    """
    return 8 * layout.numel + MESSAGE_SLACK


# numpy's BLAS dot is 1.6x torch.dot's speed on one thread here, but where BLAS may use more
# threads its idle workers spin on the cores torch trains on (the offline runner: 280 ms a round
# instead of 216): only node processes, which the plan starts with OPENBLAS_NUM_THREADS=1, use it
_BLAS_ONE_THREAD = os.environ.get('OPENBLAS_NUM_THREADS') == '1'
_NUMPY_DOT_DTYPES = (torch.float32, torch.float64)
_NUMPY_DOT_NP = (np.dtype('float32'), np.dtype('float64'))


def _plainly_within(values: torch.Tensor | np.ndarray, max_abs: float | None) -> bool:
    """
    Whether one pass shows every entry finite and (``max_abs``) within the bound.

    The sum of squares bounds every entry and is NaN or inf when one is; False means "look
    closer", not "out of bounds".
    """
    if isinstance(values, np.ndarray):
        if not (_BLAS_ONE_THREAD and values.dtype in _NUMPY_DOT_NP):
            return _plainly_within(_as_tensor(values), max_abs)
        arr = values.reshape(-1)
        total = float(np.dot(arr, arr))
    elif not values.is_floating_point() or values.dtype == torch.float16:
        return False
    elif _BLAS_ONE_THREAD and values.device.type == 'cpu' and values.dtype in _NUMPY_DOT_DTYPES:
        arr = values.reshape(-1).numpy()
        total = float(np.dot(arr, arr))
    else:
        flat = values.reshape(-1)
        total = float(torch.dot(flat, flat))
    return math.isfinite(total) and (max_abs is None or total <= 0.99 * max_abs * max_abs)


def _check_peak(values: torch.Tensor, max_abs: float) -> None:
    peak = float(values.abs().max())
    if not peak <= max_abs:
        raise WireError(f'vector holds a value of magnitude {peak:.3g}, beyond {max_abs:g}')


def check_bound(values: torch.Tensor, max_abs: float | None) -> torch.Tensor:
    """Return ``values``; WireError when an entry's magnitude exceeds ``max_abs`` (None: none)."""
    if max_abs is not None and values.numel() and not _plainly_within(values, max_abs):
        _check_peak(values, max_abs)
    return values
