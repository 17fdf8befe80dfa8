"""The transparency log's record actions: accepted, refused with a reason, and changing nothing when refused."""

import datetime as dt
import random

from node.actions import BlockContext, Envelope, Reason, execute_block
from node.actions.builtin import BUILTIN
from node.actions.state import STATE_HASH_KEY
from node.crypto import PrivateKey
from node.trust import OriginCA, make_csr
from node.trust.authority import CertificateAuthority
from node.trust.chain_state import (
    RECORD_PATH,
    REVOKE_PATH,
    chain_view,
    log_entries,
    record_args,
    revocations,
    revoke_args,
)

ORIGIN = "alpha.example"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
T0 = int(NOW.timestamp()) * 10**9
NODES = [PrivateKey.from_seed(f"chain-node-{i}".encode()) for i in range(4)]
STRANGER = PrivateKey.from_seed(b"chain-stranger")


def _authority(origin: str = ORIGIN, seed: int = 1) -> CertificateAuthority:
    ca = OriginCA.generate(origin, NOW - dt.timedelta(days=1))
    return CertificateAuthority(ca, rng=random.Random(seed).randbytes)


class Chain:
    """Blocks executed one after the other over a dict state, as every node would."""

    def __init__(self) -> None:
        self.state: dict[bytes, bytes] = {}
        self.index = 0
        self.nonce = 0

    def run(self, *txs: tuple[PrivateKey, str, dict], at: dt.datetime = NOW):
        wires = []
        for key, path, args in txs:
            self.nonce += 1
            wires.append(Envelope.sign(key, origin=ORIGIN, path=path, args=args, nonce=self.nonce,
                                       expiry_ns=T0 + 10**15).to_wire())
        members = tuple(k.public for k in NODES)
        context = BlockContext(self.index, int(at.timestamp()) * 10**9, ORIGIN, members=members)
        result = execute_block(self.state, wires, context, BUILTIN)
        result.apply_to(self.state)
        self.index += 1
        return result.receipts

    def certs_only(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.state.items() if k.startswith(b"certs/")}


def _record(node: PrivateKey, authority: CertificateAuthority, subject: PrivateKey | None = None, origin=ORIGIN):
    cert = authority.sign(make_csr(subject or node, origin), NOW - dt.timedelta(minutes=1))
    return node, RECORD_PATH, record_args(cert, authority.ca.certificate), cert


def test_record_issued_then_renewed_anchors_the_ca_and_lists_entries() -> None:
    chain, authority = Chain(), _authority()
    node, path, args, first = _record(NODES[0], authority)
    _, _, renewed_args, renewed = _record(NODES[0], authority)
    other = _record(NODES[2], authority, subject=NODES[1])  # a node may record another node's certificate
    receipts = chain.run((node, path, args), (node, path, renewed_args), other[:3])
    assert [r.ok for r in receipts] == [True, True, True], [r.detail for r in receipts]
    entries = list(log_entries(chain.state))
    assert [e["action"] for e in entries] == ["issued", "renewed", "issued"]
    assert entries[0]["node_id"] == NODES[0].fingerprint and entries[0]["recorded_by"] == NODES[0].fingerprint
    assert entries[2]["node_id"] == NODES[1].fingerprint and entries[2]["recorded_by"] == NODES[2].fingerprint
    view = chain_view(chain.state)
    assert view.recorded == {first.serial_number, renewed.serial_number, other[3].serial_number}
    assert view.ca_fingerprint == entries[0]["issuer"]


def test_refusals_give_a_reason_and_change_nothing() -> None:
    chain, authority = Chain(), _authority()
    assert chain.run(_record(NODES[0], authority)[:3])[0].ok
    before = chain.certs_only()
    _, _, dup_args, _ = _record(NODES[0], authority)
    foreign = _authority(seed=2)  # another CA for the same origin
    other_origin = _authority("beta.example", seed=3)
    expired_cert = authority.sign(make_csr(NODES[1], ORIGIN), NOW - dt.timedelta(days=3), dt.timedelta(hours=1))
    cases = [
        ((STRANGER, RECORD_PATH, dup_args), Reason.NOT_MEMBER_NODE),
        ((NODES[1], RECORD_PATH, {"cert": "junk", "ca": "junk"}), Reason.INVALID_ARGS),
        ((NODES[1], RECORD_PATH, {"cert": dup_args["cert"]}), Reason.INVALID_ARGS),
        ((NODES[1], RECORD_PATH, _record(NODES[1], foreign)[2]), Reason.FORBIDDEN),
        ((NODES[1], RECORD_PATH, _record(NODES[1], other_origin, origin="beta.example")[2]), Reason.FORBIDDEN),
        ((NODES[1], RECORD_PATH, record_args(expired_cert, authority.ca.certificate)), Reason.INVALID_ARGS),
    ]
    receipts = chain.run(*(tx for tx, _ in cases))
    for receipt, (_, reason) in zip(receipts, cases, strict=True):
        assert not receipt.ok and receipt.reason is reason, (reason, receipt.reason, receipt.detail)
    assert "expired" in receipts[-1].detail
    assert chain.certs_only() == before


