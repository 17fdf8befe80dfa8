"""The built-in application: users, points (groups with roles) and signals posted to points."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from node.actions.context import ActionContext
from node.actions.errors import ActionRejected, Reason
from node.actions.executor_state import COMMITTEE_MEMBER, respond
from node.actions.executors import RESPOND_PATH
from node.actions.guards import MEMBER, ROLES, SELF_REGISTER, point_arg, role, role_of
from node.actions.model import SignalOutput
from node.actions.registry import Registry
from node.actions.state import (
    key_index_key,
    member_key,
    point_key,
    signal_key,
    signal_seq_key,
    user_key,
)
from node.crypto import KEY_TYPES, PrivateKey, fingerprint, tagged, verify

ROTATE_DOMAIN = b"node/action/rotate/v1"


def rotation_proof(new_key: PrivateKey, actor_id: str) -> bytes:
    """The new key's signature proving its holder agrees to become `actor_id`'s key."""
    return new_key.sign(tagged(ROTATE_DOMAIN, actor_id.encode()))


def _str_arg(args: dict[str, Any], name: str, limit: int = 64) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ActionRejected(Reason.INVALID_ARGS, f"{name} must be a string of 1..{limit} characters")
    return value


def _hex_arg(args: dict[str, Any], name: str) -> bytes:
    try:
        return bytes.fromhex(_str_arg(args, name, 4096))
    except ValueError as exc:
        raise ActionRejected(Reason.INVALID_ARGS, f"{name} must be hex") from exc


def create_user(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Register the signing key as a new actor (self-registration); args: name."""
    name = _str_arg(args, "name")
    env = ctx.envelope
    if ctx.state.get(user_key(ctx.actor)) is not None:
        raise ActionRejected(Reason.EXISTS, "actor already registered")
    ctx.state.put_obj(user_key(ctx.actor), {"key": env.actor_key, "key_type": env.key_type, "name": name,
                                            "since": ctx.block.index})
    ctx.state.put_obj(key_index_key(fingerprint(env.actor_key)), ctx.actor)
    return {"actor": ctx.actor}


