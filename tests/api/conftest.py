"""A real node for the API tests: ChainStore on disk, a hashgraph of signed events, applied blocks.

Nothing is faked: events are Ed25519-signed and inserted into a real `Hashgraph` (one member
forks once), blocks are executed with `execute_block` and stored with `ChainStore.commit_block`,
and the API runs on hypercorn bound to 127.0.0.1 port 0.  A small WebSocket client speaks
wsproto over a trio TCP stream (hypercorn's own dependency: no extra package).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from node import codec
from node.actions import BlockContext, Envelope, SignalOutput, execute_block
from node.api import ApiService, NodeView
from node.api.view import admitting_submit
from node.consensus.blocks import Block
from node.consensus.election import ElectionRecord
from node.consensus.event import Event
from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet
from node.crypto import PrivateKey
from node.runtime.home import Home
from node.storage.chain import ChainStore

ORIGIN = "alpha.example"
T0 = 1_700_000_000 * 10**9
SECOND = 10**9


class Actor:
    def __init__(self, seed: bytes) -> None:
        self.key = PrivateKey.from_seed(seed)
        self.nonce = 0

    @property
    def id(self) -> str:
        return self.key.fingerprint

    def env(self, path: str, args: dict[str, Any] | None = None, *, origin: str = ORIGIN) -> Envelope:
        self.nonce += 1
        return Envelope.sign(self.key, origin=origin, path=path, args=args or {}, nonce=self.nonce,
                             expiry_ns=T0 + 3600 * SECOND)

    def tx(self, path: str, args: dict[str, Any] | None = None, **kw: Any) -> bytes:
        return self.env(path, args, **kw).to_wire()


@dataclass
class Node:
    """What the engine would hold, reduced to what the API tests need."""

    store: ChainStore
    graph: Hashgraph
    view: NodeView
    keys: list[PrivateKey]
    alice: Actor
    bob: Actor
    events: list[Event]
    fork_pair: tuple[Event, Event]
    pool: list[bytes] = field(default_factory=list)
    now_ns: int = T0 + 10 * SECOND
    signals_sent: list[dict[str, Any]] = field(default_factory=list)

    def apply_block(self, txs: list[bytes]) -> list[dict[str, Any]]:
        """Execute, store and announce one block, as the engine does; returns the receipts."""
        last = self.store.last_applied()
        index = 0 if last is None else last.block_index + 1
        ts = T0 + (index + 1) * SECOND
        result = execute_block(self.store.state, txs, BlockContext(index, ts, ORIGIN))
        block = Block(index, index + 1, ts, tuple(txs), (), PeerSet.of(k.public for k in self.keys).hash,
                      result.state_hash)
        self.store.commit_block(index, codec.pack(block.body()), result.writes, result.receipts_by_action(index),
                                result.state_hash)
        self.view.block_applied(index, result)
        for out in result.outputs:
            if isinstance(out, SignalOutput):
                self.signals_sent.append(out.to_dict())
        return [{**r.to_dict(), "block": index} for r in result.receipts]

    def apply_pool(self) -> list[dict[str, Any]]:
        txs, self.pool[:] = list(self.pool), []
        return self.apply_block(txs)


def build_node(path: Any, *, phase: str = "consensus") -> Node:
    keys = [PrivateKey.from_seed(b"api-member-%d" % i) for i in range(4)]
    members = [k.public for k in keys]
    graph = Hashgraph(PeerSchedule(PeerSet.of(members)))
    events = list(random_gossip(members, 160, random.Random(7), keys={k.public: k for k in keys}))
    for e in events:
        graph.insert(e)
    # keys[0] forks: two signed events on the same self-parent.
    head0, head1 = graph.last_event_of(keys[0].public), graph.last_event_of(keys[1].public)
    assert head0 is not None and head1 is not None
    fork_pair = tuple(
        Event.create(keys[0], index=head0.index + 1, self_parent=head0.hash, other_parent=head1.hash,
                     timestamp=head0.timestamp + 1, transactions=(tag,))
        for tag in (b"branch-a", b"branch-b")
    )
    for e in fork_pair:
        graph.insert(e)
    events.extend(fork_pair)
    done = graph.run_consensus()
    assert done, "the test graph should decide some rounds"
    store = ChainStore.open(path / "chain", sync=False)
    store.put_events((e.hash, e.creator, e.index, e.to_wire()) for e in events)
    for item in done:
        store.put_round(item.round_received, codec.pack([item.round_received, list(item.event_hashes)]))
    store.put_election(10, codec.pack(ElectionRecord(10, b"\x07" * 32, (keys[1].public, keys[2].public)).to_obj()))
    peers = [{"id": k.fingerprint, "address": f"127.0.0.1:{9000 + i}", "connected": True}
             for i, k in enumerate(keys[1:])]
    genesis = [{"id": k.fingerprint, "public_key": k.public.hex(), "address": f"127.0.0.1:{9000 + i}"}
               for i, k in enumerate(keys)]
    holder: dict[str, Node] = {}
    submit = admitting_submit(lambda wire: holder["node"].pool.append(wire), origin=ORIGIN, state=store.state,
                              now_ns=lambda: holder["node"].now_ns)
    view = NodeView(store, node_id=keys[0].fingerprint, origin=ORIGIN, phase=lambda: phase, graph=graph,
                    peers=lambda: peers, genesis_peers=genesis, submit=submit)
    view.metrics.events_inserted.inc(len(events))
    view.metrics.rounds_decided.inc(len(done))
    node = Node(store, graph, view, keys, Actor(b"alice"), Actor(b"bob"), events, fork_pair)  # type: ignore[arg-type]
    holder["node"] = node
    a, b = node.alice, node.bob
    node.apply_block([a.tx("/users/create", {"name": "alice"}), b.tx("/users/create", {"name": "bob"})])
    node.apply_block([a.tx("/points/create", {"point": "lobby"}), b.tx("/points/join", {"point": "lobby"})])
    node.apply_block([a.tx("/signals/post", {"point": "lobby", "body": {"hello": 1}})])
    return node


@pytest.fixture
def node(tmp_path: Any) -> Any:
    built = build_node(tmp_path)
    yield built
    built.store.close()


@dataclass
class Running:
    url: str
    node: Node
    service: ApiService
    home: Home


@pytest.fixture
async def api(node: Node, tmp_path: Any, nursery: trio.Nursery) -> Running:
    home = Home(tmp_path / "home")
    service = ApiService(node.view, bind="127.0.0.1:0", home=home)
    url = await nursery.start(service.run)
    return Running(url, node, service, home)


class WSClient:
    """A minimal WebSocket client (wsproto over a trio TCP stream) for the `/signals` tests."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.closed: CloseConnection | None = None
        self._text: list[str] = []

    @staticmethod
    async def connect(url: str, target: str) -> WSClient | int:
        """The client, or the HTTP status if the server refused the upgrade."""
        host, port = url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=f"{host}:{port}", target=target)))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError("server closed during the handshake")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return WSClient(stream, ws)
                if isinstance(event, RejectConnection):
                    await stream.aclose()
                    return int(event.status_code)
                if isinstance(event, RejectData):
                    continue

    async def receive_json(self) -> Any:
        """The next text frame as JSON; None once the server closed."""
        while True:
            if self._text:
                return json.loads(self._text.pop(0))
            if self.closed is not None:
                return None
            data = await self.stream.receive_some(65536)
            if not data:
                self.closed = CloseConnection(1006)
                return None
            self.ws.receive_data(data)
            partial = ""
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    partial += event.data
                    if event.message_finished:
                        self._text.append(partial)
                        partial = ""
                elif isinstance(event, Ping):
                    await self.stream.send_all(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed = event
                    await self.stream.send_all(self.ws.send(event.response()))
                elif isinstance(event, Message):
                    continue

    async def aclose(self) -> None:
        if self.closed is None:
            try:
                await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await self.stream.aclose()


@pytest.fixture
def ws_connect():
    """`await ws_connect(url, target)`: a WSClient, or the HTTP status of a refused upgrade."""
    return WSClient.connect


@pytest.fixture(scope="session")
def node_builder():
    """`build_node(path)` for tests that need their own node (e.g. served from another thread)."""
    return build_node
