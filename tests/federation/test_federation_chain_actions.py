"""The federation records executed in both chains (deterministic, in consensus time), and the
checks the service makes before a record reaches a chain: bad input is refused with its reason."""

import dataclasses
import time

import pytest

from node import codec
from node.actions import BlockContext, Envelope, Reason, execute_block
from node.actions.errors import ActionRejected
from node.actions.state import member_key
from node.consensus.blocks import Block
from node.crypto import PrivateKey
from node.federation.carrier import check_response
from node.federation.chain_actions import (
    INCOMING_PATH,
    ORIGIN_PATH,
    REQUEST_PATH,
    RESPONSE_PATH,
    TIMEOUT_PATH,
    UPDATE_PATH,
    incoming_key,
    outgoing_key,
    remote_point,
)
from node.federation.errors import MismatchedMessage, ProofError, UnknownOrigin
from node.federation.messages import FederatedRequest, FederatedResponse, RemoteReceipt, decode_message
from node.federation.proofs import BlockProof, verify_proof_by_ids
from node.federation.wiring import admit_remote, proof_holds_request, zone_from_state

ALPHA, BETA = "alpha.example", "beta.example"
NS = 10**9
T0 = 1_700_000_000 * NS
ALPHA_NODES = [PrivateKey.from_seed(f"alpha-node-{i}".encode()) for i in range(3)]
BETA_NODES = [PrivateKey.from_seed(f"beta-node-{i}".encode()) for i in range(3)]
ALICE, BOB = PrivateKey.from_seed(b"alice@alpha"), PrivateKey.from_seed(b"bob@beta")


class Chain:
    """One origin's chain in memory: blocks executed with the built-in registry."""

    def __init__(self, origin, nodes):
        self.origin, self.nodes = origin, nodes
        self.state: dict[bytes, bytes] = {}
        self.index = 0
        self.now = T0
        self.nonce = 0
        self.blocks: list[Block] = []

    def node_tx(self, path, args, node=0):
        self.nonce += 1
        return Envelope.sign(self.nodes[node], origin=self.origin, path=path, args=args, nonce=self.nonce,
                             expiry_ns=T0 + 3600 * NS).to_wire()

    def apply(self, *txs, at=None):
        self.now = at if at is not None else self.now + NS
        context = BlockContext(self.index, self.now, self.origin, members=tuple(k.public for k in self.nodes))
        result = execute_block(self.state, list(txs), context)
        for key, value in result.writes.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        block = Block(self.index, self.index + 3, self.now, tuple(txs), (), b"\1" * 32, result.state_hash)
        self.blocks.append(block)
        self.index += 1
        return result.receipts if len(txs) > 1 else result.receipts[0]

    def proof(self, block, signers=None):
        keys = self.nodes if signers is None else signers
        return BlockProof(block, tuple(block.sign(k) for k in keys))

    def obj(self, key):
        raw = self.state.get(key)
        return None if raw is None else codec.unpack(raw)


def user_tx(key, origin, path, args, nonce, target=None):
    return Envelope.sign(key, origin=origin, path=path, args=args, nonce=nonce, expiry_ns=T0 + 3600 * NS,
                         target=target)


def ids(nodes):
    return sorted(k.fingerprint for k in nodes)


@pytest.fixture
def origins():
    alpha, beta = Chain(ALPHA, ALPHA_NODES), Chain(BETA, BETA_NODES)
    for node in range(3):  # recorded once a supermajority of the origin's nodes resolved the same
        assert alpha.apply(alpha.node_tx(ORIGIN_PATH, {"origin": BETA, "nodes": ids(BETA_NODES), "pins": []}, node)).ok
        assert beta.apply(beta.node_tx(ORIGIN_PATH, {"origin": ALPHA, "nodes": ids(ALPHA_NODES), "pins": []}, node)).ok
    assert alpha.apply(user_tx(ALICE, ALPHA, "/users/create", {"name": "alice"}, 1).to_wire()).ok
    assert beta.apply(user_tx(BOB, BETA, "/users/create", {"name": "bob"}, 1).to_wire()).ok
    assert beta.apply(user_tx(BOB, BETA, "/points/create", {"point": "lobby"}, 2).to_wire()).ok
    return alpha, beta


