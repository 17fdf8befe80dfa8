"""Mutable per-event and per-round bookkeeping of the hashgraph (internal)."""

from __future__ import annotations

from node.consensus.event import Event

NO_DESCENDANT = 1 << 62  # first-descendant index meaning "no descendant by that creator yet"
_NO_FORKS: frozenset[int] = frozenset()


class EventRecord:
    """One inserted event plus its consensus coordinates.

    Parents are referenced by hash, never by object, so pruning old rounds really frees memory.
    `la[c]` is the highest index of creator column c among this event's ancestors (-1: none);
    First descendants (the lowest index of creator column c among its descendants) are computed
    when asked (`Ancestry.first_descendants`): nothing on the hot path needs them.
    """

    __slots__ = (
        "event", "hash", "col", "index", "seq", "sp", "op", "la", "tips", "forks_seen", "round",
        "witness", "lamport", "famous", "votes", "strongly_seen_prev", "round_received", "rr_next",
        "wvec", "pwvec",
    )

    def __init__(
        self, event: Event, event_hash: bytes, col: int, index: int, seq: int, la: list[int], lamport: int
    ) -> None:
        self.event = event
        self.hash = event_hash
        self.col = col
        self.index = index
        self.seq = seq
        self.sp = event.self_parent
        self.op = event.other_parent
        self.la = la
        # Only for creators known to fork: the maximal events by that creator among the ancestors.
        self.tips: dict[int, tuple[EventRecord, ...]] | None = None
        self.forks_seen = _NO_FORKS
        self.round = 0
        self.witness = False
        self.lamport = lamport
        self.famous: bool | None = None
        self.votes: dict[bytes, bool] | None = None
        self.strongly_seen_prev: list[EventRecord] | None = None
        self.round_received: int | None = None
        self.rr_next = 0  # first round still worth testing as this event's round received
        # The witnesses of this event's own round that are its ancestors: field i (of FIELD bits,
        # see hashgraph) is 1 when witnesses[i] is.  `pwvec`: the same for the round before.
        self.wvec = 0
        self.pwvec = 0

    @property
    def creator(self) -> bytes:
        return self.event.creator


class RoundInfo:
    """Witnesses and decision state of one round."""

    __slots__ = (
        "number", "witnesses", "decided", "famous_unique", "whitening", "events", "min_la", "wvecs", "pwvecs",
    )

    def __init__(self, number: int, columns: int = 0) -> None:
        self.number = number
        self.witnesses: list[EventRecord] = []
        self.decided = False
        self.famous_unique: list[EventRecord] = []
        self.whitening = 0
        self.events: list[EventRecord] = []  # events whose round is this one (for pruning)
        # Elementwise minimum of the unique famous witnesses' `la`: x is an ancestor of all of
        # them iff min_la[x.col] >= x.index (when nobody forked).
        self.min_la: list[int] = []
        # Per column, index -> `wvec` / `pwvec` of that creator's events of this round, so the
        # vectors of an event's newest ancestors are fetched by `map(dict.get, wvecs, la)` in C.
        self.wvecs: list[dict[int, int]] = [{} for _ in range(columns)]
        self.pwvecs: list[dict[int, int]] = [{} for _ in range(columns)]
