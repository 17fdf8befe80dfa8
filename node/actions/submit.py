"""Admission of a submitted action before it enters the consensus pool (sans-IO).

`admit` refuses early what can never execute: bad bytes, an unknown path, a bad signature, the
wrong origin, an expiry already past, or a nonce the actor has already used.  It does not check
identity or membership: those depend on actions still in flight (a client may send
`/users/create` and `/points/join` back to back), so only execution decides them.  Passing
`admit` is no promise: the action is checked again, in consensus order, by execute_block.
"""

from __future__ import annotations

from node.actions.builtin import BUILTIN
from node.actions.context import ActionContext
from node.actions.envelope import Envelope
from node.actions.errors import ActionRejected, Reason
from node.actions.guards import BEFORE_IDENTITY, registered_actor
from node.actions.model import BlockContext
from node.actions.registry import Registry
from node.actions.state import Overlay, StateReader, nonce_key


def admit(
    wire: bytes,
    *,
    origin: str,
    now_ns: int,
    state: StateReader | None = None,
    registry: Registry = BUILTIN,
) -> Envelope:
    """The parsed envelope if it may enter the pool; raises `ActionError` (with its reason) if not.

    `now_ns` is the caller's time (the API's clock); `state` the latest executed state, if any.
    """
    envelope = Envelope.from_wire(wire)
    ctx = ActionContext(envelope, BlockContext(0, now_ns, origin), Overlay(state if state is not None else {}))
    BEFORE_IDENTITY[0].check(ctx)  # signature first, as in execution
    if envelope.path not in registry:
        raise ActionRejected(Reason.UNKNOWN_PATH, envelope.path)
    for guard in BEFORE_IDENTITY[1:]:
        guard.check(ctx)
    actor_id = registered_actor(ctx) if state is not None else None
    if actor_id is not None:
        last = ctx.state.get_obj(nonce_key(actor_id))
        if isinstance(last, int) and envelope.nonce <= last:
            raise ActionRejected(Reason.REPLAYED_NONCE, f"nonce {envelope.nonce} <= last used {last}")
    return envelope
