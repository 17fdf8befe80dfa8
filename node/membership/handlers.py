"""The handlers of the membership records; deterministic (args, state and block only).

- `/membership/join` {cert, address?}: signed by the JOINING key itself (identity guard `JOINER`), with a
  certificate for that key issued by the CA anchored on the chain (`certs/ca`, see
  `node.trust.chain_state`), valid at the block's consensus time and not revoked.
- `/membership/remove` {peer}: signed by a member node; a member may remove itself (a leave), and
  another member only once fork evidence against it is committed.
- `/membership/evict` {a, b}: two signed events (hex wire) by one member at one index, sent by any
  member node: the evidence is recorded and the forker removed in the same step.
- `/membership/policy` {approval_point}: a member node puts its truth's join policy on the chain
  (a point name: joins then need `/membership/approve` by an owner or admin of that point; null: none).
- `/membership/approve` {peer}: a registered user with role owner or admin in the approval point
  approves the join of that key (before the join is committed).

Each accepted change appends the whole new peer set to `membership/history`; it is in force from
round R + 6, R being the block's round received (`node.membership.state`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from node.actions.context import ActionContext
from node.actions.errors import ActionRejected, Reason
from node.actions.guards import point_arg, role_of
from node.consensus.errors import EventDecodeError
from node.consensus.event import PUBLIC_KEY_BYTES, Event
from node.consensus.peers import MEMBERSHIP_DELAY_ROUNDS
from node.crypto import fingerprint
from node.membership.state import (
    HISTORY_KEY,
    POLICY_KEY,
    approval_point,
    approved_key,
    changes,
    evicted_key,
    evidence_key,
    evidence_of,
    latest_members,
)
from node.trust.certs import load_certificate
from node.trust.chain_state import CA_KEY, revocations
from node.trust.errors import TrustError
from node.trust.verify import verify_issued

MAX_PEM_CHARS = 8192
_ADDRESS = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,250}:[0-9]{1,5}$")


def _peer_arg(args: dict[str, Any], name: str = "peer") -> bytes:
    value = args.get(name)
    try:
        peer = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        peer = b""
    if len(peer) != PUBLIC_KEY_BYTES:
        raise ActionRejected(Reason.INVALID_ARGS, f"{name} must be a {PUBLIC_KEY_BYTES}-byte public key in hex")
    return peer


def _append(
    ctx: ActionContext, change: str, peer: bytes, members: tuple[bytes, ...], address: str | None = None
) -> dict[str, Any]:
    if not members:
        raise ActionRejected(Reason.FORBIDDEN, "the change would leave the origin without members")
    history = changes(ctx.state)
    rnd = getattr(ctx.block, "round_received", None)  # when the block context carries it
    entry = {
        "seq": len(history), "block": ctx.block.index, "change": change, "peer": peer.hex(),
        "members": [m.hex() for m in sorted(members)], "by": ctx.actor,
        "effective": rnd + MEMBERSHIP_DELAY_ROUNDS if isinstance(rnd, int) and rnd >= 0 else None,
    }
    if address is not None:
        entry["address"] = address
    history.append(entry)
    ctx.state.put_obj(HISTORY_KEY, history)
    return {"change": change, "peer": peer.hex(), "members": len(members), "seq": entry["seq"]}


# -- join ---------------------------------------------------------------------------------------------


def joiner_identity(ctx: ActionContext) -> None:
    """Identity guard of a join: the envelope's own key is the one joining (never a member yet)."""
    env = ctx.envelope
    if env.key_type != "ed25519" or len(env.actor_key) != PUBLIC_KEY_BYTES:
        raise ActionRejected(Reason.INVALID_ARGS, "a member's key must be an ed25519 key")
    ctx.actor_id = env.actor_fingerprint