def test_duplicate_record_is_refused_as_exists() -> None:
    chain, authority = Chain(), _authority()
    node, path, args, _ = _record(NODES[0], authority)
    receipts = chain.run((node, path, args), (NODES[1], path, args))
    assert receipts[0].ok and receipts[1].reason is Reason.EXISTS
    assert len(list(log_entries(chain.state))) == 1


def test_first_record_must_carry_a_ca_of_this_origin() -> None:
    chain, authority = Chain(), _authority("beta.example")
    receipts = chain.run(_record(NODES[0], authority, origin="beta.example")[:3])
    assert receipts[0].reason is Reason.INVALID_ARGS and "origin alpha.example" in receipts[0].detail
    assert chain.certs_only() == {}


def test_revocation_signed_by_the_ca_or_by_the_node_itself() -> None:
    chain, authority = Chain(), _authority()
    recorded = [_record(n, authority) for n in NODES[:3]]
    assert all(r.ok for r in chain.run(*(r[:3] for r in recorded)))
    cert1, cert2 = recorded[1][3], recorded[2][3]
    by_ca = revoke_args(origin=ORIGIN, node_id=NODES[1].fingerprint, serial=cert1.serial_number, revoked_at=NOW,
                        reason="key lost", ca_key=authority.ca.key)
    forged = revoke_args(origin=ORIGIN, node_id=NODES[2].fingerprint, serial=cert2.serial_number, revoked_at=NOW,
                         reason="x", ca_key=_authority(seed=9).ca.key)
    unsigned = revoke_args(origin=ORIGIN, node_id=NODES[2].fingerprint, serial=None, revoked_at=NOW, reason="x",
                           ca_key=None)
    tampered = dict(by_ca, node_id=NODES[2].fingerprint)
    before = chain.certs_only()
    refused = chain.run((NODES[0], REVOKE_PATH, forged), (NODES[0], REVOKE_PATH, unsigned),
                        (NODES[0], REVOKE_PATH, tampered), (NODES[0], REVOKE_PATH, {"node_id": "zz"}))
    assert [r.reason for r in refused] == [Reason.BAD_SIGNATURE] * 3 + [Reason.INVALID_ARGS]
    assert chain.certs_only() == before
    receipts = chain.run((NODES[3], REVOKE_PATH, by_ca), (NODES[2], REVOKE_PATH, unsigned),
                         (NODES[0], REVOKE_PATH, by_ca))
    assert receipts[0].ok and receipts[1].ok, [r.detail for r in receipts]
    assert receipts[2].reason is Reason.EXISTS
    revoked = revocations(chain.state)
    assert revoked.serials == {cert1.serial_number} and revoked.node_ids == {NODES[2].fingerprint}
    entries = [e for e in log_entries(chain.state) if e["action"] == "revoked"]
    assert [(e["node_id"], e["reason"]) for e in entries] == [(NODES[1].fingerprint, "key lost"),
                                                               (NODES[2].fingerprint, "x")]
    # A revoked certificate or node is not recorded again.
    again = chain.run((NODES[0], RECORD_PATH, record_args(cert1, authority.ca.certificate)),
                      _record(NODES[0], authority, subject=NODES[2])[:3])
    assert [r.reason for r in again] == [Reason.FORBIDDEN, Reason.FORBIDDEN]


def test_revocation_before_any_record_is_refused() -> None:
    chain, authority = Chain(), _authority()
    args = revoke_args(origin=ORIGIN, node_id=NODES[1].fingerprint, serial=None, revoked_at=NOW, reason="",
                       ca_key=authority.ca.key)
    receipts = chain.run((NODES[0], REVOKE_PATH, args))
    assert receipts[0].reason is Reason.NOT_FOUND
    assert STATE_HASH_KEY in chain.state and chain.certs_only() == {}
