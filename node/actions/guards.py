"""The guards: checks an action passes, in order, before its handler runs.

Every action passes SIGNATURE, ORIGIN, EXPIRY, an identity guard (REGISTERED by default), then
NONCE, then its own guards (membership, roles).  Each failure is one `Reason`.

Replay protection: per actor, a nonce must be strictly greater than the highest nonce the actor
used in a *successful* action (kept in state at `nonce/<actor_id>`, so it holds across restarts
and on every node alike).  A failed action consumes nothing, because a failure changes no state;
its nonce stays usable, but only until the actor's next success.  Clients pick nonces from a
counter seeded with wall-clock nanoseconds, so they need not remember anything between runs.
Keying on the actor id (not the key) keeps the nonce high-water mark across key rotations.
"""

from __future__ import annotations

import re
from typing import Any

from node import codec
from node.actions.context import ActionContext, Guard
from node.actions.errors import ActionRejected, Reason
from node.actions.state import key_index_key, member_key, nonce_key, point_key, user_key
from node.crypto import fingerprint

ROLES = ("member", "admin", "owner")  # in increasing order of power
_POINT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def point_arg(args: dict[str, Any], name: str = "point") -> str:
    value = args.get(name)
    if not isinstance(value, str) or not _POINT_NAME.match(value):
        raise ActionRejected(Reason.INVALID_ARGS, f"{name} must be a point name matching {_POINT_NAME.pattern}")
    return value


def _signature(ctx: ActionContext) -> None:
    if not ctx.envelope.verify_signature():
        raise ActionRejected(Reason.BAD_SIGNATURE)


def _origin(ctx: ActionContext) -> None:
    if ctx.envelope.destination != ctx.block.origin:
        raise ActionRejected(Reason.WRONG_ORIGIN, f"for {ctx.envelope.destination}, this is {ctx.block.origin}")


def _expiry(ctx: ActionContext) -> None:
    # Consensus time only: every node sees the same block timestamp, so every node agrees.
    if ctx.block.timestamp_ns > ctx.envelope.expiry_ns:
        raise ActionRejected(Reason.EXPIRED)


def registered_actor(ctx: ActionContext) -> str | None:
    """The actor that currently owns the envelope's key, or None."""
    env = ctx.envelope
    actor_id = ctx.state.get_obj(key_index_key(fingerprint(env.actor_key)))
    if not isinstance(actor_id, str):
        return None
    user = ctx.state.get_obj(user_key(actor_id))
    if not isinstance(user, dict) or user.get("key") != env.actor_key or user.get("key_type") != env.key_type:
        return None
    return actor_id


def _registered(ctx: ActionContext) -> None:
    actor_id = registered_actor(ctx)
    if actor_id is None:
        raise ActionRejected(Reason.UNKNOWN_ACTOR)
    ctx.actor_id = actor_id


def _self_register(ctx: ActionContext) -> None:
    # A new key acts as the actor it will create; an already registered key acts as itself
    # (and the handler refuses with `exists`).
    ctx.actor_id = registered_actor(ctx) or ctx.envelope.actor_fingerprint


def _nonce(ctx: ActionContext) -> None:
    key = nonce_key(ctx.actor)
    last = ctx.state.get_obj(key)
    if isinstance(last, int) and ctx.envelope.nonce <= last:
        raise ActionRejected(Reason.REPLAYED_NONCE, f"nonce {ctx.envelope.nonce} <= last used {last}")
    # Written into the action's own overlay: kept only if the action succeeds.
    ctx.state.put(key, codec.pack(ctx.envelope.nonce))


def _member_node(ctx: ActionContext) -> None:
    # Internal records are signed by one of the origin's nodes; their key is their identity.
    if ctx.envelope.actor_key not in ctx.block.members:
        raise ActionRejected(Reason.NOT_MEMBER_NODE)
    ctx.actor_id = ctx.envelope.actor_fingerprint


SIGNATURE = Guard("signature", _signature)
ORIGIN = Guard("origin", _origin)
EXPIRY = Guard("expiry", _expiry)
REGISTERED = Guard("identity", _registered)
SELF_REGISTER = Guard("identity(self-register)", _self_register)
NONCE = Guard("nonce", _nonce)
MEMBER_NODE = Guard("identity(member node)", _member_node)
BEFORE_IDENTITY = (SIGNATURE, ORIGIN, EXPIRY)


def role_of(ctx: ActionContext, point: str, actor_id: str) -> str | None:
    role = ctx.state.get_obj(member_key(point, actor_id))
    return role if isinstance(role, str) else None


def role(min_role: str, arg: str = "point") -> Guard:
    """The actor must hold at least `min_role` in the point named by `args[arg]`."""
    if min_role not in ROLES:
        raise ValueError(f"unknown role {min_role!r}")

    def check(ctx: ActionContext) -> None:
        point = point_arg(ctx.envelope.args, arg)
        if ctx.state.get(point_key(point)) is None:
            raise ActionRejected(Reason.NOT_FOUND, f"no point {point}")
        held = role_of(ctx, point, ctx.actor)
        if held is None:
            raise ActionRejected(Reason.NOT_MEMBER, f"not a member of {point}")
        if ROLES.index(held) < ROLES.index(min_role):
            raise ActionRejected(Reason.FORBIDDEN, f"needs {min_role} in {point}, has {held}")

    return Guard("member" if min_role == "member" else f"role({min_role})", check)


MEMBER = role("member")
