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
from node.membership.state import POLICY_PATH, TICK_PATH, approval_point, peer_set_history, policy_recorded
from node.runtime.service import NodeContext, ServiceRegistry

if TYPE_CHECKING:
    from node.engine.service import ConsensusEngine
    from node.storage.chain import ChainStore

log = structlog.get_logger("membership")

SERVICE_NAME = "membership"
TICK_EVERY_S = 0.5
POLICY_CHECK_S = 1.0
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
        if change.change == "join" and change.address is not None:
            add_gossip_peer(engine, change.peer, change.address)

    return changed


def accepted_members(engine: ConsensusEngine) -> frozenset[str]:
    """Node ids the transport must accept: the peer set in force now and every later scheduled one
    (a joiner before its round, to catch up; a leaver until its removal is in force)."""
    from node.crypto import fingerprint

    schedule = engine.graph.peers.effective_rounds()
    now = max(engine.graph.last_round, 0)
    start = max((i for i, (rnd, _) in enumerate(schedule) if rnd <= now), default=0)
    return frozenset(fingerprint(m) for _, peers in schedule[start:] for m in peers.members)


def follow_trust(engine: ConsensusEngine) -> Any:
    """A follower listener keeping the transport's accepted peers in step with the chain."""

    def changed(_: AppliedChange) -> None:
        if engine.trust is not None:
            engine.trust.set_members(accepted_members(engine))

    return changed


def add_gossip_peer(engine: ConsensusEngine, peer: bytes, address: str) -> None:
    """Gossip with a joined member at its announced address (kept if already known)."""
    gossip = engine.gossip
    if gossip is None or peer == engine.ctx.key.public or peer in gossip.by_key:
        return
    from node.config import split_host_port
    from node.crypto import fingerprint
    from node.engine.gossip import PeerAddress

    host, port = split_host_port(address)
    entry = PeerAddress(fingerprint(peer), peer, host, port)
    gossip.by_key[peer] = entry
    gossip.by_id[entry.node_id] = entry
    engine.peers.append(entry)


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
        follower.listeners.append(follow_trust(engine))
        # After a restart: members that joined earlier are reachable and accepted again.
        for entry in peer_set_history(chain.state, engine.peer_set, round_of_block(chain)):
            if entry.change == "join" and entry.peer is not None and entry.address is not None:
                add_gossip_peer(engine, entry.peer, entry.address)
        if engine.trust is not None:
            engine.trust.set_members(accepted_members(engine) | engine.trust.members)
        engine.block_listeners.append(follower.block_applied)
        self.ctx.extras[EXTRAS_KEY] = follower
        log.info("membership following the chain", restored_changes=restored.changes, late=list(restored.late))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_policy_on_chain, engine)
            await self._keep_rounds_moving(engine, follower)

    async def _keep_policy_on_chain(self, engine: ConsensusEngine) -> None:
        """Put the truth's join policy on the chain when the chain says otherwise: each value once
        per process, so two nodes with different truths record both once, never in a loop."""
        assert engine.chain is not None
        wanted = self.ctx.settings.join_approval_point
        sent: set[str | None] = set()
        while True:
            state = engine.chain.state
            differs = approval_point(state) != wanted and (wanted is not None or policy_recorded(state))
            if differs and wanted not in sent and engine.core.is_member():
                try:
                    engine.submit_node_action(POLICY_PATH, {"approval_point": wanted})
                    sent.add(wanted)
                    log.info("join policy submitted from the truth", approval_point=wanted)
                except TransactionRefused:
                    pass
            elif differs and wanted in sent:
                log.debug("the chain's join policy differs from this node's truth", chain=approval_point(state))
            await trio.sleep(POLICY_CHECK_S)

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
