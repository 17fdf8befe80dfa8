"""Deterministic execution of a block's transactions.

Same state, same transactions, same context: same receipts, writes, outputs and state hash on
every node.  Each transaction runs in its own overlay over the block's overlay, so a refused
action leaves no trace but its receipt; nothing here raises on bad transaction bytes.

State hash: `sha256(previous_state_hash || sha256(pack(sorted [key, value|None] writes)))`,
where the writes are every write of the block (including `meta/block_index`) except the
state hash itself, and the previous hash is read from `meta/state_hash` (32 zero bytes at first).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from node import codec
from node.actions.builtin import BUILTIN
from node.actions.committee import apply_penalties, hold_election
from node.actions.context import ActionContext
from node.actions.envelope import Envelope, check_json_like
from node.actions.errors import ActionError, ActionRejected, BlockOrderError, EnvelopeError, Reason
from node.actions.executor_state import effects_hash, open_request, sweep_deadlines
from node.actions.executors import ExecutorResponse
from node.actions.guards import SIGNATURE, registered_actor
from node.actions.model import BlockContext, BlockResult, Output, Receipt
from node.actions.registry import Registry
from node.actions.state import BLOCK_INDEX_KEY, GENESIS_STATE_HASH, STATE_HASH_KEY, Overlay, StateReader
from node.crypto import sha256


def _run(block: Overlay, tx: bytes, context: BlockContext, registry: Registry, outputs: list[Output]) -> Receipt:
    try:
        envelope = Envelope.from_wire(tx)
    except EnvelopeError as exc:
        return Receipt(b"", False, exc.reason, detail=exc.detail)
    except Exception as exc:  # a decoder bug must not stop the chain: the bytes are refused everywhere
        return Receipt(b"", False, Reason.MALFORMED, detail=type(exc).__name__)
    ctx = ActionContext(envelope, context, Overlay(block))
    try:
        spec = registry.get(envelope.path)
        if spec is None:
            SIGNATURE.check(ctx)  # an unsigned stranger learns nothing, not even which paths exist
            raise ActionRejected(Reason.UNKNOWN_PATH, envelope.path)
        for guard in spec.guards:
            guard.check(ctx)
        result: Any = open_request(ctx) if spec.executors else spec.handler(ctx, envelope.args)
        check_json_like(result, "result")
    except ActionError as exc:
        # EnvelopeError from a handler's result is a handler bug, not the sender's fault.
        reason = Reason.INTERNAL_ERROR if isinstance(exc, EnvelopeError) else exc.reason
        return Receipt(envelope.action_id, False, reason, detail=exc.detail)
    except Exception as exc:  # a handler bug must not split the nodes: every node fails the same way
        return Receipt(envelope.action_id, False, Reason.INTERNAL_ERROR, detail=type(exc).__name__)
    ctx.state.merge_into(block)
    outputs.extend(ctx.outputs)
    return Receipt(envelope.action_id, True, None, result)


def execute_block(
    state: StateReader,
    transactions: list[bytes],
    context: BlockContext,
    registry: Registry = BUILTIN,
) -> BlockResult:
    """Execute one block on top of `state`; the caller applies `writes` atomically with the block.

    Raises `BlockOrderError` when `context.index` does not follow the last executed block, so a
    block is never applied twice or out of order.
    """
    block = Overlay(state)
    last = block.get_obj(BLOCK_INDEX_KEY)
    expected = 0 if last is None else last + 1
    if context.index != expected:
        raise BlockOrderError(f"block {context.index} does not follow the last executed block (expected {expected})")
    previous = state.get(STATE_HASH_KEY) or GENESIS_STATE_HASH
    outputs: list[Output] = []
    sweep_deadlines(block, context, outputs)  # responses must land no later than the deadline
    if not context.committee:
        context = replace(context, committee=hold_election(block, context))
    receipts = [_run(block, bytes(tx), context, registry, outputs) for tx in transactions]
    apply_penalties(block, outputs)
    block.put_obj(BLOCK_INDEX_KEY, context.index)
    digest = sha256(codec.pack(sorted([k, v] for k, v in block.writes.items())))
    state_hash = sha256(previous + digest)
    block.put(STATE_HASH_KEY, state_hash)
    return BlockResult(receipts, dict(block.writes), outputs, state_hash)


def run_as_executor(
    envelope_wire: bytes,
    state: StateReader,
    context: BlockContext,
    executor: bytes,
    registry: Registry = BUILTIN,
) -> ExecutorResponse:
    """Run an executor request's handler on a committee member (off the chain).

    The guards already passed on the chain; the handler runs in a throwaway overlay, and its
    result and the hash of the writes it would make are what the committee must agree on.
    A refusal by the handler is a result too (`{"error": reason}`), so honest executors agree on it.
    """
    envelope = Envelope.from_wire(envelope_wire)
    spec = registry.get(envelope.path)
    if spec is None or not spec.executors:
        raise ActionRejected(Reason.UNKNOWN_PATH, envelope.path)
    ctx = ActionContext(envelope, context, Overlay(state))
    ctx.actor_id = registered_actor(ctx) or envelope.actor_fingerprint
    try:
        result = spec.handler(ctx, envelope.args)
        check_json_like(result, "result")
    except ActionError as exc:
        return ExecutorResponse(envelope.action_id, executor, {"error": exc.reason.value}, effects_hash({}))
    return ExecutorResponse(envelope.action_id, executor, result, effects_hash(ctx.state.writes))
