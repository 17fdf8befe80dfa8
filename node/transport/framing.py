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


def encode_frame(kind: Kind, body: bytes, *, max_frame: int = MAX_FRAME) -> bytes:
    message = codec.pack([int(kind), body])
    if len(message) > max_frame:
        raise FrameTooLarge(f"a frame of {len(message)} bytes exceeds the limit of {max_frame}")
    return _HEADER.pack(len(message)) + message


def decode_message(message: bytes, *, max_frame: int = MAX_FRAME) -> Frame:
    try:
        value = codec.unpack(message, max_bytes=max_frame, max_len=2)
    except codec.DecodeError as exc:
        raise MalformedFrame(f"frame body is not a valid message: {exc}") from exc
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], bytes)):
        raise MalformedFrame("frame body is not [kind, bytes]")
    kind = value[0]
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in _KINDS:
        raise MalformedFrame(f"unknown frame kind {kind!r}")
    return Frame(Kind(kind), value[1])


class FrameReader:
    """Collects the one frame a stream direction carries."""

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._expected: int | None = None
        self.received = 0  # bytes fed so far (what this stream made us hold)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self._buffer += data
        if self._expected is None and len(self._buffer) >= _HEADER.size:
            (self._expected,) = _HEADER.unpack_from(self._buffer)
            if self._expected > self._max_frame:
                raise FrameTooLarge(f"peer announced a frame of {self._expected} bytes (limit {self._max_frame})")
        if self._expected is not None and len(self._buffer) > _HEADER.size + self._expected:
            raise MalformedFrame("bytes after the frame on a one-frame stream")

    def finish(self) -> Frame:
        """The stream ended: return its frame, or raise if it was incomplete."""
        if self._expected is None or len(self._buffer) != _HEADER.size + self._expected:
            raise MalformedFrame(f"stream ended inside a frame ({len(self._buffer)} bytes buffered)")
        message = bytes(self._buffer[_HEADER.size :])
        self._buffer = bytearray()
        return decode_message(message, max_frame=self._max_frame)
