"""Bounded memory: forget processed rounds older than a window.

Kept regardless of age: each creator's newest event (its next event needs it as self-parent) and
events not yet received (they will still be ordered).  Votes and strongly-seen caches of witnesses
whose earlier rounds are all decided are dropped: nothing can ask for them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.consensus.hashgraph import Hashgraph

KEEP_BLOCK_SIGNATURES = 1000


def prune(graph: Hashgraph, cutoff: int) -> int:
    """Drop what belongs to processed rounds `< cutoff`; return how many events were dropped."""
    dropped = 0
    anc = graph.anc
    cutoff = min(cutoff, graph.next_to_process)
    tops = graph.top_index
    events, chains = anc.events, anc.chains
    for rnd in [r for r in graph.rounds if r < cutoff]:
        info = graph.rounds.pop(rnd)
        for rec in info.events:
            col, index = rec.col, rec.index
            if rec.round_received is None or index >= tops[col]:
                continue
            chain = chains[col]
            slot = chain.pop(index, None)
            if slot is not None and (len(slot) > 1 or slot[0] is not rec):  # a fork's other branch stays
                rest = [r for r in slot if r is not rec]
                if rest:
                    chain[index] = rest
            del events[rec.hash]
            if rec.witness:  # a witness still referenced must not keep older ones alive
                rec.strongly_seen_prev = None
                rec.votes = None
            if rec.tips is not None:
                rec.tips = None
            dropped += 1
        graph.ordered_rounds.pop(rnd, None)
    for stale in [r for r in graph._pcache if r < cutoff]:
        del graph._pcache[stale]  # per-round cache: bounded like the rounds
    for rnd in range(graph.votes_cleared_upto, graph.first_undecided + 1):
        voted = graph.rounds.get(rnd)
        for w in voted.witnesses if voted is not None else ():
            w.votes = None
            w.strongly_seen_prev = None
    graph.votes_cleared_upto = graph.first_undecided + 1
    graph.pruned_below = max(graph.pruned_below, cutoff)
    graph.signatures.forget_before(graph.next_block_index - KEEP_BLOCK_SIGNATURES)
    return dropped
