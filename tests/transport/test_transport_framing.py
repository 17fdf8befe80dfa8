"""Frame encoding and the one-frame-per-stream reader (pure)."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import codec
from node.transport.errors import FrameTooLarge, MalformedFrame
from node.transport.framing import MAX_FRAME, FrameReader, Kind, decode_message, encode_frame


@given(st.sampled_from(list(Kind)), st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
def test_round_trip_in_any_chunking(kind, body, chunk):
    data = encode_frame(kind, body)
    reader = FrameReader()
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
    frame = reader.finish()
    assert (frame.kind, frame.body) == (kind, body)
    assert reader.received == len(data)


def test_encode_refuses_oversized_bodies():
    with pytest.raises(FrameTooLarge):
        encode_frame(Kind.REQUEST, bytes(MAX_FRAME))
    assert len(encode_frame(Kind.REQUEST, bytes(MAX_FRAME - 16))) <= MAX_FRAME + 4


def test_reader_refuses_an_announced_oversized_frame_at_once():
    reader = FrameReader(max_frame=100)
    with pytest.raises(FrameTooLarge):
        reader.feed(struct.pack(">I", 101))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        struct.pack(">I", 10) + b"short",
        encode_frame(Kind.REQUEST, b"x")[:-1],
    ],
)
def test_incomplete_streams_are_malformed(data):
    reader = FrameReader()
    reader.feed(data)
    with pytest.raises(MalformedFrame):
        reader.finish()


def test_trailing_bytes_are_malformed():
    reader = FrameReader()
    with pytest.raises(MalformedFrame):
        reader.feed(encode_frame(Kind.RESPONSE, b"x") + b"!")


@pytest.mark.parametrize(
    "message",
    [
        codec.pack([0]),
        codec.pack([9, b"x"]),
        codec.pack([True, b"x"]),
        codec.pack([0, "text"]),
        b"\xc1",
        codec.pack({}),
    ],
)
def test_bad_messages_are_malformed(message):
    with pytest.raises(MalformedFrame):
        decode_message(message)


@given(st.sampled_from(list(Kind)), st.binary(max_size=70000))
def test_the_wire_form_is_exactly_the_codec_message(kind, body):
    frame = encode_frame(kind, body)
    assert frame[4:] == codec.pack([int(kind), body])
    assert decode_message(codec.pack([int(kind), body])).body == body


def test_non_canonical_encodings_are_refused():
    import msgpack

    longer_length_form = b"\x92\x00\xc5\x00\x01x"  # bin16 for a 1-byte body
    assert msgpack.unpackb(longer_length_form) == [0, b"x"]
    with pytest.raises(MalformedFrame):
        decode_message(longer_length_form)
