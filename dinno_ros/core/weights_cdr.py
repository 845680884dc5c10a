"""
A ``dinno_msgs/Weights`` message as the bytes DDS carries (CDR, little endian), without rclpy.

Robots publish these bytes and parse the bytes they take, so a weights message crosses Python
once: one copy of the tensor bytes into the message, and none out of it (``WeightsFrame.data`` is
a view on the received buffer). ``encode_weights`` gives the bytes
``rclpy.serialization.serialize_message`` gives for the same message (with zeros where that leaves
alignment padding uninitialised), and ``decode_weights`` reads anything that function writes (both
tested); a buffer that is not a well-formed Weights message raises WireError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import struct

from .wire import PackedTensors, WireError

ENCAPSULATION = b'\x00\x01\x00\x00'  # CDR, little endian
_U32S = {n: struct.Struct(f'<{n}I') for n in range(1, 9)}  # the counts a message's header uses
_STAMP = struct.Struct('<iI')  # std_msgs/Header's stamp: sec, nanosec
MAX_FIELD_ENTRIES = 1 << 20  # names / dtypes / shapes entries a message may hold


@dataclass
class Header:
    """``std_msgs/Header``: seconds, nanoseconds and frame of the stamp."""

    sec: int = 0
    nanosec: int = 0
    frame_id: str = ''


@dataclass
class WeightsFrame:
    """The fields of one ``dinno_msgs/Weights`` message (the names of the generated class)."""

    sender: int
    round: int  # noqa: A003 (the message's field name)
    degree: int
    vector: str
    names: list[str]
    dtypes: list[str]
    ndims: list[int]
    shapes: list[int]
    data: bytes | bytearray | memoryview
    swarm: str = ''
    mac: bytes = b''
    header: Header = field(default_factory=Header)

    @classmethod
    def of(cls, packed: PackedTensors, sender: int, round_k: int, degree: int, vector: str):
        """Return the frame that carries ``packed`` (unsigned, stamp zero)."""
        return cls(
            int(sender),
            int(round_k),
            int(degree),
            vector,
            list(packed.names),
            list(packed.dtypes),
            list(map(int, packed.ndims)),
            list(map(int, packed.shapes)),
            packed.data,
        )

    def packed(self) -> PackedTensors:
        """Return the tensor fields (no copy of the data)."""
        return PackedTensors(self.names, self.dtypes, self.ndims, self.shapes, self.data)


def _u32s(count: int) -> struct.Struct:
    """Return the layout of ``count`` little-endian uint32 (compiled once for short runs)."""
    return _U32S.get(count) or struct.Struct(f'<{count}I')


class _Writer:
    """
    Build a message's bytes, aligned as CDR aligns them (``keep=False``: only count them).

    Small fields go into one growing buffer; an octet sequence (the tensor bytes) is kept as the
    caller's view and copied once, by :meth:`join`.
    """

    def __init__(self, keep: bool = True) -> None:
        self.parts: list[bytes | memoryview] = []
        self.buf = bytearray()
        self.keep = keep
        self.done = 0  # bytes in parts (CDR aligns relative to the end of the encapsulation)

    @property
    def size(self) -> int:
        """Return the bytes written so far, after the encapsulation header."""
        return self.done + len(self.buf)

    def align4(self) -> None:
        self.buf += _PADS[-(self.done + len(self.buf)) % 4]

    def u32(self, *values: int) -> None:
        self.align4()
        self.buf += _u32s(len(values)).pack(*values)

    def string(self, text: str) -> None:
        raw = text.encode()
        self.align4()
        self.buf += _U32S[1].pack(len(raw) + 1)
        self.buf += raw
        self.buf += b'\x00'

    def strings(self, texts: list[str]) -> None:
        self.u32(len(texts))
        for text in texts:
            self.string(text)

    def u32s(self, values: list[int]) -> None:
        self.u32(len(values), *values)

    def octets(self, raw: bytes | bytearray | memoryview) -> None:
        view = bytes(raw) if isinstance(raw, (list, tuple)) else memoryview(raw).cast('B')
        self.u32(len(view))
        if len(view) < _INLINE_OCTETS:
            self.buf += view
            return
        self.done += len(self.buf) + len(view)
        if self.keep:
            self.parts += (bytes(self.buf), view)
        self.buf = bytearray()

    def join(self) -> bytes:
        """Return the message: encapsulation header and everything written."""
        return b''.join([ENCAPSULATION, *self.parts, self.buf])


_PADS = (b'', b'\x00', b'\x00\x00', b'\x00\x00\x00')
_INLINE_OCTETS = 4096  # shorter octet sequences (a MAC) are copied into the buffer at once


def _layout_bytes(
    names: list[str], dtypes: list[str], ndims: list[int], shapes: list[int]
) -> bytes:
    """
    Return the names, dtypes, ndims and shapes fields as CDR, from a 4-aligned offset.

    Every field in them is 4-aligned, so these bytes do not depend on where they start; a robot
    sends the same ones every round (the last few are kept).
    """
    key = (tuple(names), tuple(dtypes), tuple(ndims), tuple(shapes))
    raw = _LAYOUTS.get(key)
    if raw is None:
        w = _Writer()
        w.strings(names)
        w.strings(dtypes)
        w.u32s(ndims)
        w.u32s(shapes)
        raw = bytes(w.buf)
        if len(_LAYOUTS) >= _LAYOUTS_KEPT:
            _LAYOUTS.clear()
        _LAYOUTS[key] = raw
    return raw


_LAYOUTS: dict[tuple, bytes] = {}
_LAYOUTS_KEPT = 8


def _write(w: _Writer, frame: WeightsFrame) -> None:
    w.buf += _STAMP.pack(frame.header.sec, frame.header.nanosec)
    w.string(frame.header.frame_id)
    w.u32(frame.sender, frame.round, frame.degree)
    w.string(frame.vector)
    w.align4()
    w.buf += _layout_bytes(frame.names, frame.dtypes, frame.ndims, frame.shapes)
    w.octets(frame.data)
    w.string(frame.swarm)
    w.octets(frame.mac)


def encode_weights(frame: WeightsFrame) -> bytes:
    """Return the serialised message (one copy of ``frame.data``)."""
    w = _Writer()
    _write(w, frame)
    return w.join()


def weights_wire_bytes(
    packed: PackedTensors, vector: str, frame_id: str = '', swarm_id: str = '', mac: int = 0
) -> int:
    """
    Return the bytes of a ``dinno_msgs/Weights`` message holding ``packed`` as DDS carries it.

    The length of ``encode_weights`` (and of ``rclpy.serialization.serialize_message``), counted
    without building the message. The swarm counts its messages unsigned (``swarm_id`` and
    ``mac`` empty): signing adds ``len(swarm_id) + mac`` bytes (HMAC-SHA256: 32).
    """
    frame = WeightsFrame.of(packed, 0, 0, 0, vector)
    frame.header.frame_id, frame.swarm, frame.mac = frame_id, swarm_id, bytes(mac)
    w = _Writer(keep=False)
    _write(w, frame)
    return len(ENCAPSULATION) + w.size


class _Reader:
    """Read fields of a message in order; WireError past its end."""

    def __init__(self, raw: bytes | memoryview) -> None:
        self.view = memoryview(raw).cast('B')
        if bytes(self.view[:2]) != ENCAPSULATION[:2]:
            raise WireError('not a little-endian CDR message')
        self.body = self.view[4:]
        self.size = len(self.body)
        self.pos = 0

    def _end(self, n: int) -> int:
        end = self.pos + n
        if n < 0 or end > self.size:
            raise WireError(f'message ends at byte {self.size}, a field needs {end}')
        return end

    def take(self, n: int) -> memoryview:
        end = self._end(n)
        out = self.body[self.pos:end]
        self.pos = end
        return out

    def u32(self, count: int = 1) -> tuple[int, ...]:
        self.pos += -self.pos % 4
        end = self._end(4 * count)
        out = _u32s(count).unpack_from(self.body, self.pos)
        self.pos = end
        return out

    def count(self) -> int:
        (n,) = self.u32()
        if n > MAX_FIELD_ENTRIES:
            raise WireError(f'a field claims {n} entries, more than {MAX_FIELD_ENTRIES}')
        return n

    def string(self) -> str:
        (n,) = self.u32()
        end = self._end(n)
        if n == 0 or self.body[end - 1] != 0:
            raise WireError('a string is not NUL-terminated')
        raw, self.pos = self.body[self.pos:end - 1], end
        try:
            return str(raw, 'utf-8')
        except UnicodeDecodeError as exc:
            raise WireError(f'a string is not UTF-8: {exc}') from None

    def strings(self) -> list[str]:
        return [self.string() for _ in range(self.count())]

    def u32s(self) -> list[int]:
        return list(self.u32(self.count()))

    def octets(self) -> memoryview:
        (n,) = self.u32()
        return self.take(n)

    def layout(self) -> tuple[list[str], list[str], list[int], list[int]]:
        """
        Read the names, dtypes, ndims and shapes fields.

        When their bytes are the last message's (a sender's every round), its parse is reused.
        """
        global _LAST_LAYOUT
        self.pos += -self.pos % 4
        raw, fields = _LAST_LAYOUT
        end = self.pos + len(raw)
        if raw and end <= self.size and self.body[self.pos:end] == raw:
            self.pos = end
        else:
            start = self.pos
            fields = (self.strings(), self.strings(), self.u32s(), self.u32s())
            _LAST_LAYOUT = (bytes(self.body[start:self.pos]), fields)
        return tuple(list(f) for f in fields)


_LAST_LAYOUT: tuple[bytes, tuple] = (b'', ())  # the layout fields last read, and their parse


def decode_weights(raw: bytes | memoryview) -> WeightsFrame:
    """Parse a serialised message; ``data`` stays a view on ``raw``. WireError when malformed."""
    r = _Reader(raw)
    sec, nanosec = _STAMP.unpack(r.take(8))
    header = Header(sec, nanosec, r.string())
    sender, round_k, degree = r.u32(3)
    vector = r.string()
    names, dtypes, ndims, shapes = r.layout()
    data = r.octets()
    swarm = r.string()
    mac = bytes(r.octets())
    return WeightsFrame(
        sender, round_k, degree, vector, names, dtypes, ndims, shapes, data, swarm, mac, header
    )
