"""Every built-in action, with Ed25519 and RSA-PSS actors (the `key_type` fixture parametrizes)."""

from __future__ import annotations

from node import codec
from node.actions import Reason, SignalOutput, rotation_proof
from node.actions.state import key_index_key, member_key, nonce_key, point_key, signal_key, user_key
from node.crypto import PrivateKey


def register(chain, *actors) -> None:
    for i, actor in enumerate(actors):
        receipt = chain.one(actor.tx("/users/create", {"name": f"user{i}"}))
        assert receipt.ok, receipt
        assert receipt.result == {"actor": actor.id}


def role(chain, point, actor) -> str | None:
    raw = chain.state.get(member_key(point, actor.id))
    return None if raw is None else codec.unpack(raw)


def test_users_create(chain, make_actor, key_type) -> None:
    alice = make_actor()
    register(chain, alice)
    user = codec.unpack(chain.state[user_key(alice.id)])
    assert user == {"key": alice.key.public, "key_type": key_type, "name": "user0", "since": 0}
    assert codec.unpack(chain.state[key_index_key(alice.id)]) == alice.id
    assert codec.unpack(chain.state[nonce_key(alice.id)]) == alice.nonce
    again = chain.one(alice.tx("/users/create", {"name": "again"}))
    assert (again.ok, again.reason) == (False, Reason.EXISTS)
    bad = chain.one(make_actor().tx("/users/create", {"name": ""}))
    assert bad.reason is Reason.INVALID_ARGS


def test_users_rotate_key(chain, make_actor, key_type) -> None:
    alice = make_actor()
    register(chain, alice)
    new_key = PrivateKey.generate("ed25519")
    args = {"key": new_key.public.hex(), "key_type": new_key.key_type, "proof": rotation_proof(new_key, alice.id).hex()}
    receipt = chain.one(alice.tx("/users/rotate_key", args))
    assert receipt.ok, receipt
    old_key = alice.key
    alice.key = new_key
    # The actor id stays, the key changed; the old key no longer acts for it.
    assert chain.one(alice.tx("/points/create", {"point": "after"})).ok
    assert codec.unpack(chain.state[point_key("after")])["owner"] == old_key.fingerprint
    alice.key = old_key
    assert chain.one(alice.tx("/points/create", {"point": "old"})).reason is Reason.UNKNOWN_ACTOR
    assert key_index_key(old_key.fingerprint) not in chain.state


def test_rotate_key_needs_proof_from_new_key(chain, make_actor) -> None:
    alice, bob = make_actor(), make_actor()
    register(chain, alice, bob)
    # Claiming bob's key without bob's proof: refused.
    stolen = {"key": bob.key.public.hex(), "key_type": bob.key.key_type, "proof": "00" * 64}
    assert chain.one(alice.tx("/users/rotate_key", stolen)).reason is Reason.BAD_SIGNATURE
    # Even with a valid proof, a key already in use cannot be taken.
    taken = {"key": bob.key.public.hex(), "key_type": bob.key.key_type,
             "proof": rotation_proof(bob.key, alice.id).hex()}
    assert chain.one(alice.tx("/users/rotate_key", taken)).reason is Reason.EXISTS
    assert chain.one(alice.tx("/users/rotate_key", {"key": "zz"})).reason is Reason.INVALID_ARGS


def test_points_create_join_leave(chain, make_actor) -> None:
    alice, bob = make_actor(), make_actor()
    register(chain, alice, bob)
    assert chain.one(alice.tx("/points/create", {"point": "lobby"})).result == {"point": "lobby", "role": "owner"}
    assert role(chain, "lobby", alice) == "owner"
    assert chain.one(alice.tx("/points/create", {"point": "lobby"})).reason is Reason.EXISTS
    assert chain.one(alice.tx("/points/create", {"point": "Bad Name"})).reason is Reason.INVALID_ARGS
    assert chain.one(bob.tx("/points/join", {"point": "lobby"})).ok
    assert role(chain, "lobby", bob) == "member"
    assert chain.one(bob.tx("/points/join", {"point": "lobby"})).reason is Reason.EXISTS
    assert chain.one(bob.tx("/points/join", {"point": "nowhere"})).reason is Reason.NOT_FOUND
    assert chain.one(bob.tx("/points/leave", {"point": "lobby"})).ok
    assert role(chain, "lobby", bob) is None
    assert chain.one(bob.tx("/points/leave", {"point": "lobby"})).reason is Reason.NOT_MEMBER
    assert chain.one(alice.tx("/points/leave", {"point": "lobby"})).reason is Reason.FORBIDDEN


