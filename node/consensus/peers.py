"""Peer sets per round.

`P(r)` is the newest peer set whose effective round is `<= r`.  Genesis peers are effective at
round 0; a committed PEER_ADD/PEER_REMOVE in a block with round received R takes effect at R + 6.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from node import codec, crypto
from node.consensus.errors import ConsensusUsageError

MEMBERSHIP_DELAY_ROUNDS = 6


def supermajority(n: int) -> int:
    """SM(n) = floor(2n/3) + 1."""
    return 2 * n // 3 + 1


def trust_count(n: int) -> int:
    """TC(n) = ceil(n/3), 0 when n <= 1."""
    return 0 if n <= 1 else -(-n // 3)


@dataclass(frozen=True)
class PeerSet:
    """An ordered, duplicate-free set of member public keys."""

    members: tuple[bytes, ...]

    @staticmethod
    def of(members: Iterable[bytes]) -> PeerSet:
        return PeerSet(tuple(sorted(set(members))))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_member_set", frozenset(self.members))  # a derived index

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, member: object) -> bool:
        found: bool = member in self.__dict__["_member_set"]
        return found

    @property
    def hash(self) -> bytes:
        """Computed once (every block carries it): the set is immutable."""
        cached: bytes | None = self.__dict__.get("_hash")
        if cached is None:
            cached = crypto.sha256(codec.pack(list(self.members)))
            object.__setattr__(self, "_hash", cached)
        return cached

    @property
    def supermajority(self) -> int:
        return supermajority(len(self.members))

    @property
    def trust_count(self) -> int:
        return trust_count(len(self.members))

    def with_added(self, peer: bytes) -> PeerSet:
        return PeerSet.of((*self.members, peer))

    def with_removed(self, peer: bytes) -> PeerSet:
        return PeerSet.of(m for m in self.members if m != peer)


class PeerSchedule:
    """The history of peer sets, keyed by the round from which each one is effective."""

    def __init__(self, genesis: PeerSet) -> None:
        if len(genesis) == 0:
            raise ConsensusUsageError("the genesis peer set is empty")
        self._rounds: list[int] = [0]
        self._sets: list[PeerSet] = [genesis]
        self._known: set[bytes] = set(genesis.members)

    @staticmethod
    def from_map(sets: dict[int, PeerSet]) -> PeerSchedule:
        if 0 not in sets:
            raise ConsensusUsageError("peer sets need one effective at round 0")
        schedule = PeerSchedule(sets[0])
        for rnd in sorted(sets):
            if rnd > 0:
                schedule.set_from(rnd, sets[rnd])
        return schedule

    def set_from(self, rnd: int, peers: PeerSet) -> None:
        """Register `peers` as effective from round `rnd` (replacing one registered at that round)."""
        pos = bisect.bisect_left(self._rounds, rnd)
        if pos < len(self._rounds) and self._rounds[pos] == rnd:
            self._sets[pos] = peers
        else:
            self._rounds.insert(pos, rnd)
            self._sets.insert(pos, peers)
        self._known.update(peers.members)

    def at(self, rnd: int) -> PeerSet:
        pos = bisect.bisect_right(self._rounds, max(rnd, 0)) - 1
        return self._sets[pos]

    def is_known(self, member: bytes) -> bool:
        """Member of some known peer set (the insertion rule)."""
        return member in self._known

    def all_members(self) -> list[bytes]:
        return sorted(self._known)

    def effective_rounds(self) -> list[tuple[int, PeerSet]]:
        return list(zip(self._rounds, self._sets, strict=True))
