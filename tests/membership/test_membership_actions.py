"""The membership records: joins, leaves and evictions accepted or refused with a clear reason,
and the peer-set history they leave in chain state."""

import datetime as dt
import random

import pytest

from node.actions import BlockContext, Envelope, Reason, execute_block
from node.actions.builtin import BUILTIN
from node.consensus.event import Event
from node.consensus.peers import PeerSet
from node.crypto import PrivateKey
from node.membership.state import (
    EVICT_PATH,
    JOIN_PATH,
    REMOVE_PATH,
    TICK_PATH,
    changes,
    evidence_of,
    latest_members,
    peer_set_history,
)
from node.trust import OriginCA, make_csr
from node.trust.authority import CertificateAuthority
from node.trust.chain_state import RECORD_PATH, record_args

ORIGIN = "alpha.example"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
T0 = int(NOW.timestamp()) * 10**9
NODES = [PrivateKey.from_seed(f"membership-node-{i}".encode()) for i in range(4)]
JOINER = PrivateKey.from_seed(b"membership-joiner")
STRANGER = PrivateKey.from_seed(b"membership-stranger")


def _authority(seed: int = 1) -> CertificateAuthority:
    ca = OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))
    return CertificateAuthority(ca, rng=random.Random(seed).randbytes)


class Chain:
    """Blocks executed in order over a dict state, as every node does; members follow the history."""

    def __init__(self) -> None:
        self.state: dict[bytes, bytes] = {}
        self.index = 0
        self.nonce = 0
        self.genesis = tuple(k.public for k in NODES)

    def run(self, *txs):
        wires = []
        for key, path, args in txs:
            self.nonce += 1
            wires.append(Envelope.sign(key, origin=ORIGIN, path=path, args=args, nonce=self.nonce,
                                       expiry_ns=T0 + 10**15).to_wire())
        context = BlockContext(self.index, T0, ORIGIN, members=self.genesis)
        result = execute_block(self.state, wires, context, BUILTIN)
        result.apply_to(self.state)
        self.index += 1
        return result.receipts


def _anchored_chain(authority: CertificateAuthority) -> Chain:
    chain = Chain()
    cert = authority.sign(make_csr(NODES[0], ORIGIN), NOW - dt.timedelta(minutes=1))
    (receipt,) = chain.run((NODES[0], RECORD_PATH, record_args(cert, authority.ca.certificate)))
    assert receipt.ok, receipt.detail
    return chain


def _cert_pem(authority: CertificateAuthority, key: PrivateKey) -> str:
    from node.trust.certs import certificate_pem

    return certificate_pem(authority.sign(make_csr(key, ORIGIN), NOW - dt.timedelta(minutes=1))).decode()


def _fork(key: PrivateKey, index: int = 0):
    a = Event.create(key, index=index, self_parent=None, other_parent=None, timestamp=T0)
    b = Event.create(key, index=index, self_parent=None, other_parent=None, timestamp=T0 + 1)
    return {"a": a.to_wire().hex(), "b": b.to_wire().hex()}


def test_join_with_ca_issued_certificate_adds_the_joiner() -> None:
    authority = _authority()
    chain = _anchored_chain(authority)
    (receipt,) = chain.run((JOINER, JOIN_PATH, {"cert": _cert_pem(authority, JOINER)}))
    assert receipt.ok, receipt.detail
    assert receipt.result["members"] == 5
    assert set(latest_members(chain.state, ())) == {*chain.genesis, JOINER.public}
    (entry,) = changes(chain.state)
    assert entry["change"] == "join" and entry["peer"] == JOINER.public.hex() and entry["block"] == 1
    # A second join of the same key is refused; nothing changes.
    (again,) = chain.run((JOINER, JOIN_PATH, {"cert": _cert_pem(authority, JOINER)}))
    assert again.reason is Reason.EXISTS and len(changes(chain.state)) == 1


