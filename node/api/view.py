"""The boundary between the API and the node: what the engine hands over, and what it calls back.

The engine and the API run in the same Trio thread, so reads of the hashgraph need no lock; they
must simply never keep a reference across an `await` (the graph may move on, or be pruned).
Everything here is synchronous except `wait_receipt`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import trio

from node import __version__, codec
from node.actions.errors import ActionError, Reason
from node.actions.model import BlockResult, SignalOutput
from node.actions.state import StateReader
from node.actions.submit import admit
from node.api.errors import Unavailable
from node.api.metrics import NodeMetrics
from node.api.signals import Signal, SignalHub
from node.consensus.hashgraph import Hashgraph
from node.storage.chain import ChainStore

Submit = Callable[[bytes], bytes]
JSONDict = dict[str, Any]

MAX_REMEMBERED_RECEIPTS = 10_000  # recent receipts kept in memory for `?wait=true`
MAX_PENDING_LATENCIES = 100_000  # submissions whose receipt has not come yet


def jsonable(value: Any) -> Any:
    """Msgpack-decoded data as JSON: bytes become hex, map keys strings; ints stay ints."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {(k.hex() if isinstance(k, bytes) else str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def admitting_submit(
    pool: Callable[[bytes], object],
    *,
    origin: str,
    state: StateReader,
    now_ns: Callable[[], int],
) -> Submit:
    """A `submit` for NodeView: `admit` the envelope (raises ActionError), then hand it to the pool.

    `pool` is the engine's `submit(transaction)`; whatever it raises (e.g. TransactionRefused when
    the pool is full) reaches the API, which answers 503.
    """

    def submit(wire: bytes) -> bytes:
        envelope = admit(wire, origin=origin, now_ns=now_ns(), state=state)
        pool(wire)
        return envelope.action_id

    return submit


class _Waiter:
    """One event shared by every request waiting for the same receipt, and how many wait."""

    __slots__ = ("event", "count", "receipt")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.count = 0
        self.receipt: JSONDict | None = None