def request(alpha, envelope, timeout_ms=5000, node=0):
    return alpha.node_tx(REQUEST_PATH, {"envelope": envelope.to_wire().hex(), "timeout_ms": timeout_ms}, node)


def carry(alpha, beta, envelope):
    """Alpha commits the request; beta runs it; returns beta's block and the incoming receipt."""
    assert alpha.apply(request(alpha, envelope)).ok
    receipt = beta.apply(beta.node_tx(INCOMING_PATH, {"request_id": envelope.action_id.hex(),
                                                      "envelope": envelope.to_wire().hex()}))
    return beta.blocks[-1], receipt


def response(alpha, envelope, beta_proof, origin=BETA, ok=True):
    return alpha.node_tx(RESPONSE_PATH, {
        "request_id": envelope.action_id.hex(), "origin": origin,
        "receipt": {"ok": ok, "reason": None, "result": {"point": "lobby"}, "detail": ""},
        "proof": codec.pack(beta_proof.to_obj()).hex(),
    })


def test_join_across_origins_is_recorded_in_both_chains(origins):
    alpha, beta = origins
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target=BETA)
    block, receipt = carry(alpha, beta, join)
    assert receipt.ok and receipt.result["receipt"]["ok"], receipt
    assert beta.obj(member_key("lobby", f"{ALICE.fingerprint}@{ALPHA}")) == "member"
    assert beta.obj(incoming_key(join.action_id))["source"] == ALPHA
    closing = alpha.apply(response(alpha, join, beta.proof(block)))
    assert closing.ok and closing.result["status"] == "done", closing
    assert alpha.obj(outgoing_key(join.action_id))["status"] == "done"
    assert alpha.obj(member_key(remote_point("lobby", BETA), ALICE.fingerprint)) == "member"
    # A second answer (a retry by another node) finds the request closed.
    again = alpha.apply(response(alpha, join, beta.proof(block), ok=False))
    assert again.reason is Reason.REQUEST_CLOSED


def test_remote_signal_needs_membership_and_is_forwarded_as_an_update(origins):
    alpha, beta = origins
    post = user_tx(ALICE, ALPHA, "/signals/post", {"point": "lobby", "body": "hi"}, 2, target=BETA)
    _, refused = carry(alpha, beta, post)
    assert refused.ok and refused.result["receipt"]["reason"] == "not_member"
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 3, target=BETA)
    block, _ = carry(alpha, beta, join)
    assert alpha.apply(response(alpha, join, beta.proof(block))).ok
    bob_post = user_tx(BOB, BETA, "/signals/post", {"point": "lobby", "body": "from beta"}, 3)
    assert beta.apply(bob_post.to_wire()).ok
    args = {"origin": BETA, "point": "lobby", "seq": 0, "sender": BOB.fingerprint,
            "action_id": bob_post.action_id.hex(), "proof": codec.pack(beta.proof(beta.blocks[-1]).to_obj()).hex()}
    context = BlockContext(alpha.index, alpha.now + NS, ALPHA, members=tuple(k.public for k in ALPHA_NODES))
    result = execute_block(alpha.state, [alpha.node_tx(UPDATE_PATH, args)], context)
    assert result.receipts[0].ok, result.receipts[0]
    (signal,) = result.outputs
    assert (signal.point, signal.body, signal.sender) == (remote_point("lobby", BETA), "from beta", BOB.fingerprint)
    assert alpha.apply(alpha.node_tx(UPDATE_PATH, args)).ok
    replayed = alpha.apply(alpha.node_tx(UPDATE_PATH, args))
    assert replayed.reason is Reason.EXISTS and "replayed update" in replayed.detail
    forged = alpha.apply(alpha.node_tx(UPDATE_PATH, {**args, "seq": 1, "action_id": "00" * 32}))
    assert forged.reason is Reason.INVALID_ARGS and "no such signal" in forged.detail


def test_replayed_requests_are_refused_on_both_sides(origins):
    alpha, beta = origins
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target=BETA)
    carry(alpha, beta, join)
    again = alpha.apply(request(alpha, join, node=1))
    assert again.reason is Reason.EXISTS and "replayed request" in again.detail
    replay = beta.apply(beta.node_tx(INCOMING_PATH, {"request_id": join.action_id.hex(),
                                                     "envelope": join.to_wire().hex()}, node=2))
    assert replay.reason is Reason.EXISTS and "replayed request" in replay.detail


