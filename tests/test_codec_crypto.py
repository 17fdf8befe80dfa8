"""The canonical codec and the key/signature layer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import codec
from node.crypto import PrivateKey, fingerprint, tagged, verify

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(values)
def test_pack_roundtrip_is_canonical(value: object) -> None:
    data = codec.pack(value)
    decoded = codec.unpack(data)
    assert codec.pack(decoded) == data


def test_map_order_does_not_change_encoding() -> None:
    assert codec.pack({"a": 1, "b": 2}) == codec.pack({"b": 2, "a": 1})


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\xc1", b"\x92\x01", b"\x91" * 100 + b"\x01", b"\xcb" + b"\x00" * 8, b"\xdd\xff\xff\xff\xff"],
)
def test_garbage_is_a_decode_error(garbage: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        codec.unpack(garbage)


def test_oversized_message_is_refused_before_decoding() -> None:
    with pytest.raises(codec.DecodeError, match="exceeds"):
        codec.unpack(codec.pack(b"x" * 2000), max_bytes=1000)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        codec.unpack(data)
    except codec.DecodeError:
        pass


def test_floats_have_no_canonical_encoding() -> None:
    with pytest.raises(codec.EncodeError):
        codec.pack({"x": 1.5})


@pytest.mark.parametrize("key_type", ["ed25519", "rsa-pss"])
def test_sign_verify_and_reject(key_type: str) -> None:
    key = PrivateKey.generate(key_type)  # type: ignore[arg-type]
    msg = tagged(b"test", b"hello")
    sig = key.sign(msg)
    assert verify(key_type, key.public, msg, sig)
    assert not verify(key_type, key.public, msg + b"!", sig)
    assert not verify(key_type, key.public, msg, sig[:-1] + bytes([sig[-1] ^ 1]))
    other = PrivateKey.generate(key_type)  # type: ignore[arg-type]
    assert not verify(key_type, other.public, msg, sig)
    assert not verify("unknown", key.public, msg, sig)


def test_pem_roundtrip_and_fingerprint() -> None:
    key = PrivateKey.generate()
    again = PrivateKey.from_pem(key.to_pem())
    assert again.public == key.public
    assert key.fingerprint == fingerprint(key.public)
    assert len(key.fingerprint) == 20
