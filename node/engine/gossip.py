"""Gossip over QUIC: the Trio shell around the sans-IO `MemberCore`.

One task runs gossip rounds at the times the core asks for (`get_timer`), each sync in a task of
its own, with up to `parallel` different peers at once (`tuning.SYNCS_IN_FLIGHT`); the transport's
handler answers peers' sync requests and eager pushes.  All of them call the core from the same
Trio thread without awaiting in between, so the core needs no lock.  What the core produces
(events to persist, blocks, peers to penalise) goes to the engine through `GossipSink`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import trio

from node.consensus.event import Event
from node.consensus.node_core import MemberCore, SyncOutcome
from node.consensus.sync import EagerPush, SyncDecodeError, SyncRequest, SyncResponse, decode_message, encode_message
from node.engine.tuning import SYNCS_IN_FLIGHT
from node.errors import InvalidInput
from node.transport import EndpointNotRunning, PeerInfo, TransportError

log = structlog.get_logger("gossip")

PENALTY_SECONDS = 30.0
# A sync normally takes milliseconds; waiting the transport's full request deadline on a peer that
# crashed or froze would stall every gossip round behind it.
SYNC_TIMEOUT_S = 2.0
# A peer that failed is skipped for a while (doubling up to the cap) while others answer.
SUSPECT_FIRST_S = 1.0
SUSPECT_MAX_S = 16.0


class GossipPaused(InvalidInput):
    """We hold no CA certificate right now (self-signed phase): no gossip either way."""


@dataclass(frozen=True)
class PeerAddress:
    node_id: str
    public_key: bytes
    host: str
    port: int


class GossipSink(Protocol):
    async def persist(self, outcome: SyncOutcome, received: tuple[Event, ...]) -> None: ...

    def blocks_ready(self) -> None: ...

    def peer_heard(self, node_id: str) -> None: ...

    def own_event(self, event: Event) -> None: ...


@dataclass
class GossipStats:
    syncs: int = 0
    sync_errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    events_received: int = 0
    penalties: int = 0
    last_error: str = ""
    by_peer_errors: dict[str, int] = field(default_factory=dict)


class Requester(Protocol):
    async def request(self, node_id: str, address: tuple[str, int], payload: bytes) -> bytes: ...

    def penalise(self, node_id: str, seconds: float, reason: str) -> None: ...


class GossipService:
    name = "gossip"
    kind = "async"

    def __init__(
        self,
        core: MemberCore,
        transport: Requester,
        peers: list[PeerAddress],
        sink: GossipSink,
        *,
        rng: random.Random | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        archive: Callable[[SyncRequest], Awaitable[SyncResponse | None]] | None = None,
        paused: bool = False,
        parallel: int = SYNCS_IN_FLIGHT,
    ) -> None:
        self.core = core
        self.transport = transport
        self.by_key = {p.public_key: p for p in peers}
        self.by_id = {p.node_id: p for p in peers}
        self.sink = sink
        self.rng = rng if rng is not None else random.Random()
        self.clock_ns = clock_ns
        self.archive = archive  # answers requests for events pruned from memory (from disk)
        self.stats = GossipStats()
        self._suspects: dict[str, tuple[float, float]] = {}  # node id -> (skip until, last pause)
        self._wake = trio.Event()
        self.paused = paused
        self._resumed = trio.Event()
        self.parallel = max(1, parallel)
        self._in_flight: set[str] = set()  # peers we are syncing with now
        self._slot_free = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._stopped: EndpointNotRunning | None = None  # the endpoint stopped under a sync

    def pause(self) -> None:
        """Stop gossiping (our certificate was revoked or expired) until `resume`."""
        self.paused = True

    def resume(self) -> None:
        """Gossip (again): we hold a CA certificate."""
        self.paused = False
        self._resumed.set()
        self._resumed = trio.Event()
        self._wake.set()

    # -- the transport's handler ----------------------------------------------------------------

    async def handle(self, peer: PeerInfo, payload: bytes) -> bytes:
        if self.paused:
            raise GossipPaused("this node holds no CA certificate yet: no gossip")
        self.stats.bytes_received += len(payload)
        address = self.by_id.get(peer.node_id)
        if address is None:  # authenticated, but not a member of our consensus group
            raise SyncDecodeError(f"node {peer.node_id} is not a member of this origin")
        try:
            message = decode_message(payload, limit=self.core.sync_limit)
        except SyncDecodeError as exc:
            self._penalise(peer.node_id, f"malformed gossip: {exc}")
            raise
        self.sink.peer_heard(peer.node_id)
        if isinstance(message, SyncRequest):
            if message.from_id != address.public_key:
                self._penalise(peer.node_id, "sync request names another member as its sender")
                raise SyncDecodeError("sync request names another member as its sender")
            response = await self.archive(message) if self.archive is not None else None
            if response is None:
                response = self.core.handle_sync_request(message)
            reply = encode_message(response)
            self.stats.bytes_sent += len(reply)
            return reply
        if isinstance(message, EagerPush):
            outcome = self.core.handle_eager_push(address.public_key, message, self.clock_ns())
            await self._after(address, outcome, message.events)
            return b""
        self._penalise(peer.node_id, f"unexpected gossip message {type(message).__name__}")
        raise SyncDecodeError(f"unexpected {type(message).__name__}")

    # -- our gossip rounds ------------------------------------------------------------------------

    def wake(self) -> None:
        """New payload to carry: run a gossip round now rather than at the idle pace."""
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self._stopped = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            while True:
                while self.paused:
                    await self._resumed.wait()
                delay = (self.core.get_timer() - self.clock_ns()) / 1e9
                if delay > 0:
                    with trio.move_on_after(delay):
                        await self._wake.wait()
                # Up to `parallel` syncs in flight, each with a different peer: a sync mostly waits
                # (the peer's answer, our event's fsync, the push), so overlapping them turns that
                # waiting into more events. The core is only called between awaits, never concurrently.
                while len(self._in_flight) >= self.parallel:
                    await self._slot_free.wait()
                self._wake = trio.Event()
                head = self.core.head
                step = self.core.handle_timer(self.clock_ns(), self.rng)
                if self.core.head is not head and self.core.head is not None:
                    self.sink.own_event(self.core.head)  # a lone member creates its events here
                if step is None:
                    self.sink.blocks_ready()
                    await trio.lowlevel.checkpoint()
                    continue
                peer_key, request = step
                address = self.by_key.get(peer_key)
                if address is not None and (address.node_id in self._in_flight or self._suspected(address.node_id)):
                    other = self._free_peer()
                    if other is not None:
                        address, request = other, self.core.make_sync_request(other.public_key)
                    elif address.node_id in self._in_flight:
                        address = None  # only suspects are free: wait for the sync in flight
                if address is None:
                    await trio.lowlevel.checkpoint()
                    continue
                self._in_flight.add(address.node_id)
                nursery.start_soon(self._sync_slot, address, request)
        if self._stopped is not None:  # raised as itself, as when syncs ran in this task
            raise self._stopped

    async def _sync_slot(self, address: PeerAddress, request: SyncRequest) -> None:
        try:
            await self._sync(address, request)
        except EndpointNotRunning as exc:
            self._stopped = exc
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()
        finally:
            self._in_flight.discard(address.node_id)
            self._slot_free.set()
            self._slot_free = trio.Event()

    async def _stopping(self) -> None:
        """The endpoint stopped under us: the node is shutting down (a cancellation is pending,
        and this checkpoint delivers it) or the transport died (the supervisor will see it)."""
        await trio.lowlevel.checkpoint()
        raise EndpointNotRunning("the QUIC endpoint stopped while gossip was running")

    def _suspected(self, node_id: str) -> bool:
        until = self._suspects.get(node_id)
        return until is not None and until[0] > trio.current_time()

    def _free_peer(self) -> PeerAddress | None:
        """A random peer that is neither suspected nor in a sync with us right now."""
        free = [p for p in self.by_key.values() if p.node_id not in self._in_flight and not self._suspected(p.node_id)]
        return free[self.rng.randrange(len(free))] if free else None

    def _suspect(self, node_id: str) -> None:
        _, last = self._suspects.get(node_id, (0.0, 0.0))
        pause = min(SUSPECT_MAX_S, last * 2) if last else SUSPECT_FIRST_S
        self._suspects[node_id] = (trio.current_time() + pause, pause)

    async def _sync(self, address: PeerAddress, request: SyncRequest) -> None:
        payload = encode_message(request)
        reply = None
        try:
            with trio.move_on_after(SYNC_TIMEOUT_S):
                reply = await self.transport.request(address.node_id, (address.host, address.port), payload)
            if reply is None:
                self._error(address.node_id, f"sync with {address.node_id} timed out after {SYNC_TIMEOUT_S}s")
                return
            message = decode_message(reply, limit=self.core.sync_limit)
        except TransportError as exc:
            self._error(address.node_id, f"sync with {address.node_id} failed: {exc}")
            return
        except EndpointNotRunning:
            await self._stopping()
            return
        except SyncDecodeError as exc:
            self._penalise(address.node_id, f"malformed sync response: {exc}")
            return
        if not isinstance(message, SyncResponse):
            self._penalise(address.node_id, f"answered a sync with {type(message).__name__}")
            return
        self._suspects.pop(address.node_id, None)
        self.stats.syncs += 1
        self.stats.bytes_sent += len(payload)
        self.stats.bytes_received += len(reply)
        self.sink.peer_heard(address.node_id)
        outcome = self.core.handle_sync_response(address.public_key, message, self.clock_ns())
        await self._after(address, outcome, message.events)
        if outcome.more:
            self._wake.set()

    async def _after(self, address: PeerAddress, outcome: SyncOutcome, received: tuple[Event, ...]) -> None:
        self.stats.events_received += len(outcome.inserted)
        if outcome.penalise:
            reasons = {exc.reason.name for _, exc in outcome.rejected}
            self._penalise(address.node_id, f"sent invalid events ({', '.join(sorted(reasons))})")
        await self.sink.persist(outcome, received)  # our own new event is on disk before anyone sees it
        if outcome.new_blocks:
            self.sink.blocks_ready()
        if outcome.push is not None and not outcome.penalise:
            payload = encode_message(outcome.push)
            try:
                with trio.move_on_after(SYNC_TIMEOUT_S):
                    await self.transport.request(address.node_id, (address.host, address.port), payload)
                    self.stats.bytes_sent += len(payload)
            except TransportError as exc:
                self._error(address.node_id, f"push to {address.node_id} failed: {exc}")
            except EndpointNotRunning:
                await self._stopping()

    def _error(self, node_id: str, message: str) -> None:
        self._suspect(node_id)
        self.stats.sync_errors += 1
        self.stats.by_peer_errors[node_id] = self.stats.by_peer_errors.get(node_id, 0) + 1
        if self.stats.last_error != message:
            log.debug("gossip error", error=message)
        self.stats.last_error = message

    def _penalise(self, node_id: str, reason: str) -> None:
        self.stats.penalties += 1
        log.warning("peer penalised", peer=node_id, reason=reason, seconds=PENALTY_SECONDS)
        self.transport.penalise(node_id, PENALTY_SECONDS, reason)

    def describe(self) -> dict[str, Any]:
        s = self.stats
        return {
            "syncs": s.syncs, "sync_errors": s.sync_errors, "bytes_sent": s.bytes_sent,
            "bytes_received": s.bytes_received, "events_received": s.events_received, "penalties": s.penalties,
            "paused": self.paused,
        }
