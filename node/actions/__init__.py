"""Signed actions: envelopes, the registry of paths, guards, deterministic execution, executors.

Everything here is sans-IO (no trio, no clock, no database) except `client`, which speaks HTTP.
"""

from node.actions.builtin import BUILTIN, register_builtins, rotation_proof
from node.actions.context import ActionContext, Guard
from node.actions.envelope import MAX_ENVELOPE_BYTES, Envelope
from node.actions.errors import ActionError, ActionRejected, BlockOrderError, EnvelopeError, Reason
from node.actions.execute import execute_block, run_as_executor
from node.actions.executors import ExecutorResponse, ResponseTracker
from node.actions.model import (
    BlockContext,
    BlockResult,
    ExecutorOutcomeOutput,
    ExecutorRequestOutput,
    Output,
    Receipt,
    ReputationPenalty,
    SignalOutput,
)
from node.actions.registry import ActionSpec, Registry
from node.actions.state import Overlay, StateReader
from node.actions.submit import admit

# `@action("/app/path", guards=[...], executors=False)` registers into the node's default registry.
action = BUILTIN.action

__all__ = [
    "BUILTIN", "MAX_ENVELOPE_BYTES", "ActionContext", "ActionError", "ActionRejected", "ActionSpec",
    "BlockContext", "BlockOrderError", "BlockResult", "Envelope", "EnvelopeError", "ExecutorOutcomeOutput",
    "ExecutorRequestOutput", "ExecutorResponse", "Guard", "Output", "Overlay", "Receipt", "Reason", "Registry",
    "ReputationPenalty", "ResponseTracker", "SignalOutput", "StateReader", "action", "admit", "execute_block",
    "register_builtins", "rotation_proof", "run_as_executor",
]
