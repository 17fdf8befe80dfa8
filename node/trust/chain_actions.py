"""Certificate transparency records as chain actions (loaded into the built-in registry by
`node.actions.builtin`): `/certificates/record` and `/certificates/revoke`, handled in
`node.trust.chain_handlers`.

node.actions imports this module while it initialises, and the handlers need node.actions: so
this module imports the handlers only when an action runs, and any import order works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node.trust.chain_state import RECORD_PATH, REVOKE_PATH

if TYPE_CHECKING:
    from node.actions.context import ActionContext
    from node.actions.registry import Registry


def record_certificate(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Record a certificate issued by the origin CA in the transparency log; args: cert, ca (PEM)."""
    from node.trust import chain_handlers

    return chain_handlers.record_certificate(ctx, args)


def revoke_certificate(ctx: ActionContext, args: dict[str, Any]) -> Any:
    """Record a revocation (signed by the origin CA, or by the revoked node itself); args: node_id,
    serial (hex, empty: the whole node), revoked_at (epoch s), reason, proof (hex CA signature)."""
    from node.trust import chain_handlers

    return chain_handlers.revoke_certificate(ctx, args)


def register(registry: Registry) -> Registry:
    from node.actions.guards import MEMBER_NODE  # loaded by now: node.actions.builtin imports it first

    registry.action(RECORD_PATH, identity=MEMBER_NODE)(record_certificate)
    registry.action(REVOKE_PATH, identity=MEMBER_NODE)(revoke_certificate)
    return registry
