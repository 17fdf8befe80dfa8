"""The JSON documents of the read routes, built synchronously from a `NodeView`.

Each function runs without an await, so the hashgraph cannot change under it; nothing it
returns refers to live graph objects (only ints, bools, strings, lists and dicts).
"""

from __future__ import annotations

from typing import Any

from node import codec
from node.actions.envelope import Envelope
from node.actions.errors import EnvelopeError
from node.api.errors import NotFound
from node.api.view import JSONDict, NodeView, jsonable
from node.consensus.election import ElectionDecodeError, ElectionRecord
from node.consensus.errors import EventDecodeError
from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.records import EventRecord
from node.crypto import fingerprint

MAX_BLOCKS_PER_PAGE = 50
MAX_GRAPH_ROUNDS = 30
MAX_GRAPH_EVENTS = 3000
DEFAULT_GRAPH_ROUNDS = 8
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
    if isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], list):
        obj = obj[0]  # [body, extra]: take the body
    if isinstance(obj, list) and len(obj) == 7 and isinstance(obj[3], list):
        index, rnd, ts, txs, itxs, peers_hash, state_hash = obj
        doc: JSONDict = {"index": index, "round_received": rnd, "timestamp": ts, "transaction_count": len(txs),
                         "internal_transactions": jsonable(itxs), "peers_hash": jsonable(peers_hash),
                         "state_hash": jsonable(state_hash)}
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


# -- events, rounds and the graph ---------------------------------------------------------------


def _record_json(rec: EventRecord, fork: bool) -> JSONDict:
    e = rec.event
    return {
        "hash": rec.hash.hex(), "creator": fingerprint(e.creator), "index": e.index,
        "self_parent": e.self_parent.hex() if e.self_parent else None,
        "other_parent": e.other_parent.hex() if e.other_parent else None,
        "round": rec.round, "witness": rec.witness, "famous": rec.famous, "lamport": rec.lamport,
        "round_received": rec.round_received, "timestamp": e.timestamp, "transactions": len(e.transactions),
        "fork": fork,
    }


def _event_json(event: Event) -> JSONDict:
    return {
        "creator": fingerprint(event.creator), "creator_key": event.creator.hex(), "index": event.index,
        "self_parent": event.self_parent.hex() if event.self_parent else None,
        "other_parent": event.other_parent.hex() if event.other_parent else None,
        "timestamp": event.timestamp, "transactions": [t.hex() for t in event.transactions[:MAX_TX_LISTED]],
        "transaction_count": len(event.transactions),
        "internal_transactions": [{"kind": t.kind.name, "peer": t.peer.hex()} for t in event.internal_transactions],
        "block_signatures": [{"validator": fingerprint(s.validator), "block": s.block_index}
                             for s in event.block_signatures],
        "signature": event.signature.hex(),
    }


def event(view: NodeView, event_hash: bytes) -> JSONDict:
    graph = view.graph
    if graph is not None and graph.has(event_hash):
        rec = graph.record(event_hash)
        out = _event_json(rec.event)
        out.update(hash=event_hash.hex(), round=rec.round, witness=rec.witness, famous=rec.famous,
                   lamport=rec.lamport, round_received=rec.round_received, in_memory=True)
        return out
    raw = view.store.get_event(event_hash)
    if raw is None:
        raise NotFound(f"no event {event_hash.hex()}")
    try:
        out = _event_json(Event.from_wire(raw))
    except EventDecodeError:
        out = {"raw": raw.hex()}
    out.update(hash=event_hash.hex(), in_memory=False)
    return out


def round_info(view: NodeView, rnd: int) -> JSONDict:
    graph = view.graph
    out: JSONDict = {"round": rnd}
    found = False
    if graph is not None and rnd in graph.rounds:
        found = True
        info = graph.rounds[rnd]
        out.update(
            decided=info.decided, event_count=len(info.events),
            witnesses=[{"hash": w.hash.hex(), "creator": fingerprint(w.creator), "famous": w.famous}
                       for w in info.witnesses],
            famous_witnesses=[w.hash.hex() for w in info.famous_unique],
        )
        received = graph.ordered_rounds.get(rnd)
        if received is not None:
            out["received"] = [h.hex() for h in received[:MAX_GRAPH_EVENTS]]
    stored = view.store.get_round(rnd)
    if stored is not None:
        found = True
        try:
            out["stored"] = jsonable(codec.unpack(stored))
        except codec.DecodeError:
            out["stored"] = stored.hex()
    if not found:
        raise NotFound(f"round {rnd} is not known here (pruned or not reached)")
    return out


def _window(graph: Hashgraph, from_round: int | None, to_round: int | None) -> tuple[int, int]:
    last = max(graph.last_round, 0)
    hi = last if to_round is None else min(to_round, last)
    lo = max(hi - DEFAULT_GRAPH_ROUNDS + 1, 0) if from_round is None else from_round
    lo = max(lo, graph.pruned_below, hi - MAX_GRAPH_ROUNDS + 1, 0)
    return lo, hi


def graph_window(view: NodeView, from_round: int | None, to_round: int | None) -> JSONDict:
    graph = view.graph
    out: JSONDict = {"consensus": graph is not None, "members": [], "events": [], "forkers": [],
                     "blocks": recent_blocks(view), "latest_block": view.latest_block(), "truncated": False}
    if graph is None:
        out.update(from_round=None, to_round=None, last_round=None, decided_round=None)
        return out
    lo, hi = _window(graph, from_round, to_round)
    records: list[EventRecord] = []
    for rnd in range(lo, hi + 1):
        info = graph.rounds.get(rnd)
        if info is not None:
            records.extend(info.events)
    truncated = len(records) > MAX_GRAPH_EVENTS
    if truncated:  # keep the newest rounds: that is what a viewer follows
        records = sorted(records, key=lambda r: r.seq)[-MAX_GRAPH_EVENTS:]
    slots: dict[tuple[bytes, int], int] = {}
    for rec in records:
        slots[(rec.creator, rec.index)] = slots.get((rec.creator, rec.index), 0) + 1
    forkers = graph.forkers()
    out.update(
        from_round=lo, to_round=hi, last_round=graph.last_round, decided_round=graph.next_to_process - 1,
        first_undecided_round=graph.first_undecided, pruned_below=graph.pruned_below,
        members=[member(m) for m in graph.peers.all_members()],
        events=[_record_json(r, slots[(r.creator, r.index)] > 1) for r in sorted(records, key=lambda r: r.seq)],
        forkers=[fingerprint(f) for f in forkers], truncated=truncated,
    )
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


def federation(view: NodeView) -> JSONDict:
    if view.federation_source is not None:
        return view.federation_source()
    return {"origin": view.origin, "enabled": view.phase() == "federated", "origins": []}


def certificates(view: NodeView) -> list[Any]:
    return view.certificates_source() if view.certificates_source is not None else []
