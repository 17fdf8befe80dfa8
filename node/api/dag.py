"""The hashgraph routes' documents: one event, one round, and a bounded window of the graph.

Synchronous like `queries`: nothing here awaits, and nothing returned refers to graph objects.
"""

from __future__ import annotations

from node import codec
from node.api.errors import NotFound
from node.api.queries import MAX_TX_LISTED, member, recent_blocks
from node.api.view import JSONDict, NodeView, jsonable
from node.consensus.errors import EventDecodeError
from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.records import EventRecord
from node.crypto import fingerprint

MAX_GRAPH_ROUNDS = 30
MAX_GRAPH_EVENTS = 3000
DEFAULT_GRAPH_ROUNDS = 8


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
