"""Issue 10: the byzantine member's fork attack (`local_byzantine.fork_events`) on real `MemberCore`s,
sans-IO: 3 honest members and 1 forker gossip in-process; the forker signs 2 to 10 events at one
index, pushes a different one to each honest member and then all of them to all.  Afterwards the
honest members gossip among themselves and must keep deciding rounds, all calling it a forker."""

from __future__ import annotations

import random

import pytest

from node.consensus.hashgraph import Hashgraph
from node.consensus.node_core import MemberCore
from node.consensus.peers import PeerSchedule, PeerSet
from node.consensus.sync import EagerPush
from node.crypto import PrivateKey
from simulations.local_byzantine import fork_events

HONEST = [0, 1, 2]
STEP_NS = 5_000_000


class Net:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.keys = [PrivateKey.from_seed(b"member-%d-%d" % (seed, i)) for i in range(4)]
        members = PeerSet.of([k.public for k in self.keys])
        self.cores = [MemberCore(k, Hashgraph(PeerSchedule(members))) for k in self.keys]
        self.now = 10**18

    def tick(self) -> int:
        self.now += STEP_NS
        return self.now

    def sync(self, a: int, b: int) -> None:
        ca, cb = self.cores[a], self.cores[b]
        ca.submit_transaction(self.rng.randbytes(16))  # busy members create an event per sync
        response = cb.handle_sync_request(ca.make_sync_request(cb.id))
        out = ca.handle_sync_response(cb.id, response, self.tick())
        if out.push is not None:
            cb.handle_eager_push(ca.id, out.push, self.tick())

    def gossip(self, among: list[int], steps: int) -> None:
        for _ in range(steps):
            a, b = self.rng.sample(among, 2)
            self.sync(a, b)

    def attack(self, branches: int, forks: int) -> None:
        """Like `local_byzantine` before its gossip stops: each fork is on the forker's own newest
        event, and between forks it gossips as a member (so its core signs one more branch)."""
        forker = self.cores[3]
        for f in range(forks):
            base = forker.head
            assert base is not None
            events = fork_events(self.keys[3], base, branches, self.tick(), f"fork-{f}")
            for i, event in enumerate(events):  # a split view first, then the evidence to everyone
                self.cores[HONEST[i % len(HONEST)]].handle_eager_push(forker.id, EagerPush((base, event)), self.tick())
            for h in HONEST:
                self.cores[h].handle_eager_push(forker.id, EagerPush(tuple(events)), self.tick())
            self.gossip([0, 1, 2, 3], 10)

    def rounds(self) -> list[int]:
        return [self.cores[h].graph.last_round for h in HONEST]


def run(branches: int, forks: int, seed: int = 0) -> tuple[Net, list[int], list[int]]:
    net = Net(seed)
    net.gossip([0, 1, 2, 3], 200)
    net.attack(branches, forks)
    before = net.rounds()
    net.gossip(HONEST, 300)
    return net, before, net.rounds()


@pytest.mark.parametrize("branches", [2, 3, 10])
def test_forks_are_flagged_and_honest_members_keep_deciding(branches: int) -> None:
    # 3 branches per index stalled the honest members before the graph kept up to 10 per index
    # (each kept a different two; events built on a refused branch were refused forever).
    net, before, after = run(branches=branches, forks=2)
    forker = net.keys[3].public
    for h in HONEST:
        graph = net.cores[h].graph
        assert graph.forkers() == [forker]
        assert len(graph.fork_evidence) >= 1
    assert min(after) >= max(before) + 10, (before, after)
