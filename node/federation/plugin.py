"""Registers the federation service with the daemon (kind "federated": it starts once the node is
in consensus). A node without `federation_listen` runs an idle stand-in, so it reports healthy."""

from __future__ import annotations

from typing import Any

import structlog
import trio

from node.runtime.service import NodeContext, Service, ServiceRegistry

log = structlog.get_logger("federation")


class FederationOff:
    """This node does not federate (no `federation_listen`): nothing to run."""

    name = "federation"
    kind = "federated"

    def __init__(self, dns: str | None = None) -> None:
        self.dns = dns

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        if self.dns is not None:
            log.warning("dns is set but federation_listen is not: no DNS answers without a federation endpoint")
        task_status.started()
        await trio.sleep_forever()


def _factory(ctx: NodeContext) -> Service:
    if ctx.settings.federation_listen is None:
        return FederationOff(ctx.settings.dns)
    from node.federation.service import FederationService  # heavy imports only when federating

    return FederationService(ctx)


def register(registry: ServiceRegistry) -> None:
    registry.add("federation", "federated", _factory)
