"""The JSON documents of the read routes, built synchronously from a `NodeView`.

Each function runs without an await, so the hashgraph cannot change under it; nothing it
returns refers to live graph objects (only ints, bools, strings, lists and dicts).
"""

from __future__ import annotations

from typing import Any

from node import codec, crypto
from node.actions.envelope import Envelope
from node.actions.errors import EnvelopeError
from node.actions.state import Overlay, exec_request_key
from node.api.errors import BadRequest, NotFound
from node.api.view import JSONDict, NodeView, jsonable
from node.consensus.blocks import BlockDecodeError, ElectionSeed
from node.consensus.election import ElectionDecodeError, ElectionRecord
from node.crypto import fingerprint

MAX_BLOCKS_PER_PAGE = 50
MAX_TX_LISTED = 1000
GRAPH_RECENT_BLOCKS = 12


def member(key: bytes) -> JSONDict:
    return {"key": key.hex(), "id": fingerprint(key)}


# -- status and stats ---------------------------------------------------------------------------


def status(view: NodeView) -> JSONDict:
    graph = view.graph
    return {
        "node_id": view.node_id,
        "origin": view.origin,
        "version": view.version,
        "phase": view.phase(),
        "ready": view.ready(),
        "latest_block": view.latest_block(),
        "latest_round": view.latest_round(),
        "decided_round": graph.next_to_process - 1 if graph is not None else None,
        "catching_up": view.catching_up(),
        "peers": len(view.peers()),
        "uptime_s": round(view.uptime(), 3),
    }


def stats(view: NodeView) -> JSONDict:
    graph = view.graph
    out: JSONDict = {
        "latest_block": view.latest_block(),
        "latest_round": view.latest_round(),
        "signal_subscribers": view.signals.subscriber_count(),
        "actions_submitted": view.metrics.total("node_actions_submitted"),
        "blocks_committed": view.metrics.total("node_blocks_committed"),
        "events_inserted": view.metrics.total("node_events_inserted"),
        "rounds_decided": view.metrics.total("node_rounds_decided"),
        "consensus": graph is not None,
    }
    if graph is not None:
        out.update(
            events_in_memory=graph.event_count(),
            undetermined_events=len(graph.undetermined),
            last_round=graph.last_round,
            first_undecided_round=graph.first_undecided,
            next_round_to_process=graph.next_to_process,
            next_block_index=graph.next_block_index,
            pruned_below_round=graph.pruned_below,
            forkers=[fingerprint(f) for f in graph.forkers()],
            fork_evidence=len(graph.fork_evidence),
            members=len(graph.peers.all_members()),
        )
    return out


def validators(view: NodeView, rnd: int) -> JSONDict:
    graph = view.graph
    if graph is not None:
        ps = graph.peers.at(rnd)
        members, sm, tc = list(ps.members), ps.supermajority, ps.trust_count
        effective = max((r for r, _ in graph.peers.effective_rounds() if r <= rnd), default=0)
    else:
        found = view.store.peer_set_for(rnd)
        if found is None:
            raise NotFound(f"no peer set known for round {rnd}")
        effective, raw = found
        try:
            decoded = codec.unpack(raw)
        except codec.DecodeError as exc:
            raise NotFound(f"the stored peer set for round {rnd} is unreadable") from exc
        members = [m for m in decoded if isinstance(m, bytes)] if isinstance(decoded, list) else []
        n = len(members)
        sm, tc = 2 * n // 3 + 1, (0 if n <= 1 else -(-n // 3))
    return {"round": rnd, "effective_from": effective, "validators": [member(m) for m in members],
            "count": len(members), "supermajority": sm, "trust_count": tc}


def history(view: NodeView) -> list[JSONDict]:
    """Every peer set of the origin, with the round it takes effect (genesis first)."""
    if view.history_source is not None:
        return view.history_source()
    graph = view.graph
    if graph is None:
        return []
    return [{"effective_round": rnd, "members": [m.hex() for m in ps.members], "count": len(ps),
             "supermajority": ps.supermajority} for rnd, ps in graph.peers.effective_rounds()]


def evidence(view: NodeView) -> list[JSONDict]:
    """Committed fork proofs: two signed events by one member at one index (hex wire bytes)."""
    return view.evidence_source() if view.evidence_source is not None else []


# -- blocks -------------------------------------------------------------------------------------


def _transaction(view: NodeView, tx: bytes, with_receipt: bool) -> JSONDict:
    out: JSONDict = {"size": len(tx)}
    try:
        env = Envelope.from_wire(tx)
    except EnvelopeError:
        out["undecodable"] = True
        return out
    except Exception:  # a decoder bug must not break the inspection of a committed block
        out["undecodable"] = True
        return out
    out.update(action_id=env.action_id.hex(), path=env.path, origin=env.origin, actor=env.actor_fingerprint,
               nonce=env.nonce)
    receipt = view.lookup_receipt(env.action_id) if with_receipt else None
    if receipt is not None:
        out["ok"] = receipt.get("ok")
        out["reason"] = receipt.get("reason")
    return out


def _election(obj: Any) -> JSONDict | None:
    """The executor election seed an election round's block carries (8th body field)."""
    if obj is None:
        return None
    try:
        seed = ElectionSeed.from_obj(obj)
    except BlockDecodeError:
        return {"unreadable": True}
    return {"round": seed.round_received, "seed": seed.seed.hex(), "members": [member(m) for m in seed.members]}


