"""Frames on a stream: a 4-byte big-endian length, then one `node.codec` message `[kind, body]`.

Each request uses one bidirectional stream: the dialler writes one REQUEST frame and ends its
side; the other side answers with one RESPONSE (or ERROR) frame and ends. A reader therefore
expects exactly one frame per stream direction and treats anything else (a length above the
limit, bytes after the frame, a stream ending early, a body that is not `[kind, bytes]`) as a
protocol violation. Pure and synchronous.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from node import codec
from node.transport.errors import FrameTooLarge, MalformedFrame

MAX_FRAME = codec.MAX_MESSAGE_BYTES  # 1 MiB: limit of the encoded message after the length prefix
_HEADER = struct.Struct(">I")


class Kind(IntEnum):
    REQUEST = 0
    RESPONSE = 1
    ERROR = 2  # the handler failed; the body is a UTF-8 reason


_KINDS = frozenset(int(k) for k in Kind)


@dataclass(frozen=True)
class Frame:
    kind: Kind
    body: bytes


# The message is always the canonical msgpack of `[kind, body]`, exactly what `codec.pack` gives:
# fixarray(2), a positive fixint kind, then bin8/bin16/bin32 in its shortest form. Hot paths build
# and check that layout directly (tests/transport pin it to `codec.pack`), about five times cheaper.
_BIN8, _BIN16, _BIN32 = 0xC4, 0xC5, 0xC6


def _envelope(kind: int, size: int) -> bytes:
    if size < 0x100:
        return bytes((0x92, kind, _BIN8, size))
    if size < 0x10000:
        return bytes((0x92, kind, _BIN16)) + size.to_bytes(2, "big")
    return bytes((0x92, kind, _BIN32)) + size.to_bytes(4, "big")


def encode_frame(kind: Kind, body: bytes, *, max_frame: int = MAX_FRAME) -> bytes:
    envelope = _envelope(int(kind), len(body))
    size = len(envelope) + len(body)
    if size > max_frame:
        raise FrameTooLarge(f"a frame of {size} bytes exceeds the limit of {max_frame}")
    return b"".join((_HEADER.pack(size), envelope, body))


def decode_message(message: bytes | bytearray | memoryview, *, max_frame: int = MAX_FRAME) -> Frame:
    """Decode `[kind, body]`, accepting only its canonical encoding."""
    view = memoryview(message)
    size = len(view)
    if size > max_frame:
        raise FrameTooLarge(f"a frame of {size} bytes exceeds the limit of {max_frame}")
    if size < 4 or view[0] != 0x92:
        raise MalformedFrame("frame body is not [kind, bytes]")
    kind, marker = view[1], view[2]
    if kind not in _KINDS:
        raise MalformedFrame(f"unknown frame kind {kind!r}")
    if marker == _BIN8:
        start, length, shortest = 4, view[3], True
    elif marker == _BIN16 and size >= 5:
        start, length = 5, int.from_bytes(view[3:5], "big")
        shortest = length >= 0x100
    elif marker == _BIN32 and size >= 7:
        start, length = 7, int.from_bytes(view[3:7], "big")
        shortest = length >= 0x10000
    else:
        raise MalformedFrame("frame body is not [kind, bytes]")
    if start + length != size or not shortest:
        raise MalformedFrame("frame body is not a canonical [kind, bytes]")
    return Frame(Kind(kind), bytes(view[start:]))


class FrameReader:
    """Collects the one frame a stream direction carries."""

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        self._max_frame = max_frame
        self._chunks: list[bytes] = []  # usually one: small frames arrive in one STREAM frame
        self._buffered = 0
        self._expected: int | None = None
        self.received = 0  # bytes fed so far (what this stream made us hold)

    @property
    def buffered(self) -> int:
        return self._buffered

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.received += len(data)
        self._buffered += len(data)
        self._chunks.append(data)
        if self._expected is None and self._buffered >= _HEADER.size:
            head = self._chunks[0] if len(self._chunks[0]) >= _HEADER.size else b"".join(self._chunks)
            (self._expected,) = _HEADER.unpack_from(head)
            if self._expected > self._max_frame:
                raise FrameTooLarge(f"peer announced a frame of {self._expected} bytes (limit {self._max_frame})")
        if self._expected is not None and self._buffered > _HEADER.size + self._expected:
            raise MalformedFrame("bytes after the frame on a one-frame stream")

    def finish(self) -> Frame:
        """The stream ended: return its frame, or raise if it was incomplete."""
        if self._expected is None or self._buffered != _HEADER.size + self._expected:
            raise MalformedFrame(f"stream ended inside a frame ({self._buffered} bytes buffered)")
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        return decode_message(memoryview(data)[_HEADER.size :], max_frame=self._max_frame)
