"""Gossip sync messages (sans-IO): pull with a Known map, push what the peer lacks.

    A -> B  SyncRequest(from_id=A, known=A's known map)
    B -> A  SyncResponse(events A lacks, in topological order, at most `sync_limit`;
                         sender_known=B's known map; more=True when B held back events)
    A -> B  EagerPush(events B lacks, including the event A just created)

A Known map is creator -> highest index known (`Hashgraph.known()`).  Every message encodes
through `node.codec` into one frame of at most 1 MiB; decoding is bounded and every failure is a
`SyncDecodeError` (the peer broke the protocol, so the transport may penalise it).  Events travel
in their own wire form (`Event.to_wire`), so their hashes and signatures are checked exactly as
for any other event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from node import codec
from node.consensus.errors import ConsensusError, EventDecodeError
from node.consensus.event import HASH_BYTES, PUBLIC_KEY_BYTES, Event

Known = dict[bytes, int]
# For creators known to fork: creator -> (first fork index, hashes of that creator's branch tips).
# One index per creator cannot tell branches apart; the tips say which branches the sender holds.
Forks = dict[bytes, tuple[int, tuple[bytes, ...]]]
# Creator -> hash of the sender's newest event by that creator (the one at its Known index).  A peer
# that holds a different event at that index learns that the chains diverge: a fork neither side
# has seen yet, which a Known map alone would hide forever.
Heads = dict[bytes, bytes]

SYNC_LIMIT = 1000  # events per response or push
MAX_FRAME_BYTES = codec.MAX_MESSAGE_BYTES
MAX_KNOWN_ENTRIES = 10_000  # members in one Known map
MAX_FORK_TIPS = 16  # tips listed per forker (the graph stores at most MAX_BRANCHES = 10 per index)

_SYNC_REQUEST = 1
_SYNC_RESPONSE = 2
_EAGER_PUSH = 3


class SyncDecodeError(ConsensusError):
    """A gossip message that is malformed or out of bounds."""


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise SyncDecodeError(what)


def _known_to_obj(known: Known) -> dict[bytes, int]:
    return dict(known)


def _known_from_obj(obj: Any) -> Known:
    _need(isinstance(obj, dict), "a known map is a map")
    _need(len(obj) <= MAX_KNOWN_ENTRIES, "known map too large")
    out: Known = {}
    for creator, index in obj.items():
        _need(isinstance(creator, bytes) and len(creator) == PUBLIC_KEY_BYTES, "bad creator in known map")
        _need(type(index) is int and -1 <= index < 1 << 63, "bad index in known map")
        out[creator] = index
    return out


def _forks_to_obj(forks: Forks) -> dict[bytes, list[Any]]:
    return {c: [floor, list(tips)] for c, (floor, tips) in forks.items()}


def _forks_from_obj(obj: Any) -> Forks:
    _need(isinstance(obj, dict) and len(obj) <= MAX_KNOWN_ENTRIES, "bad fork map")
    out: Forks = {}
    for creator, item in obj.items():
        _need(isinstance(creator, bytes) and len(creator) == PUBLIC_KEY_BYTES, "bad creator in fork map")
        _need(isinstance(item, list) and len(item) == 2, "bad fork entry")
        floor, tips = item
        _need(type(floor) is int and 0 <= floor < 1 << 63, "bad fork floor")
        _need(isinstance(tips, list) and len(tips) <= MAX_FORK_TIPS, "bad fork tips")
        _need(all(isinstance(t, bytes) and len(t) == HASH_BYTES for t in tips), "bad fork tip")
        out[creator] = (floor, tuple(tips))
    return out


def _heads_to_obj(heads: Heads) -> dict[bytes, bytes]:
    return dict(heads)


def _heads_from_obj(obj: Any) -> Heads:
    _need(isinstance(obj, dict) and len(obj) <= MAX_KNOWN_ENTRIES, "bad heads map")
    for creator, head in obj.items():
        _need(isinstance(creator, bytes) and len(creator) == PUBLIC_KEY_BYTES, "bad creator in heads map")
        _need(isinstance(head, bytes) and len(head) == HASH_BYTES, "bad head hash")
    return dict(obj)


def _events_from_obj(obj: Any, limit: int) -> tuple[Event, ...]:
    _need(isinstance(obj, list), "events must be a list")
    _need(len(obj) <= limit, f"{len(obj)} events > limit {limit}")
    events: list[Event] = []
    for item in obj:
        _need(isinstance(item, bytes), "an event is wire bytes")
        try:
            events.append(Event.from_wire(item))
        except EventDecodeError as exc:
            raise SyncDecodeError(f"bad event: {exc.detail or exc}") from exc
    return tuple(events)


@dataclass(frozen=True)
class SyncRequest:
    from_id: bytes
    known: Known
    forks: Forks = field(default_factory=dict)
    heads: Heads = field(default_factory=dict)

    def to_obj(self) -> list[Any]:
        return [
            _SYNC_REQUEST, self.from_id, _known_to_obj(self.known), _forks_to_obj(self.forks),
            _heads_to_obj(self.heads),
        ]

    @staticmethod
    def from_obj(obj: Any) -> SyncRequest:
        _need(isinstance(obj, list) and len(obj) == 5 and obj[0] == _SYNC_REQUEST, "not a sync request")
        _need(isinstance(obj[1], bytes) and len(obj[1]) == PUBLIC_KEY_BYTES, "bad from_id")
        return SyncRequest(obj[1], _known_from_obj(obj[2]), _forks_from_obj(obj[3]), _heads_from_obj(obj[4]))


@dataclass(frozen=True)
class SyncResponse:
    events: tuple[Event, ...]
    sender_known: Known
    more: bool
    sender_forks: Forks = field(default_factory=dict)
    sender_heads: Heads = field(default_factory=dict)

    def to_obj(self) -> list[Any]:
        return [
            _SYNC_RESPONSE, [e.to_wire() for e in self.events], _known_to_obj(self.sender_known), self.more,
            _forks_to_obj(self.sender_forks), _heads_to_obj(self.sender_heads),
        ]

    @staticmethod
    def from_obj(obj: Any, limit: int = SYNC_LIMIT) -> SyncResponse:
        _need(isinstance(obj, list) and len(obj) == 6 and obj[0] == _SYNC_RESPONSE, "not a sync response")
        _need(isinstance(obj[3], bool), "bad more flag")
        return SyncResponse(
            _events_from_obj(obj[1], limit), _known_from_obj(obj[2]), obj[3], _forks_from_obj(obj[4]),
            _heads_from_obj(obj[5]),
        )


@dataclass(frozen=True)
class EagerPush:
    events: tuple[Event, ...]

    def to_obj(self) -> list[Any]:
        return [_EAGER_PUSH, [e.to_wire() for e in self.events]]

    @staticmethod
    def from_obj(obj: Any, limit: int = SYNC_LIMIT) -> EagerPush:
        _need(isinstance(obj, list) and len(obj) == 2 and obj[0] == _EAGER_PUSH, "not an eager push")
        return EagerPush(_events_from_obj(obj[1], limit))


SyncMessage = SyncRequest | SyncResponse | EagerPush


def encode_message(message: SyncMessage) -> bytes:
    data = codec.pack(message.to_obj())
    if len(data) > MAX_FRAME_BYTES:  # the builders below never produce this; a caller bug
        raise codec.EncodeError(f"gossip message of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    return data


def decode_message(data: bytes, *, limit: int = SYNC_LIMIT) -> SyncMessage:
    """Decode one frame; raises `SyncDecodeError` for anything malformed or out of bounds."""
    try:
        obj = codec.unpack(data, max_bytes=MAX_FRAME_BYTES)
    except codec.DecodeError as exc:
        raise SyncDecodeError(str(exc)) from exc
    _need(isinstance(obj, list) and len(obj) > 0, "a gossip message is a tagged list")
    kind = obj[0]
    if kind == _SYNC_REQUEST:
        return SyncRequest.from_obj(obj)
    if kind == _SYNC_RESPONSE:
        return SyncResponse.from_obj(obj, limit)
    if kind == _EAGER_PUSH:
        return EagerPush.from_obj(obj, limit)
    raise SyncDecodeError(f"unknown gossip message kind {kind!r}")


def fit_frame(
    events: Iterable[Event],
    known: Known,
    forks: Forks | None = None,
    heads: Heads | None = None,
    limit: int = SYNC_LIMIT,
) -> tuple[list[Event], bool]:
    """The longest prefix of `events` (at most `limit`) that fits one frame next to the sender's
    view; and whether anything was held back.  A prefix of a topological order is still one."""
    view = [_known_to_obj(known), _forks_to_obj(forks or {}), _heads_to_obj(heads or {})]
    overhead = len(codec.pack(view)) + 64  # tag, list headers, flag
    budget = MAX_FRAME_BYTES - overhead
    taken: list[Event] = []
    for event in events:
        if len(taken) == limit:
            return taken, True
        size = len(event.to_wire()) + 5  # bin header
        if size > budget:
            return taken, True
        budget -= size
        taken.append(event)
    return taken, False
