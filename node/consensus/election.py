"""Executor election (pure): a committee derived from consensus every `election_interval` rounds.

Every node computes the same committee because every input is consensus output: the round
received of a processed round, the hashes of that round's unique famous witnesses (unknown to
anyone before the round was decided, so nobody can grind the seed), the peer set, and a
reputation table changed only by penalties that are themselves committed in blocks.

Members are drawn without replacement, each draw picking a member with probability proportional
to its reputation weight, using integers only (hash-derived draws, no floats).  A member whose
reputation fell to zero is not drawn while enough others remain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from node import codec, crypto
from node.consensus.blocks import ElectionSeed
from node.consensus.errors import ConsensusUsageError
from node.consensus.peers import supermajority

if TYPE_CHECKING:
    from node.consensus.hashgraph import Hashgraph

ELECTION_DOMAIN = b"node/consensus/election"
DEFAULT_ELECTION_INTERVAL = 10
MAX_REPUTATION = 100
RECOVERY_PER_ELECTION = 2  # a penalised member slowly earns its weight back
PENALTIES = {"silent": 10, "disagreed": 25, "equivocated": MAX_REPUTATION}


class ElectionDecodeError(ConsensusUsageError):
    """A stored election record that cannot be read back (local data, not a peer's message)."""


def election_due(round_received: int, interval: int = DEFAULT_ELECTION_INTERVAL) -> bool:
    if interval <= 0:
        raise ConsensusUsageError("election_interval must be positive")
    return round_received % interval == 0


def election_seed(round_received: int, famous_witnesses: Iterable[bytes]) -> bytes:
    """SHA-256 over the round and the sorted famous witness hashes (order-free by construction)."""
    return crypto.sha256(crypto.tagged(ELECTION_DOMAIN, codec.pack([round_received, sorted(famous_witnesses)])))


def famous_witnesses(graph: Hashgraph, rnd: int) -> list[bytes]:
    """Hashes of the unique famous witnesses of a decided round still in memory (sorted)."""
    info = graph.rounds.get(rnd)
    if info is None or not info.decided:
        raise ConsensusUsageError(f"round {rnd} is not decided or no longer in memory")
    return sorted(w.hash for w in info.famous_unique)


@dataclass
class Reputation:
    """Member -> weight in [0, MAX_REPUTATION]; absent members have the full weight."""

    scores: dict[bytes, int] = field(default_factory=dict)

    def weight(self, member: bytes) -> int:
        return self.scores.get(member, MAX_REPUTATION)

    def penalise(self, member: bytes, reason: str) -> None:
        """Apply a committed penalty ("silent", "disagreed", "equivocated")."""
        cost = PENALTIES.get(reason)
        if cost is None:
            raise ConsensusUsageError(f"unknown penalty reason {reason!r}")
        self.scores[member] = max(0, self.weight(member) - cost)

    def recover(self) -> None:
        for member, score in list(self.scores.items()):
            score = min(MAX_REPUTATION, score + RECOVERY_PER_ELECTION)
            if score == MAX_REPUTATION:
                del self.scores[member]  # keeps the table (and its encoding) small
            else:
                self.scores[member] = score

    def to_obj(self) -> dict[bytes, int]:
        return dict(self.scores)

    @staticmethod
    def from_obj(obj: Any) -> Reputation:
        if not isinstance(obj, dict):
            raise ElectionDecodeError("a reputation table is a map")
        for k, v in obj.items():
            if not isinstance(k, bytes) or type(v) is not int or not 0 <= v <= MAX_REPUTATION:
                raise ElectionDecodeError("bad reputation entry")
        return Reputation(dict(obj))


def _draw(seed: bytes, counter: int, total: int) -> int:
    digest = crypto.sha256(seed + counter.to_bytes(4, "big"))
    return int.from_bytes(digest, "big") % total  # bias below 2**-200 for any realistic total


def elect(members: Sequence[bytes], seed: bytes, reputation: Reputation, count: int | None = None) -> tuple[bytes, ...]:
    """`count` members (default SM(n)) drawn by weight; the result is sorted."""
    pool = sorted(set(members))
    if not pool:
        raise ConsensusUsageError("cannot elect from an empty peer set")
    size = supermajority(len(pool)) if count is None else count
    if size <= 0:
        raise ConsensusUsageError("executor_count must be positive")
    weighted = [(m, reputation.weight(m)) for m in pool]
    eligible = [(m, w) for m, w in weighted if w > 0]
    if len(eligible) < size:  # not enough reputable members: fill with the zero-weight ones, equally
        eligible += [(m, 1) for m, w in weighted if w == 0]
    chosen: list[bytes] = []
    counter = 0
    while eligible and len(chosen) < size:
        total = sum(w for _, w in eligible)
        point = _draw(seed, counter, total)
        counter += 1
        for i, (member, weight) in enumerate(eligible):
            if point < weight:
                chosen.append(member)
                del eligible[i]
                break
            point -= weight
    return tuple(sorted(chosen))


@dataclass(frozen=True)
class ElectionRecord:
    """One election, as it lands in the block of its round."""

    round_received: int
    seed: bytes
    committee: tuple[bytes, ...]

    def to_obj(self) -> list[Any]:
        return [self.round_received, self.seed, list(self.committee)]

    @staticmethod
    def from_obj(obj: Any) -> ElectionRecord:
        ok = isinstance(obj, list) and len(obj) == 3 and type(obj[0]) is int and isinstance(obj[1], bytes)
        if not ok or not isinstance(obj[2], list) or not all(isinstance(m, bytes) for m in obj[2]):
            raise ElectionDecodeError("bad election record")
        return ElectionRecord(obj[0], obj[1], tuple(obj[2]))


class Elector:
    """Deterministic election state: feed every processed round, in order, on every node."""

    def __init__(
        self,
        *,
        election_interval: int = DEFAULT_ELECTION_INTERVAL,
        executor_count: int | None = None,
        reputation: Reputation | None = None,
    ) -> None:
        election_due(0, election_interval)  # validates the interval
        self.election_interval = election_interval
        self.executor_count = executor_count
        self.reputation = reputation if reputation is not None else Reputation()
        self.current: ElectionRecord | None = None

    def penalise(self, member: bytes, reason: str) -> None:
        """A committed penalty (e.g. `node.actions.ReputationPenalty`), applied in block order."""
        self.reputation.penalise(member, reason)

    def on_round(self, round_received: int, famous_witnesses: Iterable[bytes], members: Sequence[bytes]) -> (
        ElectionRecord | None
    ):
        """The new election when `round_received` is an election round, else None."""
        if not election_due(round_received, self.election_interval):
            return None
        seed = election_seed(round_received, famous_witnesses)
        record = ElectionRecord(round_received, seed, elect(members, seed, self.reputation, self.executor_count))
        self.reputation.recover()
        self.current = record
        return record

    def committee(self) -> tuple[bytes, ...]:
        return self.current.committee if self.current is not None else ()


def committee_of(election: ElectionSeed, reputation: Reputation, count: int | None = None) -> tuple[bytes, ...]:
    """The committee of the election a block carries (`Block.election`), under `reputation`."""
    return elect(election.members, election.seed, reputation, count)
