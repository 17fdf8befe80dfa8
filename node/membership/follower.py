"""Following committed membership changes on one node: the block listener.

After each applied block, the changes it committed (read from the block's state writes) are put
into the hashgraph's peer schedule from round R + 6 (R: the block's round received).  That is only
safe while no event of round R + 6 or later has been placed yet: rounds are assigned when events
are inserted, with the peer set known at that moment.  A change that comes too late is applied
anyway, logged as an error and kept in `late` (this node may then disagree with the others; see
the module `node.membership` report for the fix in the engine).

It also watches the graph's fork evidence: a member caught with two events at one index is
reported on the chain (`/membership/evict`) by this node, once per forker, again after
`RETRY_BLOCKS` blocks if the report was not committed.  The node whose report was committed then
revokes the forker's certificate through the trust layer's record (`/certificates/revoke`, no CA
proof needed for an evicted node), once a CA is anchored on the chain, until the chain shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import structlog

from node import codec
from node.consensus.hashgraph import Hashgraph
from node.consensus.node_core import TransactionRefused
from node.consensus.peers import MEMBERSHIP_DELAY_ROUNDS, PeerSet
from node.crypto import fingerprint
from node.engine.apply import AppliedBlock
from node.membership.state import (
    EVICT_PATH,
    HISTORY_KEY,
    Reader,
    changes,
    effective_round,
    evidence_of,
    latest_members,
)
from node.trust.chain_state import CA_KEY, REVOKE_PATH, revocations

log = structlog.get_logger("membership")

PROGRESS_MARGIN = 2  # rounds decided past a change's effective round before an idle origin may rest
RETRY_BLOCKS = 50  # an eviction report not committed after this many blocks is sent again
REVOKE_RETRY_BLOCKS = 10  # a revocation not on the chain after this many blocks is sent again
MAX_EVIDENCE_HEX = 60 * 1024  # both events, hex: must fit an envelope (64 KiB) with its other fields

Submit = Callable[[str, dict[str, Any]], object]


@dataclass(frozen=True)
class AppliedChange:
    """A committed change as this node applied it to its graph."""

    block: int
    round_received: int
    effective_round: int
    change: str
    peer: bytes
    members: PeerSet
    address: str | None
    late_by: int  # rounds already placed at or beyond the effective round (0: in time)
    by: str = ""  # node id that sent the committed record

    def to_obj(self) -> dict[str, Any]:
        return {"block": self.block, "round_received": self.round_received, "effective_round": self.effective_round,
                "change": self.change, "peer": self.peer.hex(), "members": len(self.members),
                "address": self.address, "late_by": self.late_by}


def _decode_history(raw: bytes | None) -> list[dict[str, Any]]:
    if raw is None:
        return []
    value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


@dataclass(frozen=True)
class Restored:
    changes: int  # committed changes put into the schedule
    late: tuple[int, ...]  # their effective rounds the graph had already reached (placed with old sets)


def restore_peer_sets(graph: Hashgraph, reader: Reader, round_of_block: Callable[[int], int | None]) -> Restored:
    """Put every committed change into `graph`'s schedule.  Call it BEFORE the stored events are
    inserted again at a restart, so their rounds use the right peer sets; called later, the
    changes the graph had already gone past are returned in `late` (and logged)."""
    count, late = 0, []
    known = dict(graph.peers.effective_rounds())
    for change in changes(reader):
        rnd = effective_round(change, round_of_block)
        if rnd is None:
            continue
        members = PeerSet.of(bytes.fromhex(m) for m in change["members"])
        if known.get(rnd) != members and graph.last_round >= rnd:
            late.append(rnd)
        graph.set_peer_set(rnd, members)
        count += 1
    if late:
        log.error("peer sets restored after the graph had placed rounds past them: this node may disagree "
                  "with the others until it catches up again", late_rounds=late, last_round=graph.last_round)
    return Restored(count, tuple(late))


class MembershipFollower:
    def __init__(
        self,
        graph: Hashgraph,
        state: Reader,
        submit: Submit,
        *,
        own_key: bytes,
        store_peer_set: Callable[[int, bytes], None] | None = None,
    ) -> None:
        """`state`: the committed chain state; `submit(path, args)` signs and queues a node action;
        `store_peer_set(round, packed members)` keeps the schedule in the node's store (optional)."""
        self.graph = graph
        self.state = state
        self.submit = submit
        self.own_key = own_key
        self.store_peer_set = store_peer_set
        self.applied: list[AppliedChange] = []
        self.late: list[AppliedChange] = []
        self.listeners: list[Callable[[AppliedChange], None]] = []  # gossip/transport follow through these
        self.reported: dict[bytes, int] = {}  # forker -> block index when we last reported it
        self.revocations: list[str] = []  # node ids whose revocation this node submitted (each time)
        self.to_revoke: dict[str, tuple[int, int | None]] = {}  # node id -> (revoked_at s, block last sent)
        self._evidence_seen = 0
        self._last_block = -1

    # -- the block listener ----------------------------------------------------------------------

    def block_applied(self, applied: AppliedBlock) -> None:
        block = applied.block
        self._last_block = block.index
        if HISTORY_KEY in applied.result.writes:
            for change in _decode_history(applied.result.writes[HISTORY_KEY]):
                if change.get("block") == block.index:
                    done = self._apply(change, block.round_received)
                    if done.change == "evict":
                        self._revoke(done, block.timestamp)
        self._revocations_due()
        self.watch_forks()

    def _revoke(self, done: AppliedChange, timestamp_ns: int) -> None:
        """The node whose eviction report was committed revokes the forker's certificate on the
        chain (accepted without a CA proof once evicted: `node.trust.chain_handlers`)."""
        if done.by == fingerprint(self.own_key):
            self.to_revoke[fingerprint(done.peer)] = (timestamp_ns // 10**9, None)

    def _revocations_due(self) -> None:
        """Submit each pending revocation once the chain has a CA anchored (it refuses any before),
        again after `RETRY_BLOCKS` blocks while the chain does not show it revoked."""
        if not self.to_revoke:
            return
        revoked = revocations(self.state).node_ids
        for node_id, (at, sent) in list(self.to_revoke.items()):
            if node_id in revoked:
                del self.to_revoke[node_id]
                log.warning("evicted node's certificate revoked on the chain", node=node_id)
                continue
            if self.state.get(CA_KEY) is None or (sent is not None and self._last_block - sent < REVOKE_RETRY_BLOCKS):
                continue
            args = {"node_id": node_id, "serial": "", "revoked_at": at, "reason": "evicted for forking", "proof": ""}
            try:
                self.submit(REVOKE_PATH, args)
            except TransactionRefused as exc:
                log.warning("could not queue the evicted node's revocation; retried later", error=str(exc))
                continue
            self.to_revoke[node_id] = (at, self._last_block)
            self.revocations.append(node_id)
            log.warning("evicted node's certificate revocation submitted", node=node_id)

    def _apply(self, change: dict[str, Any], round_received: int) -> AppliedChange:
        effective = effective_round(change, lambda _: round_received)
        assert effective is not None
        members = PeerSet.of(bytes.fromhex(m) for m in change["members"])
        # Already scheduled with this very set (a joiner's history from `node join`): in time.
        scheduled = dict(self.graph.peers.effective_rounds()).get(effective) == members
        late_by = 0 if scheduled else max(0, self.graph.last_round - effective + 1)
        self.graph.set_peer_set(effective, members)
        if self.store_peer_set is not None:
            self.store_peer_set(effective, codec.pack(list(members.members)))
        done = AppliedChange(int(change["block"]), round_received, effective, str(change["change"]),
                             bytes.fromhex(change["peer"]), members, change.get("address"), late_by,
                             str(change.get("by") or ""))
        self.applied.append(done)
        if late_by:
            self.late.append(done)
            log.error("membership change applied too late: rounds at or past its effective round were already "
                      "placed with the old peer set", effective_round=effective, last_round=self.graph.last_round,
                      block=done.block, change=done.change)
        else:
            log.info("membership change scheduled", effective_round=effective, change=done.change,
                     peer=done.peer.hex()[:16], members=len(members), block=done.block)
        for listener in list(self.listeners):
            listener(done)
        return done

    def waiting_for(self) -> int | None:
        """The round rounds must be decided up to for the newest changes to be in force (and seen
        to be), or None when there is nothing to wait for."""
        decided = self.graph.next_to_process
        wanted = [c.effective_round + PROGRESS_MARGIN for c in self.applied[-8:]]
        pending = [r for r in wanted if r > decided]
        return max(pending) if pending else None

    # -- fork evidence -----------------------------------------------------------------------------

    def watch_forks(self) -> None:
        """Report forks the graph found that the chain does not know yet; retry stale reports."""
        evidence = self.graph.fork_evidence
        fresh = evidence[self._evidence_seen:]
        self._evidence_seen = len(evidence)
        stale = [c for c, at in self.reported.items() if self._last_block - at >= RETRY_BLOCKS]
        for creator in stale:
            del self.reported[creator]
        pending = {a.creator: (a, b) for a, b in fresh}
        for creator in stale:
            pending.setdefault(creator, next((a, b) for a, b in evidence if a.creator == creator))
        for creator, (a, b) in pending.items():
            self._report(creator, a.to_wire().hex(), b.to_wire().hex())

    def _report(self, creator: bytes, a: str, b: str) -> None:
        if creator == self.own_key or creator in self.reported:
            return
        current = self.graph.peers.at(max(self.graph.last_round, 0)).members
        if evidence_of(self.state, creator) is not None or creator not in latest_members(self.state, current):
            return  # already proven on the chain, or no longer a member
        if len(a) + len(b) > MAX_EVIDENCE_HEX:
            log.error("fork evidence too large for one action: not reported", creator=creator.hex()[:16])
            return
        try:
            self.submit(EVICT_PATH, {"a": a, "b": b})
        except TransactionRefused as exc:
            log.warning("could not queue the eviction report; retried later", error=str(exc))
            return
        self.reported[creator] = self._last_block
        log.warning("fork detected: eviction reported", creator=creator.hex()[:16])

    def describe(self) -> dict[str, Any]:
        return {
            "delay_rounds": MEMBERSHIP_DELAY_ROUNDS,
            "applied": [c.to_obj() for c in self.applied[-20:]],
            "late": [c.to_obj() for c in self.late],
            "reported_forkers": [c.hex() for c in self.reported],
            "revocations_submitted": list(self.revocations),
        }
