"""The handlers of the certificate transparency actions, signed by the origin's own nodes.

Registered through `node.trust.chain_actions`, which calls into this module when an action runs.

- `/certificates/record` {cert, ca}: a certificate issued by the origin CA (PEM of both). The first
  accepted record anchors the log to its CA certificate (which must be a CA for this block's origin);
  every later record must come from that same CA. The certificate must verify under it at the block's
  consensus time, name this origin, not be revoked and not be recorded already.
- `/certificates/revoke` {node_id, serial, revoked_at, reason, proof}: a revocation, signed by the
  anchored CA's key (`proof`, hex), sent by the revoked node itself, or sent by any member once the
  chain has evicted the node for forking (no proof needed). An empty serial revokes the node (every
  certificate of its key).

Handlers are deterministic: they read only their arguments, the state and the block (its time is
consensus time), and refuse with a receipt reason; a refused action changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from node.actions.context import ActionContext
from node.actions.errors import ActionRejected, Reason
from node.trust.certs import certificate_pem, load_certificate
from node.trust.chain_state import (
    CA_KEY,
    COUNT_KEY,
    NODE_ID_RE,
    REVOKED_KEY,
    SERIAL_RE,
    log_key,
    node_key,
    proof_valid,
    revocation_message,
    revocations,
    serial_hex,
    serial_key,
)
from node.trust.errors import CertificateRevoked, TrustError
from node.trust.transparency import certificate_fingerprint, issued_at
from node.trust.verify import verify_issued

MAX_PEM_CHARS = 8192


def _block_time(ctx: ActionContext) -> dt.datetime:
    return dt.datetime.fromtimestamp(ctx.block.timestamp_ns // 10**9, dt.UTC)


def _pem_arg(args: dict[str, Any], name: str) -> x509.Certificate:
    text = args.get(name)
    if not isinstance(text, str) or not 0 < len(text) <= MAX_PEM_CHARS or not text.startswith("-----"):
        raise ActionRejected(Reason.INVALID_ARGS, f"{name} must be a PEM certificate of at most {MAX_PEM_CHARS} chars")
    try:
        return load_certificate(text.encode())
    except TrustError as exc:
        raise ActionRejected(Reason.INVALID_ARGS, f"{name}: {exc}") from exc


def _check_ca(ctx: ActionContext, ca: x509.Certificate) -> None:
    """A self-signed CA certificate for this block's origin, valid at the block's time."""
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        ca.verify_directly_issued_by(ca)
    except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature) as exc:
        raise ActionRejected(Reason.INVALID_ARGS, f"ca is not a self-signed CA certificate: {exc}") from exc
    names = ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if not constraints.ca or not names or names[0].value != ctx.block.origin:
        raise ActionRejected(Reason.INVALID_ARGS, f"ca is not a CA certificate of origin {ctx.block.origin}")
    now = _block_time(ctx)
    if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
        raise ActionRejected(Reason.EXPIRED, "the CA certificate is not valid at the block's time")


def _anchor(ctx: ActionContext, ca: x509.Certificate) -> str:
    """The log's CA: set by the first record, the same CA for every later one."""
    fingerprint = certificate_fingerprint(ca)
    anchored = ctx.state.get_obj(CA_KEY)
    if isinstance(anchored, dict):
        if anchored.get("fingerprint") != fingerprint:
            raise ActionRejected(
                Reason.FORBIDDEN, f"issued by CA {fingerprint[:16]}, the log's CA is {anchored['fingerprint'][:16]}"
            )
        return fingerprint
    _check_ca(ctx, ca)
    anchor = {"pem": certificate_pem(ca).decode(), "fingerprint": fingerprint, "block": ctx.block.index}
    ctx.state.put_obj(CA_KEY, anchor)
    return fingerprint


def _append(ctx: ActionContext, entry: dict[str, Any]) -> int:
    seq = ctx.state.get_obj(COUNT_KEY) or 0
    entry = {"seq": seq, **entry, "block": ctx.block.index, "recorded_by": ctx.actor}
    ctx.state.put_obj(log_key(seq), entry)
    ctx.state.put_obj(COUNT_KEY, seq + 1)
    return int(seq)