def rotate_key(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Replace the actor's key; args: key (hex public key), key_type, proof (hex, by the new key)."""
    new_key, proof = _hex_arg(args, "key"), _hex_arg(args, "proof")
    key_type = args.get("key_type")
    if key_type not in KEY_TYPES:
        raise ActionRejected(Reason.INVALID_ARGS, f"key_type must be one of {', '.join(KEY_TYPES)}")
    if not verify(str(key_type), new_key, tagged(ROTATE_DOMAIN, ctx.actor.encode()), proof):
        raise ActionRejected(Reason.BAD_SIGNATURE, "rotation proof does not verify under the new key")
    if ctx.state.get(key_index_key(fingerprint(new_key))) is not None:
        raise ActionRejected(Reason.EXISTS, "key already belongs to an actor")
    user = ctx.state.get_obj(user_key(ctx.actor))
    ctx.state.delete(key_index_key(fingerprint(ctx.envelope.actor_key)))
    ctx.state.put_obj(key_index_key(fingerprint(new_key)), ctx.actor)
    user.update(key=new_key, key_type=key_type)
    ctx.state.put_obj(user_key(ctx.actor), user)
    return {"actor": ctx.actor, "fingerprint": fingerprint(new_key)}


def create_point(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Create a point owned by the actor; args: point, open (bool, default true: anyone may join)."""
    point = point_arg(args)
    is_open = args.get("open", True)
    if not isinstance(is_open, bool):
        raise ActionRejected(Reason.INVALID_ARGS, "open must be a boolean")
    if ctx.state.get(point_key(point)) is not None:
        raise ActionRejected(Reason.EXISTS, f"point {point} exists")
    ctx.state.put_obj(point_key(point), {"owner": ctx.actor, "open": is_open, "since": ctx.block.index})
    ctx.state.put_obj(member_key(point, ctx.actor), "owner")
    return {"point": point, "role": "owner"}


def join_point(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Join an open point as a member (closed points take members by set_role); args: point."""
    point = point_arg(args)
    info = ctx.state.get_obj(point_key(point))
    if not isinstance(info, dict):
        raise ActionRejected(Reason.NOT_FOUND, f"no point {point}")
    if role_of(ctx, point, ctx.actor) is not None:
        raise ActionRejected(Reason.EXISTS, "already a member")
    if not info["open"]:
        raise ActionRejected(Reason.FORBIDDEN, f"point {point} is closed")
    ctx.state.put_obj(member_key(point, ctx.actor), "member")
    return {"point": point, "role": "member"}


def leave_point(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Leave a point; the owner must hand ownership over first; args: point."""
    point = point_arg(args)
    if role_of(ctx, point, ctx.actor) == "owner":
        raise ActionRejected(Reason.FORBIDDEN, "the owner cannot leave; transfer ownership first")
    ctx.state.delete(member_key(point, ctx.actor))
    return {"point": point}


def set_role(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Set another actor's role in a point; args: point, actor, role (owner|admin|member|none).

    Admins may add or remove plain members; the owner may set any role, and giving "owner"
    transfers ownership (the previous owner becomes an admin).
    """
    point, target = point_arg(args), _str_arg(args, "actor")
    new_role = args.get("role")
    if new_role not in (*ROLES, "none"):
        raise ActionRejected(Reason.INVALID_ARGS, "role must be owner, admin, member or none")
    if target == ctx.actor:
        raise ActionRejected(Reason.FORBIDDEN, "cannot change one's own role")
    if ctx.state.get(user_key(target)) is None:
        raise ActionRejected(Reason.NOT_FOUND, f"no actor {target}")
    mine, theirs = role_of(ctx, point, ctx.actor), role_of(ctx, point, target)
    if mine != "owner" and (theirs not in (None, "member") or new_role not in ("member", "none")):
        raise ActionRejected(Reason.FORBIDDEN, "admins may only add or remove members")
    if new_role == "none":
        ctx.state.delete(member_key(point, target))
    else:
        ctx.state.put_obj(member_key(point, target), new_role)
    if new_role == "owner":
        ctx.state.put_obj(member_key(point, ctx.actor), "admin")
        info = ctx.state.get_obj(point_key(point))
        info["owner"] = target
        ctx.state.put_obj(point_key(point), info)
    return {"point": point, "actor": target, "role": new_role}


def post_signal(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Post a signal to a point: recorded in state and delivered to its members; args: point, body."""
    point = point_arg(args)
    if "body" not in args:
        raise ActionRejected(Reason.INVALID_ARGS, "body is required")
    seq = ctx.state.get_obj(signal_seq_key(point)) or 0
    ctx.state.put_obj(signal_key(point, seq), {"from": ctx.actor, "body": args["body"], "action": ctx.action_id,
                                               "block": ctx.block.index})
    ctx.state.put_obj(signal_seq_key(point), seq + 1)
    ctx.emit(SignalOutput(point, seq, ctx.actor, args["body"], ctx.action_id, ctx.block.index))
    return {"point": point, "seq": seq}


def attest_point(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Have the elected executors attest a point's record; final when the committee agrees; args: point.

    Run by each executor off the chain (`run_as_executor`) against its committed state, so
    honest executors return the same attestation and a node with a diverged state is outvoted.
    """
    point = point_arg(args)
    info = ctx.state.get_obj(point_key(point))
    if not isinstance(info, dict):
        raise ActionRejected(Reason.NOT_FOUND, f"no point {point}")
    return {"point": point, "owner": info["owner"], "open": info["open"], "since": info["since"]}


def register_builtins(registry: Registry) -> Registry:
    registry.action("/users/create", identity=SELF_REGISTER)(create_user)
    registry.action("/users/rotate_key")(rotate_key)
    registry.action("/points/create")(create_point)
    registry.action("/points/join")(join_point)
    registry.action("/points/leave", guards=[MEMBER])(leave_point)
    registry.action("/points/set_role", guards=[role("admin")])(set_role)
    registry.action("/signals/post", guards=[MEMBER])(post_signal)
    registry.action("/points/attest", executors=True)(attest_point)
    registry.action(RESPOND_PATH, identity=COMMITTEE_MEMBER)(respond)
    return registry


# Other layers put their own records on the chain as actions (certificate transparency, federation
# requests and responses).  Each such module exposes `register(registry)`; it is optional here so
# a layer can be developed (or left out) without breaking the built-in application.
CHAIN_ACTION_MODULES = ("node.trust.chain_actions", "node.federation.chain_actions", "node.membership.chain_actions")


def register_layer_actions(registry: Registry) -> Registry:
    for name in CHAIN_ACTION_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the layer's package itself is absent
            found = False
        if found:
            importlib.import_module(name).register(registry)
    return registry


BUILTIN = register_builtins(Registry())
BUILTIN.defer(register_layer_actions)
