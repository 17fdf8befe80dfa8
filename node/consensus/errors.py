"""Errors of the consensus layer.

A peer that sends a bad event breaks the protocol (`EventRejected`, `EventDecodeError`); a file
given to `node dag replay` that is not a usable graph is bad input (`ReplayInputError`).
"""

from __future__ import annotations

from enum import Enum

from node.errors import InvalidInput, ProtocolViolation, UsageError


class RejectReason(Enum):
    """Why an event was refused; the graph is unchanged after any of these."""

    BAD_SIGNATURE = "bad signature"
    UNKNOWN_CREATOR = "unknown creator"
    UNKNOWN_PARENT = "unknown parent"
    TOO_OLD = "older than the rounds kept in memory"
    WRONG_INDEX = "wrong index"
    SELF_PARENT_BY_OTHER_CREATOR = "self-parent by another creator"
    OTHER_PARENT_BY_SAME_CREATOR = "other-parent by the same creator"
    OVERSIZED = "oversized"
    FORK_LIMIT = "fork limit exceeded"
    MALFORMED = "malformed"


class ConsensusError(ProtocolViolation):
    """Root of the errors a peer can cause in the consensus layer."""


class EventRejected(ConsensusError):
    """An event that cannot be inserted, with a typed reason."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"event rejected: {reason.value}" + (f" ({detail})" if detail else ""))


class EventDecodeError(EventRejected):
    """Wire bytes that are not a valid event."""

    def __init__(self, detail: str, reason: RejectReason = RejectReason.MALFORMED) -> None:
        super().__init__(reason, detail)


class ReplayInputError(InvalidInput):
    """A graph file for `node dag replay` that is unreadable or inconsistent."""


class ConsensusUsageError(UsageError):
    """The consensus API was called wrongly (a bug in the caller)."""