def test_closed_point_takes_members_by_role(chain, make_actor) -> None:
    alice, bob, carol = make_actor(), make_actor(), make_actor()
    register(chain, alice, bob, carol)
    assert chain.one(alice.tx("/points/create", {"point": "vault", "open": False})).ok
    assert chain.one(bob.tx("/points/join", {"point": "vault"})).reason is Reason.FORBIDDEN
    assert chain.one(alice.tx("/points/set_role", {"point": "vault", "actor": bob.id, "role": "admin"})).ok
    assert role(chain, "vault", bob) == "admin"
    # An admin adds and removes plain members, but cannot touch admins or grant admin.
    assert chain.one(bob.tx("/points/set_role", {"point": "vault", "actor": carol.id, "role": "member"})).ok
    assert role(chain, "vault", carol) == "member"
    r = chain.one(bob.tx("/points/set_role", {"point": "vault", "actor": carol.id, "role": "admin"}))
    assert r.reason is Reason.FORBIDDEN
    r = chain.one(bob.tx("/points/set_role", {"point": "vault", "actor": alice.id, "role": "none"}))
    assert r.reason is Reason.FORBIDDEN
    assert chain.one(bob.tx("/points/set_role", {"point": "vault", "actor": carol.id, "role": "none"})).ok
    assert role(chain, "vault", carol) is None
    # Plain members and outsiders cannot set roles.
    r = chain.one(carol.tx("/points/set_role", {"point": "vault", "actor": bob.id, "role": "none"}))
    assert r.reason is Reason.NOT_MEMBER
    r = chain.one(alice.tx("/points/set_role", {"point": "vault", "actor": "0" * 20, "role": "member"}))
    assert r.reason is Reason.NOT_FOUND
    r = chain.one(alice.tx("/points/set_role", {"point": "vault", "actor": alice.id, "role": "member"}))
    assert r.reason is Reason.FORBIDDEN
    r = chain.one(alice.tx("/points/set_role", {"point": "vault", "actor": bob.id, "role": "king"}))
    assert r.reason is Reason.INVALID_ARGS


def test_ownership_transfer(chain, make_actor) -> None:
    alice, bob = make_actor(), make_actor()
    register(chain, alice, bob)
    assert chain.one(alice.tx("/points/create", {"point": "p"})).ok
    assert chain.one(bob.tx("/points/join", {"point": "p"})).ok
    assert chain.one(alice.tx("/points/set_role", {"point": "p", "actor": bob.id, "role": "owner"})).ok
    assert (role(chain, "p", alice), role(chain, "p", bob)) == ("admin", "owner")
    assert codec.unpack(chain.state[point_key("p")])["owner"] == bob.id
    assert chain.one(alice.tx("/points/leave", {"point": "p"})).ok


def test_signals_post(chain, make_actor) -> None:
    alice, bob, mallory = make_actor(), make_actor(), make_actor()
    register(chain, alice, bob, mallory)
    chain.run(alice.tx("/points/create", {"point": "room"}), bob.tx("/points/join", {"point": "room"}))
    result = chain.run(alice.tx("/signals/post", {"point": "room", "body": {"text": "hi"}}),
                       bob.tx("/signals/post", {"point": "room", "body": "yo"}))
    assert [r.result for r in result.receipts] == [{"point": "room", "seq": 0}, {"point": "room", "seq": 1}]
    assert result.outputs == [
        SignalOutput("room", 0, alice.id, {"text": "hi"}, result.receipts[0].action_id, chain.index - 1),
        SignalOutput("room", 1, bob.id, "yo", result.receipts[1].action_id, chain.index - 1),
    ]
    stored = codec.unpack(chain.state[signal_key("room", 1)])
    assert stored == {"from": bob.id, "body": "yo", "action": result.receipts[1].action_id, "block": chain.index - 1}
    denied = chain.run(mallory.tx("/signals/post", {"point": "room", "body": "spam"}))
    assert denied.receipts[0].reason is Reason.NOT_MEMBER and denied.outputs == []
    assert chain.one(alice.tx("/signals/post", {"point": "room"})).reason is Reason.INVALID_ARGS
