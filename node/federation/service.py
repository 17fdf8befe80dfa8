"""The federation service: DNS for our origin, a QUIC endpoint towards the others, and the
carrying of cross-origin requests and their agreed responses (see `chain_actions` for the flow).

Runs beside the consensus engine (reached through `engine_of`). It
- answers DNS for our origin (`--dns`) from the chain: each node records its federation endpoint
  and CA pin with `/federation/endpoint`, and the zone lists the recorded nodes;
- resolves the configured origins through DNS (`federation_nameservers`), records their node ids
  and pins on the chain (`/federation/origin`) and accepts their nodes on its own endpoint by pin;
- takes users' actions that target another origin at the API and commits them as
  `/federation/request` records; the node that committed one carries it to the target origin
  (`Carrier`), which answers once its chain decided it (`Answerer`); the answer goes back into our
  chain as `/federation/response`, or a `/federation/timeout` closes the request;
- fires the FEDERATION_UP trigger once the other origins are resolved and our chain has a block
  signed by a supermajority.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgpack
import structlog
import trio

from node.actions.envelope import Envelope
from node.actions.errors import EnvelopeError
from node.actions.model import SignalOutput
from node.config import split_host_port
from node.consensus.blocks import Block
from node.consensus.event import BlockSignature
from node.engine.access import engine_of
from node.engine.apply import AppliedBlock
from node.engine.paths import ca_certificate_path
from node.engine.records import decode_block
from node.federation.answerer import Answerer
from node.federation.carrier import Carrier, Forwarder
from node.federation.chain_actions import (
    ENDPOINT_PATH,
    INCOMING_PATH,
    ORIGIN_PATH,
    REQUEST_PATH,
    RESPONSE_PATH,
    TIMEOUT_PATH,
    endpoint_key,
    incoming_key,
    origin_vote_key,
    outgoing_key,
)
from node.federation.directory import OriginDirectory
from node.federation.errors import FederationUsageError, ZoneUnavailable
from node.federation.pinning import PinnedOrigins
from node.federation.proofs import BlockProof
from node.federation.records import OriginRecords, ca_pin
from node.federation.resolver import OriginResolver
from node.federation.responder import DnsResponder
from node.federation.wiring import (
    admit_remote,
    carried_envelope,
    federation_records,
    receipt_dict,
    recorded_origin,
    state_obj,
    zone_from_state,
)
from node.runtime.phases import Phase, Trigger
from node.runtime.service import NodeContext
from node.transport import Endpoint, Limits, TlsIdentity
from node.trust import load_certificate

if TYPE_CHECKING:
    from node.engine.service import ConsensusEngine

log = structlog.get_logger("federation")

REFRESH_S = 5.0  # how often the other origins are resolved again (answers are cached for their TTL)
RECORD_AGAIN_S = 10.0  # a record of ours not yet on the chain is submitted again after this
CHECK_S = 0.5
RECENT_SHOWN = 50  # requests listed by GET /federation


class FederationService:
    name = "federation"
    kind = "federated"

    def __init__(self, ctx: NodeContext) -> None:
        settings = ctx.settings
        if settings.federation_listen is None:
            raise FederationUsageError("federation needs federation_listen (HOST:PORT of its QUIC endpoint)")
        self.ctx = ctx
        self.settings = settings
        pins: dict[str, set[bytes]] = {}
        for item in settings.federation_pins:
            origin, _, pin = item.partition("=")
            pins.setdefault(origin, set()).add(bytes.fromhex(pin))
        nameservers = [split_host_port(a) for a in settings.federation_nameservers]
        self.resolver = OriginResolver(
            nameservers, clock=trio.current_time, pins=pins, trust_dns_pins=settings.federation_trust_dns,
            attempts=2, timeout=0.5,
        )
        self.directory = OriginDirectory(self.resolver, PinnedOrigins({}), settings.federation_origins)
        self.timeout_ms = int(settings.federation_timeout * 1000)
        self.engine: ConsensusEngine | None = None
        self.endpoint: Endpoint | None = None
        self.responder: DnsResponder | None = None
        self.records: OriginRecords | None = None
        self.outcomes: dict[bytes, dict[str, Any]] = {}  # request id -> final receipt (this run)
        self.pending: dict[bytes, int] = {}  # request id -> deadline (consensus ns)
        self.opened: dict[bytes, tuple[Envelope, Block]] = {}  # pending requests and the block committing them
        self._timeouts_sent: dict[bytes, float] = {}
        self._recorded_at: dict[str, float] = {}
        self._failures: dict[str, str] = {}
        self._closed: dict[bytes, trio.Event] = {}
        self._proved = False
        self.carrier: Carrier | None = None
        self.answerer: Answerer | None = None
        self.forwarder: Forwarder | None = None

    # -- start ----------------------------------------------------------------------------------------

    def _identity(self, engine: ConsensusEngine) -> tuple[TlsIdentity, bytes]:
        """Our CA-issued identity (as the engine holds it) with the CA certificate in its chain, and our pin."""
        identity = engine.endpoint.identity if engine.endpoint is not None else None
        if identity is None:
            raise FederationUsageError("the engine has no endpoint")
        ca = None
        if engine.trust is not None and engine.trust.ca is not None:
            ca = engine.trust.ca.authority.ca.certificate
        elif ca_certificate_path(self.ctx.home.root).exists():
            ca = load_certificate(ca_certificate_path(self.ctx.home.root).read_bytes())
        if ca is None:
            raise FederationUsageError("federation needs a CA-issued certificate (no CA certificate in the home)")
        chain = identity.chain if ca in identity.chain else (*identity.chain, ca)
        return TlsIdentity(identity.certificate, identity.private_key, chain), ca_pin(ca)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        engine = self.engine = await engine_of(self.ctx)
        identity, pin = self._identity(engine)
        self.pin = pin
        assert self.settings.federation_listen is not None
        self.endpoint = Endpoint(
            bind=split_host_port(self.settings.federation_listen), identity=identity,
            authenticator=PinnedOrigins({}), handler=self._handle, limits=Limits(request_timeout=8.0),
        )
        self.carrier = Carrier(self, engine)
        self.answerer = Answerer(self, engine)
        self.forwarder = Forwarder(self, engine)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            address = await nursery.start(self.endpoint.run)
            self.advertised = address
            self._refresh_zone()
            if self.settings.dns is not None:
                self.responder = DnsResponder(split_host_port(self.settings.dns), self._zone)
                dns_at = await nursery.start(self.responder.run)
                log.info("dns responder up", listen=f"{dns_at[0]}:{dns_at[1]}")
            self._restore_pending()
            engine.block_listeners.append(self._on_block)
            if engine.view is not None:
                view = engine.view
                plain_submit = view.submit
                view.submit = lambda wire: self._submit(wire, plain_submit)
                view.federation_source = self.describe
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(self._check_loop)
            log.info("federation up", listen=f"{address[0]}:{address[1]}", origins=list(self.directory.origins))
            task_status.started()

    # -- DNS for our origin ---------------------------------------------------------------------------

    def _zone(self) -> OriginRecords:
        if self.records is None:
            raise ZoneUnavailable("too few federation endpoints of our origin are on the chain yet")
        return self.records

    def _refresh_zone(self) -> None:
        engine = self.engine
        assert engine is not None and engine.chain is not None
        members = [m.node_id for m in engine.genesis.members]
        self.records = zone_from_state(
            engine.chain.state, engine.origin, members, quorum=engine.current_peers.supermajority
        )

    # -- the API: users' actions for other origins -----------------------------------------------------

    def _resolvable(self, origin: str) -> str | None:
        if origin not in self.directory.origins:
            return "not an origin this node federates with"
        if self.directory.known(origin) is None:
            return self._failures.get(origin, "not resolved yet")
        return None

    def _submit(self, wire: bytes, plain: Any) -> bytes:
        assert self.engine is not None
        envelope = admit_remote(wire, origin=self.engine.origin, resolvable=self._resolvable)
        if envelope is None:
            return bytes(plain(wire))
        if envelope.action_id in self.pending or envelope.action_id in self.outcomes:
            return envelope.action_id  # a retry of a request committed here: its receipt is (or will be) the same
        self.engine.submit_node_action(REQUEST_PATH, {"envelope": wire.hex(), "timeout_ms": self.timeout_ms})
        return envelope.action_id

    # -- blocks applied -------------------------------------------------------------------------------

    def _on_block(self, applied: AppliedBlock) -> None:
        engine = self.engine
        assert engine is not None
        block = applied.block
        if any(key.startswith(b"fed/endpoint/") for key in applied.result.writes):
            self._refresh_zone()
        for record in federation_records(block.transactions, applied.result.receipts):
            path, receipt = record.envelope.path, record.receipt
            if path == REQUEST_PATH:
                carried = carried_envelope(record.envelope)
                if carried is None:
                    continue
                if not receipt.ok:
                    # Not committed: the user's action fails with the chain's reason.
                    if carried.action_id not in self.pending and carried.action_id not in self.outcomes:
                        self._deliver(carried.action_id, {"ok": False, "reason": str(receipt.reason),
                                                          "result": None, "detail": receipt.detail})
                    continue
                self._opened(carried, block, int(receipt.result["deadline_ns"]),
                             ours=record.envelope.actor_key == self.ctx.key.public)
            elif path in (RESPONSE_PATH, TIMEOUT_PATH) and receipt.ok:
                request_id = bytes.fromhex(receipt.result["request_id"])
                self.pending.pop(request_id, None)
                self.opened.pop(request_id, None)
                self._deliver(request_id, receipt.result["receipt"])
            elif path == INCOMING_PATH and receipt.ok and self.answerer is not None:
                self.answerer.decided(bytes.fromhex(receipt.result["request_id"]), receipt.result["receipt"], block)
        if self.forwarder is not None:
            for output in applied.result.outputs:
                if isinstance(output, SignalOutput) and "@" not in output.point:
                    self.forwarder.signal_posted(output, block)
        self._sweep(block.timestamp)

    def _opened(self, envelope: Envelope, block: Block, deadline: int, *, ours: bool) -> None:
        """A request our chain committed: every node tracks it (for timeouts and as a fallback
        carrier); the node that committed it carries it at once."""
        self.pending[envelope.action_id] = deadline
        self.opened[envelope.action_id] = (envelope, block)
        if ours and self.carrier is not None:
            self.carrier.carry(envelope, block)

    def _restore_pending(self) -> None:
        """Requests still open on our chain when this node (re)started: track them again."""
        engine = self.engine
        assert engine is not None and engine.chain is not None
        prefix = b"fed/out/"
        for key, raw in engine.chain.state.iterate(prefix):
            record = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            if not isinstance(record, dict) or record.get("status") != "pending":
                continue
            stored = engine.chain.get_block(record["block"])
            if stored is None:
                continue
            block = decode_block(stored)
            request_id = bytes.fromhex(key[len(prefix):].decode())
            for tx in block.transactions:
                try:
                    committed = Envelope.from_wire(tx)
                except EnvelopeError:
                    continue
                carried = carried_envelope(committed) if committed.path == REQUEST_PATH else None
                if carried is not None and carried.action_id == request_id:
                    self._opened(carried, block, record["deadline"], ours=record["sender"] == self.ctx.node_id)
                    break

    def _fallback_carriers(self, now_ns: int) -> None:
        """Carry requests still open after half their time, whoever committed them (it may be down)."""
        if self.carrier is None:
            return
        for request_id, (envelope, block) in list(self.opened.items()):
            deadline = self.pending.get(request_id)
            if deadline is not None and now_ns >= (block.timestamp + deadline) // 2:
                self.carrier.carry(envelope, block)

    def closed(self, request_id: bytes) -> trio.Event:
        """Set once the request is closed on our chain (answered or timed out)."""
        event = self._closed.get(request_id)
        if event is None:
            event = self._closed[request_id] = trio.Event()
            if request_id in self.outcomes:
                event.set()
        return event

    def _deliver(self, request_id: bytes, receipt: dict[str, Any]) -> None:
        self.outcomes[request_id] = receipt
        event = self._closed.pop(request_id, None)
        if event is not None:
            event.set()
        while len(self.outcomes) > 10_000:
            self.outcomes.pop(next(iter(self.outcomes)))
        if self.engine is not None and self.engine.view is not None:
            self.engine.view.receipt_ready(request_id, receipt_dict(request_id, receipt))
        log.info("federated request closed", request=request_id.hex()[:16], ok=receipt["ok"],
                 reason=receipt["reason"])

    def _sweep(self, now_ns: int) -> None:
        """Submit a timeout for every pending request past its deadline (by `now_ns`)."""
        assert self.engine is not None
        again = time.monotonic() - RECORD_AGAIN_S
        for request_id, deadline in list(self.pending.items()):
            if now_ns >= deadline and self._timeouts_sent.get(request_id, 0.0) < again:
                self._timeouts_sent[request_id] = time.monotonic()
                self.engine.submit_node_action(TIMEOUT_PATH, {"request_id": request_id.hex()})
        for request_id in [r for r in self._timeouts_sent if r not in self.pending]:
            del self._timeouts_sent[request_id]

    # -- proofs of our blocks -------------------------------------------------------------------------

    def proof_of(self, block: Block) -> BlockProof | None:
        """Our block with a supermajority of valid signatures, if we have them yet."""
        engine = self.engine
        assert engine is not None
        book = engine.graph.signatures
        if book.is_proof(block.index):
            return BlockProof(block, tuple(book.signatures(block.index)))
        if engine.chain is not None:  # an older block: its signatures are on disk
            stored = engine.chain.block_signatures(block.index)
            if len(stored) >= engine.current_peers.supermajority:
                return BlockProof(block, tuple(BlockSignature(v, block.index, s) for v, s in stored.items()))
        return None

    # -- the other origins ----------------------------------------------------------------------------

    async def _handle(self, peer: Any, payload: bytes) -> bytes:
        assert self.answerer is not None
        return await self.answerer.handle(peer, payload)

    async def _refresh_loop(self) -> None:
        assert self.endpoint is not None and self.engine is not None
        while True:
            failures = await self.directory.refresh()
            self._failures = {origin: str(exc) for origin, exc in failures.items()}
            self.endpoint.set_authenticator(self.directory.pinned_policy())
            self.endpoint.set_identity(self._identity(self.engine)[0])  # follows certificate renewals
            self._record_ours()
            await trio.sleep(REFRESH_S)

    def _record_ours(self) -> None:
        """Put what DNS told us, and our own endpoint, on the chain when the chain differs."""
        engine = self.engine
        assert engine is not None and engine.chain is not None
        state, now = engine.chain.state, time.monotonic()
        host, port = self.advertised
        mine = {"host": host, "port": port, "pin": self.pin.hex()}
        if state_obj(state, endpoint_key(engine.ctx.key.fingerprint)) != mine:
            self._submit_record("endpoint", ENDPOINT_PATH, mine, now)
        for origin in self.directory.origins:
            found = self.directory.known(origin)
            if found is None:
                continue
            wanted = {"nodes": sorted({e.node_id for e in found.endpoints}),
                      "pins": sorted(p.hex() for p in found.ca_pins)}
            recorded = recorded_origin(state, origin)
            voted = state_obj(state, origin_vote_key(origin, engine.ctx.key.fingerprint))
            if voted != wanted and (recorded is None or {k: recorded.get(k) for k in wanted} != wanted):
                self._submit_record(f"origin:{origin}", ORIGIN_PATH, {"origin": origin, **wanted}, now)

    def _submit_record(self, what: str, path: str, args: dict[str, Any], now: float) -> None:
        if now - self._recorded_at.get(what, -RECORD_AGAIN_S) < RECORD_AGAIN_S:
            return
        self._recorded_at[what] = now
        assert self.engine is not None
        self.engine.submit_node_action(path, args)

    async def _check_loop(self) -> None:
        """Timeouts by the wall clock when our chain is idle, and the FEDERATION_UP trigger."""
        engine = self.engine
        assert engine is not None
        while True:
            self._sweep(time.time_ns())
            self._fallback_carriers(time.time_ns())
            up = self.federation_ready()
            phases = self.ctx.phases
            if up and phases.can_fire(Trigger.FEDERATION_UP):
                phases.fire(Trigger.FEDERATION_UP)
                log.info("federation reached", origins=list(self.directory.origins))
            elif not up and phases.phase is Phase.FEDERATED and phases.can_fire(Trigger.FEDERATION_LOST):
                phases.fire(Trigger.FEDERATION_LOST)
            await trio.sleep(CHECK_S)

    def federation_ready(self) -> bool:
        engine = self.engine
        assert engine is not None and engine.chain is not None
        last = engine.last_block
        # Our chain must be able to prove its blocks: one block signed by a supermajority is enough.
        self._proved = self._proved or (last is not None and self.proof_of(last) is not None)
        if not self._proved:
            return False
        return all(
            self.directory.known(o) is not None and recorded_origin(engine.chain.state, o) is not None
            for o in self.directory.origins
        )

    def _recent_records(self, request_ids: list[bytes], key: Any) -> dict[str, Any]:
        """What our chain's state says of the newest requests (read from the state, not from memory)."""
        engine = self.engine
        if engine is None or engine.chain is None:
            return {}
        out = {}
        for request_id in request_ids[-RECENT_SHOWN:]:
            record = state_obj(engine.chain.state, key(request_id))
            if isinstance(record, dict):
                out[request_id.hex()] = {k: v for k, v in record.items() if k != "args"}
        return out

    def describe(self) -> dict[str, Any]:
        origins = {}
        for origin in self.directory.origins:
            found = self.directory.known(origin)
            origins[origin] = {
                "resolved": found is not None,
                "source": None if found is None else found.source,
                "nodes": [] if found is None else [f"{e.node_id}@{e.host}:{e.port}" for e in found.endpoints],
                "error": self._failures.get(origin),
            }
        return {
            "origin": None if self.engine is None else self.engine.origin,
            "listen": None if self.endpoint is None else f"{self.advertised[0]}:{self.advertised[1]}",
            "dns": None if self.responder is None else vars(self.responder.stats),
            "origins": origins,
            "requests": self._recent_records(list(self.pending) + list(self.outcomes), outgoing_key),
            "incoming": self._recent_records(list(self.answerer.decided_ids()) if self.answerer else [], incoming_key),
            "pending": len(self.pending),
            "closed": len(self.outcomes),
            "up": self.ctx.phases.phase is Phase.FEDERATED,
        }


__all__ = ["FederationService"]
