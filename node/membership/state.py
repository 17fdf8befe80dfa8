"""The peer-set history as chain state: key layout, readers, and the action paths.

Key layout (values canonical msgpack, written only by `node.membership.handlers`):

    membership/history            list of changes, oldest first (see below)
    membership/evidence/<hex>     {"creator", "index", "a", "b", "block", "by"}: a committed fork proof
    membership/evicted/<node id>  hex public key of a member evicted for forking (node id -> key)
    membership/policy             {"approval_point": str | None, "block", "by"}: joins need an approval
                                  by an owner or admin of that point (None: no approval needed)
    membership/approved/<hex>     {"by", "block"}: a join of that key approved by such an admin

A change is {"seq", "block", "change": "join"|"leave"|"evict", "peer": hex public key,
"members": [hex...] (the whole peer set after the change, sorted), "by": node id,
"effective": R + 6 or None}.  `effective` is filled only when the block context names its round
received; otherwise it is the stored block's round received + 6 (`effective_round`).
Keys are lower-case hex strings so the records read as JSON through the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from node.consensus.peers import MEMBERSHIP_DELAY_ROUNDS, PeerSet

JOIN_PATH = "/membership/join"
REMOVE_PATH = "/membership/remove"
EVICT_PATH = "/membership/evict"
TICK_PATH = "/membership/tick"
POLICY_PATH = "/membership/policy"
APPROVE_PATH = "/membership/approve"
PATHS = (JOIN_PATH, REMOVE_PATH, EVICT_PATH, TICK_PATH, POLICY_PATH, APPROVE_PATH)

HISTORY_KEY = b"membership/history"
EVIDENCE_PREFIX = b"membership/evidence/"
EVICTED_PREFIX = b"membership/evicted/"
POLICY_KEY = b"membership/policy"
APPROVED_PREFIX = b"membership/approved/"


class Reader(Protocol):
    def get(self, key: bytes, /) -> bytes | None: ...


def evidence_key(creator_hex: str) -> bytes:
    return EVIDENCE_PREFIX + creator_hex.encode()


def evicted_key(node_id: str) -> bytes:
    return EVICTED_PREFIX + node_id.encode()


def approved_key(peer_hex: str) -> bytes:
    return APPROVED_PREFIX + peer_hex.encode()


def approval_point(reader: Reader) -> str | None:
    """The point whose owners and admins must approve joins, or None when joins need no approval."""
    policy = _get_obj(reader, POLICY_KEY)
    point = policy.get("approval_point") if isinstance(policy, dict) else None
    return point if isinstance(point, str) else None


def policy_recorded(reader: Reader) -> bool:
    return reader.get(POLICY_KEY) is not None


def is_evicted(reader: Reader, node_id: str) -> bool:
    """Whether the node was evicted for forking (the trust layer may revoke its certificate on it)."""
    return reader.get(evicted_key(node_id)) is not None


class Iterating(Protocol):
    def iterate(self, prefix: bytes = b"") -> Any: ...


def fork_proofs(state: Iterating) -> list[dict[str, Any]]:
    """Every committed fork proof (what the API shows as evidence), by creator."""
    out = []
    for _, raw in state.iterate(EVIDENCE_PREFIX):
        value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        if isinstance(value, dict):
            out.append(value)
    return out


def _get_obj(reader: Reader, key: bytes) -> Any:
    raw = reader.get(key)
    return None if raw is None else msgpack.unpackb(raw, raw=False, strict_map_key=False)


def changes(reader: Reader) -> list[dict[str, Any]]:
    """Every committed membership change, oldest first."""
    value = _get_obj(reader, HISTORY_KEY)
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def evidence_of(reader: Reader, creator: bytes) -> dict[str, Any] | None:
    value = _get_obj(reader, evidence_key(creator.hex()))
    return value if isinstance(value, dict) else None


def latest_members(reader: Reader, decided_by: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The peer set after every committed change (some may not be effective yet); with no change
    yet, `decided_by` (the set that decided the block, i.e. the genesis set)."""
    history = changes(reader)
    if not history:
        return tuple(sorted(decided_by))
    return tuple(bytes.fromhex(m) for m in history[-1]["members"])


def effective_round(change: dict[str, Any], round_of_block: Callable[[int], int | None]) -> int | None:
    """R + 6 for the change's block (None when the block is not known)."""
    effective = change.get("effective")
    if isinstance(effective, int):
        return effective
    rnd = round_of_block(int(change["block"]))
    return None if rnd is None else rnd + MEMBERSHIP_DELAY_ROUNDS


@dataclass(frozen=True)
class HistoryEntry:
    """One peer set of the history: in force from `effective_round` on."""

    effective_round: int
    members: PeerSet
    change: str  # "genesis" | "join" | "leave" | "evict"
    peer: bytes | None
    block: int | None
    address: str | None = None  # the QUIC address a joiner announced (what a later joiner dials)

    def to_obj(self) -> dict[str, Any]:
        return {
            "effective_round": self.effective_round, "change": self.change, "block": self.block,
            "peer": None if self.peer is None else self.peer.hex(),
            "members": [m.hex() for m in self.members.members], "count": len(self.members),
            "supermajority": self.members.supermajority, "address": self.address,
        }


def peer_set_history(
    reader: Reader, genesis: PeerSet, round_of_block: Callable[[int], int | None]
) -> list[HistoryEntry]:
    """The peer sets in force over time, from genesis on (what `/history` shows).

    Changes whose block is not known yet (`round_of_block` returns None) are left out."""
    out = [HistoryEntry(0, genesis, "genesis", None, None)]
    for change in changes(reader):
        rnd = effective_round(change, round_of_block)
        if rnd is None:
            continue
        members = PeerSet.of(bytes.fromhex(m) for m in change["members"])
        address = change.get("address")
        out.append(HistoryEntry(rnd, members, str(change["change"]), bytes.fromhex(change["peer"]),
                                int(change["block"]), address if isinstance(address, str) else None))
    return out
