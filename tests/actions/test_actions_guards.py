"""Each guard refuses with its own reason code, and a refused action changes no state."""

from __future__ import annotations

import pytest

from node.actions import MAX_ENVELOPE_BYTES, Envelope, Reason
from node.crypto import PrivateKey

from_wire = Envelope.from_wire
T0 = 1_700_000_000 * 10**9


@pytest.fixture
def world(chain, make_actor):
    alice, bob = make_actor(), make_actor()
    chain.run(alice.tx("/users/create", {"name": "alice"}), bob.tx("/users/create", {"name": "bob"}))
    chain.run(alice.tx("/points/create", {"point": "club", "open": False}))
    assert all(r.ok for res in chain.results for r in res.receipts)
    return chain, alice, bob


def refused(chain, tx: bytes, reason: Reason) -> None:
    """Run `tx` alone in a block: it fails with `reason` and writes nothing but block bookkeeping."""
    before = chain.data()
    result = chain.run(tx)
    receipt = result.receipts[0]
    assert (receipt.ok, receipt.reason) == (False, reason), receipt
    assert chain.data() == before
    assert all(k.startswith(b"meta/") for k in result.writes)
    assert result.outputs == []


def resign(env: Envelope, signature: bytes) -> bytes:
    return Envelope(env.origin, env.path, env.args, env.actor_key, env.key_type, env.nonce, env.expiry_ns,
                    env.target, signature=signature).to_wire()


def test_forged_signature(world) -> None:
    chain, alice, _ = world
    env = alice.env("/points/create", {"point": "forged"})
    flipped = bytes([env.signature[0] ^ 1]) + env.signature[1:]
    refused(chain, resign(env, flipped), Reason.BAD_SIGNATURE)
    mallory = PrivateKey.generate()
    refused(chain, resign(env, mallory.sign(env.signed_message())), Reason.BAD_SIGNATURE)
    refused(chain, resign(env, b""), Reason.BAD_SIGNATURE)


def test_replayed_nonce_same_block_later_block_and_lower(world) -> None:
    chain, alice, _ = world
    tx = alice.tx("/signals/post", {"point": "club", "body": 1})
    first = chain.run(tx, tx)
    assert first.receipts[0].ok and first.receipts[1].reason is Reason.REPLAYED_NONCE
    refused(chain, tx, Reason.REPLAYED_NONCE)
    refused(chain, alice.tx("/signals/post", {"point": "club", "body": 2}, nonce=1), Reason.REPLAYED_NONCE)
    assert chain.one(alice.tx("/signals/post", {"point": "club", "body": 3})).ok


def test_replay_with_fresh_signature_bytes_is_refused(world, key_type) -> None:
    chain, alice, _ = world
    env = alice.env("/signals/post", {"point": "club", "body": "x"})
    assert chain.one(env.to_wire()).ok
    again = Envelope.sign(alice.key, origin=env.origin, path=env.path, args=env.args, nonce=env.nonce,
                          expiry_ns=env.expiry_ns)
    if key_type == "rsa-pss":
        assert again.signature != env.signature
    refused(chain, again.to_wire(), Reason.REPLAYED_NONCE)


def test_replay_refused_after_restart(world) -> None:
    chain, alice, _ = world
    tx = alice.tx("/signals/post", {"point": "club", "body": "once"})
    assert chain.one(tx).ok
    # A "restarted" node: a fresh executor over the same persisted state.
    from node.actions import BlockContext, execute_block

    persisted = dict(chain.state)
    result = execute_block(persisted, [tx], BlockContext(chain.index, chain.ts + 10**9, chain.origin))
    assert result.receipts[0].reason is Reason.REPLAYED_NONCE


def test_failed_action_does_not_consume_its_nonce(world) -> None:
    chain, alice, _ = world
    refused(chain, alice.tx("/points/create", {"point": "club"}, nonce=100), Reason.EXISTS)
    assert chain.one(alice.tx("/points/create", {"point": "other"}, nonce=100)).ok


