"""A seeded in-memory network in place of QUIC, implementing gossip's `Requester` for each node.

A request travels: request leg (delay, maybe dropped, duplicated or delivered late), the peer's
real `GossipService.handle` (run in the caller's task: it never awaits a real checkpoint, so a
crash cannot cut it in half), response leg (delay, maybe dropped).  A lost message looks to the
caller like a request timeout, as on the real transport.  Every draw comes from one seeded
`random.Random`; time is Trio's (the simulation runs on a MockClock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

import trio

from node.errors import NodeError
from node.transport import ConnectionLost, PeerInfo, PeerRefused, PeerUnreachable, RemoteError, RequestTimeout

MS = 0.001
FAR_FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
ORIGIN = "sim.example"


@dataclass
class LinkFaults:
    """Per-message fault probabilities and delays (seconds); all zero once the faults heal."""

    min_delay: float = 1 * MS
    max_delay: float = 5 * MS
    drop: float = 0.0  # per leg (request, response)
    duplicate: float = 0.0  # the request is delivered a second time, later
    reorder: float = 0.0  # the request is delivered late, after newer ones; the sender times out
    spike: float = 0.0  # probability of a long delay on a leg
    spike_max: float = 0.0
    timeout: float = 0.5  # how long a sender waits before it gives up on a lost message


class Handler(Protocol):
    """A node as the network sees it: its transport handler, run in the node's own nursery (so a
    crash of the node cancels a handler half-way, as killing the process would)."""

    nursery: trio.Nursery | None

    async def handle(self, peer: PeerInfo, payload: bytes) -> bytes: ...


@dataclass
class NetStats:
    requests: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    refused: int = 0  # partitioned, down or penalised
    remote_errors: int = 0
    penalties: list[tuple[str, str, str]] = field(default_factory=list)  # (by, whom, reason)


class SimNetwork:
    """Nodes are named "n0".."n{N-1}"; `handler_of(i)` gives node i's current handler or None (down)."""

    def __init__(self, n: int, rng: random.Random, handler_of: Callable[[int], Handler | None]) -> None:
        self.n = n
        self.rng = rng
        self.handler_of = handler_of
        self.faults = LinkFaults()
        self.minority: frozenset[int] = frozenset()  # a partition: these nodes reach only each other
        self.penalised: dict[tuple[int, int], float] = {}  # (by, whom) -> until (Trio time)
        self.stats = NetStats()
        self.nursery: trio.Nursery | None = None  # for late and duplicate deliveries

    @staticmethod
    def node_id(i: int) -> str:
        return f"n{i}"

    @staticmethod
    def index(node_id: str) -> int:
        return int(node_id[1:])

    def link(self, i: int) -> NodeLink:
        return NodeLink(self, i)

    def connected(self, a: int, b: int) -> bool:
        if (a in self.minority) != (b in self.minority):
            return False
        now = trio.current_time()
        return self.penalised.get((a, b), -1.0) < now and self.penalised.get((b, a), -1.0) < now

    def _delay(self) -> float:
        f = self.faults
        if f.spike and self.rng.random() < f.spike:
            return self.rng.uniform(f.max_delay, f.spike_max)
        return self.rng.uniform(f.min_delay, f.max_delay)

    def _peer_info(self, src: int) -> PeerInfo:
        return PeerInfo(self.node_id(src), ORIGIN, ("sim", src), True, FAR_FUTURE)

    async def _deliver(self, src: int, dst: int) -> Handler:
        handler = self.handler_of(dst)
        if handler is None or not self.connected(src, dst):
            self.stats.refused += 1
            raise PeerUnreachable(f"{self.node_id(dst)} unreachable from {self.node_id(src)}")
        return handler

    async def _call(self, src: int, handler: Handler, payload: bytes) -> bytes:
        self.stats.delivered += 1
        if handler.nursery is None:
            raise ConnectionLost("peer not running")
        done = trio.Event()
        box: list[bytes | NodeError] = []

        async def serve() -> None:
            try:
                box.append(await handler.handle(self._peer_info(src), payload))
            except NodeError as exc:  # the handler refused: the transport reports a remote error
                box.append(exc)
            finally:
                done.set()

        handler.nursery.start_soon(serve)
        await done.wait()
        if not box:  # the peer crashed while handling it
            raise ConnectionLost("peer went away")
        if isinstance(box[0], NodeError):
            self.stats.remote_errors += 1
            raise RemoteError(f"{type(box[0]).__name__}: {box[0]}")
        return box[0]

    async def _late(self, src: int, dst: int, payload: bytes, delay: float) -> None:
        """A duplicate or reordered copy: delivered later, its answer goes nowhere."""
        await trio.sleep(delay)
        handler = self.handler_of(dst)
        if handler is None or not self.connected(src, dst):
            return
        with contextlib.suppress(PeerUnreachable, RemoteError):
            await self._call(src, handler, payload)

    async def _lost(self, spent: float) -> NoReturn:
        self.stats.dropped += 1
        await trio.sleep(max(self.faults.timeout - spent, 0.0))
        raise RequestTimeout("no answer in time")

    async def request(self, src: int, node_id: str, payload: bytes) -> bytes:
        dst = self.index(node_id)
        f, rng = self.faults, self.rng
        self.stats.requests += 1
        if self.handler_of(dst) is None or not self.connected(src, dst):
            self.stats.refused += 1
            await trio.sleep(f.timeout)
            raise PeerUnreachable(f"{node_id} unreachable")
        if f.duplicate and rng.random() < f.duplicate and self.nursery is not None:
            self.stats.duplicated += 1
            self.nursery.start_soon(self._late, src, dst, payload, self._delay() + rng.uniform(0, 0.2))
        if f.reorder and rng.random() < f.reorder and self.nursery is not None:
            self.stats.reordered += 1
            self.nursery.start_soon(self._late, src, dst, payload, rng.uniform(0.05, 0.5))
            await self._lost(0.0)
        if f.drop and rng.random() < f.drop:
            await self._lost(0.0)
        there = self._delay()
        await trio.sleep(there)
        try:
            handler = await self._deliver(src, dst)
        except PeerUnreachable:
            await self._lost(there)
        try:
            reply = await self._call(src, handler, payload)
        except ConnectionLost:
            await self._lost(there)
        back = self._delay()
        if f.drop and rng.random() < f.drop:
            await self._lost(there)
        await trio.sleep(back)
        if not self.connected(src, dst):  # a partition started while the answer was on its way
            await self._lost(there + back)
        return reply

    def penalise(self, by: int, node_id: str, seconds: float, reason: str) -> None:
        self.stats.penalties.append((self.node_id(by), node_id, reason))
        self.penalised[(by, self.index(node_id))] = trio.current_time() + seconds


class NodeLink:
    """One node's view of the network: gossip's `Requester`."""

    def __init__(self, net: SimNetwork, me: int) -> None:
        self.net = net
        self.me = me

    async def request(self, node_id: str, address: tuple[str, int], payload: bytes) -> bytes:
        del address  # routing is by node id
        until = self.net.penalised.get((self.me, self.net.index(node_id)))
        if until is not None and trio.current_time() < until:  # as the endpoint: refused at once
            raise PeerRefused(f"node {node_id} is penalised")
        return await self.net.request(self.me, node_id, payload)

    def penalise(self, node_id: str, seconds: float, reason: str) -> None:
        self.net.penalise(self.me, node_id, seconds, reason)
