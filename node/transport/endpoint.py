"""The node's QUIC endpoint: one UDP socket that both serves and dials, with mutual TLS.

Datagrams are routed to connections by destination connection id (the ids aioquic issues and
retires are tracked through its events); an unknown id starts a server connection only for a
full-size Initial packet that aioquic answers, and only below the inbound connection limit;
anything unparsable is dropped. Received datagrams are drained in batches; requests, responses and
receptions mark their connection, and one flusher task asks aioquic for datagrams once per marked
connection, so concurrent exchanges share packets. Sending is synchronous on the non-blocking socket
(a full buffer drops the datagram and QUIC's loss recovery resends), which keeps aioquic's packets in
order and all aioquic calls free of awaits. Requests reuse one connection per peer, dialled on
demand (one dial at a time per peer, exponential backoff after failures), kept alive by pings while
open and closed when unused. Penalties and backoff are kept in memory for the endpoint's lifetime.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio
from aioquic._buffer import Buffer
from aioquic.quic.packet import QuicPacketType, QuicProtocolVersion, pull_quic_header
from cryptography import x509

from node.errors import InvalidInput
from node.transport.connection import Address, CloseCode, Limits, PeerConnection
from node.transport.errors import (
    BindFailed,
    EndpointNotRunning,
    FrameTooLarge,
    PeerRefused,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
    TransportError,
)
from node.transport.framing import Kind, encode_frame
from node.transport.mtls import (
    ALPN,
    CONNECTION_ID_LENGTH,
    MutualTlsConnection,
    PeerAuthenticator,
    PeerInfo,
    TlsIdentity,
    make_configuration,
)
from node.trust.errors import KeyMismatch
from node.trust.verify import NodeIdentity

log = logging.getLogger(__name__)

Handler = Callable[[PeerInfo, bytes], Awaitable[bytes]]
_MIN_INITIAL_SIZE = 1200  # RFC 9000 section 14.1: a client's Initial datagram is at least this big
_RECEIVE_BATCH = 64
_VERSIONS = frozenset(int(v) for v in (QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ip_address(address: Address) -> Address:
    """Peers are dialled at IP literals (names are resolved by the caller, once, not per datagram)."""
    try:
        host, port = address
        ip = ipaddress.ip_address(host)
    except (ValueError, TypeError) as exc:
        raise PeerUnreachable(f"cannot dial {address!r}: not an IP address and port") from exc
    if not isinstance(port, int) or not 0 < port < 65536:
        raise PeerUnreachable(f"cannot dial {address!r}: bad port")
    return (str(ip), port)


@dataclass
class _Dial:
    done: trio.Event = field(default_factory=trio.Event)
    connection: PeerConnection | None = None
    error: TransportError | None = None


class Endpoint:
    def __init__(
        self,
        *,
        bind: Address,
        identity: TlsIdentity,
        authenticator: PeerAuthenticator,
        handler: Handler,
        limits: Limits = Limits(),
        clock: Callable[[], dt.datetime] = utc_now,
        alpn: str = ALPN,
    ) -> None:
        self._bind = bind
        self._identity = identity
        self._authenticator = authenticator
        self._handler = handler
        self.limits = limits
        self._clock = clock
        self._alpn = alpn
        self._socket: socket.socket | None = None
        self._nursery: trio.Nursery | None = None
        self._address: Address | None = None
        self._by_cid: dict[bytes, PeerConnection] = {}
        self._cids: dict[PeerConnection, set[bytes]] = {}
        self._by_node: dict[str, list[PeerConnection]] = {}
        self._inbound = 0
        self._dials: dict[str, _Dial] = {}
        self._backoff: dict[str, tuple[float, float, str]] = {}  # node -> (retry at, delay, last error)
        self._penalties: dict[str, tuple[float, str]] = {}  # node -> (until, reason)
        self._dirty: dict[PeerConnection, None] = {}
        self._flush_wanted = trio.Event()
        self._flush_after_yield = False
        self._addresses: dict[Address, Address] = {}  # as given -> checked IP literal and port

    # -- public API --------------------------------------------------------------------------------

    @property
    def address(self) -> Address:
        if self._address is None:
            raise EndpointNotRunning("the endpoint is not running")
        return self._address

    @property
    def node_id(self) -> str:
        return self._identity.node_id

    @property
    def identity(self) -> TlsIdentity:
        return self._identity

    def set_identity(self, identity: TlsIdentity) -> None:
        """Present `identity` on connections made or accepted from now on; open ones keep theirs."""
        self._identity = identity

    def set_authenticator(self, authenticator: PeerAuthenticator) -> None:
        """Check peers of new handshakes with `authenticator`; open connections are kept."""
        self._authenticator = authenticator

    def peers(self) -> list[PeerInfo]:
        """Authenticated peers with an open connection."""
        return [conns[-1].peer for conns in self._by_node.values() if conns and conns[-1].peer is not None]

    def penalise(self, node_id: str, seconds: float, reason: str) -> None:
        """Refuse `node_id` (handshakes and requests) for `seconds`, closing its connections now."""
        until = trio.current_time() + seconds
        previous = self._penalties.get(node_id)
        if previous is None or previous[0] < until:
            self._penalties[node_id] = (until, reason)
        self._close_node(node_id, CloseCode.REFUSED, f"penalised: {reason}")

    def disconnect(self, node_id: str, reason: str = "disconnect") -> None:
        self._close_node(node_id, CloseCode.NORMAL, reason)

    async def request(self, node_id: str, address: Address, payload: bytes) -> bytes:
        """Send `payload` to `node_id` at `address` and return its handler's answer.

        Raises PeerRefused, PeerUnreachable (RequestTimeout, ConnectionLost), RemoteError, FrameTooLarge.
        `limits.request_timeout` bounds every request; wrap the call in a cancel scope for less.
        """
        if self._nursery is None:
            raise EndpointNotRunning("the endpoint is not running")
        frame = encode_frame(Kind.REQUEST, payload, max_frame=self.limits.max_frame)
        self._check_penalty(node_id)
        checked = self._addresses.get(address)
        if checked is None:
            checked = _ip_address(address)
            if len(self._addresses) < 4096:  # peers are few; don't let odd callers grow it forever
                self._addresses[address] = checked
        address = checked
        seconds = self.limits.request_timeout
        with trio.CancelScope(deadline=trio.current_time() + seconds) as scope:
            connection = await self._connection_to(node_id, address)
            reply = await connection.request(frame)
        if scope.cancelled_caught:
            raise RequestTimeout(f"no answer from {node_id} at {address} within {seconds}s")
        if reply.kind == Kind.ERROR:
            raise RemoteError(reply.body.decode("utf-8", errors="replace"))
        return reply.body

    async def run(self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED) -> None:
        if self._nursery is not None:
            raise EndpointNotRunning("this endpoint is already running")
        host, port = self._bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise BindFailed(f"cannot bind UDP {host}:{port}: {exc.strerror or exc}") from exc
        self._reset_state()
        self._socket = sock
        trio_sock = trio.socket.from_stdlib_socket(sock)
        bound = sock.getsockname()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._address = (str(bound[0]), int(bound[1]))
                nursery.start_soon(self._flusher)
                task_status.started(self._address)
                try:
                    await self._receive_loop(sock)
                finally:
                    self._shutdown()
                    nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._address = None
            self._socket = None
            trio_sock.close()

    def _reset_state(self) -> None:
        """Connection state belongs to one run; penalties and backoff outlive it."""
        self._by_cid.clear()
        self._cids.clear()
        self._by_node.clear()
        self._inbound = 0
        self._dials.clear()
        self._dirty = {}
        self._flush_wanted = trio.Event()
        self._flush_after_yield = False

    # -- receiving ---------------------------------------------------------------------------------

    async def _receive_loop(self, sock: socket.socket) -> None:
        # Wait for readability, then drain with the plain socket: trio's `recvfrom` would first try,
        # fail, wait and try again for every wake-up, and the drain below needs the plain calls anyway.
        # One ACK and one flush per connection per batch instead of one per datagram.
        while True:
            await trio.lowlevel.wait_readable(sock)
            touched: dict[PeerConnection, None] = {}
            now = trio.current_time()
            for _ in range(_RECEIVE_BATCH):
                try:
                    data, address = sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # an ICMP error surfaced on the socket; UDP goes on
                    continue
                self._datagram_received(data, (address[0], address[1]), now, touched)
            for connection in touched:
                self._guarded(connection, connection.handle_events)
                self._flush_after_receive(connection)

    def _guarded(self, connection: PeerConnection, call: Callable[..., object], *args: object) -> None:
        try:
            call(*args)
        except Exception:  # aioquic raised on input it should have rejected: lose that connection only
            log.exception("abandoning a QUIC connection after an unexpected error")
            connection.abandon("internal error")

    def _datagram_received(
        self, data: bytes, address: Address, now: float, touched: dict[PeerConnection, None]
    ) -> None:
        if data and not data[0] & 0x80:
            # A short-header (1-RTT) packet: the destination connection id follows the first byte.
            # Only established connections take these, so an unknown id is simply dropped.
            connection = self._by_cid.get(data[1 : 1 + CONNECTION_ID_LENGTH])
            if connection is not None:
                touched[connection] = None
                self._guarded(connection, connection.receive, data, address, now)
            return
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CONNECTION_ID_LENGTH)
        except ValueError:
            return
        connection = self._by_cid.get(header.destination_cid)
        if connection is None:
            if (
                header.packet_type != QuicPacketType.INITIAL
                or header.version not in _VERSIONS
                or len(data) < _MIN_INITIAL_SIZE
                or self._inbound >= self.limits.max_inbound_connections
            ):
                return
            self._accept(data, address, header.destination_cid, now)
            return
        touched[connection] = None
        self._guarded(connection, connection.receive, data, address, now)

    def _accept(self, data: bytes, address: Address, original_cid: bytes, now: float) -> None:
        """Start a server connection, kept only if aioquic answers its first datagram.

        A real client's Initial always draws a reply (our peers' ClientHello fits one datagram), so
        forged Initials cost one parse and never hold a connection slot.
        """
        connection = self._new_connection(address, expected_node_id=None, original_cid=original_cid)
        self._register_cid(original_cid, connection)
        try:
            connection.receive(data, address, now)
            connection.handle_events()
            answered = connection.flush(now) > 0
        except Exception:
            log.exception("dropping a QUIC connection after an unexpected error on its first datagram")
            answered = False
        if not answered:
            self._forget(connection)
            return
        self._inbound += 1
        self._start(connection)

    async def _flusher(self) -> None:
        """Send for every connection touched since the last pass, once.

        Requests, responses and received datagrams only mark their connection; this task then asks
        aioquic for datagrams once per connection, after letting the tasks woken in the same pass
        (handlers answering, requesters sending) run, so their frames and ACKs share packets.
        """
        while True:
            await self._flush_wanted.wait()
            if self._flush_after_yield:
                # Woken by the receive loop: the handlers and requesters it woke run in this same
                # scheduler batch, maybe after us; yield once so their frames share our flush.
                # Tasks that queued data themselves ran in the batch before ours: no yield needed.
                self._flush_after_yield = False
                await trio.lowlevel.cancel_shielded_checkpoint()
            self._flush_wanted = trio.Event()
            dirty, self._dirty = self._dirty, {}
            now = trio.current_time()
            for connection in dirty:
                if connection in self._cids:
                    self._guarded(connection, connection.flush, now)

    def flush_soon(self, connection: PeerConnection) -> None:
        self._dirty[connection] = None
        self._flush_wanted.set()

    def _flush_after_receive(self, connection: PeerConnection) -> None:
        self._flush_after_yield = True
        self.flush_soon(connection)

    # -- connections -------------------------------------------------------------------------------

    def _new_connection(
        self, address: Address, *, expected_node_id: str | None, original_cid: bytes | None = None
    ) -> PeerConnection:
        assert self._nursery is not None
        configuration = make_configuration(
            self._identity,
            is_client=expected_node_id is not None,
            alpn=self._alpn,
            idle_timeout=self.limits.quic_idle_timeout,
            max_datagram_size=self.limits.max_datagram_size,
        )

        def check(certificate: x509.Certificate | None, chain: Sequence[x509.Certificate]) -> NodeIdentity:
            identity = self._authenticator.authenticate(certificate, chain, self._clock())
            if expected_node_id is not None and identity.node_id != expected_node_id:
                raise KeyMismatch(f"dialled node {expected_node_id} but reached node {identity.node_id}")
            self._check_penalty(identity.node_id)
            return identity

        quic = MutualTlsConnection(
            configuration=configuration, check=check, original_destination_connection_id=original_cid
        )
        connection = PeerConnection(self, quic, address, self.limits, trio.current_time())
        self._cids[connection] = set()
        self._register_cid(quic.host_cid, connection)
        return connection

    def _start(self, connection: PeerConnection) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(connection.drive)

    def _forget(self, connection: PeerConnection) -> None:
        for cid in self._cids.pop(connection, set()):
            if self._by_cid.get(cid) is connection:
                del self._by_cid[cid]

    def _register_cid(self, cid: bytes, connection: PeerConnection) -> None:
        self._by_cid[cid] = connection
        self._cids[connection].add(cid)

    async def _connection_to(self, node_id: str, address: Address) -> PeerConnection:
        for connection in reversed(self._by_node.get(node_id, [])):
            if connection.established:
                return connection
        dial = self._dials.get(node_id)
        if dial is None:
            backoff = self._backoff.get(node_id)
            if backoff is not None and trio.current_time() < backoff[0]:
                raise PeerUnreachable(
                    f"not redialling {node_id} for {backoff[0] - trio.current_time():.2f}s: {backoff[2]}"
                )
            dial = self._dials[node_id] = _Dial()
            assert self._nursery is not None
            self._nursery.start_soon(self._dial, node_id, address, dial)
        await dial.done.wait()
        if dial.error is not None:
            raise dial.error
        assert dial.connection is not None
        return dial.connection

    async def _dial(self, node_id: str, address: Address, dial: _Dial) -> None:
        now = trio.current_time()
        try:
            connection = self._new_connection(address, expected_node_id=node_id)
            self._start(connection)
            try:
                connection.quic.connect(address, now)
                connection.process(now)
            except Exception as exc:  # e.g. an unusable identity or address: fail this dial only
                log.exception("dialling %s at %s failed", node_id, address)
                connection.abandon(f"dial failed: {exc}")
                connection.failure = PeerUnreachable(f"cannot dial {node_id} at {address}: {exc}")
            await connection.settled.wait()
            if connection.established:
                dial.connection = connection
                self._backoff.pop(node_id, None)
            else:
                dial.error = connection.failure or PeerUnreachable(f"could not connect to {node_id} at {address}")
                previous = self._backoff.get(node_id)
                delay = self.limits.redial_backoff_min if previous is None else previous[1] * 2
                delay = min(delay, self.limits.redial_backoff_max)
                self._backoff[node_id] = (trio.current_time() + delay, delay, str(dial.error))
        finally:
            self._dials.pop(node_id, None)
            dial.done.set()

    def _close_node(self, node_id: str, code: CloseCode, reason: str) -> None:
        now = trio.current_time()
        for connection in list(self._by_node.get(node_id, [])):
            connection.close(code, reason, now)

    def _check_penalty(self, node_id: str) -> None:
        penalty = self._penalties.get(node_id)
        if penalty is None:
            return
        if trio.current_time() >= penalty[0]:
            del self._penalties[node_id]
            return
        raise PeerRefused(f"node {node_id} is penalised: {penalty[1]}")

    def _shutdown(self) -> None:
        now = trio.current_time()
        for connection in list(self._cids):
            connection.close(CloseCode.SHUTDOWN, "endpoint closing", now)

    # -- ConnectionOwner ----------------------------------------------------------------------------

    def send_datagram(self, data: bytes, address: Address) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto(data, address)
        except OSError:  # full buffer or unreachable: dropped like any lost datagram
            pass

    def connection_id_issued(self, cid: bytes, connection: PeerConnection) -> None:
        if connection in self._cids:
            self._register_cid(cid, connection)

    def connection_id_retired(self, cid: bytes) -> None:
        connection = self._by_cid.pop(cid, None)
        if connection is not None and connection in self._cids:
            self._cids[connection].discard(cid)

    def connection_established(self, connection: PeerConnection) -> None:
        assert connection.peer is not None
        self._by_node.setdefault(connection.peer.node_id, []).append(connection)

    def connection_closing(self, connection: PeerConnection) -> None:
        if connection.peer is None:
            return
        connections = self._by_node.get(connection.peer.node_id, [])
        if connection in connections:
            connections.remove(connection)
        if not connections:
            self._by_node.pop(connection.peer.node_id, None)

    def connection_terminated(self, connection: PeerConnection) -> None:
        self._forget(connection)
        if not connection.is_client:
            self._inbound -= 1

    def peer_misbehaved(self, connection: PeerConnection, reason: str) -> None:
        if connection.peer is not None:
            self.penalise(connection.peer.node_id, self.limits.misbehaviour_penalty, reason)

    def serve(self, connection: PeerConnection, stream_id: int, payload: bytes, charged: int) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._serve, connection, stream_id, payload, charged)

    async def _serve(self, connection: PeerConnection, stream_id: int, payload: bytes, charged: int) -> None:
        try:
            assert connection.peer is not None
            try:
                response = await self._handler(connection.peer, payload)
                frame = encode_frame(Kind.RESPONSE, response, max_frame=self.limits.max_frame)
            except FrameTooLarge:
                frame = encode_frame(Kind.ERROR, b"response too large")
            except InvalidInput as exc:
                frame = encode_frame(Kind.ERROR, str(exc).encode()[:1000])
            except Exception:
                log.exception("request handler failed")
                frame = encode_frame(Kind.ERROR, b"handler failed")
            await connection.respond(stream_id, frame)
        finally:
            connection.served(charged)


__all__ = ["Endpoint", "Handler", "Limits"]
