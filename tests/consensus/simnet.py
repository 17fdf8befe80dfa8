"""A deterministic in-memory gossip network for consensus tests.

Every message goes through the real wire encoding (`encode_message` / `decode_message`) and is
delivered after a random delay (so messages reorder), or dropped, or duplicated, all drawn from
one seeded `random.Random`.  Time is simulated (integer ns); nothing sleeps.

Nodes are named by index.  A forking member is `branches` `MemberCore`s with the same key: at
`fork_at_ns` the copies are cloned from the first's graph, then each copy gossips only with its
own share of the honest members, so the branches start at the same index and travel through
honest nodes.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from node.consensus.blocks import Block
from node.consensus.hashgraph import Hashgraph
from node.consensus.node_core import DecidedRound, MemberCore
from node.consensus.peers import PeerSchedule, PeerSet
from node.consensus.policy import SelfEventPolicy
from node.consensus.sync import EagerPush, SyncRequest, SyncResponse, decode_message, encode_message
from node.crypto import PrivateKey

MS = 1_000_000


@dataclass
class NetConfig:
    min_delay_ns: int = 1 * MS
    max_delay_ns: int = 8 * MS
    drop: float = 0.0
    duplicate: float = 0.0


@dataclass
class SimNode:
    core: MemberCore
    allowed: set[bytes] | None = None  # forker copies talk only to these members
    timer_version: int = 0
    penalised: list[bytes] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    rounds: list[DecidedRound] = field(default_factory=list)


class SimNet:
    def __init__(
        self,
        n: int,
        seed: int,
        *,
        config: NetConfig | None = None,
        verify_signatures: bool = False,
        policy: SelfEventPolicy | None = None,
        forkers: int = 0,
        branches: int = 2,
        fork_at_ns: int = 30 * MS,
        wire: bool = True,
        keep_rounds: int | None = None,
    ) -> None:
        """`wire=False` hands message objects over without encoding them (faster property runs;
        the encoding has its own tests)."""
        self.rng = random.Random(seed)
        self.config = config or NetConfig()
        self.policy = policy or SelfEventPolicy(heartbeat_ns=5 * MS, slow_heartbeat_ns=50 * MS)
        self.keys = [PrivateKey.from_seed(b"simnet-%d" % i) for i in range(n)]
        self.members = PeerSet.of(k.public for k in self.keys)
        self.verify_signatures = verify_signatures
        self.keep_rounds = keep_rounds
        self.nodes: list[SimNode] = [SimNode(MemberCore(k, self._graph(), self.policy)) for k in self.keys]
        self.forker_ids = {self.keys[i].public for i in range(forkers)}
        self.fork_at_ns = fork_at_ns
        self.branches = branches
        self.wire = wire
        self.forked = False
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, str, object]] = []
        self.sent = 0
        self.dropped = 0
        for i in range(len(self.nodes)):
            self._schedule_timer(i, self.rng.randrange(self.policy.heartbeat_ns))

    def _graph(self) -> Hashgraph:
        return Hashgraph(
            PeerSchedule(self.members), verify_signatures=self.verify_signatures, keep_rounds=self.keep_rounds
        )

    # -- structure ----------------------------------------------------------------------------

    def honest(self) -> list[SimNode]:
        return [nd for nd in self.nodes if nd.core.id not in self.forker_ids]

    def _shares(self) -> list[set[bytes]]:
        """The honest members each copy of a forker talks to: with two copies, one half each;
        with more copies than honest members, each copy talks to one of them (round robin)."""
        honest_ids = [nd.core.id for nd in self.honest()]
        if self.branches == 2:
            half = {*honest_ids[: len(honest_ids) // 2]}
            return [half, set(honest_ids) - half]
        shares: list[set[bytes]] = [set() for _ in range(self.branches)]
        for j, member in enumerate(honest_ids):
            shares[j % self.branches].add(member)
        for c, share in enumerate(shares):
            if not share:
                share.add(honest_ids[c % len(honest_ids)])
        return shares

    def _split(self) -> None:
        """Clone each forker into `branches` copies, each with its own share of the honest members."""
        shares = self._shares()
        for i, nd in enumerate(list(self.nodes)):
            if nd.core.id not in self.forker_ids:
                continue
            others = self.forker_ids - {nd.core.id}
            nd.allowed = shares[0] | others
            for share in shares[1:]:
                graph = self._graph()
                graph.insert_batch(nd.core.graph.events_since({}, 1 << 30))
                self.nodes.append(SimNode(MemberCore(nd.core.key, graph, self.policy), allowed=share | others))
                self._schedule_timer(len(self.nodes) - 1, self.now + 1)
            self._schedule_timer(i, self.now + 1)
        self.forked = True

    def _route(self, src: int, member: bytes) -> int:
        """The node that answers for `member` when `src` talks to it."""
        src_id = self.nodes[src].core.id
        candidates = [
            i for i, nd in enumerate(self.nodes)
            if nd.core.id == member and (nd.allowed is None or src_id in nd.allowed)
        ]
        if not candidates:
            candidates = [i for i, nd in enumerate(self.nodes) if nd.core.id == member]
        if len(candidates) > 1:  # several copies of a forker serve src: any of them may answer
            return candidates[self.rng.randrange(len(candidates))]
        return candidates[0]

    # -- events -------------------------------------------------------------------------------

    def _push(self, at: int, kind: str, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, payload))

    def _schedule_timer(self, i: int, at: int) -> None:
        nd = self.nodes[i]
        nd.timer_version += 1
        self._push(max(at, self.now + 1), "timer", (i, nd.timer_version))

    def _send(self, src: int, dst: int, message: SyncRequest | SyncResponse | EagerPush) -> None:
        data: object = encode_message(message) if self.wire else message
        self.sent += 1
        cfg = self.config
        copies = 2 if self.rng.random() < cfg.duplicate else 1
        for _ in range(copies):
            if self.rng.random() < cfg.drop:
                self.dropped += 1
                continue
            delay = self.rng.randint(cfg.min_delay_ns, cfg.max_delay_ns)
            self._push(self.now + delay, "msg", (src, dst, data))

    def submit(self, i: int, tx: bytes) -> None:
        self.nodes[i].core.submit_transaction(tx)
        self._schedule_timer(i, self.nodes[i].core.get_timer())

    def _on_timer(self, i: int) -> None:
        nd = self.nodes[i]
        if nd.allowed is None:
            action = nd.core.handle_timer(self.now, self.rng)
        else:  # a forker copy picks among its own half only
            nd.core.last_gossip_ns = self.now
            peers = sorted(nd.allowed)
            peer = peers[self.rng.randrange(len(peers))]
            action = (peer, nd.core.make_sync_request(peer))
        if action is not None:
            peer, request = action
            self._send(i, self._route(i, peer), request)
        self._collect(i)
        self._schedule_timer(i, nd.core.get_timer())

    def _on_message(self, src: int, dst: int, data: object) -> None:
        nd = self.nodes[dst]
        src_id = self.nodes[src].core.id
        message = decode_message(data) if isinstance(data, bytes) else data
        assert isinstance(message, (SyncRequest, SyncResponse, EagerPush))
        if isinstance(message, SyncRequest):
            self._send(dst, src, nd.core.handle_sync_request(message))
            return
        if isinstance(message, SyncResponse):
            out = nd.core.handle_sync_response(src_id, message, self.now)
            if out.push is not None:
                self._send(dst, src, out.push)
        else:
            out = nd.core.handle_eager_push(src_id, message, self.now)
        if out.penalise:
            nd.penalised.append(src_id)
        self._collect(dst)
        self._schedule_timer(dst, nd.core.get_timer())

    def _collect(self, i: int) -> None:
        nd = self.nodes[i]
        for decided in nd.core.next_rounds():
            nd.rounds.append(decided)
            if decided.block is not None:
                nd.blocks.append(decided.block)

    def run_until(self, end_ns: int) -> None:
        while self._queue and self._queue[0][0] <= end_ns:
            at, _, kind, payload = heapq.heappop(self._queue)
            self.now = at
            if self.forker_ids and not self.forked and self.now >= self.fork_at_ns:
                self._split()
            if kind == "timer":
                i, version = payload  # type: ignore[misc]
                if version == self.nodes[i].timer_version:
                    self._on_timer(i)
            else:
                src, dst, data = payload  # type: ignore[misc]
                self._on_message(src, dst, data)
        self.now = max(self.now, end_ns)