def record_certificate(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Record a certificate issued by the origin CA in the transparency log; args: cert, ca (PEM)."""
    cert, ca = _pem_arg(args, "cert"), _pem_arg(args, "ca")
    fingerprint = _anchor(ctx, ca)
    try:
        identity = verify_issued(
            cert, ca=ca, origin=ctx.block.origin, now=_block_time(ctx), revoked=revocations(ctx.state)
        )
    except CertificateRevoked as exc:
        raise ActionRejected(Reason.FORBIDDEN, str(exc)) from exc
    except TrustError as exc:
        raise ActionRejected(Reason.INVALID_ARGS, f"certificate refused: {exc}") from exc
    serial = serial_hex(identity.serial)
    if ctx.state.get(serial_key(serial)) is not None:
        raise ActionRejected(Reason.EXISTS, f"certificate {serial} is already recorded")
    previous = ctx.state.get_obj(node_key(identity.node_id))
    since, until = int(issued_at(cert).timestamp()), int(identity.not_after.timestamp())
    seq = _append(ctx, {
        "action": "renewed" if previous is not None else "issued", "serial": serial, "node_id": identity.node_id,
        "not_before": since, "not_after": until, "issuer": fingerprint, "reason": "",
    })
    ctx.state.put_obj(serial_key(serial), {"node_id": identity.node_id, "issued_at": since, "not_after": until,
                                           "seq": seq})
    ctx.state.put_obj(node_key(identity.node_id), serial)
    return {"serial": serial, "node_id": identity.node_id, "seq": seq}


def _evicted(ctx: ActionContext, node_id: str) -> bool:
    """The chain evicted the node for forking (committed fork evidence, `node.membership`): its
    certificate is revoked by any member with no CA proof, so no human has to act on a proven liar."""
    from node.membership.state import is_evicted  # imported when used: no import-order ties between layers

    return is_evicted(ctx.state, node_id)


def revoke_certificate(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Record a revocation (signed by the origin CA, or by the revoked node itself); args: node_id,
    serial (hex, empty: the whole node), revoked_at (epoch s), reason, proof (hex CA signature)."""
    node_id, serial, reason = args.get("node_id"), args.get("serial", ""), args.get("reason", "")
    at = args.get("revoked_at")
    if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id):
        raise ActionRejected(Reason.INVALID_ARGS, "node_id must be a node id (20 hex chars)")
    if not isinstance(serial, str) or (serial and not SERIAL_RE.match(serial)):
        raise ActionRejected(Reason.INVALID_ARGS, "serial must be lower-case hex (or empty for the whole node)")
    if not isinstance(at, int) or isinstance(at, bool) or at < 0 or not isinstance(reason, str) or len(reason) > 200:
        raise ActionRejected(Reason.INVALID_ARGS, "revoked_at must be epoch seconds and reason a short string")
    anchored = ctx.state.get_obj(CA_KEY)
    if not isinstance(anchored, dict):
        raise ActionRejected(Reason.NOT_FOUND, "no CA is anchored on the chain yet")
    if ctx.actor != node_id and not _evicted(ctx, node_id):
        try:
            proof = bytes.fromhex(str(args.get("proof", "")))
        except ValueError as exc:
            raise ActionRejected(Reason.INVALID_ARGS, "proof must be hex") from exc
        ca = load_certificate(str(anchored["pem"]).encode())
        if not proof or not proof_valid(ca, revocation_message(ctx.block.origin, serial, node_id, at), proof):
            raise ActionRejected(Reason.BAD_SIGNATURE, "the revocation is not signed by the log's CA")
    revoked = revocations(ctx.state)
    if node_id in revoked.node_ids or (serial and int(serial, 16) in revoked.serials):
        raise ActionRejected(Reason.EXISTS, f"{serial or node_id} is already revoked")
    recorded = ctx.state.get_obj(serial_key(serial)) if serial else None
    if isinstance(recorded, dict) and recorded.get("node_id") != node_id:
        raise ActionRejected(Reason.INVALID_ARGS, f"certificate {serial} belongs to {recorded.get('node_id')}")
    revoked = revoked.revoke_serial(int(serial, 16)) if serial else revoked.revoke_node(node_id)
    ctx.state.put_obj(REVOKED_KEY, {
        "serials": sorted(serial_hex(s) for s in revoked.serials), "node_ids": sorted(revoked.node_ids),
    })
    seq = _append(ctx, {
        "action": "revoked", "serial": serial, "node_id": node_id, "not_before": at,
        "not_after": recorded.get("not_after", 0) if isinstance(recorded, dict) else 0,
        "issuer": anchored["fingerprint"], "reason": reason,
    })
    return {"serial": serial, "node_id": node_id, "seq": seq}
