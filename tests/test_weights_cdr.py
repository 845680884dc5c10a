"""
The Weights message as bytes: our CDR codec against rclpy's own serialisation.

Robots publish ``encode_weights`` bytes and parse what they take with ``decode_weights``; both must
agree with ``rclpy.serialization`` field for field, and nothing but WireError may come out of
bytes that are not a Weights message.
"""

from __future__ import annotations

from dinno_ros.core.swarm.auth import SwarmCredentials
from dinno_ros.core.weights_cdr import decode_weights, encode_weights, WeightsFrame
from dinno_ros.core.wire import pack_tensors, pack_vector, TensorLayout, unpack_vector, WireError
import numpy as np
import pytest
import torch

codec = pytest.importorskip('dinno_ros.ros.codec', reason='dinno_msgs not built (run make setup)')
serialization = pytest.importorskip('rclpy.serialization')
Weights = pytest.importorskip('dinno_msgs.msg').Weights


def messages() -> list:
    """Weights messages that cover every field: empty, dense, mixed dtypes, stamped and signed."""
    layout = TensorLayout.flat(1000)
    dense = codec.weights_msg(torch.randn(1000), layout, sender=3, round_k=17, degree=2)
    mixed = codec.packed_weights_msg(
        pack_tensors({'idx': np.arange(7, dtype=np.int32), 'val': np.ones((2, 3), np.float16)}),
        sender=1,
        round_k=0,
        degree=5,
        vector='delta',
        credentials=SwarmCredentials('swarm-\u00e9', b'k' * 32),
    )
    stamped = Weights(sender=9, round=2**32 - 1, vector='tracker', swarm='s', mac=b'\x00\xff')
    stamped.header.stamp.sec, stamped.header.stamp.nanosec = -5, 999_999_999
    stamped.header.frame_id = 'map'
    return [Weights(), dense, mixed, stamped]


@pytest.mark.parametrize('index', range(4))
def test_bytes_and_fields_agree_with_rclpy(index: int) -> None:
    msg = messages()[index]
    ref = serialization.serialize_message(msg)
    frame = decode_weights(ref)
    assert (frame.sender, frame.round, frame.degree, frame.vector) == (
        msg.sender,
        msg.round,
        msg.degree,
        msg.vector,
    )
    assert (frame.names, frame.dtypes) == (list(msg.names), list(msg.dtypes))
    assert (frame.ndims, frame.shapes) == (list(msg.ndims), list(msg.shapes))
    assert bytes(frame.data) == bytes(msg.data) and frame.mac == bytes(msg.mac)
    assert (frame.swarm, frame.header.frame_id) == (msg.swarm, msg.header.frame_id)
    assert (frame.header.sec, frame.header.nanosec) == (
        msg.header.stamp.sec,
        msg.header.stamp.nanosec,
    )
    ours = encode_weights(frame)
    assert len(ours) == len(ref)
    assert serialization.deserialize_message(ours, Weights) == msg


def test_a_new_layout_after_a_repeated_one_is_read_and_written_as_it_is() -> None:
    """The codec reuses the last layout's bytes and parse: a message that differs is not it."""
    twin = TensorLayout(('w', 'b'), ('float32', 'float32'), ((2, 3), (3,)))
    shapes = [twin, twin, TensorLayout(('w', 'b'), ('float32', 'float32'), ((3, 2), (3,)))]
    shapes += [TensorLayout(('w', 'bias'), ('float32', 'float32'), ((2, 3), (3,))), twin]
    for layout in shapes:
        vec = torch.randn(layout.numel)
        raw = codec.weights_bytes(pack_vector(vec, layout), sender=1, round_k=2, degree=1)
        msg = serialization.deserialize_message(raw, Weights)
        assert list(msg.names) == list(layout.names)
        assert list(msg.shapes) == [d for s in layout.shapes for d in s]
        frame = decode_weights(serialization.serialize_message(msg))
        assert layout.described_by(frame.packed())
        assert torch.equal(codec.values_of(frame, layout), vec)
    with pytest.raises(WireError, match="tensor 'w' has shape"):
        codec.values_of(frame, shapes[2])


def test_signed_bytes_verify_like_the_message_they_replace() -> None:
    creds = SwarmCredentials('swarm-a', b'k' * 32)
    packed = pack_vector(torch.arange(10.0), TensorLayout.flat(10))
    raw = codec.weights_bytes(packed, sender=2, round_k=4, degree=3, credentials=creds)
    msg = codec.packed_weights_msg(packed, sender=2, round_k=4, degree=3, credentials=creds)
    assert serialization.deserialize_message(raw, Weights) == msg
    frame = decode_weights(raw)
    assert creds.verify(codec.weights_header(frame), frame.data, frame.mac)
    frame.round = 5  # a replayed message under another round tag
    assert not creds.verify(codec.weights_header(frame), frame.data, frame.mac)


def test_taken_values_are_the_sent_ones_without_a_copy() -> None:
    vec = torch.randn(5000)
    layout = TensorLayout.flat(5000)
    raw = codec.weights_bytes(pack_vector(vec, layout), sender=0, round_k=0, degree=1)
    frame = decode_weights(raw)
    values = codec.values_of(frame, layout, max_abs=1e6)
    assert torch.equal(values, vec)
    assert np.shares_memory(values.numpy(), np.frombuffer(raw, np.uint8))


@pytest.mark.parametrize(
    'bad, reason',
    [
        (float('nan'), 'non-finite'),
        (float('inf'), 'non-finite'),
        (2e6, 'beyond'),
        (-2e6, 'beyond'),
    ],
)
def test_taken_values_are_checked(bad: float, reason: str) -> None:
    vec = torch.zeros(1000)
    vec[123] = bad
    packed = pack_vector(vec, TensorLayout.flat(1000))
    with pytest.raises(WireError, match=reason):
        unpack_vector(packed, max_abs=1e6)
    vec[123] = 9e5  # within the bound
    assert torch.equal(unpack_vector(pack_vector(vec, TensorLayout.flat(1000)), max_abs=1e6), vec)


def test_an_entry_just_past_the_bound_is_caught_where_the_sum_of_squares_is_close() -> None:
    vec = torch.full((100,), 1e-3)
    vec[0] = 1e6 * (1 + 1e-6)  # its square alone is just past the bound's
    with pytest.raises(WireError, match='beyond'):
        unpack_vector(pack_vector(vec, TensorLayout.flat(100)), max_abs=1e6)


def test_every_cut_and_every_flipped_count_is_a_wire_error() -> None:
    raw = encode_weights(
        WeightsFrame.of(pack_vector(torch.ones(4), TensorLayout.flat(4)), 1, 2, 3, 'params')
    )
    for end in range(len(raw)):
        with pytest.raises(WireError):
            decode_weights(raw[:end])
    for pos in range(4, len(raw) - 3, 4):  # every aligned 32-bit word set to a huge count
        broken = raw[:pos] + b'\xff\xff\xff\x7f' + raw[pos + 4:]
        try:
            decode_weights(broken)
        except WireError:
            pass
    with pytest.raises(WireError, match='little-endian'):
        decode_weights(b'\x00\x00\x00\x00' + raw[4:])