def test_expiry_uses_block_timestamp(world) -> None:
    chain, alice, _ = world
    ts = chain.ts + 10**9
    refused(chain, alice.tx("/signals/post", {"point": "club", "body": 1}, expiry_ns=ts - 1), Reason.EXPIRED)
    ts = chain.ts + 10**9
    assert chain.one(alice.tx("/signals/post", {"point": "club", "body": 1}, expiry_ns=ts), ts=ts).ok


def test_wrong_origin(world) -> None:
    chain, alice, _ = world
    refused(chain, alice.tx("/signals/post", {"point": "club", "body": 1}, origin="beta.example"),
            Reason.WRONG_ORIGIN)
    refused(chain, alice.tx("/signals/post", {"point": "club", "body": 1}, target="beta.example"),
            Reason.WRONG_ORIGIN)
    # An actor signing at another origin, targeting this one, passes the origin guard.
    tx = alice.tx("/signals/post", {"point": "club", "body": 1}, origin="beta.example", target=chain.origin)
    assert chain.one(tx).ok


def test_oversized_envelope(world) -> None:
    chain, _, _ = world
    before = chain.data()
    receipt = chain.one(b"\x80" * (MAX_ENVELOPE_BYTES + 1))
    assert (receipt.ok, receipt.reason, receipt.action_id) == (False, Reason.TOO_LARGE, b"")
    assert chain.data() == before


def test_unknown_path(world) -> None:
    chain, alice, _ = world
    refused(chain, alice.tx("/nothing/here"), Reason.UNKNOWN_PATH)
    env = alice.env("/nothing/here")
    refused(chain, resign(env, b"\x00" * len(env.signature)), Reason.BAD_SIGNATURE)


def test_unknown_actor(world, make_actor) -> None:
    chain, _, _ = world
    stranger = make_actor()
    refused(chain, stranger.tx("/points/create", {"point": "mine"}), Reason.UNKNOWN_ACTOR)


def test_missing_permission(world) -> None:
    chain, alice, bob = world
    refused(chain, bob.tx("/signals/post", {"point": "club", "body": 1}), Reason.NOT_MEMBER)
    refused(chain, bob.tx("/points/join", {"point": "club"}), Reason.FORBIDDEN)
    assert chain.one(alice.tx("/points/set_role", {"point": "club", "actor": bob.id, "role": "member"})).ok
    refused(chain, bob.tx("/points/set_role", {"point": "club", "actor": alice.id, "role": "none"}),
            Reason.FORBIDDEN)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x82\xa4body\xc0\xa3sig\xc0", b"\xdd\xff\xff\xff\xff"])
def test_malformed_bytes(world, data: bytes) -> None:
    chain, _, _ = world
    before = chain.data()
    receipt = chain.one(data)
    assert (receipt.ok, receipt.reason) == (False, Reason.MALFORMED)
    assert chain.data() == before


def test_failure_inside_block_leaves_neighbours_intact(world) -> None:
    chain, alice, _ = world
    good1 = alice.tx("/signals/post", {"point": "club", "body": 1})
    bad = alice.tx("/points/create", {"point": "club"})
    good2 = alice.tx("/signals/post", {"point": "club", "body": 2})
    result = chain.run(good1, bad, good2)
    assert [r.ok for r in result.receipts] == [True, False, True]
    assert [o.seq for o in result.outputs] == [0, 1]


def test_receipts_by_action_never_lets_a_replay_overwrite(world) -> None:
    from node import codec

    chain, alice, _ = world
    tx = alice.tx("/signals/post", {"point": "club", "body": 1})
    first = chain.run(tx, tx, b"junk")
    stored = first.receipts_by_action(chain.index - 1)
    assert list(stored) == [first.receipts[0].action_id]
    assert codec.unpack(stored[first.receipts[0].action_id])["ok"] is True
    assert chain.run(tx).receipts_by_action(chain.index - 1) == {}
