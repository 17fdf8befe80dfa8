"""Gossip timing the engine runs with (the self-event policy's heartbeats).

Busy: we hold transactions to carry, so we sync (and create an event) at this pace.
Idle: nothing to carry, so we sync slowly, enough to keep rounds moving and peers known.
Syncs in flight: how many peers we may be syncing with at once (each sync creates one event).
Kept at 1: with 2, the deterministic simulation's seed 20 (`python -m simulations.deterministic
--seed 20 --fault-seconds 4`) leaves 2 transactions undecided 60 s after the heal (a liveness bug
not yet understood); 2 gave the real 4-node origin roughly 1.3x the events/s.
"""

BUSY_HEARTBEAT_NS = 5_000_000
IDLE_HEARTBEAT_NS = 1_000_000_000
SYNCS_IN_FLIGHT = 1
