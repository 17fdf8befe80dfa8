"""One QUIC connection to a peer: events, framed request/response streams, bounds, and its timer.

`PeerConnection` is a thin Trio shell around a `MutualTlsConnection`. Everything that touches
aioquic is synchronous (`receive`, `handle_events`, `flush`, `close`): the owner feeds datagrams
in and asks for a `flush` once per batch of work (see `Endpoint._flusher`); a flush hands every
datagram aioquic produces to the owner's non-blocking socket at once, so packets leave in the order
aioquic numbered them. One task per connection (`drive`) sleeps in a cancel scope whose deadline is
aioquic's `get_timer()` (or our own housekeeping: handshake timeout, keepalive ping, idle close),
re-armed after every flush; there is no polling.

aioquic has no send backpressure and grows receive windows regardless of what we consumed, so:
a sender blocks while more than `max_unacked_bytes` of its frames are unacknowledged (a request is
acknowledged by its response; a response when aioquic discards its finished stream), our requests
in flight per connection are capped, and a peer that makes us buffer more than
`max_inbound_buffer` bytes of requests, or serve too many at once, is closed as misbehaving.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import trio
from aioquic import tls
from aioquic.quic import events

from node.transport.errors import (
    ConnectionLost,
    FrameTooLarge,
    MalformedFrame,
    PeerRefused,
    PeerUnreachable,
    TransportError,
)
from node.transport.framing import MAX_FRAME, Frame, FrameReader, Kind
from node.transport.mtls import MutualTlsConnection, PeerInfo

Address = tuple[str, int]
log = logging.getLogger(__name__)
_CRYPTO_ERROR = 0x100  # QUIC carries TLS alerts as CRYPTO_ERROR + alert (RFC 9001 section 4.8)


# ACKs (aioquic delays them by 1 ms, then sends a packet for the ACK alone): we delay them longer,
# still below the 25 ms max_ack_delay aioquic announces (which the peer's loss timers allow for), so
# they mostly ride on the next data in either direction (see `flush`); small request/response
# traffic then needs no ACK-only packets and no timer wake-ups for them. A burst is acknowledged
# after every ACK_EVERY datagrams, so a sender's congestion window keeps opening during bulk
# transfers (RFC 9000 section 13.2.2 suggests every second packet; aioquic's ACKs are costly).
ACK_DELAY = 0.010
ACK_EVERY = 4


class CloseCode(IntEnum):
    """Application close codes (what we tell the peer when we close)."""

    NORMAL = 0
    PROTOCOL_VIOLATION = 1
    REFUSED = 2
    IDLE = 3
    SHUTDOWN = 4
    UNRESPONSIVE = 5


@dataclass(frozen=True)
class Limits:
    max_frame: int = MAX_FRAME
    max_inbound_connections: int = 256
    handshake_timeout: float = 5.0
    request_timeout: float = 10.0
    idle_close: float = 120.0  # close a connection nobody used this long
    keepalive_interval: float = 5.0  # ping while open, so a dead path is noticed by QUIC's idle timeout
    quic_idle_timeout: float = 20.0
    max_unacked_bytes: int = 4 << 20
    max_inbound_buffer: int = 8 << 20
    max_concurrent_requests: int = 64  # our requests in flight on one connection
    max_concurrent_served: int = 128  # the peer's requests being read or served on one connection
    misbehaviour_penalty: float = 60.0
    redial_backoff_min: float = 0.1
    redial_backoff_max: float = 5.0
    max_datagram_size: int = 1200


class ConnectionOwner(Protocol):
    """What a connection needs from its endpoint."""

    def send_datagram(self, data: bytes, address: Address) -> None: ...
    def flush_soon(self, connection: PeerConnection) -> None: ...
    def connection_id_issued(self, cid: bytes, connection: PeerConnection) -> None: ...
    def connection_id_retired(self, cid: bytes) -> None: ...
    def connection_established(self, connection: PeerConnection) -> None: ...
    def connection_closing(self, connection: PeerConnection) -> None: ...
    def connection_terminated(self, connection: PeerConnection) -> None: ...
    def peer_misbehaved(self, connection: PeerConnection, reason: str) -> None: ...
    def serve(self, connection: PeerConnection, stream_id: int, payload: bytes, charged: int) -> None: ...


@dataclass
class _Pending:
    reader: FrameReader
    charge: int
    sent_at: float
    done: trio.Event = field(default_factory=trio.Event)
    frame: Frame | None = None
    error: TransportError | None = None


class PeerConnection:
    def __init__(
        self, owner: ConnectionOwner, quic: MutualTlsConnection, address: Address, limits: Limits, now: float
    ) -> None:
        self.owner = owner
        self.quic = quic
        self.address = address
        self.limits = limits
        self.is_client = quic.configuration.is_client
        self.peer: PeerInfo | None = None
        self.settled = trio.Event()  # established or closing, whichever comes first
        self.closing = False
        self.failure: TransportError | None = None  # why the connection ended, as callers should see it
        self.created = now
        self.last_used = now
        self._last_ping = now
        self._last_received = now
        self._ping_uid = 0
        self._terminated = trio.Event()
        self._timer_scope: trio.CancelScope | None = None
        self._pending: dict[int, _Pending] = {}
        self._inbound: dict[int, FrameReader] = {}
        self._inbound_bytes = 0
        self._serving = 0
        self._unacked = 0
        self._unacked_changed = trio.Event()
        self._responses: dict[int, int] = {}  # stream id -> bytes charged until aioquic discards the stream
        self._request_slots = trio.Semaphore(limits.max_concurrent_requests)
        self._data_queued = False  # stream data was queued since the last flush
        self._unacked_datagrams = 0  # datagrams received since our last ACK
        quic._ack_delay = ACK_DELAY

    @property
    def established(self) -> bool:
        return self.peer is not None and not self.closing

    # -- driving aioquic (all synchronous) --------------------------------------------------------

    def receive(self, data: bytes, address: Address, now: float) -> None:
        """Feed one datagram; the owner handles events and flushes once per batch."""
        self._last_received = now
        quic = self.quic
        quic.receive_datagram(data, address, now)
        space = quic._spaces.get(tls.Epoch.ONE_RTT)
        if space is not None and space.ack_at is not None:
            self._unacked_datagrams += 1
            if self._unacked_datagrams >= ACK_EVERY and space.ack_at > now:
                space.ack_at = now  # acknowledged by the flush that ends this receive batch

    def process(self, now: float) -> None:
        """Handle aioquic's events, then send its datagrams."""
        self.handle_events()
        self.flush(now)

    def handle_events(self) -> None:
        quic = self.quic
        event = quic.next_event()
        while event is not None:
            self._handle_event(event)
            event = quic.next_event()
        if not self.closing and quic._close_event is not None:
            self._begin_closing(quic._close_event)

    def flush(self, now: float) -> int:
        """Send what aioquic has to send, settle send accounting and re-arm the timer."""
        quic = self.quic
        if self._data_queued:
            # Stream data leaves now: let a pending (delayed) ACK ride in the same packet rather
            # than in a packet of its own when aioquic's 1 ms ACK timer fires. aioquic writes an
            # ACK frame only once its `ack_at` has passed; bringing it forward is always allowed
            # (RFC 9000 section 13.2.1 sets only an upper bound on the delay).
            self._data_queued = False
            space = quic._spaces.get(tls.Epoch.ONE_RTT)
            if space is not None and space.ack_at is not None and space.ack_at > now:
                space.ack_at = now
        datagrams = quic.datagrams_to_send(now)
        for data, address in datagrams:
            self.owner.send_datagram(data, address)
        if self._unacked_datagrams:
            space = quic._spaces.get(tls.Epoch.ONE_RTT)
            if space is None or space.ack_at is None:
                self._unacked_datagrams = 0
        if self._responses:
            streams = quic._streams
            for stream_id in [s for s in self._responses if s not in streams]:
                self._refund(self._responses.pop(stream_id))
        if not self.closing and quic._close_event is not None:
            self._begin_closing(quic._close_event)
        if self._timer_scope is not None:
            self._timer_scope.deadline = self._next_deadline()
        return len(datagrams)

    def close(self, code: CloseCode, reason: str, now: float) -> None:
        if not self.closing:
            self.quic.close(error_code=int(code), reason_phrase=reason[:200])
            self.process(now)

    async def drive(self) -> None:
        """The connection's timer task; returns once aioquic has terminated the connection."""
        while not self._terminated.is_set():
            with trio.CancelScope(deadline=self._next_deadline()) as scope:
                self._timer_scope = scope
                await self._terminated.wait()
            self._timer_scope = None
            if self._terminated.is_set():
                break
            now = trio.current_time()
            try:
                timer = self.quic.get_timer()
                if timer is not None and now >= timer:
                    self.quic.handle_timer(now)
                self._housekeeping(now)
                self.process(now)
            except Exception:  # an aioquic failure must cost this connection only, never the endpoint
                log.exception("abandoning a QUIC connection after an unexpected error")
                self.abandon("internal error")

    def abandon(self, reason: str) -> None:
        """Give the connection up without aioquic's help (it failed): fail waiters, forget it."""
        if not self.closing:
            self._begin_closing(events.ConnectionTerminated(int(CloseCode.PROTOCOL_VIOLATION), None, reason))
        if not self._terminated.is_set():
            self._terminated.set()
            self.owner.connection_terminated(self)

    def _next_deadline(self) -> float:
        timer = self.quic.get_timer()
        deadline = math.inf if timer is None else timer
        if self.closing:
            return deadline
        if self.peer is None:
            return min(deadline, self.created + self.limits.handshake_timeout)
        return min(deadline, self.last_used + self.limits.idle_close, self._last_ping + self.limits.keepalive_interval)

    def _housekeeping(self, now: float) -> None:
        if self.closing:
            return
        if self.peer is None:
            if now >= self.created + self.limits.handshake_timeout:
                self.failure = PeerUnreachable(
                    f"no handshake with {self.address} within {self.limits.handshake_timeout}s"
                )
                self.close(CloseCode.REFUSED, "handshake timeout", now)
        elif now >= self.last_used + self.limits.idle_close:
            self.close(CloseCode.IDLE, "idle", now)
        elif now >= self._last_ping + self.limits.keepalive_interval:
            self._ping_uid += 1
            self.quic.send_ping(self._ping_uid)
            self._last_ping = now

    # -- events ----------------------------------------------------------------------------------

    def _handle_event(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self._on_stream_data(event)
        elif isinstance(event, events.HandshakeCompleted):
            self._on_handshake(event)
        elif isinstance(event, events.StreamReset):
            self._on_stream_reset(event.stream_id)
        elif isinstance(event, events.ConnectionIdIssued):
            self.owner.connection_id_issued(event.connection_id, self)
        elif isinstance(event, events.ConnectionIdRetired):
            self.owner.connection_id_retired(event.connection_id)
        elif isinstance(event, events.ConnectionTerminated):
            if not self.closing:
                self._begin_closing(event)
            self._terminated.set()
            self.owner.connection_terminated(self)

    def _on_handshake(self, event: events.HandshakeCompleted) -> None:
        identity = self.quic.peer_identity
        if identity is None:  # our TLS hook did not run: never talk to an unauthenticated peer
            self.failure = PeerRefused("peer was not authenticated in the handshake")
            self.quic.close(error_code=int(CloseCode.REFUSED), reason_phrase="not authenticated")
            return
        if event.alpn_protocol not in (self.quic.configuration.alpn_protocols or []):
            self.failure = PeerRefused(f"peer speaks {event.alpn_protocol!r}")
            self.quic.close(error_code=int(CloseCode.REFUSED), reason_phrase="unsupported protocol version")
            return
        self.peer = PeerInfo(
            node_id=identity.node_id,
            origin=identity.origin,
            address=(str(self.address[0]), int(self.address[1])),
            ca_issued=identity.ca_issued,
            not_after=identity.not_after,
        )
        self.settled.set()
        self.owner.connection_established(self)

    def _begin_closing(self, event: events.ConnectionTerminated) -> None:
        self.closing = True
        if self.failure is None:
            self.failure = _failure_from(event, self.quic.refusal)
        for pending in self._pending.values():
            pending.error = self.failure
            pending.done.set()
        self._pending.clear()
        self._unacked = 0
        self._unacked_changed.set()
        self.settled.set()
        self.owner.connection_closing(self)

    def _violation(self, reason: str) -> None:
        if self.closing:
            return
        self.failure = ConnectionLost(f"closed: peer broke the protocol ({reason})")
        self.quic.close(error_code=int(CloseCode.PROTOCOL_VIOLATION), reason_phrase=reason[:200])
        self.owner.peer_misbehaved(self, reason)

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        stream_id = event.stream_id
        if self.peer is None or self.closing:
            return
        if stream_id & 2:
            return self._violation("unidirectional streams are not used")
        ours = (stream_id & 1) == (0 if self.is_client else 1)
        if ours:
            self._on_response_data(stream_id, event.data, event.end_stream)
        else:
            self._on_request_data(stream_id, event.data, event.end_stream)

    def _on_response_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        pending = self._pending.get(stream_id)
        if pending is None:
            return  # a request we gave up on; its stream was reset
        try:
            pending.reader.feed(data)
            if not end_stream:
                return
            frame = pending.reader.finish()
            if frame.kind == Kind.REQUEST:
                raise MalformedFrame("a request frame where a response was expected")
        except (FrameTooLarge, MalformedFrame) as exc:
            self._violation(str(exc))
            return
        del self._pending[stream_id]
        self._refund(pending.charge)
        pending.frame = frame
        pending.done.set()

    def _on_request_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        reader = self._inbound.get(stream_id)
        if reader is None:
            if self._serving + len(self._inbound) >= self.limits.max_concurrent_served:
                return self._violation("too many concurrent requests")
            reader = self._inbound[stream_id] = FrameReader(max_frame=self.limits.max_frame)
        self._inbound_bytes += len(data)
        if self._inbound_bytes > self.limits.max_inbound_buffer:
            return self._violation("too much unread request data")
        try:
            reader.feed(data)
            if not end_stream:
                return
            frame = reader.finish()
            if frame.kind != Kind.REQUEST:
                raise MalformedFrame("a response frame where a request was expected")
        except (FrameTooLarge, MalformedFrame) as exc:
            return self._violation(str(exc))
        del self._inbound[stream_id]
        self._serving += 1
        self.last_used = self._last_received
        self.owner.serve(self, stream_id, frame.body, reader.received)

    def _on_stream_reset(self, stream_id: int) -> None:
        pending = self._pending.pop(stream_id, None)
        if pending is not None:
            self._refund(pending.charge)
            pending.error = ConnectionLost("the peer reset the request's stream")
            pending.done.set()
        reader = self._inbound.pop(stream_id, None)
        if reader is not None:
            self._inbound_bytes -= reader.received

    # -- requests and responses ------------------------------------------------------------------

    def _refund(self, amount: int) -> None:
        self._unacked = max(0, self._unacked - amount)
        self._unacked_changed.set()
        self._unacked_changed = trio.Event()

    async def _reserve(self, amount: int) -> None:
        while not self.closing and self._unacked > 0 and self._unacked + amount > self.limits.max_unacked_bytes:
            await self._unacked_changed.wait()
        self._unacked += amount

    async def request(self, frame: bytes) -> Frame:
        """Send one encoded request frame on a new stream and wait for the peer's answer."""
        slots = self._request_slots
        try:  # the waits below are checkpoints already; skip the semaphore's own when a slot is free
            slots.acquire_nowait()
        except trio.WouldBlock:
            await slots.acquire()
        try:
            await self._reserve(len(frame))
            if self.closing:
                raise self.failure or ConnectionLost("connection closed")
            now = trio.current_time()
            stream_id = self.quic.get_next_available_stream_id()
            pending = self._pending[stream_id] = _Pending(FrameReader(max_frame=self.limits.max_frame), len(frame), now)
            self.last_used = now
            self.quic.send_stream_data(stream_id, frame, end_stream=True)
            self._data_queued = True
            self.owner.flush_soon(self)
            try:
                await pending.done.wait()
            finally:
                if not pending.done.is_set():
                    self._abandon(stream_id, pending)
        finally:
            slots.release()
        if pending.error is not None:
            raise pending.error
        assert pending.frame is not None
        return pending.frame

    def _abandon(self, stream_id: int, pending: _Pending) -> None:
        """A request was cancelled (usually its timeout): stop the stream, and drop a silent connection."""
        self._pending.pop(stream_id, None)
        self._refund(pending.charge)
        if self.closing:
            return
        now = trio.current_time()
        if self._last_received < pending.sent_at:
            self.failure = ConnectionLost("peer stopped answering")
            self.close(CloseCode.UNRESPONSIVE, "no answer", now)
            return
        try:
            self.quic.reset_stream(stream_id, int(CloseCode.NORMAL))
            self.quic.stop_stream(stream_id, int(CloseCode.NORMAL))
        except (ValueError, RuntimeError):  # the stream already ended on its own
            pass
        self.owner.flush_soon(self)

    async def respond(self, stream_id: int, frame: bytes) -> None:
        await self._reserve(len(frame))
        if self.closing:
            return
        try:
            self.quic.send_stream_data(stream_id, frame, end_stream=True)
        except (ValueError, RuntimeError):  # the peer stopped or reset the stream meanwhile
            self._refund(len(frame))
            return
        self._responses[stream_id] = len(frame)
        self._data_queued = True
        self.owner.flush_soon(self)

    def served(self, charged: int) -> None:
        self._serving -= 1
        self._inbound_bytes -= charged
        self.last_used = trio.current_time()


def _failure_from(event: events.ConnectionTerminated, our_refusal: str | None) -> TransportError:
    if our_refusal is not None:
        return PeerRefused(f"we refused the peer: {our_refusal}")
    code, phrase = event.error_code, event.reason_phrase
    if _CRYPTO_ERROR <= code < _CRYPTO_ERROR + 0x100:
        try:
            alert = tls.AlertDescription(code - _CRYPTO_ERROR).name
        except ValueError:
            alert = f"alert {code - _CRYPTO_ERROR}"
        return PeerRefused(f"TLS {alert}: {phrase}" if phrase else f"TLS {alert}")
    if code == CloseCode.REFUSED:
        return PeerRefused(phrase or "refused")
    if code == CloseCode.PROTOCOL_VIOLATION:
        return PeerMisbehavedClose(phrase)
    return ConnectionLost(
        f"connection closed (code {code}): {phrase}" if phrase else f"connection closed (code {code})"
    )


class PeerMisbehavedClose(ConnectionLost):
    """The peer closed the connection saying we broke the protocol."""

    def __init__(self, phrase: str) -> None:
        super().__init__(f"peer closed the connection for a protocol violation: {phrase}")
