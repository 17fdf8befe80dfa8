"""Virtual voting: deciding which witnesses are famous.

Votes are cached on the voting witness: a witness's vote depends only on its ancestors, which
never change, so each (voter, candidate) pair is computed once however often consensus runs.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

from node.consensus.records import EventRecord

if TYPE_CHECKING:
    from node.consensus.hashgraph import Hashgraph

COIN_PERIOD = 4
_famous = attrgetter("famous")


def coin(event_hash: bytes) -> bool:
    """The fair coin: one bit from the middle of the voter's hash."""
    return bool(event_hash[len(event_hash) // 2] & 1)


def strongly_seen_previous(graph: Hashgraph, y: EventRecord) -> list[EventRecord]:
    """The witnesses of round(y) - 1 that y strongly sees (with that round's peer set)."""
    cached = y.strongly_seen_prev
    if cached is None:
        prev = graph.rounds.get(y.round - 1)
        cached = []
        if prev is not None:
            _, cols, sm = graph.peer_info(y.round - 1)
            cached = [w for w in prev.witnesses if graph.anc.strongly_see(y, w, cols, sm)]
        y.strongly_seen_prev = cached
    return cached


def _cast(graph: Hashgraph, y: EventRecord, x: EventRecord) -> None:
    """Witness y's vote on the undecided witness x of an earlier round; it may decide x."""
    key = x.hash
    votes = y.votes
    if votes is None:
        votes = y.votes = {}
    elif key in votes:
        return
    d = y.round - x.round
    if d == 1:
        anc = graph.anc
        votes[key] = y.la[x.col] >= x.index if not anc.forkers else anc.see(y, x)
        return
    voters = strongly_seen_previous(graph, y)
    yays = 0
    for w in voters:
        if w.votes is not None and w.votes.get(key, False):
            yays += 1
    nays = len(voters) - yays
    vote = yays >= nays
    tally = yays if yays > nays else nays
    sm_j = graph.supermajority_at(y.round)
    if d % COIN_PERIOD != 0:
        if tally >= sm_j:
            x.famous = vote
            return
    elif tally < sm_j:
        vote = coin(y.hash)
    votes[key] = vote


def _vote_on(graph: Hashgraph, x: EventRecord) -> None:
    """Every existing later witness votes on x, round by round, until x is decided."""
    for j in range(x.round + 1, graph.last_round + 1):
        info = graph.rounds.get(j)
        if info is None:
            return
        for y in info.witnesses:
            _cast(graph, y, x)
            if x.famous is not None:
                return


def _close_round(graph: Hashgraph, rnd: int) -> bool:
    """Mark round `rnd` decided if it now is; compute its unique famous witnesses."""
    info = graph.rounds[rnd]
    if info.decided:
        return False
    if None in map(_famous, info.witnesses):
        return False
    if len(info.witnesses) < graph.supermajority_at(rnd):
        return False
    famous = [w for w in info.witnesses if w.famous]
    if graph.anc.forkers:
        per_creator: dict[bytes, int] = {}
        for w in famous:
            per_creator[w.creator] = per_creator.get(w.creator, 0) + 1
        famous = [w for w in famous if per_creator[w.creator] == 1]
    # (without forks a creator has at most one witness per round: every famous one is unique)
    info.famous_unique = famous
    whitening = 0
    for w in famous:
        whitening ^= int.from_bytes(w.hash, "big")
    info.whitening = whitening
    if len(famous) > 1:
        info.min_la = list(map(min, *(w.la for w in famous)))  # columnwise minimum, in C
    else:
        info.min_la = list(famous[0].la) if famous else []
    info.decided = True
    return True


def decide_fame(graph: Hashgraph) -> bool:
    """Let the witnesses inserted since the last call vote; True when some round became decided.

    A vote depends only on the voter's ancestors, so votes already cast never change: each new
    witness is voted on by the existing later witnesses (it may be late), then votes itself on
    the undecided witnesses below it, whose voters' votes all exist by then.
    """
    pending, graph.pending_witnesses = graph.pending_witnesses, []
    for x in pending:
        if x.famous is None and x.round < graph.last_round:  # (no later witnesses: nobody to vote)
            _vote_on(graph, x)
    rounds = graph.rounds
    no_forks = not graph.anc.forkers
    for y in pending:
        for rnd in range(graph.first_undecided, y.round):
            info = rounds.get(rnd)
            if info is None or info.decided:
                continue
            if no_forks and rnd == y.round - 1:
                # First-round votes, inlined (the most common): y votes for what it descends from.
                votes = y.votes
                if votes is None:
                    votes = y.votes = {}
                la = y.la
                for x in info.witnesses:
                    if x.famous is None and x.hash not in votes:
                        votes[x.hash] = la[x.col] >= x.index
                continue
            for x in info.witnesses:
                if x.famous is None:
                    _cast(graph, y, x)
    changed = False
    for rnd in range(graph.first_undecided, graph.last_round - 1):  # deciding r needs round r + 2
        if rnd in rounds and _close_round(graph, rnd):
            changed = True
    while True:
        info = rounds.get(graph.first_undecided)
        if info is None or not info.decided:
            break
        graph.first_undecided += 1
    return changed
