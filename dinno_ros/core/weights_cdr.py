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
            [int(v) for v in packed.ndims],
            [int(v) for v in packed.shapes],
            packed.data,
        )

    def packed(self) -> PackedTensors:
        """Return the tensor fields (no copy of the data)."""
        return PackedTensors(self.names, self.dtypes, self.ndims, self.shapes, self.data)


def _u32s(count: int) -> struct.Struct:
    """Return the layout of ``count`` little-endian uint32 (compiled once for short runs)."""
    return _U32S.get(count) or struct.Struct(f'<{count}I')


class _Writer:
    """Collect the parts of a message, aligned as CDR aligns them (``keep=False``: count only)."""

    def __init__(self, keep: bool = True) -> None:
        self.parts: list[bytes | memoryview] = []
        self.keep = keep
        self.size = 0  # bytes after the encapsulation header (CDR aligns relative to it)

    def put(self, raw: bytes | memoryview) -> None:
        if self.keep:
            self.parts.append(raw)
        self.size += len(raw)

    def align(self, n: int) -> None:
        pad = -self.size % n
        if pad:
            self.put(b'\x00' * pad)

    def u32(self, *values: int) -> None:
        self.align(4)
        self.put(_u32s(len(values)).pack(*values))

    def string(self, text: str) -> None:
        raw = text.encode()
        self.align(4)
        self.put(_U32S[1].pack(len(raw) + 1) + raw + b'\x00')

    def strings(self, texts: list[str]) -> None:
        self.u32(len(texts))
        for text in texts:
            self.string(text)

    def u32s(self, values: list[int]) -> None:
        self.u32(len(values), *values)

    def octets(self, raw: bytes | bytearray | memoryview) -> None:
        view = bytes(raw) if isinstance(raw, (list, tuple)) else memoryview(raw).cast('B')
        self.u32(len(view))
        self.put(view)


def _write(w: _Writer, frame: WeightsFrame) -> None:
    w.put(struct.pack('<iI', frame.header.sec, frame.header.nanosec))
    w.string(frame.header.frame_id)
    w.u32(frame.sender, frame.round, frame.degree)
    w.string(frame.vector)
    w.strings(frame.names)
    w.strings(frame.dtypes)
    w.u32s(frame.ndims)
    w.u32s(frame.shapes)
    w.octets(frame.data)
    w.string(frame.swarm)
    w.octets(frame.mac)


def encode_weights(frame: WeightsFrame) -> bytes:
    """Return the serialised message (one copy of ``frame.data``)."""
    w = _Writer()
    _write(w, frame)
    return b''.join([ENCAPSULATION, *w.parts])


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


def decode_weights(raw: bytes | memoryview) -> WeightsFrame:
    """Parse a serialised message; ``data`` stays a view on ``raw``. WireError when malformed."""
    r = _Reader(raw)
    sec, nanosec = struct.unpack('<iI', r.take(8))
    header = Header(sec, nanosec, r.string())
    sender, round_k, degree = r.u32(3)
    vector = r.string()
    names, dtypes = r.strings(), r.strings()
    ndims, shapes = r.u32s(), r.u32s()
    data = r.octets()
    swarm = r.string()
    mac = bytes(r.octets())
    return WeightsFrame(
        sender, round_k, degree, vector, names, dtypes, ndims, shapes, data, swarm, mac, header
    )