def test_join_refusals_name_their_reason() -> None:
    authority = _authority()
    chain = _anchored_chain(authority)
    foreign = _authority(seed=2)
    # Signed by a key that is not the joiner named in the args.
    by_other = (STRANGER, JOIN_PATH, {"cert": _cert_pem(authority, JOINER), "peer": JOINER.public.hex()})
    # The certificate is for the joiner, but the stranger signs: the cert's key is not the signer's.
    cert_of_other = (STRANGER, JOIN_PATH, {"cert": _cert_pem(authority, JOINER)})
    # A certificate from another CA (not the origin's anchored one).
    foreign_cert = (JOINER, JOIN_PATH, {"cert": _cert_pem(foreign, JOINER)})
    not_pem = (JOINER, JOIN_PATH, {"cert": "hello"})
    receipts = chain.run(by_other, cert_of_other, foreign_cert, not_pem)
    assert [r.reason for r in receipts] == [Reason.FORBIDDEN, Reason.FORBIDDEN, Reason.FORBIDDEN, Reason.FORBIDDEN]
    assert "signed by the joining key" in receipts[0].detail
    assert "another key" in receipts[1].detail
    assert "not issued by the origin CA" in receipts[2].detail
    assert changes(chain.state) == []


def test_join_refused_before_a_ca_is_anchored() -> None:
    chain = Chain()
    (receipt,) = chain.run((JOINER, JOIN_PATH, {"cert": _cert_pem(_authority(), JOINER)}))
    assert receipt.reason is Reason.NOT_FOUND and "anchored" in receipt.detail


def test_member_leaves_itself_but_cannot_remove_another_without_evidence() -> None:
    chain = Chain()
    other, own, stranger = chain.run(
        (NODES[0], REMOVE_PATH, {"peer": NODES[1].public.hex()}),
        (NODES[1], REMOVE_PATH, {"peer": NODES[1].public.hex()}),
        (STRANGER, REMOVE_PATH, {"peer": STRANGER.public.hex()}),
    )
    assert other.reason is Reason.FORBIDDEN and "fork evidence" in other.detail
    assert own.ok and own.result == {"change": "leave", "peer": NODES[1].public.hex(), "members": 3, "seq": 0}
    assert stranger.reason is Reason.NOT_MEMBER_NODE
    assert NODES[1].public not in latest_members(chain.state, chain.genesis)
    (twice,) = chain.run((NODES[2], REMOVE_PATH, {"peer": NODES[1].public.hex()}))
    assert twice.reason is Reason.NOT_FOUND


def test_changes_compose_in_order() -> None:
    chain = Chain()
    chain.run((NODES[3], REMOVE_PATH, {"peer": NODES[3].public.hex()}))
    chain.run((NODES[2], REMOVE_PATH, {"peer": NODES[2].public.hex()}))
    assert latest_members(chain.state, chain.genesis) == tuple(sorted((NODES[0].public, NODES[1].public)))
    (last_but_one,) = chain.run((NODES[1], REMOVE_PATH, {"peer": NODES[1].public.hex()}))
    assert last_but_one.ok
    (last,) = chain.run((NODES[0], REMOVE_PATH, {"peer": NODES[0].public.hex()}))
    assert last.reason is Reason.FORBIDDEN and "without members" in last.detail


def test_evict_records_evidence_and_removes_the_forker_once() -> None:
    chain = Chain()
    forker = NODES[2]
    first, second = chain.run((NODES[0], EVICT_PATH, _fork(forker)), (NODES[1], EVICT_PATH, _fork(forker)))
    assert first.ok, first.detail
    assert second.reason is Reason.EXISTS  # every node submits: the first one committed wins
    assert forker.public not in latest_members(chain.state, chain.genesis)
    proof = evidence_of(chain.state, forker.public)
    assert proof is not None and proof["index"] == 0 and proof["by"] == NODES[0].fingerprint
    a, b = Event.from_wire(bytes.fromhex(proof["a"])), Event.from_wire(bytes.fromhex(proof["b"]))
    assert a.creator == b.creator == forker.public and a.hash != b.hash
    assert changes(chain.state)[-1]["change"] == "evict"
    # The evicted key may not come back through a join.
    authority = _authority()
    anchored = _anchored_chain(authority)
    anchored.state.update(chain.state)
    (rejoin,) = anchored.run((forker, JOIN_PATH, {"cert": _cert_pem(authority, forker)}))
    assert rejoin.reason is Reason.FORBIDDEN and "evicted" in rejoin.detail


