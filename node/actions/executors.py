"""Reconciling the responses of an executor committee (sans-IO).

An action registered with `executors=True` is guard-checked by every node, then handed to the
committee elected for its block (`ExecutorRequestOutput`).  Each committee member runs it
(`run_as_executor`) and submits a signed response: an ordinary envelope for the path
`/executors/respond` with args `{"request": hex, "result": ..., "effects": hex}`, so responses
are ordered by consensus and every node reconciles them identically with a `ResponseTracker`.

Rule (decided in consensus time, never a clock):
- all committee members answered the same result and effects hash: completed;
- everyone answered (or the deadline passed) and one outcome has a supermajority of the
  committee (more than two thirds): completed with it; the dissenters are penalised
  ("disagreed"), and so are the silent members ("silent") if the deadline passed;
- otherwise: failed, `executors_disagree` when everyone answered, `executor_timeout` when the
  deadline passed; silent members are penalised.
An executor that sends two different responses is "equivocated": its votes are discarded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node import codec
from node.actions.envelope import Envelope
from node.actions.errors import ActionRejected, Reason
from node.actions.model import ExecutorOutcomeOutput, ReputationPenalty
from node.crypto import PrivateKey, sha256
from node.errors import UsageError

RESPOND_PATH = "/executors/respond"


def supermajority(n: int) -> int:
    """The smallest count that is more than two thirds of n."""
    return 2 * n // 3 + 1


@dataclass(frozen=True)
class ExecutorResponse:
    request_id: bytes
    executor: bytes  # the executor node's public key
    result: Any
    effects_hash: bytes

    @property
    def outcome(self) -> bytes:
        """What executors must agree on: the result and the effects, hashed together."""
        return sha256(codec.pack([self.result, self.effects_hash]))

    def to_args(self) -> dict[str, Any]:
        return {"request": self.request_id.hex(), "result": self.result, "effects": self.effects_hash.hex()}


@dataclass(frozen=True)
class Decision:
    outcome: ExecutorOutcomeOutput
    penalties: list[ReputationPenalty]


@dataclass
class ResponseTracker:
    request_id: bytes
    committee: tuple[bytes, ...]
    deadline_ns: int
    votes: dict[bytes, tuple[bytes, Any, bytes]] = field(default_factory=dict)  # executor -> outcome, result, effects
    equivocators: set[bytes] = field(default_factory=set)

    def receive(self, response: ExecutorResponse) -> None:
        """Record one authenticated response; refuses a node outside the committee."""
        who = response.executor
        if who not in self.committee:
            raise ActionRejected(Reason.NOT_EXECUTOR)
        if who in self.equivocators:
            return
        previous = self.votes.get(who)
        if previous is None:
            self.votes[who] = (response.outcome, response.result, response.effects_hash)
        elif previous[0] != response.outcome:
            del self.votes[who]
            self.equivocators.add(who)

    def decide(self, now_ns: int) -> Decision | None:
        """The decision once everyone answered or the deadline passed; None while waiting."""
        answered = set(self.votes) | self.equivocators
        everyone = answered >= set(self.committee)
        timed_out = now_ns >= self.deadline_ns
        if not everyone and not timed_out:
            return None
        counts: dict[bytes, int] = {}
        for digest, _, _ in self.votes.values():
            counts[digest] = counts.get(digest, 0) + 1
        # max by (count, outcome bytes): deterministic even on ties (a tie never reaches a supermajority).
        best = max(counts.items(), key=lambda kv: (kv[1], kv[0]), default=(b"", 0))
        penalties = [(e, "equivocated") for e in self.equivocators]
        n = len(self.committee)
        if best[1] >= supermajority(n):
            winner = next(v for v in self.votes.values() if v[0] == best[0])
            penalties += [(e, "disagreed") for e, v in self.votes.items() if v[0] != best[0]]
            penalties += [(e, "silent") for e in self.committee if e not in answered]
            outcome = ExecutorOutcomeOutput(self.request_id, True, winner[1], winner[2], None, best[1], n)
        else:
            if timed_out and not everyone:
                penalties += [(e, "silent") for e in self.committee if e not in answered]
            reason = Reason.EXECUTORS_DISAGREE if everyone else Reason.EXECUTOR_TIMEOUT
            outcome = ExecutorOutcomeOutput(self.request_id, False, None, None, reason, best[1], n)
        return Decision(outcome, [ReputationPenalty(e, self.request_id, why) for e, why in sorted(penalties)])

    def to_state(self) -> dict[str, Any]:
        return {
            "request": self.request_id,
            "committee": list(self.committee),
            "deadline_ns": self.deadline_ns,
            "votes": [[e, *v] for e, v in sorted(self.votes.items())],
            "equivocators": sorted(self.equivocators),
        }

    @staticmethod
    def from_state(data: dict[str, Any]) -> ResponseTracker:
        return ResponseTracker(
            request_id=data["request"],
            committee=tuple(data["committee"]),
            deadline_ns=data["deadline_ns"],
            votes={v[0]: (v[1], v[2], v[3]) for v in data["votes"]},
            equivocators=set(data["equivocators"]),
        )


def response_from_args(request_id_hex: Any, executor: bytes, result: Any, effects_hex: Any) -> ExecutorResponse:
    """Parse the args of a `/executors/respond` envelope."""
    try:
        request_id = bytes.fromhex(request_id_hex)
        effects = bytes.fromhex(effects_hex)
    except (TypeError, ValueError) as exc:
        raise ActionRejected(Reason.INVALID_ARGS, "request and effects must be hex") from exc
    if len(request_id) != 32 or len(effects) != 32:
        raise ActionRejected(Reason.INVALID_ARGS, "request and effects must be 32-byte hashes")
    return ExecutorResponse(request_id, executor, result, effects)


def sign_response(key: PrivateKey, response: ExecutorResponse, *, origin: str, nonce: int, expiry_ns: int) -> Envelope:
    """The `/executors/respond` envelope an executor node submits to consensus."""
    if response.executor != key.public:
        raise UsageError("a response must be signed by the executor it names")
    return Envelope.sign(key, origin=origin, path=RESPOND_PATH, args=response.to_args(), nonce=nonce,
                         expiry_ns=expiry_ns)
