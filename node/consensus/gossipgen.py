"""Deterministic random gossip graphs for tests, benchmarks and simulations.

Each step a random member creates an event on top of its own last event and another member's
last event (what a sync with that member would give it).  Randomness is an injected
`random.Random`; nothing global is used.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from node import crypto
from node.consensus.event import Event


def random_gossip(
    members: Sequence[bytes],
    count: int,
    rng: random.Random,
    *,
    keys: dict[bytes, crypto.PrivateKey] | None = None,
    tx_every: int = 1,
) -> Iterator[Event]:
    """`count` events in a valid insertion order; signed when `keys` (member -> key) is given."""
    heads: dict[bytes, Event] = {}
    n = len(members)
    for step in range(count):
        creator = members[step] if step < n else members[rng.randrange(n)]
        other = None
        if step >= n and n > 1:
            peer = members[rng.randrange(n - 1)]
            if peer == creator:
                peer = members[n - 1]
            other = heads[peer].hash
        own = heads.get(creator)
        txs = (step.to_bytes(8, "big"),) if tx_every and step % tx_every == 0 else ()
        index = 0 if own is None else own.index + 1
        self_parent = None if own is None else own.hash
        timestamp = step * 1_000_000
        if keys is not None:
            event = Event.create(
                keys[creator], index=index, self_parent=self_parent, other_parent=other,
                timestamp=timestamp, transactions=txs,
            )
        else:
            event = Event(creator, index, self_parent, other, timestamp, txs)
        heads[creator] = event
        yield event