def decode_block(view: NodeView, raw: bytes, detail: str = "full") -> JSONDict:
    """A stored block as JSON; knows `Block.body()` lists, shows anything else generically.

    `detail`: "full" lists transactions with their receipts, "list" without receipts (pages of
    blocks), "summary" only counts them (the DAG page polls it every second).
    """
    if view.decode_block is not None:
        return view.decode_block(raw)
    try:
        obj = codec.unpack(raw)
    except codec.DecodeError:
        return {"raw": raw.hex()}
    raw_is_body = True
    if isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], list):
        obj = obj[0]  # [body, extra]: take the body
        raw_is_body = False
    if isinstance(obj, list) and len(obj) in (7, 8) and isinstance(obj[3], list):
        index, rnd, ts, txs, itxs, peers_hash, state_hash = obj[:7]
        block_hash = crypto.sha256(raw if raw_is_body else codec.pack(obj)).hex()  # == Block.hash
        doc: JSONDict = {"hash": block_hash,
                         "index": index, "round_received": rnd, "timestamp": ts, "transaction_count": len(txs),
                         "internal_transactions": jsonable(itxs), "peers_hash": jsonable(peers_hash),
                         "state_hash": jsonable(state_hash), "election": _election(obj[7] if len(obj) == 8 else None)}
        if detail != "summary":
            doc["transactions"] = [_transaction(view, bytes(t), detail == "full")
                                   for t in txs[:MAX_TX_LISTED] if isinstance(t, bytes)]
            doc["transactions_truncated"] = len(txs) > MAX_TX_LISTED
        return doc
    if isinstance(obj, dict):
        return {str(k): v for k, v in jsonable(obj).items()}
    return {"body": jsonable(obj)}


def block(view: NodeView, index: int) -> JSONDict:
    raw = view.store.get_block(index)
    if raw is None:
        raise NotFound(f"no block {index}")
    out = decode_block(view, raw)
    out["index"] = index
    stored_hash = view.store.state_hash_at(index)
    if stored_hash is not None:
        out["state_hash"] = stored_hash.hex()
    signers = set(view.store.block_signatures(index))
    if view.graph is not None:
        signers.update(s.validator for s in view.graph.signatures.signatures(index))
    out["signatures"] = sorted(fingerprint(s) for s in signers)
    return out


def blocks(view: NodeView, start: int, count: int) -> JSONDict:
    items = []
    for index, raw in view.store.blocks(start, min(count, MAX_BLOCKS_PER_PAGE)):
        doc = decode_block(view, raw, "list")
        doc["index"] = index
        items.append(doc)
    nxt = items[-1]["index"] + 1 if items else None
    return {"start": start, "count": len(items), "blocks": items, "next": nxt, "latest": view.latest_block()}


def recent_blocks(view: NodeView, limit: int = GRAPH_RECENT_BLOCKS) -> list[JSONDict]:
    latest = view.latest_block()
    if latest is None:
        return []
    out = []
    for index, raw in view.store.blocks(max(0, latest - limit + 1), limit):
        doc = decode_block(view, raw, "summary")
        out.append({"index": index, "round_received": doc.get("round_received"),
                    "transactions": doc.get("transaction_count", 0)})
    return out


# -- executors, federation, certificates --------------------------------------------------------


def executors(view: NodeView) -> JSONDict:
    if view.executors_source is not None:
        return view.executors_source()
    latest: tuple[int, bytes] | None = None
    for item in view.store.elections():
        latest = item
    if latest is None:
        return {"round": None, "committee": [], "seed": None}
    try:
        record = ElectionRecord.from_obj(codec.unpack(latest[1]))
    except (codec.DecodeError, ElectionDecodeError):
        return {"round": latest[0], "committee": [], "seed": None, "unreadable": True}
    return {"round": record.round_received, "seed": record.seed.hex(),
            "committee": [member(m) for m in record.committee]}


def executor_request(view: NodeView, request_hex: str) -> JSONDict:
    """One executor request from committed state: pending, completed (with the agreed result) or failed."""
    try:
        request_id = bytes.fromhex(request_hex)
    except ValueError:
        request_id = b""
    if len(request_id) != 32:
        raise BadRequest("request must be 64 hex digits")
    record = Overlay(view.store.state).get_obj(exec_request_key(request_id))
    if not isinstance(record, dict):
        raise NotFound(f"no executor request {request_hex}")
    tracker = record.get("tracker") or {}
    return {
        "request": request_hex,
        "path": record.get("path"),
        "status": record.get("status"),
        "result": jsonable(record.get("result")),
        "reason": record.get("reason"),
        "committee": [member(m) for m in tracker.get("committee", [])],
        "responded": [member(vote[0]) for vote in tracker.get("votes", [])],
        "deadline_ns": tracker.get("deadline_ns"),
    }


def federation(view: NodeView) -> JSONDict:
    if view.federation_source is not None:
        return view.federation_source()
    return {"origin": view.origin, "enabled": view.phase() == "federated", "origins": []}


def certificates(view: NodeView) -> list[Any]:
    return view.certificates_source() if view.certificates_source is not None else []
