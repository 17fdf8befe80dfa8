"""Envelopes: signing, wire round trips, ids, limits, and typed refusals of bad bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import codec
from node.actions import MAX_ENVELOPE_BYTES, Envelope, EnvelopeError, Reason
from node.actions.envelope import SIGN_DOMAIN
from node.crypto import PrivateKey, tagged, verify

ORIGIN = "alpha.example"


def test_sign_round_trip_and_verify(make_actor) -> None:
    actor = make_actor()
    env = actor.env("/points/join", {"point": "lobby", "n": [1, -2, None, True, {"x": "y"}]}, target="beta.example")
    back = Envelope.from_wire(env.to_wire())
    assert back == env
    assert back.body == env.body and back.action_id == env.action_id
    assert back.verify_signature()
    assert back.destination == "beta.example"
    assert back.actor_fingerprint == actor.key.fingerprint
    # The signature is over the tagged body: valid there, not over the bare body.
    assert verify(env.key_type, env.actor_key, tagged(SIGN_DOMAIN, env.body), env.signature)
    assert not verify(env.key_type, env.actor_key, env.body, env.signature)


def test_action_id_is_over_body_not_signature(rsa_keys) -> None:
    key = rsa_keys[0]
    a = Envelope.sign(key, origin=ORIGIN, path="/x", args={"a": 1}, nonce=7, expiry_ns=99)
    b = Envelope.sign(key, origin=ORIGIN, path="/x", args={"a": 1}, nonce=7, expiry_ns=99)
    assert a.signature != b.signature  # RSA-PSS is randomized
    assert a.action_id == b.action_id
    c = Envelope.sign(key, origin=ORIGIN, path="/x", args={"a": 1}, nonce=8, expiry_ns=99)
    assert c.action_id != a.action_id


def test_tampered_field_fails_verification() -> None:
    key = PrivateKey.generate()
    env = Envelope.sign(key, origin=ORIGIN, path="/points/join", args={"point": "a"}, nonce=1, expiry_ns=10)
    forged = Envelope(env.origin, env.path, {"point": "b"}, env.actor_key, env.key_type, env.nonce, env.expiry_ns,
                      signature=env.signature)
    assert not forged.verify_signature()
    other = PrivateKey.generate()
    stolen = Envelope(env.origin, env.path, env.args, other.public, "ed25519", env.nonce, env.expiry_ns,
                      signature=env.signature)
    assert not stolen.verify_signature()


@pytest.mark.parametrize("args", [{"x": 1.5}, {"x": b"raw"}, {"x": {1: "int key"}}, {"x": [0.0]}])
def test_non_json_args_refused(args) -> None:
    with pytest.raises(EnvelopeError) as info:
        Envelope.sign(PrivateKey.generate(), origin=ORIGIN, path="/a", args=args, nonce=1, expiry_ns=1)
    assert info.value.reason is Reason.MALFORMED


@pytest.mark.parametrize(
    "fields",
    [
        {"origin": ""}, {"path": "no-slash"}, {"nonce": -1}, {"nonce": 2**63}, {"expiry_ns": True},
        {"key_type": "dsa"}, {"target": ""},
    ],
)
def test_bad_fields_refused(fields) -> None:
    base = {"origin": ORIGIN, "path": "/a", "args": {}, "actor_key": b"k" * 32, "key_type": "ed25519",
            "nonce": 1, "expiry_ns": 1}
    base.update(fields)
    with pytest.raises(EnvelopeError) as info:
        Envelope(**base)
    assert info.value.reason is Reason.MALFORMED


def test_oversized_refused_when_signing_and_decoding() -> None:
    key = PrivateKey.generate()
    with pytest.raises(EnvelopeError) as info:
        Envelope.sign(key, origin=ORIGIN, path="/a", args={"blob": "x" * MAX_ENVELOPE_BYTES}, nonce=1, expiry_ns=1)
    assert info.value.reason is Reason.TOO_LARGE
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_wire(b"\x00" * (MAX_ENVELOPE_BYTES + 1))
    assert info.value.reason is Reason.TOO_LARGE
    # Just under the limit is fine.
    env = Envelope.sign(key, origin=ORIGIN, path="/a", args={"blob": "x" * (MAX_ENVELOPE_BYTES - 400)}, nonce=1,
                        expiry_ns=1)
    assert len(env.to_wire()) <= MAX_ENVELOPE_BYTES


def _good() -> Envelope:
    return Envelope.sign(PrivateKey.from_seed(b"a"), origin=ORIGIN, path="/a", args={"k": "v"}, nonce=1, expiry_ns=1)


def _body_map() -> dict:
    return codec.unpack(_good().body)


def _wire(body, sig=b"s" * 64) -> bytes:
    return codec.pack({"body": body, "sig": sig})


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        codec.pack([1, 2]),
        codec.pack({"body": b"x"}),
        codec.pack({"body": "text", "sig": b"s"}),
        _wire(b"\x93\x01\x02"),  # body not a map
        _wire(codec.pack({**_body_map(), "extra": 1})),
        _wire(codec.pack({k: v for k, v in _body_map().items() if k != "nonce"})),
        _wire(codec.pack({**_body_map(), "v": 2})),
        _wire(codec.pack({**_body_map(), "nonce": "one"})),
        _wire(codec.pack({**_body_map(), "args": [1]})),
        # A valid body in a non-canonical encoding (keys out of order) would give a second id.
        _wire(b"\x89" + b"".join(codec.pack(k) + codec.pack(v) for k, v in reversed(sorted(_body_map().items())))),
    ],
)
def test_malformed_bytes_are_typed(data: bytes) -> None:
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_wire(data)
    assert info.value.reason is Reason.MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_from_wire_never_crashes_on_garbage(data: bytes) -> None:
    try:
        Envelope.from_wire(data)
    except EnvelopeError as exc:
        assert exc.reason in (Reason.MALFORMED, Reason.TOO_LARGE)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_from_wire_never_crashes_on_mutations(data) -> None:
    wire = bytearray(_good().to_wire())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    try:
        env = Envelope.from_wire(bytes(wire))
    except EnvelopeError:
        return
    # If it still parses, it is either the original or fails its signature.
    assert env.body == _good().body or not env.verify_signature()
