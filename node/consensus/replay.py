"""Replay a graph file (the conformance format of CONSENSUS.md) through the hashgraph.

In replay an event's hash is SHA-256 of its id, its timestamp is `timestamp_hint`, there are no
signatures, and `peer_sets` (round -> members) gives the peer sets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node import crypto
from node.consensus.blocks import OrderedRound
from node.consensus.errors import EventRejected, ReplayInputError
from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet


def member_key(name: str) -> bytes:
    """A stand-in 32-byte public key for a named member."""
    return crypto.sha256(b"replay-member:" + name.encode())


@dataclass
class ReplayRun:
    graph: Hashgraph
    order: list[str] = field(default_factory=list)  # event ids in insertion order
    hash_of: dict[str, bytes] = field(default_factory=dict)
    id_of: dict[bytes, str] = field(default_factory=dict)
    names: dict[bytes, str] = field(default_factory=dict)  # member key -> name
    processed: list[OrderedRound] = field(default_factory=list)

    def h(self, event_id: str) -> bytes:
        return self.hash_of[event_id]


def read_graph_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayInputError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayInputError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ReplayInputError(f"{path}: the top level must be an object")
    return data


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReplayInputError(f"{what} must be a list of strings")
    return list(value)


def _schedule(data: dict[str, Any]) -> PeerSchedule:
    participants = _str_list(data.get("participants"), "participants")
    raw = data.get("peer_sets") or {"0": participants}
    if not isinstance(raw, dict):
        raise ReplayInputError("peer_sets must map rounds to member lists")
    sets: dict[int, PeerSet] = {}
    for key, members in raw.items():
        try:
            rnd = int(key)
        except ValueError as exc:
            raise ReplayInputError(f"peer_sets key {key!r} is not a round number") from exc
        names = _str_list(members, f"peer_sets[{key}]")
        if not names:
            raise ReplayInputError(f"peer_sets[{key}] is empty")
        sets[rnd] = PeerSet.of(member_key(n) for n in names)
    if 0 not in sets:
        raise ReplayInputError("peer_sets needs a set for round 0")
    return PeerSchedule.from_map(sets)


def _event(raw: Any, run: ReplayRun, pos: int) -> tuple[str, Event]:
    if not isinstance(raw, dict):
        raise ReplayInputError(f"events[{pos}] is not an object")
    try:
        event_id, creator, index = raw["id"], raw["creator"], raw["index"]
        sp, op, txs, ts = raw["self_parent"], raw["other_parent"], raw.get("transactions", []), raw["timestamp_hint"]
    except KeyError as exc:
        raise ReplayInputError(f"events[{pos}] lacks the field {exc}") from exc
    if not isinstance(event_id, str) or not isinstance(creator, str):
        raise ReplayInputError(f"events[{pos}]: id and creator must be strings")
    if type(index) is not int or type(ts) is not int or index < 0 or ts < 0:
        raise ReplayInputError(f"event {event_id}: index and timestamp_hint must be non-negative integers")
    if event_id in run.hash_of:
        raise ReplayInputError(f"event {event_id} appears twice")
    parents: list[bytes | None] = []
    for parent in (sp, op):
        if parent is None:
            parents.append(None)
        elif isinstance(parent, str) and parent in run.hash_of:
            parents.append(run.hash_of[parent])
        else:
            raise ReplayInputError(f"event {event_id}: unknown parent {parent!r}")
    tx_list = _str_list(txs, f"event {event_id} transactions")
    key = member_key(creator)
    run.names[key] = creator
    event = Event(key, index, parents[0], parents[1], ts, tuple(t.encode() for t in tx_list))
    return event_id, event


def replay(data: dict[str, Any], *, exclude: Iterable[str] = (), run_each: bool = False) -> ReplayRun:
    """Insert the file's events (minus `exclude`) and run consensus (after each insert if asked)."""
    schedule = _schedule(data)
    hashes_by_obj: dict[int, bytes] = {}
    graph = Hashgraph(
        schedule, verify_signatures=False, hasher=lambda ev: hashes_by_obj[id(ev)], election_interval=None
    )  # Babble's blocks hold transactions only: no election blocks in a replay
    run = ReplayRun(graph)
    for key in schedule.all_members():
        run.names.setdefault(key, "?")
    skip = set(exclude)
    raw_events = data.get("events")
    if not isinstance(raw_events, list):
        raise ReplayInputError("events must be a list")
    keep_alive: list[Event] = []  # id() keys stay valid only while the objects live
    for pos, raw in enumerate(raw_events):
        if isinstance(raw, dict) and raw.get("id") in skip:
            continue
        event_id, event = _event(raw, run, pos)
        keep_alive.append(event)
        event_hash = crypto.sha256(event_id.encode())
        hashes_by_obj[id(event)] = event_hash
        try:
            graph.insert(event)
        except EventRejected as exc:
            raise ReplayInputError(f"event {event_id}: {exc}") from exc
        run.hash_of[event_id] = event_hash
        run.id_of[event_hash] = event_id
        run.order.append(event_id)
        if run_each:
            run.processed.extend(graph.run_consensus())
    run.processed.extend(graph.run_consensus())
    return run


def replay_report(run: ReplayRun) -> dict[str, Any]:
    """The JSON output of `node dag replay` (CONSENSUS.md, "Replay format")."""
    g = run.graph
    events: dict[str, Any] = {}
    for event_id in run.order:
        rec = g.record(run.hash_of[event_id])
        events[event_id] = {
            "round": rec.round,
            "witness": rec.witness,
            "famous": rec.famous if rec.witness else None,
            "lamport": rec.lamport,
            "round_received": rec.round_received,
        }
    blocks = [
        {
            "index": p.block.index,
            "round_received": p.block.round_received,
            "transactions": [t.decode("utf-8", "replace") for t in p.block.transactions],
        }
        for p in run.processed
        if p.block is not None
    ]
    return {
        "events": events,
        "consensus_order": [run.id_of[h] for h in g.consensus_order()],
        "blocks": blocks,
    }