class NodeView:
    """What the API may read and call.  Built by the engine; the API never reaches further."""

    def __init__(
        self,
        store: ChainStore,
        *,
        node_id: str,
        origin: str,
        phase: Callable[[], str],
        graph: Hashgraph | None = None,
        peers: Callable[[], list[JSONDict]] | None = None,
        genesis_peers: Sequence[JSONDict] = (),
        submit: Submit | None = None,
        version: str = __version__,
        catching_up: Callable[[], bool] | None = None,
        executors: Callable[[], JSONDict] | None = None,
        federation: Callable[[], JSONDict] | None = None,
        certificates: Callable[[], list[JSONDict]] | None = None,
        decode_block: Callable[[bytes], JSONDict] | None = None,
        clock: Callable[[], float] = time.monotonic,
        signal_queue: int = 256,
    ) -> None:
        self.store = store
        self.graph = graph  # the engine sets it (`view.graph = g`) once consensus runs
        # Set by the engine: returns once a submitted envelope is inside one of the node's own
        # events on disk; `POST /actions` acknowledges (202) only then, so a crash loses nothing
        # that was acknowledged.
        self.wait_carried: Callable[[bytes], Awaitable[None]] | None = None
        # Called with (seconds from submit to receipt, receipt) for actions submitted here.
        self.latency_listeners: list[Callable[[float, JSONDict], None]] = []
        self.node_id = node_id
        self.origin = origin
        self.version = version
        self._phase = phase
        self._peers = peers
        self.genesis_peers = [dict(p) for p in genesis_peers]
        self.submit = submit  # None: the node takes no actions yet (503)
        self._catching_up = catching_up
        self.executors_source = executors
        self.federation_source = federation
        self.certificates_source = certificates
        self.history_source: Callable[[], list[JSONDict]] | None = None  # the peer-set history (membership)
        self.evidence_source: Callable[[], list[JSONDict]] | None = None  # committed fork proofs (evictions)
        self.decode_block = decode_block
        self._clock = clock
        self.started_at = clock()
        self.metrics = NodeMetrics(node_id=node_id, origin=origin, version=version)
        self.signals = SignalHub(queue_per_member=signal_queue, on_drop=self.metrics.signals_dropped.inc)
        self._receipts: OrderedDict[bytes, JSONDict] = OrderedDict()
        self._waiters: dict[bytes, _Waiter] = {}
        self._submitted_at: OrderedDict[bytes, float] = OrderedDict()

    # -- what the API reads ---------------------------------------------------------------------

    def phase(self) -> str:
        return str(self._phase())

    def peers(self) -> list[JSONDict]:
        return list(self._peers()) if self._peers is not None else []

    def ready(self) -> bool:
        return self.phase() in ("consensus", "federated")

    def catching_up(self) -> bool:
        if self._catching_up is not None:
            return bool(self._catching_up())
        return not self.ready()

    def uptime(self) -> float:
        return self._clock() - self.started_at

    def latest_block(self) -> int | None:
        applied = self.store.last_applied()
        return applied.block_index if applied is not None else self.store.last_block_index()

    def latest_round(self) -> int | None:
        if self.graph is not None and self.graph.last_round >= 0:
            return self.graph.last_round
        return self.store.last_round()

    def refresh_gauges(self) -> None:
        """Mirror readable state into the gauges (called before a scrape)."""
        m = self.metrics
        m.set_phase(self.phase())
        m.peers.set(len(self.peers()))
        latest_block, latest_round = self.latest_block(), self.latest_round()
        m.latest_block.set(-1 if latest_block is None else latest_block)
        m.latest_round.set(-1 if latest_round is None else latest_round)
        m.signal_subscribers.set(self.signals.subscriber_count())

    # -- actions and receipts -------------------------------------------------------------------

    def submit_action(self, wire: bytes) -> bytes:
        """Hand envelope bytes to the engine; raises ActionError (bad input) or ApiError."""
        if self.submit is None:
            raise Unavailable("this node does not take actions yet", reason="not_ready")
        try:
            action_id = self.submit(wire)
        except ActionError as exc:
            self.metrics.actions_refused.labels(exc.reason.value).inc()
            raise
        self.metrics.actions_submitted.inc()
        if action_id not in self._receipts:
            self._submitted_at[action_id] = self._clock()
            while len(self._submitted_at) > MAX_PENDING_LATENCIES:
                self._submitted_at.popitem(last=False)
        return action_id

    def receipt_ready(self, action_id: bytes, receipt: JSONDict) -> None:
        """Called by the engine when the block holding `action_id` was applied and stored."""
        self._receipts[action_id] = receipt
        self._receipts.move_to_end(action_id)
        while len(self._receipts) > MAX_REMEMBERED_RECEIPTS:
            self._receipts.popitem(last=False)
        started = self._submitted_at.pop(action_id, None)
        if started is not None:
            latency = max(0.0, self._clock() - started)
            self.metrics.action_latency.observe(latency)
            for listener in self.latency_listeners:
                listener(latency, receipt)
        waiter = self._waiters.pop(action_id, None)
        if waiter is not None:
            waiter.receipt = receipt
            waiter.event.set()

    def lookup_receipt(self, action_id: bytes) -> JSONDict | None:
        """A receipt from memory, else from storage (receipts of blocks applied before a restart)."""
        known = self._receipts.get(action_id)
        if known is not None:
            return known
        raw = self.store.get_receipt(action_id)
        if raw is None:
            return None
        try:
            stored = codec.unpack(raw)
        except codec.DecodeError:
            return {"action_id": action_id.hex(), "stored": raw.hex()}
        out: JSONDict = {"action_id": action_id.hex()}
        if isinstance(stored, dict):
            out.update(jsonable(stored))
        else:
            out["stored"] = jsonable(stored)
        return out

    async def wait_receipt(self, action_id: bytes) -> JSONDict:
        """The receipt of `action_id`, once its block is applied (bound the wait with a cancel scope)."""
        receipt = self.lookup_receipt(action_id)
        if receipt is not None:
            return receipt
        waiter = self._waiters.get(action_id)
        if waiter is None:
            waiter = self._waiters[action_id] = _Waiter()
        waiter.count += 1
        try:
            await waiter.event.wait()
            assert waiter.receipt is not None  # set together with the event
            return waiter.receipt
        finally:
            waiter.count -= 1
            if waiter.count == 0 and self._waiters.get(action_id) is waiter:
                del self._waiters[action_id]  # the last one waiting leaves: no leak on timeouts

    def block_applied(self, index: int, result: BlockResult) -> None:
        """Everything the API learns from one applied block; call it after `commit_block`.

        Counts the block, announces receipts (first receipt of an id in the block wins, and a
        `replayed_nonce` refusal never hides the receipt of the action that did execute, as in
        `BlockResult.receipts_by_action`) and delivers signals to the point's current members.
        """
        self.metrics.blocks_committed.inc()
        announced: set[bytes] = set()
        for position, receipt in enumerate(result.receipts):
            action_id = receipt.action_id
            if not action_id or receipt.reason is Reason.REPLAYED_NONCE or action_id in announced:
                continue
            announced.add(action_id)
            self.receipt_ready(action_id, {**receipt.to_dict(), "block": index, "position": position})
        for output in result.outputs:
            if isinstance(output, SignalOutput):
                self.publish_signal(output.point, self.point_members(output.point), output.to_dict())

    def point_members(self, point: str) -> list[str]:
        """Actor ids of a point's members, from the applied state (`member/<point>/<actor id>`)."""
        prefix = b"member/" + point.encode() + b"/"
        return [key[len(prefix):].decode() for key, _ in self.store.state.iterate(prefix)]

    # -- signals --------------------------------------------------------------------------------

    def publish_signal(self, point: str, member_ids: Iterable[str], signal: Signal) -> int:
        """Deliver a signal (`SignalOutput.to_dict()`) to the point's members; returns live deliveries."""
        payload = dict(signal)
        payload.setdefault("point", point)
        return self.signals.publish(member_ids, payload)
