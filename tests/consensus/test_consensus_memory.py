"""Bounded memory: with `keep_rounds`, what the hashgraph holds stays bounded however long it runs.

Counts, not timing or RSS: every table that grows with inserted events or rounds is measured
(the full-size run of a million events is `bench/consensus_memory.py`).
"""

from __future__ import annotations

import random

from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet


def held(g: Hashgraph) -> dict[str, int]:
    return {
        "events": g.event_count(),
        "chained": sum(len(slot) for chain in g.anc.chains for slot in chain.values()),
        "rounds": len(g.rounds),
        "ordered rounds": len(g.ordered_rounds),
        "received": sum(map(len, g.received.values())),
        "undetermined": sum(map(len, g.undetermined_by_round.values())),
        "peer cache": len(g._pcache),
        "witness votes": sum(len(w.votes or ()) for info in g.rounds.values() for w in info.witnesses),
    }


def test_memory_stays_bounded_over_a_long_run_with_pruning() -> None:
    members = [bytes([i + 1]) * 32 for i in range(4)]
    g = Hashgraph(PeerSchedule(PeerSet.of(members)), verify_signatures=False, keep_rounds=10)
    early: dict[str, int] = {}
    peak: dict[str, int] = {}
    blocks = 0
    total = 30_000
    for i, event in enumerate(random_gossip(members, total, random.Random(4)), 1):
        g.insert(event)
        if i % 5 == 0:
            blocks += sum(1 for d in g.run_consensus() if d.block is not None)
        if i % 500 == 0:
            now = held(g)
            if i <= 4_000:  # the first few thousand events
                early = {k: max(v, early.get(k, 0)) for k, v in now.items()}
            else:
                peak = {k: max(v, peak.get(k, 0)) for k, v in now.items()}
    assert g.next_to_process > 2_000 and blocks > 2_000  # it kept deciding all along
    assert g.pruned_below > g.next_to_process - 20
    # Seven times the events later, nothing holds more than early on (plus a little jitter).
    for key, value in peak.items():
        assert value <= early[key] * 1.5 + 40, (key, early[key], value)
    assert peak["events"] < 400 and peak["rounds"] < 25, peak  # ~15 rounds of ~13 events
