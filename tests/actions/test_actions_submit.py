"""Admission to the pool: early refusals with the same reason codes as execution."""

from __future__ import annotations

import pytest

from node.actions import MAX_ENVELOPE_BYTES, ActionError, Envelope, Reason, admit

ORIGIN = "alpha.example"
NOW = 1_700_000_000 * 10**9 + 50 * 10**9


def test_admit_accepts_and_refuses(chain, make_actor) -> None:
    alice = make_actor()
    good = alice.tx("/users/create", {"name": "a"})
    assert admit(good, origin=ORIGIN, now_ns=NOW).path == "/users/create"
    # Unknown actor is fine at admission: its /users/create may be in flight.
    assert admit(alice.tx("/points/join", {"point": "p"}), origin=ORIGIN, now_ns=NOW, state=chain.state)
    cases = [
        (b"junk", Reason.MALFORMED),
        (b"\x00" * (MAX_ENVELOPE_BYTES + 1), Reason.TOO_LARGE),
        (alice.tx("/no/such"), Reason.UNKNOWN_PATH),
        (alice.tx("/points/join", {"point": "p"}, origin="beta.example"), Reason.WRONG_ORIGIN),
        (alice.tx("/points/join", {"point": "p"}, expiry_ns=NOW - 1), Reason.EXPIRED),
    ]
    env = alice.env("/points/join", {"point": "p"})
    forged = Envelope(env.origin, env.path, env.args, env.actor_key, env.key_type, env.nonce, env.expiry_ns,
                      signature=bytes(len(env.signature)))
    cases.append((forged.to_wire(), Reason.BAD_SIGNATURE))
    for wire, reason in cases:
        with pytest.raises(ActionError) as info:
            admit(wire, origin=ORIGIN, now_ns=NOW, state=chain.state)
        assert info.value.reason is reason


def test_admit_refuses_used_nonce_of_registered_actor(chain, make_actor) -> None:
    alice = make_actor()
    create = alice.tx("/users/create", {"name": "a"})
    assert chain.one(create).ok
    with pytest.raises(ActionError) as info:
        admit(create, origin=ORIGIN, now_ns=NOW, state=chain.state)
    assert info.value.reason is Reason.REPLAYED_NONCE
    assert admit(alice.tx("/points/join", {"point": "p"}), origin=ORIGIN, now_ns=NOW, state=chain.state)
