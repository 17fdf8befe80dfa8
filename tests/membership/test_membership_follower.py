"""The block listener on in-process hashgraphs: committed changes reach the peer schedule at R+6,
the remaining members keep deciding, a late change is detected, and a fork leads to an eviction."""

import random

from node import codec
from node.actions import BlockContext, Envelope, execute_block
from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet
from node.crypto import PrivateKey
from node.engine.apply import AppliedBlock
from node.membership.follower import MembershipFollower, restore_peer_sets
from node.membership.state import REMOVE_PATH, changes, evidence_of
from node.trust.chain_state import CA_KEY

ORIGIN = "alpha.example"
T0 = 1_700_000_000 * 10**9
KEYS = [PrivateKey.from_seed(f"follower-node-{i}".encode()) for i in range(4)]


class Node:
    """One member's graph and state, fed events in one global order, applying blocks at once."""

    def __init__(self, own: PrivateKey) -> None:
        self.own = own
        self.graph = Hashgraph(PeerSchedule(PeerSet.of(k.public for k in KEYS)))
        self.state: dict[bytes, bytes] = {}
        self.blocks: list = []
        self.submitted: list[bytes] = []
        self.nonce = 0
        self.stored: dict[int, bytes] = {}
        self.follower = MembershipFollower(self.graph, self.state, self._submit, own_key=own.public,
                                           store_peer_set=self.stored.__setitem__)

    def _submit(self, path, args):
        self.nonce += 1
        env = Envelope.sign(self.own, origin=ORIGIN, path=path, args=args, nonce=self.nonce, expiry_ns=T0 + 10**15)
        self.submitted.append(env.to_wire())
        return env

    def insert(self, event: Event, *, consensus: bool = True) -> None:
        self.graph.insert(event)
        if consensus:
            self.decide()

    def decide(self) -> None:
        for ordered in self.graph.run_consensus():
            block = ordered.block
            if block is None:
                continue
            members = tuple(self.graph.peers.at(block.round_received).members)
            context = BlockContext(block.index, block.timestamp, ORIGIN, members=members)
            result = execute_block(self.state, list(block.transactions), context)
            result.apply_to(self.state)
            self.blocks.append((block, result))
            self.follower.block_applied(AppliedBlock(block.with_state_hash(result.state_hash), result))


class Gossip:
    """Random gossip among the active members; each event carries its creator's queued transactions."""

    def __init__(self, nodes: list[Node], seed: int = 7) -> None:
        self.nodes = nodes
        self.rng = random.Random(seed)
        self.heads: dict[bytes, Event] = {}
        self.queues: dict[bytes, list[bytes]] = {k.public: [] for k in KEYS}
        self.events: list[Event] = []
        self.step_no = 0

    def step(self, active: list[PrivateKey], *, consensus: bool = True) -> Event:
        creator = active[self.rng.randrange(len(active))]
        others = [k for k in active if k is not creator and k.public in self.heads]
        own = self.heads.get(creator.public)
        other = self.heads[others[self.rng.randrange(len(others))].public].hash if others and own else None
        txs = (*self.queues[creator.public], b"filler-%d" % self.step_no)  # every round makes a block
        self.queues[creator.public].clear()
        self.step_no += 1
        event = Event.create(creator, index=0 if own is None else own.index + 1,
                             self_parent=None if own is None else own.hash, other_parent=other,
                             timestamp=T0 + self.step_no * 10**6, transactions=txs)
        self.heads[creator.public] = event
        self.events.append(event)
        for node in self.nodes:
            node.insert(event, consensus=consensus)
        return event

    def queue(self, key: PrivateKey, wire: bytes) -> None:
        self.queues[key.public].append(wire)


def _leave_tx(key: PrivateKey) -> bytes:
    return Envelope.sign(key, origin=ORIGIN, path=REMOVE_PATH, args={"peer": key.public.hex()}, nonce=1,
                         expiry_ns=T0 + 10**15).to_wire()


