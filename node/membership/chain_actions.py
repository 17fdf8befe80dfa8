"""Membership records as chain actions (loaded into the built-in registry by `node.actions.builtin`).

node.actions imports this module while it initialises, and the handlers need node.actions: so the
handlers are imported only when an action runs or the registry is filled, and any order works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node.membership.state import APPROVE_PATH, EVICT_PATH, JOIN_PATH, POLICY_PATH, REMOVE_PATH, TICK_PATH

if TYPE_CHECKING:
    from node.actions.context import ActionContext
    from node.actions.registry import Registry


def join_origin(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Add the signing node to the peer set from round R+6; args: cert (PEM, issued by the origin CA)."""
    from node.membership import handlers

    return handlers.join(ctx, args)


def remove_member(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Remove a member from round R+6: itself (a leave), or another only with committed fork evidence;
    args: peer (hex public key)."""
    from node.membership import handlers

    return handlers.remove(ctx, args)


def evict_forker(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Record fork evidence (two signed events by one member at one index) and remove the forker
    from round R+6; args: a, b (hex wire events)."""
    from node.membership import handlers

    return handlers.evict(ctx, args)


def tick(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Keep rounds moving while a membership change is not in force yet (an idle origin creates no
    events); changes nothing; args: until (the round the change waits for)."""
    until = args.get("until")
    return {"until": until if isinstance(until, int) and not isinstance(until, bool) else None}


def set_join_policy(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Put the origin's join policy (from the nodes' truth) on the chain; args: approval_point (a point
    whose owners and admins must approve each join, or null for none)."""
    from node.membership import handlers

    return handlers.set_policy(ctx, args)


def approve_join(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Approve the join of a node key (an owner or admin of the policy's point); args: peer (hex key)."""
    from node.membership import handlers

    return handlers.approve(ctx, args)


def register(registry: Registry) -> Registry:
    from node.actions.context import Guard
    from node.actions.guards import MEMBER_NODE
    from node.membership.handlers import joiner_identity

    registry.action(JOIN_PATH, identity=Guard("identity(joining node)", joiner_identity))(join_origin)
    registry.action(REMOVE_PATH, identity=MEMBER_NODE)(remove_member)
    registry.action(EVICT_PATH, identity=MEMBER_NODE)(evict_forker)
    registry.action(TICK_PATH, identity=MEMBER_NODE)(tick)
    registry.action(POLICY_PATH, identity=MEMBER_NODE)(set_join_policy)
    registry.action(APPROVE_PATH)(approve_join)  # a registered user (the default identity guard)
    return registry
