"""Federation records on the chain: the deterministic half of a cross-origin request.

How a user's action for another origin is committed (origin A, target B):

- The user signs an envelope E with `origin=A, target=B` (say `/points/join`) and posts it to a
  node of A. The ORIGIN guard would refuse E in A's chain (its destination is B), and it should:
  A must not execute it. Instead the node's federation service checks E and wraps it in a
  `/federation/request` record signed by the node (MEMBER_NODE). Executed on every node of A, that
  record checks E (signature, origin, target known, not expired, request id unused) and opens
  `fed/out/<id>` with a deadline in consensus time: E is now committed at A.
- A node of A carries E to B with the block proof of that record; B's node checks the proof and
  posts `/federation/incoming` into B's chain, which runs E there as the remote actor
  `<key fingerprint>@A` (B knows A's users only by their keys) and records the receipt in
  `fed/in/<id>`; a request id seen before is refused (replay).
- B's node answers with the receipt and the proof of B's block; A's node posts
  `/federation/response`, whose handler checks B's proof (a supermajority of B's published nodes
  signed a block holding the incoming record of this request) before closing the request and
  materialising the update (a point of B joined: our user becomes a member of `<point>@B`,
  so the signals B forwards with `/federation/update` reach them like local ones).
- `/federation/timeout` closes a request whose deadline the block's consensus time has passed; a
  response in a later block is refused as closed, so every node of A agrees on the outcome.
- `/federation/origin` and `/federation/endpoint` record what DNS answers are made of and checked
  against: the other origins' published node ids and CA pins (set once a supermajority of our
  nodes resolved the same), and our own nodes' endpoints.

Handlers read only their arguments, the state and the block context (no clock, no I/O).
"""

from __future__ import annotations

from typing import Any

from node import codec
from node.actions.context import ActionContext
from node.actions.envelope import Envelope
from node.actions.errors import ActionError, ActionRejected, EnvelopeError, Reason
from node.actions.guards import MEMBER_NODE, NONCE
from node.actions.model import SignalOutput
from node.actions.registry import Registry
from node.actions.state import Overlay, member_key
from node.consensus.peers import supermajority
from node.crypto import fingerprint
from node.federation.errors import FederationDecodeError, ProofError
from node.federation.proofs import BlockProof, verify_proof_by_ids
from node.federation.records import is_node_id

REQUEST_PATH = "/federation/request"
INCOMING_PATH = "/federation/incoming"
RESPONSE_PATH = "/federation/response"
TIMEOUT_PATH = "/federation/timeout"
ORIGIN_PATH = "/federation/origin"
ENDPOINT_PATH = "/federation/endpoint"
UPDATE_PATH = "/federation/update"
# What a user of another origin may do here: act on points. Never create users, never reach
# executor actions or internal records.
REMOTE_PATHS = frozenset({"/points/join", "/points/leave", "/signals/post"})
MIN_TIMEOUT_MS = 100
MAX_TIMEOUT_MS = 3_600_000
DEFAULT_TIMEOUT_MS = 120_000
MS = 1_000_000


def origin_key(origin: str) -> bytes:
    return b"fed/origin/" + origin.encode()


def origin_vote_key(origin: str, node_id: str) -> bytes:
    return f"fed/origin_vote/{origin}/{node_id}".encode()


def endpoint_key(node_id: str) -> bytes:
    return b"fed/endpoint/" + node_id.encode()


def outgoing_key(request_id: bytes) -> bytes:
    return b"fed/out/" + request_id.hex().encode()


def incoming_key(request_id: bytes) -> bytes:
    return b"fed/in/" + request_id.hex().encode()


def remote_point(point: str, origin: str) -> str:
    """How our origin names a point of another origin: `<point>@<origin>` (no local point has an @)."""
    return f"{point}@{origin}"


def update_key(origin: str, point: str, seq: int) -> bytes:
    return f"fed/update/{origin}/{point}/{seq}".encode()


def remote_actor(envelope: Envelope) -> str:
    """How the target origin names the sender: its key's fingerprint, qualified by its origin."""
    return f"{envelope.actor_fingerprint}@{envelope.origin}"


def _refuse(reason: Reason, detail: str) -> ActionRejected:
    return ActionRejected(reason, detail)


def _verified_proof(ctx: ActionContext, args: dict[str, Any], origin: str) -> BlockProof:
    """The `proof` argument: a block proof signed by a supermajority of `origin`'s known nodes."""
    try:
        proof = BlockProof.from_obj(codec.unpack(_hex(args, "proof", 8 * 1024 * 1024)))
        verify_proof_by_ids(proof, known_origin(ctx, origin)["nodes"])
    except (codec.DecodeError, FederationDecodeError) as exc:
        raise _refuse(Reason.INVALID_ARGS, f"malformed proof: {exc}") from exc
    except ProofError as exc:
        raise _refuse(Reason.BAD_SIGNATURE, f"proof refused: {exc}") from exc
    return proof