def test_a_leave_takes_effect_at_r_plus_6_and_the_rest_keep_deciding() -> None:
    nodes = [Node(KEYS[0]), Node(KEYS[1])]
    gossip = Gossip(nodes)
    for _ in range(40):
        gossip.step(KEYS)
    gossip.queue(KEYS[3], _leave_tx(KEYS[3]))
    while not nodes[0].follower.applied:
        gossip.step(KEYS)
    change = nodes[0].follower.applied[0]
    assert change.change == "leave" and change.peer == KEYS[3].public
    assert change.effective_round == change.round_received + 6 and change.late_by == 0
    # Until rounds are decided past the effective round, the service keeps an idle origin moving.
    assert nodes[0].follower.waiting_for() == change.effective_round + 2
    three = PeerSet.of(k.public for k in KEYS[:3])
    for node in nodes:
        assert node.graph.peers.at(change.effective_round) == three
        assert node.graph.peers.at(change.effective_round - 1) == PeerSet.of(k.public for k in KEYS)
        assert node.follower.late == []
        assert node.stored[change.effective_round]  # the node's store keeps the schedule too
    # The leaver stops; the three others keep deciding blocks under the new set (SM 3 of 3).
    before = len(nodes[0].blocks)
    for _ in range(300):
        gossip.step(KEYS[:3], consensus=True)
        if len(nodes[0].blocks) > before + 3 and nodes[0].blocks[-1][0].round_received > change.effective_round + 3:
            break
    last_block = nodes[0].blocks[-1][0]
    assert last_block.round_received > change.effective_round + 3
    assert nodes[0].follower.waiting_for() is None
    assert last_block.peers_hash == three.hash
    # Every node agrees on every block and state.
    chains = [[(b.index, r.state_hash) for b, r in node.blocks] for node in nodes]
    assert chains[0] == chains[1]
    # A restarted node gets the schedule back from state before its events are inserted again.
    fresh = Hashgraph(PeerSchedule(PeerSet.of(k.public for k in KEYS)))
    rounds = {b.index: b.round_received for b, _ in nodes[0].blocks}
    assert restore_peer_sets(fresh, nodes[0].state, rounds.get).changes == 1
    assert fresh.peers.at(change.effective_round) == three
    # Restored after the events were inserted (what the service can do on its own today): detected.
    replayed = Hashgraph(PeerSchedule(PeerSet.of(k.public for k in KEYS)))
    for event in gossip.events:
        replayed.insert(event)
    restored = restore_peer_sets(replayed, nodes[0].state, rounds.get)
    assert restored.late == (change.effective_round,)
    # Restoring twice into a graph that has the schedule already is not late.
    assert restore_peer_sets(fresh, nodes[0].state, rounds.get).late == ()


def test_a_change_decided_after_later_rounds_were_placed_is_reported_late() -> None:
    # A node that inserts a long stretch of events before running consensus (catch-up, restart)
    # has placed rounds past R+6 with the old peer set: the follower must say so.
    nodes = [Node(KEYS[0])]
    gossip = Gossip(nodes, seed=3)
    for _ in range(30):
        gossip.step(KEYS, consensus=False)
    gossip.queue(KEYS[2], _leave_tx(KEYS[2]))
    for _ in range(200):
        gossip.step(KEYS, consensus=False)
    nodes[0].decide()
    (late,) = nodes[0].follower.late
    assert late.late_by > 0 and nodes[0].graph.last_round >= late.effective_round


def test_fork_is_reported_once_and_the_forker_evicted() -> None:
    nodes = [Node(KEYS[0]), Node(KEYS[1])]
    gossip = Gossip(nodes, seed=11)
    for _ in range(30):
        gossip.step(KEYS)
    forker = KEYS[3]
    head = gossip.heads[forker.public]
    branch = Event.create(forker, index=head.index, self_parent=head.self_parent, other_parent=head.other_parent,
                          timestamp=head.timestamp + 1)
    for node in nodes:
        node.insert(branch)
    assert nodes[0].graph.fork_evidence
    for _ in range(20):  # the next block lets each follower look at the evidence
        gossip.step(KEYS)
        if all(n.submitted for n in nodes):
            break
    assert [len(n.submitted) for n in nodes] == [1, 1]  # each node reports once
    for node, key in zip(nodes, KEYS[:2], strict=True):
        for wire in node.submitted:
            gossip.queue(key, wire)
    for _ in range(200):
        gossip.step(KEYS[:3])
        if nodes[0].follower.applied:
            break
    (evicted,) = nodes[0].follower.applied
    assert evicted.change == "evict" and evicted.peer == forker.public and evicted.late_by == 0
    proof = evidence_of(nodes[0].state, forker.public)
    assert proof is not None and proof["index"] == head.index
    assert [c["change"] for c in changes(nodes[1].state)] == ["evict"]  # the second report was refused
    assert forker.public not in nodes[1].graph.peers.at(evicted.effective_round)
    # The node whose report was committed revokes the forker's certificate (once), as soon as the
    # chain has a CA anchored (it refuses revocations before); nothing more is reported.
    for _ in range(10):
        gossip.step(KEYS[:3])
    assert [len(n.submitted) for n in nodes] == [1, 1]
    for node in nodes:
        node.state[CA_KEY] = codec.pack({"pem": "", "fingerprint": "ab", "block": 0})
    for _ in range(10):
        gossip.step(KEYS[:3])
    paths = [[Envelope.from_wire(w).path for w in n.submitted] for n in nodes]
    reporter = [n for n in nodes if n.own.fingerprint == evicted.by]
    assert len(reporter) == 1, evicted
    mine = paths[nodes.index(reporter[0])]
    assert mine == ["/membership/evict", "/certificates/revoke"], paths
    assert [p for p in paths if p is not mine] == [["/membership/evict"]]
    revoke = Envelope.from_wire(reporter[0].submitted[1])
    assert revoke.args["node_id"] == forker.fingerprint and revoke.args["serial"] == ""
