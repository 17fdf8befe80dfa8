"""Gossip timing the engine runs with (the self-event policy's heartbeats).

Busy: we hold transactions to carry, so we sync (and create an event) at this pace.
Idle: nothing to carry, so we sync slowly, enough to keep rounds moving and peers known.
Syncs in flight: how many peers we may be syncing with at once (each sync creates one event).
"""

BUSY_HEARTBEAT_NS = 5_000_000
IDLE_HEARTBEAT_NS = 1_000_000_000
SYNCS_IN_FLIGHT = 2
