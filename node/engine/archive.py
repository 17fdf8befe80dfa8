"""Serving gossip from the chain store to a peer that lacks events we pruned from memory.

A node restarted after a long absence, or started with an empty data directory, asks for events
older than the rounds its peers keep in memory.  They are all on disk: each creator's next events
after what the peer knows are read from the store, ordered parents-first, and sent in the usual
sync response (marked `more`, so the peer keeps asking).  The peer verifies them like any event.
"""

from __future__ import annotations

from node.consensus.event import Event
from node.consensus.sync import Known, fit_frame
from node.engine.records import topological
from node.storage.chain import ChainStore


def events_from_store(
    chain: ChainStore, creators: list[bytes], known: Known, sender_known: Known, limit: int
) -> list[Event]:
    """Up to `limit` events the holder of `known` lacks, read from `chain`, parents first, within
    one frame next to our own `sender_known` map."""
    share = max(1, limit // max(1, len(creators)))
    batch: list[Event] = []
    for creator in creators:
        taken = 0
        for _, event_hash in chain.creator_events(creator, known.get(creator, -1) + 1):
            wire = chain.get_event(event_hash)
            if wire is None:
                break
            batch.append(Event.from_wire(wire))
            taken += 1
            if taken >= share:
                break
    ordered = topological(batch, outside_known=True)
    fitted, _ = fit_frame(ordered, sender_known, limit=limit)
    return fitted
