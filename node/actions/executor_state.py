"""Executor requests kept in state: opening one, taking responses, and deadlines.

Every node runs this identically inside execute_block; only the committee runs the action's
handler itself (`run_as_executor`), off the chain, and reports through `/executors/respond`.
"""

from __future__ import annotations

import bisect
from typing import Any

from node import codec
from node.actions.context import ActionContext, Guard
from node.actions.errors import ActionRejected, Reason
from node.actions.executors import Decision, ResponseTracker, response_from_args
from node.actions.model import BlockContext, ExecutorRequestOutput, Output
from node.actions.state import EXEC_PENDING_KEY, Overlay, exec_request_key
from node.crypto import sha256


def _pending(state: Overlay) -> list[list[Any]]:
    value = state.get_obj(EXEC_PENDING_KEY)
    return value if isinstance(value, list) else []


def open_request(ctx: ActionContext) -> dict[str, Any]:
    """Record an executor request for the block's committee; the receipt says it is pending."""
    committee = tuple(sorted(set(ctx.block.committee)))
    if not committee:
        raise ActionRejected(Reason.NO_EXECUTORS)
    request_id = ctx.action_id
    deadline = ctx.block.timestamp_ns + ctx.block.executor_timeout_ns
    tracker = ResponseTracker(request_id, committee, deadline)
    ctx.state.put_obj(
        exec_request_key(request_id),
        {"path": ctx.envelope.path, "status": "pending", "tracker": tracker.to_state(), "result": None},
    )
    pending = _pending(ctx.state)
    bisect.insort(pending, [deadline, request_id.hex()])
    ctx.state.put_obj(EXEC_PENDING_KEY, pending)
    ctx.emit(ExecutorRequestOutput(request_id, ctx.envelope.path, ctx.envelope.to_wire(), committee, deadline))
    return {"request": request_id.hex(), "status": "pending", "deadline_ns": deadline}


def _load(state: Overlay, request_hex: Any) -> tuple[bytes, dict[str, Any]]:
    try:
        request_id = bytes.fromhex(request_hex)
    except (TypeError, ValueError) as exc:
        raise ActionRejected(Reason.INVALID_ARGS, "request must be hex") from exc
    record = state.get_obj(exec_request_key(request_id))
    if not isinstance(record, dict):
        raise ActionRejected(Reason.NOT_FOUND, "no such executor request")
    return request_id, record


def _finalize(
    state: Overlay, request_id: bytes, record: dict[str, Any], decision: Decision, emit: list[Output]
) -> None:
    outcome = decision.outcome
    record["status"] = "completed" if outcome.ok else "failed"
    record["result"] = outcome.result
    record["reason"] = None if outcome.reason is None else outcome.reason.value
    state.put_obj(exec_request_key(request_id), record)
    pending = [p for p in _pending(state) if p[1] != request_id.hex()]
    state.put_obj(EXEC_PENDING_KEY, pending)
    emit.append(outcome)
    emit.extend(decision.penalties)


def _committee_member(ctx: ActionContext) -> None:
    _, record = _load(ctx.state, ctx.envelope.args.get("request"))
    if ctx.envelope.actor_key not in record["tracker"]["committee"]:
        raise ActionRejected(Reason.NOT_EXECUTOR)
    ctx.actor_id = ctx.envelope.actor_fingerprint


COMMITTEE_MEMBER = Guard("identity(committee)", _committee_member)


def respond(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """An executor's signed response to a request (result and effects hash); reconciled in order."""
    request_id, record = _load(ctx.state, args.get("request"))
    if record["status"] != "pending":
        raise ActionRejected(Reason.REQUEST_CLOSED)
    response = response_from_args(args.get("request"), ctx.envelope.actor_key, args.get("result"), args.get("effects"))
    tracker = ResponseTracker.from_state(record["tracker"])
    tracker.receive(response)
    record["tracker"] = tracker.to_state()
    ctx.state.put_obj(exec_request_key(request_id), record)
    decision = tracker.decide(ctx.block.timestamp_ns)
    if decision is not None:
        _finalize(ctx.state, request_id, record, decision, ctx.outputs)
        return {"request": request_id.hex(), "status": record["status"]}
    return {"request": request_id.hex(), "status": "pending"}


def sweep_deadlines(state: Overlay, block: BlockContext, outputs: list[Output]) -> None:
    """Decide every request whose deadline has passed at this block's timestamp."""
    for deadline, request_hex in list(_pending(state)):
        if deadline > block.timestamp_ns:
            break
        request_id, record = _load(state, request_hex)
        decision = ResponseTracker.from_state(record["tracker"]).decide(block.timestamp_ns)
        assert decision is not None  # the deadline passed, so the tracker always decides
        _finalize(state, request_id, record, decision, outputs)


def effects_hash(writes: dict[bytes, bytes | None]) -> bytes:
    return sha256(codec.pack(sorted([k, v] for k, v in writes.items())))