def test_proof_with_too_few_signatures_is_refused(origins):
    alpha, beta = origins
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target=BETA)
    block, _ = carry(alpha, beta, join)
    weak = alpha.apply(response(alpha, join, beta.proof(block, BETA_NODES[:2])))
    assert weak.reason is Reason.BAD_SIGNATURE and "a proof needs 3" in weak.detail, weak
    strangers = [PrivateKey.from_seed(f"stranger-{i}".encode()) for i in range(3)]
    forged = alpha.apply(response(alpha, join, beta.proof(block, strangers)))
    assert forged.reason is Reason.BAD_SIGNATURE
    other_block = beta.blocks[-2]  # signed, but it does not hold this request
    wrong = alpha.apply(response(alpha, join, beta.proof(other_block)))
    assert wrong.reason is Reason.INVALID_ARGS and "does not hold this request" in wrong.detail
    assert alpha.obj(outgoing_key(join.action_id))["status"] == "pending"


def test_response_from_another_or_unknown_origin_is_refused(origins):
    alpha, beta = origins
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target=BETA)
    block, _ = carry(alpha, beta, join)
    stray = alpha.apply(response(alpha, join, beta.proof(block), origin="gamma.example"))
    assert stray.reason is Reason.FORBIDDEN and "gamma.example" in stray.detail
    unknown = alpha.apply(response(alpha, user_tx(ALICE, ALPHA, "/points/join", {"point": "x"}, 9, target=BETA),
                                   beta.proof(block)))
    assert unknown.reason is Reason.NOT_FOUND


def test_timeout_in_consensus_time_then_late_response_ignored(origins):
    alpha, beta = origins
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target=BETA)
    block, _ = carry(alpha, beta, join)
    deadline = alpha.obj(outgoing_key(join.action_id))["deadline"]
    early = alpha.apply(alpha.node_tx(TIMEOUT_PATH, {"request_id": join.action_id.hex()}), at=deadline - 1)
    assert early.reason is Reason.INVALID_ARGS and "not passed" in early.detail
    timed_out = alpha.apply(alpha.node_tx(TIMEOUT_PATH, {"request_id": join.action_id.hex()}, 1), at=deadline)
    assert timed_out.ok and timed_out.result["receipt"]["reason"] == "timeout"
    late = alpha.apply(response(alpha, join, beta.proof(block)))
    assert late.reason is Reason.REQUEST_CLOSED
    assert alpha.obj(member_key(remote_point("lobby", BETA), ALICE.fingerprint)) is None


def test_request_refusals(origins):
    alpha, _ = origins
    nowhere = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target="gamma.example")
    refused = alpha.apply(request(alpha, nowhere))
    assert refused.reason is Reason.NOT_FOUND and "unknown origin" in refused.detail
    create = user_tx(ALICE, ALPHA, "/users/create", {"name": "x"}, 3, target=BETA)
    assert alpha.apply(request(alpha, create)).reason is Reason.FORBIDDEN
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 4, target=BETA)
    tampered = dataclasses.replace(join, signature=bytes(len(join.signature)))
    assert alpha.apply(request(alpha, tampered)).reason is Reason.BAD_SIGNATURE
    outsider = Envelope.sign(PrivateKey.from_seed(b"not-a-node"), origin=ALPHA, path=REQUEST_PATH,
                             args={"envelope": join.to_wire().hex()}, nonce=1, expiry_ns=T0 + 3600 * NS)
    assert alpha.apply(outsider.to_wire()).reason is Reason.NOT_MEMBER_NODE


