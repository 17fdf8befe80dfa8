"""When a member gossips and when it creates a self-event (pure).

Like Babble's heartbeat / slow heartbeat: while the member is *busy* (it holds payload to carry,
or transactions in the graph still wait for their order) it syncs every `heartbeat_ns` and
creates an event after each sync, so rounds keep being decided; when idle it syncs only every
`slow_heartbeat_ns` and creates events only when a sync brought loaded events, so an idle
network does not chatter empty events at full speed yet still answers new work at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.consensus.errors import ConsensusUsageError

DEFAULT_HEARTBEAT_NS = 20_000_000  # 20 ms
DEFAULT_SLOW_HEARTBEAT_NS = 1_000_000_000  # 1 s


@dataclass(frozen=True)
class Activity:
    """What a member has to do, as counts."""

    pending_transactions: int = 0
    pending_internal: int = 0
    pending_block_signatures: int = 0
    loaded_undetermined: int = 0  # events in the graph with payload and no round received yet

    @property
    def has_payload(self) -> bool:
        return (self.pending_transactions + self.pending_internal + self.pending_block_signatures) > 0

    @property
    def busy(self) -> bool:
        return self.has_payload or self.loaded_undetermined > 0


@dataclass(frozen=True)
class SelfEventPolicy:
    heartbeat_ns: int = DEFAULT_HEARTBEAT_NS
    slow_heartbeat_ns: int = DEFAULT_SLOW_HEARTBEAT_NS

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_ns <= self.slow_heartbeat_ns:
            raise ConsensusUsageError("need 0 < heartbeat_ns <= slow_heartbeat_ns")

    def interval(self, activity: Activity) -> int:
        """Time from one gossip round to the next."""
        return self.heartbeat_ns if activity.busy else self.slow_heartbeat_ns

    def next_deadline(self, last_gossip_ns: int | None, activity: Activity) -> int:
        """Absolute time of the next gossip; at once when we never gossiped."""
        if last_gossip_ns is None:
            return 0
        return last_gossip_ns + self.interval(activity)

    def create_after_sync(self, activity: Activity, *, loaded_received: int, caught_up: bool) -> bool:
        """Whether to create a self-event after a sync.

        `loaded_received`: events with payload the sync inserted; `caught_up`: the peer sent
        everything (no `more`), so the new event's other-parent is the peer's real head.
        """
        if not caught_up:
            return False
        return activity.busy or loaded_received > 0

    def create_without_peers(self, activity: Activity) -> bool:
        """A lone member (no other peer) creates events on its own while it has work."""
        return activity.busy
