"""What goes into and comes out of executing a block: context, receipts, outputs, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node import codec
from node.actions.errors import Reason


@dataclass(frozen=True)
class BlockContext:
    """What consensus decided about the block, passed in (never read from a clock).

    `committee` is the executor committee for this block (public keys of nodes); actions marked
    for executors are handed to it.  Left empty, it is the committee kept in state, drawn again
    whenever a block carries an `election` seed (`node.actions.committee`).  `executor_timeout_ns`
    is how long, in consensus time, the committee has to respond.  `members` lets actions signed
    by the origin's own nodes (internal records such as certificate issuance) be checked against
    the peer set that decided the block.
    """

    index: int
    timestamp_ns: int
    origin: str
    committee: tuple[bytes, ...] = ()
    executor_timeout_ns: int = 30 * 10**9
    members: tuple[bytes, ...] = ()  # public keys of the origin's nodes (peer set of the block's round)
    election: tuple[int, bytes] | None = None  # (round, seed) when the block carries an executor election
    executor_count: int | None = None  # committee size; None: a supermajority of `members`


@dataclass(frozen=True)
class Receipt:
    """The outcome of one transaction; `action_id` is empty when the bytes were not an envelope."""

    action_id: bytes
    ok: bool
    reason: Reason | None = None
    result: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id.hex(),
            "ok": self.ok,
            "reason": None if self.reason is None else self.reason.value,
            "result": self.result,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SignalOutput:
    """A signal posted to a point; the runtime delivers it to the point's subscribed members."""

    point: str
    seq: int
    sender: str
    body: Any
    action_id: bytes
    block_index: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form pushed to subscribers (WebSocket `/signals`)."""
        return {"point": self.point, "seq": self.seq, "from": self.sender, "body": self.body,
                "action_id": self.action_id.hex(), "block": self.block_index}


@dataclass(frozen=True)
class ExecutorRequestOutput:
    """An action for the elected committee: each member runs it and submits a signed response."""

    request_id: bytes
    path: str
    envelope: bytes
    committee: tuple[bytes, ...]
    deadline_ns: int


@dataclass(frozen=True)
class ExecutorOutcomeOutput:
    """The reconciled outcome of an executor request: completed with a result, or failed."""

    request_id: bytes
    ok: bool
    result: Any
    effects_hash: bytes | None
    reason: Reason | None
    agreeing: int
    committee_size: int


@dataclass(frozen=True)
class ReputationPenalty:
    """An executor that disagreed with the accepted outcome, equivocated, or stayed silent."""

    executor: bytes
    request_id: bytes
    reason: str  # "disagreed" | "silent" | "equivocated"


Output = SignalOutput | ExecutorRequestOutput | ExecutorOutcomeOutput | ReputationPenalty


@dataclass(frozen=True)
class BlockResult:
    receipts: list[Receipt]  # one per transaction, in block order
    writes: dict[bytes, bytes | None]
    outputs: list[Output] = field(default_factory=list)
    state_hash: bytes = b""

    def apply_to(self, state: dict[bytes, bytes]) -> None:
        """Apply the block's writes to a dict-backed state (what storage does in one batch)."""
        for key, value in self.writes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value

    def receipts_by_action(self, block_index: int) -> dict[bytes, bytes]:
        """Receipts to store under their action id (storage's `commit_block(receipts=...)`).

        Left out: bytes that were not an envelope (no id), and `replayed_nonce` refusals, whose
        id may be that of an action executed earlier: its receipt must not be overwritten.
        Within a block the first receipt of an id wins.
        """
        out: dict[bytes, bytes] = {}
        for position, r in enumerate(self.receipts):
            if not r.action_id or r.reason is Reason.REPLAYED_NONCE or r.action_id in out:
                continue
            out[r.action_id] = codec.pack({"block": block_index, "position": position, "ok": r.ok,
                                           "reason": None if r.reason is None else r.reason.value,
                                           "result": r.result})
        return out
