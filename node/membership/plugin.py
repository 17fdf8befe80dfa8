"""Registers the membership service with the daemon (found by `node.runtime.service.load_plugins`).

Once the engine runs, `MembershipService` puts the committed peer-set history into the graph (a
restart; see `restore_peer_sets` for why the engine should do it earlier), then follows every
applied block (`MembershipFollower`).  A joiner with an address is added to the gossip peers; the
follower is shared as `ctx.extras["membership"]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
import trio

from node.consensus.node_core import TransactionRefused
from node.engine.access import engine_of
from node.engine.records import RecordError, decode_block
from node.membership.follower import AppliedChange, MembershipFollower, restore_peer_sets
from node.membership.state import TICK_PATH, peer_set_history
from node.runtime.service import NodeContext, ServiceRegistry

if TYPE_CHECKING:
    from node.engine.service import ConsensusEngine
    from node.storage.chain import ChainStore

log = structlog.get_logger("membership")

SERVICE_NAME = "membership"
TICK_EVERY_S = 0.5
EXTRAS_KEY = "membership"


def round_of_block(chain: ChainStore) -> Any:
    """A function: block index -> its round received (None when the block is not stored)."""

    def find(index: int) -> int | None:
        raw = chain.get_block(index)
        if raw is None:
            return None
        try:
            return decode_block(raw).round_received
        except RecordError:
            return None

    return find


def history_of(engine: ConsensusEngine) -> list[dict[str, Any]]:
    """The peer-set history as JSON-like rows (what `/history` should answer)."""
    assert engine.chain is not None
    chain = engine.chain
    return [h.to_obj() for h in peer_set_history(chain.state, engine.peer_set, round_of_block(chain))]


def follow_gossip(engine: ConsensusEngine) -> Any:
    """A follower listener adding a joiner with an address to the gossip peers."""

    def changed(change: AppliedChange) -> None:
        gossip = engine.gossip
        if change.change != "join" or change.address is None or gossip is None:
            return
        from node.config import split_host_port
        from node.crypto import fingerprint
        from node.engine.gossip import PeerAddress

        if change.peer == engine.ctx.key.public or change.peer in gossip.by_key:
            return
        host, port = split_host_port(change.address)
        address = PeerAddress(fingerprint(change.peer), change.peer, host, port)
        gossip.by_key[change.peer] = address
        gossip.by_id[address.node_id] = address
        engine.peers.append(address)

    return changed


class MembershipService:
    name = SERVICE_NAME
    kind = "async"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.follower: MembershipFollower | None = None

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        engine = await engine_of(self.ctx)
        if engine.chain is None:
            return
        chain = engine.chain
        # No checkpoint from here to the listener's registration: no applied block is missed.
        restored = restore_peer_sets(engine.graph, chain.state, round_of_block(chain))
        follower = self.follower = MembershipFollower(
            engine.graph, chain.state, engine.submit_node_action, own_key=engine.ctx.key.public,
            store_peer_set=chain.put_peer_set,
        )
        follower.listeners.append(follow_gossip(engine))
        engine.block_listeners.append(follower.block_applied)
        self.ctx.extras[EXTRAS_KEY] = follower
        log.info("membership following the chain", restored_changes=restored.changes, late=list(restored.late))
        await self._keep_rounds_moving(engine, follower)

    async def _keep_rounds_moving(self, engine: ConsensusEngine, follower: MembershipFollower) -> None:
        """An idle origin creates no events, so a change would never come into force: while one
        waits, an idle node puts a tiny no-op record on the chain every so often."""
        while True:
            await trio.sleep(TICK_EVERY_S)
            until = follower.waiting_for()
            if until is None or engine.core.activity().busy or not engine.core.is_member():
                continue
            try:
                engine.submit_node_action(TICK_PATH, {"until": until})
            except TransactionRefused:
                continue


def register(registry: ServiceRegistry) -> None:
    registry.add(SERVICE_NAME, "async", MembershipService)
