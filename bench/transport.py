"""Request/response speed of the QUIC transport against two references, measured in one run.

    python bench/transport.py [--seconds S] [--gossip]

Three ways to carry the same length-prefixed request/response exchanges over one connection, all in
this one process (client and server share the core, as both ends of a loopback test do):

- ours: two `node.transport.Endpoint`s (aioquic + Trio + UDP sockets, mutual TLS);
- tls-tcp: trio.SSLStream over TCP with client certificates (requests pipelined up to the same depth);
- in-memory: two aioquic connections passing datagrams to each other directly (no sockets, no
  Trio), with a real clock for aioquic's timers. This is the ceiling for anything built on aioquic
  here; the ratio ours / in-memory shows what the endpoint itself costs (goal >= 60 %).

Where ours loses to the in-memory loop. aioquic delays ACKs by 1 ms: the in-memory loop completes
an exchange in about 0.5 ms, so its ACKs ride on data packets, while through sockets and Trio an
exchange took longer than 1 ms and every exchange also carried ACK-only packets and timer runs (3.3
to 3.6 datagrams per exchange: roughly twice aioquic's work). The endpoint now delays ACKs by 10 ms
(below the 25 ms aioquic announces), brings a pending ACK forward whenever stream data leaves, and
acknowledges bursts every 4th datagram: 2.0 datagrams per exchange, like the in-memory loop (the
in-memory loop keeps aioquic's stock ACK behaviour, so it stays an honest baseline). What remains
is per exchange: Trio (about 8 task steps and 6 scheduler passes: socket task, handler task,
flusher, requester, each about 12 us of CPU here), the socket calls, and our framing and
bookkeeping, next to aioquic's ~550 us for the two datagrams. With requests in flight in parallel
those costs are shared and the gap closes.

Workloads: `small` 200-byte requests and answers one at a time, `small x16` with 16 in flight,
`bulk` 64 KiB requests with 16-byte answers, 4 in flight. `--gossip` then also runs
bench/gossip.py: events/s of a real 4-node origin.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import ssl
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio
from aioquic.quic import events

from node.crypto import PrivateKey
from node.transport import Endpoint, IssuedByCA, Limits, TlsIdentity
from node.transport.framing import FrameReader, Kind, encode_frame
from node.transport.mtls import CertificateCheck, MutualTlsConnection, make_configuration
from node.trust import OriginCA, certificate_pem, make_csr

ORIGIN = "bench.example"


@dataclass(frozen=True)
class Workload:
    name: str
    request_size: int
    response_size: int
    depth: int


WORKLOADS = [Workload("small", 200, 200, 1), Workload("small x16", 200, 200, 16), Workload("bulk", 65536, 16, 4)]


@dataclass(frozen=True)
class Result:
    messages: int
    seconds: float
    payload_bytes: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def mbps(self) -> float:
        return self.payload_bytes / self.seconds / 1e6


class Setup:
    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.ca = OriginCA.generate(ORIGIN, now - dt.timedelta(hours=1))
        self.keys = [PrivateKey.generate(), PrivateKey.generate()]
        self.identities = [
            TlsIdentity(self.ca.issue(make_csr(k, ORIGIN), now), k.to_cryptography(), ()) for k in self.keys
        ]
        self.auth = IssuedByCA(self.ca.certificate, ORIGIN)


async def run_pipelined(send: Callable[[], Awaitable[None]], depth: int, seconds: float, per_message: int) -> Result:
    """Keep `depth` requests in flight for `seconds`; `send()` performs one request/response."""
    count = 0
    deadline = trio.current_time() + seconds

    async def worker() -> None:
        nonlocal count
        while trio.current_time() < deadline:
            await send()
            count += 1

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(depth):
            nursery.start_soon(worker)
    elapsed = time.perf_counter() - start
    return Result(count, elapsed, count * per_message)


async def bench_ours(setup: Setup, workload: Workload, seconds: float) -> Result:
    response = b"r" * workload.response_size

    async def handler(peer: object, request: bytes) -> bytes:
        return response

    limits = Limits()
    server = Endpoint(
        bind=("127.0.0.1", 0), identity=setup.identities[1], authenticator=setup.auth, handler=handler, limits=limits
    )
    client = Endpoint(
        bind=("127.0.0.1", 0), identity=setup.identities[0], authenticator=setup.auth, handler=handler, limits=limits
    )
    payload = b"q" * workload.request_size
    node_id = setup.keys[1].fingerprint
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        await nursery.start(client.run)
        await client.request(node_id, address, payload)

        async def send() -> None:
            await client.request(node_id, address, payload)

        result = await run_pipelined(send, workload.depth, seconds, workload.request_size + workload.response_size)
        nursery.cancel_scope.cancel()
    return result


def _ssl_contexts(setup: Setup, folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    contexts = []
    for i, server_side in ((1, True), (0, False)):
        cert, key = folder / f"{i}.crt", folder / f"{i}.key"
        cert.write_bytes(certificate_pem(setup.identities[i].certificate))
        key.write_bytes(setup.keys[i].to_pem())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(cert, key)
        context.load_verify_locations(cadata=certificate_pem(setup.ca.certificate).decode())
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        contexts.append(context)
    return contexts[0], contexts[1]


async def _read_frame(stream: trio.SSLStream[trio.SocketStream], buffer: bytearray) -> bytes:
    while True:
        if len(buffer) >= 4:
            (size,) = struct.unpack_from(">I", buffer)
            if len(buffer) >= 4 + size:
                frame = bytes(buffer[4 : 4 + size])
                del buffer[: 4 + size]
                return frame
        data = await stream.receive_some(1 << 18)
        if not data:
            raise EOFError
        buffer += data


async def bench_tls_tcp(setup: Setup, workload: Workload, seconds: float) -> Result:
    with tempfile.TemporaryDirectory() as folder:
        server_context, client_context = _ssl_contexts(setup, Path(folder))
    answer = encode_frame(Kind.RESPONSE, b"r" * workload.response_size)
    request = encode_frame(Kind.REQUEST, b"q" * workload.request_size)

    async def serve(stream: trio.SocketStream) -> None:
        tls_stream = trio.SSLStream(stream, server_context, server_side=True)
        buffer = bytearray()
        try:
            while True:
                await _read_frame(tls_stream, buffer)
                await tls_stream.send_all(answer)
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, client_context, server_side=False)
        await stream.do_handshake()
        # One connection, requests pipelined up to `depth` (answers come back in order).
        slots = trio.Semaphore(workload.depth)
        count = 0
        deadline = trio.current_time() + seconds
        sent = 0
        start = time.perf_counter()

        writer_done = False
        finished = trio.Event()

        async def reader() -> None:
            nonlocal count
            buffer = bytearray()
            while True:
                await _read_frame(stream, buffer)
                count += 1
                slots.release()
                if writer_done and count == sent:
                    finished.set()
                    return

        async with trio.open_nursery() as inner:
            inner.start_soon(reader)
            while trio.current_time() < deadline:
                await slots.acquire()
                sent += 1
                await stream.send_all(request)
            writer_done = True
            if count == sent:
                finished.set()
            await finished.wait()
            inner.cancel_scope.cancel()
        elapsed = time.perf_counter() - start
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return Result(count, elapsed, count * (workload.request_size + workload.response_size))


def bench_in_memory(setup: Setup, workload: Workload, seconds: float) -> Result:
    clock = time.monotonic
    client_address, server_address = ("10.0.0.1", 1000), ("10.0.0.2", 2000)

    def check(identity_index: int) -> CertificateCheck:
        return lambda cert, chain: setup.auth.authenticate(cert, chain, dt.datetime.now(dt.UTC))

    client = MutualTlsConnection(configuration=make_configuration(setup.identities[0], is_client=True), check=check(1))
    server_configuration = make_configuration(setup.identities[1], is_client=False)
    client.connect(server_address, clock())
    first = client.datagrams_to_send(clock())
    from aioquic._buffer import Buffer
    from aioquic.quic.packet import pull_quic_header

    header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=8)
    server = MutualTlsConnection(
        configuration=server_configuration, check=check(0), original_destination_connection_id=header.destination_cid
    )
    for data, _ in first:
        server.receive_datagram(data, client_address, clock())

    answer = encode_frame(Kind.RESPONSE, b"r" * workload.response_size)
    request = encode_frame(Kind.REQUEST, b"q" * workload.request_size)
    readers: dict[int, FrameReader] = {}
    in_flight: set[int] = set()
    completed = 0
    ready = False

    def server_events() -> None:
        while (event := server.next_event()) is not None:
            if isinstance(event, events.StreamDataReceived):
                reader = readers.setdefault(event.stream_id, FrameReader())
                reader.feed(event.data)
                if event.end_stream:
                    readers.pop(event.stream_id).finish()
                    server.send_stream_data(event.stream_id, answer, end_stream=True)

    def client_events() -> None:
        nonlocal completed, ready
        while (event := client.next_event()) is not None:
            if isinstance(event, events.HandshakeCompleted):
                ready = True
            elif isinstance(event, events.StreamDataReceived):
                reader = readers.setdefault(event.stream_id + 1_000_000, FrameReader())
                reader.feed(event.data)
                if event.end_stream:
                    readers.pop(event.stream_id + 1_000_000).finish()
                    in_flight.discard(event.stream_id)
                    completed += 1

    def step() -> bool:
        now = clock()
        moved = False
        for data, _ in client.datagrams_to_send(now):
            server.receive_datagram(data, client_address, now)
            moved = True
        server_events()
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, server_address, now)
            moved = True
        client_events()
        if not moved:  # wait for the earliest aioquic timer, as a real endpoint would
            timers = [(t, c) for c in (client, server) if (t := c.get_timer()) is not None]
            if timers:
                at, connection = min(timers, key=lambda tc: tc[0])
                delay = at - clock()
                if delay > 0:
                    time.sleep(delay)
                connection.handle_timer(clock())
        return moved

    while not ready:
        step()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline or in_flight:
        while len(in_flight) < workload.depth and time.perf_counter() < deadline:
            stream_id = client.get_next_available_stream_id()
            client.send_stream_data(stream_id, request, end_stream=True)
            in_flight.add(stream_id)
        step()
    elapsed = time.perf_counter() - start
    return Result(completed, elapsed, completed * (workload.request_size + workload.response_size))


def _measure(run: Callable[[], Result]) -> tuple[Result, float]:
    cpu = time.process_time()
    result = run()
    return result, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="time per transport and workload")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices, so load drift hits all alike")
    parser.add_argument("--gossip", action="store_true", help="then measure a 4-node origin (bench/gossip.py)")
    args = parser.parse_args()
    setup = Setup()
    slice_seconds = args.seconds / args.rounds
    print(f"{'workload':<11} {'transport':<10} {'msgs/s':>9} {'MB/s':>8} {'CPU us/msg':>11}")
    for workload in WORKLOADS:
        runs: dict[str, Callable[[], Result]] = {
            "ours": functools.partial(trio.run, bench_ours, setup, workload, slice_seconds),
            "tls-tcp": functools.partial(trio.run, bench_tls_tcp, setup, workload, slice_seconds),
            "in-memory": functools.partial(bench_in_memory, setup, workload, slice_seconds),
        }
        totals = {name: [0, 0.0, 0, 0.0] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                result, cpu = _measure(run)
                total = totals[name]
                total[0] += result.messages
                total[1] += result.seconds
                total[2] += result.payload_bytes
                total[3] += cpu
        rates = {}
        for name, (messages, seconds, payload, cpu) in totals.items():
            rates[name] = messages / seconds
            cost = cpu / max(messages, 1) * 1e6
            print(f"{workload.name:<11} {name:<10} {rates[name]:>9.0f} {payload / seconds / 1e6:>8.2f} {cost:>11.0f}")
        ours_cost = totals["ours"][3] / max(totals["ours"][0], 1)
        memory_cost = totals["in-memory"][3] / max(totals["in-memory"][0], 1)
        print(
            f"{workload.name:<11} ours / in-memory: {rates['ours'] / rates['in-memory']:.0%} of the rate, "
            f"{memory_cost / ours_cost:.0%} by CPU per message\n"
        )
    if args.gossip:
        import gossip  # bench/gossip.py, next to this file

        gossip.run_and_print(nodes=4, seconds=20.0, warmup=5.0, rate=10.0)


if __name__ == "__main__":
    main()
