"""The node's published status: its phase, each service's state, and an overall readiness.

Plain state plus a change event; the node service publishes it to `truth:system:startup_status`
(a key with the latest JSON, and a pub/sub channel of the same name), and the live status line
shows it.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from node.runtime.phases import PhaseChange, PhaseMachine

SERVICE_STATES = ("waiting", "starting", "ready", "missed", "stopped", "failed", "unknown")


class NodeStatus:
    def __init__(self, node_id: str, phases: PhaseMachine) -> None:
        self.node_id = node_id
        self.phases = phases
        self.services: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.stopping = False
        self.changed = trio.Event()
        self.last_transition: dict[str, str] | None = None
        phases.observe(self._on_phase)

    def _touch(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def _on_phase(self, change: PhaseChange) -> None:
        self.last_transition = {"from": change.old.value, "to": change.new.value, "trigger": change.trigger.value}
        self._touch()

    def set_service(self, name: str, state: str, kind: str | None = None) -> None:
        if kind is not None:
            self.kinds[name] = kind
        if self.services.get(name) != state:
            self.services[name] = state
            self._touch()

    def set_stopping(self) -> None:
        self.stopping = True
        self._touch()

    @property
    def overall(self) -> str:
        if self.stopping:
            return "stopping"
        gating = [s for n, s in self.services.items() if self.kinds.get(n) != "federated" and s != "unknown"]
        if gating and all(s == "ready" for s in gating):
            return "ready"
        if any(s in ("missed", "failed") for s in gating):
            return "degraded"
        return "starting"

    def snapshot(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "status": self.overall,
            "phase": self.phases.phase.value,
            "services": dict(self.services),
            "transition": self.last_transition,
            "ts": time.time(),
        }
