"""Registers the consensus engine with the daemon (found by `node.runtime.service.load_plugins`)."""

from __future__ import annotations

from node.engine.service import ConsensusEngine
from node.runtime.service import ServiceRegistry


def register(registry: ServiceRegistry) -> None:
    registry.add("consensus", "async", ConsensusEngine)
