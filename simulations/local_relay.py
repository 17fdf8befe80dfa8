"""A delaying UDP relay: added latency where the kernel has no netem (see /work/shared/TESTING.md).

`DelayRelay` listens on one UDP port in front of one target (a node's QUIC port).  Every client
address that sends to it gets an upstream socket of its own (like a NAT), so the target's replies
find their way back.  Each datagram is held `delay_s` seconds in each direction before it is sent
on, in arrival order; `delay_s` may change while running (0 heals the fault, the path stays).
QUIC only sees its peer's address change to the relay's, which it accepts like any other.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import trio

from simulations.local_cluster import NodeProcess

Address = tuple[str, int]
MAX_DATAGRAM = 65535
QUEUE = 4096  # datagrams in flight per direction; a burst beyond it is dropped, as a router would


@dataclass
class RelayStats:
    forwarded: int = 0
    dropped: int = 0
    clients: int = 0


@dataclass
class DelayRelay:
    target: Address
    host: str = "127.0.0.1"
    delay_s: float = 0.0
    stats: RelayStats = field(default_factory=RelayStats)
    _listen: trio.socket.SocketType | None = None
    _upstreams: dict[Address, trio.socket.SocketType] = field(default_factory=dict)

    @property
    def port(self) -> int:
        assert self._listen is not None, "the relay is not running"
        port: int = self._listen.getsockname()[1]
        return port

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports the port it listens on."""
        listen = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await listen.bind((self.host, 0))
        self._listen = listen
        with listen:
            async with trio.open_nursery() as nursery:
                send, receive = trio.open_memory_channel[tuple[float, trio.socket.SocketType, bytes, Address]](QUEUE)
                nursery.start_soon(self._sender, receive)
                task_status.started(self.port)
                try:
                    while True:
                        data, client = await listen.recvfrom(MAX_DATAGRAM)
                        upstream = self._upstreams.get(client)
                        if upstream is None:
                            upstream = await self._open_upstream(nursery, client, send)
                        self._queue(send, upstream, data, self.target)
                finally:
                    for sock in self._upstreams.values():
                        sock.close()

    async def _open_upstream(self, nursery: trio.Nursery, client: Address,
                             send: trio.MemorySendChannel[tuple[float, trio.socket.SocketType, bytes, Address]]
                             ) -> trio.socket.SocketType:
        upstream = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await upstream.bind((self.host, 0))
        self._upstreams[client] = upstream
        self.stats.clients += 1
        nursery.start_soon(self._back, upstream, client, send)
        return upstream

    async def _back(self, upstream: trio.socket.SocketType, client: Address,
                    send: trio.MemorySendChannel[tuple[float, trio.socket.SocketType, bytes, Address]]) -> None:
        """The target's replies to one client, out through the listening socket."""
        assert self._listen is not None
        while True:
            data, _ = await upstream.recvfrom(MAX_DATAGRAM)
            self._queue(send, self._listen, data, client)

    def _queue(self, send: trio.MemorySendChannel[tuple[float, trio.socket.SocketType, bytes, Address]],
               sock: trio.socket.SocketType, data: bytes, to: Address) -> None:
        try:
            send.send_nowait((trio.current_time() + self.delay_s, sock, data, to))
        except trio.WouldBlock:
            self.stats.dropped += 1

    async def _sender(self, receive: trio.MemoryReceiveChannel[tuple[float, trio.socket.SocketType, bytes, Address]]
                      ) -> None:
        # One queue for both directions: each datagram waits until its own due time (FIFO, since
        # every datagram gets the same delay at the moment it arrives).
        async for due, sock, data, to in receive:
            wait = due - trio.current_time()
            if wait > 0:
                await trio.sleep(wait)
            try:
                await sock.sendto(data, to)
                self.stats.forwarded += 1
            except OSError:
                self.stats.dropped += 1


class LatencyPaths:
    """Every path to and from one node of an origin through delaying relays (n relays in all).

    The others reach the slow node through one relay in front of it; the slow node reaches each
    other node through a relay in front of that node.  `node start --peer ID@HOST:PORT` points
    each node at the relays, so traffic among the other nodes stays direct.  Call `start` before
    the nodes start; `set_delay` adds (or, with 0, removes) the latency on every one of these paths.
    """

    def __init__(self, slow: NodeProcess, others: list[NodeProcess]) -> None:
        self.slow = slow
        self.others = others
        self.relays: dict[str, DelayRelay] = {}  # node id -> the relay in front of it

    @staticmethod
    def _address(listen: str) -> Address:
        host, _, port = listen.rpartition(":")
        return host, int(port)

    async def start(self, nursery: trio.Nursery) -> None:
        for node in [self.slow, *self.others]:
            relay = DelayRelay(self._address(node.listen))
            await nursery.start(relay.run)
            self.relays[node.node_id] = relay
        front = self.relays[self.slow.node_id]
        for node in self.others:
            node.extra_args = [*node.extra_args, "--peer", f"{self.slow.node_id}@{front.host}:{front.port}"]
            relay = self.relays[node.node_id]
            self.slow.extra_args = [*self.slow.extra_args, "--peer", f"{node.node_id}@{relay.host}:{relay.port}"]

    def set_delay(self, seconds: float) -> None:
        for relay in self.relays.values():
            relay.delay_s = seconds

    def forwarded(self) -> int:
        return sum(r.stats.forwarded for r in self.relays.values())