def test_service_checks_before_the_chain(origins):
    alpha, beta = origins
    join = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target=BETA)
    assert alpha.apply(request(alpha, join)).ok
    alpha_ids = frozenset(ids(ALPHA_NODES))
    source = alpha.proof(alpha.blocks[-1])
    assert proof_holds_request(source, join.to_wire(), alpha_ids)
    assert not proof_holds_request(source, join.to_wire(), frozenset(ids(BETA_NODES)))
    with pytest.raises(ProofError):
        verify_proof_by_ids(alpha.proof(alpha.blocks[-1], ALPHA_NODES[:1]), alpha_ids)
    request_msg = FederatedRequest.of(join, source)
    assert decode_message(request_msg.to_wire()) == request_msg
    block, _ = carry(alpha, beta, user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 3, target=BETA))
    other = FederatedResponse(join.action_id, BETA, RemoteReceipt(True), beta.proof(block))
    with pytest.raises(MismatchedMessage):  # beta's block holds another request
        check_response(other, request_msg, frozenset(ids(BETA_NODES)))
    foreign = dataclasses.replace(other, target_origin="gamma.example")
    with pytest.raises(UnknownOrigin):
        check_response(foreign, request_msg, frozenset(ids(BETA_NODES)))


def test_admission_at_the_api():
    expired = user_tx(ALICE, ALPHA, "/points/join", {"point": "lobby"}, 2, target=BETA)  # T0 is long past
    live = Envelope.sign(ALICE, origin=ALPHA, path="/points/join", args={"point": "lobby"}, nonce=3,
                         expiry_ns=time.time_ns() + 60 * NS, target=BETA)
    assert admit_remote(live.to_wire(), origin=ALPHA, resolvable=lambda o: None) == live
    with pytest.raises(ActionRejected) as info:
        admit_remote(live.to_wire(), origin=ALPHA, resolvable=lambda o: "SRV: NXDOMAIN")
    assert info.value.reason is Reason.NOT_FOUND and "does not resolve" in str(info.value)
    with pytest.raises(ActionRejected) as info:
        admit_remote(expired.to_wire(), origin=ALPHA, resolvable=lambda o: None)
    assert info.value.reason is Reason.EXPIRED
    local = Envelope.sign(ALICE, origin=ALPHA, path="/points/join", args={"point": "lobby"}, nonce=4,
                          expiry_ns=time.time_ns() + 60 * NS)
    assert admit_remote(local.to_wire(), origin=ALPHA, resolvable=lambda o: "unused") is None


def test_zone_waits_for_a_quorum_of_recorded_endpoints(origins):
    alpha, _ = origins
    pin = "ab" * 32
    for i in range(2):
        assert alpha.apply(alpha.node_tx("/federation/endpoint", {"host": "127.0.0.1", "port": 7000 + i, "pin": pin},
                                         node=i)).ok
    members = ids(ALPHA_NODES)
    assert zone_from_state(alpha.state, ALPHA, members, quorum=3) is None
    records = zone_from_state(alpha.state, ALPHA, members, quorum=2)
    assert records is not None and len(records.endpoints) == 2 and records.ca_pins == (bytes.fromhex(pin),)


def test_another_origins_nodes_need_a_supermajority_of_votes(origins):
    alpha, _ = origins
    forged = {"origin": BETA, "nodes": ids(ALPHA_NODES), "pins": []}  # one member tries to swap beta's keys
    first = alpha.apply(alpha.node_tx(ORIGIN_PATH, forged, 0))
    second = alpha.apply(alpha.node_tx(ORIGIN_PATH, forged, 1))
    assert first.ok and not first.result["changed"] and not second.result["changed"]
    assert alpha.obj(b"fed/origin/" + BETA.encode())["nodes"] == ids(BETA_NODES)
    third = alpha.apply(alpha.node_tx(ORIGIN_PATH, forged, 2))
    assert third.result["changed"] and alpha.obj(b"fed/origin/" + BETA.encode())["nodes"] == ids(ALPHA_NODES)


def test_update_message_round_trips_and_refuses_bad_fields(origins):
    from node.federation.errors import FederationDecodeError
    from node.federation.messages import FederatedUpdate

    _, beta = origins
    update = FederatedUpdate(BETA, "lobby", 3, BOB.fingerprint, b"\5" * 32, beta.proof(beta.blocks[-1]))
    assert decode_message(update.to_wire()) == update
    for field, value in (("seq", -1), ("point", ""), ("sender", 7)):
        obj = codec.unpack(update.to_wire())
        obj[field] = value
        with pytest.raises(FederationDecodeError):
            decode_message(codec.pack(obj))
