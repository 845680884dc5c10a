"""
Weights on the wire.

Raw bytes with names, dtypes and shapes through a real dinno_msgs/Weights.
"""

from __future__ import annotations

from dinno_ros.core.wire import (
    pack_tensors,
    pack_vector,
    PackedTensors,
    TensorLayout,
    unpack_tensors,
    unpack_vector,
    WireError,
)
import numpy as np
import pytest
import torch

codec = pytest.importorskip('dinno_ros.ros.codec', reason='dinno_msgs not built (run make setup)')


def million_parameter_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(1000, 900), torch.nn.ReLU(), torch.nn.Linear(900, 110)
    )


def test_weights_message_round_trip_of_a_1m_parameter_model():
    model = million_parameter_model()
    layout = TensorLayout.from_model(model)
    vec = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert layout.numel == vec.numel() >= 1_000_000

    msg = codec.weights_msg(vec, layout, sender=3, round_k=17, degree=2, vector='params')
    assert (msg.sender, msg.round, msg.degree, msg.vector) == (3, 17, 2, 'params')
    back = codec.values_of(msg, layout)

    assert back.numpy().tobytes() == vec.numpy().tobytes()  # bytes identical
    parsed = codec.packed_of(msg).layout()
    assert parsed == layout  # names, dtypes and shapes preserved
    assert parsed.names == ('0.weight', '0.bias', '2.weight', '2.bias')
    assert parsed.shapes == ((900, 1000), (900,), (110, 900), (110,))
    named = unpack_tensors(codec.packed_of(msg), layout)
    for (name, p), got in zip(model.named_parameters(), named.values()):
        assert np.array_equal(got, p.detach().numpy()), name


def test_mixed_dtypes_round_trip():
    tensors = {
        'a': np.arange(6, dtype=np.float64).reshape(2, 3),
        'b': np.array([1, -2], dtype=np.int64),
        'c': np.ones((2, 2, 2), dtype=np.float16),
    }
    out = unpack_tensors(pack_tensors(tensors))
    assert list(out) == ['a', 'b', 'c']
    for k, v in tensors.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape and np.array_equal(out[k], v)


def _good() -> tuple[PackedTensors, TensorLayout]:
    layout = TensorLayout(('w', 'b'), ('float32', 'float32'), ((2, 3), (3,)))
    return pack_vector(torch.arange(9, dtype=torch.float32), layout), layout


@pytest.mark.parametrize(
    'corrupt, message',
    [
        (lambda p: setattr(p, 'data', p.data[:-4]), 'bytes'),
        (lambda p: p.dtypes.__setitem__(0, 'complex1024'), 'unknown dtype'),
        (lambda p: p.shapes.__setitem__(0, 3), 'shape'),
        (lambda p: p.ndims.__setitem__(1, 2), 'ndims'),
        (lambda p: p.names.__setitem__(1, 'bias'), 'names'),
        (lambda p: setattr(p, 'data', np.full(9, np.nan, np.float32).tobytes()), 'non-finite'),
    ],
)
def test_malformed_vectors_are_rejected(corrupt, message):
    packed, layout = _good()
    corrupt(packed)
    with pytest.raises(WireError, match=message):
        unpack_vector(packed, layout)


def test_good_vector_unpacks():
    packed, layout = _good()
    assert torch.equal(unpack_vector(packed, layout), torch.arange(9, dtype=torch.float32))


@pytest.mark.parametrize('numpy_dot', [False, True], ids=['torch-dot', 'numpy-dot'])
def test_both_bound_checks_reject_what_they_must(monkeypatch, numpy_dot: bool):
    """Node processes check with numpy's dot (one BLAS thread), others with torch's: alike."""
    from dinno_ros.core import wire

    monkeypatch.setattr(wire, '_BLAS_ONE_THREAD', numpy_dot)
    layout = TensorLayout.flat(1000)
    values = torch.linspace(-2.0, 2.0, 1000)
    assert torch.equal(unpack_vector(pack_vector(values, layout), layout, max_abs=2.0), values)
    for bad, message in ((float('nan'), 'non-finite'), (float('inf'), 'non-finite'), (2.5, '2.5')):
        corrupt = values.clone()
        corrupt[123] = bad
        with pytest.raises(WireError, match=message):
            unpack_vector(pack_vector(corrupt, layout), layout, max_abs=2.0)
