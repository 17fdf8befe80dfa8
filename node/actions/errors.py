"""Errors of the actions layer.

Every refusal of an action carries a `Reason`: a short, stable code that ends up in the action's
receipt, so clients and tests can tell exactly why an action did not apply.
"""

from __future__ import annotations

from enum import StrEnum

from node.errors import InvalidInput, UsageError


class Reason(StrEnum):
    """Why an action was refused (the `reason` of a failed receipt)."""

    MALFORMED = "malformed"  # bytes that are not an envelope
    TOO_LARGE = "too_large"  # envelope over MAX_ENVELOPE_BYTES
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_PATH = "unknown_path"
    WRONG_ORIGIN = "wrong_origin"
    EXPIRED = "expired"
    REPLAYED_NONCE = "replayed_nonce"
    UNKNOWN_ACTOR = "unknown_actor"  # key not registered (or rotated away)
    FORBIDDEN = "forbidden"  # the actor's role does not allow this
    NOT_MEMBER = "not_member"
    INVALID_ARGS = "invalid_args"  # well-formed envelope, arguments wrong for the path
    EXISTS = "exists"  # user or point already exists
    NOT_FOUND = "not_found"  # the point, user or request named does not exist
    NO_EXECUTORS = "no_executors"  # an executor action but no committee was elected
    NOT_MEMBER_NODE = "not_member_node"  # an internal record not signed by one of the origin's nodes
    NOT_EXECUTOR = "not_executor"  # a response from a node outside the request's committee
    REQUEST_CLOSED = "request_closed"  # a response to an executor request already decided
    EXECUTORS_DISAGREE = "executors_disagree"
    EXECUTOR_TIMEOUT = "executor_timeout"
    INTERNAL_ERROR = "internal_error"  # a handler bug; deterministic, but should never happen


class ActionError(InvalidInput):
    """Root of the refusals of this layer; `reason` is the receipt code."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class EnvelopeError(ActionError):
    """Bytes or fields that do not make a valid envelope (malformed, too large, bad signature)."""


class ActionRejected(ActionError):
    """A valid envelope that a guard or the action's handler refused."""


class BlockOrderError(UsageError):
    """execute_block was called with a block that does not follow the last executed one."""


class RegistryError(UsageError):
    """An action path registered twice, or a malformed path."""


class ClientError(InvalidInput):
    """The node could not be reached, or refused what the client sent."""
