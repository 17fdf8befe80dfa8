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
            cached = graph.anc.strongly_seen(y, prev.witnesses, cols, sm)
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
            graph.fame_decisions += 1
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
    the undecided witnesses below it, whose voters' votes all exist by then.  Pending witnesses
    vote in round order and rounds are closed as soon as a vote can have decided them, so a large
    batch (a restart, a catch-up) costs in proportion to its size, not to its size times its rounds.
    """
    pending, graph.pending_witnesses = graph.pending_witnesses, []
    graph.fame_decisions = 0
    if len(pending) == 1 and not graph.anc.forkers:  # the common case: consensus runs per event
        y = pending[0]
        if y.famous is None and y.round < graph.last_round:
            _vote_on(graph, y)
        _vote_plain(graph, y)
        return _close_rounds(graph, graph.last_round - 1) if graph.fame_decisions else False
    pending.sort(key=_round_of)  # (stable: insertion order inside a round)
    for x in pending:
        if x.famous is None and x.round < graph.last_round:  # (no later witnesses: nobody to vote)
            _vote_on(graph, x)
    rounds = graph.rounds
    no_forks = not graph.anc.forkers
    changed = False
    for y in pending:
        j = y.round
        if graph.fame_decisions and j - 1 > graph.first_undecided:
            changed |= _close_rounds(graph, j - 1)  # votes of earlier batched voters may decide
        if no_forks:
            _vote_plain(graph, y)
            continue
        for rnd in range(graph.first_undecided, j):
            info = rounds.get(rnd)
            if info is None or info.decided:
                continue
            for x in info.witnesses:
                if x.famous is None:
                    _cast(graph, y, x)
    if graph.fame_decisions:
        changed |= _close_rounds(graph, graph.last_round - 1)
    return changed


def _round_of(rec: EventRecord) -> int:
    return rec.round


def _vote_plain(graph: Hashgraph, y: EventRecord) -> None:
    """`_cast` of witness y on every undecided witness below it, inlined for a graph without forks
    (the common case): the voters, their supermajority and y's vote table are fetched once."""
    j = y.round
    rounds = graph.rounds
    votes = y.votes
    if votes is None:
        votes = y.votes = {}
    voters: list[EventRecord] | None = None
    sm_j = 0
    decisions = 0
    for rnd in range(graph.first_undecided, j):
        info = rounds.get(rnd)
        if info is None or info.decided:
            continue
        d = j - rnd
        if d == 1:  # first-round votes: y votes for what it descends from
            la = y.la
            for x in info.witnesses:
                if x.famous is None and x.hash not in votes:
                    votes[x.hash] = la[x.col] >= x.index
            continue
        if voters is None:
            voters = strongly_seen_previous(graph, y)
            sm_j = graph.supermajority_at(j)
        normal = d % COIN_PERIOD != 0
        for x in info.witnesses:
            if x.famous is not None:
                continue
            key = x.hash
            if key in votes:
                continue
            yays = 0
            for w in voters:
                wv = w.votes
                if wv is not None and wv.get(key, False):
                    yays += 1
            nays = len(voters) - yays
            if normal:
                if yays >= sm_j or nays >= sm_j:
                    x.famous = yays >= nays
                    decisions += 1
                else:
                    votes[key] = yays >= nays
            elif yays >= sm_j or nays >= sm_j:
                votes[key] = yays >= nays
            else:
                votes[key] = coin(y.hash)
    if decisions:
        graph.fame_decisions += decisions


def _close_rounds(graph: Hashgraph, below: int) -> bool:
    """Close the undecided rounds before `below` that now are decided; advance `first_undecided`."""
    rounds = graph.rounds
    changed = False
    for rnd in range(graph.first_undecided, below):  # deciding r needs round r + 2
        if rnd in rounds and _close_round(graph, rnd):
            changed = True
    while True:
        info = rounds.get(graph.first_undecided)
        if info is None or not info.decided:
            break
        graph.first_undecided += 1
    return changed
