"""A byzantine member for the local simulation: one genesis member run by this process, not a node.

    python -m simulations.local_byzantine --home HOME --listen HOST:PORT --stats FILE

It presents the member's real credentials (its key and the CA-issued certificate `node testnet
--offline-certs` wrote into the home, loaded exactly as the node loads them), so honest nodes
accept its connections.  Until SIGUSR1 it gossips like an honest member (the real `MemberCore`
and `GossipService`, nothing persisted).  From SIGUSR1 on its honest gossip stops (unless
`--keep-gossip`: then it goes on as a member too, signing a branch of its own, and each fork is
on its own newest event) and every `STEP_S` it:
- forks: signs `--branches` different events at the next index (same self-parent) and pushes each
  to a different peer, then every branch to every peer so each holds the evidence; the next fork
  builds on the first branch (so the forks are at successive indices);
- replays: pushes old events (its own and others') again;
- after `--penalised-after` seconds of attack, every other step instead: a sync request naming another
  member as its sender (impersonation), garbage frames over its authenticated connections, and
  random datagrams to the peers' QUIC ports from an unauthenticated socket.
SIGTERM ends it; counts of what it sent are written to `--stats` (JSON) every step and at exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.config import split_host_port
from node.consensus.blocks import Block
from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.node_core import MemberCore, SyncOutcome
from node.consensus.peers import PeerSchedule, PeerSet
from node.consensus.sync import EagerPush, SyncRequest, encode_message
from node.crypto import PrivateKey
from node.engine.genesis import load_genesis
from node.engine.gossip import GossipService, PeerAddress
from node.engine.identity import load_identity
from node.runtime.home import Home
from node.transport import Endpoint, TransportError
from simulations.local_cluster import NodeProcess

BRANCHES = 2  # events signed at each forked index; the node's graph keeps at most two per index
STEP_S = 1.0
PENALISED_AFTER_S = 8.0  # impersonation and garbage only after this: their penalties cut the fork pushes short
REPLAY_EVENTS = 200
RPC_TIMEOUT_S = 2.0


@dataclass
class AttackStats:
    member: str = ""
    attacking: bool = False
    forks: int = 0  # indices at which we signed more than one event
    fork_events: list[str] = field(default_factory=list)  # hashes (hex) of the conflicting events
    fork_pushes_ok: int = 0
    replays_ok: int = 0
    impersonations: int = 0
    garbage_frames: int = 0
    garbage_datagrams: int = 0
    refused: int = 0  # requests the honest side refused (penalised us) or that failed
    syncs: int = 0


def fork_events(key: PrivateKey, base: Event, branches: int, now_ns: int, tag: str) -> list[Event]:
    """`branches` different events, all signed by `key` at index `base.index + 1` on `base`."""
    return [
        Event.create(key, index=base.index + 1, self_parent=base.hash, other_parent=base.other_parent,
                     timestamp=now_ns + b, transactions=(f"{tag}-{b}".encode(),))
        for b in range(branches)
    ]


class QuietSink:
    """Nothing is stored or applied: decided blocks are dropped so memory stays bounded."""

    def __init__(self, core: MemberCore) -> None:
        self.core = core

    async def persist(self, outcome: SyncOutcome, received: tuple[Event, ...]) -> None:
        await trio.lowlevel.checkpoint()

    def blocks_ready(self) -> None:
        blocks: list[Block] = self.core.next_blocks()
        self.core.next_rounds()
        del blocks

    def peer_heard(self, node_id: str) -> None:
        pass

    def own_event(self, event: Event) -> None:
        pass


class Byzantine:
    def __init__(self, home: Path, listen: str, stats_path: Path, seed: int, branches: int = BRANCHES,
                 keep_gossip: bool = False, penalised_after: float = PENALISED_AFTER_S) -> None:
        self.home = Home(home)
        self.key = self.home.load_key()
        genesis = load_genesis(self.home.config_file.parent / "genesis.json")
        if genesis is None:
            raise SystemExit(f"{home} holds no genesis.json")
        self.origin = genesis.origin
        self.peers = [PeerAddress(m.node_id, m.public_key, *split_host_port(m.address))
                      for m in genesis.members if m.node_id != self.key.fingerprint]
        members = frozenset(m.node_id for m in genesis.members)
        ident = load_identity(self.home.root, self.key, self.origin, members, dt.datetime.now(dt.UTC))
        if not ident.ca_issued:
            raise SystemExit(f"{home} holds no CA-issued certificate (make the testnet with --offline-certs)")
        self.graph = Hashgraph(PeerSchedule(PeerSet.of(genesis.public_keys)))
        self.core = MemberCore(self.key, self.graph)
        self.rng = random.Random(seed)
        self.endpoint = Endpoint(bind=split_host_port(listen), identity=ident.identity,
                                 authenticator=ident.authenticator, handler=self._handle)
        self.gossip = GossipService(self.core, self.endpoint, self.peers, QuietSink(self.core), rng=self.rng)
        self.stats = AttackStats(member=self.key.fingerprint)
        self.stats_path = stats_path
        self.start_attack = trio.Event()
        self.steps = 0
        self.branches = branches
        self.keep_gossip = keep_gossip
        self.penalised_after = penalised_after
        self.tip: Event | None = None  # the newest event our forks build on

    async def _handle(self, peer: Any, payload: bytes) -> bytes:
        return await self.gossip.handle(peer, payload)

    def write_stats(self) -> None:
        self.stats.syncs = self.gossip.stats.syncs
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.stats)))
        tmp.replace(self.stats_path)

    async def _send(self, peer: PeerAddress, payload: bytes) -> bool:
        try:
            with trio.move_on_after(RPC_TIMEOUT_S):
                await self.endpoint.request(peer.node_id, (peer.host, peer.port), payload)
                return True
        except TransportError:
            pass
        self.stats.refused += 1
        return False

    async def fork(self) -> None:
        base = self.core.head if self.keep_gossip else self.tip or self.core.head
        if base is None:
            return
        branches = fork_events(self.key, base, self.branches, time.time_ns(), f"fork-{self.steps}")
        self.tip = branches[0]
        self.stats.forks += 1
        self.stats.fork_events.extend(e.hash.hex() for e in branches)
        # Each peer first gets a branch of its own (a split view), then every branch (the evidence).
        for i, event in enumerate(branches):
            peer = self.peers[i % len(self.peers)]
            self.stats.fork_pushes_ok += await self._send(peer, encode_message(EagerPush((base, event))))
        for peer in self.peers:
            self.stats.fork_pushes_ok += await self._send(peer, encode_message(EagerPush(tuple(branches))))

    async def replay(self) -> None:
        peer = self.rng.choice(self.peers)
        old = self.core.handle_sync_request(SyncRequest(peer.public_key, {})).events[:REPLAY_EVENTS]
        if old:
            self.stats.replays_ok += await self._send(peer, encode_message(EagerPush(tuple(old))))

    async def impersonate(self) -> None:
        """A sync request that names another member as its sender."""
        peer = self.rng.choice(self.peers)
        other = self.rng.choice([p for p in self.peers if p is not peer])
        self.stats.impersonations += 1
        await self._send(peer, encode_message(SyncRequest(other.public_key, self.graph.known())))

    async def garbage(self, udp: trio.socket.SocketType) -> None:
        for peer in self.peers:
            frame = self.rng.randbytes(self.rng.randrange(1, 4096))
            self.stats.garbage_frames += 1
            await self._send(peer, frame)
            for _ in range(20):
                await udp.sendto(self.rng.randbytes(self.rng.randrange(1, 1400)), (peer.host, peer.port))
                self.stats.garbage_datagrams += 1

    async def attack(self, udp: trio.socket.SocketType) -> None:
        await self.start_attack.wait()
        self.stats.attacking = True
        if not self.keep_gossip:
            self.gossip.pause()  # from now on only the events below are signed (no extra honest branch)
        started = trio.current_time()
        while True:
            self.steps += 1
            elapsed = trio.current_time() - started
            if elapsed < self.penalised_after or self.steps % 2:
                await self.fork()
                await self.replay()
            else:
                await self.impersonate()
                await self.garbage(udp)
            self.write_stats()
            await trio.sleep(STEP_S)

    async def signals(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM, signal.SIGINT) as received:
            async for signum in received:
                if signum == signal.SIGUSR1:
                    self.start_attack.set()
                else:
                    nursery.cancel_scope.cancel()

    async def run(self) -> None:
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.bind(("127.0.0.1", 0))
        with udp:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.signals, nursery)
                await nursery.start(self.endpoint.run)
                await nursery.start(self.gossip.run)
                nursery.start_soon(self.attack, udp)
                while True:
                    self.write_stats()
                    await trio.sleep(2)


class ByzantineProcess:
    """The simulation's handle on the byzantine member's process (its node is never started)."""

    def __init__(self, node: NodeProcess, seed: int = 1, branches: int = BRANCHES, keep_gossip: bool = False,
                 penalised_after: float = PENALISED_AFTER_S) -> None:
        self.node = node
        self.seed = seed
        self.branches = branches
        self.keep_gossip = keep_gossip
        self.penalised_after = penalised_after
        self.stats_path = node.home / "byzantine.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.node.home / "byzantine.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simulations.local_byzantine", "--home", str(self.node.home),
                 "--listen", self.node.listen, "--stats", str(self.stats_path), "--seed", str(self.seed),
                 "--branches", str(self.branches), "--penalised-after", str(self.penalised_after),
                 *(["--keep-gossip"] if self.keep_gossip else [])],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.node.groups.add(self.proc.pid)  # so the cluster's stop_all reaps it too

    def attack(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.node.reap_groups()
        return self.proc.returncode

    def read_stats(self) -> dict[str, Any]:
        try:
            stats: dict[str, Any] = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}
        return stats

    def log_tail(self, lines: int = 20) -> str:
        path = self.node.home / "byzantine.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations.local_byzantine", description=__doc__.split("\n")[0])
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--listen", required=True, help="HOST:PORT of the member (from its genesis entry)")
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--branches", type=int, default=BRANCHES, help="events signed at each forked index (2..10)")
    p.add_argument("--keep-gossip", action="store_true", help="go on gossiping as a member while attacking")
    p.add_argument("--penalised-after", type=float, default=PENALISED_AFTER_S,
                   help="seconds of attack before impersonation and garbage (which get it penalised) begin")
    args = p.parse_args(argv)
    if not 2 <= args.branches <= 10:
        p.error("--branches must be between 2 and 10")
    byz = Byzantine(args.home, args.listen, args.stats, args.seed, args.branches, args.keep_gossip,
                    args.penalised_after)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # not fatal before trio's receiver is installed
    try:
        trio.run(byz.run)  # SIGTERM and SIGINT cancel it (see `signals`)
    finally:
        byz.write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