def join(ctx: ActionContext, args: dict[str, Any]) -> Any:
    joiner = ctx.envelope.actor_key
    if "peer" in args and _peer_arg(args) != joiner:
        raise ActionRejected(Reason.FORBIDDEN, "a join must be signed by the joining key itself")
    text = args.get("cert")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_PEM_CHARS:
        raise ActionRejected(Reason.INVALID_ARGS, f"cert must be a PEM certificate of at most {MAX_PEM_CHARS} chars")
    anchored = ctx.state.get_obj(CA_KEY)
    if not isinstance(anchored, dict):
        raise ActionRejected(Reason.NOT_FOUND, "no origin CA is anchored on the chain: cannot check the certificate")
    try:
        cert = load_certificate(text.encode())
        ca = load_certificate(str(anchored["pem"]).encode())
        now = dt.datetime.fromtimestamp(ctx.block.timestamp_ns // 10**9, dt.UTC)
        identity = verify_issued(cert, ca=ca, origin=ctx.block.origin, now=now, revoked=revocations(ctx.state))
    except TrustError as exc:
        raise ActionRejected(Reason.FORBIDDEN, f"certificate not issued by the origin CA: {exc}") from exc
    if identity.public_key != joiner:
        raise ActionRejected(Reason.FORBIDDEN, "the certificate is for another key than the one signing the join")
    address = args.get("address")
    if address is not None and not (isinstance(address, str) and _ADDRESS.match(address)):
        raise ActionRejected(Reason.INVALID_ARGS, "address must be host:port")
    members = latest_members(ctx.state, ctx.block.members)
    if joiner in members:
        raise ActionRejected(Reason.EXISTS, "already a member")
    if evidence_of(ctx.state, joiner) is not None:
        raise ActionRejected(Reason.FORBIDDEN, "this key was evicted for forking")
    point = approval_point(ctx.state)
    if point is not None and ctx.state.get(approved_key(joiner.hex())) is None:
        raise ActionRejected(Reason.FORBIDDEN, f"joins need an approval by an owner or admin of point {point}")
    return _append(ctx, "join", joiner, (*members, joiner), address)


# -- the join policy and approvals ------------------------------------------------------------------


def set_policy(ctx: ActionContext, args: dict[str, Any]) -> Any:
    value = args.get("approval_point")
    point = None if value is None else point_arg(args, "approval_point")
    ctx.state.put_obj(POLICY_KEY, {"approval_point": point, "block": ctx.block.index, "by": ctx.actor})
    return {"approval_point": point}


def approve(ctx: ActionContext, args: dict[str, Any]) -> Any:
    peer = _peer_arg(args)
    point = approval_point(ctx.state)
    if point is None:
        raise ActionRejected(Reason.NOT_FOUND, "this origin's joins need no approval")
    if role_of(ctx, point, ctx.actor) not in ("owner", "admin"):
        raise ActionRejected(Reason.FORBIDDEN, f"only an owner or admin of point {point} approves joins")
    if peer in latest_members(ctx.state, ctx.block.members):
        raise ActionRejected(Reason.EXISTS, "already a member")
    if ctx.state.get(approved_key(peer.hex())) is not None:
        raise ActionRejected(Reason.EXISTS, "this join is already approved")
    ctx.state.put_obj(approved_key(peer.hex()), {"by": ctx.actor, "block": ctx.block.index})
    return {"approved": peer.hex(), "point": point}


# -- leave and removal ------------------------------------------------------------------------------


def remove(ctx: ActionContext, args: dict[str, Any]) -> Any:
    peer = _peer_arg(args)
    members = latest_members(ctx.state, ctx.block.members)
    if peer not in members:
        raise ActionRejected(Reason.NOT_FOUND, "not a member (or already removed)")
    if peer != ctx.envelope.actor_key and evidence_of(ctx.state, peer) is None:
        raise ActionRejected(Reason.FORBIDDEN, "only the member itself may leave; removing another needs "
                                               "committed fork evidence")
    change = "leave" if peer == ctx.envelope.actor_key else "evict"
    return _append(ctx, change, peer, tuple(m for m in members if m != peer))


# -- eviction of a proven forker ---------------------------------------------------------------------


def _event_arg(args: dict[str, Any], name: str) -> Event:
    value = args.get(name)
    try:
        return Event.from_wire(bytes.fromhex(value) if isinstance(value, str) else b"")
    except (ValueError, EventDecodeError) as exc:
        raise ActionRejected(Reason.INVALID_ARGS, f"{name} must be a signed event (hex wire form): {exc}") from exc


def evict(ctx: ActionContext, args: dict[str, Any]) -> Any:
    a, b = _event_arg(args, "a"), _event_arg(args, "b")
    if a.creator != b.creator or a.index != b.index or a.hash == b.hash:
        raise ActionRejected(Reason.INVALID_ARGS, "evidence needs two different events by one creator at one index")
    if not (a.verify_signature() and b.verify_signature()):
        raise ActionRejected(Reason.BAD_SIGNATURE, "an evidence event is not signed by its creator")
    forker = a.creator
    if evidence_of(ctx.state, forker) is not None:
        raise ActionRejected(Reason.EXISTS, "fork evidence against this member is already committed")
    members = latest_members(ctx.state, ctx.block.members)
    if forker not in members:
        raise ActionRejected(Reason.NOT_FOUND, "the forker is not a member")
    first, second = sorted((a, b), key=lambda e: e.hash)  # one record whichever order they came in
    ctx.state.put_obj(evidence_key(forker.hex()), {
        "creator": forker.hex(), "index": a.index, "a": first.to_wire().hex(), "b": second.to_wire().hex(),
        "block": ctx.block.index, "by": ctx.actor,
    })
    ctx.state.put_obj(evicted_key(fingerprint(forker)), forker.hex())
    return _append(ctx, "evict", forker, tuple(m for m in members if m != forker))
