"""Registers the federation service with the daemon (kind "federated": it starts once the node is
in consensus). A node without `federation_listen` runs an idle stand-in, so it reports healthy."""

from __future__ import annotations

from typing import Any

import trio

from node.runtime.service import NodeContext, Service, ServiceRegistry


class FederationOff:
    """This node does not federate (no `federation_listen`): nothing to run."""

    name = "federation"
    kind = "federated"

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()


def _factory(ctx: NodeContext) -> Service:
    if ctx.settings.federation_listen is None:
        return FederationOff()
    from node.federation.service import FederationService  # heavy imports only when federating

    return FederationService(ctx)


def register(registry: ServiceRegistry) -> None:
    registry.add("federation", "federated", _factory)