def _hex(args: dict[str, Any], name: str, limit: int = 256 * 1024) -> bytes:
    value = args.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _refuse(Reason.INVALID_ARGS, f"{name} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise _refuse(Reason.INVALID_ARGS, f"{name} must be hex") from exc


def _str(args: dict[str, Any], name: str, limit: int = 253) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _refuse(Reason.INVALID_ARGS, f"{name} must be a string of 1..{limit} characters")
    return value


def _envelope(wire: bytes) -> Envelope:
    try:
        envelope = Envelope.from_wire(wire)
    except EnvelopeError as exc:
        raise _refuse(Reason.INVALID_ARGS, f"the carried envelope: {exc}") from exc
    if not envelope.verify_signature():
        raise _refuse(Reason.BAD_SIGNATURE, "the carried envelope's signature does not verify")
    return envelope


def known_origin(ctx: ActionContext, origin: str) -> dict[str, Any]:
    record = ctx.state.get_obj(origin_key(origin))
    if not isinstance(record, dict):
        raise _refuse(Reason.NOT_FOUND, f"unknown origin {origin!r}: not resolved here")
    return record


# -- records of discovery -----------------------------------------------------------------------------


def record_origin(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Vote for another origin's published node ids and CA pins (as this node's DNS answers gave them).

    Proofs of that origin are checked against what is recorded here, so one member alone must not
    set it: the record changes once a supermajority of our members voted for the same content.
    """
    origin = _str(args, "origin")
    if origin == ctx.block.origin:
        raise _refuse(Reason.INVALID_ARGS, "our own origin is not a remote origin")
    nodes, pins = args.get("nodes"), args.get("pins")
    if not isinstance(nodes, list) or not 0 < len(nodes) <= 64 or not all(
        isinstance(n, str) and is_node_id(n) for n in nodes
    ):
        raise _refuse(Reason.INVALID_ARGS, "nodes must be 1..64 node ids")
    if not isinstance(pins, list) or not all(isinstance(p, str) and len(p) == 64 for p in pins):
        raise _refuse(Reason.INVALID_ARGS, "pins must be SHA-256 pins in hex")
    content = {"nodes": sorted(set(nodes)), "pins": sorted(set(pins))}
    ctx.state.put_obj(origin_vote_key(origin, ctx.actor), content)
    old = ctx.state.get_obj(origin_key(origin))
    if isinstance(old, dict) and {k: old.get(k) for k in content} == content:
        return {"origin": origin, "changed": False}
    votes = sum(
        1 for member in ctx.block.members
        if ctx.state.get_obj(origin_vote_key(origin, fingerprint(member))) == content
    )
    needed = supermajority(len(ctx.block.members))
    if votes < needed:
        return {"origin": origin, "changed": False, "votes": votes, "needed": needed}
    ctx.state.put_obj(origin_key(origin), {**content, "block": ctx.block.index})
    return {"origin": origin, "changed": True, "votes": votes}


def record_endpoint(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Record the federation endpoint of the signing node and its origin CA pin (served in our DNS)."""
    host = _str(args, "host", 64)
    port, pin = args.get("port"), _str(args, "pin", 64)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise _refuse(Reason.INVALID_ARGS, "port must be 1..65535")
    record = {"host": host, "port": port, "pin": pin}
    if ctx.state.get_obj(endpoint_key(ctx.actor)) == record:
        return {"node": ctx.actor, "changed": False}
    ctx.state.put_obj(endpoint_key(ctx.actor), record)
    return {"node": ctx.actor, "changed": True}


# -- the source origin ----------------------------------------------------------------------------------


def open_request(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Commit a user's action for another origin: args envelope (hex), timeout_ms."""
    envelope = _envelope(_hex(args, "envelope"))
    timeout_ms = args.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or not (
        MIN_TIMEOUT_MS <= timeout_ms <= MAX_TIMEOUT_MS
    ):
        raise _refuse(Reason.INVALID_ARGS, f"timeout_ms must be {MIN_TIMEOUT_MS}..{MAX_TIMEOUT_MS}")
    if envelope.origin != ctx.block.origin:
        raise _refuse(Reason.WRONG_ORIGIN, f"the envelope is from {envelope.origin}, this is {ctx.block.origin}")
    target = envelope.target
    if target is None or target == ctx.block.origin:
        raise _refuse(Reason.INVALID_ARGS, "the envelope does not target another origin")
    if envelope.path not in REMOTE_PATHS:
        raise _refuse(Reason.FORBIDDEN, f"{envelope.path} cannot be sent to another origin")
    if ctx.block.timestamp_ns > envelope.expiry_ns:
        raise _refuse(Reason.EXPIRED, "the envelope expired before it was committed")
    known_origin(ctx, target)
    key = outgoing_key(envelope.action_id)
    if ctx.state.get(key) is not None:
        raise _refuse(Reason.EXISTS, "replayed request: this request id was committed before")
    deadline = ctx.block.timestamp_ns + timeout_ms * MS
    ctx.state.put_obj(key, {
        "target": target, "path": envelope.path, "args": envelope.args, "local": envelope.actor_fingerprint,
        "sender": ctx.actor, "deadline": deadline, "block": ctx.block.index, "status": "pending",
    })
    return {"request_id": envelope.action_id.hex(), "target": target, "deadline_ns": deadline}


def _pending(ctx: ActionContext, request_id: bytes) -> dict[str, Any]:
    record = ctx.state.get_obj(outgoing_key(request_id))
    if not isinstance(record, dict):
        raise _refuse(Reason.NOT_FOUND, "no such outgoing request")
    if record["status"] != "pending":
        raise _refuse(Reason.REQUEST_CLOSED, f"the request is closed ({record['status']})")
    return record


def proof_holds_incoming(proof: BlockProof, request_id: bytes, source: str) -> bool:
    """True when the proved block holds an `/federation/incoming` record of this request from `source`."""
    for tx in proof.block.transactions:
        try:
            envelope = Envelope.from_wire(tx)
        except EnvelopeError:
            continue
        if envelope.path == INCOMING_PATH and envelope.args.get("request_id") == request_id.hex():
            try:
                carried = Envelope.from_wire(bytes.fromhex(str(envelope.args.get("envelope", ""))))
            except (ValueError, EnvelopeError):
                continue
            if carried.action_id == request_id and carried.origin == source:
                return True
    return False


def _receipt(args: dict[str, Any]) -> dict[str, Any]:
    receipt = args.get("receipt")
    if not isinstance(receipt, dict) or set(receipt) != {"ok", "reason", "result", "detail"}:
        raise _refuse(Reason.INVALID_ARGS, "receipt must be a map of ok, reason, result, detail")
    if not isinstance(receipt["ok"], bool):
        raise _refuse(Reason.INVALID_ARGS, "receipt ok must be a boolean")
    return receipt


def close_with_response(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Close a request with the target origin's agreed answer: request_id, origin, receipt, proof (hex)."""
    request_id = _hex(args, "request_id", 64)
    origin = _str(args, "origin")
    receipt = _receipt(args)
    record = _pending(ctx, request_id)
    if origin != record["target"]:
        raise _refuse(Reason.FORBIDDEN, f"a response from {origin} to a request sent to {record['target']}")
    if ctx.block.timestamp_ns >= record["deadline"]:
        raise _refuse(Reason.REQUEST_CLOSED, "the response came after the request's deadline")
    proof = _verified_proof(ctx, args, origin)
    if not proof_holds_incoming(proof, request_id, ctx.block.origin):
        raise _refuse(Reason.INVALID_ARGS, "the proved block does not hold this request")
    record.update(status="done", receipt=receipt, closed_block=ctx.block.index, proof_block=proof.block.index)
    ctx.state.put_obj(outgoing_key(request_id), record)
    _materialise(ctx, record, receipt)
    return {"request_id": request_id.hex(), "status": "done", "receipt": receipt}


def _materialise(ctx: ActionContext, record: dict[str, Any], receipt: dict[str, Any]) -> None:
    """Mirror what the target's chain changed for our user (today: memberships of its points).

    The mirror is an ordinary membership of the point `<point>@<target>`, so the signals forwarded
    from the target (`/federation/update`) reach our user like any signal of a local point.
    """
    if not receipt["ok"]:
        return
    point = record["args"].get("point")
    if not isinstance(point, str):
        return
    key = member_key(remote_point(point, record["target"]), record["local"])
    if record["path"] == "/points/join":
        ctx.state.put_obj(key, "member")
    elif record["path"] == "/points/leave":
        ctx.state.delete(key)


def close_with_timeout(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Fail a request whose deadline passed in consensus time: request_id."""
    request_id = _hex(args, "request_id", 64)
    record = _pending(ctx, request_id)
    if ctx.block.timestamp_ns < record["deadline"]:
        raise _refuse(Reason.INVALID_ARGS, "the request's deadline has not passed yet")
    receipt = {"ok": False, "reason": "timeout", "result": None,
               "detail": f"no agreed response from {record['target']} by {record['deadline']}"}
    record.update(status="timeout", receipt=receipt, closed_block=ctx.block.index)
    ctx.state.put_obj(outgoing_key(request_id), record)
    return {"request_id": request_id.hex(), "status": "timeout", "receipt": receipt}


# -- the target origin -----------------------------------------------------------------------------------


def make_accept_incoming(registry: Registry) -> Any:
    def accept_incoming(ctx: ActionContext, args: dict[str, Any]) -> Any:
        """Run another origin's committed request here: request_id, envelope (hex), source block (index, hash).

        The node that posts this record checked the source origin's block proof before (it would
        not fit in the record: the proof holds a whole block); the chain checks the rest.
        """
        request_id = _hex(args, "request_id", 64)
        envelope = _envelope(_hex(args, "envelope"))
        if envelope.action_id != request_id:
            raise _refuse(Reason.INVALID_ARGS, "the request id is not the envelope's action id")
        if envelope.target != ctx.block.origin:
            raise _refuse(Reason.WRONG_ORIGIN, f"a request for {envelope.target}, this is {ctx.block.origin}")
        known_origin(ctx, envelope.origin)
        key = incoming_key(request_id)
        if ctx.state.get(key) is not None:
            raise _refuse(Reason.EXISTS, "replayed request: it was executed here before")
        receipt = _run_remote(ctx, envelope, registry)
        ctx.state.put_obj(key, {"source": envelope.origin, "receipt": receipt, "block": ctx.block.index})
        return {"request_id": request_id.hex(), "receipt": receipt}

    return accept_incoming


def _run_remote(ctx: ActionContext, envelope: Envelope, registry: Registry) -> dict[str, Any]:
    """Execute the carried envelope as the remote actor, in its own overlay; its refusal is its receipt."""
    inner = ActionContext(envelope, ctx.block, Overlay(ctx.state), actor_id=remote_actor(envelope))
    spec = registry.get(envelope.path)
    try:
        if spec is None or envelope.path not in REMOTE_PATHS or spec.executors:
            raise _refuse(Reason.FORBIDDEN, f"{envelope.path} cannot be requested by another origin")
        # Signature, origin (its target is us) and expiry as for any action; the identity and nonce
        # guards are replaced by the remote actor and the request-id record.
        for guard in spec.guards:
            if guard.name.startswith("identity") or guard is NONCE:
                continue
            guard.check(inner)
        result = spec.handler(inner, envelope.args)
    except ActionError as exc:
        return {"ok": False, "reason": exc.reason.value, "result": None, "detail": exc.detail[:1024]}
    inner.state.merge_into(ctx.state)
    for output in inner.outputs:
        ctx.emit(output)
    return {"ok": True, "reason": None, "result": result, "detail": ""}


def posted_signal(proof: BlockProof, action_id: bytes, point: str) -> Envelope | None:
    """The `/signals/post` to `point` with this action id in the proved block: posted there directly,
    or carried in from another origin in an `/federation/incoming` record."""
    for tx in proof.block.transactions:
        try:
            envelope = Envelope.from_wire(tx)
        except EnvelopeError:
            continue
        if envelope.path == INCOMING_PATH:
            try:
                envelope = Envelope.from_wire(bytes.fromhex(str(envelope.args.get("envelope", ""))))
            except (ValueError, EnvelopeError):
                continue
        if envelope.action_id == action_id and envelope.path == "/signals/post" and envelope.args.get("point") == point:
            return envelope
    return None


def accept_update(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Deliver a signal of another origin's point to our members: origin, point, seq, sender, action_id, proof."""
    origin, point, sender = _str(args, "origin"), _str(args, "point", 64), _str(args, "sender", 300)
    seq, action_id = args.get("seq"), _hex(args, "action_id", 64)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise _refuse(Reason.INVALID_ARGS, "seq must be a non-negative integer")
    proof = _verified_proof(ctx, args, origin)
    posted = posted_signal(proof, action_id, point)
    if posted is None:
        raise _refuse(Reason.INVALID_ARGS, "the proved block holds no such signal")
    key = update_key(origin, point, seq)
    if ctx.state.get(key) is not None:
        raise _refuse(Reason.EXISTS, "replayed update: this signal was delivered before")
    ctx.state.put_obj(key, {"block": ctx.block.index, "action": action_id.hex()})
    local = remote_point(point, origin)
    ctx.emit(SignalOutput(local, seq, sender, posted.args.get("body"), action_id, ctx.block.index))
    return {"point": local, "seq": seq}


def register(registry: Registry) -> Registry:
    registry.action(ORIGIN_PATH, identity=MEMBER_NODE)(record_origin)
    registry.action(ENDPOINT_PATH, identity=MEMBER_NODE)(record_endpoint)
    registry.action(REQUEST_PATH, identity=MEMBER_NODE)(open_request)
    registry.action(RESPONSE_PATH, identity=MEMBER_NODE)(close_with_response)
    registry.action(TIMEOUT_PATH, identity=MEMBER_NODE)(close_with_timeout)
    registry.action(INCOMING_PATH, identity=MEMBER_NODE)(make_accept_incoming(registry))
    registry.action(UPDATE_PATH, identity=MEMBER_NODE)(accept_update)
    return registry