def test_evict_refuses_bad_evidence() -> None:
    chain = Chain()
    one = Event.create(NODES[1], index=0, self_parent=None, other_parent=None, timestamp=T0)
    other = Event.create(NODES[2], index=0, self_parent=None, other_parent=None, timestamp=T0)
    tampered = _fork(NODES[1])
    wire = bytearray(bytes.fromhex(tampered["b"]))
    wire[-1] ^= 1  # breaks the signature
    receipts = chain.run(
        (NODES[0], EVICT_PATH, {"a": one.to_wire().hex(), "b": one.to_wire().hex()}),
        (NODES[0], EVICT_PATH, {"a": one.to_wire().hex(), "b": other.to_wire().hex()}),
        (NODES[0], EVICT_PATH, {"a": tampered["a"], "b": wire.hex()}),
        (NODES[0], EVICT_PATH, {"a": "zz", "b": "00"}),
        (NODES[0], EVICT_PATH, _fork(STRANGER)),
        (STRANGER, EVICT_PATH, _fork(NODES[1])),
    )
    assert [r.reason for r in receipts] == [
        Reason.INVALID_ARGS, Reason.INVALID_ARGS, Reason.BAD_SIGNATURE, Reason.INVALID_ARGS, Reason.NOT_FOUND,
        Reason.NOT_MEMBER_NODE,
    ], [r.detail for r in receipts]
    assert changes(chain.state) == []


def test_after_an_eviction_removing_the_forker_again_is_not_found() -> None:
    chain = Chain()
    forker = NODES[3]
    chain.run((NODES[0], EVICT_PATH, _fork(forker)))
    (again,) = chain.run((NODES[1], REMOVE_PATH, {"peer": forker.public.hex()}))
    assert again.reason is Reason.NOT_FOUND


@pytest.mark.parametrize("rounds", [{0: 10, 1: 12}])
def test_history_maps_blocks_to_rounds_plus_six(rounds) -> None:
    chain = Chain()
    chain.run((NODES[3], REMOVE_PATH, {"peer": NODES[3].public.hex()}))  # block 0
    chain.run((NODES[2], REMOVE_PATH, {"peer": NODES[2].public.hex()}))  # block 1
    history = peer_set_history(chain.state, PeerSet.of(chain.genesis), rounds.get)
    assert [(h.effective_round, len(h.members), h.change) for h in history] == [
        (0, 4, "genesis"), (16, 3, "leave"), (18, 2, "leave")
    ]
    assert history[1].to_obj()["supermajority"] == 3
    # A block not known yet is left out.
    assert len(peer_set_history(chain.state, PeerSet.of(chain.genesis), {0: 10}.get)) == 2


def test_tick_is_a_no_op_for_member_nodes_only() -> None:
    chain = Chain()
    mine, stranger = chain.run((NODES[0], TICK_PATH, {"until": 12}), (STRANGER, TICK_PATH, {"until": 12}))
    assert mine.ok and mine.result == {"until": 12}
    assert stranger.reason is Reason.NOT_MEMBER_NODE
    assert changes(chain.state) == []


def _revoke_args(node: PrivateKey) -> dict:
    return {"node_id": node.fingerprint, "serial": "", "revoked_at": int(NOW.timestamp()),
            "reason": "evicted for forking", "proof": ""}


def test_an_evicted_forker_is_revoked_by_a_member_without_a_ca_proof() -> None:
    from node.trust.chain_state import REVOKE_PATH, revocations

    chain = _anchored_chain(_authority())
    forker, honest = NODES[3], NODES[2]
    # Before the eviction, a member cannot revoke another member without the CA's signature.
    (early,) = chain.run((NODES[0], REVOKE_PATH, _revoke_args(honest)))
    assert early.reason is Reason.BAD_SIGNATURE and "CA" in early.detail
    (evicted,) = chain.run((NODES[0], EVICT_PATH, _fork(forker)))
    assert evicted.ok, evicted.detail
    (other,) = chain.run((NODES[1], REVOKE_PATH, _revoke_args(honest)))
    assert other.reason is Reason.BAD_SIGNATURE  # only the evicted node loses its certificate
    revoke, again = chain.run((NODES[1], REVOKE_PATH, _revoke_args(forker)), (NODES[0], REVOKE_PATH,
                                                                               _revoke_args(forker)))
    assert revoke.ok, revoke.detail
    assert again.reason is Reason.EXISTS
    assert revocations(chain.state).node_ids == {forker.fingerprint}


def test_join_with_a_self_signed_or_revoked_certificate_is_refused() -> None:
    from node.transport.mtls import TlsIdentity
    from node.trust.certs import certificate_pem
    from node.trust.chain_state import REVOKE_PATH, revoke_args

    authority = _authority()
    chain = _anchored_chain(authority)
    self_signed = certificate_pem(TlsIdentity.self_signed(JOINER, ORIGIN, NOW).certificate).decode()
    (receipt,) = chain.run((JOINER, JOIN_PATH, {"cert": self_signed}))
    assert receipt.reason is Reason.FORBIDDEN and "not issued by the origin CA" in receipt.detail
    # The CA revoked the joiner's key on the chain: a certificate issued before that cannot join.
    cert = _cert_pem(authority, JOINER)
    args = revoke_args(origin=ORIGIN, node_id=JOINER.fingerprint, serial=None, revoked_at=NOW, reason="lost",
                       ca_key=authority.ca.key)
    (revoked,) = chain.run((NODES[0], REVOKE_PATH, args))
    assert revoked.ok, revoked.detail
    (late,) = chain.run((JOINER, JOIN_PATH, {"cert": cert}))
    assert late.reason is Reason.FORBIDDEN and "revoked" in late.detail
    assert changes(chain.state) == []


# -- the join policy: approvals by an owner or admin of a point ----------------------------------------


def test_joins_need_an_admin_approval_when_the_policy_says_so() -> None:
    from node.membership.state import APPROVE_PATH, POLICY_PATH, approval_point

    authority = _authority()
    chain = _anchored_chain(authority)
    admin, outsider = PrivateKey.from_seed(b"ops-admin"), PrivateKey.from_seed(b"ops-outsider")
    receipts = chain.run(
        (admin, "/users/create", {"name": "admin"}), (outsider, "/users/create", {"name": "outsider"}),
        (admin, "/points/create", {"point": "ops"}), (outsider, "/points/join", {"point": "ops"}),
    )
    assert all(r.ok for r in receipts), receipts
    # Only a member node puts the policy on the chain.
    (refused,) = chain.run((STRANGER, POLICY_PATH, {"approval_point": "ops"}))
    assert refused.reason is Reason.NOT_MEMBER_NODE
    (ok,) = chain.run((NODES[1], POLICY_PATH, {"approval_point": "ops"}))
    assert ok.ok and approval_point(chain.state) == "ops"
    join = (JOINER, JOIN_PATH, {"cert": _cert_pem(authority, JOINER)})
    (unapproved,) = chain.run(join)
    assert unapproved.reason is Reason.FORBIDDEN and "approval" in unapproved.detail
    # A plain member of the point may not approve; its owner may, once.
    (denied,) = chain.run((outsider, APPROVE_PATH, {"peer": JOINER.public.hex()}))
    assert denied.reason is Reason.FORBIDDEN
    (approved,) = chain.run((admin, APPROVE_PATH, {"peer": JOINER.public.hex()}))
    assert approved.ok, approved.detail
    (twice,) = chain.run((admin, APPROVE_PATH, {"peer": JOINER.public.hex()}))
    assert twice.reason is Reason.EXISTS
    (joined,) = chain.run(join)
    assert joined.ok, joined.detail
    assert JOINER.public in latest_members(chain.state, chain.genesis)


def test_without_a_policy_joins_need_no_approval_and_approvals_are_refused() -> None:
    from node.membership.state import APPROVE_PATH, POLICY_PATH

    authority = _authority()
    chain = _anchored_chain(authority)
    admin = PrivateKey.from_seed(b"ops-admin")
    assert chain.run((admin, "/users/create", {"name": "admin"}))[0].ok
    (nothing,) = chain.run((admin, APPROVE_PATH, {"peer": JOINER.public.hex()}))
    assert nothing.reason is Reason.NOT_FOUND
    (bad,) = chain.run((NODES[0], POLICY_PATH, {"approval_point": "Not A Point"}))
    assert bad.reason is Reason.INVALID_ARGS
    (joined,) = chain.run((JOINER, JOIN_PATH, {"cert": _cert_pem(authority, JOINER)}))
    assert joined.ok, joined.detail
